/*
 * test_structured.c — task groups and cancel scopes (vow.h section 16).
 *
 * The ordering rules are Python's: each test that has an asyncio equivalent
 * quotes the program and what python3 3.11 printed, and asserts vow prints
 * the same. Where vow's rules differ on purpose, the comment says so:
 *   - a spawned child runs at once, until its first await (JavaScript's
 *     async call), where asyncio.create_task runs it on the next loop step;
 *   - a cancelled scope stays cancelled (Trio's rule): cleanup that awaits
 *     after a cancellation does so inside a shield, where asyncio, which
 *     cancels once, lets the except block await.
 * The loop runs on the virtual clock: timings are exact and instant.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

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
/* Ends a test: frees the loop and checks for leaks inside the test itself
 * (Criterion does not fail a test for an assertion in its .fini). */
#define END()             \
  do {                    \
    vow_loop_free(loop);  \
    loop = NULL;          \
    TEST_LEAK_CHECK();    \
  } while (0)
TestSuite(structured, .init = setup, .fini = teardown);

static unsigned long long now_ms(void) { return (unsigned long long)(vow_loop_now(loop) - t0); }

/* Runs fn as the main async function; returns its promise's state. */
static vow_state run_main(vow_async_fn fn, void *arg) {
  vow_promise *p = vow_async(loop, fn, arg);
  cr_assert_not_null(p);
  cr_assert_eq(vow_loop_run(loop), 0);
  vow_state st = vow_promise_state(p);
  if (st == VOW_REJECTED) {
    char buf[256];
    vow_value_format(vow_promise_result(p), buf, sizeof buf);
    cr_log_info("main rejected: %s", buf);
  }
  vow_promise_unref(p);
  return st;
}

static int sleep_ms(uint64_t ms) {
  vow_value v;
  int rc = vow_await(vow_delay(loop, ms, vow_undefined()), &v);
  vow_unref(v);
  return rc;
}

/* ---- children ---------------------------------------------------------------- */

typedef struct task {
  const char *name;
  uint64_t ms;
  int fail;
  int cleanup_ms; /* > 0: after a cancellation, awaits this long in a shield */
} task;

static vow_value child(vow_loop *l, void *arg) {
  task *t = arg;
  LOG("%s:start", t->name);
  vow_value v;
  int rc = vow_await(vow_delay(l, t->ms, vow_undefined()), &v);
  if (rc == VOW_ECLOSING) {
    LOG("%s:closing", t->name);
    return vow_throw(v);
  }
  if (rc == VOW_EABORTED || rc == VOW_ETIMEDOUT) {
    LOG("%s:cancelled", t->name);
    if (t->cleanup_ms) {
      vow_scope *shield;
      cr_assert_eq(vow_shield_begin(l, &shield), 0);
      cr_assert_eq(sleep_ms((uint64_t)t->cleanup_ms), 0);
      cr_assert_eq(vow_scope_end(shield, NULL), 0);
      LOG("%s:cleaned", t->name);
    }
    return vow_throw(v);
  }
  cr_assert_eq(rc, 0);
  vow_unref(v);
  if (t->fail) {
    LOG("%s:fail", t->name);
    return vow_throw(vow_error(VOW_EINVAL, t->name));
  }
  LOG("%s:done", t->name);
  return vow_string(t->name);
}

static void log_outcome(const char *what, int rc, vow_value v) {
  if (rc == 0) {
    char buf[256];
    vow_value_format(v, buf, sizeof buf);
    LOG("%s:ok:%s", what, buf);
  } else if (vow_kind_of(v) == VOW_AGGREGATE) {
    LOG("%s:aggregate", what);
    for (size_t i = 0; i < vow_array_len(v); i++) LOG("%s", vow_error_message(vow_array_get(v, i)));
  } else if (vow_error_code(v) == VOW_ETIMEDOUT) {
    LOG("%s:timeout", what);
  } else {
    LOG("%s:%s", what, vow_error_message(v));
  }
  vow_unref(v);
}

/* ---- the first failure cancels the siblings -----------------------------------
 *
 *   async def child(name, delay, fail=False):
 *       log.append(f"{name}:start")
 *       try:
 *           await asyncio.sleep(delay)
 *       except asyncio.CancelledError:
 *           log.append(f"{name}:cancelled")
 *           raise
 *       if fail:
 *           log.append(f"{name}:fail")
 *           raise ValueError(name)
 *       log.append(f"{name}:done")
 *   async def main():
 *       try:
 *           async with asyncio.TaskGroup() as tg:
 *               for n, d, f in [("a", .01, False), ("b", .02, True),
 *                               ("c", .05, False), ("d", .05, False)]:
 *                   tg.create_task(child(n, d, f))
 *               log.append("spawned")
 *       except* ValueError as eg:
 *           log.append("group:" + ",".join(str(e) for e in eg.exceptions))
 *
 * python3 prints:
 *   spawned a:start b:start c:start d:start a:done b:fail c:cancelled d:cancelled group:b
 * vow prints "spawned" after the starts (children run at once), the rest alike.
 */
