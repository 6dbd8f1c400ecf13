/*
 * vow_bench.c - the suite's workloads written with vow (public API).
 *
 *   vow_bench <workload> <n> [window_ms] [url]
 *
 * runs one workload once (after a warm-up pass of a tenth of its size, in a
 * loop of its own) and prints one RESULT line (see bench_common.h). The same
 * workloads are written in JavaScript in node_bench.mjs and with raw libuv in
 * raw_bench.c; bench_suite runs the three interleaved and compares them.
 *
 * Only vow.h is used, with one exception: the heap figures also read the
 * loop's pool counters (bytes of pool chunks, live objects and their bytes),
 * which have no public accessor, from the internal header loop.h: the free
 * space inside the pool's chunks is subtracted from what mallinfo2 counts as
 * in use, so that the figures count live objects as Node's heapUsed does.
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vow.h>

#include "core/loop.h" /* internal: vow__pool counters only (see above) */

/* ---- helpers ------------------------------------------------------------------ */

/* Workloads named *_small run their async functions in the small-memory mode
 * (vow_async_options.copy_stack): asynccall, await_interleaved, suspended. */
static int copy_stacks;

static vow_promise *start(vow_loop *loop, vow_async_fn fn, void *arg) {
  vow_async_options o = {.copy_stack = copy_stacks};
  return vow_async_ex(loop, fn, arg, &o);
}

static vow_loop *loop_make(void) {
  vow_loop *loop = NULL;
  int err = vow_loop_new(&loop, NULL);
  if (err) bench_die("vow_loop_new: %s", vow_strerror(err));
  return loop;
}

static void loop_run(vow_loop *loop) {
  int err = vow_loop_run(loop);
  if (err) bench_die("vow_loop_run: %s", vow_strerror(err));
}

static void loop_free(vow_loop *loop) {
  int err = vow_loop_free(loop);
  if (err) bench_die("vow_loop_free: %s", vow_strerror(err));
}

/* The promise p fulfilled with the integer want (checks the run was real). */
static void expect_int(vow_promise *p, int64_t want, const char *what) {
  if (vow_promise_state(p) != VOW_FULFILLED) {
    char buf[128];
    vow_value_format(vow_promise_result(p), buf, sizeof buf);
    bench_die("%s: not fulfilled (%s)", what, buf);
  }
  int64_t got = vow_as_int(vow_promise_result(p));
  if (got != want) bench_die("%s: got %lld, want %lld", what, (long long)got, (long long)want);
}

static double pool_bytes(vow_loop *loop) { return (double)loop->pool.chunk_bytes; }
static double pool_live(vow_loop *loop) { return (double)loop->pool.live; }

/* Bytes in live objects, counted the way Node's heapUsed (after gc()) counts
 * them: what malloc has handed out, minus the free space inside the pool's
 * chunks (free-list entries, the unused end of the newest chunk, alignment
 * slack). heap_in_use() alone counts that free space as used. */
static double live_heap(vow_loop *loop) {
  return heap_in_use() - ((double)loop->pool.block_bytes - (double)loop->pool.live_bytes);
}

/* ---- 1. microtask chain: each microtask queues the next ------------------------ */

static uint64_t hops_left;

static void hop(vow_loop *loop, void *arg) {
  if (--hops_left > 0 && vow_queue_microtask(loop, hop, arg) != 0) bench_die("queue_microtask");
}

static double microtask_pass(uint64_t n) {
  vow_loop *loop = loop_make();
  hops_left = n;
  uint64_t t0 = mono_ns();
  if (vow_queue_microtask(loop, hop, NULL) != 0) bench_die("queue_microtask");
  loop_run(loop);
  uint64_t t1 = mono_ns();
  if (hops_left != 0) bench_die("microtask chain stopped with %llu hops left",
                                (unsigned long long)hops_left);
  loop_free(loop);
  return (double)(t1 - t0) / (double)n;
}

static void bench_microtask(uint64_t n) {
  microtask_pass(warmup_size(n));
  uint64_t c0 = cpu_ns();
  double ns = microtask_pass(n);
  double cpu = (double)(cpu_ns() - c0) / (double)n;
  result_begin();
  result_kv("ns", ns);
  result_kv("cpu_ns", cpu);
  result_end();
}

/* ---- 2. then-chain: n .then steps, built on a resolved promise, then run -------- */

static vow_value add_one(vow_loop *loop, vow_value v, void *ctx) {
  (void)loop, (void)ctx;
  return vow_int(vow_as_int(v) + 1);
}

/* heap: bytes of malloc and of the pool per then, read after building. */
static double then_pass(uint64_t n, double *heap_b, double *pool_b, double *objects) {
  vow_loop *loop = loop_make();
  double h0 = live_heap(loop), b0 = pool_bytes(loop), l0 = pool_live(loop);
  uint64_t t0 = mono_ns();
  vow_promise *p = vow_resolved(loop, vow_int(0));
  for (uint64_t i = 0; i < n; i++) {
    vow_promise *q = vow_then(p, add_one, NULL, NULL);
    if (!q) bench_die("vow_then");
    vow_promise_unref(p);
    p = q;
  }
  uint64_t t1 = mono_ns();
  if (heap_b) {
    *heap_b = (live_heap(loop) - h0) / (double)n;
    *pool_b = (pool_bytes(loop) - b0) / (double)n;
    *objects = (pool_live(loop) - l0) / (double)n;
  }
  uint64_t t2 = mono_ns();
  loop_run(loop);
  uint64_t t3 = mono_ns();
  expect_int(p, (int64_t)n, "then-chain");
  vow_promise_unref(p);
  loop_free(loop);
  return (double)((t1 - t0) + (t3 - t2)) / (double)n;
}

