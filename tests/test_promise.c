/*
 * test_promise.c — promises, combinators and unhandled rejections tick for
 * tick as Node.js 20. Each test quotes the JavaScript and what node printed.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "core/loop.h"
#include "handlers.h"
#include "log.h"
#include "vow.h"

LOOP_SUITE(promise, NULL);

/* ---- handlers used as building blocks (say, say_value: handlers.h) ---- */

static vow_value say_finally(vow_loop *l, void *label) {
  (void)l;
  LOG("%s", (const char *)label);
  return vow_undefined();
}

/* p.then(() => log(a)).then(() => log(b))... : a chain of n labels. */
static void chain(vow_promise *p, const char **labels) {
  vow_promise *cur = vow_promise_ref(p);
  for (; *labels; labels++) {
    vow_promise *next = vow_then(cur, say, NULL, (void *)*labels);
    vow_promise_unref(cur);
    cur = next;
  }
  vow_promise_unref(cur);
}

static void then_drop(vow_promise *p, vow_handler ok, vow_handler err, void *ctx) {
  vow_promise_unref(vow_then(p, ok, err, ctx));
}

/* const p = Promise.resolve(); new Promise(r => r(p)).then(() => log('adopt'));
 * p.then(t1).then(t2).then(t3)            node: t1 t2 adopt t3 */
LOOP_TEST(promise, resolve_with_promise_costs_two_ticks) {
  vow_promise *p = vow_resolved(loop, vow_undefined());
  vow_promise *q = vow_promise_new(loop);
  cr_assert_eq(vow_promise_resolve(q, vow_promise_value(vow_promise_ref(p))), 1);
  then_drop(q, say, NULL, "adopt");
  chain(p, (const char *[]){"t1", "t2", "t3", NULL});
  vow_promise_unref(p);
  vow_promise_unref(q);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "t1 t2 adopt t3");
}

static vow_value return_promise_x(vow_loop *l, vow_value v, void *ctx) {
  (void)v, (void)ctx;
  return vow_promise_value(vow_resolved(l, vow_string("x")));
}

/* Promise.resolve().then(() => Promise.resolve('x')).then(v => log('ret ' + v));
 * Promise.resolve().then(a).then(b).then(c).then(d)       node: a b c ret x d */
LOOP_TEST(promise, handler_returning_a_promise_is_adopted) {
  vow_promise *p = vow_resolved(loop, vow_undefined());
  vow_promise *r = vow_then(p, return_promise_x, NULL, NULL);
  then_drop(r, say_value, NULL, "ret");
  chain(p, (const char *[]){"a", "b", "c", "d", NULL});
  vow_promise_unref(r);
  vow_promise_unref(p);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "a b c ret \"x\" d");
}

/* Promise.resolve(1).finally(() => log('f')).then(v => log('fv ' + v));
 * Promise.reject(2).finally(() => log('g')).catch(v => log('gc ' + v));
 * Promise.resolve().then(a).then(b).then(c).then(d).then(e)
 * node: f g a b c fv 1 gc 2 d e */
LOOP_TEST(promise, finally_ordering_and_pass_through) {
  vow_promise *one = vow_resolved(loop, vow_int(1));
  vow_promise *f = vow_finally(one, say_finally, "f");
  then_drop(f, say_value, NULL, "fv");
  vow_promise *two = vow_rejected(loop, vow_int(2));
  vow_promise *g = vow_finally(two, say_finally, "g");
  vow_promise_unref(vow_catch(g, say_value, "gc"));
  vow_promise *p = vow_resolved(loop, vow_undefined());
  chain(p, (const char *[]){"a", "b", "c", "d", "e", NULL});
  vow_promise_unref(one), vow_promise_unref(f), vow_promise_unref(two), vow_promise_unref(g);
  vow_promise_unref(p);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "f g a b c fv 1 gc 2 d e");
}

