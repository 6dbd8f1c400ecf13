/*
 * timer.c — setTimeout, setInterval, setImmediate.
 *
 * Timeouts use Node's own structure, so that vow fires them in Node's order:
 *
 *   - one FIFO list per duration (all 100 ms timers in one list). A timer's
 *     due time is start + ms, and starts only grow, so each list is sorted by
 *     construction: scheduling is an append, O(1);
 *   - a hash map from duration to list, and a binary heap of lists ordered by
 *     (expiry, list id), where expiry is the due time of the list's head;
 *   - a single libuv timer, due at the heap top's expiry.
 *
 * When it fires, lists are taken from the heap in order and their due timers
 * run one by one, each through vow__loop_enter (so microtasks drain after every
 * callback). A list whose head is not yet due gets a new expiry and a new id
 * and goes back into the heap, as in Node's listOnTimeout.
 *
 * A list that empties because its timers were cleared stays in the map and
 * the heap until the driver reaches its expiry, where list_run frees it: the
 * next timer of that duration (a timeout raced and cleared again and again)
 * then appends to it instead of rebuilding it. Appending to such an empty
 * list gives it the expiry and a fresh id, exactly what Node's new list would
 * get, so the order is Node's; an empty list only costs a wakeup.
 *
 * Timer records live in a slab and are linked by 32-bit slot: each list
 * is a circle through a sentinel record of its own, so unlinking a timer needs
 * neither its list nor its duration. A timer's id is (generation << 32 |
 * slot+1), so a stale id never matches a reused slot.
 *
 * Immediates are a FIFO of (fn, arg), 16 bytes each, in blocks of 4096,
 * indexed by a sequence number that is also the id (with IMMEDIATE_TAG): a
 * turn of the check phase runs those below the tail it saw when it began, so
 * ones added meanwhile wait for the next turn. Clearing one leaves a hole (fn
 * NULL) that the check phase skips; an id below the head is past. A bitmap in
 * each block marks the unreferenced ones.
 * An idle handle keeps libuv's poll from blocking while referenced immediates
 * are pending.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/loop.h"

#define CHUNK_SHIFT 12u /* 4096 records (160 KiB) per chunk */
#define CHUNK_RECORDS (1u << CHUNK_SHIFT)
/* Past GROUP_FROM chunks (32 768 timers), chunks come GROUP_CHUNKS at a time
 * (2.5 MiB) in one 2 MiB-aligned block advised for huge pages: scheduling a
 * million timers is mostly first-touch page faults otherwise (BENCHMARKS.md). */
#define GROUP_FROM 8u
#define GROUP_CHUNKS 16u
#define NO_SLOT UINT32_MAX
#define IMM_SHIFT 12u   /* 4096 immediates (64 KiB) per block */
#define IMM_BLOCK (1u << IMM_SHIFT)
#define MAX_GENERATION 0x3fffffffu /* ids keep bit 62 clear: it tags immediates */
#define IMMEDIATE_TAG ((uint64_t)1 << 62)

enum { KIND_FREE, KIND_LIST, KIND_TIMEOUT, KIND_INTERVAL, KIND_RUNNING, KIND_CLEARED };

/* A timeout or interval (or a list's sentinel). 40 bytes: fresh memory is
 * what scheduling a million timers mostly costs (BENCHMARKS.md, fix 8). */
struct vow__timer {
  vow_task_fn fn;
  void *arg;
  uint64_t start;            /* loop time when (re)scheduled */
  uint32_t next;             /* slots: the circle of its list, or the free list */
  uint32_t prev;
  uint32_t gen;
  uint8_t kind;              /* KIND_RUNNING: an interval inside its callback;
                                KIND_CLEARED: ... that was cleared there */
  uint8_t refed;
};

struct vow__timer_list {
  uint64_t ms;
  uint64_t expiry;
  uint64_t id;
  uint32_t heap_index;
  uint32_t sentinel;         /* slot of the record that closes the circle */
  vow__timer *sent;          /* ... and the record (chunks never move) */
  int running;               /* list_run is inside it: it frees the list itself */
};

static vow__timers *timers_of(vow_loop *loop) { return &loop->timers; }

/* A timer scheduled while an async context is current runs in it
 * (core/context.h); a task dropped unrun (cleared, or an interval stopped)
 * releases its capture. */