static void bench_then(uint64_t n) {
  then_pass(warmup_size(n), NULL, NULL, NULL);
  uint64_t c0 = cpu_ns();
  double ns = then_pass(n, NULL, NULL, NULL);
  double cpu = (double)(cpu_ns() - c0) / (double)n;
  result_begin();
  result_kv("ns", ns);
  result_kv("cpu_ns", cpu);
  result_end();
}

static void bench_then_heap(uint64_t n) {
  double heap_b = 0, pool_b = 0, objects = 0;
  then_pass(n, &heap_b, &pool_b, &objects);
  result_begin();
  result_kv("heap_b", heap_b);
  result_kv("pool_b", pool_b);
  result_kv("pool_objects", objects);
  result_end();
}

/* ---- 3. fan-out: n pending promises, gathered by all, then resolved ------------- */

typedef struct fanout_mem {
  double pending_b;   /* heap per pending promise, with the arrays that hold them */
  double all_b;       /* ... once all() has subscribed to every one */
  double pool_pending_b, pool_all_b, objects_pending, objects_all;
} fanout_mem;

static double fanout_pass(uint64_t n, fanout_mem *m) {
  vow_loop *loop = loop_make();
  double h0 = live_heap(loop), b0 = pool_bytes(loop), l0 = pool_live(loop);
  uint64_t t0 = mono_ns();
  vow_promise **ps = malloc(n * sizeof *ps);
  if (!ps) bench_die("malloc");
  for (uint64_t i = 0; i < n; i++) {
    ps[i] = vow_promise_new(loop);
    if (!ps[i]) bench_die("vow_promise_new");
  }
  uint64_t t1 = mono_ns();
  if (m) {
    m->pending_b = (live_heap(loop) - h0) / (double)n;
    m->pool_pending_b = (pool_bytes(loop) - b0) / (double)n;
    m->objects_pending = (pool_live(loop) - l0) / (double)n;
  }
  uint64_t t2 = mono_ns();
  vow_promise *all = vow_all_promises(loop, ps, n); /* gathers the array we resolve */
  if (!all) bench_die("vow_all_promises");
  uint64_t t3 = mono_ns();
  if (m) {
    m->all_b = (live_heap(loop) - h0) / (double)n;
    m->pool_all_b = (pool_bytes(loop) - b0) / (double)n;
    m->objects_all = (pool_live(loop) - l0) / (double)n;
  }
  uint64_t t4 = mono_ns();
  for (uint64_t i = 0; i < n; i++) {
    vow_promise_resolve(ps[i], vow_int((int64_t)i));
    vow_promise_unref(ps[i]);
  }
  free(ps);
  loop_run(loop);
  uint64_t t5 = mono_ns();
  if (vow_promise_state(all) != VOW_FULFILLED) bench_die("fan-out: all() did not fulfil");
  vow_value arr = vow_promise_result(all);
  if (vow_array_len(arr) != n || vow_as_int(vow_array_get(arr, n - 1)) != (int64_t)(n - 1))
    bench_die("fan-out: wrong array");
  vow_promise_unref(all);
  loop_free(loop);
  return (double)((t1 - t0) + (t3 - t2) + (t5 - t4)) / (double)n;
}

static void bench_fanout(uint64_t n) {
  fanout_pass(warmup_size(n), NULL);
  uint64_t c0 = cpu_ns();
  double ns = fanout_pass(n, NULL);
  double cpu = (double)(cpu_ns() - c0) / (double)n;
  long hwm = status_kb("VmHWM");
  result_begin();
  result_kv("ns", ns);
  result_kv("cpu_ns", cpu);
  result_kv("rss_b", (double)(hwm - bench_rss_base_kb) * 1024.0 / (double)n);
  result_end();
}

static void bench_fanout_heap(uint64_t n) {
  fanout_mem m = {0};
  fanout_pass(n, &m);
  result_begin();
  result_kv("heap_b", m.pending_b);
  result_kv("heap_all_b", m.all_b);
  result_kv("pool_b", m.pool_pending_b);
  result_kv("pool_all_b", m.pool_all_b);
  result_kv("pool_objects", m.objects_pending);
  result_kv("pool_all_objects", m.objects_all);
  result_end();
}

/* ---- 4a. await loop: n awaits of one resolved promise in one async function ----- */

static vow_value await_body(vow_loop *loop, void *arg) {
  uint64_t n = *(uint64_t *)arg;
  vow_promise *p = vow_resolved(loop, vow_int(1));
  int64_t sum = 0;
  for (uint64_t i = 0; i < n; i++) {
    vow_value v;
    if (vow_await(vow_promise_ref(p), &v) != 0) bench_die("await");
    sum += vow_as_int(v);
    vow_unref(v);
  }
  vow_promise_unref(p);
  return vow_int(sum);
}

