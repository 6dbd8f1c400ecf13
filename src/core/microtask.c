/*
 * microtask.c — the microtask queue: queueMicrotask and the promise jobs.
 *
 * A growable ring of (function, argument). Pushing is a store and an increment;
 * the ring doubles when full and never shrinks, so once a program has reached
 * its peak depth the queue never allocates again.
 */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/loop.h"

int vow__microtask_grow(vow__microtask_queue *q) {
  uint32_t new_cap = q->cap ? q->cap * 2 : 256;
  if (new_cap == 0) return VOW_ENOMEM; /* 2^32 tasks: give up */
  vow__task *ring = vow__malloc((size_t)new_cap * sizeof *ring);
  if (!ring) return VOW_ENOMEM;
  /* Unwrap: the oldest task goes to slot 0. */
  uint32_t count = q->tail - q->head;
  for (uint32_t i = 0; i < count; i++) ring[i] = q->ring[(q->head + i) & (q->cap - 1)];
  vow__free(q->ring);
  q->ring = ring;
  q->cap = new_cap;
  q->head = 0;
  q->tail = count;
  return 0;
}

static __attribute__((noinline)) int queue_in_context(vow_loop *loop, vow_task_fn fn, void *arg) {
  if (vow__context_wrap(loop, &fn, &arg, 0) != 0) return VOW_ENOMEM;
  int err = vow__microtask_push(loop, fn, arg);
  if (err) vow__context_unwrap_drop(loop, fn, arg);
  return err;
}

int vow_queue_microtask(vow_loop *loop, vow_task_fn fn, void *arg) {
  if (!loop || !fn) return VOW_EINVAL;
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  if (loop->closing) return VOW_ECLOSING;
  /* queueMicrotask runs its callback in the caller's async context. */
  if (__builtin_expect(loop->context != NULL, 0)) return queue_in_context(loop, fn, arg);
  return vow__microtask_push(loop, fn, arg);
}

/* Runs tasks until the queue is empty, including those queued meanwhile.
 * The slot is read before the task runs because the task may grow the ring. */
void vow__microtask_drain(vow_loop *loop) {
  vow__microtask_queue *q = &loop->micro;
  while (q->head != q->tail) {
    vow__task t = q->ring[q->head & (q->cap - 1)];
    q->head++;
    t.fn(loop, t.arg);
  }
}

/* At vow_loop_free: nothing runs, but internal tasks release what they hold.
 * Disposing may queue nothing (the loop is closing), so one pass suffices. */
void vow__microtask_dispose_all(vow_loop *loop) {
  vow__microtask_queue *q = &loop->micro;
  while (q->head != q->tail) {
    vow__task t = q->ring[q->head & (q->cap - 1)];
    q->head++;
    vow__loop_dispose_task(loop, t.fn, t.arg);
  }
}

void vow__microtask_free(vow__microtask_queue *q) {
  vow__free(q->ring);
  memset(q, 0, sizeof *q);
}
