/*
 * retry.c — retries with exponential backoff and jitter (npm's p-retry).
 *
 * The retry loop is an async function: attempt, await, decide, sleep, again.
 * The sleep is abortable (its timer is cleared when the signal aborts), so an
 * abandoned retry lets its loop end at once.
 */
#include <stdlib.h>

#include "core/alloc.h"
#include "promise/promise.h"

typedef struct retry {
  vow_attempt_fn attempt;
  void *ctx;
  vow_retry_options o;
  vow_abort_signal *signal; /* ours: follows the caller's, given to attempts */
  uint64_t rng;
  int *started;             /* set by the body as it starts (see vow_retry) */
} retry;

/* xorshift64*: a jitter source of our own, seeded per retry. */
static double next_unit(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return (double)((*s * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

/* ---- an abortable sleep ----------------------------------------------------------- */

typedef struct sleep {
  vow_promise *done;
  vow_timer timer;
  int64_t listener;
} sleep_t;

static void sleep_over(vow_loop *loop, void *arg) {
  (void)loop;
  sleep_t *s = arg;
  s->timer = 0;
  vow_promise_resolve(s->done, vow_undefined());
}

static void sleep_aborted(vow_loop *loop, vow_value reason, void *arg) {
  sleep_t *s = arg;
  if (s->timer > 0) vow_clear_timer(loop, s->timer);
  s->timer = 0;
  s->listener = 0;
  vow_promise_reject(s->done, vow_ref(reason));
}

/* Sleeps ms, or until the signal aborts (then rejects with its reason).
 * Without its timer or its listener nothing would end the sleep (or not
 * when aborted): that is an error, not a sleep. */
static int sleep_ms(vow_loop *loop, uint64_t ms, vow_abort_signal *signal, vow_value *reason) {
  sleep_t s = {vow_promise_new(loop), 0, 0};
  s.timer = s.done ? vow_set_timeout(loop, ms, sleep_over, &s) : VOW_ENOMEM;
  s.listener = s.timer > 0 ? vow_abort_signal_on(signal, sleep_aborted, &s) : 0;
  if (s.timer < 0 || s.listener < 0) {
    int err = s.timer < 0 ? (int)s.timer : (int)s.listener;
    if (s.timer > 0) vow_clear_timer(loop, s.timer);
    vow_promise_unref(s.done);
    *reason = vow_error(err, "retry: no timer for the wait before the next attempt");
    return err;
  }
  int rc = vow_await(vow_promise_ref(s.done), reason);
  if (s.listener > 0) vow_abort_signal_off(signal, s.listener);
  if (s.timer > 0) vow_clear_timer(loop, s.timer);
  vow_promise_unref(s.done);
  return rc;
}

/* ---- the loop of attempts ------------------------------------------------------------ */

/* initial * factor^(attempt - 1), capped, then jittered. */
static uint64_t backoff(retry *r, unsigned attempt) {
  double d = (double)r->o.initial_delay_ms;
  for (unsigned i = 1; i < attempt && d < (double)r->o.max_delay_ms; i++) d *= r->o.factor;
  if (d > (double)r->o.max_delay_ms) d = (double)r->o.max_delay_ms;
  if (r->o.jitter > 0) d *= 1.0 - r->o.jitter * next_unit(&r->rng);
  return (uint64_t)d;
}

static void retry_free(retry *r) {
  vow_abort_signal_unref(r->signal);
  vow__free(r);
}

static vow_value give_up(retry *r, vow_value reason) {
  retry_free(r);
  return vow_throw(reason);
}

static vow_value retry_body(vow_loop *loop, void *arg) {
  retry *r = arg;
  *r->started = 1; /* from here on the body owns r */
  r->started = NULL;
  uint64_t started = vow_loop_now(loop);
  for (unsigned attempt = 1;; attempt++) {
    vow_value v;
    if (vow_abort_signal_aborted(r->signal)) return give_up(r, vow_ref(vow_abort_signal_reason(r->signal)));
    if (vow_await(r->attempt(loop, attempt, r->signal, r->ctx), &v) == 0) {
      retry_free(r);
      return v;
    }
    if (attempt >= r->o.max_attempts || (r->o.retryable && !r->o.retryable(v, r->ctx)))
      return give_up(r, v);
    uint64_t wait = backoff(r, attempt);
    if (r->o.deadline_ms && vow_loop_now(loop) + wait - started > r->o.deadline_ms) return give_up(r, v);
    vow_value aborted;
    if (sleep_ms(loop, wait, r->signal, &aborted) != 0) {
      vow_unref(v);
      return give_up(r, aborted);
    }
    vow_unref(aborted);
    vow_unref(v);
  }
}

vow_promise *vow_retry(vow_loop *loop, vow_attempt_fn attempt, void *ctx,
                       const vow_retry_options *options) {
  if (!attempt) return NULL;
  retry *r = vow__calloc(1, sizeof *r);
  if (!r) return NULL;
  if (options) r->o = *options;
  if (!r->o.max_attempts) r->o.max_attempts = 3;
  if (!r->o.initial_delay_ms) r->o.initial_delay_ms = 100;
  if (r->o.factor <= 0) r->o.factor = 2;
  if (!r->o.max_delay_ms) r->o.max_delay_ms = 30000;
  if (r->o.jitter < 0) r->o.jitter = 0;
  if (r->o.jitter > 1) r->o.jitter = 1;
  r->attempt = attempt;
  r->ctx = ctx;
  r->rng = uv_hrtime() | 1;
  r->signal = r->o.signal ? vow_abort_signal_any(loop, &r->o.signal, 1) : vow_abort_signal_new(loop);
  r->o.signal = NULL; /* the caller's is followed through ours */
  if (!r->signal) {
    vow__free(r);
    return NULL;
  }
  int started = 0;
  r->started = &started;
  vow_async_options ao = {.name = "retry"};
  vow_promise *p = vow_async_ex(loop, retry_body, r, &ao);
  if (!started) retry_free(r); /* no coroutine could be made: r is still ours */
  return p;
}