static vow_value finally_throws(vow_loop *l, void *ctx) {
  (void)l, (void)ctx;
  return vow_throw(vow_string("boom"));
}
static vow_value finally_returns_rejected(vow_loop *l, void *ctx) {
  (void)ctx;
  return vow_promise_value(vow_rejected(l, vow_string("late boom")));
}

/* Promise.resolve(1).finally(() => { throw 'boom' }).catch(e => log('c1 ' + e));
 * Promise.resolve(1).finally(() => Promise.reject('late boom')).catch(e => log('c2 ' + e));
 * node: c1 boom c2 late boom */
LOOP_TEST(promise, finally_rejection_overrides_the_outcome) {
  vow_promise *a = vow_resolved(loop, vow_int(1));
  vow_promise *fa = vow_finally(a, finally_throws, NULL);
  vow_promise_unref(vow_catch(fa, say_value, "c1"));
  vow_promise *fb = vow_finally(a, finally_returns_rejected, NULL);
  vow_promise_unref(vow_catch(fb, say_value, "c2"));
  vow_promise_unref(a), vow_promise_unref(fa), vow_promise_unref(fb);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "c1 \"boom\" c2 \"late boom\"");
}

/* Promise.resolve(p) === p */
LOOP_TEST(promise, promise_resolve_returns_the_same_promise) {
  vow_promise *p = vow_promise_new(loop);
  vow_promise *same = vow_resolved(loop, vow_promise_value(vow_promise_ref(p)));
  cr_assert_eq(same, p);
  vow_promise_unref(same);
  vow_promise *other = vow_resolved(loop, vow_int(5));
  cr_assert_neq(other, p);
  cr_assert_eq(vow_promise_state(other), VOW_FULFILLED);
  cr_assert_eq(vow_as_int(vow_promise_result(other)), 5);
  vow_promise_unref(other);
  vow_promise_unref(p);
}

/* let res; const p = new Promise(r => res = r); res(p)  -> rejects with TypeError */
LOOP_TEST(promise, resolving_with_itself_rejects_with_a_type_error) {
  vow_promise *p = vow_promise_new(loop);
  vow_promise_unref(vow_catch(p, say_value, "caught"));
  cr_assert_eq(vow_promise_resolve(p, vow_promise_value(vow_promise_ref(p))), 1);
  cr_assert_eq(vow_promise_state(p), VOW_REJECTED);
  cr_assert_eq(vow_error_code(vow_promise_result(p)), VOW_ETYPE);
  vow_promise_unref(p);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "caught Error(VOW_ETYPE: Chaining cycle detected for promise #<Promise>)");
}

/* res(1); res(2); rej(3) -> fulfilled with 1 */
LOOP_TEST(promise, resolving_twice_is_a_no_op) {
  vow_promise *p = vow_promise_new(loop);
  cr_assert_eq(vow_promise_resolve(p, vow_int(1)), 1);
  cr_assert_eq(vow_promise_resolve(p, vow_string("leaks if kept")), 0);
  cr_assert_eq(vow_promise_reject(p, vow_int(3)), 0);
  cr_assert_eq(vow_as_int(vow_promise_result(p)), 1);
  /* Locked in to a pending promise: later calls are no-ops too. */
  vow_promise *q = vow_promise_new(loop), *pending = vow_promise_new(loop);
  cr_assert_eq(vow_promise_resolve(q, vow_promise_value(vow_promise_ref(pending))), 1);
  cr_assert_eq(vow_promise_reject(q, vow_int(9)), 0);
  vow_promise_resolve(pending, vow_int(7));
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(q), VOW_FULFILLED);
  cr_assert_eq(vow_as_int(vow_promise_result(q)), 7);
  vow_promise_unref(p), vow_promise_unref(q), vow_promise_unref(pending);
}

static vow_value throw_it(vow_loop *l, vow_value v, void *ctx) {
  (void)l, (void)v;
  return vow_throw(vow_string(ctx));
}

