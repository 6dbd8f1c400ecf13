/*
 * test_abort.c — AbortController/AbortSignal, AbortSignal.timeout/any, and
 * vow_timeout, which aborts the work it gives up on.
 */
#include <criterion/criterion.h>

#include "log.h"
#include "vow.h"

static const vow_loop_options virtual_time = {.virtual_clock = 1}; /* timeouts without sleeping */
LOOP_SUITE(abort, &virtual_time);

static void on_abort(vow_loop *l, vow_value reason, void *label) {
  (void)l;
  char buf[128];
  vow_value_format(reason, buf, sizeof buf);
  LOG("%s:%s", (const char *)label, buf);
}

/* const c = new AbortController(); c.signal.addEventListener('abort', a);
 * c.signal.addEventListener('abort', b); c.abort(); c.abort('again')
 * -> a b run once, reason is an AbortError */
LOOP_TEST(abort, abort_runs_listeners_once_in_order) {
  vow_abort_signal *s = vow_abort_signal_new(loop);
  cr_assert_gt(vow_abort_signal_on(s, on_abort, "a"), 0);
  cr_assert_gt(vow_abort_signal_on(s, on_abort, "b"), 0);
  cr_assert_eq(vow_abort_signal_aborted(s), 0);
  cr_assert_eq(vow_abort(s, vow_undefined()), 1);
  cr_assert_eq(vow_abort(s, vow_string("again")), 0);
  cr_assert(vow_abort_signal_aborted(s));
  cr_assert_eq(vow_error_code(vow_abort_signal_reason(s)), VOW_EABORTED);
  cr_assert_str_eq(LOG_TEXT(), "a:Error(VOW_EABORTED: This operation was aborted) "
                               "b:Error(VOW_EABORTED: This operation was aborted)");
  vow_abort_signal_unref(s);
}

static int64_t second_id;
static vow_abort_signal *removing_signal;
static void remove_second(vow_loop *l, vow_value reason, void *label) {
  on_abort(l, reason, label);
  cr_assert_eq(vow_abort_signal_off(removing_signal, second_id), 1);
}
/* A listener removed by an earlier one during dispatch does not run; one
 * added after the abort never runs. */
LOOP_TEST(abort, removed_and_late_listeners_do_not_run) {
  vow_abort_signal *s = removing_signal = vow_abort_signal_new(loop);
  vow_abort_signal_on(s, remove_second, "first");
  second_id = vow_abort_signal_on(s, on_abort, "second");
  int64_t third = vow_abort_signal_on(s, on_abort, "third");
  cr_assert_eq(vow_abort_signal_off(s, third), 1);
  cr_assert_eq(vow_abort_signal_off(s, third), 0);
  vow_abort(s, vow_string("why"));
  vow_abort_signal_on(s, on_abort, "late");
  cr_assert_str_eq(LOG_TEXT(), "first:\"why\"");
  vow_abort_signal_unref(s);
}

/* AbortSignal.timeout(50): aborts with a TimeoutError after 50 ms, and does
 * not keep the loop alive on its own. */
LOOP_TEST(abort, timeout_signal) {
  vow_abort_signal *t = vow_abort_signal_timeout(loop, 50);
  vow_abort_signal_on(t, on_abort, "t");
  vow_promise_unref(vow_delay(loop, 100, vow_undefined())); /* keeps the loop busy past 50 */
  uint64_t t0 = vow_loop_now(loop);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "t:Error(VOW_ETIMEDOUT: The operation was aborted due to timeout)");
  cr_assert_eq(vow_loop_now(loop) - t0, 100);
  vow_abort_signal_unref(t);

  log_reset();
  vow_abort_signal *alone = vow_abort_signal_timeout(loop, 5000);
  vow_abort_signal_on(alone, on_abort, "alone");
  t0 = vow_loop_now(loop);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_loop_now(loop), t0, "an unreferenced timer does not hold the loop");
  cr_assert_str_eq(LOG_TEXT(), "");
  vow_abort_signal_unref(alone);
}

/* AbortSignal.any([a, b]): follows whichever aborts first, with its reason;
 * over an already aborted signal it is aborted at once. */
LOOP_TEST(abort, any_follows_the_first) {
  vow_abort_signal *a = vow_abort_signal_new(loop), *b = vow_abort_signal_new(loop);
  vow_abort_signal *both[] = {a, b};
  vow_abort_signal *any = vow_abort_signal_any(loop, both, 2);
  vow_abort_signal_on(any, on_abort, "any");
  vow_abort(b, vow_string("b went first"));
  vow_abort(a, vow_string("a"));
  cr_assert_str_eq(LOG_TEXT(), "any:\"b went first\"");
  vow_abort_signal *again = vow_abort_signal_any(loop, both, 2);
  cr_assert(vow_abort_signal_aborted(again));
  cr_assert_str_eq(vow_str(vow_abort_signal_reason(again)), "a");
  vow_abort_signal_unref(again);
  vow_abort_signal_unref(any);
  vow_abort_signal_unref(a);
  vow_abort_signal_unref(b);
}

