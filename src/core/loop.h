/*
 * loop.h — the loop's insides, shared by the files in src/ (never installed).
 *
 * Layering: the loop knows tasks, timers and memory pools, nothing more. The
 * layers above it (promises, async, I/O) keep their per-loop state in an
 * extension slot and plug into the loop through three narrow hooks:
 *   - a checkpoint hook, run after a microtask drain when the layer asked for
 *     it (unhandled rejections);
 *   - a disposer per task function, run for queued tasks when the loop is freed;
 *   - an extension destructor, run when the loop is freed.
 */
#ifndef VOW_LOOP_H
#define VOW_LOOP_H

#include <stdint.h>
#include <uv.h>

#include "vow.h"
#include "core/pool.h"

/* ---- microtask queue (microtask.c) --------------------------------------- */

typedef struct vow__task {
  vow_task_fn fn;
  void *arg;
} vow__task;

/* A ring of tasks. Invariant: cap is a power of two (or 0); head and tail are
 * free-running counters, so count = tail - head and slot = counter & (cap - 1). */
typedef struct vow__microtask_queue {
  vow__task *ring;
  uint32_t cap;
  uint32_t head;
  uint32_t tail;
} vow__microtask_queue;

/* Doubles the ring: the cold path of vow__microtask_push (defined below). */
int vow__microtask_grow(vow__microtask_queue *q) __attribute__((cold, noinline));
void vow__microtask_drain(vow_loop *loop);
void vow__microtask_dispose_all(vow_loop *loop);
void vow__microtask_free(vow__microtask_queue *q);

/* ---- timers (timer.c) ---------------------------------------------------- */

typedef struct vow__timer vow__timer;
typedef struct vow__trace vow__trace;
typedef struct vow__context vow__context;         /* core/context.h */
typedef struct vow__cancel_hook vow__cancel_hook; /* core/context.h */
typedef struct vow__timer_list vow__timer_list;
typedef struct vow__imm_block vow__imm_block;

typedef struct vow__timers {
  /* Timeout/interval records, addressed by 32-bit slot, in chunks that never
   * move. Slots are carved in order, so a page is touched only when a timer
   * first needs it, and freed ones are reused first (a LIFO list). */
  vow__timer **chunks;
  void **blocks;              /* blocks[c]: what vow__malloc gave, if chunk c starts one */
  uint32_t nchunks;
  uint32_t chunks_cap;
  uint32_t group_left;        /* chunks still free in the newest group */
  int huge_pages;             /* groups ask for huge pages (loop option) */
  uint32_t carved;            /* slots [0, carved) have been handed out */
  uint32_t free_slot;         /* head of the free list; UINT32_MAX when empty */

  /* Node's structure: one FIFO list per duration, found through a hash map
   * keyed by duration, and a binary heap of lists ordered by (expiry, id). */
  vow__timer_list **map;      /* open addressing, linear probing */
  uint32_t map_cap;           /* power of two */
  uint32_t map_len;
  vow__timer_list **heap;
  uint32_t heap_len;
  uint32_t heap_cap;
  uint64_t next_list_id;
  uint64_t driver_expiry;     /* when `driver` is due; UINT64_MAX when stopped */
  int in_driver;              /* inside the driver's callback */
  uv_timer_t driver;

  /* Immediates: a FIFO of tasks in fixed blocks, indexed by sequence number
   * (see timer.c). blocks[0] holds the block of seq imm_head. */
  vow__imm_block **imm_blocks;
  uint32_t imm_nblocks;
  uint32_t imm_blocks_cap;
  vow__imm_block *imm_tail_block; /* the block of seq imm_tail - 1 */
  vow__imm_block *imm_spare;  /* one emptied block kept for reuse */
  uint64_t imm_head;          /* seq of the oldest immediate not yet run */
  uint64_t imm_tail;          /* seq of the next immediate */
  uint64_t imm_unrefed;       /* pending unreferenced immediates */
  uv_check_t check;
  uv_idle_t idle;

  uint64_t refed_timers;      /* pending referenced timeouts/intervals */
  uint64_t refed_immediates;  /* pending referenced immediates */
} vow__timers;

