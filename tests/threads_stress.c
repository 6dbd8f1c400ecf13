/*
 * threads_stress.c — the cross-thread paths under load, as a plain program
 * (no Criterion: it runs under ThreadSanitizer, which Criterion's runner
 * does not survive). Four threads post and resolve while the pool works.
 * Exits 0 when every count adds up.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <vow.h>

enum { THREADS = 4, POSTS = 5000, RESOLVES = 250, JOBS = 64 };

static long posted_sum;             /* loop thread only */
static vow_promise *gates[THREADS][RESOLVES];

static void add(vow_loop *loop, void *arg) {
  (void)loop;
  posted_sum += (long)(intptr_t)arg;
}

static void *worker(void *arg) {
  intptr_t t = (intptr_t)arg;
  vow_loop *loop = vow_promise_loop(gates[t][0]);
  for (int i = 0; i < POSTS; i++)
    if (vow_loop_post(loop, add, (void *)(intptr_t)1) != 0) abort();
  for (int i = 0; i < RESOLVES; i++)
    if (vow_promise_resolve_threadsafe(gates[t][i], vow_int(i)) != 0) abort();
  return NULL;
}

static vow_value square(void *arg) {
  intptr_t x = (intptr_t)arg;
  return vow_int((int64_t)(x * x));
}

static vow_value await_everything(vow_loop *loop, void *arg) {
  (void)arg;
  long sum = 0;
  for (int t = 0; t < THREADS; t++)
    for (int i = 0; i < RESOLVES; i++) {
      vow_value v;
      vow_await(vow_promise_ref(gates[t][i]), &v);
      sum += (long)vow_as_int(v);
    }
  vow_value jobs[JOBS];
  for (intptr_t j = 0; j < JOBS; j++) jobs[j] = vow_promise_value(vow_work(loop, square, (void *)j));
  vow_value squares;
  vow_await(vow_all(loop, jobs, JOBS), &squares);
  for (size_t j = 0; j < vow_array_len(squares); j++) sum += (long)vow_as_int(vow_array_get(squares, j));
  vow_unref(squares);
  vow_loop_release(loop);
  return vow_int(sum);
}

int main(void) {
  vow_loop *loop;
  if (vow_loop_new(&loop, NULL) != 0) return 1;
  for (int t = 0; t < THREADS; t++)
    for (int i = 0; i < RESOLVES; i++) gates[t][i] = vow_promise_new(loop);
  vow_loop_hold(loop);
  vow_promise *all = vow_async(loop, await_everything, NULL);
  pthread_t threads[THREADS];
  for (intptr_t t = 0; t < THREADS; t++)
    for (int i = 0; i < RESOLVES; i++) vow_promise_ref(gates[t][i]); /* handed to the thread */
  for (intptr_t t = 0; t < THREADS; t++) pthread_create(&threads[t], NULL, worker, (void *)t);
  int err = vow_loop_run(loop);
  for (int t = 0; t < THREADS; t++) pthread_join(threads[t], NULL);
  err = err ? err : vow_loop_run(loop); /* posts that arrived after the last await */

  long expected_resolved = (long)THREADS * (RESOLVES * (RESOLVES - 1) / 2);
  long expected_squares = 0;
  for (long j = 0; j < JOBS; j++) expected_squares += j * j;
  int ok = err == 0 && posted_sum == (long)THREADS * POSTS &&
           vow_as_int(vow_promise_result(all)) == expected_resolved + expected_squares;
  printf("posts %ld/%d, awaited sum %lld/%ld\n", posted_sum, THREADS * POSTS,
         (long long)vow_as_int(vow_promise_result(all)), expected_resolved + expected_squares);
  printf("%d passed, %d failed\n", ok, !ok);
  vow_promise_unref(all);
  for (int t = 0; t < THREADS; t++)
    for (int i = 0; i < RESOLVES; i++) vow_promise_unref(gates[t][i]);
  vow_loop_free(loop);
  return ok ? 0 : 1;
}
