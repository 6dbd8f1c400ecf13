/*
 * 11 — Parallel CPU work: what JavaScript's event loop cannot do
 *
 * Promise.all over CPU-bound work in JavaScript runs it one job after
 * another: there is one thread. vow_work runs each job on libuv's thread
 * pool and hands back a promise on the loop, so four hashing jobs on a
 * two-core machine take about half the time they take one after another.
 *
 * The JavaScript this mirrors (it needs worker_threads to be parallel at all):
 *
 *   const digests = await Promise.all(inputs.map(x => runInWorker(hash, x)));
 */
#include <stdio.h>
#include <uv.h>
#include <vow.h>

enum { JOBS = 4 };
static const uint64_t ROUNDS = 60000000;

/* FNV-1a over ROUNDS bytes: pure CPU. Runs on a pool thread. */
static vow_value hash(void *seed) {
  uint64_t h = 1469598103934665603ull ^ (uint64_t)(uintptr_t)seed;
  for (uint64_t i = 0; i < ROUNDS; i++) h = (h ^ (i & 0xff)) * 1099511628211ull;
  return vow_int((int64_t)(h >> 1));
}

static vow_value main_async(vow_loop *loop, void *arg) {
  (void)arg;
  uint64_t t = uv_hrtime();
  for (uintptr_t i = 0; i < JOBS; i++) vow_unref(hash((void *)i)); /* one after another */
  double sequential = (double)(uv_hrtime() - t) / 1e6;

  t = uv_hrtime();
  vow_value jobs[JOBS];
  for (uintptr_t i = 0; i < JOBS; i++) jobs[i] = vow_promise_value(vow_work(loop, hash, (void *)i));
  vow_value digests;
  vow_await(vow_all(loop, jobs, JOBS), &digests);
  double parallel = (double)(uv_hrtime() - t) / 1e6;

  printf("%d jobs one after another: %6.0f ms\n", JOBS, sequential);
  printf("%d jobs on the thread pool: %6.0f ms (%.1fx faster)\n", JOBS, parallel,
         sequential / parallel);
  printf("%zu digests\n", vow_array_len(digests));
  vow_unref(digests);
  return vow_undefined();
}

int main(void) {
  return vow_run(main_async, NULL, NULL, NULL) == 0 ? 0 : 1;
}
