/*
 * delay.c — timers that settle promises: Node's timers/promises setTimeout.
 * The bridge between timer.c (which knows tasks) and promise.c.
 *
 * A delay made inside a cancel scope (async/scope.c) watches it through the
 * loop's cancel hook (core/context.h): when the scope is cancelled, the timer
 * is cleared and the promise rejects with the scope's reason, as Node's
 * setTimeout(ms, value, {signal}) rejects when its signal aborts.
 */
#include "core/alloc.h"
#include "core/context.h"
#include "promise/promise.h"

typedef struct delay {
  vow_promise *promise;
  vow_value value;
  int reject;
  vow_timer timer;
  void *scope;      /* the cancel scope watched (a reference), or NULL */
  int64_t watch;
  int cancelled;    /* the scope was cancelled before the timer was set */
} delay;

static void delay_free(vow_loop *loop, delay *d) {
  vow__cancel_unwatch(loop, d->scope, d->watch);
  vow__pool_free(&loop->pool, d, sizeof *d);
}

static void delay_fire(vow_loop *loop, void *arg) {
  delay *d = arg;
  vow_promise *p = d->promise;
  if (d->reject) vow_promise_reject(p, d->value);
  else vow_promise_resolve(p, d->value);
  delay_free(loop, d);
  vow_promise_unref(p);
}

static void delay_dispose(vow_loop *loop, void *arg) {
  delay *d = arg;
  vow_unref(d->value);
  vow_promise_unref(d->promise);
  delay_free(loop, d);
}

/* The scope was cancelled: the delay stops and rejects with its reason. */
static void delay_cancelled(vow_loop *loop, vow_value reason, void *arg) {
  delay *d = arg;
  vow_promise *p = d->promise;
  if (!d->timer) { /* inside vow__cancel_watch: delay_new cleans up */
    d->cancelled = 1;
    vow_promise_reject(p, vow_ref(reason));
    return;
  }
  vow_clear_timer(loop, d->timer);
  vow_unref(d->value);
  vow__cancel_unwatch(loop, d->scope, -1); /* ran: only the reference is left */
  d->scope = NULL;
  vow__pool_free(&loop->pool, d, sizeof *d);
  vow_promise_reject(p, vow_ref(reason));
  vow_promise_unref(p);
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
  *d = (delay){vow_promise_ref(p), value, reject, 0, NULL, 0, 0};
  P_TAG(p) = P_TAG_DELAY;
  /* (0 when there is no scope, or it is cancelled already: then
   * delay_cancelled has rejected p.) */
  d->watch = vow__cancel_watch(loop, delay_cancelled, d, &d->scope);
  vow_timer t = d->watch < 0 || d->cancelled ? d->watch : vow_set_timeout(loop, ms, delay_fire, d);
  if (t <= 0) {
    /* ms out of range, or out of memory (a delay that cannot watch its scope
     * fails rather than outlive it): the promise says so */
    delay_dispose(loop, d);
    if (t < 0) vow_promise_reject(p, vow_error((int)t, vow_strerror((int)t)));
    return p;
  }
  d->timer = t;
  return p;
}

vow_promise *vow_delay(vow_loop *loop, uint64_t ms, vow_value value) {
  return delay_new(loop, ms, value, 0);
}

vow_promise *vow_delay_reject(vow_loop *loop, uint64_t ms, vow_value reason) {
  return delay_new(loop, ms, reason, 1);
}
