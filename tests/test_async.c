/*
 * test_async.c — async functions, await, async generators and for-await,
 * tick for tick as Node.js 20. Each test quotes its JavaScript and node's output.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "core/loop.h"
#include "handlers.h"
#include "log.h"
#include "vow.h"

LOOP_SUITE(async, NULL);

/* Promise.resolve().then(t1).then(t2)... with labels t1..tn */
static const char *labels[] = {"t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9", "t10", "t11", "t12"};
static void ticks(int n) {
  vow_promise *cur = vow_resolved(loop, vow_undefined());
  for (int i = 0; i < n; i++) {
    vow_promise *next = vow_then(cur, say, NULL, (void *)labels[i]);
    vow_promise_unref(cur);
    cur = next;
  }
  vow_promise_unref(cur);
}
static void drop(vow_promise *p) { vow_promise_unref(p); }
static void then_drop(vow_promise *p, vow_handler ok, vow_handler err, void *ctx) {
  vow_promise_unref(vow_then(p, ok, err, ctx));
  vow_promise_unref(p);
}

/* log('a'); (async () => { log('b'); await null; log('d') })(); log('c')   node: a b c d */
static vow_value body_abcd(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  LOG("b");
  cr_assert_eq(vow_await_value(vow_undefined(), NULL), 0);
  LOG("d");
  return vow_undefined();
}
LOOP_TEST(async, body_runs_synchronously_until_the_first_await) {
  LOG("a");
  drop(vow_async(loop, body_abcd, NULL));
  LOG("c");
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "a b c d");
}

/* (async () => { await undefined; log('aw1'); await Promise.resolve(); log('aw2');
 *   await 3; log('aw3') })(); ticks(4)         node: aw1 t1 aw2 t2 aw3 t3 t4 */
static vow_value body_awaits(vow_loop *l, void *arg) {
  (void)arg;
  vow_value v;
  vow_await_value(vow_undefined(), NULL);
  LOG("aw1");
  vow_await(vow_resolved(l, vow_undefined()), NULL);
  LOG("aw2");
  cr_assert_eq(vow_await_value(vow_int(3), &v), 0);
  cr_assert_eq(vow_as_int(v), 3);
  LOG("aw3");
  return vow_undefined();
}
LOOP_TEST(async, await_costs_one_tick) {
  drop(vow_async(loop, body_awaits, NULL));
  ticks(4);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "aw1 t1 aw2 t2 aw3 t3 t4");
}

/* An await that finds nothing else queued carries on without suspending (the
 * drain would resume it next anyway): a long run of such awaits keeps the
 * order above and lets a macrotask run only when all are done.
 * (async () => { for (let i = 0; i < 1000; i++) await i; log('done') })();
 * setImmediate(() => log('immediate')); queueMicrotask(() => log('micro'))
 *                                       node: micro done 499500 immediate */
static vow_value thousand_awaits(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  int64_t sum = 0;
  for (int i = 0; i < 1000; i++) {
    vow_value v;
    cr_assert_eq(vow_await_value(vow_int(i), &v), 0);
    sum += vow_as_int(v);
  }
  LOG("done %lld", (long long)sum);
  return vow_undefined();
}
static void say_task(vow_loop *l, void *word) {
  (void)l;
  LOG("%s", (const char *)word);
}
LOOP_TEST(async, awaits_in_a_row_run_before_the_next_macrotask) {
  drop(vow_async(loop, thousand_awaits, NULL));
  cr_assert_gt(vow_set_immediate(loop, say_task, "immediate"), 0);
  cr_assert_eq(vow_queue_microtask(loop, say_task, "micro"), 0);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "micro done 499500 immediate");
}

/* What the body drops after an await is freed at once: neither the job that
 * resumed it nor the reaction keeps a reference of its own. */