static task failing[] = {{"a", 10, 0, 0}, {"b", 20, 1, 0}, {"c", 50, 0, 0}, {"d", 50, 0, 0}};

static vow_value failure_main(vow_loop *l, void *arg) {
  (void)arg;
  vow_group *g = vow_group_new(l, NULL);
  cr_assert_not_null(g);
  for (int i = 0; i < 4; i++) cr_assert_eq(vow_group_spawn(g, child, &failing[i], NULL), 0);
  LOG("spawned");
  vow_value v;
  int rc = vow_group_await(g, &v);
  cr_assert_eq(rc, VOW_EREJECTED);
  log_outcome("group", rc, v);
  LOG("@%llu", now_ms());
  vow_group_unref(g);
  return vow_undefined();
}

Test(structured, first_failure_cancels_siblings_in_spawn_order) {
  cr_assert_eq(run_main(failure_main, NULL), VOW_FULFILLED);
  /* The siblings stopped at once: the group ended at b's failure (20 ms),
   * not when c and d would have finished (50 ms). */
  cr_assert_str_eq(g_log.text,
                   "a:start b:start c:start d:start spawned a:done b:fail c:cancelled d:cancelled group:b @20");
  END();
}

/* Every failure, with options.aggregate — a failure in cleanup too:
 *
 *   async def x():
 *       log.append("x:start")
 *       await asyncio.sleep(.01)
 *       log.append("x:fail")
 *       raise ValueError("x")
 *   async def y():
 *       log.append("y:start")
 *       try:
 *           await asyncio.sleep(.03)
 *       except asyncio.CancelledError:
 *           log.append("y:cancelled")
 *           raise ValueError("y")
 *   ...async with asyncio.TaskGroup() as tg: tg.create_task(x()); tg.create_task(y())
 *      except* ValueError as eg: log.append("group:" + ",".join(...))
 *
 * python3 prints:  x:start y:start x:fail y:cancelled group:x,y
 * (Two timers due at once differ: asyncio wakes both tasks in one loop step,
 * so both fail; vow drains microtasks after each timer, as Node does, so the
 * first failure cancels the second task before its timer fires.) */
static vow_value fail_in_cleanup(vow_loop *l, void *arg) {
  (void)arg;
  LOG("y:start");
  vow_value v;
  cr_assert_eq(vow_await(vow_delay(l, 30, vow_undefined()), &v), VOW_EABORTED);
  vow_unref(v);
  LOG("y:cancelled");
  return vow_throw(vow_error(VOW_EINVAL, "y"));
}

static task x_fails = {"x", 10, 1, 0};

static vow_value aggregate_main(vow_loop *l, void *arg) {
  (void)arg;
  vow_group *g = vow_group_new(l, &(vow_group_options){.aggregate = 1});
  cr_assert_eq(vow_group_spawn(g, child, &x_fails, NULL), 0);
  cr_assert_eq(vow_group_spawn(g, fail_in_cleanup, NULL, NULL), 0);
  vow_value v;
  int rc = vow_group_await(g, &v);
  log_outcome("group", rc, v);
  vow_group_unref(g);
  return vow_undefined();
}

Test(structured, aggregate_lists_every_failure) {
  cr_assert_eq(run_main(aggregate_main, NULL), VOW_FULFILLED);
  cr_assert_str_eq(g_log.text, "x:start y:start x:fail y:cancelled group:aggregate x y");
  END();
}

/* All succeed: the results, in spawn order (not end order). */
static task fine[] = {{"slow", 30, 0, 0}, {"fast", 10, 0, 0}, {"mid", 20, 0, 0}};

static vow_value results_main(vow_loop *l, void *arg) {
  (void)arg;
  vow_group *g = vow_group_new(l, NULL);
  for (int i = 0; i < 3; i++) cr_assert_eq(vow_group_spawn(g, child, &fine[i], NULL), 0);
  vow_value v;
  int rc = vow_group_await(g, &v);
  log_outcome("group", rc, v);
  vow_group_unref(g);
  return vow_undefined();
}

Test(structured, results_come_in_spawn_order) {
  cr_assert_eq(run_main(results_main, NULL), VOW_FULFILLED);
  cr_assert_str_eq(g_log.text,
                   "slow:start fast:start mid:start fast:done mid:done slow:done "
                   "group:ok:[\"slow\",\"fast\",\"mid\"]");
  END();
}