static int capture_context(vow_loop *loop, vow_task_fn *fn, void **arg, int repeat) {
  return __builtin_expect(loop->context == NULL, 1) ? 0 : vow__context_wrap(loop, fn, arg, repeat);
}

static void task_dropped(vow_loop *loop, vow_task_fn fn, void *arg) {
  vow__context_unwrap_drop(loop, fn, arg);
}

static inline vow__timer *rec(const vow__timers *t, uint32_t slot) {
  return &t->chunks[slot >> CHUNK_SHIFT][slot & (CHUNK_RECORDS - 1)];
}

/* ---- records -------------------------------------------------------------- */

/* Takes a block for the next chunk, or the next GROUP_CHUNKS chunks: the
 * block starts chunk t->nchunks, and group_left counts the chunks it holds. */
static vow__timer *block_new(vow__timers *t) {
  size_t chunk_bytes = CHUNK_RECORDS * sizeof(vow__timer);
  void *block;
  vow__timer *first;
  if (t->huge_pages && t->nchunks >= GROUP_FROM) {
    size_t block_size;
    first = vow__malloc_huge(GROUP_CHUNKS * chunk_bytes, &block, &block_size);
    t->group_left = GROUP_CHUNKS;
  } else {
    /* Not calloc: records are written as they are carved, and a big malloc
     * gives pages the kernel backs only on first touch. */
    first = block = vow__malloc(chunk_bytes);
    t->group_left = 1;
  }
  if (!first) {
    t->group_left = 0;
    return NULL;
  }
  t->blocks[t->nchunks] = block;
  return first;
}

static __attribute__((noinline)) int chunk_add(vow__timers *t) {
  if (t->nchunks == (NO_SLOT >> CHUNK_SHIFT)) return VOW_ENOMEM; /* slots stay below NO_SLOT */
  if (t->nchunks == t->chunks_cap) {
    uint32_t cap = t->chunks_cap ? t->chunks_cap * 2 : 8;
    vow__timer **chunks = vow__realloc(t->chunks, cap * sizeof *chunks);
    if (chunks) t->chunks = chunks;
    void **blocks = chunks ? vow__realloc(t->blocks, cap * sizeof *blocks) : NULL;
    if (!blocks) return VOW_ENOMEM;
    t->blocks = blocks;
    t->chunks_cap = cap;
  }
  vow__timer *chunk;
  if (t->group_left > 0) { /* the next chunk of the newest group */
    chunk = t->chunks[t->nchunks - 1] + CHUNK_RECORDS;
    t->blocks[t->nchunks] = NULL;
  } else if (!(chunk = block_new(t))) {
    return VOW_ENOMEM;
  }
  t->group_left--;
  t->chunks[t->nchunks++] = chunk;
  return 0;
}

/* A record for a new timer or sentinel, or NO_SLOT when out of memory. */
static uint32_t record_alloc(vow__timers *t) {
  uint32_t slot = t->free_slot;
  if (slot != NO_SLOT) {
    t->free_slot = rec(t, slot)->next;
    return slot;
  }
  if (t->carved == t->nchunks * CHUNK_RECORDS && chunk_add(t) != 0) return NO_SLOT;
  slot = t->carved++;
  rec(t, slot)->gen = 1;
  return slot;
}

static void record_free(vow__timers *t, uint32_t slot) {
  vow__timer *r = rec(t, slot);
  r->kind = KIND_FREE;
  r->gen = r->gen == MAX_GENERATION ? 1 : r->gen + 1;
  r->next = t->free_slot;
  t->free_slot = slot;
}

static vow_timer record_id(const vow__timers *t, uint32_t slot) {
  return (vow_timer)(((uint64_t)rec(t, slot)->gen << 32) | (uint64_t)(slot + 1));
}

/* The slot of the pending timeout or interval behind id, or NO_SLOT. */
static uint32_t record_find(const vow__timers *t, vow_timer id) {
  if (id <= 0 || ((uint64_t)id & IMMEDIATE_TAG)) return NO_SLOT;
  uint64_t slot = ((uint64_t)id & 0xffffffffu) - 1;
  if (slot >= t->carved) return NO_SLOT;
  const vow__timer *r = rec(t, (uint32_t)slot);
  int pending = r->kind == KIND_TIMEOUT || r->kind == KIND_INTERVAL || r->kind == KIND_RUNNING;
  return pending && r->gen == (uint32_t)((uint64_t)id >> 32) ? (uint32_t)slot : NO_SLOT;
}

