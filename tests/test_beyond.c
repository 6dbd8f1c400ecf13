/*
 * test_beyond.c — what JavaScript reaches for npm to get: a concurrency-
 * limited map, retry with backoff, channels, and a race that cancels losers.
 * The loop uses the virtual clock, so timings are exact and instant.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "log.h"
#include "vow.h"

static vow_loop *loop;
static uint64_t t0;

static void setup(void) {
  log_reset();
  vow_loop_options o = {.virtual_clock = 1};
  cr_assert_eq(vow_loop_new(&loop, &o), 0);
  t0 = vow_loop_now(loop);
}
static void teardown(void) {
  vow_loop_free(loop);
}
TestSuite(beyond, .init = setup, .fini = teardown);

static vow_value swallow(vow_loop *l, vow_value v, void *ctx) {
  (void)l, (void)v, (void)ctx;
  return vow_undefined();
}
/* p.catch(() => {}): we inspect the rejection ourselves. */
static vow_promise *handled(vow_promise *p) {
  vow_promise_unref(vow_catch(p, swallow, NULL));
  return p;
}

static unsigned long long now_ms(void) { return (unsigned long long)(vow_loop_now(loop) - t0); }

/* ---- vow_map ---- */

typedef struct job {
  vow_promise *p;
  vow_timer timer;
  int64_t listener;
  vow_abort_signal *signal;
  size_t index;
} job;
static int in_flight, max_in_flight;

static void job_done(vow_loop *l, void *arg) {
  (void)l;
  job *j = arg;
  in_flight--;
  LOG("done%zu@%llu", j->index, now_ms());
  vow_abort_signal_off(j->signal, j->listener);
  vow_promise_resolve(j->p, vow_int((int64_t)j->index * 10));
  vow_promise_unref(j->p);
  free(j);
}
static void job_aborted(vow_loop *l, vow_value reason, void *arg) {
  job *j = arg;
  in_flight--;
  LOG("aborted%zu@%llu", j->index, now_ms());
  vow_clear_timer(l, j->timer);
  vow_promise_reject(j->p, vow_ref(reason));
  vow_promise_unref(j->p);
  free(j);
}
/* Item i takes (i % 3 + 1) * 10 ms; item 4 fails when asked to. */
static vow_promise *start_job(vow_loop *l, vow_value item, size_t index, vow_abort_signal *signal,
                              void *fail_index) {
  if (fail_index && (size_t)(uintptr_t)fail_index == index + 1) {
    LOG("fail%zu@%llu", index, now_ms());
    return vow_delay_reject(l, 5, vow_string("job failed"));
  }
  job *j = malloc(sizeof *j);
  *j = (job){vow_promise_new(l), 0, 0, signal, index};
  if (++in_flight > max_in_flight) max_in_flight = in_flight;
  LOG("start%zu@%llu", index, now_ms());
  j->timer = vow_set_timeout(l, (uint64_t)vow_as_int(item), job_done, j);
  j->listener = vow_abort_signal_on(signal, job_aborted, j);
  return vow_promise_ref(j->p);
}

static vow_value *durations(size_t n) {
  static vow_value items[16];
  for (size_t i = 0; i < n; i++) items[i] = vow_int((int64_t)(i % 3 + 1) * 10);
  return items;
}

/* pMap(items, fn, {concurrency: 2}): never more than 2 in flight, results in
 * input order although they finish out of order. */
LOOP_TEST(beyond, map_limits_concurrency_and_keeps_order) {
  in_flight = max_in_flight = 0;
  vow_map_options o = {.concurrency = 2};
  vow_promise *m = vow_map(loop, durations(5), 5, start_job, NULL, &o);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(max_in_flight, 2);
  char out[128];
  vow_value_format(vow_promise_result(m), out, sizeof out);
  cr_assert_str_eq(out, "[0,10,20,30,40]");
  cr_assert_str_eq(LOG_TEXT(), "start0@0 start1@0 done0@10 start2@10 done1@20 start3@20 "
                               "done3@30 start4@30 done2@40 done4@50");
  vow_promise_unref(m);
}

