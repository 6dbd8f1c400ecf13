/*
 * test_faults.c — allocation failure at every allocation site of a scenario.
 *
 * Each scenario below is run again and again with an allocator that fails
 * the 1st allocation, then the 2nd, and so on until a run sees no failure
 * (FAULT_ONCE), and then with memory running out for good from the 1st, the
 * 2nd... allocation on (FAULT_FROM). Every run must end — with a result, a
 * rejection or an error code, never with its async function forever pending
 * — without a crash and with nothing leaked: every block the hook gave is
 * given back (fault_live), no pooled object outlives its loop, and ASan
 * builds check the heap too.
 *
 * Between them the scenarios fail every allocation site of src/ outside the
 * HTTP files (tools/coverage/fault_sites.sh shows it; the ctest fault_sites
 * asserts it): the first touches most of vow (promises, combinators, async
 * functions and generators, channels, map, timeout); the others, timers
 * (intervals, immediates over several blocks, unref, enough timeouts for the
 * record slab to take huge-page groups), the trace (vow_trace_start and
 * VOW_TRACE), the thread crossings (vow_work, vow_loop_post, threadsafe
 * settling), cancellation (listeners, any, timeout signals, race_abort),
 * retry, a rendezvous channel, a generator asked twice, the pool's growth to
 * its huge chunks, and the allocation wrappers themselves.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/pool.h"
#include "fault_scenarios.h"
#include "log.h"
#include "vow.h"

static vow_value upper(vow_loop *l, vow_value v, void *ctx) {
  (void)l, (void)ctx;
  return vow_stringf("%s!", vow_str(v));
}
static vow_value ignore(vow_loop *l, vow_value v, void *ctx) {
  (void)l, (void)v, (void)ctx;
  return vow_undefined();
}
static vow_value nothing(vow_loop *l, void *ctx) {
  (void)l, (void)ctx;
  return vow_undefined();
}
static vow_value numbers(vow_loop *l, vow_asyncgen *g, void *arg) {
  (void)g, (void)arg;
  for (int i = 0; i < 3; i++) {
    if (vow_await(vow_delay(l, 1, vow_undefined()), NULL) != 0) break;
    if (vow_yield(vow_int(i), NULL) != 0) break;
  }
  return vow_undefined();
}
static vow_promise *double_it(vow_loop *l, vow_value item, size_t i, vow_abort_signal *s, void *c) {
  (void)i, (void)s, (void)c;
  return vow_delay(l, 1, vow_int(vow_as_int(item) * 2));
}
static void channel_unref_arg(void *ch) { vow_channel_unref(ch); }
static vow_value producer(vow_loop *l, void *ch) {
  (void)l;
  for (int i = 0; i < 3; i++) vow_await(vow_channel_send(ch, vow_int(i)), NULL);
  vow_channel_close(ch);
  return vow_undefined();
}

static vow_value scenario(vow_loop *loop, void *arg) {
  (void)arg;
  vow_value v;
  /* then, finally, catch */
  vow_promise *a = vow_delay(loop, 2, vow_string("a"));
  vow_promise *b = vow_then(a, upper, NULL, NULL);
  vow_promise *c = vow_finally(b, nothing, NULL);
  vow_promise *x = vow_rejected(loop, vow_string("x"));
  vow_promise_unref(vow_catch(x, ignore, NULL));
  vow_promise_unref(x);
  /* combinators */
  vow_value items[] = {vow_promise_value(vow_promise_ref(c)), vow_int(3), vow_string("s")};
  if (vow_await(vow_all(loop, items, 3), &v) == 0) vow_unref(v); else vow_unref(v);
  vow_value settled[] = {vow_promise_value(vow_rejected(loop, vow_int(1))), vow_int(2)};
  vow_await(vow_all_settled(loop, settled, 2), &v), vow_unref(v);
  vow_value anys[] = {vow_promise_value(vow_rejected(loop, vow_int(1))), vow_promise_value(vow_delay(loop, 1, vow_int(5)))};
  vow_await(vow_any(loop, anys, 2), &v), vow_unref(v);
  vow_value races[] = {vow_promise_value(vow_delay(loop, 3, vow_int(1))), vow_promise_value(vow_delay(loop, 1, vow_int(2)))};
  vow_await(vow_race(loop, races, 2), &v), vow_unref(v);
  /* for await over a generator and over an array */
  vow_for_await it;
  if (vow_for_await_gen(&it, vow_asyncgen_new(loop, numbers, NULL)) == 0) {
    VOW_FOR_AWAIT(&it, x) (void)x;
    vow_for_await_end(&it, NULL);
  }
  vow_value arr[] = {vow_int(1), vow_promise_value(vow_delay(loop, 1, vow_int(2)))};
  if (vow_for_await_array(&it, loop, arr, 2) == 0) {
    VOW_FOR_AWAIT(&it, x) (void)x;
    vow_for_await_end(&it, NULL);
  }
  /* a channel, a map, a timeout that aborts */
  vow_channel *ch = vow_channel_new(loop, 1);
  if (ch) {
    vow_async_options po = {.arg_free = channel_unref_arg}; /* the producer's own reference */
    vow_promise *sending = vow_async_ex(loop, producer, vow_channel_ref(ch), &po);
    if (!sending || vow_promise_state(sending) == VOW_REJECTED)
      vow_channel_close(ch); /* no producer: nothing would end the loop below */
    vow_promise_unref(sending);
    vow_for_await_gen(&it, vow_channel_iter(ch));
    VOW_FOR_AWAIT(&it, x) (void)x;
    vow_for_await_end(&it, NULL);
    vow_channel_unref(ch);
  }
  vow_value mapped[] = {vow_int(1), vow_int(2), vow_int(3)};
  vow_map_options o = {.concurrency = 2};
  vow_await(vow_map(loop, mapped, 3, double_it, NULL, &o), &v), vow_unref(v);
  vow_abort_signal *s = vow_abort_signal_new(loop);
  vow_await(vow_timeout(loop, vow_delay(loop, 50, vow_undefined()), 5, s), &v), vow_unref(v);
  vow_abort_signal_unref(s);
  vow_promise_unref(a), vow_promise_unref(b), vow_promise_unref(c);
  return vow_string("done");
}