/* ---- the circle of a list --------------------------------------------------- */

static uint32_t list_head(const vow__timer_list *l) {
  return l->sent->next; /* the sentinel itself when empty */
}

static int list_empty(const vow__timer_list *l) {
  return list_head(l) == l->sentinel;
}

static void list_append(vow__timers *t, vow__timer_list *l, uint32_t slot) {
  vow__timer *s = l->sent;
  vow__timer *r = rec(t, slot);
  r->prev = s->prev;
  r->next = l->sentinel;
  rec(t, s->prev)->next = slot;
  s->prev = slot;
}

static void unlink_slot(vow__timers *t, uint32_t slot) {
  vow__timer *r = rec(t, slot);
  rec(t, r->prev)->next = r->next;
  rec(t, r->next)->prev = r->prev;
}

/* ---- the heap of lists, ordered by (expiry, id) --------------------------- */

static int list_before(const vow__timer_list *a, const vow__timer_list *b) {
  return a->expiry != b->expiry ? a->expiry < b->expiry : a->id < b->id;
}

static void heap_place(vow__timers *t, uint32_t i, vow__timer_list *l) {
  t->heap[i] = l;
  l->heap_index = i;
}

static void heap_sift_up(vow__timers *t, uint32_t i) {
  vow__timer_list *l = t->heap[i];
  while (i > 0) {
    uint32_t parent = (i - 1) / 2;
    if (!list_before(l, t->heap[parent])) break;
    heap_place(t, i, t->heap[parent]);
    i = parent;
  }
  heap_place(t, i, l);
}

static void heap_sift_down(vow__timers *t, uint32_t i) {
  vow__timer_list *l = t->heap[i];
  for (;;) {
    uint32_t child = 2 * i + 1;
    if (child >= t->heap_len) break;
    if (child + 1 < t->heap_len && list_before(t->heap[child + 1], t->heap[child])) child++;
    if (!list_before(t->heap[child], l)) break;
    heap_place(t, i, t->heap[child]);
    i = child;
  }
  heap_place(t, i, l);
}

static int heap_push(vow__timers *t, vow__timer_list *l) {
  if (t->heap_len == t->heap_cap) {
    uint32_t cap = t->heap_cap ? t->heap_cap * 2 : 16;
    vow__timer_list **heap = vow__realloc(t->heap, cap * sizeof *heap);
    if (!heap) return VOW_ENOMEM;
    t->heap = heap;
    t->heap_cap = cap;
  }
  heap_place(t, t->heap_len++, l);
  heap_sift_up(t, t->heap_len - 1);
  return 0;
}

static void heap_remove(vow__timers *t, vow__timer_list *l) {
  uint32_t i = l->heap_index;
  vow__timer_list *last = t->heap[--t->heap_len];
  if (i == t->heap_len) return;
  heap_place(t, i, last);
  heap_sift_down(t, i);
  heap_sift_up(t, last->heap_index);
}

/* ---- the map from duration to list (linear probing) ----------------------- */

static uint32_t map_home(const vow__timers *t, uint64_t ms) {
  return (uint32_t)((ms * 0x9E3779B97F4A7C15ull) >> 32) & (t->map_cap - 1);
}

static vow__timer_list *map_get(const vow__timers *t, uint64_t ms) {
  if (t->map_cap == 0) return NULL;
  for (uint32_t i = map_home(t, ms);; i = (i + 1) & (t->map_cap - 1)) {
    vow__timer_list *l = t->map[i];
    if (!l || l->ms == ms) return l;
  }
}

static void map_insert_unchecked(vow__timers *t, vow__timer_list *l) {
  uint32_t i = map_home(t, l->ms);
  while (t->map[i]) i = (i + 1) & (t->map_cap - 1);
  t->map[i] = l;
  t->map_len++;
}

