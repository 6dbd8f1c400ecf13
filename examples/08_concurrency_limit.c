/*
 * 08 — At most K at a time: a concurrency-limited map
 *
 * Promise.all over a thousand URLs starts a thousand requests at once. A
 * concurrency limit starts K, and one more each time one finishes; the
 * results still come back in input order.
 *
 * The JavaScript this mirrors (with npm's p-map):
 *
 *   import pMap from 'p-map';
 *   const sizes = await pMap(urls, url => fetchSize(url), {concurrency: 3});
 */
#include <stdio.h>
#include <vow.h>

static uint64_t started; /* when main_async began, for the printed times */

static int in_flight, most;

static vow_value finished(vow_loop *loop, vow_value v, void *ctx) {
  (void)loop, (void)ctx;
  in_flight--;
  return vow_ref(v);
}

/* Stands in for a request: item i answers its "size" after (i % 4 + 1) * 50 ms. */
static vow_promise *fetch_size(vow_loop *loop, vow_value item, size_t index,
                               vow_abort_signal *signal, void *ctx) {
  (void)signal, (void)ctx;
  if (++in_flight > most) most = in_flight;
  printf("  %4llu ms  start %s\n", (unsigned long long)(vow_loop_now(loop) - started), vow_str(item));
  vow_promise *answer = vow_delay(loop, (index % 4 + 1) * 50, vow_int((int64_t)index * 100));
  vow_promise *counted = vow_then(answer, finished, NULL, NULL);
  vow_promise_unref(answer);
  return counted;
}

static vow_value main_async(vow_loop *loop, void *arg) {
  (void)arg;
  started = vow_loop_now(loop);
  vow_value urls[8];
  for (int i = 0; i < 8; i++) urls[i] = vow_stringf("/item/%d", i);
  vow_map_options limit = {.concurrency = 3};
  vow_value sizes;
  vow_await(vow_map(loop, urls, 8, fetch_size, NULL, &limit), &sizes);
  printf("sizes, in input order: ");
  vow_value_print(stdout, sizes);
  printf("\nnever more than %d in flight\n", most);
  vow_unref(sizes);
  return vow_undefined();
}

int main(void) {
  return vow_run(main_async, NULL, NULL, NULL) == 0 ? 0 : 1;
}