static int destroyed;
static void count_destroy(void *ptr) {
  (void)ptr;
  destroyed++;
}
static vow_value drops_what_it_awaited(vow_loop *l, void *gate) {
  (void)l;
  vow_value v;
  cr_assert_eq(vow_await(vow_promise_ref(gate), &v), 0); /* pending: resumed by a job */
  vow_unref(v);
  cr_assert_eq(destroyed, 1, "released by the body's own unref");
  cr_assert_eq(vow_await_value(vow_pointer(NULL, count_destroy), &v), 0); /* settled: the fast path */
  vow_unref(v);
  cr_assert_eq(destroyed, 2);
  return vow_undefined();
}
LOOP_TEST(async, an_awaited_value_dropped_by_the_body_is_freed_at_once) {
  destroyed = 0;
  vow_promise *gate = vow_promise_new(loop);
  vow_promise *done = vow_async(loop, drops_what_it_awaited, gate);
  vow_promise_resolve(gate, vow_pointer(NULL, count_destroy));
  vow_promise_unref(gate); /* the body and the promise's result hold the rest */
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(done), VOW_FULFILLED);
  vow_promise_unref(done);
}

/* The loop freed while a body waits to resume after awaiting a plain value:
 * the value, held for the resumption that never runs, is released (ASan's
 * leak check would see it otherwise). */
static vow_value awaits_a_string(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  vow_value v;
  cr_assert_eq(vow_await_value(vow_string("held until the teardown"), &v), VOW_ECLOSING);
  vow_unref(v);
  LOG("closed");
  return vow_undefined();
}
LOOP_TEST(async, loop_freed_during_an_await_of_a_plain_value) {
  drop(vow_async(loop, awaits_a_string, NULL)); /* suspends: its resumption is queued */
  cr_assert_eq(vow_loop_free(loop), 0);
  loop = NULL;
  cr_assert_str_eq(LOG_TEXT(), "closed");
  cr_assert_eq(vow_loop_new(&loop, NULL), 0); /* LOOP_TEST frees one */
}

/* (async () => Promise.resolve('r'))().then(v => log('ret ' + v));
 * (async () => 'plain')().then(v => log('plain ' + v)); ticks(5)
 * node: plain plain t1 t2 ret r t3 t4 t5 */
static vow_value returns_promise(vow_loop *l, void *arg) {
  (void)arg;
  return vow_promise_value(vow_resolved(l, vow_string("r")));
}
static vow_value returns_plain(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  return vow_string("plain");
}
LOOP_TEST(async, returning_a_promise_costs_three_ticks) {
  then_drop(vow_async(loop, returns_promise, NULL), say_value, NULL, "ret");
  then_drop(vow_async(loop, returns_plain, NULL), say_value, NULL, "plain");
  ticks(5);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "plain \"plain\" t1 t2 ret \"r\" t3 t4 t5");
}

/* (async () => { try { await Promise.reject('bad'); log('no') } catch (e) { log('caught ' + e) }
 *   return 'ok' })().then(v => log('then ' + v));
 * (async () => { throw 'boom' })().catch(e => log('rej ' + e)); ticks(3)
 * node: caught bad rej boom t1 then ok t2 t3 */
static vow_value try_catch(vow_loop *l, void *arg) {
  (void)arg;
  vow_value e;
  if (vow_await(vow_rejected(l, vow_string("bad")), &e) == VOW_EREJECTED) {
    say_value(l, e, "caught");
  } else {
    LOG("no");
  }
  vow_unref(e);
  return vow_string("ok");
}
static vow_value throws(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  return vow_throw(vow_string("boom"));
}
LOOP_TEST(async, rejection_is_the_catch_of_try_catch) {
  then_drop(vow_async(loop, try_catch, NULL), say_value, NULL, "then");
  vow_promise *t = vow_async(loop, throws, NULL);
  drop(vow_catch(t, say_value, "rej"));
  drop(t);
  ticks(3);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "caught \"bad\" rej \"boom\" t1 then \"ok\" t2 t3");
}

/* Sequential vs parallel, with two 40 ms sources: the parallel version starts
 * both before awaiting. Order is asserted; the elapsed times only loosely. */