static int map_put(vow__timers *t, vow__timer_list *l) {
  if ((t->map_len + 1) * 2 > t->map_cap) { /* keep the load under one half */
    uint32_t cap = t->map_cap ? t->map_cap * 2 : 16;
    vow__timer_list **old = t->map;
    uint32_t old_cap = t->map_cap;
    t->map = vow__calloc(cap, sizeof *t->map);
    if (!t->map) {
      t->map = old;
      return VOW_ENOMEM;
    }
    t->map_cap = cap;
    t->map_len = 0;
    for (uint32_t i = 0; i < old_cap; i++)
      if (old[i]) map_insert_unchecked(t, old[i]);
    vow__free(old);
  }
  map_insert_unchecked(t, l);
  return 0;
}

/* Backward-shift deletion keeps every probe chain unbroken without tombstones. */
static void map_delete(vow__timers *t, const vow__timer_list *l) {
  uint32_t mask = t->map_cap - 1;
  uint32_t i = map_home(t, l->ms);
  while (t->map[i] != l) i = (i + 1) & mask;
  t->map[i] = NULL;
  t->map_len--;
  for (uint32_t j = (i + 1) & mask; t->map[j]; j = (j + 1) & mask) {
    uint32_t home = map_home(t, t->map[j]->ms);
    /* Move entry j into the hole at i unless its home lies cyclically in (i, j]. */
    int stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
    if (stays) continue;
    t->map[i] = t->map[j];
    t->map[j] = NULL;
    i = j;
  }
}

/* ---- the libuv driver ------------------------------------------------------ */

static void on_driver(uv_timer_t *handle);
static void on_idle(uv_idle_t *handle);

static void driver_update_ref(vow__timers *t) {
  if (t->refed_timers > 0) uv_ref((uv_handle_t *)&t->driver);
  else uv_unref((uv_handle_t *)&t->driver);
}

/* Makes the driver fire at the heap top's expiry (or stops it).
 *
 * Under the virtual clock the driver is armed with a zero timeout instead,
 * and never from inside its own callback: libuv 1.44 runs a timer re-armed
 * with 0 from its callback again in the same pass, forever. on_check arms it
 * at the end of each turn instead. */
static void driver_schedule(vow_loop *loop) {
  vow__timers *t = timers_of(loop);
  if (t->heap_len == 0) {
    uv_timer_stop(&t->driver);
    t->driver_expiry = UINT64_MAX;
    return;
  }
  uint64_t expiry = t->heap[0]->expiry;
  if (loop->options.virtual_clock) {
    if (t->in_driver || uv_is_active((uv_handle_t *)&t->driver)) return;
    uv_timer_start(&t->driver, on_driver, 0, 0);
    t->driver_expiry = expiry;
    return;
  }
  if (expiry == t->driver_expiry && uv_is_active((uv_handle_t *)&t->driver)) return;
  uint64_t now = uv_now(&loop->uv);
  uv_timer_start(&t->driver, on_driver, expiry > now ? expiry - now : 0, 0);
  t->driver_expiry = expiry;
}

static void list_free(vow__timers *t, vow__timer_list *l) {
  heap_remove(t, l);
  map_delete(t, l);
  record_free(t, l->sentinel);
  vow__free(l);
}

/* A list for duration ms, keyed (expiry, a fresh id), in the map and heap. */
static vow__timer_list *list_new(vow__timers *t, uint64_t ms, uint64_t expiry) {
  vow__timer_list *l = vow__malloc(sizeof *l);
  if (!l) return NULL;
  l->sentinel = record_alloc(t);
  if (l->sentinel == NO_SLOT) goto fail;
  vow__timer *s = l->sent = rec(t, l->sentinel);
  s->kind = KIND_LIST;
  s->next = s->prev = l->sentinel;
  l->ms = ms;
  l->expiry = expiry;
  l->id = t->next_list_id++;
  l->running = 0;
  if (map_put(t, l) != 0) goto fail_slot;
  if (heap_push(t, l) != 0) {
    map_delete(t, l);
    goto fail_slot;
  }
  return l;
fail_slot:
  record_free(t, l->sentinel);
fail:
  vow__free(l);
  return NULL;
}

