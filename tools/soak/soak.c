/*
 * vow-soak — holds vow under load and watches its memory.
 *
 *   vow-soak promises N      N pending promises alive at once, then settled
 *   vow-soak coroutines N    N async functions suspended at once, then resumed
 *   vow-soak fetches N       N fetches, 64 at a time, against an in-process
 *                            HTTP server
 *   vow-soak mixed SECONDS   timers, promise chains, combinators, async
 *                            functions, generators and fetches, round after
 *                            round; RSS is printed every 10 rounds and must
 *                            stay flat
 *
 * Not a test (it runs for minutes): the figures it prints are the evidence.
 * Each suspended coroutine holds two memory mappings (its stack and its guard
 * page), so Linux's default vm.max_map_count (65530) allows about 32 000 at
 * once: raise it (sysctl vm.max_map_count=262144) for more.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include <vow.h>

static long rss_kib(void) {
  FILE *f = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) kib = strtol(line + 6, NULL, 10);
  if (f) fclose(f);
  return kib;
}

static double seconds_since(uint64_t t) { return (double)(uv_hrtime() - t) / 1e9; }

/* ---- N pending promises ------------------------------------------------------------- */

static int soak_promises(vow_loop *loop, long n) {
  long before = rss_kib();
  uint64_t t = uv_hrtime();
  vow_promise **ps = malloc((size_t)n * sizeof *ps);
  vow_value *items = malloc((size_t)n * sizeof *items);
  for (long i = 0; i < n; i++) {
    ps[i] = vow_promise_new(loop);
    items[i] = vow_promise_value(vow_promise_ref(ps[i]));
  }
  vow_promise *all = vow_all(loop, items, (size_t)n);
  long alive = rss_kib();
  for (long i = 0; i < n; i++) {
    vow_promise_resolve(ps[i], vow_int(i));
    vow_promise_unref(ps[i]);
  }
  vow_loop_run(loop);
  int ok = vow_promise_state(all) == VOW_FULFILLED && vow_array_len(vow_promise_result(all)) == (size_t)n;
  vow_promise_unref(all);
  free(ps);
  free(items);
  printf("promises: %ld pending at once with all() over them: +%ld KiB RSS (%.0f bytes each), "
         "%.2f s in all, %s\n",
         n, alive - before, (double)(alive - before) * 1024 / (double)n, seconds_since(t),
         ok ? "all fulfilled" : "FAILED");
  return ok ? 0 : 1;
}

/* ---- N suspended coroutines -------------------------------------------------------------- */

static vow_value wait_on(vow_loop *loop, void *gate) {
  (void)loop;
  vow_value v;
  vow_await(vow_promise_ref(gate), &v);
  return v;
}

static int soak_coroutines(vow_loop *loop, long n) {
  long before = rss_kib();
  uint64_t t = uv_hrtime();
  vow_promise *gate = vow_promise_new(loop);
  vow_value *items = malloc((size_t)n * sizeof *items);
  long made = 0;
  for (; made < n; made++) {
    vow_promise *p = vow_async(loop, wait_on, gate);
    if (!p || vow_promise_state(p) == VOW_REJECTED) {
      vow_promise_unref(p);
      break; /* out of stacks or mappings */
    }
    items[made] = vow_promise_value(p);
  }
  long alive = rss_kib();
  vow_promise *all = vow_all(loop, items, (size_t)made);
  vow_promise_resolve(gate, vow_int(7));
  vow_loop_run(loop);
  int ok = made == n && vow_promise_state(all) == VOW_FULFILLED;
  printf("coroutines: %ld of %ld suspended at once: +%ld KiB RSS (%.0f bytes each), %.2f s, %s\n",
         made, n, alive - before, made ? (double)(alive - before) * 1024 / (double)made : 0.0,
         seconds_since(t), ok ? "all resumed" : "FAILED (see vm.max_map_count above)");
  vow_promise_unref(all);
  vow_promise_unref(gate);
  free(items);
  return ok ? 0 : 1;
}

/* ---- fetches against an in-process server ------------------------------------------------ */

static int port;

static vow_value serve(vow_loop *loop, vow_request *req, void *data) {
  (void)loop, (void)data;
  return vow_http_response(200, NULL, vow_string(vow_request_target(req)));
}

static vow_promise *fetch_one(vow_loop *loop, vow_value item, size_t index, vow_abort_signal *signal,
                              void *ctx) {
  (void)item, (void)ctx;
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/%zu", port, index);
  vow_fetch_options o = {.signal = signal, .reject_http_errors = 1};
  return vow_fetch(loop, url, &o);
}

typedef struct fetch_job {
  long n;
  int ok;
} fetch_job;