/* ---- timers: intervals, immediates, unref, many timeouts ---- */

static int fired; /* callbacks run; static: they may outlive a scenario cut short */
static void count_fired(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  fired++;
}
typedef struct ticking {
  vow_promise *done;
  int left;
  vow_timer id;
} ticking;
static ticking ticker;
static void ticker_tick(vow_loop *l, void *arg) {
  ticking *t = arg;
  if (--t->left > 0) return;
  vow_clear_timer(l, t->id);
  vow_promise_resolve(t->done, vow_undefined());
}

#define MANY_TIMERS 40000 /* more than 8 chunks of 4096 records: a huge-page group */
#define IMMEDIATES 5000   /* more than one block of 4096 */

static vow_value timers(vow_loop *loop, void *arg) {
  (void)arg;
  static vow_timer many[MANY_TIMERS];
  fired = 0;
  /* an interval that clears itself on its third run */
  ticker = (ticking){vow_promise_new(loop), 3, 0};
  if (!ticker.done) return vow_throw(vow_error_nomem());
  ticker.id = vow_set_interval(loop, 2, ticker_tick, &ticker);
  if (ticker.id < 0) vow_promise_reject(ticker.done, vow_error((int)ticker.id, "interval"));
  for (int i = 0; i < IMMEDIATES; i++) vow_set_immediate(loop, count_fired, NULL);
  vow_clear_timer(loop, vow_set_immediate(loop, count_fired, NULL));
  vow_timer_unref(loop, vow_set_immediate(loop, count_fired, NULL)); /* runs: the loop is busy */
  /* 20 durations: the map from duration to list and the heap of lists grow */
  for (uint64_t ms = 1; ms <= 20; ms++) vow_set_timeout(loop, ms, count_fired, NULL);
  vow_timer_unref(loop, vow_set_timeout(loop, 1000, count_fired, NULL)); /* never runs */
  for (int i = 0; i < MANY_TIMERS; i++) many[i] = vow_set_timeout(loop, 5, count_fired, NULL);
  for (int i = 0; i < MANY_TIMERS; i++) vow_clear_timer(loop, many[i]);
  vow_value v = vow_undefined();
  int rc = vow_await(ticker.done, &v);
  vow_unref(v);
  vow_clear_timer(loop, ticker.id); /* when the await failed: the interval is ours to stop */
  if (rc == 0) rc = vow_await(vow_delay(loop, 25, vow_undefined()), NULL);
  if (rc != 0) return vow_throw(vow_error(rc, "timers"));
  return fired == IMMEDIATES + 1 + 20 ? vow_string("done") : vow_stringf("fired %d", fired);
}