/* ---- a deadline around a group, and cleanup that awaits -------------------------
 *
 *   async def child(name, delay):
 *       log.append(f"{name}:start")
 *       try:
 *           await asyncio.sleep(delay)
 *           log.append(f"{name}:done")
 *       except asyncio.CancelledError:
 *           log.append(f"{name}:cancelled")
 *           await asyncio.sleep(0.01)    # cleanup that awaits (vow: inside a shield)
 *           log.append(f"{name}:cleaned")
 *           raise
 *   async def main():
 *       try:
 *           async with asyncio.timeout(0.05):
 *               async with asyncio.TaskGroup() as tg:
 *                   tg.create_task(child("a", .01))
 *                   tg.create_task(child("b", .1))
 *                   tg.create_task(child("c", .2))
 *       except TimeoutError:
 *           log.append("group:timeout")
 *
 * python3 prints:
 *   a:start b:start c:start a:done b:cancelled c:cancelled b:cleaned c:cleaned group:timeout
 * The group's end waits for the shielded cleanups: no child outlives it. */
static task slow[] = {{"a", 10, 0, 10}, {"b", 100, 0, 10}, {"c", 200, 0, 10}};

static vow_value deadline_main(vow_loop *l, void *arg) {
  int own_deadline = *(int *)arg;
  vow_scope *s = NULL;
  vow_group *g;
  if (own_deadline) {
    g = vow_group_new(l, &(vow_group_options){.timeout_ms = 50});
  } else {
    cr_assert_eq(vow_scope_begin(l, &(vow_scope_options){.timeout_ms = 50}, &s), 0);
    g = vow_group_new(l, NULL); /* made in the scope: cancelled with it */
  }
  for (int i = 0; i < 3; i++) cr_assert_eq(vow_group_spawn(g, child, &slow[i], NULL), 0);
  vow_value v;
  int rc = vow_group_await(g, &v);
  cr_assert_eq(rc, VOW_EREJECTED);
  log_outcome("group", rc, v);
  LOG("@%llu", now_ms());
  if (s) cr_assert_eq(vow_scope_end(s, NULL), VOW_ETIMEDOUT);
  vow_group_unref(g);
  return vow_undefined();
}

Test(structured, scope_deadline_cancels_group_and_waits_for_cleanup) {
  int own = 0;
  cr_assert_eq(run_main(deadline_main, &own), VOW_FULFILLED);
  cr_assert_str_eq(g_log.text,
                   "a:start b:start c:start a:done b:cancelled c:cancelled b:cleaned c:cleaned "
                   "group:timeout @60");
  END();
}

Test(structured, group_deadline_is_the_same) {
  int own = 1;
  cr_assert_eq(run_main(deadline_main, &own), VOW_FULFILLED);
  cr_assert_str_eq(g_log.text,
                   "a:start b:start c:start a:done b:cancelled c:cancelled b:cleaned c:cleaned "
                   "group:timeout @60");
  END();
}

/* ---- cancel scopes ----------------------------------------------------------------
 *
 *   async def main():
 *       try:
 *           async with asyncio.timeout(0.05):
 *               log.append("before")
 *               await asyncio.sleep(1)
 *               log.append("not-reached")
 *       except TimeoutError:
 *           log.append("timeout")
 *       log.append("after")
 *       try:
 *           async with asyncio.timeout(0.05):
 *               try:
 *                   async with asyncio.timeout(0.1):
 *                       await asyncio.sleep(1)
 *               except TimeoutError:
 *                   log.append("inner:timeout")
 *               finally:
 *                   log.append("inner:exit")
 *               log.append("outer:not-reached")
 *       except TimeoutError:
 *           log.append("outer:timeout")
 *
 * python3 prints:
 *   before timeout after inner:exit outer:timeout
 * The inner scope does not report the outer's deadline as its own (its end
 * returns 0), and the outer scope's next await fails at once. */
static vow_value timeout_main(vow_loop *l, void *arg) {
  (void)arg;
  vow_scope *s, *outer, *inner;
  cr_assert_eq(vow_scope_begin(l, &(vow_scope_options){.timeout_ms = 50}, &s), 0);
  LOG("before");
  if (sleep_ms(1000) == 0) LOG("not-reached");
  vow_value reason;
  if (vow_scope_end(s, &reason) == VOW_ETIMEDOUT) LOG("timeout");
  cr_assert_eq(vow_error_code(reason), VOW_ETIMEDOUT);
  vow_unref(reason);
  LOG("after");
  cr_assert_eq(now_ms(), 50); /* the 1 s timer was cleared with the scope's cancellation */

  cr_assert_eq(vow_scope_begin(l, &(vow_scope_options){.timeout_ms = 50}, &outer), 0);
  cr_assert_eq(vow_scope_begin(l, &(vow_scope_options){.timeout_ms = 100}, &inner), 0);
  cr_assert_eq(sleep_ms(1000), VOW_ETIMEDOUT);
  if (vow_scope_end(inner, NULL) == VOW_ETIMEDOUT) LOG("inner:timeout");
  LOG("inner:exit");
  if (vow_await_value(vow_int(1), NULL) == 0) LOG("outer:not-reached");
  if (vow_scope_end(outer, NULL) == VOW_ETIMEDOUT) LOG("outer:timeout");
  cr_assert_eq(now_ms(), 100);
  return vow_undefined();
}