static double await_pass(uint64_t n) {
  vow_loop *loop = loop_make();
  uint64_t t0 = mono_ns();
  vow_promise *done = vow_async(loop, await_body, &n);
  loop_run(loop);
  uint64_t t1 = mono_ns();
  expect_int(done, (int64_t)n, "await loop");
  vow_promise_unref(done);
  loop_free(loop);
  return (double)(t1 - t0) / (double)n;
}

static void bench_await(uint64_t n) {
  await_pass(warmup_size(n));
  uint64_t c0 = cpu_ns();
  double ns = await_pass(n);
  double cpu = (double)(cpu_ns() - c0) / (double)n;
  result_begin();
  result_kv("ns", ns);
  result_kv("cpu_ns", cpu);
  result_end();
}

/* ---- 4a'. await interleaved: two async functions awaiting in turn ---------------
 * Each await finds the other function's resumption queued, so it suspends:
 * the cost of an await that cannot carry on inline (see vow_await). */

static double interleaved_pass(uint64_t n) {
  vow_loop *loop = loop_make();
  uint64_t half = n / 2;
  uint64_t t0 = mono_ns();
  vow_promise *a = start(loop, await_body, &half);
  vow_promise *b = start(loop, await_body, &half);
  loop_run(loop);
  uint64_t t1 = mono_ns();
  expect_int(a, (int64_t)half, "interleaved awaits");
  expect_int(b, (int64_t)half, "interleaved awaits");
  vow_promise_unref(a);
  vow_promise_unref(b);
  loop_free(loop);
  return (double)(t1 - t0) / (double)(2 * half);
}

static void bench_await_interleaved(uint64_t n) {
  interleaved_pass(warmup_size(n));
  uint64_t c0 = cpu_ns();
  double ns = interleaved_pass(n);
  double cpu = (double)(cpu_ns() - c0) / (double)n;
  result_begin();
  result_kv("ns", ns);
  result_kv("cpu_ns", cpu);
  result_end();
}

/* ---- 4b. async call: n sequential calls of an async function that awaits once --- */

static vow_value awaits_once(vow_loop *loop, void *arg) {
  (void)loop, (void)arg;
  vow_value v;
  vow_await_value(vow_undefined(), &v); /* await undefined */
  vow_unref(v);
  return vow_int(1);
}

static vow_value call_many(vow_loop *loop, void *arg) {
  uint64_t n = *(uint64_t *)arg;
  int64_t sum = 0;
  for (uint64_t i = 0; i < n; i++) {
    vow_value v;
    if (vow_await(start(loop, awaits_once, NULL), &v) != 0) bench_die("async call");
    sum += vow_as_int(v);
    vow_unref(v);
  }
  return vow_int(sum);
}

static double asynccall_pass(uint64_t n) {
  vow_loop *loop = loop_make();
  uint64_t t0 = mono_ns();
  vow_promise *done = vow_async(loop, call_many, &n);
  loop_run(loop);
  uint64_t t1 = mono_ns();
  expect_int(done, (int64_t)n, "async calls");
  vow_promise_unref(done);
  loop_free(loop);
  return (double)(t1 - t0) / (double)n;
}

static void bench_asynccall(uint64_t n) {
  asynccall_pass(warmup_size(n));
  uint64_t c0 = cpu_ns();
  double ns = asynccall_pass(n);
  double cpu = (double)(cpu_ns() - c0) / (double)n;
  result_begin();
  result_kv("ns", ns);
  result_kv("cpu_ns", cpu);
  result_end();
}

/* ---- 5. race against a 5 s timeout that is cleared when the work wins ------------
 * The idiomatic vow spelling is vow_timeout(work, ms): it races work against a
 * timer and clears the timer itself when work settles first. (vow_race with
 * vow_delay_reject cannot clear its timer: vow_delay_reject returns no id.) */

static vow_value race_many(vow_loop *loop, void *arg) {
  uint64_t n = *(uint64_t *)arg;
  int64_t sum = 0;
  for (uint64_t i = 0; i < n; i++) {
    vow_value v;
    vow_promise *work = vow_resolved(loop, vow_int((int64_t)(i & 1)));
    if (vow_await(vow_timeout(loop, work, 5000, NULL), &v) != 0) bench_die("race: timed out");
    sum += vow_as_int(v);
    vow_unref(v);
  }
  return vow_int(sum);
}

static double race_pass(uint64_t n) {
  vow_loop *loop = loop_make();
  uint64_t t0 = mono_ns();
  vow_promise *done = vow_async(loop, race_many, &n);
  loop_run(loop); /* returns at once: every timer was cleared */
  uint64_t t1 = mono_ns();
  expect_int(done, (int64_t)(n / 2), "race");
  vow_promise_unref(done);
  loop_free(loop);
  return (double)(t1 - t0) / (double)n;
}

static void bench_race(uint64_t n) {
  race_pass(warmup_size(n));
  uint64_t c0 = cpu_ns();
  double ns = race_pass(n);
  double cpu = (double)(cpu_ns() - c0) / (double)n;
  result_begin();
  result_kv("ns", ns);
  result_kv("cpu_ns", cpu);
  result_end();
}

/* ---- 6. timers: n timeouts with random delays in [0, window) ms -------------------
 * Scheduled from inside an immediate, so that the loop's cached clock is fresh
 * (as in node_bench.mjs and raw_bench.c). A timer's due time is the wall clock
 * at its vow_set_timeout call plus its delay (1 ms for 0, as in Node); the
 * clock is read once per 1024 calls, which puts every call within a few
 * microseconds. Lateness = fire time - due time. */