/* ---- the trace, started by the program and by VOW_TRACE ---- */

static char trace_dir[] = "/tmp/vow-faults-XXXXXX";

static vow_value traced(vow_loop *loop, void *arg) {
  (void)arg;
  char path[64];
  snprintf(path, sizeof path, "%s/own.json", trace_dir);
  vow_trace_stop(loop); /* the trace VOW_TRACE started, if it could */
  int err = vow_trace_start(loop, path);
  uint64_t span = vow_trace_begin(loop, "test", "three sleeps");
  for (int i = 0; i < 3 && err == 0; i++) err = vow_await(vow_delay(loop, 1, vow_undefined()), NULL);
  vow_trace_end(loop, span);
  vow_trace_stop(loop);
  /* this one is written by vow_loop_free */
  if (err == 0) err = vow_trace_start(loop, path);
  vow_trace_end(loop, vow_trace_begin(loop, NULL, "at the end"));
  return err ? vow_throw(vow_error(err, "trace")) : vow_string("done");
}

/* The first scenario again with the trace on: every await suspends then
 * (no carrying on), and every macrotask, drain and resumption is recorded. */
static vow_value scenario_traced(vow_loop *loop, void *arg) {
  char path[64];
  snprintf(path, sizeof path, "%s/scenario.json", trace_dir);
  vow_trace_start(loop, path); /* written by vow_loop_free; ENOMEM: untraced */
  return scenario(loop, arg);
}

static void remove_trace_dir(void) {
  char cmd[64];
  snprintf(cmd, sizeof cmd, "rm -rf %s", trace_dir);
  cr_assert_eq(system(cmd), 0);
}

/* ---- threads: vow_work, posts, threadsafe settling ---- */

static vow_value forty_two(void *arg) {
  (void)arg;
  return vow_int(42);
}
static int posts_run;
static void count_post(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  posts_run++;
}
static vow_promise *posts_done; /* NULL once the scenario stopped waiting */
static void resolve_post(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  vow_promise_resolve(posts_done, vow_int(posts_run));
}

#define POSTS 20 /* more than the queue's first 16 slots */

/* The posts and the threadsafe settling are made from the loop's thread:
 * the same code as from another thread, in an order the fault driver can
 * repeat (test_threads covers the other threads). */
static vow_value threads(vow_loop *loop, void *arg) {
  (void)arg;
  vow_value v = vow_undefined();
  int rc = vow_await(vow_work(loop, forty_two, NULL), &v);
  if (rc != 0) return vow_throw(v);
  posts_run = 0;
  vow_promise *all = posts_done = vow_promise_new(loop);
  if (!all) return vow_throw(vow_error_nomem());
  vow_loop_hold(loop); /* posts do not keep the loop running */
  int posted = 0;
  for (int i = 0; i < POSTS; i++) posted += vow_loop_post(loop, count_post, NULL) == 0;
  if (vow_loop_post(loop, resolve_post, NULL) != 0) vow_promise_resolve(all, vow_int(posts_run));
  rc = vow_await(vow_promise_ref(all), &v);
  posts_done = NULL;
  vow_promise_unref(all);
  if (rc == 0 && vow_as_int(v) != posted) rc = VOW_EINVAL; /* a post lost or run twice */
  vow_unref(v);
  vow_promise *q = vow_promise_new(loop);
  if (q && vow_promise_resolve_threadsafe(vow_promise_ref(q), vow_int(7)) != 0) {
    vow_promise_unref(q); /* the reference it did not take */
    vow_promise_resolve(q, vow_int(7));
  }
  if (rc == 0) rc = vow_await(q, &v);
  else vow_promise_unref(q);
  vow_loop_release(loop);
  if (rc != 0) return vow_throw(v);
  return vow_as_int(v) == 7 ? vow_string("done") : vow_string("wrong");
}

/* ---- cancellation: listeners, any, timeout signals, race_abort, timeout ---- */

static int heard;
static void hear(vow_loop *l, vow_value reason, void *data) {
  (void)l, (void)reason, (void)data;
  heard++;
}

