/*
 * context.c — running work in the async context it was started in (see
 * context.h; the contexts themselves are async/context.c's).
 */
#include "core/context.h"

void vow__context_run(vow_loop *loop, vow__context *c, vow_task_fn fn, void *arg) {
  vow__context *outer = vow__context_swap(loop, c);
  fn(loop, arg);
  /* fn may have bound values (the context is then a newer one, which holds
   * c): whatever is current now was ours for the while. */
  vow__context_release(vow__context_swap(loop, outer));
}
