/*
 * raw_bench.c - the floor under vow's loop: the suite's workloads written
 * with raw libuv and plain C callbacks, the way one would without vow.
 *
 *   raw_bench <workload> <n> [window_ms]
 *
 * libuv has no microtasks or promises, so where the workload needs "run this
 * callback later, before the next I/O" the raw version uses the least that
 * does it: a power-of-two ring of (function, argument) pairs, drained in a
 * loop after the libuv callback that started the work (what vow's microtask
 * queue is, minus vow's checks). What each workload does, exactly:
 *
 *   microtask        a chain of n ring hops (each callback pushes the next);
 *   fanout           n pending operations, each a malloc'd record; completing
 *                    one pushes its callback on the ring (deferred, as a
 *                    promise reaction is); the callback stores the value in
 *                    a results array and counts down; the last one runs the
 *                    "all done" callback. This is Promise.all as a latch;
 *   race             one uv_timer_t reused: per operation uv_timer_start
 *                    (5 s), the work completes through the ring, its callback
 *                    uv_timer_stop()s the timer and starts the next operation;
 *   timers           n uv_timer_t handles (libuv's own timer heap), each
 *                    started once, scheduled from inside a libuv callback;
 *   immediate_batch  one uv_check_t running a FIFO of preallocated records
 *                    (only those queued before the turn began) and a uv_idle_t
 *                    keeping the poll from blocking: Node's design, bare;
 *   immediate_chain  the same, each callback queueing the next;
 *   http_client      a plain libcurl multi loop (curl_multi_perform and
 *                    curl_multi_poll, no libuv): 64 easy handles, each re-added
 *                    as soon as its transfer is done, until n GETs are made.
 *
 * There is no raw version of the then-chain, await or async calls: plain
 * callbacks have no promises to chain and nothing to await (their cost in
 * callback form is the microtask hop above).
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <curl/curl.h>
#include <uv.h>

/* ---- the ring: the minimal deferred-callback queue --------------------------------- */

typedef void (*task_fn)(void *arg);
typedef struct task {
  task_fn fn;
  void *arg;
} task;

static task *ring;
static uint32_t ring_cap, ring_head, ring_tail;

static BENCH_NOINLINE void ring_push(task_fn fn, void *arg) {
  if (ring_tail - ring_head == ring_cap) {
    uint32_t cap = ring_cap ? ring_cap * 2 : 256;
    task *r = malloc(cap * sizeof *r);
    if (!r) bench_die("malloc");
    uint32_t count = ring_tail - ring_head;
    for (uint32_t i = 0; i < count; i++) r[i] = ring[(ring_head + i) & (ring_cap - 1)];
    free(ring);
    ring = r;
    ring_cap = cap;
    ring_head = 0;
    ring_tail = count;
  }
  ring[ring_tail & (ring_cap - 1)] = (task){fn, arg};
  ring_tail++;
}

static void ring_drain(void) {
  while (ring_head != ring_tail) {
    task t = ring[ring_head & (ring_cap - 1)];
    ring_head++;
    t.fn(t.arg);
  }
}

/* Runs start(arg) from a libuv callback (a zero timer), then drains the ring:
 * the shape of a macrotask followed by its microtask checkpoint. */
typedef struct kick {
  uv_timer_t timer;
  void (*start)(void *arg);
  void *arg;
} kick;

static void on_kick(uv_timer_t *t) {
  kick *k = t->data;
  k->start(k->arg);
  ring_drain();
  uv_close((uv_handle_t *)t, NULL);
}

static void run_in_loop(uv_loop_t *loop, void (*start)(void *), void *arg) {
  kick k;
  uv_timer_init(loop, &k.timer);
  k.timer.data = &k;
  k.start = start;
  k.arg = arg;
  uv_timer_start(&k.timer, on_kick, 0, 0);
  uv_run(loop, UV_RUN_DEFAULT);
}

static uv_loop_t *loop_make(void) {
  uv_loop_t *loop = malloc(sizeof *loop);
  if (!loop || uv_loop_init(loop) != 0) bench_die("uv_loop_init");
  return loop;
}

static void loop_free(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_NOWAIT);
  if (uv_loop_close(loop) != 0) bench_die("uv_loop_close: handles left open");
  free(loop);
}

/* ---- 1. microtask chain ------------------------------------------------------------- */

static uint64_t hops_left;

static BENCH_NOINLINE void hop(void *arg) {
  if (--hops_left > 0) ring_push(hop, arg);
}

static void hop_start(void *arg) {
  ring_push(hop, arg);
}