static vow_value cancellation(vow_loop *loop, void *arg) {
  (void)arg;
  vow_value v = vow_undefined();
  heard = 0;
  vow_abort_signal *s = vow_abort_signal_new(loop);
  vow_abort_signal *t = vow_abort_signal_timeout(loop, 3);
  vow_abort_signal *both[] = {s, t};
  vow_abort_signal *any = s && t ? vow_abort_signal_any(loop, both, 2) : NULL;
  int64_t ids[6];
  for (int i = 0; i < 6; i++) ids[i] = s ? vow_abort_signal_on(s, hear, NULL) : 0; /* past 4: grows */
  if (s) vow_abort_signal_off(s, ids[1]);
  if (any) vow_abort_signal_on(any, hear, NULL);
  /* the timeout signal aborts `any` (its own timer does not keep the loop alive) */
  vow_value racers[] = {vow_promise_value(any ? vow_abort_signal_promise(any) : NULL),
                        vow_promise_value(vow_delay(loop, 10, vow_undefined()))};
  vow_await(vow_race(loop, racers, 2), &v), vow_unref(v);
  vow_abort(s, vow_undefined());
  /* the fast one wins; the slow one's signal is aborted */
  vow_abort_signal *sa = vow_abort_signal_new(loop), *sb = vow_abort_signal_new(loop);
  vow_abort_signal *sigs[] = {sa, sb};
  vow_value items[] = {vow_promise_value(vow_delay(loop, 1, vow_string("a"))),
                       vow_promise_value(vow_delay(loop, 5, vow_string("b")))};
  int rc = vow_await(vow_race_abort(loop, items, sigs, 2), &v);
  int lost = rc == 0 && vow_abort_signal_aborted(sb) && !vow_abort_signal_aborted(sa);
  vow_unref(v);
  /* a race of one: nothing else can settle it if its input's reaction fails */
  vow_value alone[] = {vow_promise_value(vow_delay(loop, 1, vow_string("alone")))};
  vow_await(vow_race_abort(loop, alone, sigs, 1), &v), vow_unref(v);
  /* vow_timeout where the work wins */
  vow_await(vow_timeout(loop, vow_delay(loop, 1, vow_int(1)), 50, NULL), &v), vow_unref(v);
  int ok = heard == 6 && lost;
  vow_abort_signal_unref(s), vow_abort_signal_unref(t), vow_abort_signal_unref(any);
  vow_abort_signal_unref(sa), vow_abort_signal_unref(sb);
  return ok ? vow_string("done") : vow_stringf("heard %d, lost %d", heard, lost);
}

/* ---- retry, a rendezvous channel, a generator asked twice, values ---- */

static vow_promise *flaky(vow_loop *l, unsigned attempt, vow_abort_signal *s, void *c) {
  (void)s, (void)c;
  if (attempt < 3) return vow_delay_reject(l, 1, vow_error(VOW_EINVAL, "flaky"));
  return vow_delay(l, 1, vow_int((int64_t)attempt));
}
static void nop_task(vow_loop *l, void *arg) {
  (void)l, (void)arg;
}

