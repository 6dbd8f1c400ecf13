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
 * Immediates form one FIFO. A turn of the check phase runs the immediates that
 * existed when it began (those with seq below the turn's limit); ones added
 * meanwhile wait for the next turn. An idle handle keeps libuv's poll from
 * blocking while referenced immediates are pending.
 *
 * Records live in a slab of fixed chunks; an id is (generation << 32 | slot+1),
 * so a stale id never matches a reused slot.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "loop.h"

#define CHUNK_RECORDS 1024u
#define MAX_GENERATION 0x7fffffffu

enum { KIND_FREE, KIND_TIMEOUT, KIND_INTERVAL, KIND_IMMEDIATE };

struct vow__timer {
  vow_task_fn fn;
  void *arg;
  vow__timer *prev;
  vow__timer *next;          /* in its list / the immediates / the free list */
  vow__timer_list *list;     /* timeouts and intervals while queued */
  uint64_t start;            /* loop time when (re)scheduled; seq for immediates */
  uint32_t ms;
  uint32_t gen;
  uint32_t slot;
  uint8_t kind;
  uint8_t refed;
  uint8_t running;           /* an interval inside its own callback */
  uint8_t cleared;           /* ... that was cleared there */
};

struct vow__timer_list {
  vow__timer_queue q;
  uint64_t ms;
  uint64_t expiry;
  uint64_t id;
  uint32_t heap_index;
  int running;               /* list_run is inside it: it frees the list itself */
};

static vow__timers *timers_of(vow_loop *loop) { return &loop->timers; }

/* ---- intrusive queue ------------------------------------------------------ */

static void queue_append(vow__timer_queue *q, vow__timer *t) {
  t->next = NULL;
  t->prev = q->tail;
  if (q->tail) q->tail->next = t;
  else q->head = t;
  q->tail = t;
}

static void queue_remove(vow__timer_queue *q, vow__timer *t) {
  if (t->prev) t->prev->next = t->next;
  else q->head = t->next;
  if (t->next) t->next->prev = t->prev;
  else q->tail = t->prev;
  t->prev = t->next = NULL;
}

/* ---- records -------------------------------------------------------------- */

static vow__timer *record_alloc(vow__timers *t) {
  if (!t->free_records) {
    vow__timer **chunks = vow__realloc(t->chunks, (t->nchunks + 1) * sizeof *chunks);
    if (!chunks) return NULL;
    t->chunks = chunks;
    vow__timer *chunk = vow__calloc(CHUNK_RECORDS, sizeof *chunk);
    if (!chunk) return NULL;
    chunks[t->nchunks] = chunk;
    /* Thread the new records onto the free list, lowest slot first. */
    for (uint32_t i = CHUNK_RECORDS; i-- > 0;) {
      chunk[i].slot = t->nchunks * CHUNK_RECORDS + i;
      chunk[i].gen = 1;
      chunk[i].next = t->free_records;
      t->free_records = &chunk[i];
    }
    t->nchunks++;
  }
  vow__timer *r = t->free_records;
  t->free_records = r->next;
  r->next = r->prev = NULL;
  return r;
}

static void record_free(vow__timers *t, vow__timer *r) {
  r->kind = KIND_FREE;
  r->gen = r->gen == MAX_GENERATION ? 1 : r->gen + 1;
  r->fn = NULL;
  r->arg = NULL;
  r->list = NULL;
  r->running = r->cleared = 0;
  r->next = t->free_records;
  t->free_records = r;
}

static vow_timer record_id(const vow__timer *r) {
  return (vow_timer)(((uint64_t)r->gen << 32) | (uint64_t)(r->slot + 1));
}

/* The pending record behind id, or NULL. */
static vow__timer *record_find(vow__timers *t, vow_timer id) {
  if (id <= 0) return NULL;
  uint64_t slot = ((uint64_t)id & 0xffffffffu) - 1;
  uint32_t gen = (uint32_t)((uint64_t)id >> 32);
  if (slot >= (uint64_t)t->nchunks * CHUNK_RECORDS) return NULL;
  vow__timer *r = &t->chunks[slot / CHUNK_RECORDS][slot % CHUNK_RECORDS];
  if (r->kind == KIND_FREE || r->gen != gen) return NULL;
  return r;
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
  vow__free(l);
}

/* Appends r to the list of its duration; r->start and r->ms are set. */
static int timer_insert(vow_loop *loop, vow__timer *r) {
  vow__timers *t = timers_of(loop);
  vow__timer_list *l = map_get(t, r->ms);
  if (!l) {
    l = vow__calloc(1, sizeof *l);
    if (!l) return VOW_ENOMEM;
    l->ms = r->ms;
    l->expiry = r->start + r->ms;
    l->id = t->next_list_id++;
    if (map_put(t, l) != 0) {
      vow__free(l);
      return VOW_ENOMEM;
    }
    if (heap_push(t, l) != 0) {
      map_delete(t, l);
      vow__free(l);
      return VOW_ENOMEM;
    }
    if (l->expiry < t->driver_expiry) driver_schedule(loop);
  }
  queue_append(&l->q, r);
  r->list = l;
  return 0;
}

static void timer_unlink(vow__timers *t, vow__timer *r) {
  vow__timer_list *l = r->list;
  queue_remove(&l->q, r);
  r->list = NULL;
  if (!l->q.head && !l->running) list_free(t, l);
}

static void ref_count_drop(vow__timers *t, vow__timer *r) {
  if (!r->refed) return;
  r->refed = 0;
  if (r->kind == KIND_IMMEDIATE) {
    if (--t->refed_immediates == 0) uv_idle_stop(&t->idle);
  } else {
    t->refed_timers--;
  }
}

/* Runs one due timer that was just taken off its list. */
static void timer_fire(vow_loop *loop, vow__timer *r) {
  vow__timers *t = timers_of(loop);
  vow_task_fn fn = r->fn;
  void *arg = r->arg;
  if (r->kind == KIND_TIMEOUT) {
    ref_count_drop(t, r);
    record_free(t, r); /* its id is stale from here on: clearing it is a no-op */
    vow__loop_enter_named(loop, "timeout", fn, arg);
    return;
  }
  uint64_t start = vow__loop_now(loop); /* Node takes the interval's start before the call */
  r->running = 1;
  vow__loop_enter_named(loop, "interval", fn, arg);
  r->running = 0;
  if (!r->cleared) {
    r->start = start;
    if (timer_insert(loop, r) == 0) return;
    ref_count_drop(t, r); /* out of memory: the interval stops */
  }
  record_free(t, r);
}

/* Runs the due timers of one list. The list stays in the map while it runs,
 * so a callback that schedules a timer of the same duration appends to it (as
 * in Node); it is freed here once empty, or re-keyed when its head is not due. */
static void list_run(vow_loop *loop, vow__timer_list *l, uint64_t now) {
  vow__timers *t = timers_of(loop);
  vow__timer *r;
  l->running = 1;
  while ((r = l->q.head) != NULL && loop->status == 0) {
    if (now - r->start < l->ms) {
      l->expiry = r->start + l->ms > now + 1 ? r->start + l->ms : now + 1;
      l->id = t->next_list_id++;
      heap_sift_down(t, l->heap_index);
      l->running = 0;
      return;
    }
    queue_remove(&l->q, r);
    r->list = NULL;
    timer_fire(loop, r);
  }
  l->running = 0;
  if (!l->q.head) list_free(t, l);
}

/* Nothing is due and no immediate waits: jump to the next due time. */
static void virtual_clock_advance(vow_loop *loop) {
  vow__timers *t = timers_of(loop);
  if (t->heap_len == 0 || t->immediates.head) return;
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

static void on_check(uv_check_t *handle) {
  vow_loop *loop = handle->loop->data;
  vow__timers *t = timers_of(loop);
  uint64_t limit = t->next_immediate_seq; /* those queued from now on wait a turn */
  vow__timer *r;
  while ((r = t->immediates.head) != NULL && r->start < limit && loop->status == 0) {
    vow_task_fn fn = r->fn;
    void *arg = r->arg;
    queue_remove(&t->immediates, r);
    ref_count_drop(t, r);
    record_free(t, r);
    vow__loop_enter_named(loop, "immediate", fn, arg);
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

static vow_timer schedule(vow_loop *loop, int kind, uint64_t ms, vow_task_fn fn, void *arg) {
  if (!loop || !fn) return VOW_EINVAL;
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  if (loop->closing) return VOW_ECLOSING;
  if (ms > VOW_TIMEOUT_MAX) return VOW_EINVAL;
  vow__timers *t = timers_of(loop);
  vow__timer *r = record_alloc(t);
  if (!r) return VOW_ENOMEM;
  r->kind = (uint8_t)kind;
  r->fn = fn;
  r->arg = arg;
  r->refed = 1;
  if (kind == KIND_IMMEDIATE) {
    r->start = t->next_immediate_seq++;
    queue_append(&t->immediates, r);
    if (t->refed_immediates++ == 0) uv_idle_start(&t->idle, on_idle);
    return record_id(r);
  }
  r->ms = (uint32_t)(ms < 1 ? 1 : ms); /* as in Node: below 1 ms means 1 ms */
  r->start = vow__loop_now(loop);
  if (timer_insert(loop, r) != 0) {
    record_free(t, r);
    return VOW_ENOMEM;
  }
  t->refed_timers++;
  driver_update_ref(t);
  return record_id(r);
}

vow_timer vow_set_timeout(vow_loop *loop, uint64_t ms, vow_task_fn fn, void *arg) {
  return schedule(loop, KIND_TIMEOUT, ms, fn, arg);
}

vow_timer vow_set_interval(vow_loop *loop, uint64_t ms, vow_task_fn fn, void *arg) {
  return schedule(loop, KIND_INTERVAL, ms, fn, arg);
}

vow_timer vow_set_immediate(vow_loop *loop, vow_task_fn fn, void *arg) {
  return schedule(loop, KIND_IMMEDIATE, 0, fn, arg);
}

int vow_clear_timer(vow_loop *loop, vow_timer id) {
  if (!loop) return VOW_EINVAL;
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  vow__timers *t = timers_of(loop);
  vow__timer *r = record_find(t, id);
  if (!r || r->cleared) return 0;
  ref_count_drop(t, r);
  if (r->kind == KIND_IMMEDIATE) {
    queue_remove(&t->immediates, r);
    record_free(t, r);
    return 1;
  }
  if (r->running) { /* inside its own callback: list_run frees it afterwards */
    r->cleared = 1;
    driver_update_ref(t);
    return 1;
  }
  timer_unlink(t, r);
  record_free(t, r);
  if (t->heap_len == 0) driver_schedule(loop);
  driver_update_ref(t);
  return 1;
}

static int set_ref(vow_loop *loop, vow_timer id, int refed) {
  if (!loop) return VOW_EINVAL;
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  vow__timers *t = timers_of(loop);
  vow__timer *r = record_find(t, id);
  if (!r || r->cleared || r->refed == refed) return 0;
  if (!refed) {
    ref_count_drop(t, r);
  } else {
    r->refed = 1;
    if (r->kind == KIND_IMMEDIATE) {
      if (t->refed_immediates++ == 0) uv_idle_start(&t->idle, on_idle);
    } else {
      t->refed_timers++;
    }
  }
  if (r->kind != KIND_IMMEDIATE) driver_update_ref(t);
  return 0;
}

int vow_timer_unref(vow_loop *loop, vow_timer id) { return set_ref(loop, id, 0); }
int vow_timer_ref(vow_loop *loop, vow_timer id) { return set_ref(loop, id, 1); }

/* ---- lifecycle ------------------------------------------------------------- */

int vow__timers_init(vow_loop *loop) {
  vow__timers *t = timers_of(loop);
  t->driver_expiry = UINT64_MAX;
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
  for (uint32_t c = 0; c < t->nchunks; c++) {
    for (uint32_t i = 0; i < CHUNK_RECORDS; i++) {
      vow__timer *r = &t->chunks[c][i];
      if (r->kind == KIND_FREE || r->running) continue;
      vow__loop_dispose_task(loop, r->fn, r->arg);
      ref_count_drop(t, r);
      if (r->kind == KIND_IMMEDIATE) queue_remove(&t->immediates, r);
      else timer_unlink(t, r);
      record_free(t, r);
    }
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
  for (uint32_t c = 0; c < t->nchunks; c++) vow__free(t->chunks[c]);
  vow__free(t->chunks);
  vow__free(t->map);
  vow__free(t->heap);
  memset(t, 0, sizeof *t);
}