static double microtask_pass(uint64_t n) {
  uv_loop_t *loop = loop_make();
  hops_left = n;
  uint64_t t0 = mono_ns();
  run_in_loop(loop, hop_start, NULL);
  uint64_t t1 = mono_ns();
  if (hops_left != 0) bench_die("chain stopped early");
  loop_free(loop);
  return (double)(t1 - t0) / (double)n;
}

/* ---- 3. fan-out: a countdown latch over n malloc'd operation records --------------- */

typedef struct latch {
  int64_t *values;
  uint64_t remaining;
  void (*done)(struct latch *l);
  int finished;
} latch;

typedef struct op {
  latch *l;
  uint64_t index;
  int64_t value;
} op;

static void latch_done(latch *l) {
  l->finished = 1;
}

static BENCH_NOINLINE void op_completed(void *arg) {
  op *o = arg;
  latch *l = o->l;
  l->values[o->index] = o->value;
  free(o);
  if (--l->remaining == 0) l->done(l);
}

/* "resolve": the completion callback runs later, from the ring. */
static BENCH_NOINLINE void op_complete(op *o, int64_t value) {
  o->value = value;
  ring_push(op_completed, o);
}

typedef struct fanout_ctx {
  uint64_t n;
  latch l;
} fanout_ctx;

static void fanout_start(void *arg) {
  fanout_ctx *c = arg;
  uint64_t n = c->n;
  op **ops = malloc(n * sizeof *ops);
  c->l = (latch){malloc(n * sizeof(int64_t)), n, latch_done, 0};
  if (!ops || !c->l.values) bench_die("malloc");
  for (uint64_t i = 0; i < n; i++) {
    ops[i] = malloc(sizeof(op));
    if (!ops[i]) bench_die("malloc");
    *ops[i] = (op){&c->l, i, 0};
  }
  for (uint64_t i = 0; i < n; i++) op_complete(ops[i], (int64_t)i);
  free(ops);
}

static double fanout_pass(uint64_t n) {
  uv_loop_t *loop = loop_make();
  fanout_ctx c = {n, {0}};
  uint64_t t0 = mono_ns();
  run_in_loop(loop, fanout_start, &c);
  uint64_t t1 = mono_ns();
  if (!c.l.finished || c.l.values[n - 1] != (int64_t)(n - 1)) bench_die("fan-out: wrong result");
  free(c.l.values);
  loop_free(loop);
  return (double)(t1 - t0) / (double)n;
}

/* ---- 5. race against a cleared timeout -------------------------------------------- */

typedef struct race_ctx {
  uv_timer_t timer;
  uint64_t i, n;
  int64_t sum;
} race_ctx;

static void race_timed_out(uv_timer_t *t) {
  (void)t;
  bench_die("race: a timeout fired");
}

static void race_op_start(void *arg);

static BENCH_NOINLINE void race_work_done(void *arg) {
  race_ctx *c = arg;
  uv_timer_stop(&c->timer);
  c->sum += (int64_t)(c->i & 1);
  if (++c->i < c->n) race_op_start(c);
}

static void race_op_start(void *arg) {
  race_ctx *c = arg;
  uv_timer_start(&c->timer, race_timed_out, 5000, 0);
  ring_push(race_work_done, c); /* the work: already done, reported later */
}

static double race_pass(uint64_t n) {
  uv_loop_t *loop = loop_make();
  race_ctx c = {.n = n};
  uv_timer_init(loop, &c.timer);
  uint64_t t0 = mono_ns();
  run_in_loop(loop, race_op_start, &c);
  uint64_t t1 = mono_ns();
  if (c.i != n || c.sum != (int64_t)(n / 2)) bench_die("race: wrong result");
  uv_close((uv_handle_t *)&c.timer, NULL);
  loop_free(loop);
  return (double)(t1 - t0) / (double)n;
}

/* ---- 6. timers: n uv_timer_t handles ------------------------------------------------ */

typedef struct timers_run {
  uv_loop_t *loop; /* never closed (see bench_timers): kept reachable here */
  uint64_t n;
  uint32_t *delay;
  uint64_t *due;
  uv_timer_t *handles;
  uint64_t fired;
  int64_t worst_late, worst_late_loop;
  uint64_t sched_wall, sched_end, sched_cpu_end, end_wall, end_cpu;
} timers_run;

static timers_run tr;