static vow_value beyond(vow_loop *loop, void *arg) {
  (void)arg;
  vow_value v = vow_undefined();
  int ok = 1;
  vow_retry_options ro = {.max_attempts = 5, .initial_delay_ms = 1};
  ok &= vow_await(vow_retry(loop, flaky, NULL, &ro), &v) == 0 && vow_as_int(v) == 3;
  vow_unref(v);
  /* a receiver waits before anything is sent */
  vow_channel *ch = vow_channel_new(loop, 0);
  if (ch) {
    vow_promise *r = vow_channel_recv(ch);
    vow_promise *s = vow_channel_send(ch, vow_int(1));
    vow_await(r, &v), vow_unref(v);
    vow_channel_close(ch); /* if the receive failed, the send is rejected, not left waiting */
    vow_await(s, &v), vow_unref(v);
    vow_channel_unref(ch);
  }
  /* next() twice before the body yields once: the second request queues */
  vow_asyncgen *g = vow_asyncgen_new(loop, numbers, NULL);
  if (g) {
    vow_promise *a = vow_asyncgen_next(g, vow_undefined());
    vow_promise *b = vow_asyncgen_next(g, vow_undefined());
    vow_promise *c = vow_asyncgen_return(g, vow_undefined());
    vow_await(a, &v), vow_unref(v);
    vow_await(b, &v), vow_unref(v);
    vow_await(c, &v), vow_unref(v);
    vow_asyncgen_unref(g);
  }
  /* a generator thrown into at a yield, another left early by for await */
  vow_asyncgen *h = vow_asyncgen_new(loop, numbers, NULL);
  if (h) {
    vow_await(vow_asyncgen_next(h, vow_undefined()), &v), vow_unref(v);
    vow_await(vow_asyncgen_throw(h, vow_string("stop")), &v), vow_unref(v);
    vow_asyncgen_unref(h);
  }
  vow_for_await it;
  if (vow_for_await_gen(&it, vow_asyncgen_new(loop, numbers, NULL)) == 0) {
    VOW_FOR_AWAIT(&it, x) break;
    vow_for_await_end(&it, NULL);
  }
  /* any of promises that all reject: an AggregateError; all of promises */
  vow_promise *ps[] = {vow_delay_reject(loop, 1, vow_int(1)), vow_rejected(loop, vow_int(2))};
  if (ps[0] && ps[1]) {
    vow_await(vow_any_promises(loop, ps, 2), &v), vow_unref(v);
    vow_await(vow_all_promises(loop, ps, 2), &v), vow_unref(v);
  }
  vow_promise_unref(ps[0]), vow_promise_unref(ps[1]);
  /* an array that grows; a value too long for vow_value_print's buffer */
  vow_value arr = vow_array(1);
  for (int i = 0; i < 10; i++) vow_array_push(arr, vow_int(i));
  vow_unref(arr);
  char text[400];
  memset(text, 'x', sizeof text - 1), text[sizeof text - 1] = '\0';
  vow_value long_string = vow_string(text);
  FILE *null = fopen("/dev/null", "w");
  if (null) vow_value_print(null, long_string), fclose(null);
  vow_unref(long_string);
  /* more microtasks at once than the ring's first 256 slots */
  for (int i = 0; i < 300; i++) vow_queue_microtask(loop, nop_task, NULL);
  return ok ? vow_string("done") : vow_throw(vow_string("retry"));
}

/* ---- the pool grows to its huge-page chunks (4 MiB and more) ---- */

#define POOLED (VOW__POOL_USE_MALLOC ? 64 : 250000) /* under ASan: a malloc each */

static vow_value pool_growth(vow_loop *loop, void *arg) {
  (void)arg;
  static vow_promise *held[250000];
  int made = 0;
  while (made < POOLED && (held[made] = vow_promise_new(loop))) made++;
  for (int i = 0; i < made; i++) vow_promise_unref(held[i]);
  return made == POOLED ? vow_string("done") : vow_string("short");
}

/* ---- the scenarios (the driver is tests/fault_scenarios.h) ---- */

/* Timers never sleep, and stacks are small: thousands of runs stay fast. */
#define VIRTUAL_SMALL_STACKS {.virtual_clock = 1, .stack_size = 64 * 1024}

static const fault_scenario touring = {.name = "scenario", .fn = scenario, .options = VIRTUAL_SMALL_STACKS};

Test(faults, every_allocation_can_fail) {
  long total = fault_scenario_check(&touring);
  cr_assert_gt(total, 50, "the scenario makes allocations (%ld)", total);
}

Test(faults, timers) {
  static const fault_scenario s = {.name = "timers", .fn = timers, .options = VIRTUAL_SMALL_STACKS};
  fault_scenario_check(&s);
}

Test(faults, trace_started_and_from_the_environment) {
  cr_assert_not_null(mkdtemp(trace_dir));
  char env[64];
  snprintf(env, sizeof env, "%s/env.json", trace_dir);
  setenv("VOW_TRACE", env, 1); /* the first loop traces to env.json, the next to env.json.2... */
  static const fault_scenario s = {.name = "trace", .fn = traced, .options = VIRTUAL_SMALL_STACKS};
  fault_scenario_check(&s);
  unsetenv("VOW_TRACE");
  remove_trace_dir();
}

Test(faults, every_allocation_can_fail_while_tracing) {
  cr_assert_not_null(mkdtemp(trace_dir));
  static const fault_scenario s = {.name = "scenario traced", .fn = scenario_traced, .options = VIRTUAL_SMALL_STACKS};
  fault_scenario_check(&s);
  remove_trace_dir();
}