/* Promise.resolve().then(() => { throw 'e' }).then(() => log('skipped'))
 *   .catch(e => log('caught ' + e)).then(() => log('after'))  node: caught e after */
LOOP_TEST(promise, throw_skips_to_the_next_rejection_handler) {
  vow_promise *p = vow_resolved(loop, vow_undefined());
  vow_promise *a = vow_then(p, throw_it, NULL, "e");
  vow_promise *b = vow_then(a, say, NULL, "skipped");
  vow_promise *c = vow_catch(b, say_value, "caught");
  vow_promise *d = vow_then(c, say, NULL, "after");
  vow_promise_unref(p), vow_promise_unref(a), vow_promise_unref(b), vow_promise_unref(c),
      vow_promise_unref(d);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "caught \"e\" after");
}

static int ctx_frees;
static void count_free(void *ctx) {
  (void)ctx;
  ctx_frees++;
}

/* A pending promise dropped with handlers attached releases them unrun. */
LOOP_TEST(promise, dropping_a_pending_promise_releases_its_reactions) {
  ctx_frees = 0;
  vow_promise *p = vow_promise_new(loop);
  vow_promise *d = NULL;
  for (int i = 0; i < 3; i++) {
    vow_promise *next = vow_then_full(d ? d : p, say, NULL, "never", count_free);
    vow_promise_unref(d);
    d = next;
  }
  vow_promise_unref(d);
  vow_promise_unref(p);
  cr_assert_eq(ctx_frees, 3);
  cr_assert_eq(loop->pool.live, 0, "every promise and reaction went back to the pool");
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "");
}

/* A long chain released at once is released iteratively (no deep recursion). */
LOOP_TEST(promise, releasing_a_long_pending_chain_does_not_recurse) {
  vow_promise *p = vow_promise_new(loop);
  vow_promise *cur = vow_promise_ref(p);
  for (int i = 0; i < 1000000; i++) {
    vow_promise *next = vow_then(cur, say, NULL, "never");
    vow_promise_unref(cur);
    cur = next;
  }
  vow_promise_unref(cur);
  vow_promise_unref(p);
  cr_assert_eq(loop->pool.live, 0);
}

static vow_value step(vow_loop *l, vow_value v, void *ctx) {
  (void)l, (void)ctx;
  return vow_int(vow_as_int(v) + 1);
}

/* A then-chain in its steady state takes nothing from malloc. */
LOOP_TEST(promise, steady_state_chain_allocates_nothing) {
  vow_promise *p = vow_resolved(loop, vow_int(0));
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 10000; i++) {
      vow_promise *next = vow_then(p, step, NULL, NULL);
      vow_promise_unref(p);
      p = next;
    }
    cr_assert_eq(vow_loop_run(loop), 0);
    if (round == 0) continue;
  }
  uint64_t chunks_before = loop->pool.chunk_bytes;
  for (int i = 0; i < 10000; i++) {
    vow_promise *next = vow_then(p, step, NULL, NULL);
    vow_promise_unref(p);
    p = next;
    if (i % 100 == 0) vow_loop_run(loop);
  }
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(loop->pool.chunk_bytes, chunks_before, "no new pool chunks");
  cr_assert_eq(vow_as_int(vow_promise_result(p)), 40000);
  vow_promise_unref(p);
}

/* A chain of n steps built, then run; returns the pool's chunk and block bytes. */
static void big_chain(vow_loop *l, int n, uint64_t *chunk_bytes, uint64_t *block_bytes) {
  vow_promise *p = vow_resolved(l, vow_int(0));
  for (int i = 0; i < n; i++) {
    vow_promise *next = vow_then(p, step, NULL, NULL);
    vow_promise_unref(p);
    p = next;
  }
  *chunk_bytes = l->pool.chunk_bytes;
  *block_bytes = l->pool.block_bytes;
  cr_assert_eq(vow_loop_run(l), 0);
  cr_assert_eq(vow_as_int(vow_promise_result(p)), n);
  vow_promise_unref(p);
}