typedef struct timers_run {
  uint64_t n;
  uint32_t *delay;
  uint64_t *due;
  uint64_t fired;
  int64_t worst_late;       /* ns */
  int64_t worst_late_loop;  /* ns, counted from max(due, end of scheduling) */
  uint64_t sched_wall, sched_end, sched_cpu_end, end_wall, end_cpu;
} timers_run;

static timers_run tr;

static void timer_fired(vow_loop *loop, void *arg) {
  (void)loop;
  uint64_t now = mono_ns();
  uint64_t i = (uint64_t)(uintptr_t)arg;
  int64_t late = (int64_t)(now - tr.due[i]);
  if (late > tr.worst_late) tr.worst_late = late;
  uint64_t from = tr.due[i] > tr.sched_end ? tr.due[i] : tr.sched_end;
  int64_t late_loop = (int64_t)(now - from);
  if (late_loop > tr.worst_late_loop) tr.worst_late_loop = late_loop;
  if (++tr.fired == tr.n) {
    tr.end_wall = now;
    tr.end_cpu = cpu_ns();
  }
}

static void schedule_timers(vow_loop *loop, void *arg) {
  (void)arg;
  uint64_t block = 0, t0 = mono_ns();
  for (uint64_t i = 0; i < tr.n; i++) {
    if ((i & 1023) == 0) block = mono_ns();
    uint32_t d = tr.delay[i];
    tr.due[i] = block + (uint64_t)(d ? d : 1) * 1000000u;
    if (vow_set_timeout(loop, d, timer_fired, (void *)(uintptr_t)i) < 0) bench_die("set_timeout");
  }
  tr.sched_end = mono_ns();
  tr.sched_cpu_end = cpu_ns();
  tr.sched_wall = tr.sched_end - t0;
}

static void bench_timers(uint64_t n, uint64_t window) {
  uint32_t seed = 0x9e3779b9u;
  tr.n = n;
  tr.delay = malloc(n * sizeof *tr.delay);
  tr.due = malloc(n * sizeof *tr.due);
  if (!tr.delay || !tr.due) bench_die("malloc");
  for (uint64_t i = 0; i < n; i++) tr.delay[i] = (uint32_t)(xorshift32(&seed) % window);
  memset(tr.due, 0, n * sizeof *tr.due); /* fault it in now, not while scheduling */
  tr.worst_late = tr.worst_late_loop = INT64_MIN;
  vow_loop *loop = loop_make();
  if (vow_set_immediate(loop, schedule_timers, NULL) < 0) bench_die("set_immediate");
  loop_run(loop);
  if (tr.fired != n) bench_die("timers: %llu of %llu fired", (unsigned long long)tr.fired,
                               (unsigned long long)n);
  loop_free(loop);
  result_begin();
  result_kv("sched_ns", (double)tr.sched_wall / (double)n);
  result_kv("fire_ns", (double)(tr.end_cpu - tr.sched_cpu_end) / (double)n);
  result_kv("late_ms", (double)tr.worst_late / 1e6);
  result_kv("late_loop_ms", (double)tr.worst_late_loop / 1e6);
  result_kv("span_ms", (double)(tr.end_wall - tr.sched_end) / 1e6);
  result_end();
  free(tr.delay);
  free(tr.due);
}

/* ---- 7. setImmediate: a batch scheduled at once, and a chain --------------------- */

static uint64_t imm_left;

static void imm_batch_cb(vow_loop *loop, void *arg) {
  (void)loop, (void)arg;
  imm_left--;
}

static void imm_chain_cb(vow_loop *loop, void *arg) {
  if (--imm_left > 0 && vow_set_immediate(loop, imm_chain_cb, arg) < 0) bench_die("set_immediate");
}

static double immediate_pass(uint64_t n, int chain) {
  vow_loop *loop = loop_make();
  imm_left = n;
  uint64_t t0 = mono_ns();
  if (chain) {
    if (vow_set_immediate(loop, imm_chain_cb, NULL) < 0) bench_die("set_immediate");
  } else {
    for (uint64_t i = 0; i < n; i++)
      if (vow_set_immediate(loop, imm_batch_cb, NULL) < 0) bench_die("set_immediate");
  }
  loop_run(loop);
  uint64_t t1 = mono_ns();
  if (imm_left != 0) bench_die("immediates: %llu did not run", (unsigned long long)imm_left);
  loop_free(loop);
  return (double)(t1 - t0) / (double)n;
}

static void bench_immediate(uint64_t n, int chain) {
  immediate_pass(warmup_size(n), chain);
  uint64_t c0 = cpu_ns();
  double ns = immediate_pass(n, chain);
  double cpu = (double)(cpu_ns() - c0) / (double)n;
  result_begin();
  result_kv("ns", ns);
  result_kv("cpu_ns", cpu);
  result_end();
}

/* ---- 8. memory per suspended async function ---------------------------------------
 * n async functions, each suspended in an await of one pending promise: the
 * resident memory they add (stack pages touched, frame, promise, reaction). */

static vow_value wait_gate(vow_loop *loop, void *gate) {
  (void)loop;
  vow_value v;
  vow_await(vow_promise_ref(gate), &v);
  vow_unref(v);
  return vow_int(1);
}