static vow_value sequential(vow_loop *l, void *arg) {
  (void)arg;
  vow_value a, b;
  vow_await(vow_delay(l, 40, vow_string("user")), &a);
  vow_await(vow_delay(l, 40, vow_string("posts")), &b);
  LOG("seq %s %s", vow_str(a), vow_str(b));
  vow_unref(a), vow_unref(b);
  return vow_undefined();
}
static vow_value parallel(vow_loop *l, void *arg) {
  (void)arg;
  vow_value a, b;
  vow_promise *pa = vow_delay(l, 40, vow_string("user"));
  vow_promise *pb = vow_delay(l, 40, vow_string("posts"));
  vow_await(pa, &a);
  vow_await(pb, &b);
  LOG("par %s %s", vow_str(a), vow_str(b));
  vow_unref(a), vow_unref(b);
  return vow_undefined();
}
LOOP_TEST(async, sequential_waits_for_each_parallel_overlaps) {
  uint64_t t0 = vow_loop_now(loop);
  drop(vow_async(loop, sequential, NULL));
  cr_assert_eq(vow_loop_run(loop), 0);
  uint64_t seq = vow_loop_now(loop) - t0;
  t0 = vow_loop_now(loop);
  drop(vow_async(loop, parallel, NULL));
  cr_assert_eq(vow_loop_run(loop), 0);
  uint64_t par = vow_loop_now(loop) - t0;
  cr_assert_str_eq(LOG_TEXT(), "seq user posts par user posts");
  cr_assert_geq(seq, 80, "sequential awaited both delays one after the other (%llu ms)",
                (unsigned long long)seq);
  cr_assert_geq(par, 40);
}

LOOP_TEST(async, await_outside_an_async_function_is_an_error) {
  vow_value e;
  cr_assert_eq(vow_await(vow_resolved(loop, vow_int(1)), &e), VOW_ENOTASYNC);
  cr_assert_eq(vow_error_code(e), VOW_ENOTASYNC);
  vow_unref(e);
  cr_assert_eq(vow_await_value(vow_string("released"), NULL), VOW_ENOTASYNC);
  cr_assert_eq(vow_yield(vow_int(1), NULL), VOW_ENOTASYNC);
  cr_assert_null(vow_current_loop());
}

static int forever_rc;
static vow_value await_forever(vow_loop *l, void *arg) {
  vow_promise *never = vow_promise_new(l);
  *(vow_promise **)arg = vow_promise_ref(never);
  vow_value v;
  forever_rc = vow_await(never, &v);
  LOG("resumed with %s", vow_err_name(forever_rc));
  vow_unref(v);
  cr_assert_eq(vow_await(vow_delay(l, 1, vow_undefined()), NULL), VOW_ECLOSING,
               "later awaits fail at once");
  return vow_undefined();
}
/* A coroutine whose awaited promise never settles stays suspended while the
 * loop lives; freeing the loop resumes it with VOW_ECLOSING, so it can
 * release what it holds, and nothing leaks. */
Test(async, never_resumed_coroutine_is_closed_with_the_loop) {
  vow_promise *never = NULL;
  vow_promise *p = vow_async(loop, await_forever, &never);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(p), VOW_PENDING);
  cr_assert_str_eq(LOG_TEXT(), "");
  drop(p);
  drop(never);
  cr_assert_eq(vow_loop_free(loop), 0);
  loop = NULL;
  cr_assert_eq(forever_rc, VOW_ECLOSING);
  cr_assert_str_eq(LOG_TEXT(), "resumed with VOW_ECLOSING");
  TEST_LEAK_CHECK();
}

static vow_value recurse(int depth) {
  volatile char pad[1024];
  pad[0] = (char)depth;
  if (depth == 0) return vow_int(pad[0]);
  vow_value v = recurse(depth - 1);
  return vow_int(vow_as_int(v) + (pad[0] != 0));
}
static vow_value deep(vow_loop *l, void *arg) {
  (void)l;
  return recurse(*(int *)arg);
}
/* The stack size is per call: 200 KiB of recursion fits a 512 KiB stack. */
LOOP_TEST(async, stack_size_is_configurable_per_call) {
  int depth = 200;
  vow_async_options o = {.stack_size = 512 * 1024, .name = "deep"};
  vow_promise *p = vow_async_ex(loop, deep, &depth, &o);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED);
  cr_assert_eq(vow_as_int(vow_promise_result(p)), 200);
  drop(p);
}

/* ---- async generators ---- */

/* async function* g() { log('g-start'); yield 1; log('g-after1'); await null;
 *   yield Promise.resolve(2); log('g-end'); return 'R' }
 * (async () => { for await (const x of g()) log('x ' + x); log('loop-done') })(); ticks(8)
 * node: g-start t1 x 1 g-after1 t2 t3 t4 x 2 g-end t5 t6 loop-done t7 t8 */
