/*
 * test_misuse.c — what vow does when it is used wrongly: each misuse has a
 * defined, documented outcome (see "Misuse" in vow.h), never a crash.
 */
#include <criterion/criterion.h>
#include <pthread.h>

#include "log.h"
#include "vow.h"

LOOP_SUITE(misuse, NULL);

/* vow_loop_run from inside the loop — a handler, or an async function — is
 * refused with VOW_EBUSY; the outer run goes on. */
static vow_value run_from_handler(vow_loop *l, vow_value v, void *ctx) {
  (void)v, (void)ctx;
  LOG("handler:%s", vow_err_name(vow_loop_run(l)));
  return vow_undefined();
}
static vow_value run_from_async(vow_loop *l, void *arg) {
  (void)arg;
  vow_await_value(vow_undefined(), NULL);
  LOG("async:%s", vow_err_name(vow_loop_run(l)));
  LOG("free:%s", vow_err_name(vow_loop_free(l)));
  return vow_undefined();
}
LOOP_TEST(misuse, recursive_run_is_refused) {
  vow_promise *p = vow_resolved(loop, vow_undefined());
  vow_promise_unref(vow_then(p, run_from_handler, NULL, NULL));
  vow_promise_unref(p);
  vow_promise_unref(vow_async(loop, run_from_async, NULL));
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "handler:VOW_EBUSY async:VOW_EBUSY free:VOW_EBUSY");
}

/* A promise of another loop: adopting it, awaiting it, or passing it to a
 * combinator gives a rejection with VOW_EINVAL, not a cross-loop reaction. */
static vow_value await_foreign(vow_loop *l, void *foreign) {
  (void)l;
  vow_value e;
  int rc = vow_await(vow_promise_ref(foreign), &e);
  LOG("await:%s:%s", vow_err_name(rc), vow_err_name(vow_error_code(e)));
  vow_unref(e);
  return vow_undefined();
}
static vow_value say_code(vow_loop *l, vow_value v, void *label) {
  (void)l;
  LOG("%s:%s", (const char *)label, vow_err_name(vow_error_code(v)));
  return vow_undefined();
}
LOOP_TEST(misuse, promises_of_another_loop_are_refused) {
  vow_loop *other;
  cr_assert_eq(vow_loop_new(&other, NULL), 0);
  vow_promise *foreign = vow_promise_new(other);
  vow_promise *mine = vow_promise_new(loop);
  vow_promise_resolve(mine, vow_promise_value(vow_promise_ref(foreign)));
  vow_promise_unref(vow_catch(mine, say_code, "adopt"));
  vow_promise *all = vow_all(loop, VOW_VALUES(vow_promise_value(vow_promise_ref(foreign))), 1);
  vow_promise_unref(vow_catch(all, say_code, "all"));
  vow_promise_unref(vow_async(loop, await_foreign, foreign));
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "await:VOW_EINVAL:VOW_EINVAL adopt:VOW_EINVAL all:VOW_EINVAL");
  vow_promise_unref(mine), vow_promise_unref(all), vow_promise_unref(foreign);
  cr_assert_eq(vow_loop_free(other), 0);
}

/* From another thread, every call on the loop or its promises is refused
 * (VOW_ETHREAD, or NULL for calls that return objects) and changes nothing. */
static void *misuse_from_thread(void *p) {
  static int results[6];
  vow_promise *promise = p;
  vow_loop *l = vow_promise_loop(promise);
  results[0] = vow_promise_resolve(promise, vow_int(1)) == VOW_ETHREAD;
  results[1] = vow_then(promise, NULL, NULL, NULL) == NULL;
  results[2] = vow_promise_new(l) == NULL;
  results[3] = vow_async(l, NULL, NULL) == NULL;
  results[4] = vow_set_immediate(l, NULL, NULL) < 0;
  results[5] = vow_abort_signal_new(l) == NULL;
  return results;
}
LOOP_TEST(misuse, calls_from_another_thread_are_refused) {
  vow_promise *p = vow_promise_new(loop);
  pthread_t th;
  void *ret;
  pthread_create(&th, NULL, misuse_from_thread, p);
  pthread_join(th, &ret);
  for (int i = 0; i < 6; i++) cr_assert(((int *)ret)[i], "call %d was refused", i);
  cr_assert_eq(vow_promise_state(p), VOW_PENDING);
  vow_promise_unref(p);
}

/* Freeing a loop with everything pending — timers, immediates, microtasks,
 * promises with handlers, suspended async functions, a held loop — releases
 * it all; nothing runs and nothing leaks. */
static vow_value suspended(vow_loop *l, void *arg) {
  (void)arg;
  vow_value v;
  if (vow_await(vow_delay(l, 10000, vow_undefined()), &v) == VOW_ECLOSING) LOG("closed");
  vow_unref(v);
  return vow_undefined();
}
static void never(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  LOG("ran?!");
}
LOOP_TEST(misuse, freeing_a_loop_with_work_pending) {
  vow_set_timeout(loop, 1000, never, NULL);
  vow_set_immediate(loop, never, NULL);
  vow_queue_microtask(loop, never, NULL);
  vow_promise *p = vow_delay(loop, 500, vow_string("later"));
  vow_promise_unref(vow_then(p, NULL, NULL, NULL));
  vow_promise_unref(p);
  vow_promise_unref(vow_async(loop, suspended, NULL));
  /* closing that one settles this one, whose all() reaction must be released too */
  vow_promise *joined = vow_async(loop, suspended, NULL);
  vow_promise_unref(vow_all(loop, VOW_VALUES(vow_promise_value(joined)), 1));
  vow_loop_hold(loop);
  vow_loop_post(loop, never, NULL);
  cr_assert_eq(vow_loop_free(loop), 0);
  loop = NULL;
  cr_assert_str_eq(LOG_TEXT(), "closed closed");
  TEST_LEAK_CHECK();
  cr_assert_eq(vow_loop_new(&loop, NULL), 0); /* for LOOP_TEST's own free */
}
