/*
 * test_loop.c — the loop, microtasks and timers keep Node's task ordering.
 * Each test names the JavaScript whose output it must match.
 */
#include <criterion/criterion.h>
#include <uv.h>

#include "vow.h"
#include "log.h"

LOOP_SUITE(loop, NULL);

static void say(vow_loop *l, void *arg) {
  (void)l;
  LOG("%s", (const char *)arg);
}

/* A loop with nothing to do returns at once. */
LOOP_TEST(loop, empty_loop_returns_at_once) {
  uint64_t t0 = uv_hrtime();
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_lt(uv_hrtime() - t0, 1000000000ull); /* generous: "at once", not a timing claim */
  cr_assert_eq(vow_loop_run(loop), 0, "running again is fine");
}

/* console.log(1); setTimeout(() => log(2), 0); queueMicrotask(() => log(3)); console.log(4)
 * -> 1 4 3 2 */
LOOP_TEST(loop, microtasks_before_timers) {
  LOG("1");
  cr_assert_gt(vow_set_timeout(loop, 0, say, "2"), 0);
  cr_assert_eq(vow_queue_microtask(loop, say, "3"), 0);
  LOG("4");
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "1 4 3 2");
}

/* queueMicrotask(() => { log('a'); queueMicrotask(() => log('c')) }); queueMicrotask(() => log('b'));
 * setTimeout(() => log('t')) -> a b c t */
static void micro_a(vow_loop *l, void *arg) {
  (void)arg;
  LOG("a");
  vow_queue_microtask(l, say, "c");
}
LOOP_TEST(loop, nested_microtasks_run_in_the_same_drain) {
  vow_set_timeout(loop, 0, say, "t");
  vow_queue_microtask(loop, micro_a, NULL);
  vow_queue_microtask(loop, say, "b");
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "a b c t");
}

/* setTimeout(()=>log('t1'),1); setTimeout(()=>{log('t2'); queueMicrotask(()=>log('m'))},1);
 * setTimeout(()=>log('t3'),1) -> t1 t2 m t3: microtasks drain between timers. */
static void timer_with_micro(vow_loop *l, void *arg) {
  (void)arg;
  LOG("t2");
  vow_queue_microtask(l, say, "m");
}
LOOP_TEST(loop, microtasks_drain_between_timers) {
  vow_set_timeout(loop, 1, say, "t1");
  vow_set_timeout(loop, 1, timer_with_micro, NULL);
  vow_set_timeout(loop, 1, say, "t3");
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "t1 t2 m t3");
}

/* setTimeout(c,30); setTimeout(a,10); setTimeout(b,20); setTimeout(a2,10) -> a a2 b c */
LOOP_TEST(loop, timers_fire_by_due_time_then_creation_order) {
  vow_set_timeout(loop, 30, say, "c");
  vow_set_timeout(loop, 10, say, "a");
  vow_set_timeout(loop, 20, say, "b");
  vow_set_timeout(loop, 10, say, "a2");
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "a a2 b c");
}

/* setTimeout(()=>log('one'),1); setTimeout(()=>log('zero'),0) -> one zero
 * (0 means 1 ms, so both are in the same list, in creation order). */
LOOP_TEST(loop, zero_ms_timeout_behaves_as_one_ms) {
  vow_set_timeout(loop, 1, say, "one");
  vow_set_timeout(loop, 0, say, "zero");
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "one zero");
}

typedef struct interval_state {
  vow_timer id;
  int count;
  int limit;
} interval_state;

static void tick(vow_loop *l, void *arg) {
  interval_state *s = arg;
  LOG("tick%d", ++s->count);
  if (s->count == s->limit) cr_assert_eq(vow_clear_interval(l, s->id), 1);
}

/* let k = 0; const t = setInterval(() => { log('tick' + ++k); if (k === 3) clearInterval(t) }, 5) */
LOOP_TEST(loop, interval_counts_and_clears_itself) {
  interval_state s = {.limit = 3};
  s.id = vow_set_interval(loop, 5, tick, &s);
  cr_assert_gt(s.id, 0);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "tick1 tick2 tick3");
  cr_assert_eq(vow_clear_interval(loop, s.id), 0, "clearing again is a harmless no-op");
}