/* Appends the timer in slot (its start set) to the list of duration ms. */
static int timer_insert(vow_loop *loop, uint32_t slot, uint64_t ms) {
  vow__timers *t = timers_of(loop);
  uint64_t expiry = rec(t, slot)->start + ms;
  vow__timer_list *l = map_get(t, ms);
  if (!l) {
    if (!(l = list_new(t, ms, expiry))) return VOW_ENOMEM;
    if (expiry < t->driver_expiry) driver_schedule(loop);
  } else if (!l->running && list_empty(l)) {
    /* An emptied list taken over: keyed as Node keys the new list it would
     * make. The key only grows (starts only grow), hence the sift down. */
    l->expiry = expiry;
    l->id = t->next_list_id++;
    heap_sift_down(t, l->heap_index);
    if (expiry < t->driver_expiry) driver_schedule(loop);
  }
  list_append(t, l, slot);
  return 0;
}

static void ref_drop_timer(vow__timers *t, vow__timer *r) {
  if (!r->refed) return;
  r->refed = 0;
  t->refed_timers--;
}

/* Runs one due timer that was just unlinked from l. */
static void timer_fire(vow_loop *loop, vow__timer_list *l, uint32_t slot) {
  vow__timers *t = timers_of(loop);
  vow__timer *r = rec(t, slot); /* chunks never move: r stays valid */
  vow_task_fn fn = r->fn;
  void *arg = r->arg;
  if (r->kind == KIND_TIMEOUT) {
    ref_drop_timer(t, r);
    record_free(t, slot); /* its id is stale from here on: clearing it is a no-op */
    vow__loop_enter_named(loop, "timeout", fn, arg);
    return;
  }
  uint64_t start = vow__loop_now(loop); /* Node takes the interval's start before the call */
  r->kind = KIND_RUNNING;
  vow__loop_enter_named(loop, "interval", fn, arg);
  if (r->kind == KIND_RUNNING) {
    r->kind = KIND_INTERVAL;
    r->start = start;
    if (timer_insert(loop, slot, l->ms) == 0) return; /* l is still in the map: running */
    ref_drop_timer(t, r); /* out of memory: the interval stops */
  }
  task_dropped(loop, r->fn, r->arg);
  record_free(t, slot);
}

/* Runs the due timers of one list. The list stays in the map while it runs,
 * so a callback that schedules a timer of the same duration appends to it (as
 * in Node); it is freed here once empty, or re-keyed when its head is not due. */
static void list_run(vow_loop *loop, vow__timer_list *l, uint64_t now) {
  vow__timers *t = timers_of(loop);
  uint32_t slot;
  l->running = 1;
  while ((slot = list_head(l)) != l->sentinel && loop->status == 0) {
    uint64_t start = rec(t, slot)->start;
    if (now - start < l->ms) {
      l->expiry = start + l->ms > now + 1 ? start + l->ms : now + 1;
      l->id = t->next_list_id++;
      heap_sift_down(t, l->heap_index);
      l->running = 0;
      return;
    }
    unlink_slot(t, slot);
    timer_fire(loop, l, slot);
  }
  l->running = 0;
  if (list_empty(l)) list_free(t, l);
}

/* Nothing is due and no immediate waits: jump to the next due time. Lists
 * emptied by clearing are freed first, so the clock never jumps to one. */
static void virtual_clock_advance(vow_loop *loop) {
  vow__timers *t = timers_of(loop);
  while (t->heap_len > 0 && list_empty(t->heap[0])) list_free(t, t->heap[0]);
  if (t->heap_len == 0 || t->imm_head != t->imm_tail) return;
  if (t->heap[0]->expiry > loop->virtual_now) loop->virtual_now = t->heap[0]->expiry;
}

static void on_driver(uv_timer_t *handle) {
  vow_loop *loop = handle->loop->data;
  vow__timers *t = timers_of(loop);
  t->driver_expiry = UINT64_MAX;
  t->in_driver = 1;
  if (loop->options.virtual_clock) virtual_clock_advance(loop);
  uint64_t now = vow__loop_now(loop);
  while (t->heap_len > 0 && t->heap[0]->expiry <= now && loop->status == 0)
    list_run(loop, t->heap[0], now);
  t->in_driver = 0;
  if (!loop->options.virtual_clock) driver_schedule(loop);
  else if (t->heap_len > 0) uv_idle_start(&t->idle, on_idle); /* poll must not block */
  driver_update_ref(t);
}

/* ---- immediates ------------------------------------------------------------ */

