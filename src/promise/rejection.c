/*
 * rejection.c — unhandled-rejection tracking, as Node.js does it.
 *
 * V8 tells Node when a promise is rejected with no handler ("reject") and when
 * a handler is attached to such a promise later ("handle"); Node keeps the
 * candidates in rejection order and, once the microtask queue has drained,
 * reports those still unhandled (processPromiseRejections). vow does the same:
 * vow__rejection_track appends to a list, vow__rejection_handled clears the
 * promise's P_TRACKED flag, and the loop's checkpoint hook reports.
 */
#include <stdlib.h>

#include "core/alloc.h"
#include "promise/promise.h"

void vow__rejection_track(vow_promise *p) {
  vow__promise_state *st = vow__loop_ext(p->loop, VOW__EXT_PROMISE);
  if (st->rejected_len == st->rejected_cap) {
    size_t cap = st->rejected_cap ? st->rejected_cap * 2 : 16;
    vow_promise **list = vow__realloc(st->rejected, cap * sizeof *list);
    if (!list) { /* it cannot be remembered for the report: stop the run rather than let it pass unseen */
      vow__loop_fail(p->loop, VOW_ENOMEM);
      return;
    }
    st->rejected = list;
    st->rejected_cap = cap;
  }
  st->rejected[st->rejected_len++] = vow_promise_ref(p);
  P_FLAGS(p) |= P_TRACKED;
  vow__loop_want_checkpoint(p->loop);
}

void vow__rejection_handled(vow_promise *p) {
  P_FLAGS(p) &= (uint8_t)~P_TRACKED;
}

static void report_default(vow_loop *loop, vow_promise *p, vow_value reason, void *data) {
  (void)p, (void)data;
  fputs("vow: unhandled rejection: ", stderr);
  vow_value_print(stderr, reason);
  fputc('\n', stderr);
  vow__loop_fail(loop, VOW_EUNHANDLED);
}

/* Reports the candidates present when it starts (those rejected by a report
 * wait for the next round, after microtasks drain again: tracking them asks
 * the loop for another checkpoint). */
void vow__rejection_checkpoint(vow_loop *loop, void *state) {
  vow__promise_state *st = state;
  size_t n = st->rejected_len;
  if (n == 0) return;
  vow_promise **batch = st->rejected;
  st->rejected = NULL;
  st->rejected_len = st->rejected_cap = 0;
  for (size_t i = 0; i < n; i++) {
    vow_promise *p = batch[i];
    if ((P_FLAGS(p) & P_TRACKED) && !loop->closing) {
      P_FLAGS(p) &= (uint8_t)~P_TRACKED;
      vow_rejection_fn report = st->hook ? st->hook : report_default;
      report(loop, p, p->u.result, st->hook_data);
    }
    P_FLAGS(p) &= (uint8_t)~P_TRACKED;
    vow_promise_unref(p);
  }
  vow__free(batch);
}

int vow_on_unhandled_rejection(vow_loop *loop, vow_rejection_fn fn, void *data) {
  if (!loop) return VOW_EINVAL;
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  vow__promise_state *st = vow__promise_state_get(loop);
  if (!st) return VOW_ENOMEM;
  st->hook = fn;
  st->hook_data = fn ? data : NULL;
  return 0;
}