static void timer_fired(uv_timer_t *h) {
  uint64_t now = mono_ns();
  uint64_t i = (uint64_t)(h - tr.handles);
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

static void schedule_timers(void *arg) {
  uv_loop_t *loop = arg;
  uint64_t block = 0, t0 = mono_ns();
  for (uint64_t i = 0; i < tr.n; i++) {
    if ((i & 1023) == 0) block = mono_ns();
    uint32_t d = tr.delay[i];
    tr.due[i] = block + (uint64_t)(d ? d : 1) * 1000000u;
    uv_timer_init(loop, &tr.handles[i]);
    /* setTimeout(fn, 0) means 1 ms in Node and vow: give libuv the same. */
    uv_timer_start(&tr.handles[i], timer_fired, d ? d : 1, 0);
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
  tr.handles = malloc(n * sizeof *tr.handles);
  if (!tr.delay || !tr.due || !tr.handles) bench_die("malloc");
  for (uint64_t i = 0; i < n; i++) tr.delay[i] = (uint32_t)(xorshift32(&seed) % window);
  memset(tr.due, 0, n * sizeof *tr.due); /* fault it in now, not while scheduling */
  tr.worst_late = tr.worst_late_loop = INT64_MIN;
  uv_loop_t *loop = tr.loop = loop_make();
  run_in_loop(loop, schedule_timers, loop);
  if (tr.fired != n) bench_die("timers: %llu of %llu fired", (unsigned long long)tr.fired,
                               (unsigned long long)n);
  /* The n stopped handles would each need a uv_close and a loop turn to be
   * freed properly: the process simply exits instead. */
  result_begin();
  result_kv("sched_ns", (double)tr.sched_wall / (double)n);
  result_kv("fire_ns", (double)(tr.end_cpu - tr.sched_cpu_end) / (double)n);
  result_kv("late_ms", (double)tr.worst_late / 1e6);
  result_kv("late_loop_ms", (double)tr.worst_late_loop / 1e6);
  result_kv("span_ms", (double)(tr.end_wall - tr.sched_end) / 1e6);
  result_end();
}

/* ---- 7. setImmediate: a check handle and a FIFO ------------------------------------ */

typedef struct imm {
  struct imm *next;
  void (*cb)(struct imm *r);
} imm;

typedef struct imm_queue {
  uv_check_t check;
  uv_idle_t idle;
  imm *head, *tail;
} imm_queue;

static imm_queue iq;
static uint64_t imm_left;

static void on_idle(uv_idle_t *h) {
  (void)h; /* keeps the poll phase from blocking while immediates wait */
}

static BENCH_NOINLINE void imm_push(imm *r) {
  r->next = NULL;
  if (iq.tail) iq.tail->next = r;
  else iq.head = r;
  iq.tail = r;
  if (!uv_is_active((uv_handle_t *)&iq.idle)) uv_idle_start(&iq.idle, on_idle);
}

/* Runs the immediates queued before this turn; later ones wait a turn. */
static void on_check(uv_check_t *h) {
  (void)h;
  imm *last = iq.tail;
  while (iq.head) {
    imm *r = iq.head;
    iq.head = r->next;
    if (!iq.head) iq.tail = NULL;
    r->cb(r);
    ring_drain(); /* the microtask checkpoint after each callback */
    if (r == last) break;
  }
  if (!iq.head) uv_idle_stop(&iq.idle);
}

static void imm_batch_cb(imm *r) {
  (void)r;
  imm_left--;
}

static void imm_chain_cb(imm *r) {
  if (--imm_left > 0) imm_push(r);
}

static double immediate_pass(uint64_t n, int chain) {
  uv_loop_t *loop = loop_make();
  imm *recs = malloc((chain ? 1 : n) * sizeof *recs);
  if (!recs) bench_die("malloc");
  uv_check_init(loop, &iq.check);
  uv_idle_init(loop, &iq.idle);
  uv_check_start(&iq.check, on_check);
  uv_unref((uv_handle_t *)&iq.check); /* the idle handle keeps the loop alive */
  iq.head = iq.tail = NULL;
  imm_left = n;
  uint64_t t0 = mono_ns();
  if (chain) {
    recs[0].cb = imm_chain_cb;
    imm_push(&recs[0]);
  } else {
    for (uint64_t i = 0; i < n; i++) {
      recs[i].cb = imm_batch_cb;
      imm_push(&recs[i]);
    }
  }
  uv_run(loop, UV_RUN_DEFAULT);
  uint64_t t1 = mono_ns();
  if (imm_left != 0) bench_die("immediates: %llu did not run", (unsigned long long)imm_left);
  uv_close((uv_handle_t *)&iq.check, NULL);
  uv_close((uv_handle_t *)&iq.idle, NULL);
  loop_free(loop);
  free(recs);
  return (double)(t1 - t0) / (double)n;
}

/* ---- 9. HTTP client: a plain libcurl multi loop ------------------------------------- */

#define HTTP_CONCURRENCY 64

static size_t http_body(char *data, size_t size, size_t nmemb, void *userp) {
  (void)data;
  *(size_t *)userp += size * nmemb;
  return size * nmemb;
}

static double http_pass(uint64_t n, const char *url, double *cpu_per) {
  CURLM *multi = curl_multi_init();
  CURL *easy[HTTP_CONCURRENCY];
  size_t bytes[HTTP_CONCURRENCY];
  uint64_t started = 0, done = 0;
  int running = 0;
  if (!multi) bench_die("curl_multi_init");
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)HTTP_CONCURRENCY);
  uint64_t t0 = mono_ns(), c0 = cpu_ns();
  for (int i = 0; i < HTTP_CONCURRENCY; i++) {
    easy[i] = curl_easy_init();
    if (!easy[i]) bench_die("curl_easy_init");
    curl_easy_setopt(easy[i], CURLOPT_URL, url);
    curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, http_body);
    curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, &bytes[i]);
    curl_easy_setopt(easy[i], CURLOPT_PRIVATE, &bytes[i]);
    curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L); /* as vow sets it: no signal juggling */
    bytes[i] = 0;
    if (started < n) {
      started++;
      curl_multi_add_handle(multi, easy[i]);
    }
  }
  while (done < n) {
    if (curl_multi_perform(multi, &running) != CURLM_OK) bench_die("curl_multi_perform");
    CURLMsg *msg;
    int queued;
    while ((msg = curl_multi_info_read(multi, &queued)) != NULL) {
      if (msg->msg != CURLMSG_DONE) continue;
      CURL *e = msg->easy_handle;
      long status = 0;
      size_t *got;
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
      curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&got);
      if (msg->data.result != CURLE_OK || status != 200 || *got == 0)
        bench_die("http: %s, status %ld", curl_easy_strerror(msg->data.result), status);
      done++;
      curl_multi_remove_handle(multi, e);
      *got = 0;
      if (started < n) {
        started++;
        curl_multi_add_handle(multi, e); /* the same handle: its connection is reused */
      }
    }
    if (done < n && curl_multi_poll(multi, NULL, 0, 1000, NULL) != CURLM_OK)
      bench_die("curl_multi_poll");
  }
  uint64_t t1 = mono_ns(), c1 = cpu_ns();
  for (int i = 0; i < HTTP_CONCURRENCY; i++) curl_easy_cleanup(easy[i]);
  curl_multi_cleanup(multi);
  if (cpu_per) *cpu_per = (double)(c1 - c0) / (double)n;
  return (double)(t1 - t0) / (double)n;
}