/* Blocks never move, and emptied ones are reused (one spare), so the FIFO
 * neither copies nor touches memory twice however long it grows. */
struct vow__imm_block {
  vow__task tasks[IMM_BLOCK];
  uint64_t unrefed[IMM_BLOCK / 64]; /* a bit per task: pending and unreferenced */
};

/* The block holding seq, which must lie in [imm_head, imm_tail). */
static vow__imm_block *imm_block(const vow__timers *t, uint64_t seq) {
  return t->imm_blocks[(seq >> IMM_SHIFT) - (t->imm_head >> IMM_SHIFT)];
}

static int imm_bit(const vow__imm_block *b, uint64_t seq) {
  uint32_t i = (uint32_t)(seq & (IMM_BLOCK - 1));
  return (int)((b->unrefed[i / 64] >> (i % 64)) & 1);
}

static void imm_flip_bit(vow__imm_block *b, uint64_t seq) {
  uint32_t i = (uint32_t)(seq & (IMM_BLOCK - 1));
  b->unrefed[i / 64] ^= (uint64_t)1 << (i % 64);
}

static void imm_ref(vow__timers *t) {
  if (t->refed_immediates++ == 0) uv_idle_start(&t->idle, on_idle);
}

/* The pending immediate seq of block b leaves (runs or is cleared). */
static void imm_release(vow__timers *t, vow__imm_block *b, uint64_t seq) {
  if (t->imm_unrefed > 0 && imm_bit(b, seq)) {
    imm_flip_bit(b, seq);
    t->imm_unrefed--;
  } else if (--t->refed_immediates == 0) {
    uv_idle_stop(&t->idle);
  }
}

/* Seq imm_tail starts a block: appends one (the spare, or a new one). */
static __attribute__((noinline)) vow__imm_block *imm_block_append(vow__timers *t) {
  if (t->imm_nblocks == t->imm_blocks_cap) {
    uint32_t cap = t->imm_blocks_cap ? t->imm_blocks_cap * 2 : 4;
    vow__imm_block **blocks = vow__realloc(t->imm_blocks, cap * sizeof *blocks);
    if (!blocks) return NULL;
    t->imm_blocks = blocks;
    t->imm_blocks_cap = cap;
  }
  vow__imm_block *b = t->imm_spare;
  if (b) {
    t->imm_spare = NULL;
  } else {
    b = vow__malloc(sizeof *b); /* not calloc: tasks are written when queued */
    if (!b) return NULL;
  }
  memset(b->unrefed, 0, sizeof b->unrefed);
  t->imm_blocks[t->imm_nblocks++] = b;
  return t->imm_tail_block = b;
}

/* imm_head has just left blocks[0]: drop it (kept as the spare). */
static void imm_block_pop(vow__timers *t) {
  vow__imm_block *b = t->imm_blocks[0];
  memmove(t->imm_blocks, t->imm_blocks + 1, --t->imm_nblocks * sizeof *t->imm_blocks);
  if (t->imm_spare) vow__free(b);
  else t->imm_spare = b;
}

/* Takes the oldest immediate off the FIFO; its fn is NULL if it was cleared. */
static vow__task imm_shift(vow__timers *t) {
  uint64_t seq = t->imm_head;
  vow__imm_block *b = t->imm_blocks[0];
  vow__task task = b->tasks[seq & (IMM_BLOCK - 1)];
  if (task.fn) imm_release(t, b, seq);
  if ((++t->imm_head & (IMM_BLOCK - 1)) == 0) imm_block_pop(t);
  return task;
}

/* The slot of the pending immediate behind id (and its block), or NULL. */
static vow__task *imm_find(const vow__timers *t, vow_timer id, uint64_t *seq, vow__imm_block **b) {
  if (id <= 0 || !((uint64_t)id & IMMEDIATE_TAG)) return NULL;
  *seq = (uint64_t)id & ~IMMEDIATE_TAG;
  if (*seq < t->imm_head || *seq >= t->imm_tail) return NULL;
  *b = imm_block(t, *seq);
  vow__task *task = &(*b)->tasks[*seq & (IMM_BLOCK - 1)];
  return task->fn ? task : NULL;
}