Test(structured, scope_deadline_reaches_every_await) {
  cr_assert_eq(run_main(timeout_main, NULL), VOW_FULFILLED);
  cr_assert_str_eq(g_log.text, "before timeout after inner:exit outer:timeout");
  END();
}

/* A scope's signal, and vow_scope_cancel: VOW_EABORTED with the reason. */
static vow_value signal_main(vow_loop *l, void *arg) {
  vow_abort_signal *sig = arg;
  vow_scope *s;
  cr_assert_eq(vow_scope_begin(l, &(vow_scope_options){.signal = sig}, &s), 0);
  vow_value v;
  cr_assert_eq(vow_await(vow_delay(l, 1000, vow_undefined()), &v), VOW_EABORTED);
  LOG("woke:%s@%llu", vow_error_message(v), now_ms());
  vow_unref(v);
  /* Still cancelled: the next await fails at once, even of a settled promise. */
  cr_assert_eq(vow_await(vow_resolved(l, vow_int(1)), &v), VOW_EABORTED);
  vow_unref(v);
  cr_assert_eq(vow_scope_end(s, NULL), VOW_EABORTED);
  /* Outside it, awaits work again. */
  cr_assert_eq(vow_await(vow_resolved(l, vow_int(2)), &v), 0);
  cr_assert_eq(vow_as_int(v), 2);

  cr_assert_eq(vow_scope_begin(l, NULL, &s), 0);
  cr_assert_eq(vow_scope_cancel(s, vow_error(VOW_EABORTED, "by hand")), 1);
  cr_assert_eq(vow_scope_cancel(s, vow_undefined()), 0);
  cr_assert_eq(vow_await_value(vow_int(3), &v), VOW_EABORTED);
  LOG("%s", vow_error_message(v));
  vow_unref(v);
  cr_assert_eq(vow_scope_end(s, NULL), VOW_EABORTED);
  return vow_undefined();
}

static void abort_it(vow_loop *l, void *sig) {
  (void)l;
  vow_abort(sig, vow_error(VOW_EABORTED, "stop"));
}

Test(structured, scope_signal_wakes_the_await) {
  vow_abort_signal *sig = vow_abort_signal_new(loop);
  vow_set_timeout(loop, 30, abort_it, sig);
  cr_assert_eq(run_main(signal_main, sig), VOW_FULFILLED);
  cr_assert_str_eq(g_log.text, "woke:stop@30 by hand");
  vow_abort_signal_unref(sig);
  END();
}

/* A shield keeps the scopes around it out; its own deadline still counts. */
static vow_value shield_main(vow_loop *l, void *arg) {
  (void)arg;
  vow_scope *s, *shield, *timed;
  cr_assert_eq(vow_scope_begin(l, &(vow_scope_options){.timeout_ms = 10}, &s), 0);
  cr_assert_eq(sleep_ms(100), VOW_ETIMEDOUT);
  cr_assert_eq(vow_shield_begin(l, &shield), 0);
  cr_assert_eq(vow_scope_signal_current(l), vow_scope_signal(shield));
  cr_assert_eq(sleep_ms(20), 0);
  LOG("shielded@%llu", now_ms());
  cr_assert_eq(vow_scope_end(shield, NULL), 0);
  cr_assert_eq(vow_scope_begin(l, &(vow_scope_options){.shield = 1, .timeout_ms = 5}, &timed), 0);
  cr_assert_eq(sleep_ms(100), VOW_ETIMEDOUT);
  LOG("own-deadline@%llu", now_ms());
  cr_assert_eq(vow_scope_end(timed, NULL), VOW_ETIMEDOUT);
  cr_assert_eq(vow_scope_end(s, NULL), VOW_ETIMEDOUT);
  cr_assert_null(vow_scope_signal_current(l));
  return vow_undefined();
}

Test(structured, shield_keeps_outer_cancellation_out) {
  cr_assert_eq(run_main(shield_main, NULL), VOW_FULFILLED);
  cr_assert_str_eq(g_log.text, "shielded@30 own-deadline@35");
  END();
}