/* A pool that grows past 4 MiB takes 2 MiB-aligned chunks advised for huge
 * pages (over-allocated by 2 MiB to align them), unless the loop said no. */
LOOP_TEST(promise, big_pools_ask_for_huge_pages_unless_told_not_to) {
  uint64_t chunks, blocks;
  big_chain(loop, 200000, &chunks, &blocks); /* 96 B a step: 19 MB */
#if defined(__linux__)
  if (!VOW__POOL_USE_MALLOC) { /* under ASan the pool is plain malloc */
    cr_assert_geq(chunks, 16u << 20);
    cr_assert_gt(blocks, chunks, "big chunks carry their alignment slack");
  }
#endif
  vow_loop *small_pages;
  cr_assert_eq(vow_loop_new(&small_pages, &(vow_loop_options){.no_huge_pages = 1}), 0);
  big_chain(small_pages, 200000, &chunks, &blocks);
  cr_assert_eq(blocks, chunks, "no slack: plain chunks");
  cr_assert_eq(vow_loop_free(small_pages), 0);
}

/* ---- combinators ---- */

typedef struct delayed {
  vow_promise *p;
  vow_value v;
  int reject;
} delayed;
static void settle_later(vow_loop *l, void *arg) {
  (void)l;
  delayed *d = arg;
  if (d->reject) vow_promise_reject(d->p, d->v);
  else vow_promise_resolve(d->p, d->v);
  vow_promise_unref(d->p);
  free(d);
}
/* new Promise((res, rej) => setTimeout(() => res(v) or rej(v), ms)) */
static vow_promise *after(int ms, vow_value v, int reject) {
  delayed *d = malloc(sizeof *d);
  vow_promise *p = vow_promise_new(loop);
  *d = (delayed){vow_promise_ref(p), v, reject};
  vow_set_timeout(loop, (uint64_t)ms, settle_later, d);
  return p;
}
#define P(p) vow_promise_value(p)

static void keep(vow_promise *p, vow_handler ok, vow_handler err, void *ctx) {
  vow_promise_unref(vow_then(p, ok, err, ctx));
  vow_promise_unref(p);
}

/* Promise.all([1, Promise.resolve(2), after(5, 3)]).then(v => log('all', v));
 * Promise.all([]).then(v => log('all-empty', v));
 * Promise.allSettled([1, Promise.reject('x')]).then(v => log('settled', v));
 * Promise.race([after(10,'slow'), after(5,'fast')]).then(v => log('race', v));
 * Promise.any([Promise.reject('a'), Promise.reject('b')]).catch(e => log('any', e));
 * Promise.any([]).catch(e => log('any-empty', e));
 * Promise.all([Promise.reject('first'), Promise.reject('second')]).catch(e => log('allrej', e));
 * Promise.resolve().then(m1).then(m2).then(m3);
 * node: all-empty any-empty m1 settled any allrej m2 m3 all race */
LOOP_TEST(promise, combinators_settle_in_node_order) {
  keep(vow_all(loop, VOW_VALUES(vow_int(1), P(vow_resolved(loop, vow_int(2))), P(after(5, vow_int(3), 0))), 3),
       say_value, NULL, "all");
  keep(vow_all(loop, NULL, 0), say_value, NULL, "all-empty");
  keep(vow_all_settled(loop, VOW_VALUES(vow_int(1), P(vow_rejected(loop, vow_string("x")))), 2),
       say_value, NULL, "settled");
  keep(vow_race(loop, VOW_VALUES(P(after(10, vow_string("slow"), 0)), P(after(5, vow_string("fast"), 0))), 2),
       say_value, NULL, "race");
  keep(vow_any(loop, VOW_VALUES(P(vow_rejected(loop, vow_string("a"))), P(vow_rejected(loop, vow_string("b")))), 2),
       NULL, say_value, "any");
  keep(vow_any(loop, NULL, 0), NULL, say_value, "any-empty");
  keep(vow_all(loop, VOW_VALUES(P(vow_rejected(loop, vow_string("first"))), P(vow_rejected(loop, vow_string("second")))), 2),
       NULL, say_value, "allrej");
  vow_promise *m = vow_resolved(loop, vow_undefined());
  chain(m, (const char *[]){"m1", "m2", "m3", NULL});
  vow_promise_unref(m);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(),
                   "all-empty [] any-empty AggregateError[] m1 "
                   "settled [{fulfilled:1},{rejected:\"x\"}] any AggregateError[\"a\",\"b\"] "
                   "allrej \"first\" m2 m3 all [1,2,3] race \"fast\"");
}