static vow_value gen_basic(vow_loop *l, vow_asyncgen *g, void *arg) {
  (void)g, (void)arg;
  LOG("g-start");
  vow_yield(vow_int(1), NULL);
  LOG("g-after1");
  vow_await_value(vow_undefined(), NULL);
  vow_yield(vow_promise_value(vow_resolved(l, vow_int(2))), NULL);
  LOG("g-end");
  return vow_string("R");
}
static vow_value consume(vow_loop *l, void *fn) {
  vow_for_await it;
  cr_assert_eq(vow_for_await_gen(&it, vow_asyncgen_new(l, (vow_asyncgen_fn)fn, NULL)), 0);
  VOW_FOR_AWAIT(&it, x) say_value(l, x, "x");
  cr_assert_eq(vow_for_await_end(&it, NULL), 0);
  LOG("loop-done");
  return vow_undefined();
}
LOOP_TEST(async, for_await_over_a_generator) {
  drop(vow_async(loop, consume, (void *)gen_basic));
  ticks(8);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "g-start t1 x 1 g-after1 t2 t3 t4 x 2 g-end t5 t6 loop-done t7 t8");
}

/* (async () => { for await (const x of [1, Promise.resolve(2), after(5, 3)]) log('x ' + x);
 *   log('done') })(); ticks(5)     node: t1 x 1 t2 t3 x 2 t4 t5 x 3 done */
static vow_value consume_array(vow_loop *l, void *arg) {
  (void)arg;
  vow_for_await it;
  vow_value items[] = {vow_int(1), vow_promise_value(vow_resolved(l, vow_int(2))),
                       vow_promise_value(vow_delay(l, 5, vow_int(3)))};
  cr_assert_eq(vow_for_await_array(&it, l, items, 3), 0);
  VOW_FOR_AWAIT(&it, x) say_value(l, x, "x");
  vow_for_await_end(&it, NULL);
  LOG("done");
  return vow_undefined();
}
LOOP_TEST(async, for_await_over_an_array) {
  drop(vow_async(loop, consume_array, NULL));
  ticks(5);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "t1 x 1 t2 t3 x 2 t4 t5 x 3 done");
}

/* async function* g() { try { yield 1; yield 2; yield 3 } finally { log('cleanup') } }
 * (async () => { for await (const x of g()) { log('x ' + x); if (x === 2) break }
 *   log('after-break') })(); ticks(10)
 * node: t1 x 1 t2 t3 x 2 t4 cleanup t5 after-break t6 t7 t8 t9 t10 */
static vow_value gen_cleanup(vow_loop *l, vow_asyncgen *g, void *arg) {
  (void)l, (void)g, (void)arg;
  vow_value sent = vow_undefined();
  int rc = 0;
  for (int i = 1; i <= 3 && rc == 0; i++) {
    vow_unref(sent);
    rc = vow_yield(vow_int(i), &sent);
  }
  LOG("cleanup");
  if (rc == VOW_EDONE) return sent; /* the return request's value */
  vow_unref(sent);
  return vow_undefined();
}
static vow_value consume_break(vow_loop *l, void *arg) {
  (void)arg;
  vow_for_await it;
  vow_for_await_gen(&it, vow_asyncgen_new(l, gen_cleanup, NULL));
  VOW_FOR_AWAIT(&it, x) {
    say_value(l, x, "x");
    if (vow_as_int(x) == 2) break;
  }
  vow_for_await_end(&it, NULL);
  LOG("after-break");
  return vow_undefined();
}
LOOP_TEST(async, break_runs_the_generator_cleanup) {
  drop(vow_async(loop, consume_break, NULL));
  ticks(10);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "t1 x 1 t2 t3 x 2 t4 cleanup t5 after-break t6 t7 t8 t9 t10");
}

/* async function* g() { const a = yield 1; log('got ' + a); const b = yield 2;
 *   log('got ' + b); return 'end' }
 * const it = g(); it.next('ignored')...; it.next('A'); it.next('B'); it.next('C'); ticks(6)
 * node: got A t1 {1,false} got B t2 {2,false} t3 {"end",true} {undefined,true} t4 t5 t6 */