/* Fail fast: item 2 fails at 5 ms; the map rejects, nothing new starts, and
 * the work in flight is aborted through its signal. */
LOOP_TEST(beyond, map_fails_fast_and_aborts_work_in_flight) {
  in_flight = max_in_flight = 0;
  vow_map_options o = {.concurrency = 3};
  vow_promise *m = handled(vow_map(loop, durations(6), 6, start_job, (void *)(uintptr_t)3, &o));
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(m), VOW_REJECTED);
  cr_assert_str_eq(vow_str(vow_promise_result(m)), "job failed");
  cr_assert_str_eq(LOG_TEXT(), "start0@0 start1@0 fail2@0 aborted0@5 aborted1@5");
  cr_assert_eq(in_flight, 0);
  vow_promise_unref(m);
}

/* Settled mode collects every outcome, like allSettled. */
LOOP_TEST(beyond, map_settled_mode_collects_every_outcome) {
  vow_map_options o = {.concurrency = 2, .settled = 1};
  vow_promise *m = vow_map(loop, durations(3), 3, start_job, (void *)(uintptr_t)2, &o);
  cr_assert_eq(vow_loop_run(loop), 0);
  char out[128];
  vow_value_format(vow_promise_result(m), out, sizeof out);
  cr_assert_str_eq(out, "[{fulfilled:0},{rejected:\"job failed\"},{fulfilled:20}]");
  vow_promise_unref(m);
  vow_promise *empty = vow_map(loop, NULL, 0, start_job, NULL, NULL);
  cr_assert_eq(vow_promise_state(empty), VOW_FULFILLED);
  vow_promise_unref(empty);
}

/* ---- vow_retry ---- */

typedef struct flaky {
  unsigned fail_times;
  unsigned calls;
} flaky;
static vow_promise *flaky_attempt(vow_loop *l, unsigned attempt, vow_abort_signal *signal, void *ctx) {
  (void)signal;
  flaky *f = ctx;
  f->calls++;
  LOG("try%u@%llu", attempt, now_ms());
  if (attempt <= f->fail_times) return vow_rejected(l, vow_error(attempt == 9 ? 400 : 503, "unavailable"));
  return vow_resolved(l, vow_string("ok"));
}

/* Fails twice, then succeeds: delays 100 then 200 ms (no jitter). */
LOOP_TEST(beyond, retry_backs_off_exponentially) {
  flaky f = {2, 0};
  vow_retry_options o = {.max_attempts = 5, .initial_delay_ms = 100, .factor = 2};
  vow_promise *r = vow_retry(loop, flaky_attempt, &f, &o);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(vow_str(vow_promise_result(r)), "ok");
  cr_assert_str_eq(LOG_TEXT(), "try1@0 try2@100 try3@300");
  vow_promise_unref(r);
}

static int only_503(vow_value reason, void *ctx) {
  (void)ctx;
  return vow_error_code(reason) == 503;
}

/* Gives up after max_attempts with the last reason; a predicate can stop it
 * sooner; a deadline stops it before a wait that would pass it. */
LOOP_TEST(beyond, retry_gives_up) {
  flaky f = {10, 0};
  vow_retry_options o = {.max_attempts = 3, .initial_delay_ms = 10};
  vow_promise *r = handled(vow_retry(loop, flaky_attempt, &f, &o));
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(r), VOW_REJECTED);
  cr_assert_eq(vow_error_code(vow_promise_result(r)), 503);
  cr_assert_eq(f.calls, 3);
  vow_promise_unref(r);

  flaky d = {10, 0};
  vow_retry_options od = {.max_attempts = 10, .initial_delay_ms = 100, .deadline_ms = 250,
                          .retryable = only_503};
  log_reset();
  t0 = vow_loop_now(loop);
  r = handled(vow_retry(loop, flaky_attempt, &d, &od));
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "try1@0 try2@100", "the third would start at 300 > 250");
  vow_promise_unref(r);
}