/* Promise.race([]) stays pending forever: the loop ends with it pending. */
LOOP_TEST(promise, empty_race_never_settles) {
  vow_promise *r = vow_race(loop, NULL, 0);
  then_drop(r, say, say, "settled");
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(r), VOW_PENDING);
  vow_promise_unref(r);
  cr_assert_str_eq(LOG_TEXT(), "");
}

/* Promise.all([after(20,'late'), after(5,'x', rejected)]) rejects at 5 ms with 'x';
 * Promise.any fulfils with the first fulfilment even after rejections. */
LOOP_TEST(promise, all_fails_fast_and_any_takes_the_first_fulfilment) {
  keep(vow_all(loop, VOW_VALUES(P(after(20, vow_string("late"), 0)), P(after(5, vow_string("x"), 1))), 2),
       say_value, say_value, "all");
  keep(vow_any(loop, VOW_VALUES(P(after(1, vow_string("r1"), 1)), P(after(8, vow_string("ok"), 0)), P(after(3, vow_string("r2"), 1))), 3),
       say_value, say_value, "any");
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "all \"x\" any \"ok\"");
}

/* The promise-array forms borrow: the caller settles the very promises it
 * gathered, and they tick as the value forms do (node, with ps = [a, b, c]:
 * Promise.all(ps).then(log); Promise.race(ps)...; a, b, c resolved after):
 * race "a" any "a" all [1,2,"c"] settled [{fulfilled:1},{fulfilled:2},{fulfilled:"c"}] */
LOOP_TEST(promise, promise_array_combinators_borrow_their_inputs) {
  vow_promise *ps[3] = {vow_promise_new(loop), vow_promise_new(loop), vow_promise_new(loop)};
  keep(vow_race_promises(loop, ps, 3), say_value, say_value, "race");
  keep(vow_any_promises(loop, ps, 3), say_value, say_value, "any");
  keep(vow_all_promises(loop, ps, 3), say_value, say_value, "all");
  keep(vow_all_settled_promises(loop, ps, 3), say_value, say_value, "settled");
  vow_promise_resolve(ps[0], vow_string("a"));
  vow_promise_resolve(ps[1], vow_int(2));
  vow_promise_resolve(ps[2], vow_string("c"));
  /* the array and our references are untouched: still ours to drop */
  for (int i = 0; i < 3; i++) vow_promise_unref(ps[i]);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "race \"a\" any \"a\" all [\"a\",2,\"c\"] settled "
                               "[{fulfilled:\"a\"},{fulfilled:2},{fulfilled:\"c\"}]");
}

/* A NULL entry is an input rejected with VOW_EINVAL; a NULL array is refused
 * unless empty; empty arrays behave as the value forms' empty arrays. */