static void on_check(uv_check_t *handle) {
  vow_loop *loop = handle->loop->data;
  vow__timers *t = timers_of(loop);
  uint64_t limit = t->imm_tail; /* those queued from now on wait a turn */
  while (t->imm_head != limit && loop->status == 0) {
    vow__task task = imm_shift(t);
    if (task.fn) vow__loop_enter_named(loop, "immediate", task.fn, task.arg);
  }
  if (loop->options.virtual_clock) {
    driver_schedule(loop);
    driver_update_ref(t);
    if (t->refed_immediates == 0) uv_idle_stop(&t->idle);
  }
}

static void on_idle(uv_idle_t *handle) {
  (void)handle; /* exists only to keep libuv's poll from blocking */
}

/* ---- public API ------------------------------------------------------------ */

static int schedule_check(vow_loop *loop, vow_task_fn fn) {
  if (!loop || !fn) return VOW_EINVAL;
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  if (loop->closing) return VOW_ECLOSING;
  return 0;
}

static vow_timer schedule(vow_loop *loop, int kind, uint64_t ms, vow_task_fn fn, void *arg) {
  int err = schedule_check(loop, fn);
  if (err) return err;
  if (ms > VOW_TIMEOUT_MAX) return VOW_EINVAL;
  vow__timers *t = timers_of(loop);
  if (capture_context(loop, &fn, &arg, kind == KIND_INTERVAL) != 0) return VOW_ENOMEM;
  uint32_t slot = record_alloc(t);
  if (slot == NO_SLOT) {
    task_dropped(loop, fn, arg);
    return VOW_ENOMEM;
  }
  vow__timer *r = rec(t, slot);
  r->kind = (uint8_t)kind;
  r->fn = fn;
  r->arg = arg;
  r->refed = 1;
  r->start = vow__loop_now(loop);
  if (timer_insert(loop, slot, ms < 1 ? 1 : ms) != 0) { /* as in Node: below 1 ms means 1 ms */
    task_dropped(loop, fn, arg);
    record_free(t, slot);
    return VOW_ENOMEM;
  }
  if (t->refed_timers++ == 0) driver_update_ref(t);
  return record_id(t, slot);
}

vow_timer vow_set_timeout(vow_loop *loop, uint64_t ms, vow_task_fn fn, void *arg) {
  return schedule(loop, KIND_TIMEOUT, ms, fn, arg);
}

vow_timer vow_set_interval(vow_loop *loop, uint64_t ms, vow_task_fn fn, void *arg) {
  return schedule(loop, KIND_INTERVAL, ms, fn, arg);
}

vow_timer vow_set_immediate(vow_loop *loop, vow_task_fn fn, void *arg) {
  int err = schedule_check(loop, fn);
  if (err) return err;
  vow__timers *t = timers_of(loop);
  uint64_t seq = t->imm_tail;
  vow__imm_block *b = t->imm_tail_block; /* valid unless seq starts a block */
  if (capture_context(loop, &fn, &arg, 0) != 0) return VOW_ENOMEM;
  if (__builtin_expect((seq & (IMM_BLOCK - 1)) == 0, 0) && !(b = imm_block_append(t))) {
    task_dropped(loop, fn, arg);
    return VOW_ENOMEM;
  }
  b->tasks[seq & (IMM_BLOCK - 1)] = (vow__task){fn, arg};
  t->imm_tail = seq + 1;
  imm_ref(t);
  return (vow_timer)(IMMEDIATE_TAG | seq);
}

static int clear_immediate(vow_loop *loop, vow__timers *t, vow_timer id) {
  uint64_t seq;
  vow__imm_block *b;
  vow__task *task = imm_find(t, id, &seq, &b);
  if (!task) return 0;
  task_dropped(loop, task->fn, task->arg);
  task->fn = NULL; /* the check phase skips the hole */
  imm_release(t, b, seq);
  return 1;
}

int vow_clear_timer(vow_loop *loop, vow_timer id) {
  if (!loop) return VOW_EINVAL;
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  vow__timers *t = timers_of(loop);
  if ((uint64_t)id & IMMEDIATE_TAG) return clear_immediate(loop, t, id);
  uint32_t slot = record_find(t, id);
  if (slot == NO_SLOT) return 0;
  vow__timer *r = rec(t, slot);
  ref_drop_timer(t, r);
  if (r->kind == KIND_RUNNING) { /* inside its own callback: timer_fire frees it */
    r->kind = KIND_CLEARED;
  } else {
    unlink_slot(t, slot); /* its list stays, even empty (see the top) */
    task_dropped(loop, r->fn, r->arg);
    record_free(t, slot);
  }
  driver_update_ref(t);
  return 1;
}