/* ---- main ---------------------------------------------------------------------------- */

static uint64_t cpu_mark;

static void report_ns(double ns, uint64_t n) {
  result_begin();
  result_kv("ns", ns);
  result_kv("cpu_ns", (double)(cpu_ns() - cpu_mark) / (double)n);
  result_end();
}

int main(int argc, char **argv) {
  bench_start();
  bench_args a = bench_parse(argc, argv, "<workload> <n> [window_ms]");
  const char *w = a.workload;
  uint64_t n = a.n, warm = warmup_size(a.n);
  if (!strcmp(w, "microtask")) {
    microtask_pass(warm);
    cpu_mark = cpu_ns();
    report_ns(microtask_pass(n), n);
  } else if (!strcmp(w, "fanout")) {
    fanout_pass(warm);
    uint64_t c0 = cpu_ns();
    double ns = fanout_pass(n);
    double cpu = (double)(cpu_ns() - c0) / (double)n;
    long hwm = status_kb("VmHWM");
    result_begin();
    result_kv("ns", ns);
    result_kv("cpu_ns", cpu);
    result_kv("rss_b", (double)(hwm - bench_rss_base_kb) * 1024.0 / (double)n);
    result_end();
  } else if (!strcmp(w, "race")) {
    race_pass(warm);
    cpu_mark = cpu_ns();
    report_ns(race_pass(n), n);
  } else if (!strcmp(w, "timers")) {
    bench_timers(n, a.window_ms);
  } else if (!strcmp(w, "immediate_batch") || !strcmp(w, "immediate_chain")) {
    int chain = !strcmp(w, "immediate_chain");
    immediate_pass(warm, chain);
    cpu_mark = cpu_ns();
    report_ns(immediate_pass(n, chain), n);
  } else if (!strcmp(w, "http_client")) {
    double cpu = 0;
    if (!a.url) bench_die("http_client needs the server's URL");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    http_pass(warm, a.url, NULL);
    double ns = http_pass(n, a.url, &cpu);
    curl_global_cleanup();
    result_begin();
    result_kv("us", ns / 1000);
    result_kv("cpu_us", cpu / 1000);
    result_end();
  } else {
    bench_die("unknown workload '%s' (raw has: microtask fanout race timers "
              "immediate_batch immediate_chain http_client)", w);
  }
  free(ring);
  return 0;
}