static void bench_suspended(uint64_t n) {
  vow_loop *loop = loop_make();
  vow_promise *gate = vow_promise_new(loop);
  vow_promise **ps = malloc(n * sizeof *ps);
  if (!gate || !ps) bench_die("allocation");
  /* Warm up the machinery (and the stack pool's cache) with one call. */
  vow_promise_unref(start(loop, wait_gate, gate));
  long rss0 = status_kb("VmRSS");
  double h0 = live_heap(loop);
  uint64_t t0 = mono_ns();
  for (uint64_t i = 0; i < n; i++) {
    ps[i] = start(loop, wait_gate, gate);
    if (!ps[i] || vow_promise_state(ps[i]) != VOW_PENDING) bench_die("vow_async");
  }
  uint64_t t1 = mono_ns();
  long rss1 = status_kb("VmRSS");
  double h1 = live_heap(loop);
  uint64_t t2 = mono_ns();
  vow_promise_resolve(gate, vow_int(1));
  loop_run(loop);
  uint64_t t3 = mono_ns();
  for (uint64_t i = 0; i < n; i++) {
    expect_int(ps[i], 1, "suspended");
    vow_promise_unref(ps[i]);
  }
  free(ps);
  vow_promise_unref(gate);
  loop_free(loop);
  result_begin();
  result_kv("rss_b", (double)(rss1 - rss0) * 1024.0 / (double)n);
  result_kv("heap_b", (h1 - h0) / (double)n);
  result_kv("start_ns", (double)(t1 - t0) / (double)n);  /* call until the first await */
  result_kv("resume_ns", (double)(t3 - t2) / (double)n); /* resumed, finished, settled */
  result_end();
}

/* ---- 9. HTTP client: n GETs, 64 at a time, against one local server ---------------
 * 64 async functions, each fetching and reading the body in turn until n
 * requests have been made (the same shape as node_bench.mjs). The server is
 * started by bench_suite (vow_bench serve) and shared by every client. */

#define HTTP_CONCURRENCY 64

typedef struct http_run {
  const char *url;
  uint64_t left, done;
} http_run;

static vow_value http_worker(vow_loop *loop, void *arg) {
  http_run *h = arg;
  while (h->left > 0) {
    h->left--;
    vow_value res, body;
    if (vow_await(vow_fetch(loop, h->url, NULL), &res) != 0) {
      char buf[200];
      vow_value_format(res, buf, sizeof buf);
      bench_die("fetch %s: %s", h->url, buf);
    }
    vow_response *r = vow_as_response(res);
    if (vow_response_status(r) != 200) bench_die("fetch: status %d", vow_response_status(r));
    if (vow_await(vow_response_text(r), &body) != 0 || vow_str_len(body) == 0)
      bench_die("fetch: no body");
    vow_unref(body);
    vow_unref(res);
    h->done++;
  }
  return vow_undefined();
}

static double http_pass(uint64_t n, const char *url, double *cpu_per) {
  vow_loop *loop = loop_make();
  http_run h = {url, n, 0};
  vow_value workers[HTTP_CONCURRENCY];
  uint64_t t0 = mono_ns(), c0 = cpu_ns();
  for (int i = 0; i < HTTP_CONCURRENCY; i++)
    workers[i] = vow_promise_value(vow_async(loop, http_worker, &h));
  vow_promise *all = vow_all(loop, workers, HTTP_CONCURRENCY);
  loop_run(loop);
  uint64_t t1 = mono_ns(), c1 = cpu_ns();
  if (vow_promise_state(all) != VOW_FULFILLED || h.done != n)
    bench_die("http: %llu of %llu requests done", (unsigned long long)h.done,
              (unsigned long long)n);
  vow_promise_unref(all);
  loop_free(loop);
  if (cpu_per) *cpu_per = (double)(c1 - c0) / (double)n;
  return (double)(t1 - t0) / (double)n;
}

static void bench_http_client(uint64_t n, const char *url) {
  double cpu = 0;
  if (!url) bench_die("http_client needs the server's URL");
  http_pass(warmup_size(n), url, NULL);
  double ns = http_pass(n, url, &cpu);
  result_begin();
  result_kv("us", ns / 1000);
  result_kv("cpu_us", cpu / 1000);
  result_end();
}

/* ---- 11. structured: spawning into a task group; async context ------------------------
 * group_spawn: n children that await once, spawned into groups of 50, each
 * group awaited (Node: the same calls gathered by Promise.all). 50, not more:
 * the loop's stack pool keeps 64 stacks, and a group of 100 suspended children
 * measured mmap and page faults (5 us a child) rather than the group. context: n
 * times, run an async fn with a value bound (als.run), which reads it, awaits
 * once and reads it again (getStore across an await). */

#define GROUP_BATCH 50

static vow_value spawn_many(vow_loop *loop, void *arg) {
  uint64_t n = *(uint64_t *)arg;
  int64_t sum = 0;
  for (uint64_t done = 0; done < n; done += GROUP_BATCH) {
    vow_group *g = vow_group_new(loop, NULL);
    uint64_t batch = n - done < GROUP_BATCH ? n - done : GROUP_BATCH;
    for (uint64_t i = 0; i < batch; i++)
      if (vow_group_spawn(g, awaits_once, NULL, NULL) != 0) bench_die("group spawn");
    vow_value results;
    if (vow_group_await(g, &results) != 0) bench_die("group await");
    for (size_t i = 0; i < vow_array_len(results); i++) sum += vow_as_int(vow_array_get(results, i));
    vow_unref(results);
    vow_group_unref(g);
  }
  return vow_int(sum);
}