Test(faults, work_posts_and_threadsafe_settling) {
  static const fault_scenario s = {.name = "threads", .fn = threads, .options = VIRTUAL_SMALL_STACKS};
  fault_scenario_check(&s);
}

Test(faults, cancellation) {
  static const fault_scenario s = {.name = "cancellation", .fn = cancellation, .options = VIRTUAL_SMALL_STACKS};
  fault_scenario_check(&s);
}

Test(faults, retry_channel_generator_values) {
  static const fault_scenario s = {.name = "beyond", .fn = beyond, .options = VIRTUAL_SMALL_STACKS};
  fault_scenario_check(&s);
}

Test(faults, pool_grows_to_huge_chunks) {
  static const fault_scenario s = {.name = "pool", .fn = pool_growth, .options = VIRTUAL_SMALL_STACKS};
  fault_scenario_check(&s);
}

/* ---- the threadsafe calls, from another thread ----
 * The thread is joined before the loop runs, so the order of allocations
 * (its and the loop's) is the same in every run and the driver can fail each
 * one in turn; the hook counts atomically all the same. */

typedef struct crossing {
  vow_loop *loop;
  vow_promise *p; /* a reference for vow_promise_resolve_threadsafe to take */
  int settle_rc;
  int posted;
} crossing;
static int crossings_left;
static void crossed(vow_loop *l, void *arg) {
  (void)arg;
  if (--crossings_left == 0) vow_loop_release(l);
}
static void *from_thread(void *arg) {
  crossing *c = arg;
  c->settle_rc = vow_promise_resolve_threadsafe(c->p, vow_string("made on the thread"));
  for (int i = 0; i < POSTS; i++) c->posted += vow_loop_post(c->loop, crossed, NULL) == 0;
  return NULL;
}

static int run_crossing(long n, fault_mode how) {
  fault_arm(n, how);
  vow_loop *loop;
  if (vow_loop_new(&loop, NULL) == 0) {
    vow_promise *p = vow_promise_new(loop);
    if (p) {
      crossing c = {loop, vow_promise_ref(p), 0, 0};
      pthread_t t;
      cr_assert_eq(pthread_create(&t, NULL, from_thread, &c), 0);
      pthread_join(t, NULL);
      if (n == 0) cr_assert(c.settle_rc == 0 && c.posted == POSTS, "nothing fails without faults");
      if (c.settle_rc != 0) vow_promise_unref(c.p); /* the reference it did not take */
      crossings_left = c.posted;
      if (c.posted) vow_loop_hold(loop); /* released by the last post */
      int rc = vow_loop_run(loop);
      if (rc == 0) cr_assert_eq(crossings_left, 0, "every post that was accepted ran");
      /* posts run in order: the settlement, posted first, ran before them */
      if (rc == 0 && c.settle_rc == 0 && c.posted)
        cr_assert_eq(vow_promise_state(p), VOW_FULFILLED, "allocation %ld failed", n);
      if (n == 0) cr_assert_str_eq(vow_str(vow_promise_result(p)), "made on the thread");
      vow_promise_unref(p);
    }
    cr_assert_eq(vow_loop_free(loop), 0);
  }
  long live = fault_live;
  fault_disarm();
  cr_assert_eq(live, 0, "crossing: %ld blocks leaked after a failure at allocation %ld", live, n);
  cr_assert_eq(vow__pool_leaked, 0);
  return 0;
}

Test(faults, threadsafe_calls_from_another_thread) {
  run_crossing(0, FAULT_ONCE);
  long total = fault_allocations;
  cr_assert_geq(fault_every_site(run_crossing, FAULT_ONCE) + 1, total);
  cr_assert_geq(fault_every_site(run_crossing, FAULT_FROM) + 1, total);
  TEST_LEAK_CHECK();
}

/* ---- posts left over when a run stops ---- */

/* A stops the run (a rejection nobody handles, under the default policy)
 * after posting e; b, c and d, taken in the same batch, wait for the next
 * run, still before e. The last post releases the hold on the loop. */
static void log_post(vow_loop *l, void *word) {
  LOG("%s", (const char *)word);
  if (strcmp(word, "e") == 0) vow_loop_release(l);
}
static void stop_post(vow_loop *l, void *arg) {
  (void)arg;
  if (vow_loop_post(l, log_post, "e") != 0) vow_loop_release(l); /* nothing else would */
  vow_promise_unref(vow_rejected(l, vow_string("nobody handles this")));
}

