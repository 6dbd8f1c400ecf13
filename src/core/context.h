/*
 * context.h — what runs on behalf of whom (internal): the async context of
 * the running code, and the hook through which cancel scopes reach below
 * the async layer.
 *
 * The async context (AsyncLocalStorage's store) is an opaque, reference-
 * counted object: the loop knows nothing of what it holds (async/context.c
 * does). loop->context is the context of the code running now, and the loop
 * owns one reference to it. Whatever starts work for later captures the
 * current context (a reference) and swaps it in while that work runs: an
 * async function's frame at each resumption, a promise reaction, a timer.
 * A NULL context is the common case and costs a load and a branch.
 *
 * Cancel scopes (async/scope.c) live in async frames, above the layers whose
 * waits they must stop (timers that settle promises, in promise/delay.c).
 * Those layers watch "the innermost cancel scope of the running code"
 * through loop->cancel_hook, which the async layer installs when the first
 * scope opens; until then every watch is a NULL check.
 */
#ifndef VOW_CONTEXT_H
#define VOW_CONTEXT_H

#include "core/loop.h"

struct vow__context {
  uint32_t refs;
  void (*destroy)(struct vow__context *c); /* the last reference went */
};

/* A new reference to the current context (NULL when there is none). */
static inline vow__context *vow__context_capture(const vow_loop *loop) {
  vow__context *c = loop->context;
  if (c) c->refs++;
  return c;
}

static inline void vow__context_release(vow__context *c) {
  if (c && --c->refs == 0) c->destroy(c);
}

/* Makes c (a reference, taken) the current context and returns the one it
 * replaces (the loop's reference, now the caller's): the caller swaps that
 * one back in afterwards, and releases or keeps what it gets back. */
static inline vow__context *vow__context_swap(vow_loop *loop, vow__context *c) {
  vow__context *old = loop->context;
  loop->context = c;
  return old;
}

/* Runs fn(loop, arg) in context c (a reference, taken), then restores the
 * context that was current. For jobs and timer callbacks. */
void vow__context_run(vow_loop *loop, vow__context *c, vow_task_fn fn, void *arg);

/* When a context is current, wraps the task *fn(*arg) so that it runs in
 * it (a capture); else leaves it. repeat: the wrapped task may run more than
 * once (an interval): the wrap stays until vow__context_unwrap_drop. Returns
 * 0 or VOW_ENOMEM (the task is then as it was). */
int vow__context_wrap(vow_loop *loop, vow_task_fn *fn, void **arg, int repeat);
/* A task that may have been wrapped is dropped without running (a timer
 * cleared): releases the wrap, not what the task's own arg holds. */
void vow__context_unwrap_drop(vow_loop *loop, vow_task_fn fn, void *arg);

/* The cancel hook. watch runs fn(loop, reason, data) once when the innermost
 * cancel scope of the running code is cancelled — before returning, when it
 * is cancelled already — and returns:
 *   0      no scope (nothing watched), or fn has run already;
 *   > 0    an id; *scope is a reference that unwatch takes;
 *   < 0    VOW_ENOMEM (nothing watched).
 * unwatch stops the watch (when it has not run) and releases *scope. */
typedef struct vow__cancel_hook {
  int64_t (*watch)(vow_loop *loop, vow_abort_fn fn, void *data, void **scope);
  void (*unwatch)(void *scope, int64_t id);
} vow__cancel_hook;

static inline int64_t vow__cancel_watch(vow_loop *loop, vow_abort_fn fn, void *data,
                                        void **scope) {
  *scope = NULL;
  return loop->cancel_hook ? loop->cancel_hook->watch(loop, fn, data, scope) : 0;
}

static inline void vow__cancel_unwatch(vow_loop *loop, void *scope, int64_t id) {
  if (scope) loop->cancel_hook->unwatch(scope, id);
}

#endif