/* Two intervals of different periods interleave by due time. */
LOOP_TEST(loop, intervals_interleave_by_due_time) {
  interval_state a = {.limit = 2};
  a.id = vow_set_interval(loop, 20, tick, &a);
  vow_set_timeout(loop, 30, say, "t30");
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "tick1 t30 tick2");
}

/* setTimeout(()=>{ setImmediate(()=>log('imm')); setTimeout(()=>log('t2'),0); log('t1') }, 5)
 * -> t1 imm t2: an immediate queued by a timer runs before the next timers phase. */
static void schedule_imm(vow_loop *l, void *arg) {
  (void)arg;
  vow_set_immediate(l, say, "imm");
  vow_set_timeout(l, 0, say, "t2");
  LOG("t1");
}
LOOP_TEST(loop, immediates_run_after_the_current_timers) {
  vow_set_timeout(loop, 5, schedule_imm, NULL);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "t1 imm t2");
}

/* setImmediate(()=>{log('i1'); setImmediate(()=>log('i3'))}); setImmediate(()=>log('i2'))
 * -> i1 i2 i3: an immediate queued by an immediate waits for the next turn. */
static void imm_then_imm(vow_loop *l, void *arg) {
  (void)arg;
  LOG("i1");
  vow_set_immediate(l, say, "i3");
}
LOOP_TEST(loop, immediate_from_immediate_runs_next_turn) {
  vow_set_immediate(loop, imm_then_imm, NULL);
  vow_set_immediate(loop, say, "i2");
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "i1 i2 i3");
}

/* const t = setTimeout(()=>log('no'),1); clearTimeout(t); clearTimeout(t); setTimeout(()=>log('yes'),2) */
LOOP_TEST(loop, clear_before_fire_and_clear_twice) {
  vow_timer t = vow_set_timeout(loop, 1, say, "no");
  vow_timer i = vow_set_immediate(loop, say, "no-imm");
  vow_set_timeout(loop, 2, say, "yes");
  cr_assert_eq(vow_clear_timeout(loop, t), 1);
  cr_assert_eq(vow_clear_timeout(loop, t), 0);
  cr_assert_eq(vow_clear_immediate(loop, i), 1);
  cr_assert_eq(vow_clear_timer(loop, 0), 0, "an id never issued is harmless");
  cr_assert_eq(vow_clear_timer(loop, 123456789), 0);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "yes");
}

/* A timer clears a later timer of the same duration, from its callback. */
static vow_timer victim;
static void killer(vow_loop *l, void *arg) {
  (void)arg;
  LOG("killer");
  cr_assert_eq(vow_clear_timeout(l, victim), 1);
}
LOOP_TEST(loop, clear_from_inside_a_callback) {
  vow_set_timeout(loop, 3, killer, NULL);
  victim = vow_set_timeout(loop, 3, say, "victim");
  vow_set_timeout(loop, 4, say, "after");
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "killer after");
}

/* An unreferenced timer does not keep the loop alive: setTimeout(f, 10000).unref() */
LOOP_TEST(loop, unref_timer_does_not_keep_loop_alive) {
  vow_timer t = vow_set_timeout(loop, 10000, say, "never");
  cr_assert_eq(vow_timer_unref(loop, t), 0);
  uint64_t t0 = uv_hrtime();
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_lt(uv_hrtime() - t0, 5000000000ull);
  cr_assert_str_eq(LOG_TEXT(), "");
}