static vow_value gen_sent(vow_loop *l, vow_asyncgen *g, void *arg) {
  (void)g, (void)arg;
  vow_value a, b;
  vow_yield(vow_int(1), &a);
  say_value(l, a, "got");
  vow_yield(vow_int(2), &b);
  say_value(l, b, "got");
  vow_unref(a), vow_unref(b);
  return vow_string("end");
}
LOOP_TEST(async, queued_next_calls_are_answered_in_order) {
  vow_asyncgen *g = vow_asyncgen_new(loop, gen_sent, NULL);
  then_drop(vow_asyncgen_next(g, vow_string("ignored")), say_value, NULL, "r");
  then_drop(vow_asyncgen_next(g, vow_string("A")), say_value, NULL, "r");
  then_drop(vow_asyncgen_next(g, vow_string("B")), say_value, NULL, "r");
  then_drop(vow_asyncgen_next(g, vow_string("C")), say_value, NULL, "r");
  vow_asyncgen_unref(g);
  ticks(6);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(),
                   "got \"A\" t1 r {value:1,done:false} got \"B\" t2 r {value:2,done:false} t3 "
                   "r {value:\"end\",done:true} r {value:undefined,done:true} t4 t5 t6");
}

/* async function* g() { yield 1 } const it = g();
 * it.return('early').then(r => log('ret', r)); it.next().then(r => log('next', r)); ticks(4)
 * node: t1 ret {"early",true} next {undefined,true} t2 t3 t4 */
static vow_value gen_one(vow_loop *l, vow_asyncgen *g, void *arg) {
  (void)l, (void)g, (void)arg;
  LOG("body-ran?!");
  vow_yield(vow_int(1), NULL);
  return vow_undefined();
}
LOOP_TEST(async, return_before_start_never_runs_the_body) {
  vow_asyncgen *g = vow_asyncgen_new(loop, gen_one, NULL);
  then_drop(vow_asyncgen_return(g, vow_string("early")), say_value, NULL, "ret");
  then_drop(vow_asyncgen_next(g, vow_undefined()), say_value, NULL, "next");
  vow_asyncgen_unref(g);
  ticks(4);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "t1 ret {value:\"early\",done:true} next {value:undefined,done:true} t2 t3 t4");
}

/* async function* g() { try { yield 1 } catch (e) { log('gen caught ' + e); yield 'recovered' } }
 * it.next(); it.throw('E'); it.next(); ticks(6)
 * node: gen caught E t1 {1,false} t2 t {"recovered",false} {undefined,true} t3 t4 t5 t6 */
static vow_value gen_catch(vow_loop *l, vow_asyncgen *g, void *arg) {
  (void)g, (void)arg;
  vow_value e;
  if (vow_yield(vow_int(1), &e) == VOW_EREJECTED) {
    say_value(l, e, "gen caught");
    vow_yield(vow_string("recovered"), NULL);
  }
  vow_unref(e);
  return vow_undefined();
}
LOOP_TEST(async, throw_reaches_the_body_at_its_yield) {
  vow_asyncgen *g = vow_asyncgen_new(loop, gen_catch, NULL);
  then_drop(vow_asyncgen_next(g, vow_undefined()), say_value, NULL, "r");
  then_drop(vow_asyncgen_throw(g, vow_string("E")), say_value, NULL, "t");
  then_drop(vow_asyncgen_next(g, vow_undefined()), say_value, NULL, "r");
  vow_asyncgen_unref(g);
  ticks(6);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "gen caught \"E\" t1 r {value:1,done:false} t2 t {value:\"recovered\",done:false} "
                               "r {value:undefined,done:true} t3 t4 t5 t6");
}

/* A generator dropped while suspended at a yield is released (its stack too). */
LOOP_TEST(async, dropping_a_suspended_generator_releases_it) {
  vow_asyncgen *g = vow_asyncgen_new(loop, gen_sent, NULL);
  drop(vow_asyncgen_next(g, vow_undefined()));
  cr_assert_eq(vow_loop_run(loop), 0);
  vow_asyncgen_unref(g);
}