static const char bench_key;

static vow_value reads_context(vow_loop *loop, void *arg) {
  (void)arg;
  int64_t a = vow_as_int(vow_context_get(loop, &bench_key));
  /* await Promise.resolve(): a second caller of vow_await_value would stop
   * LTO inlining it into the asynccall workload and move that row by 30
   * instructions. */
  vow_await(vow_resolved(loop, vow_undefined()), NULL);
  return vow_int(a == vow_as_int(vow_context_get(loop, &bench_key)));
}

static vow_value run_many(vow_loop *loop, void *arg) {
  uint64_t n = *(uint64_t *)arg;
  int64_t sum = 0;
  for (uint64_t i = 0; i < n; i++) {
    vow_value v;
    if (vow_await(vow_context_run(loop, &bench_key, vow_int((int64_t)i), reads_context, NULL, NULL), &v) != 0)
      bench_die("context run");
    sum += vow_as_int(v);
  }
  return vow_int(sum);
}

static double structured_pass(uint64_t n, vow_async_fn fn, const char *what) {
  vow_loop *loop = loop_make();
  uint64_t t0 = mono_ns();
  vow_promise *done = vow_async(loop, fn, &n);
  loop_run(loop);
  uint64_t t1 = mono_ns();
  expect_int(done, (int64_t)n, what);
  vow_promise_unref(done);
  loop_free(loop);
  return (double)(t1 - t0) / (double)n;
}

static void bench_structured(uint64_t n, vow_async_fn fn, const char *what) {
  structured_pass(warmup_size(n), fn, what);
  uint64_t c0 = cpu_ns();
  double ns = structured_pass(n, fn, what);
  double cpu = (double)(cpu_ns() - c0) / (double)n;
  result_begin();
  result_kv("ns", ns);
  result_kv("cpu_ns", cpu);
  result_end();
}

/* ---- 10. HTTP server: answers every request with a short text ----------------------
 * `vow_bench serve 0` prints "PORT <port>" and serves until killed; bench_suite
 * points wrk (and the HTTP clients of 9) at it. */

static vow_value hello(vow_loop *loop, vow_request *req, void *data) {
  (void)loop, (void)req, (void)data;
  return vow_http_response(200, NULL, vow_string("hello world\n"));
}

static void serve(void) {
  vow_loop *loop = loop_make();
  vow_server *server = NULL;
  int err = vow_server_listen(loop, NULL, hello, NULL, &server);
  if (err) bench_die("vow_server_listen: %s", vow_strerror(err));
  printf("PORT %d\n", vow_server_port(server));
  fflush(stdout);
  loop_run(loop); /* until bench_suite kills the process */
}

/* ---- 11. files: read n small files, at most 64 in flight ------------------------------
 * n files of FS_FILE_BYTES each, written (untimed) into a fresh directory
 * under /tmp, then read whole by 64 async functions that each take the next
 * name until none is left (the same shape as node_bench.mjs, with
 * fs/promises readFile). The page cache is warm for both. */

#define FS_CONCURRENCY 64
#define FS_FILE_BYTES 1024

typedef struct fs_run {
  char dir[64];
  uint64_t next, n, bytes;
} fs_run;

static void fs_path(const fs_run *f, uint64_t i, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/f%llu", f->dir, (unsigned long long)i);
}

static void fs_make_files(fs_run *f, uint64_t n) {
  snprintf(f->dir, sizeof f->dir, "/tmp/vow-bench-fs-XXXXXX");
  if (!mkdtemp(f->dir)) bench_die("mkdtemp");
  char data[FS_FILE_BYTES], path[128];
  memset(data, 'v', sizeof data);
  for (uint64_t i = 0; i < n; i++) {
    fs_path(f, i, path, sizeof path);
    FILE *out = fopen(path, "wb");
    if (!out || fwrite(data, 1, sizeof data, out) != sizeof data || fclose(out) != 0)
      bench_die("cannot write %s", path);
  }
}

static int fs_remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static vow_value fs_worker(vow_loop *loop, void *arg) {
  fs_run *f = arg;
  char path[128];
  while (f->next < f->n) {
    fs_path(f, f->next++, path, sizeof path);
    vow_value text;
    if (vow_await(vow_fs_read_file(loop, path, NULL), &text) != 0)
      bench_die("readFile %s: %s", path, vow_error_message(text));
    f->bytes += vow_str_len(text);
    vow_unref(text);
  }
  return vow_undefined();
}