static vow_value say_value(vow_loop *l, vow_value v, void *label) {
  (void)l;
  char buf[128];
  vow_value_format(v, buf, sizeof buf);
  LOG("%s %s@%llu", (const char *)label, buf, (unsigned long long)vow_loop_now(l));
  return vow_undefined();
}

/* Work that stops when its signal aborts: a 300 ms delay that rejects early. */
typedef struct work {
  vow_promise *p;
  vow_timer timer;
} work;
static void work_done(vow_loop *l, void *arg) {
  (void)l;
  work *w = arg;
  vow_promise_resolve(w->p, vow_string("done"));
}
static void work_abort(vow_loop *l, vow_value reason, void *arg) {
  work *w = arg;
  LOG("work aborted");
  vow_clear_timer(l, w->timer);
  vow_promise_reject(w->p, vow_ref(reason));
}

/* The timeout wins at 100 ms: the result rejects with "Timeout!" and the work
 * is aborted (it stops at 100, not 300); then the work wins at 50 ms and the
 * timeout's timer is cleared (the loop ends at 50, not 100). */
LOOP_TEST(abort, timeout_aborts_the_work_it_gives_up_on) {
  uint64_t t0 = vow_loop_now(loop);
  work w = {vow_promise_new(loop), 0};
  vow_abort_signal *signal = vow_abort_signal_new(loop);
  w.timer = vow_set_timeout(loop, 300, work_done, &w);
  vow_abort_signal_on(signal, work_abort, &w);
  vow_promise *r = vow_timeout(loop, vow_promise_ref(w.p), 100, signal);
  vow_promise_unref(vow_then(r, say_value, say_value, "slow:"));
  vow_promise_unref(vow_catch(w.p, say_value, "work:"));
  cr_assert_eq(vow_loop_run(loop), 0);
  char expect[160];
  snprintf(expect, sizeof expect,
           "work aborted slow: Error(VOW_ETIMEDOUT: Timeout!)@%llu "
           "work: Error(VOW_ETIMEDOUT: Timeout!)@%llu",
           (unsigned long long)t0 + 100, (unsigned long long)t0 + 100);
  cr_assert_str_eq(LOG_TEXT(), expect);
  cr_assert_eq(vow_loop_now(loop) - t0, 100, "the aborted work did not run on to 300 ms");
  vow_promise_unref(r), vow_promise_unref(w.p);
  vow_abort_signal_unref(signal);

  log_reset();
  t0 = vow_loop_now(loop);
  vow_promise *fast = vow_timeout(loop, vow_delay(loop, 50, vow_string("fast")), 100, NULL);
  vow_promise_unref(vow_then(fast, say_value, say_value, "fast:"));
  cr_assert_eq(vow_loop_run(loop), 0);
  snprintf(expect, sizeof expect, "fast: \"fast\"@%llu", (unsigned long long)t0 + 50);
  cr_assert_str_eq(LOG_TEXT(), expect);
  cr_assert_eq(vow_loop_now(loop) - t0, 50, "the timer was cleared");
  vow_promise_unref(fast);
}

/* A promise to race against: rejects when the signal aborts. */
LOOP_TEST(abort, signal_promise_rejects_on_abort) {
  vow_abort_signal *s = vow_abort_signal_new(loop);
  vow_promise *p = vow_abort_signal_promise(s);
  vow_promise_unref(vow_catch(p, say_value, "rejected"));
  vow_abort(s, vow_string("stop"));
  cr_assert_eq(vow_loop_run(loop), 0);
  vow_promise *q = vow_abort_signal_promise(s);
  cr_assert_eq(vow_promise_state(q), VOW_REJECTED);
  vow_promise_unref(vow_catch(q, say_value, "already"));
  cr_assert_eq(vow_loop_run(loop), 0);
  char expect[96];
  snprintf(expect, sizeof expect, "rejected \"stop\"@%llu already \"stop\"@%llu",
           (unsigned long long)vow_loop_now(loop), (unsigned long long)vow_loop_now(loop));
  cr_assert_str_eq(LOG_TEXT(), expect);
  vow_promise_unref(p), vow_promise_unref(q);
  vow_abort_signal_unref(s);
}

LOOP_TEST(abort, bad_arguments) {
  cr_assert_eq(vow_abort(NULL, vow_string("released")), VOW_EINVAL);
  cr_assert_eq(vow_abort_signal_on(NULL, on_abort, NULL), VOW_EINVAL);
  cr_assert_null(vow_abort_signal_new(NULL));
  cr_assert_null(vow_timeout(loop, NULL, 10, NULL));
  vow_abort_signal_unref(NULL);
}
