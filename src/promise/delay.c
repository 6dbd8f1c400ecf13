/*
 * delay.c — timers that settle promises: Node's timers/promises setTimeout.
 * The bridge between timer.c (which knows tasks) and promise.c.
 */
#include "core/alloc.h"
#include "promise/promise.h"

typedef struct delay {
  vow_promise *promise;
  vow_value value;
  int reject;
} delay;

static void delay_fire(vow_loop *loop, void *arg) {
  delay *d = arg;
  vow_promise *p = d->promise;
  if (d->reject) vow_promise_reject(p, d->value);
  else vow_promise_resolve(p, d->value);
  vow__pool_free(&loop->pool, d, sizeof *d);
  vow_promise_unref(p);
}

static void delay_dispose(vow_loop *loop, void *arg) {
  delay *d = arg;
  vow_unref(d->value);
  vow_promise_unref(d->promise);
  vow__pool_free(&loop->pool, d, sizeof *d);
}

static vow_promise *delay_new(vow_loop *loop, uint64_t ms, vow_value value, int reject) {
  vow_promise *p = vow_promise_new(loop);
  delay *d = p ? vow__pool_alloc(&loop->pool, sizeof *d) : NULL;
  if (!d || vow__loop_add_disposer(loop, delay_fire, delay_dispose) != 0) {
    if (d) vow__pool_free(&loop->pool, d, sizeof *d);
    vow_promise_unref(p);
    vow_unref(value);
    return NULL;
  }
  *d = (delay){vow_promise_ref(p), value, reject};
  vow_timer t = vow_set_timeout(loop, ms, delay_fire, d);
  if (t < 0) { /* ms out of range, or out of memory: the promise says so */
    delay_dispose(loop, d);
    vow_promise_reject(p, vow_error((int)t, vow_strerror((int)t)));
  }
  return p;
}

vow_promise *vow_delay(vow_loop *loop, uint64_t ms, vow_value value) {
  return delay_new(loop, ms, value, 0);
}

vow_promise *vow_delay_reject(vow_loop *loop, uint64_t ms, vow_value reason) {
  return delay_new(loop, ms, reason, 1);
}