/* A scope opened inside a cancelled one is cancelled from the start; one left
 * open is closed with the scope around it. */
static vow_value nested_main(vow_loop *l, void *arg) {
  (void)arg;
  vow_scope *s, *inner, *left;
  cr_assert_eq(vow_scope_begin(l, NULL, &s), 0);
  vow_scope_cancel(s, vow_undefined());
  cr_assert_eq(vow_scope_begin(l, NULL, &inner), 0);
  cr_assert(vow_abort_signal_aborted(vow_scope_signal(inner)));
  cr_assert_eq(vow_await_value(vow_int(1), NULL), VOW_EABORTED);
  /* Cancelled by the outer scope only: not this one's to report. */
  cr_assert_eq(vow_scope_end(inner, NULL), 0);
  cr_assert_eq(vow_scope_begin(l, NULL, &left), 0);
  cr_assert_eq(vow_scope_end(s, NULL), VOW_EABORTED); /* closes left too */
  cr_assert_null(vow_scope_signal_current(l));
  return vow_undefined();
}

Test(structured, nested_scopes_inherit_cancellation) {
  cr_assert_eq(run_main(nested_main, NULL), VOW_FULFILLED);
  END();
}

/* The awaited promise goes on, unobserved: its rejection is not unhandled. */
static vow_value unobserved_main(vow_loop *l, void *arg) {
  (void)arg;
  vow_scope *s;
  cr_assert_eq(vow_scope_begin(l, &(vow_scope_options){.timeout_ms = 5}, &s), 0);
  vow_promise *p = vow_promise_new(l);
  cr_assert_eq(vow_await(vow_promise_ref(p), NULL), VOW_ETIMEDOUT);
  vow_promise_reject(p, vow_error(VOW_EINVAL, "late"));
  vow_promise_unref(p);
  cr_assert_eq(vow_await(vow_rejected(l, vow_error(VOW_EINVAL, "given up")), NULL), VOW_ETIMEDOUT);
  vow_scope_end(s, NULL);
  return vow_undefined();
}

Test(structured, a_promise_given_up_on_is_not_an_unhandled_rejection) {
  cr_assert_eq(run_main(unobserved_main, NULL), VOW_FULFILLED); /* run returned 0 */
  END();
}

/* ---- limits, lifetimes, bad input ------------------------------------------------- */

static int running, max_running;

static vow_value counted(vow_loop *l, void *arg) {
  (void)l;
  task *t = arg;
  running++;
  if (running > max_running) max_running = running;
  LOG("%s+", t->name);
  cr_assert_eq(sleep_ms(t->ms), 0);
  LOG("%s-", t->name);
  running--;
  return vow_int((int64_t)t->ms);
}

static task five[] = {{"1", 30, 0, 0}, {"2", 10, 0, 0}, {"3", 10, 0, 0}, {"4", 10, 0, 0}, {"5", 10, 0, 0}};

static vow_value limit_main(vow_loop *l, void *arg) {
  (void)arg;
  vow_group *g = vow_group_new(l, &(vow_group_options){.limit = 2});
  for (int i = 0; i < 5; i++) cr_assert_eq(vow_group_spawn(g, counted, &five[i], NULL), 0);
  LOG("spawned");
  vow_value v;
  int rc = vow_group_await(g, &v);
  log_outcome("group", rc, v);
  LOG("@%llu", now_ms());
  vow_group_unref(g);
  return vow_undefined();
}

Test(structured, limit_bounds_the_children_running) {
  running = max_running = 0;
  cr_assert_eq(run_main(limit_main, NULL), VOW_FULFILLED);
  cr_assert_eq(max_running, 2);
  cr_assert_str_eq(g_log.text, "1+ 2+ spawned 2- 3+ 3- 4+ 1- 5+ 4- 5- group:ok:[30,10,10,10,10] @40");
  END();
}

/* A group released before it was awaited cancels its children: none is left
 * running unobserved, and the loop ends (nothing waits for 1 s). */
static task orphans[] = {{"p", 1000, 0, 10}, {"q", 1000, 0, 0}};

static void arg_freed(void *arg) {
  LOG("freed:%s", ((task *)arg)->name);
}

static vow_value release_main(vow_loop *l, void *arg) {
  (void)arg;
  vow_group *g = vow_group_new(l, &(vow_group_options){.limit = 1});
  vow_async_options o = {.arg_free = arg_freed};
  cr_assert_eq(vow_group_spawn(g, child, &orphans[0], &o), 0);
  cr_assert_eq(vow_group_spawn(g, child, &orphans[1], &o), 0); /* queued: never starts */
  vow_group_unref(g);
  LOG("released");
  return vow_undefined();
}