/* 10 000 async functions suspended at once, then all resumed. */
static vow_value wait_gate(vow_loop *l, void *gate) {
  (void)l;
  vow_value v;
  vow_await(vow_promise_ref(gate), &v);
  return v;
}
LOOP_TEST(async, ten_thousand_suspended_coroutines) {
  enum { N = 10000 };
  vow_promise *gate = vow_promise_new(loop);
  vow_value *all = malloc(N * sizeof *all);
  for (int i = 0; i < N; i++) all[i] = vow_promise_value(vow_async(loop, wait_gate, gate));
  vow_promise *done = vow_all(loop, all, N);
  free(all);
  vow_promise_resolve(gate, vow_int(7));
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(done), VOW_FULFILLED);
  cr_assert_eq(vow_array_len(vow_promise_result(done)), N);
  cr_assert_eq(vow_as_int(vow_array_get(vow_promise_result(done), N - 1)), 7);
  drop(done);
  drop(gate);
}

/* ---- stack overflow in an async function ---- */

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

/* Frames smaller than a page, so the overflow lands in the guard page. */
static unsigned long endless(unsigned long n) {
  volatile char pad[256];
  pad[0] = (char)n;
  if (n == (unsigned long)-1) return 0; /* never: keeps -Winfinite-recursion quiet */
  unsigned long r = endless(n + 1);
  return r + (unsigned long)pad[0];
}
static vow_value runaway(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  return vow_int((int64_t)endless(0));
}

/* A loop whose coroutines get 64 KiB stacks (the per-loop option); an async
 * function that recurses forever hits its guard page, and vow says which
 * function overflowed before aborting — instead of corrupting memory. */
Test(async_overflow, names_the_async_function) {
#if defined(__SANITIZE_ADDRESS__)
  cr_skip_test("ASan owns SIGSEGV and reports stack overflows itself");
#endif
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    dup2(fds[1], 2);
    vow_loop *l;
    vow_loop_options o = {.stack_size = 64 * 1024};
    vow_loop_new(&l, &o);
    vow_async_options ao = {.name = "parse_request"};
    vow_async_ex(l, runaway, NULL, &ao);
    _exit(0); /* not reached */
  }
  close(fds[1]);
  char out[512] = {0};
  size_t len = 0;
  ssize_t n;
  while (len < sizeof out - 1 && (n = read(fds[0], out + len, sizeof out - 1 - len)) > 0) len += (size_t)n;
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "the child aborted");
  cr_assert_not_null(strstr(out, "vow: stack overflow in coroutine 'parse_request'"), "stderr: %s", out);
}

/* asyncio.run(main()): a loop made, run and freed around one async function. */
static vow_value main_ok(vow_loop *l, void *arg) {
  vow_value v;
  vow_await(vow_delay(l, 1, vow_string(arg)), &v);
  return v;
}
static vow_value main_fails(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  return vow_throw(vow_string("main failed"));
}
Test(async_run, runs_one_async_function_to_the_end) {
  vow_value r;
  cr_assert_eq(vow_run(main_ok, "fine", NULL, &r), 0);
  cr_assert_str_eq(vow_str(r), "fine");
  vow_unref(r);
  cr_assert_eq(vow_run(main_fails, NULL, NULL, &r), VOW_EREJECTED);
  cr_assert_str_eq(vow_str(r), "main failed");
  vow_unref(r);
  cr_assert_eq(vow_run(NULL, NULL, NULL, NULL), VOW_EINVAL);
  TEST_LEAK_CHECK();
}

/* break out of VOW_FOR_AWAIT: the value of that pass is still released (by
 * vow_for_await_end), and so is every other. */
static int released;
static void count_release(void *p) {
  (void)p;
  released++;
}
static vow_value break_releases(vow_loop *l, void *arg) {
  (void)arg;
  vow_value items[3];
  for (int i = 0; i < 3; i++) items[i] = vow_pointer(&released, count_release);
  vow_for_await it;
  cr_assert_eq(vow_for_await_array(&it, l, items, 3), 0);
  int passes = 0;
  VOW_FOR_AWAIT(&it, v) {
    cr_assert_not_null(vow_as_pointer(v));
    if (++passes == 2) break;
  }
  cr_assert_eq(released, 1, "the first pass's value is released when the second begins");
  cr_assert_eq(vow_for_await_end(&it, NULL), 0);
  cr_assert_eq(released, 3, "the value of the pass left with break, and the one never reached");
  return vow_undefined();
}