LOOP_TEST(loop, bad_arguments_are_refused) {
  cr_assert_eq(vow_set_timeout(loop, 1, NULL, NULL), VOW_EINVAL);
  cr_assert_eq(vow_set_timeout(loop, VOW_TIMEOUT_MAX + 1, say, "x"), VOW_EINVAL);
  cr_assert_eq(vow_set_timeout(NULL, 1, say, "x"), VOW_EINVAL);
  cr_assert_eq(vow_queue_microtask(loop, NULL, NULL), VOW_EINVAL);
  cr_assert_eq(vow_loop_run(NULL), VOW_EINVAL);
  cr_assert_eq(vow_loop_new(NULL, NULL), VOW_EINVAL);
  cr_assert_str_eq(vow_strerror(VOW_ETHREAD), "called from a thread that does not own the loop");
  cr_assert_str_eq(vow_err_name(VOW_EINVAL), "VOW_EINVAL");
  cr_assert_str_eq(vow_err_name(UV_ECONNREFUSED), "ECONNREFUSED");
  cr_assert_not_null(vow_strerror(-99999));
}

static void run_recursively(vow_loop *l, void *arg) {
  *(int *)arg = vow_loop_run(l);
}
LOOP_TEST(loop, run_is_not_reentrant) {
  int inner = 0;
  vow_set_timeout(loop, 1, run_recursively, &inner);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(inner, VOW_EBUSY);
}

static void *from_other_thread(void *arg) {
  vow_loop *l = arg;
  static int results[5];
  results[0] = vow_queue_microtask(l, say, "x");
  results[1] = (int)vow_set_timeout(l, 1, say, "x");
  results[2] = vow_loop_run(l);
  results[3] = vow_clear_timer(l, 1);
  results[4] = vow_loop_free(l);
  return results;
}
LOOP_TEST(loop, calls_from_a_second_thread_are_refused) {
  pthread_t pt;
  void *ret = NULL;
  cr_assert_eq(pthread_create(&pt, NULL, from_other_thread, loop), 0);
  cr_assert_eq(pthread_join(pt, &ret), 0);
  int *r = ret;
  for (int i = 0; i < 5; i++) cr_assert_eq(r[i], VOW_ETHREAD, "call %d", i);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "");
}

/* 100 000 timers over 50 distinct durations: all fire, in due order, and
 * (under the sanitizer build) nothing leaks. */
typedef struct many {
  uint64_t last_due;
  int fired;
  int out_of_order;
} many;
typedef struct many_timer {
  many *m;
  uint64_t due;
} many_timer;
static void many_fire(vow_loop *l, void *arg) {
  (void)l;
  many_timer *t = arg;
  if (t->due < t->m->last_due) t->m->out_of_order++;
  t->m->last_due = t->due;
  t->m->fired++;
}
LOOP_TEST(loop, hundred_thousand_timers) {
  enum { N = 100000 };
  many m = {0};
  many_timer *ts = calloc(N, sizeof *ts);
  uint64_t now = vow_loop_now(loop);
  for (int i = 0; i < N; i++) {
    uint64_t ms = 1 + (uint64_t)(i * 7919) % 50;
    ts[i] = (many_timer){&m, now + ms};
    cr_assert_gt(vow_set_timeout(loop, ms, many_fire, &ts[i]), 0);
  }
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(m.fired, N);
  cr_assert_eq(m.out_of_order, 0);
  free(ts);
}

/* Pending timers and microtasks are dropped by vow_loop_free without running. */
LOOP_TEST(loop, free_with_work_pending_drops_it) {
  vow_loop *l;
  cr_assert_eq(vow_loop_new(&l, NULL), 0);
  vow_set_timeout(l, 50, say, "never");
  vow_set_interval(l, 50, say, "never");
  vow_set_immediate(l, say, "never");
  vow_queue_microtask(l, say, "never");
  cr_assert_eq(vow_loop_free(l), 0);
  cr_assert_str_eq(LOG_TEXT(), "");
}

/* The virtual clock: a 30 s timer fires at loop time +30000 without sleeping,
 * and timers keep their order and their relative times. */