int vow__timers_init(vow_loop *loop);
void vow__timers_dispose_all(vow_loop *loop);
void vow__timers_close(vow_loop *loop);   /* closes the libuv handles */
void vow__timers_free(vow_loop *loop);    /* after the handles closed */

/* ---- extension slots ----------------------------------------------------- */

enum {
  VOW__EXT_PROMISE,
  VOW__EXT_ASYNC,
  VOW__EXT_IO,
  VOW__EXT_TRACE,
  VOW__EXT_COUNT
};

typedef void (*vow__ext_free_fn)(vow_loop *loop, void *state);
/* Runs after a microtask drain when its layer called vow__loop_want_checkpoint.
 * It may queue microtasks or ask again: the checkpoint goes on until quiet. */
typedef void (*vow__checkpoint_fn)(vow_loop *loop, void *state);
/* Releases what a task still queued at vow_loop_free holds. */
typedef void (*vow__dispose_fn)(vow_loop *loop, void *arg);

#define VOW__MAX_DISPOSERS 16

struct vow_loop {
  uv_loop_t uv;
  const char *owner;  /* &vow__thread_mark of the thread that made the loop */
  vow__microtask_queue micro;
  vow__timers timers;
  vow__pool pool;

  int running;        /* inside vow_loop_run */
  int in_uv_run;      /* inside uv_run (so uv_stop applies to this run) */
  int in_checkpoint;  /* inside vow__loop_checkpoint (checkpoints don't nest) */
  int hooks_due;      /* a checkpoint hook has work (vow__loop_want_checkpoint) */
  int closing;        /* inside vow_loop_free */
  int status;         /* first error that stops the run; returned by vow_loop_run */
  vow__trace *trace;  /* NULL unless tracing */

  vow_loop_options options;
  uint64_t virtual_now;  /* the clock when options.virtual_clock is set */

  void *ext[VOW__EXT_COUNT];
  vow__ext_free_fn ext_closing[VOW__EXT_COUNT]; /* see vow__loop_set_closing (NULL: none) */
  vow__ext_free_fn ext_free[VOW__EXT_COUNT];
  vow__checkpoint_fn ext_checkpoint[VOW__EXT_COUNT];

  struct {
    vow_task_fn fn;
    vow__dispose_fn dispose;
  } disposers[VOW__MAX_DISPOSERS];
  int ndisposers;

  /* Posts from other threads (post.c): the only state shared across threads,
   * all of it under post_lock. */
  uv_async_t post_wakeup;
  uv_mutex_t post_lock;
  vow__task *posts;
  size_t posts_len;
  size_t posts_cap;
  uint64_t holds;     /* vow_loop_hold count (loop thread only) */

  /* What runs on behalf of whom (core/context.h). */
  vow__context *context;                /* of the running code (a reference), or NULL */
  int context_used;                     /* a binding was ever made: frames carry contexts */
  const vow__cancel_hook *cancel_hook;  /* installed by async/scope.c, or NULL */
};

/* Queues fn(loop, arg) at the microtask queue's tail. Inline because every
 * promise job and every resumption comes through here: a store and an
 * increment, with the rare growth out of line. */
static inline int vow__microtask_push(vow_loop *loop, vow_task_fn fn, void *arg) {
  vow__microtask_queue *q = &loop->micro;
  if (__builtin_expect(q->tail - q->head == q->cap, 0)) {
    int err = vow__microtask_grow(q);
    if (err) return err;
  }
  q->ring[q->tail & (q->cap - 1)] = (vow__task){fn, arg};
  q->tail++;
  return 0;
}

static inline int vow__microtask_empty(const vow_loop *loop) {
  return loop->micro.head == loop->micro.tail;
}

int vow__post_init(vow_loop *loop);
void vow__post_dispose_all(vow_loop *loop); /* drops posts still queued */
void vow__post_close(vow_loop *loop);
void vow__post_free(vow_loop *loop);

