/*
 * test_threads.c — CPU work on the thread pool, posting from other threads,
 * and promises resolved from other threads. (Run under ThreadSanitizer too.)
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>

#include "log.h"
#include "vow.h"

LOOP_SUITE(threads, NULL);

/* A CPU-bound job: an FNV-1a hash over n rounds. */
static vow_value hash_job(void *arg) {
  uint64_t n = (uint64_t)(uintptr_t)arg, h = 1469598103934665603ull;
  for (uint64_t i = 0; i < n; i++) h = (h ^ (i & 0xff)) * 1099511628211ull;
  return vow_int((int64_t)(h & 0x7fffffff));
}
static vow_value ignore(vow_loop *l, vow_value v, void *ctx) {
  (void)l, (void)v, (void)ctx;
  return vow_undefined();
}
static vow_value failing_job(void *arg) {
  (void)arg;
  return vow_throw(vow_string("job failed"));
}

/* Four jobs in parallel, gathered by all, in input order. */
LOOP_TEST(threads, work_runs_on_the_pool_and_settles_on_the_loop) {
  vow_value jobs[4];
  int64_t expected[4];
  for (int i = 0; i < 4; i++) {
    uintptr_t n = 100000u * (uintptr_t)(i + 1);
    jobs[i] = vow_promise_value(vow_work(loop, hash_job, (void *)n));
    expected[i] = vow_as_int(hash_job((void *)n));
  }
  vow_promise *all = vow_all(loop, jobs, 4);
  vow_promise *failing = vow_work(loop, failing_job, NULL);
  vow_promise_unref(vow_catch(failing, ignore, NULL));
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(all), VOW_FULFILLED);
  for (int i = 0; i < 4; i++)
    cr_assert_eq(vow_as_int(vow_array_get(vow_promise_result(all), (size_t)i)), expected[i]);
  cr_assert_eq(vow_promise_state(failing), VOW_REJECTED);
  cr_assert_str_eq(vow_str(vow_promise_result(failing)), "job failed");
  vow_promise_unref(all);
  vow_promise_unref(failing);
}

typedef struct poster {
  vow_loop *loop;
  int count;
} poster;
static int received;
static void count_post(vow_loop *l, void *arg) {
  (void)l;
  received += (int)(intptr_t)arg;
}
static void release_loop(vow_loop *l, void *arg) {
  (void)arg;
  LOG("released");
  vow_loop_release(l);
}
static void *post_many(void *arg) {
  poster *p = arg;
  for (int i = 0; i < p->count; i++) cr_assert_eq(vow_loop_post(p->loop, count_post, (void *)1), 0);
  cr_assert_eq(vow_loop_post(p->loop, release_loop, NULL), 0);
  return NULL;
}

/* A held loop waits for posts; posts run in order on the loop's thread. */
LOOP_TEST(threads, posts_from_another_thread_run_on_the_loop) {
  received = 0;
  poster p = {loop, 1000};
  cr_assert_eq(vow_loop_hold(loop), 0);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, post_many, &p), 0);
  cr_assert_eq(vow_loop_run(loop), 0);
  pthread_join(th, NULL);
  cr_assert_eq(received, 1000);
  cr_assert_str_eq(LOG_TEXT(), "released");
  cr_assert_eq(vow_loop_release(loop), VOW_EINVAL, "not held any more");
}

static void *resolve_from_thread(void *p) {
  cr_assert_eq(vow_promise_resolve_threadsafe(p, vow_string("from a thread")), 0);
  return NULL;
}
static vow_value await_it(vow_loop *l, void *p) {
  (void)l;
  vow_value v;
  vow_await(vow_promise_ref(p), &v);
  LOG("%s", vow_str(v));
  vow_unref(v);
  vow_loop_release(l);
  return vow_undefined();
}

/* await a promise that another thread resolves. */
LOOP_TEST(threads, promise_resolved_from_another_thread) {
  vow_promise *p = vow_promise_new(loop);
  vow_loop_hold(loop);
  vow_promise_unref(vow_async(loop, await_it, p));
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, resolve_from_thread, vow_promise_ref(p)), 0);
  cr_assert_eq(vow_loop_run(loop), 0);
  pthread_join(th, NULL);
  cr_assert_str_eq(LOG_TEXT(), "from a thread");
  vow_promise_unref(p);
}

/* Posts still queued when the loop is freed are released, not run. */
LOOP_TEST(threads, queued_posts_are_released_with_the_loop) {
  vow_promise *p = vow_promise_new(loop);
  cr_assert_eq(vow_promise_reject_threadsafe(vow_promise_ref(p), vow_string("never delivered")), 0);
  cr_assert_eq(vow_loop_post(loop, count_post, (void *)1), 0);
  vow_promise_unref(p);
}

#include <time.h>
static vow_value slow_job(void *arg) {
  (void)arg;
  struct timespec t = {0, 100 * 1000 * 1000};
  nanosleep(&t, NULL);
  return vow_string("too late");
}
/* Freeing the loop while a job runs on the pool: the free waits for the job
 * (it cannot be stopped midway), drops its result, and releases its promise. */
LOOP_TEST(threads, loop_free_waits_for_running_work) {
  vow_promise *p = vow_work(loop, slow_job, NULL);
  vow_promise_unref(vow_then(p, NULL, NULL, NULL));
  vow_promise_unref(p);
}