Test(structured, no_child_outlives_a_released_group) {
  cr_assert_eq(run_main(release_main, NULL), VOW_FULFILLED);
  cr_assert_str_eq(g_log.text, "p:start freed:q released p:cancelled p:cleaned freed:p");
  cr_assert_eq(now_ms(), 10);
  END();
}

static vow_value noop(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  return vow_undefined();
}

static vow_value misuse_main(vow_loop *l, void *arg) {
  vow_scope **other = arg;
  cr_assert_eq(vow_scope_end(*other, NULL), VOW_EINVAL); /* not this function's */
  cr_assert_eq(vow_scope_begin(l, NULL, NULL), VOW_EINVAL);
  vow_scope *s;
  cr_assert_eq(vow_scope_begin(l, &(vow_scope_options){.timeout_ms = VOW_TIMEOUT_MAX + 1}, &s), VOW_EINVAL);
  cr_assert_null(s);
  vow_value v;
  cr_assert_eq(vow_group_await(NULL, &v), VOW_EINVAL);
  vow_unref(v);

  vow_group *g = vow_group_new(l, NULL);
  cr_assert_eq(vow_group_spawn(g, NULL, NULL, NULL), VOW_EINVAL);
  cr_assert_eq(vow_group_await(g, &v), 0); /* no children: ends at once */
  cr_assert_eq(vow_array_len(v), 0);
  vow_unref(v);
  vow_async_options o = {.arg_free = arg_freed};
  cr_assert_eq(vow_group_spawn(g, noop, &orphans[0], &o), VOW_EINVAL); /* it has ended */
  vow_group_unref(g);

  g = vow_group_new(l, NULL);
  cr_assert_eq(vow_group_cancel(g, vow_undefined()), 1);
  cr_assert_eq(vow_group_spawn(g, noop, &orphans[1], &o), VOW_EABORTED);
  cr_assert_eq(vow_group_await(g, &v), VOW_EREJECTED);
  cr_assert_eq(vow_error_code(v), VOW_EABORTED);
  vow_unref(v);
  vow_group_unref(g);
  return vow_undefined();
}

static vow_value opener(vow_loop *l, void *arg) {
  vow_scope **out = arg;
  cr_assert_eq(vow_scope_begin(l, NULL, out), 0);
  vow_await(vow_delay(l, 10, vow_undefined()), NULL);
  cr_assert_eq(vow_scope_end(*out, NULL), 0);
  return vow_undefined();
}

Test(structured, misuse_is_refused) {
  vow_scope *s;
  cr_assert_eq(vow_scope_begin(loop, NULL, &s), VOW_ENOTASYNC);
  cr_assert_null(vow_scope_signal_current(loop));
  cr_assert_null(vow_group_new(loop, &(vow_group_options){.timeout_ms = VOW_TIMEOUT_MAX + 1}));
  cr_assert_eq(vow_group_spawn(NULL, noop, NULL, NULL), VOW_EINVAL);
  vow_promise *p = vow_async(loop, opener, &s);
  cr_assert_eq(run_main(misuse_main, &s), VOW_FULFILLED);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED);
  vow_promise_unref(p);
  cr_assert_str_eq(g_log.text, "freed:p freed:q");
  END();
}

/* The loop freed while a function waits inside a scope and a group: the
 * awaits return VOW_ECLOSING, everything is released (LeakSanitizer checks). */
static vow_value stuck(vow_loop *l, void *arg) {
  (void)arg;
  vow_scope *s;
  cr_assert_eq(vow_scope_begin(l, &(vow_scope_options){.timeout_ms = 100000}, &s), 0);
  vow_group *g = vow_group_new(l, NULL);
  vow_group_spawn(g, child, &orphans[1], NULL);
  vow_value v;
  int rc = vow_group_await(g, &v);
  LOG("group:%d", rc == VOW_ECLOSING);
  vow_unref(v);
  vow_group_unref(g);
  vow_scope_end(s, NULL);
  return vow_undefined();
}

Test(structured, teardown_releases_scopes_and_groups) {
  vow_promise *p = vow_async(loop, stuck, NULL);
  vow_promise_unref(p);
  END();
  cr_assert_str_eq(g_log.text, "q:start q:closing group:1");
}

/* ---- task dumps ----------------------------------------------------------------------- */

static vow_value fetcher(vow_loop *l, void *arg) {
  (void)arg;
  vow_await(vow_delay(l, 100, vow_undefined()), NULL);
  return vow_undefined();
}

static vow_value waits_forever(vow_loop *l, void *p) {
  (void)l;
  vow_scope *s;
  cr_assert_eq(vow_scope_begin(l, NULL, &s), 0);
  int rc = vow_await(vow_promise_ref(p), NULL);
  vow_scope_end(s, NULL);
  return vow_int(rc);
}