static int first_run, second_run;
static int run_posts(long n, fault_mode how) {
  fault_arm(n, how);
  log_reset();
  vow_loop *loop;
  if (vow_loop_new(&loop, NULL) == 0) {
    vow_loop_hold(loop);
    if (vow_loop_post(loop, stop_post, NULL) != 0) vow_loop_release(loop);
    vow_loop_post(loop, log_post, "b");
    vow_loop_post(loop, log_post, "c");
    vow_loop_post(loop, log_post, "d");
    first_run = vow_loop_run(loop);
    second_run = vow_loop_run(loop);
    cr_assert_eq(vow_loop_free(loop), 0);
  }
  long live = fault_live;
  fault_disarm();
  cr_assert_eq(live, 0, "posts: %ld blocks leaked after a failure at allocation %ld", live, n);
  cr_assert_eq(vow__pool_leaked, 0);
  return 0;
}

Test(faults, posts_left_when_a_run_stops_keep_their_order) {
  run_posts(0, FAULT_ONCE);
  cr_assert_eq(first_run, VOW_EUNHANDLED);
  cr_assert_eq(second_run, 0);
  cr_assert_str_eq(g_log.text, "b c d e");
  long total = fault_allocations;
  cr_assert_geq(fault_every_site(run_posts, FAULT_ONCE) + 1, total);
  cr_assert_geq(fault_every_site(run_posts, FAULT_FROM) + 1, total);
  TEST_LEAK_CHECK();
}

/* ---- coroutine stacks that cannot be had ----
 * Stacks are mmap'd, not taken through the allocator hook: a stack size no
 * mmap can give stands in for the out-of-memory mmap. */

static int args_freed;
static void count_arg_free(void *arg) {
  (void)arg;
  args_freed++;
}
static vow_value never_runs(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  cr_assert_fail("a body without a stack ran");
  return vow_undefined();
}
static vow_value never_yields(vow_loop *l, vow_asyncgen *g, void *arg) {
  (void)l, (void)g, (void)arg;
  cr_assert_fail("a generator body without a stack ran");
  return vow_undefined();
}

Test(faults, coroutine_stacks_that_cannot_be_mapped) {
  fault_arm(0, FAULT_ONCE);
  vow_loop *loop;
  cr_assert_eq(vow_loop_new(&loop, NULL), 0);
  vow_on_unhandled_rejection(loop, fault_quiet, NULL); /* p is rejected, and nobody awaits it */
  args_freed = 0;
  vow_async_options huge = {.stack_size = (size_t)-1 / 2, .arg_free = count_arg_free};
  vow_promise *p = vow_async_ex(loop, never_runs, NULL, &huge);
  cr_assert_eq(vow_promise_state(p), VOW_REJECTED);
  cr_assert_eq(vow_error_code(vow_promise_result(p)), VOW_ENOMEM);
  cr_assert_eq(args_freed, 1, "the body's argument is released when it cannot run");
  vow_asyncgen *g = vow_asyncgen_new_ex(loop, never_yields, NULL, &huge);
  cr_assert_not_null(g);
  vow_promise *n = vow_asyncgen_next(g, vow_undefined());
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(n), VOW_REJECTED);
  cr_assert_eq(vow_error_code(vow_promise_result(n)), VOW_ENOMEM);
  vow_promise_unref(n);
  vow_asyncgen_unref(g);
  cr_assert_eq(args_freed, 2);
  vow_promise_unref(p);
  cr_assert_eq(vow_loop_free(loop), 0);
  long live = fault_live;
  fault_disarm();
  cr_assert_eq(live, 0);
  cr_assert_eq(vow__pool_leaked, 0);
}

/* ---- a rejection nobody handles, under the default policy ----
 * It stops the run with VOW_EUNHANDLED; when there is no memory to keep it
 * for the report, the run must still not pass as a success. */
