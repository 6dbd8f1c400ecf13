/*
 * context.c — running work in the async context it was started in (see
 * context.h; the contexts themselves are async/context.c's).
 *
 * Timers and queued microtasks keep a task as a function and an argument.
 * One scheduled while a context is current is wrapped in an in_context
 * record that holds the context too, made only then: a timer or microtask
 * costs nothing more when no context is in use.
 */
#include "core/alloc.h"
#include "core/context.h"

void vow__context_run(vow_loop *loop, vow__context *c, vow_task_fn fn, void *arg) {
  vow__context *outer = vow__context_swap(loop, c);
  fn(loop, arg);
  /* fn may have bound values (the context is then a newer one, which holds
   * c): whatever is current now was ours for the while. */
  vow__context_release(vow__context_swap(loop, outer));
}

typedef struct in_context {
  vow_task_fn fn;
  void *arg;
  vow__context *context;  /* a reference */
  int repeat;             /* an interval's: kept until the timer is cleared */
} in_context;

static void in_context_free(vow_loop *loop, in_context *w) {
  vow__context_release(w->context);
  vow__pool_free(&loop->pool, w, sizeof *w);
}

static void in_context_run(vow_loop *loop, void *arg) {
  in_context *w = arg;
  vow__context *c = w->context;
  vow_task_fn fn = w->fn;
  void *fn_arg = w->arg;
  if (w->repeat) c->refs++; /* the record keeps its own */
  else vow__pool_free(&loop->pool, w, sizeof *w);
  vow__context_run(loop, c, fn, fn_arg);
}

/* Teardown: what the wrapped task holds is released by its own disposer. */
static void in_context_dispose(vow_loop *loop, void *arg) {
  in_context *w = arg;
  vow__loop_dispose_task(loop, w->fn, w->arg);
  in_context_free(loop, w);
}

int vow__context_wrap(vow_loop *loop, vow_task_fn *fn, void **arg, int repeat) {
  if (!loop->context) return 0;
  in_context *w = vow__pool_alloc(&loop->pool, sizeof *w);
  if (!w || vow__loop_add_disposer(loop, in_context_run, in_context_dispose) != 0) {
    if (w) vow__pool_free(&loop->pool, w, sizeof *w);
    return VOW_ENOMEM;
  }
  *w = (in_context){*fn, *arg, vow__context_capture(loop), repeat};
  *fn = in_context_run;
  *arg = w;
  return 0;
}

void vow__context_unwrap_drop(vow_loop *loop, vow_task_fn fn, void *arg) {
  if (fn == in_context_run) in_context_free(loop, arg);
}