static double fs_pass(fs_run *f, uint64_t n, double *cpu_per) {
  vow_loop *loop = loop_make();
  f->next = 0, f->n = n, f->bytes = 0;
  vow_value workers[FS_CONCURRENCY];
  uint64_t t0 = mono_ns(), c0 = cpu_ns();
  for (int i = 0; i < FS_CONCURRENCY; i++)
    workers[i] = vow_promise_value(vow_async(loop, fs_worker, f));
  vow_promise *all = vow_all(loop, workers, FS_CONCURRENCY);
  loop_run(loop);
  uint64_t t1 = mono_ns(), c1 = cpu_ns();
  if (vow_promise_state(all) != VOW_FULFILLED || f->bytes != n * FS_FILE_BYTES)
    bench_die("fs: read %llu bytes of %llu", (unsigned long long)f->bytes,
              (unsigned long long)(n * FS_FILE_BYTES));
  vow_promise_unref(all);
  loop_free(loop);
  if (cpu_per) *cpu_per = (double)(c1 - c0) / (double)n;
  return (double)(t1 - t0) / (double)n;
}

static void bench_fs_read(uint64_t n) {
  fs_run f;
  fs_make_files(&f, n);
  double cpu = 0;
  fs_pass(&f, warmup_size(n), NULL);
  double ns = fs_pass(&f, n, &cpu);
  nftw(f.dir, fs_remove_one, 16, FTW_DEPTH | FTW_PHYS);
  result_begin();
  result_kv("us", ns / 1000);
  result_kv("cpu_us", cpu / 1000);
  result_end();
}

/* ---- 12. TCP ping-pong: 64 connections, n round trips in all ---------------------
 * vow's own echo server in this process (for await over each connection's
 * chunks, every chunk written back) and 64 clients, each sending a 64-byte
 * message and reading its echo before the next, until n round trips are
 * done (the same shape as node_bench.mjs's tcpPingPong). */

#define PP_CONNECTIONS 64
#define PP_MESSAGE 64

typedef struct pp_run {
  int port;
  uint64_t left, done;
  uint64_t t0, t1, c0, c1;
} pp_run;

static vow_value pp_echo(vow_loop *loop, void *arg) {
  (void)loop;
  vow_stream *s = arg;
  vow_for_await it;
  vow_for_await_gen(&it, vow_stream_chunks(s));
  VOW_FOR_AWAIT(&it, chunk) {
    if (vow_await(vow_stream_write_value(s, vow_ref(chunk)), NULL) != 0) break;
  }
  vow_for_await_end(&it, NULL);
  vow_await(vow_stream_end(s), NULL);
  return vow_undefined();
}

static void pp_stream_unref(void *s) { vow_stream_unref(s); }

static vow_value pp_server(vow_loop *loop, void *server) {
  vow_for_await it;
  vow_for_await_gen(&it, vow_tcp_accept_iter(server));
  VOW_FOR_AWAIT(&it, conn) {
    vow_async_options o = {.arg_free = pp_stream_unref};
    vow_promise_unref(vow_async_ex(loop, pp_echo, vow_stream_ref(vow_as_stream(conn)), &o));
  }
  vow_for_await_end(&it, NULL);
  return vow_undefined();
}

static vow_value pp_client(vow_loop *loop, void *arg) {
  pp_run *r = arg;
  vow_value conn;
  if (vow_await(vow_tcp_connect(loop, "127.0.0.1", r->port, NULL), &conn) != 0)
    bench_die("tcp connect: %s", vow_error_message(conn));
  vow_stream *s = vow_as_stream(conn);
  static const char message[PP_MESSAGE] = "ping ping ping ping ping ping ping ping ping ping ping ping ping";
  vow_for_await replies;
  vow_for_await_gen(&replies, vow_stream_chunks(s));
  while (r->left > 0) {
    r->left--;
    if (vow_await(vow_stream_write(s, message, PP_MESSAGE), NULL) != 0) bench_die("tcp write failed");
    size_t got = 0;
    while (got < PP_MESSAGE) {
      vow_value chunk;
      if (vow_for_await_next(&replies, &chunk) <= 0) bench_die("tcp: the echo stopped");
      got += vow_str_len(chunk);
      vow_unref(chunk);
    }
    if (got != PP_MESSAGE) bench_die("tcp: %zu bytes came back for %d", got, PP_MESSAGE);
    r->done++;
  }
  vow_for_await_end(&replies, NULL);
  vow_unref(conn);
  return vow_undefined();
}

/* Serves, runs the 64 clients to the end, closes the server: the timed part. */
static vow_value pp_main(vow_loop *loop, void *arg) {
  pp_run *r = arg;
  vow_tcp_server *server;
  int err = vow_tcp_listen(loop, "127.0.0.1", 0, NULL, &server);
  if (err) bench_die("vow_tcp_listen: %s", vow_strerror(err));
  r->port = vow_tcp_server_port(server);
  vow_promise *serving = vow_async(loop, pp_server, server);
  vow_value clients[PP_CONNECTIONS];
  r->t0 = mono_ns(), r->c0 = cpu_ns();
  for (int i = 0; i < PP_CONNECTIONS; i++) clients[i] = vow_promise_value(vow_async(loop, pp_client, r));
  vow_value done;
  if (vow_await(vow_all(loop, clients, PP_CONNECTIONS), &done) != 0) bench_die("tcp: a client failed");
  vow_unref(done);
  r->t1 = mono_ns(), r->c1 = cpu_ns();
  vow_await(vow_tcp_server_close(server), NULL);
  vow_await(serving, NULL);
  return vow_undefined();
}