static int unhandled_rc;
static int run_unhandled(long n, fault_mode how) {
  fault_arm(n, how);
  vow_loop *loop;
  if (vow_loop_new(&loop, NULL) == 0) {
    vow_promise *p = vow_rejected(loop, vow_int(1));
    unhandled_rc = vow_loop_run(loop);
    if (p) cr_assert_neq(unhandled_rc, 0, "the rejection went unseen (allocation %ld failed)", n);
    vow_promise_unref(p);
    cr_assert_eq(vow_loop_free(loop), 0);
  }
  long live = fault_live;
  fault_disarm();
  cr_assert_eq(live, 0);
  cr_assert_eq(vow__pool_leaked, 0);
  return 0;
}

Test(faults, an_unhandled_rejection_never_passes_unseen) {
  run_unhandled(0, FAULT_ONCE);
  cr_assert_eq(unhandled_rc, VOW_EUNHANDLED);
  long total = fault_allocations;
  cr_assert_geq(fault_every_site(run_unhandled, FAULT_ONCE) + 1, total);
  cr_assert_geq(fault_every_site(run_unhandled, FAULT_FROM) + 1, total);
}

/* The wrappers' own checks: strdup's copy can fail; calloc refuses a size
 * that overflows without asking the allocator. */
Test(faults, wrappers) {
  fault_arm(1, FAULT_ONCE);
  cr_assert_null(vow__strdup("copy"));
  char *c = vow__strdup("copy");
  cr_assert_str_eq(c, "copy");
  vow__free(c);
  fault_arm(1, FAULT_FROM);
  cr_assert_null(vow__strdup("copy"));
  cr_assert_null(vow__strdup("copy"));
  long asked = fault_allocations;
  cr_assert_null(vow__calloc((size_t)-1 / 2, 4));
  cr_assert_eq(fault_allocations, asked, "an overflowing calloc asks for nothing");
  long live = fault_live;
  fault_disarm();
  cr_assert_eq(live, 0);
}

/* ---- every allocation goes through the hook ---- */

/* An allocator that puts a tag before each block: freeing anything that did
 * not come from it (memory from strdup, or from libcurl) would be caught. */
typedef struct tag {
  uint64_t magic;
  uint64_t size;
} tag;
#define TAG_MAGIC 0x766f77616c6c6f63ull
static long live_blocks;

static void *tagging_realloc(void *ptr, size_t size, void *ctx) {
  (void)ctx;
  tag *t = ptr ? (tag *)ptr - 1 : NULL;
  if (t && t->magic != TAG_MAGIC) abort(); /* not ours: a mismatched free */
  if (size == 0) {
    t->magic = 0;
    free(t);
    live_blocks--;
    return NULL;
  }
  tag *n = realloc(t, sizeof *n + size);
  if (!n) return NULL;
  if (!t) live_blocks++;
  n->magic = TAG_MAGIC;
  n->size = size;
  return n + 1;
}

static vow_value echo(vow_loop *l, vow_request *req, void *data) {
  (void)l, (void)data;
  vow_value r = vow_http_response(200, "text/plain", vow_stringf("%s %s", vow_request_method(req),
                                                                 vow_request_target(req)));
  vow_http_response_header(r, "X-Echo", "yes");
  return r;
}

static vow_value round_trip(vow_loop *loop, void *server) {
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/hello?x=1", vow_server_port(server));
  vow_value res, text;
  cr_assert_eq(vow_await(vow_fetch(loop, url, NULL), &res), 0);
  cr_assert_str_eq(vow_response_header(vow_as_response(res), "x-echo"), "yes");
  cr_assert_eq(vow_await(vow_response_text(vow_as_response(res)), &text), 0);
  cr_assert_str_eq(vow_str(text), "GET /hello?x=1");
  vow_unref(text);
  vow_unref(res);
  vow_await(vow_server_close(server), NULL);
  return vow_undefined();
}

Test(faults, fetch_and_server_allocate_through_the_hook) {
  live_blocks = 0;
  vow_allocator a = {tagging_realloc, NULL};
  cr_assert_eq(vow_set_allocator(&a), 0);
  vow_loop *loop;
  cr_assert_eq(vow_loop_new(&loop, NULL), 0);
  vow_server *server;
  cr_assert_eq(vow_server_listen(loop, NULL, echo, NULL, &server), 0);
  vow_promise *p = vow_async(loop, round_trip, server);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED);
  vow_promise_unref(p);
  cr_assert_eq(vow_loop_free(loop), 0);
  vow_set_allocator(NULL);
  cr_assert_eq(live_blocks, 0, "%ld blocks from the hook were never given back", live_blocks);
}