/* One byte per thread; its address identifies the thread. Comparing it is a
 * single TLS-relative load, where uv_thread_self + uv_thread_equal were two
 * calls into libuv on every public call (see BENCHMARKS.md, fix 1). Addresses
 * are unique among live threads; a loop must not outlive its thread anyway. */
extern _Thread_local char vow__thread_mark;

/* Non-zero when the calling thread owns the loop. */
static inline int vow__loop_on_owner(const vow_loop *loop) {
  return loop->owner == &vow__thread_mark;
}

/* Non-zero when new work may be started on loop from the calling thread: the
 * loop exists, is not being freed, and this thread owns it. The check every
 * layer makes before it creates anything on a loop. */
static inline int vow__loop_usable(const vow_loop *loop) {
  return loop && !loop->closing && vow__loop_on_owner(loop);
}

/* The loop's time in ms: libuv's, or the virtual clock's. */
static inline uint64_t vow__loop_now(const vow_loop *loop) {
  return loop->options.virtual_clock ? loop->virtual_now : uv_now(&loop->uv);
}

/* The one entry point from libuv into user code: fn(loop, arg), then a
 * microtask checkpoint. Every timer, immediate and I/O callback goes here.
 * `what` names the macrotask in traces ("timer", "immediate", "io"...). */
void vow__loop_enter_named(vow_loop *loop, const char *what, vow_task_fn fn, void *arg);
static inline void vow__loop_enter(vow_loop *loop, vow_task_fn fn, void *arg) {
  vow__loop_enter_named(loop, "io", fn, arg);
}

/* ---- tracing (trace.c) ------------------------------------------------------
 * Every site is `if (loop->trace) vow__trace_...(...)`: one branch when off. */
uint64_t vow__trace_clock(void);  /* ns, monotonic */
/* cat and name of complete events and internal spans must be static strings. */
void vow__trace_complete(vow_loop *loop, const char *cat, const char *name, uint64_t start_ns);
uint64_t vow__trace_span_begin(vow_loop *loop, const char *cat, const char *name);
void vow__trace_span_end(vow_loop *loop, uint64_t span);
void vow__trace_free(vow_loop *loop);
void vow__trace_from_env(vow_loop *loop); /* VOW_TRACE=FILE */

/* Drains microtasks, then runs the checkpoint hooks, until both are quiet.
 * Hooks run only when one asked to (below): after most timers and immediates
 * nothing is queued, and the checkpoint is then a two-word compare. */
void vow__loop_checkpoint(vow_loop *loop);

/* A layer has work for its checkpoint hook (promise.c: a rejection to report). */
static inline void vow__loop_want_checkpoint(vow_loop *loop) {
  loop->hooks_due = 1;
}

/* Stops the current run: vow_loop_run returns err (the first one wins). */
void vow__loop_fail(vow_loop *loop, int err);

/* Installs a layer's per-loop state. At most once per slot. */
void vow__loop_set_ext(vow_loop *loop, int slot, void *state, vow__ext_free_fn free_fn,
                       vow__checkpoint_fn checkpoint_fn);
/* A layer's look at its state as vow_loop_free begins, before anything is
 * released (queued tasks and timers still there): for reports of what was
 * left (VOW_DUMP_ON=exit). It may read and print, not change or run user code. */
static inline void vow__loop_set_closing(vow_loop *loop, int slot, vow__ext_free_fn fn) {
  loop->ext_closing[slot] = fn;
}
static inline void *vow__loop_ext(const vow_loop *loop, int slot) {
  return loop->ext[slot];
}

/* Declares that queued tasks running fn hold resources that dispose releases.
 * Returns VOW_ENOMEM when the table is full (a programming error in vow). */
int vow__loop_add_disposer(vow_loop *loop, vow_task_fn fn, vow__dispose_fn dispose);
/* Calls the disposer registered for fn, if any. */
void vow__loop_dispose_task(vow_loop *loop, vow_task_fn fn, void *arg);

#endif /* VOW_LOOP_H */