static char *dumped(void) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  cr_assert_geq(vow_loop_dump(loop, f), 0);
  fclose(f);
  return text;
}

static vow_value dump_main(vow_loop *l, void *arg) {
  vow_promise *never = arg;
  vow_group *g = vow_group_new(l, &(vow_group_options){.name = "fanout"});
  vow_async_options o = {.name = "fetch_one"};
  vow_group_spawn(g, fetcher, NULL, &o);
  vow_group_spawn(g, fetcher, NULL, &o);
  vow_promise_unref(vow_async_ex(l, waits_forever, never, &(vow_async_options){.name = "stuck"}));
  vow_await(vow_delay(l, 30, vow_undefined()), NULL);
  char *text = dumped();
  LOG("%s", text);
  free(text);
  vow_scope *s;
  vow_scope_begin(l, NULL, &s);
  vow_scope_cancel(s, vow_undefined());
  text = dumped();
  cr_assert(strstr(text, "running (it called the dump); in 1 cancel scope (cancelled)"), "%s", text);
  free(text);
  vow_scope_end(s, NULL);
  vow_group_await(g, NULL);
  vow_group_unref(g);
  vow_promise_resolve(never, vow_undefined());
  return vow_undefined();
}

Test(structured, dump_lists_every_live_function) {
  vow_promise *never = vow_promise_new(loop);
  vow_promise *p = vow_async_ex(loop, dump_main, never, &(vow_async_options){.name = "main"});
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED);
  vow_promise_unref(p);
  vow_promise_unref(never);
  cr_assert(strstr(g_log.text, "4 async functions alive\n"
                               "  async 'main', age 30 ms: running (it called the dump)\n"
                               "  async 'fetch_one', age 30 ms: awaiting a timer (vow_delay); in task group 'fanout'\n"
                               "  async 'fetch_one', age 30 ms: awaiting a timer (vow_delay); in task group 'fanout'\n"
                               "  async 'stuck', age 30 ms: awaiting a pending promise; in 1 cancel scope\n"),
            "%s", g_log.text);
  cr_assert_eq(vow_loop_dump(NULL, stdout), VOW_EINVAL);
  END();
}

/* VOW_DUMP_ON=SIGUSR1,exit: the dump on the signal, and at the loop's end. */
static void signalled(uv_signal_t *h, int signum) {
  (void)signum;
  vow_loop *l = h->data;
  uv_close((uv_handle_t *)h, NULL);
  vow_loop_release(l);
}

Test(structured, dump_on_signal_and_at_exit) {
  vow_loop_free(loop); /* this test makes its own, with the environment set */
  setenv("VOW_DUMP_ON", "SIGUSR1,exit", 1);
  cr_assert_eq(vow_loop_new(&loop, NULL), 0);
  char path[] = "/tmp/vow-dump-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  int saved = dup(2);
  dup2(fd, 2);
  vow_promise *never = vow_promise_new(loop);
  vow_promise_unref(vow_async_ex(loop, waits_forever, never, &(vow_async_options){.name = "sleeper"}));
  /* Our own watcher ends the run after the dump's has run (same batch). */
  static uv_signal_t mine;
  uv_signal_init(vow_loop_uv(loop), &mine);
  mine.data = loop;
  uv_signal_start(&mine, signalled, SIGUSR1);
  vow_loop_hold(loop);
  raise(SIGUSR1);
  cr_assert_eq(vow_loop_run(loop), 0);
  vow_promise_unref(never); /* pending for ever: the exit dump shows sleeper */
  vow_loop_free(loop);
  loop = NULL;
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  FILE *f = fdopen(fd, "r");
  rewind(f);
  char text[4096] = {0};
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  unlink(path);
  unsetenv("VOW_DUMP_ON");
  cr_assert_gt(n, 0);
  const char *first = strstr(text, "async 'sleeper', age ");
  cr_assert(first, "%s", text);
  cr_assert(strstr(first + 1, "the loop is being freed with async functions still suspended:\n"), "%s", text);
  cr_assert(strstr(strstr(first + 1, "still suspended"), "async 'sleeper'"), "%s", text);
  TEST_LEAK_CHECK();
}

/* ---- I/O started inside a scope stops with it -------------------------------------------
 * A fetch given no signal takes the scope's: the deadline aborts the transfer
 * itself (its own promise rejects with the scope's reason), not only the
 * await. The server never answers. */
static vow_value never_answers(vow_loop *l, vow_request *req, void *data) {
  (void)l, (void)data;
  return vow_promise_value(vow_abort_signal_promise(vow_request_signal(req)));
}