typedef struct stamp {
  const char *label;
  uint64_t start;
} stamp;
static void say_when(vow_loop *l, void *arg) {
  stamp *s = arg;
  LOG("%s@%llu", s->label, (unsigned long long)(vow_loop_now(l) - s->start));
}
static void imm_then_timer(vow_loop *l, void *arg) {
  stamp *s = arg;
  LOG("t10@%llu", (unsigned long long)(vow_loop_now(l) - s->start));
  vow_set_immediate(l, say_when, &s[1]);
}
LOOP_TEST(loop, virtual_clock_jumps_to_the_next_timer) {
  vow_loop *v;
  vow_loop_options o = {.virtual_clock = 1};
  cr_assert_eq(vow_loop_new(&v, &o), 0);
  uint64_t t0 = vow_loop_now(v);
  stamp s[] = {{"t30000", t0}, {"imm", t0}, {"t20", t0}, {"i", t0}};
  vow_set_timeout(v, 30000, say_when, &s[0]);
  vow_set_timeout(v, 10, imm_then_timer, &s[0]);
  vow_set_timeout(v, 20, say_when, &s[2]);
  interval_state is = {.limit = 3};
  is.id = vow_set_interval(v, 7, tick, &is);
  uint64_t real0 = uv_hrtime();
  cr_assert_eq(vow_loop_run(v), 0);
  cr_assert_lt(uv_hrtime() - real0, 5000000000ull, "no sleeping through 30 s");
  cr_assert_str_eq(LOG_TEXT(), "tick1 t10@10 imm@10 tick2 t20@20 tick3 t30000@30000");
  cr_assert_eq(vow_loop_now(v) - t0, 30000);
  cr_assert_eq(vow_loop_free(v), 0);
}

/* setImmediate(f).unref() alone lets the run end without f; ref() again and
 * it runs. Clearing an unreferenced immediate is counted right too. */
LOOP_TEST(loop, unref_immediate_and_ref_again) {
  vow_timer a = vow_set_immediate(loop, say, "a");
  vow_timer b = vow_set_immediate(loop, say, "b");
  cr_assert_eq(vow_timer_unref(loop, a), 0);
  cr_assert_eq(vow_timer_unref(loop, b), 0);
  cr_assert_eq(vow_clear_immediate(loop, b), 1);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "");
  cr_assert_eq(vow_timer_ref(loop, a), 0);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "a");
  cr_assert_eq(vow_clear_immediate(loop, a), 0, "it ran: its id is past");
}

/* A cleared timer's emptied list is kept for reuse: the virtual clock must
 * not jump to it, and a later timer of that duration keeps Node's order
 * (due time, then creation: t5 was made before t1000b, both due at 1000). */
static void make_late_pair(vow_loop *l, void *arg) {
  (void)arg;
  vow_set_timeout(l, 1000, say, "t1000b"); /* reuses the emptied 1000 ms list */
}
LOOP_TEST(loop, emptied_list_is_reused_in_order) {
  vow_loop *v;
  vow_loop_options o = {.virtual_clock = 1};
  cr_assert_eq(vow_loop_new(&v, &o), 0);
  uint64_t t0 = vow_loop_now(v);
  cr_assert_eq(vow_clear_timeout(v, vow_set_timeout(v, 1000, say, "never")), 1);
  vow_set_timeout(v, 995, say, "t995");
  vow_set_timeout(v, 5, make_late_pair, NULL); /* at 5: t1000b due 1005 */
  vow_set_timeout(v, 1005, say, "t1005");      /* made first, due 1005 too */
  cr_assert_eq(vow_loop_run(v), 0);
  cr_assert_str_eq(LOG_TEXT(), "t995 t1005 t1000b");
  cr_assert_eq(vow_loop_now(v) - t0, 1005);
  cr_assert_eq(vow_loop_free(v), 0);
}

/* An emptied list at the top of the heap is skipped by the virtual clock. */
LOOP_TEST(loop, virtual_clock_skips_an_emptied_list) {
  vow_loop *v;
  vow_loop_options o = {.virtual_clock = 1};
  cr_assert_eq(vow_loop_new(&v, &o), 0);
  stamp s = {"t10", vow_loop_now(v)};
  cr_assert_eq(vow_clear_timeout(v, vow_set_timeout(v, 3, say, "never")), 1);
  vow_set_timeout(v, 10, say_when, &s);
  cr_assert_eq(vow_loop_run(v), 0);
  cr_assert_str_eq(LOG_TEXT(), "t10@10");
  cr_assert_eq(vow_loop_free(v), 0);
}