LOOP_TEST(promise, promise_array_combinators_check_their_input) {
  vow_promise *ps[2] = {vow_resolved(loop, vow_int(1)), NULL};
  keep(vow_all_promises(loop, ps, 2), say_value, say_value, "all");
  keep(vow_any_promises(loop, ps, 2), say_value, say_value, "any");
  cr_assert_null(vow_all_promises(loop, NULL, 2));
  cr_assert_null(vow_race_promises(loop, NULL, 1));
  cr_assert_null(vow_all(loop, NULL, 2));
  keep(vow_all_promises(loop, NULL, 0), say_value, say_value, "empty");
  vow_promise *never = vow_race_promises(loop, NULL, 0);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(never), VOW_PENDING);
  vow_promise_unref(never);
  vow_promise_unref(ps[0]);
  /* node, with Promise.reject('EINVAL') for the NULL: empty [] all EINVAL any 1 */
  cr_assert_str_eq(LOG_TEXT(), "empty [] all Error(VOW_EINVAL: a combinator's input promise is NULL) any 1");
}

/* ---- unhandled rejections ---- */

static void record_unhandled(vow_loop *l, vow_promise *p, vow_value reason, void *data) {
  (void)l, (void)p, (void)data;
  char buf[128];
  vow_value_format(reason, buf, sizeof buf);
  LOG("unhandled %s", buf);
}
static vow_value catch_h(vow_loop *l, vow_value v, void *h) {
  (void)l, (void)v;
  vow_promise_unref(vow_catch(h, say, "caught-h"));
  return vow_undefined();
}
static void catch_late(vow_loop *l, void *late) {
  (void)l;
  vow_promise_unref(vow_catch(late, say, "caught-late"));
  vow_promise_unref(late);
}

/* process.on('unhandledRejection', r => log('unhandled ' + r));
 * Promise.reject('u1');
 * const h = Promise.reject('h'); Promise.resolve().then(() => h.catch(() => log('caught h')));
 * const late = Promise.reject('late'); setTimeout(() => late.catch(() => log('caught late')), 1);
 * Promise.resolve().then(() => { throw 'thrown' });
 * node: caught h unhandled u1 unhandled late unhandled thrown caught late */
LOOP_TEST(promise, unhandled_rejections_are_reported_after_the_drain) {
  cr_assert_eq(vow_on_unhandled_rejection(loop, record_unhandled, NULL), 0);
  vow_promise_unref(vow_rejected(loop, vow_string("u1")));
  vow_promise *h = vow_rejected(loop, vow_string("h"));
  vow_promise *r = vow_resolved(loop, vow_undefined());
  then_drop(r, catch_h, NULL, h);
  vow_promise *late = vow_rejected(loop, vow_string("late"));
  vow_set_timeout(loop, 1, catch_late, late);
  then_drop(r, throw_it, NULL, "thrown");
  cr_assert_eq(vow_loop_run(loop), 0);
  vow_promise_unref(h);
  vow_promise_unref(r);
  cr_assert_str_eq(LOG_TEXT(),
                   "caught-h unhandled \"u1\" unhandled \"late\" unhandled \"thrown\" caught-late");
}

/* Without a hook, an unhandled rejection stops the run with VOW_EUNHANDLED. */
LOOP_TEST(promise, default_policy_stops_the_run) {
  vow_promise_unref(vow_rejected(loop, vow_string("nobody listens")));
  cr_assert_eq(vow_loop_run(loop), VOW_EUNHANDLED);
}

LOOP_TEST(promise, null_propagates_and_bad_calls_are_refused) {
  cr_assert_null(vow_then(NULL, say, NULL, NULL));
  cr_assert_null(vow_catch(NULL, say, NULL));
  cr_assert_null(vow_finally(NULL, say_finally, NULL));
  cr_assert_eq(vow_promise_resolve(NULL, vow_string("released, not leaked")), VOW_EINVAL);
  cr_assert_null(vow_promise_new(NULL));
  vow_promise_unref(NULL);
  cr_assert_eq(vow_on_unhandled_rejection(NULL, NULL, NULL), VOW_EINVAL);
}

/* Promises, reactions and jobs still pending when the loop is freed are
 * released with it (the sanitizer build checks nothing leaks). */