LOOP_TEST(async, breaking_out_of_for_await_releases_the_value_of_that_pass) {
  released = 0;
  vow_promise *p = vow_async(loop, break_releases, NULL);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED);
  vow_promise_unref(p);
}

/* ---- an awaiting caller runs the callee's resumption itself (run_ahead) ---- */

/* async function callee(n) { await null; log('callee' + n); return n }
 * async function caller() { await null; log('caller');
 *   for (let n = 1; n <= 2; n++) log('got' + await callee(n));
 *   try { await callee(-3) } catch (e) { log('caught' + e) }; return 7 }   (callee throws n < 0)
 * caller(); ticks(6)     node: caller t1 callee1 t2 got1 t3 callee2 t4 got2 t5 callee-3 t6 caught-3
 * caller() alone         node: caller callee1 got1 callee2 got2 callee-3 caught-3
 * With nothing else queued, the caller runs the callee's resumption and takes
 * its own instead of switching to the drain (async.c, run_ahead); with the
 * ticks between them it may not, and the order must stay Node's either way. */
static vow_value callee(vow_loop *l, void *arg) {
  (void)l;
  cr_assert_eq(vow_await_value(vow_null(), NULL), 0);
  LOG("callee%d", (int)(intptr_t)arg);
  if ((intptr_t)arg < 0) return vow_throw(vow_int((intptr_t)arg));
  return vow_int((intptr_t)arg);
}
static vow_value caller(vow_loop *l, void *arg) {
  (void)arg;
  vow_value v;
  cr_assert_eq(vow_await_value(vow_null(), NULL), 0);
  LOG("caller");
  for (intptr_t n = 1; n <= 2; n++) {
    cr_assert_eq(vow_await(vow_async(l, callee, (void *)n), &v), 0);
    LOG("got%d", (int)vow_as_int(v));
  }
  /* a rejection taken the same way */
  cr_assert_eq(vow_await(vow_async(l, callee, (void *)(intptr_t)-3), &v), VOW_EREJECTED);
  LOG("caught%d", (int)vow_as_int(v));
  return vow_int(7);
}
LOOP_TEST(async, caller_awaiting_a_callee_keeps_nodes_order) {
  vow_promise *p = vow_async(loop, caller, NULL);
  ticks(6);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "caller t1 callee1 t2 got1 t3 callee2 t4 got2 t5 callee-3 t6 caught-3");
  cr_assert_eq(vow_as_int(vow_promise_result(p)), 7);
  drop(p);
  log_reset();
  p = vow_async(loop, caller, NULL); /* alone: every await of a callee runs ahead */
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "caller callee1 got1 callee2 got2 callee-3 caught-3");
  cr_assert_eq(vow_as_int(vow_promise_result(p)), 7);
  drop(p);
}

/* A then handler queued ahead of the callee's resumption runs from the
 * drain, not inside the awaiting caller: an await there is refused ("await
 * is only valid in async functions").
 *   Promise.resolve().then(() => log('handler')); const p = callee(1); log('got' + await p)
 *                                              node: handler callee1 got1 */
static vow_value handler_tries_await(vow_loop *l, vow_value v, void *d) {
  (void)l, (void)d;
  LOG("handler%s", vow_await_value(vow_null(), NULL) == VOW_ENOTASYNC ? "" : "-awaited!");
  return v;
}
static vow_value caller_with_handler(vow_loop *l, void *arg) {
  (void)arg;
  vow_value v;
  cr_assert_eq(vow_await_value(vow_null(), NULL), 0); /* now resumed by a job: may run ahead */
  then_drop(vow_resolved(l, vow_undefined()), handler_tries_await, NULL, NULL);
  vow_promise *p = vow_async(l, callee, (void *)(intptr_t)1);
  cr_assert_eq(vow_await(p, &v), 0);
  LOG("got%d", (int)vow_as_int(v));
  return v;
}
LOOP_TEST(async, run_ahead_never_runs_a_handler_inside_the_caller) {
  drop(vow_async(loop, caller_with_handler, NULL));
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "handler callee1 got1");
}