static vow_value fetch_all(vow_loop *loop, void *arg) {
  fetch_job *job = arg;
  vow_server *server;
  if (vow_server_listen(loop, NULL, serve, NULL, &server) != 0) return vow_undefined();
  port = vow_server_port(server);
  vow_value *items = calloc((size_t)job->n, sizeof *items);
  vow_map_options o = {.concurrency = 64};
  vow_value results;
  job->ok = vow_await(vow_map(loop, items, (size_t)job->n, fetch_one, NULL, &o), &results) == 0 &&
            vow_array_len(results) == (size_t)job->n;
  vow_unref(results);
  free(items);
  vow_await(vow_server_close(server), NULL);
  return vow_undefined();
}

static int soak_fetches(vow_loop *loop, long n) {
  long before = rss_kib();
  uint64_t t = uv_hrtime();
  fetch_job job = {n, 0};
  vow_promise_unref(vow_async(loop, fetch_all, &job));
  vow_loop_run(loop);
  double s = seconds_since(t);
  printf("fetches: %ld at 64 in flight: %.1f s, %.0f requests/s, RSS +%ld KiB (now %ld KiB), %s\n", n,
         s, (double)n / s, rss_kib() - before, rss_kib(), job.ok ? "all fulfilled" : "FAILED");
  return job.ok ? 0 : 1;
}

/* ---- mixed load -------------------------------------------------------------------------- */

static vow_value add_one(vow_loop *l, vow_value v, void *ctx) {
  (void)l, (void)ctx;
  return vow_int(vow_as_int(v) + 1);
}

static vow_value counter(vow_loop *loop, vow_asyncgen *g, void *arg) {
  (void)g, (void)arg;
  for (int i = 0; i < 10; i++) {
    vow_await(vow_delay(loop, 1, vow_undefined()), NULL);
    if (vow_yield(vow_int(i), NULL) != 0) break;
  }
  return vow_undefined();
}

static vow_value worker(vow_loop *loop, void *arg) {
  long id = (long)(intptr_t)arg;
  vow_promise *p = vow_delay(loop, (uint64_t)(id % 7), vow_int(id));
  for (int i = 0; i < 20; i++) {
    vow_promise *next = vow_then(p, add_one, NULL, NULL);
    vow_promise_unref(p);
    p = next;
  }
  vow_value items[] = {vow_promise_value(p), vow_string("x"),
                       vow_promise_value(vow_delay(loop, 2, vow_int(2)))};
  vow_value v;
  vow_await(vow_all(loop, items, 3), &v);
  vow_unref(v);
  vow_for_await it;
  vow_for_await_gen(&it, vow_asyncgen_new(loop, counter, NULL));
  VOW_FOR_AWAIT(&it, x) (void)x;
  vow_for_await_end(&it, NULL);
  return vow_undefined();
}

static int soak_mixed(vow_loop *loop, double seconds) {
  uint64_t t = uv_hrtime();
  long first = -1, peak = 0;
  for (int round = 1; seconds_since(t) < seconds; round++) {
    for (long i = 0; i < 2000; i++) vow_promise_unref(vow_async(loop, worker, (void *)(intptr_t)i));
    fetch_job job = {200, 0}; /* and 200 fetches, 64 at a time */
    vow_promise_unref(vow_async(loop, fetch_all, &job));
    if (vow_loop_run(loop) != 0 || !job.ok) return 1;
    long rss = rss_kib();
    if (round == 3) first = rss; /* after warm-up */
    if (rss > peak) peak = rss;
    if (round % 10 == 0)
      printf("mixed: round %d, %.0f s, RSS %ld KiB (after warm-up %ld KiB)\n", round,
             seconds_since(t), rss, first);
  }
  printf("mixed: %.0f s, RSS after warm-up %ld KiB, peak %ld KiB\n", seconds_since(t), first, peak);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: vow-soak promises N | coroutines N | fetches N | mixed SECONDS\n");
    return 2;
  }
  long n = strtol(argv[2], NULL, 10);
  vow_loop *loop;
  vow_loop_options o = {.stack_size = 16 * 1024};
  if (n <= 0 || vow_loop_new(&loop, &o) != 0) return 2;
  int rc;
  if (strcmp(argv[1], "promises") == 0) rc = soak_promises(loop, n);
  else if (strcmp(argv[1], "coroutines") == 0) rc = soak_coroutines(loop, n);
  else if (strcmp(argv[1], "fetches") == 0) rc = soak_fetches(loop, n);
  else if (strcmp(argv[1], "mixed") == 0) rc = soak_mixed(loop, (double)n);
  else rc = 2;
  vow_loop_free(loop);
  return rc;
}