static void abort_later(vow_loop *l, void *signal) {
  (void)l;
  vow_abort(signal, vow_string("user gave up"));
}

/* Aborting the signal stops the retries during a backoff wait, at once. */
LOOP_TEST(beyond, retry_stops_when_aborted) {
  flaky f = {10, 0};
  vow_abort_signal *s = vow_abort_signal_new(loop);
  vow_retry_options o = {.max_attempts = 10, .initial_delay_ms = 1000, .signal = s};
  vow_promise *r = handled(vow_retry(loop, flaky_attempt, &f, &o));
  vow_set_timeout(loop, 50, abort_later, s);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(vow_str(vow_promise_result(r)), "user gave up");
  cr_assert_eq(now_ms(), 50, "the pending backoff timer was cleared");
  vow_promise_unref(r);
  vow_abort_signal_unref(s);
}

/* ---- channels ---- */

static vow_value producer(vow_loop *l, void *ch) {
  for (int i = 1; i <= 5; i++) {
    vow_await(vow_channel_send(ch, vow_int(i)), NULL); /* waits while the buffer is full */
    LOG("sent%d@%llu", i, now_ms());
  }
  vow_channel_close(ch);
  (void)l;
  return vow_undefined();
}
static vow_value consumer(vow_loop *l, void *ch) {
  vow_for_await it;
  vow_for_await_gen(&it, vow_channel_iter(ch));
  VOW_FOR_AWAIT(&it, v) {
    LOG("got%lld@%llu", (long long)vow_as_int(v), now_ms());
    vow_await(vow_delay(l, 10, vow_undefined()), NULL); /* a slow consumer */
  }
  vow_for_await_end(&it, NULL);
  LOG("closed");
  return vow_undefined();
}

/* A bounded channel: the producer is held back by the slow consumer. */
LOOP_TEST(beyond, channel_applies_backpressure) {
  vow_channel *ch = vow_channel_new(loop, 2);
  vow_promise_unref(vow_async(loop, producer, ch));
  vow_promise_unref(vow_async(loop, consumer, ch));
  cr_assert_eq(vow_loop_run(loop), 0);
  /* Two fit in the buffer; each later send completes only when the consumer
   * has taken one (sent4 waits for got2's turn at 10 ms, sent5 for 20 ms). */
  cr_assert_str_eq(LOG_TEXT(), "sent1@0 sent2@0 sent3@0 got1@0 sent4@10 got2@10 sent5@20 got3@20 "
                               "got4@30 got5@40 closed");
  vow_promise *late = vow_channel_send(ch, vow_int(9));
  cr_assert_eq(vow_promise_state(late), VOW_REJECTED);
  handled(late);
  vow_promise_unref(late);
  vow_channel_unref(ch);
  vow_loop_run(loop);
}

/* ---- race with cancellation ---- */

/* The fast one wins at 10 ms; the slow one's signal is aborted then, so it
 * stops instead of running on to 100 ms. */
LOOP_TEST(beyond, race_abort_cancels_the_losers) {
  vow_abort_signal *s[2] = {vow_abort_signal_new(loop), vow_abort_signal_new(loop)};
  vow_value items[2] = {vow_int(100), vow_int(10)};
  vow_value work[2];
  for (size_t i = 0; i < 2; i++) work[i] = vow_promise_value(start_job(loop, items[i], i, s[i], NULL));
  vow_promise *r = vow_race_abort(loop, work, s, 2);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_as_int(vow_promise_result(r)), 10);
  cr_assert_str_eq(LOG_TEXT(), "start0@0 start1@0 done1@10 aborted0@10");
  cr_assert_eq(now_ms(), 10);
  cr_assert(vow_abort_signal_aborted(s[0]));
  cr_assert_not(vow_abort_signal_aborted(s[1]));
  vow_promise_unref(r);
  vow_abort_signal_unref(s[0]);
  vow_abort_signal_unref(s[1]);
}