static int set_ref_immediate(vow__timers *t, vow_timer id, int refed) {
  uint64_t seq;
  vow__imm_block *b;
  if (!imm_find(t, id, &seq, &b) || imm_bit(b, seq) == !refed) return 0; /* already so */
  imm_flip_bit(b, seq);
  if (refed) {
    t->imm_unrefed--;
    imm_ref(t);
  } else {
    t->imm_unrefed++;
    if (--t->refed_immediates == 0) uv_idle_stop(&t->idle);
  }
  return 0;
}

static int set_ref(vow_loop *loop, vow_timer id, int refed) {
  if (!loop) return VOW_EINVAL;
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  vow__timers *t = timers_of(loop);
  if ((uint64_t)id & IMMEDIATE_TAG) return set_ref_immediate(t, id, refed);
  uint32_t slot = record_find(t, id);
  if (slot == NO_SLOT) return 0;
  vow__timer *r = rec(t, slot);
  if (r->refed == refed) return 0;
  if (refed) {
    r->refed = 1;
    t->refed_timers++;
  } else {
    ref_drop_timer(t, r);
  }
  driver_update_ref(t);
  return 0;
}

int vow_timer_unref(vow_loop *loop, vow_timer id) { return set_ref(loop, id, 0); }
int vow_timer_ref(vow_loop *loop, vow_timer id) { return set_ref(loop, id, 1); }

/* ---- lifecycle ------------------------------------------------------------- */

int vow__timers_init(vow_loop *loop) {
  vow__timers *t = timers_of(loop);
  t->driver_expiry = UINT64_MAX;
  t->free_slot = NO_SLOT;
  t->huge_pages = !loop->options.no_huge_pages;
  int err = uv_timer_init(&loop->uv, &t->driver);
  if (!err) err = uv_check_init(&loop->uv, &t->check);
  if (!err) err = uv_idle_init(&loop->uv, &t->idle);
  if (err) return err;
  uv_unref((uv_handle_t *)&t->driver);
  uv_check_start(&t->check, on_check);
  uv_unref((uv_handle_t *)&t->check); /* the idle handle keeps the loop alive */
  return 0;
}

void vow__timers_dispose_all(vow_loop *loop) {
  vow__timers *t = timers_of(loop);
  for (uint32_t slot = 0; slot < t->carved; slot++) {
    vow__timer *r = rec(t, slot);
    if (r->kind != KIND_TIMEOUT && r->kind != KIND_INTERVAL) continue;
    vow__loop_dispose_task(loop, r->fn, r->arg);
    ref_drop_timer(t, r);
    unlink_slot(t, slot);
    record_free(t, slot);
  }
  while (t->heap_len > 0) list_free(t, t->heap[t->heap_len - 1]);
  while (t->imm_head != t->imm_tail) {
    vow__task task = imm_shift(t);
    if (task.fn) vow__loop_dispose_task(loop, task.fn, task.arg);
  }
  driver_schedule(loop);
}

void vow__timers_close(vow_loop *loop) {
  vow__timers *t = timers_of(loop);
  uv_close((uv_handle_t *)&t->driver, NULL);
  uv_close((uv_handle_t *)&t->check, NULL);
  uv_close((uv_handle_t *)&t->idle, NULL);
}

void vow__timers_free(vow_loop *loop) {
  vow__timers *t = timers_of(loop);
  for (uint32_t i = 0; i < t->heap_len; i++) vow__free(t->heap[i]); /* emptied, not yet reached */
  for (uint32_t c = 0; c < t->nchunks; c++) vow__free(t->blocks[c]); /* NULL inside a group */
  vow__free(t->chunks);
  vow__free(t->blocks);
  vow__free(t->map);
  vow__free(t->heap);
  for (uint32_t i = 0; i < t->imm_nblocks; i++) vow__free(t->imm_blocks[i]);
  vow__free(t->imm_blocks);
  vow__free(t->imm_spare);
  memset(t, 0, sizeof *t);
}