static double pp_pass(uint64_t n, double *cpu_per) {
  vow_loop *loop = loop_make();
  pp_run r = {.left = n};
  vow_promise *p = vow_async(loop, pp_main, &r);
  loop_run(loop);
  if (vow_promise_state(p) != VOW_FULFILLED || r.done != n)
    bench_die("tcp: %llu of %llu round trips done", (unsigned long long)r.done, (unsigned long long)n);
  vow_promise_unref(p);
  loop_free(loop);
  if (cpu_per) *cpu_per = (double)(r.c1 - r.c0) / (double)n;
  return (double)(r.t1 - r.t0) / (double)n;
}

static void bench_tcp_pingpong(uint64_t n) {
  double cpu = 0;
  pp_pass(warmup_size(n), NULL);
  double ns = pp_pass(n, &cpu);
  result_begin();
  result_kv("krtps", 1e6 / ns);
  result_kv("us", ns / 1000);
  result_kv("cpu_us", cpu / 1000);
  result_end();
}

/* ---- spawn_true: spawn /bin/true and await its exit, 4 at a time ----------------------- */

enum { SPAWN_CONCURRENCY = 4 };

typedef struct spawn_run {
  uint64_t next, n, ok;
} spawn_run;

static vow_value spawn_worker(vow_loop *loop, void *arg) {
  spawn_run *r = arg;
  static const char *const argv[] = {"/bin/true", NULL};
  vow_spawn_options o = {.argv = argv, .stdio = {VOW_STDIO_IGNORE, VOW_STDIO_IGNORE, VOW_STDIO_IGNORE}};
  while (r->next < r->n) {
    r->next++;
    vow_process *p;
    if (vow_process_spawn(loop, &o, &p) != 0) bench_die("spawn /bin/true failed");
    vow_value exit;
    if (vow_await(vow_process_exit(p), &exit) == 0 && vow_exit_code(exit) == 0) r->ok++;
    vow_process_unref(p);
  }
  return vow_undefined();
}

static double spawn_pass(uint64_t n, double *cpu_per) {
  vow_loop *loop = loop_make();
  spawn_run r = {0, n, 0};
  vow_value workers[SPAWN_CONCURRENCY];
  uint64_t t0 = mono_ns(), c0 = cpu_ns();
  for (int i = 0; i < SPAWN_CONCURRENCY; i++)
    workers[i] = vow_promise_value(vow_async(loop, spawn_worker, &r));
  vow_promise *all = vow_all(loop, workers, SPAWN_CONCURRENCY);
  loop_run(loop);
  uint64_t t1 = mono_ns(), c1 = cpu_ns();
  if (vow_promise_state(all) != VOW_FULFILLED || r.ok != n)
    bench_die("spawn: %llu of %llu exited 0", (unsigned long long)r.ok, (unsigned long long)n);
  vow_promise_unref(all);
  loop_free(loop);
  if (cpu_per) *cpu_per = (double)(c1 - c0) / (double)n;
  return (double)(t1 - t0) / (double)n;
}

static void bench_spawn_true(uint64_t n) {
  spawn_pass(warmup_size(n), NULL);
  double cpu = 0, ns = spawn_pass(n, &cpu);
  result_begin();
  result_kv("per_s", 1e9 / ns);
  result_kv("us", ns / 1000);
  result_kv("cpu_us", cpu / 1000);
  result_end();
}

/* ---- main ------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  bench_start();
  bench_args a = bench_parse(argc, argv, "<workload> <n> [window_ms]");
  char name[64];
  snprintf(name, sizeof name, "%s", a.workload);
  size_t len = strlen(name);
  if (len > 6 && !strcmp(name + len - 6, "_small")) {
    copy_stacks = 1;
    name[len - 6] = 0;
  }
  const char *w = name;
  if (!strcmp(w, "microtask")) bench_microtask(a.n);
  else if (!strcmp(w, "then")) bench_then(a.n);
  else if (!strcmp(w, "then_heap")) bench_then_heap(a.n);
  else if (!strcmp(w, "fanout")) bench_fanout(a.n);
  else if (!strcmp(w, "fanout_heap")) bench_fanout_heap(a.n);
  else if (!strcmp(w, "await")) bench_await(a.n);
  else if (!strcmp(w, "await_interleaved")) bench_await_interleaved(a.n);
  else if (!strcmp(w, "asynccall")) bench_asynccall(a.n);
  else if (!strcmp(w, "race")) bench_race(a.n);
  else if (!strcmp(w, "timers")) bench_timers(a.n, a.window_ms);
  else if (!strcmp(w, "immediate_batch")) bench_immediate(a.n, 0);
  else if (!strcmp(w, "immediate_chain")) bench_immediate(a.n, 1);
  else if (!strcmp(w, "suspended")) bench_suspended(a.n);
  else if (!strcmp(w, "http_client")) bench_http_client(a.n, a.url);
  else if (!strcmp(w, "fs_read_10k")) bench_fs_read(a.n);
  else if (!strcmp(w, "tcp_pingpong")) bench_tcp_pingpong(a.n);
  else if (!strcmp(w, "spawn_true")) bench_spawn_true(a.n);
  else if (!strcmp(w, "group_spawn")) bench_structured(a.n, spawn_many, "group spawn");
  else if (!strcmp(w, "context")) bench_structured(a.n, run_many, "context");
  else if (!strcmp(w, "serve")) serve();
  else bench_die("unknown workload '%s'", w);
  return 0;
}