LOOP_TEST(promise, loop_free_releases_pending_work) {
  vow_promise *p = vow_resolved(loop, vow_string("queued job holds me"));
  then_drop(p, say_value, NULL, "never");
  vow_promise *q = vow_promise_new(loop);
  vow_promise *adopting = vow_promise_new(loop);
  vow_promise_resolve(adopting, vow_promise_value(vow_promise_ref(q)));
  vow_promise_unref(vow_all(loop, VOW_VALUES(P(vow_promise_ref(q)), vow_string("s")), 2));
  vow_promise_unref(p);
  vow_promise_unref(q);
  vow_promise_unref(adopting);
}

/* let ra, rb; const a = new Promise(r => ra = r), b = new Promise(r => rb = r);
 * ra(b); rb(a);  -> both stay pending forever (a cycle of adoption). In C the
 * cycle of references is broken when the loop is freed: nothing leaks. */
LOOP_TEST(promise, cycles_of_adoption_are_released_with_the_loop) {
  vow_promise *a = vow_promise_new(loop), *b = vow_promise_new(loop);
  vow_promise_resolve(a, vow_promise_value(vow_promise_ref(b)));
  vow_promise_resolve(b, vow_promise_value(vow_promise_ref(a)));
  then_drop(a, say, say, "never");
  /* and a longer one, through race: q follows race([q]) */
  vow_promise *q = vow_promise_new(loop);
  vow_promise *r = vow_race(loop, VOW_VALUES(P(vow_promise_ref(q))), 1);
  vow_promise_resolve(q, P(vow_promise_ref(r)));
  vow_promise_unref(a), vow_promise_unref(b), vow_promise_unref(q), vow_promise_unref(r);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(a), VOW_PENDING); /* still alive: held by the cycle */
  cr_assert_str_eq(LOG_TEXT(), "");
}

/* let rej; const p = new Promise((_, r) => rej = r); rej(p); p.catch(e => log(e === p))
 * -> true. A promise rejected with itself is freed like any other. */
LOOP_TEST(promise, rejected_with_itself_is_not_a_leak) {
  vow_promise *p = vow_promise_new(loop);
  cr_assert_eq(vow_promise_reject(p, vow_promise_value(vow_promise_ref(p))), 1);
  cr_assert_eq(vow_as_promise(vow_promise_result(p)), p);
  then_drop(p, NULL, say, "caught");
  vow_promise_unref(p);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "caught");
}

/* new Error(`ENOENT: open '${path}'`), with a message longer than any buffer:
 * vow_errorf keeps every byte, the code, and no cause; a format that printf
 * cannot print is an error of its own, never a crash. */
Test(values, errorf_formats_messages_of_any_length) {
  vow_value e = vow_errorf(-2, "ENOENT: open '%s'", "x.txt");
  cr_assert_eq(e.kind, VOW_ERROR);
  cr_assert_eq(vow_error_code(e), -2);
  cr_assert_str_eq(vow_error_message(e), "ENOENT: open 'x.txt'");
  cr_assert_eq(vow_error_cause(e).kind, VOW_UNDEFINED);
  vow_unref(e);
  static char path[5000];
  memset(path, 'p', sizeof path - 1);
  e = vow_errorf(-2, "ENOENT: open '%s'", path);
  cr_assert_eq(strlen(vow_error_message(e)), strlen("ENOENT: open ''") + sizeof path - 1);
  cr_assert_eq(vow_error_message(e)[sizeof path - 1 + 14], '\'');
  vow_unref(e);
  /* In the C locale a wide character past ASCII cannot be printed: EILSEQ. */
  static const wchar_t unprintable[] = {0x20ac, 0};
  e = vow_errorf(-2, "%ls", unprintable);
  cr_assert_eq(vow_error_code(e), VOW_EINVAL);
  cr_assert_str_eq(vow_error_message(e), "a format that cannot be printed");
  vow_unref(e);
}