static vow_value fetch_main(vow_loop *l, void *arg) {
  (void)arg;
  vow_server *server;
  cr_assert_eq(vow_server_listen(l, NULL, never_answers, NULL, &server), 0);
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/stall", vow_server_port(server));
  vow_scope *s;
  cr_assert_eq(vow_scope_begin(l, &(vow_scope_options){.timeout_ms = 50}, &s), 0);
  vow_promise *f = vow_fetch(l, url, NULL);
  vow_value v;
  cr_assert_eq(vow_await(vow_promise_ref(f), &v), VOW_ETIMEDOUT);
  vow_unref(v);
  cr_assert_eq(vow_scope_end(s, NULL), VOW_ETIMEDOUT);
  /* The transfer itself was aborted with the scope's reason. */
  cr_assert_eq(vow_promise_state(f), VOW_REJECTED);
  cr_assert_eq(vow_error_code(vow_promise_result(f)), VOW_ETIMEDOUT);
  vow_promise_unref(f);
  vow_await(vow_server_close(server), NULL);
  LOG("fetch:aborted");
  return vow_undefined();
}

Test(structured, fetch_started_in_a_scope_is_aborted_with_it) {
  cr_assert_eq(run_main(fetch_main, NULL), VOW_FULFILLED);
  cr_assert_str_eq(g_log.text, "fetch:aborted");
  END();
}

/* The new I/O calls stop with the scope they were started in, given no
 * signal of their own: a read of a FIFO nobody writes yet, a connect, a
 * lookup and a child process, all in flight when the scope is cancelled,
 * reject with the scope's reason. */
static vow_value io_main(vow_loop *l, void *arg) {
  (void)arg;
  char fifo[] = "/tmp/vow-scope-fifo-XXXXXX";
  cr_assert_not_null(mkdtemp(fifo));
  char path[64];
  snprintf(path, sizeof path, "%s/f", fifo);
  cr_assert_eq(mkfifo(path, 0600), 0);
  vow_tcp_server *srv;
  cr_assert_eq(vow_tcp_listen(l, "127.0.0.1", 0, NULL, &srv), 0);
  vow_scope *s;
  cr_assert_eq(vow_scope_begin(l, NULL, &s), 0);
  vow_promise *ops[] = {
      vow_fs_read_file(l, path, NULL),
      vow_tcp_connect(l, "127.0.0.1", vow_tcp_server_port(srv), NULL),
      vow_dns_lookup(l, "localhost", NULL),
      vow_exec(l, (const char *const[]){"sleep", "10", NULL}, NULL),
  };
  cr_assert_eq(vow_scope_cancel(s, vow_error(VOW_EABORTED, "stop everything")), 1);
  cr_assert_eq(vow_scope_end(s, NULL), VOW_EABORTED);
  /* Handlers on all four at once: each may settle while another is awaited. */
  vow_promise *all = vow_all_settled_promises(l, ops, 4);
  /* The connect and the lookup are rejected at once. */
  for (int i = 1; i < 3; i++)
    cr_assert_eq(vow_promise_state(ops[i]), VOW_REJECTED, "operation %d kept going", i);
  /* A file call settles once its pool job is back (fs_op.c). The job was
   * either still queued (then cancelled: it settles at once) or is blocked
   * in open() until a writer comes: a writer that never blocks is offered
   * until one of the two happens. Unaborted the read would then fulfil with
   * "" (the writer wrote nothing). The exec's child is killed at once, and
   * its promise settles when the child has exited (it would sleep 10 s). */
  while (vow_promise_state(ops[0]) == VOW_PENDING) {
    int w = open(path, O_WRONLY | O_NONBLOCK); /* ENXIO while no reader has it open */
    if (w >= 0) {
      close(w);
      break;
    }
    vow_await(vow_delay(l, 1, vow_undefined()), NULL);
  }
  cr_assert_eq(vow_await(all, NULL), 0);
  for (int i = 0; i < 4; i++) {
    char shown[160];
    vow_value_format(vow_promise_result(ops[i]), shown, sizeof shown);
    cr_assert_eq(vow_promise_state(ops[i]), VOW_REJECTED, "operation %d gave %s", i, shown);
    cr_assert_str_eq(vow_error_message(vow_promise_result(ops[i])), "stop everything");
    vow_promise_unref(ops[i]);
  }
  vow_await(vow_tcp_server_close(srv), NULL);
  unlink(path);
  rmdir(fifo);
  LOG("io:aborted");
  return vow_undefined();
}

Test(structured, io_started_in_a_scope_is_aborted_with_it) {
  cr_assert_eq(run_main(io_main, NULL), VOW_FULFILLED);
  cr_assert_str_eq(g_log.text, "io:aborted");
  END();
}
