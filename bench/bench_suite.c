/*
 * bench_suite.c - `make bench`: runs every workload three ways (vow, Node.js,
 * raw libuv), interleaved, and reports medians, spreads and ratios.
 *
 *   bench_suite [--quick] [--rounds N] [--only w1,w2] [--no-node] [--node PATH]
 *               [--out DIR] [--no-flat] [--cpu] [--list]
 *
 * Method (what makes it hold up on a busy machine):
 *   - every run is a fresh process (vow_bench, node node_bench.mjs, raw_bench,
 *     bench_switch --kv) that does a warm-up pass, then the measured one, and
 *     prints one RESULT line (see bench_common.h);
 *   - rounds are interleaved per workload: vow, node, raw, vow, node, raw...
 *     so slow drifts in the machine's load hit the three alike;
 *   - the table shows the median of the rounds and their min-max, the ratios
 *     are ratios of the medians (and samples.csv keeps every sample, paired by
 *     round);
 *   - the load the rest of the machine put on the CPUs during the run is
 *     measured (/proc/stat minus our own children's CPU time) and printed.
 *
 * Ratio columns. vow/node is how many times better vow is than Node (Node's
 * cost / vow's cost: 30x means vow takes a thirtieth of the time or memory).
 * vow/raw is vow's cost as a multiple of raw libuv's (1.2x means 20% more).
 * Each is compared with the target; a miss is marked MISS.
 *
 * Flat memory: each vow workload also runs at 1x and 2x its size. Streaming
 * workloads (a chain, a loop) must not raise peak RSS; workloads whose size
 * is their live set (n pending promises, n timers) must not use more memory
 * per item at 2x than at 1x.
 *
 * Output: the table on stdout, and in --out (default bench/results/):
 * report.txt (what stdout showed), results.csv, samples.csv,
 * flat_memory.csv and ratios.svg.
 *
 * Exit status: 0 when every run produced its result (missed targets do not
 * fail it: that is for a human to judge), 1 when a run failed or crashed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef BENCH_SOURCE_DIR
#define BENCH_SOURCE_DIR "bench"
#endif

/* The JavaScript runtimes are NODE..DENO: the same node_bench.mjs runs in each. */
enum { VOW, NODE, BUN, DENO, RAW, NIMPL };
static const char *const impl_name[NIMPL] = {"vow", "node", "bun", "deno", "raw"};
static const char *const impl_title[NIMPL] = {"vow", "Node", "Bun", "Deno", "raw"};
#define IS_JS(impl) ((impl) >= NODE && (impl) <= DENO)

enum { MEM_NONE, MEM_STREAM, MEM_LIVE };

/* How a job runs: one benchmark process per sample (PLAIN); bench_switch
 * --kv (SWITCH); a client process against the one shared vow server that the
 * suite starts (HTTP_CLIENT); or a server process (vow_bench serve / node)
 * loaded by wrk (HTTP_SERVER). */
enum { K_PLAIN, K_SWITCH, K_HTTP_CLIENT, K_HTTP_SERVER };

/* ---- the workloads ----------------------------------------------------------------- */

typedef struct job {
  const char *name;
  uint64_t size;      /* full size; --quick divides it by 20 */
  unsigned impls;     /* 1 << VOW | JS (the three runtimes) | 1 << RAW */
  int kind;           /* K_* */
  int mem;            /* MEM_*: how the flat-memory check reads it */
  const char *what;
} job;

#define V (1u << VOW)
#define N (1u << NODE | 1u << BUN | 1u << DENO)
#define R (1u << RAW)
#define NATIVE (1u << BUN | 1u << DENO)

static const job jobs[] = {
    {"microtask", 10000000, V | N | R, K_PLAIN, MEM_STREAM, "chain of queueMicrotask hops"},
    {"then", 1000000, V | N, K_PLAIN, MEM_LIVE, ".then chain on a resolved promise, built then run"},
    {"then_heap", 1000000, V | N, K_PLAIN, MEM_NONE, "the same chain, heap measured after building"},
    {"fanout", 1000000, V | N | R, K_PLAIN, MEM_LIVE, "pending promises resolved, gathered by all"},
    {"fanout_heap", 1000000, V | N, K_PLAIN, MEM_NONE, "the same, heap measured while pending"},
    {"await", 10000000, V | N, K_PLAIN, MEM_STREAM, "await of a resolved promise in one async fn"},
    {"await_interleaved", 4000000, V | N, K_PLAIN, MEM_STREAM, "the same in two async fns, in turn"},
    {"asynccall", 1000000, V | N, K_PLAIN, MEM_STREAM, "calls of an async fn that awaits once"},
    {"race", 100000, V | N | R, K_PLAIN, MEM_STREAM, "race with a 5 s timeout, then cleared"},
    {"timers", 1000000, V | N | R, K_PLAIN, MEM_LIVE, "timeouts, random delays within 1 s"},
    {"immediate_batch", 1000000, V | N | R, K_PLAIN, MEM_LIVE, "setImmediate, all scheduled at once"},
    {"immediate_chain", 1000000, V | N | R, K_PLAIN, MEM_STREAM, "setImmediate, each schedules the next"},
    {"suspended", 10000, V | N, K_PLAIN, MEM_LIVE, "async functions suspended in an await"},
    {"suspended_small", 1000000, V, K_PLAIN, MEM_LIVE, "the same in the small-memory mode (copy_stack), 1 M"},
    {"await_interleaved_small", 4000000, V, K_PLAIN, MEM_STREAM, "await in turn, small-memory mode"},
    {"switch", 2000000, V, K_SWITCH, MEM_NONE, "coroutine context switch (bench_switch)"},
    {"http_client", 20000, V | N | R, K_HTTP_CLIENT, MEM_STREAM, "GETs, 64 at a time, against a vow server"},
    {"http_server", 5, V | N, K_HTTP_SERVER, MEM_STREAM, "server under wrk -t1 -c64 for n seconds"},
    {"http_server_native", 5, NATIVE, K_HTTP_SERVER, MEM_NONE, "the same with Bun.serve / Deno.serve"},
    {"fs_read_10k", 10000, V | N, K_PLAIN, MEM_NONE, "readFile of 1 KiB files, 64 in flight"},
    {"tcp_pingpong", 200000, V | N, K_PLAIN, MEM_STREAM, "TCP echo round trips, 64 connections, in-process server"},
    {"spawn_true", 2000, V | N, K_PLAIN, MEM_NONE, "spawn /bin/true and await its exit, 4 at a time"},
    {"group_spawn", 1000000, V | N, K_PLAIN, MEM_STREAM, "children spawned into groups of 50 (Node: Promise.all)"},
    {"context", 1000000, V | N, K_PLAIN, MEM_STREAM, "run with a value bound, get across an await (Node: AsyncLocalStorage)"},
};
#define NJOBS (sizeof jobs / sizeof jobs[0])
#undef V
#undef N
#undef R
#undef NATIVE

/* ---- the table's rows ------------------------------------------------------------------ */

typedef struct src {
  int impl;
  const char *job;  /* NULL: no such column */
  const char *key;
} src;

typedef struct row {
  const char *label;
  const char *unit;
  src s[NIMPL];     /* what the vow, Node, Bun, Deno and raw columns show */
  double node_min;  /* target: Node / vow >= node_min (0: none) */
  double raw_max;   /* target: vow / raw <= raw_max (0: none) */
  double abs_max;   /* target: vow < abs_max, at full size only (0: none) */
  int higher_better; /* a rate: the ratios are inverted so that they still read
                        "times better than Node" and "cost as a multiple of raw" */
  double js_min;    /* target: the fastest JS runtime's cost / vow's >= js_min (0: none) */
  double bun_min;   /* target: Bun / vow >= bun_min (0: none) */
} row;

#define JS_COLS(job, key) {NODE, job, key}, {BUN, job, key}, {DENO, job, key}
#define COLS(job, key) {{VOW, job, key}, JS_COLS(job, key), {RAW, job, key}}
#define COLS_VN(job, key) {{VOW, job, key}, JS_COLS(job, key), {RAW, NULL, NULL}}

static const row rows[] = {
    {"1 microtask hop", "ns", COLS("microtask", "ns"), 25, 1.5, 0, 0, 0, 0},
    {"2 then step (build+run)", "ns", COLS_VN("then", "ns"), 10, 0, 0, 0, 0, 0},
    {"2 heap per then", "B", COLS_VN("then_heap", "heap_b"), 0, 0, 0, 0, 0, 0},
    {"3 fan-out, per promise", "ns", COLS("fanout", "ns"), 10, 1.5, 0, 0, 0, 5},
    {"3 fan-out peak RSS per promise", "B", COLS("fanout", "rss_b"), 0, 0, 0, 0, 0, 0},
    {"3 heap per pending promise", "B", COLS_VN("fanout_heap", "heap_b"), 4, 0, 0, 0, 0, 0},
    {"3 heap per promise, all() attached", "B", COLS_VN("fanout_heap", "heap_all_b"), 0, 0, 0, 0, 0, 0},
    {"4 await round trip", "ns", COLS_VN("await", "ns"), 2.5, 0, 0, 0, 0, 0},
    {"4 await, two fns in turn", "ns", COLS_VN("await_interleaved", "ns"), 0, 0, 0, 0, 1.5, 0},
    {"4 async call (awaits once)", "ns", COLS_VN("asynccall", "ns"), 2, 0, 0, 0, 2, 0},
    {"5 race + cleared timeout", "ns", COLS("race", "ns"), 10, 1.5, 0, 0, 0, 5},
    {"6 timer scheduling", "ns", COLS("timers", "sched_ns"), 5, 1.5, 0, 0, 0, 0},
    {"6 timer firing (CPU)", "ns", COLS("timers", "fire_ns"), 0, 1.5, 0, 0, 0, 0},
    {"6 worst timer lateness", "ms", COLS("timers", "late_ms"), 0, 0, 50, 0, 0, 0},
    {"6 lateness after scheduling ended", "ms", COLS("timers", "late_loop_ms"), 0, 0, 0, 0, 0, 0},
    {"7 setImmediate batch", "ns", COLS("immediate_batch", "ns"), 10, 1.5, 0, 0, 0, 0},
    {"7 setImmediate chain", "ns", COLS("immediate_chain", "ns"), 0, 1.5, 0, 0, 0, 0},
    {"8 switch asm (raw: ucontext)", "ns",
     {{VOW, "switch", "asm_ns"}, {NODE, NULL, NULL}, {BUN, NULL, NULL}, {DENO, NULL, NULL},
      {VOW, "switch", "ucx_ns"}},
     0, 0, 0, 0, 0, 0},
    {"8 suspended coro RSS (raw: bare)", "B",
     {{VOW, "suspended", "rss_b"}, JS_COLS("suspended", "rss_b"), {VOW, "switch", "asm_rss_b"}},
     0, 0, 0, 0, 0, 0},
    {"8 suspended async fn heap", "B", COLS_VN("suspended", "heap_b"), 0, 0, 0, 0, 0, 0},
    /* The small-memory mode (vow_async_options.copy_stack), 1 M at once; the
     * JavaScript columns are their suspended functions as above. The raw
     * column of the next two rows is vow's plain mode. */
    {"8 small mode: suspended fn RSS, 1 M", "B",
     {{VOW, "suspended_small", "rss_b"}, JS_COLS("suspended", "rss_b"), {RAW, NULL, NULL}},
     1, 0, 1024, 0, 0, 0},
    {"8 small mode: resume+finish (raw: plain)", "ns",
     {{VOW, "suspended_small", "resume_ns"}, {NODE, NULL, NULL}, {BUN, NULL, NULL},
      {DENO, NULL, NULL}, {VOW, "suspended", "resume_ns"}},
     0, 0, 0, 0, 0, 0},
    {"8 small mode: await in turn (raw: plain)", "ns",
     {{VOW, "await_interleaved_small", "ns"}, JS_COLS("await_interleaved", "ns"),
      {VOW, "await_interleaved", "ns"}},
     0, 0, 0, 0, 0, 0},
    {"9 HTTP GET c=64, wall per request", "us", COLS("http_client", "us"), 5, 1.5, 0, 0, 0, 0},
    {"9 HTTP GET c=64, client CPU per req", "us", COLS("http_client", "cpu_us"), 0, 1.5, 0, 0, 0, 0},
    {"9 HTTP client peak RSS", "MiB", COLS("http_client", "rss_hwm_mib"), 1, 0, 0, 0, 0, 0},
    {"10 HTTP server (wrk), requests/s", "k/s", COLS_VN("http_server", "krps"), 1.5, 0, 0, 1, 0, 0},
    {"10 ... Bun.serve, Deno.serve, req/s", "k/s",
     {{VOW, "http_server", "krps"}, {NODE, NULL, NULL}, {BUN, "http_server_native", "krps"},
      {DENO, "http_server_native", "krps"}, {RAW, NULL, NULL}},
     0, 0, 0, 1, 0, 0},
    {"10 HTTP server, CPU per request", "us", COLS_VN("http_server", "cpu_us"), 0, 0, 0, 0, 0, 0},
    {"10 HTTP server, mean latency", "ms", COLS_VN("http_server", "lat_ms"), 0, 0, 0, 0, 0, 0},
    {"11 readFile 10k small files, c=64", "us", COLS_VN("fs_read_10k", "us"), 2, 0, 0, 0, 0, 0},
    {"11 readFile, CPU per file", "us", COLS_VN("fs_read_10k", "cpu_us"), 0, 0, 0, 0, 0, 0},
    {"11 readFile peak RSS", "MiB", COLS_VN("fs_read_10k", "rss_hwm_mib"), 1, 0, 0, 0, 0, 0},
    {"12 TCP ping-pong c=64, round trips/s", "k/s", COLS_VN("tcp_pingpong", "krtps"), 2, 0, 0, 1, 0, 0},
    {"12 TCP ping-pong, CPU per round trip", "us", COLS_VN("tcp_pingpong", "cpu_us"), 0, 0, 0, 0, 0, 0},
    {"12 TCP ping-pong peak RSS", "MiB", COLS_VN("tcp_pingpong", "rss_hwm_mib"), 1, 0, 0, 0, 0, 0},
    {"13 spawn+wait /bin/true, c=4", "/s", COLS_VN("spawn_true", "per_s"), 2, 0, 0, 1, 0, 0},
    {"13 spawn, CPU per child", "us", COLS_VN("spawn_true", "cpu_us"), 0, 0, 0, 0, 0, 0},
    {"13 spawn peak RSS", "MiB", COLS_VN("spawn_true", "rss_hwm_mib"), 1, 0, 0, 0, 0, 0},
    {"14 task group spawn, per child", "ns", COLS_VN("group_spawn", "ns"), 0, 0, 0, 0, 0, 0},
    {"14 context run + get across await", "ns", COLS_VN("context", "ns"), 0, 0, 0, 0, 0, 0},
};
#define NROWS (sizeof rows / sizeof rows[0])

/* ---- samples ------------------------------------------------------------------------------ */

#define MAX_KEYS 16
#define MAX_ROUNDS 64

typedef struct sample {
  int ok;
  int nkeys;
  char keys[MAX_KEYS][24];
  double values[MAX_KEYS];
  double wall_s;
} sample;

static sample samples[NJOBS][NIMPL][MAX_ROUNDS];
/* flat-memory phase: [job][0 = 1x, 1 = 2x][round] (vow only) */
static sample flat[NJOBS][2][MAX_ROUNDS];

static int cpu_clock; /* --cpu / BENCH_CLOCK=cpu: "ns" rows read cpu_ns */

static int sample_get(const sample *s, const char *key, double *out) {
  if (!s->ok) return 0;
  if (cpu_clock && !strcmp(key, "ns")) key = "cpu_ns";
  if (!strcmp(key, "rss_hwm_mib")) { /* derived: the whole process's peak, in MiB */
    if (!sample_get(s, "rss_hwm_kb", out)) return 0;
    *out /= 1024;
    return 1;
  }
  for (int i = 0; i < s->nkeys; i++)
    if (!strcmp(s->keys[i], key)) {
      *out = s->values[i];
      return 1;
    }
  return 0;
}

/* ---- settings ------------------------------------------------------------------------------ */

static int quick, rounds = 5, flat_rounds = 3, no_flat;
/* The JavaScript runtimes: path, found, version. Node is looked up on PATH;
 * Bun and Deno in the build tree, where bench/deps.sh installs them with npm
 * (BENCH_BUN, BENCH_DENO, --bun, --deno name others). */
static int have_js[NIMPL];
static const char *js_path[NIMPL] = {NULL, "node", NULL, NULL, NULL};
static char js_path_buf[NIMPL][4200];
static char js_version[NIMPL][64] = {"", "absent", "absent", "absent", ""};
static char bin_dir[4096];
static char out_dir[4096] = BENCH_SOURCE_DIR "/results";
static char only[1024];
static int failures;

static uint64_t job_size(const job *j) {
  if (j->kind == K_HTTP_SERVER) return quick ? 1 : j->size; /* seconds of wrk */
  uint64_t n = quick ? j->size / 20 : j->size;
  return n < 1 ? 1 : n;
}

static uint64_t timers_window(void) {
  return quick ? 50 : 1000;
}

static int job_selected(const job *j) {
  if (!only[0]) return 1;
  char buf[sizeof only];
  strcpy(buf, only);
  for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
    if (!strcmp(tok, j->name)) return 1;
  return 0;
}

static int job_index(const char *name) {
  for (size_t i = 0; i < NJOBS; i++)
    if (!strcmp(jobs[i].name, name)) return (int)i;
  return -1;
}

/* ---- text output, to stdout and report.txt ------------------------------------------------- */

static FILE *report;

#if defined(__GNUC__)
__attribute__((format(printf, 1, 2)))
#endif
static void out(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fflush(stdout); /* before the progress lines on stderr */
  if (report) {
    va_start(ap, fmt);
    vfprintf(report, fmt, ap);
    va_end(ap);
  }
}

/* ---- running one process ------------------------------------------------------------------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs argv with stdout captured into buf (stderr passes through). Kills
 * the child (only it) after timeout_s. Returns its exit status, or -1. */
static int run_capture(char *const argv[], char *buf, size_t cap, int timeout_s) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    execvp(argv[0], argv);
    fprintf(stderr, "bench_suite: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  close(fds[1]);
  size_t len = 0;
  double deadline = now_s() + timeout_s;
  int timed_out = 0;
  for (;;) {
    int left_ms = (int)((deadline - now_s()) * 1000);
    if (left_ms <= 0) {
      timed_out = 1;
      break;
    }
    struct pollfd p = {fds[0], POLLIN, 0};
    int r = poll(&p, 1, left_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) continue;
    char tmp[4096];
    ssize_t got = read(fds[0], tmp, sizeof tmp);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    size_t take = (size_t)got < cap - 1 - len ? (size_t)got : cap - 1 - len;
    memcpy(buf + len, tmp, take);
    len += take;
  }
  buf[len] = 0;
  close(fds[0]);
  if (timed_out) {
    fprintf(stderr, "bench_suite: %s timed out after %d s: killed\n", argv[0], timeout_s);
    kill(pid, SIGKILL);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) return -1;
  if (WIFSIGNALED(status)) {
    fprintf(stderr, "bench_suite: %s died of signal %d\n", argv[0], WTERMSIG(status));
    return -1;
  }
  return WEXITSTATUS(status);
}

static int parse_result(const char *text, sample *s) {
  const char *line = strstr(text, "RESULT ");
  if (!line) return 0;
  line += 7;
  s->nkeys = 0;
  while (*line && *line != '\n' && s->nkeys < MAX_KEYS) {
    while (*line == ' ') line++;
    const char *eq = strchr(line, '=');
    if (!eq) break;
    size_t klen = (size_t)(eq - line);
    if (klen == 0 || klen >= sizeof s->keys[0]) break;
    memcpy(s->keys[s->nkeys], line, klen);
    s->keys[s->nkeys][klen] = 0;
    char *end;
    s->values[s->nkeys] = strtod(eq + 1, &end);
    if (end == eq + 1) break;
    s->nkeys++;
    line = end;
  }
  return s->nkeys > 0;
}

/* ---- servers and wrk ------------------------------------------------------------------------ */

static char wrk_path[4200];

/* Starts argv, which prints "PORT <n>" first; returns its pid and port (the
 * pid is ours: killed by server_stop). -1 on failure. */
static pid_t server_start(char *const argv[], int *port) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return -1;
  }
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    execvp(argv[0], argv);
    _exit(127);
  }
  close(fds[1]);
  char buf[256] = "";
  size_t len = 0;
  double deadline = now_s() + 15;
  *port = 0;
  while (len < sizeof buf - 1 && now_s() < deadline && !strchr(buf, '\n')) {
    struct pollfd p = {fds[0], POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    ssize_t got = read(fds[0], buf + len, sizeof buf - 1 - len);
    if (got <= 0) break;
    len += (size_t)got;
    buf[len] = 0;
  }
  buf[len] = 0;
  close(fds[0]);
  if (sscanf(buf, "PORT %d", port) != 1 || *port <= 0) {
    fprintf(stderr, "bench_suite: server %s did not start\n", argv[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
  }
  return pid;
}

static void server_stop(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  for (int i = 0; i < 50; i++) {
    if (waitpid(pid, NULL, WNOHANG) == pid) return;
    usleep(20000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

/* utime + stime of a process, in seconds; and its VmHWM in KiB. */
static double proc_cpu_s(pid_t pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return NAN;
  size_t len = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[len] = 0;
  char *p = strrchr(buf, ')');
  unsigned long long ut = 0, st = 0;
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
    return NAN;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long proc_status_kb(pid_t pid, const char *field) {
  char path[64], line[256];
  size_t len = strlen(field);
  long kb = -1;
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, field, len) && line[len] == ':') {
      kb = strtol(line + len + 1, NULL, 10);
      break;
    }
  fclose(f);
  return kb;
}

/* The shared server of the HTTP client job: a vow server, started once. */
static pid_t shared_server;
static char shared_url[128];

static int shared_server_url(void) {
  if (shared_server > 0) return 0;
  char path[4200], serve[] = "serve", zero[] = "0";
  snprintf(path, sizeof path, "%s/vow_bench", bin_dir);
  char *argv[] = {path, serve, zero, NULL};
  int port;
  shared_server = server_start(argv, &port);
  if (shared_server < 0) return -1;
  snprintf(shared_url, sizeof shared_url, "http://127.0.0.1:%d/", port);
  return 0;
}

/* wrk -t1 -c64 -d<secs>s url: fills requests/s, mean latency (ms), requests. */
static int wrk_run(const char *url, int secs, double *rps, double *lat_ms, double *requests) {
  char wrk[4300], t[] = "-t1", c[] = "-c64", d[32], u[128], out_buf[8192];
  snprintf(wrk, sizeof wrk, "%s", wrk_path);
  snprintf(d, sizeof d, "-d%ds", secs);
  snprintf(u, sizeof u, "%s", url);
  char *argv[] = {wrk, t, c, d, u, NULL};
  if (run_capture(argv, out_buf, sizeof out_buf, secs + 60) != 0) return -1;
  char *p = strstr(out_buf, "Requests/sec:");
  if (!p || sscanf(p, "Requests/sec: %lf", rps) != 1) return -1;
  *requests = NAN;
  char *q = strstr(out_buf, " requests in ");
  if (q) {
    while (q > out_buf && q[-1] >= '0' && q[-1] <= '9') q--;
    *requests = strtod(q, NULL);
  }
  *lat_ms = NAN;
  char *l = strstr(out_buf, "Latency");
  if (l) {
    double v;
    char unit[8];
    if (sscanf(l, "Latency %lf%7s", &v, unit) == 2)
      *lat_ms = !strcmp(unit, "us") ? v / 1000 : !strcmp(unit, "s") ? v * 1000 : v;
  }
  if (strstr(out_buf, "Non-2xx") || strstr(out_buf, "Socket errors")) {
    fprintf(stderr, "bench_suite: wrk reported errors against %s:\n%s", url, out_buf);
    return -1;
  }
  return 0;
}

/* argv of a JavaScript runtime running node_bench.mjs, up to the workload's
 * name: node --expose-gc, bun, deno run --allow-all --v8-flags=--expose-gc.
 * gc is only for the heap rows (see node_bench.mjs). Returns argc. */
static int js_argv(int impl, char **argv, int argc) {
  static char exe[NIMPL][4200], script[4200], gc[] = "--expose-gc", run[] = "run",
      all[] = "--allow-all", v8gc[] = "--v8-flags=--expose-gc";
  snprintf(exe[impl], sizeof exe[impl], "%s", js_path[impl]);
  snprintf(script, sizeof script, "%s/node_bench.mjs", BENCH_SOURCE_DIR);
  argv[argc++] = exe[impl];
  if (impl == NODE) {
    argv[argc++] = gc;
  } else if (impl == DENO) {
    argv[argc++] = run;
    argv[argc++] = all;
    argv[argc++] = v8gc;
  }
  argv[argc++] = script;
  return argc;
}

static int job_now; /* the job run_server serves (http_server or http_server_native) */
static char serve_native[] = "serve_native";

/* One sample of the HTTP server job: start the server, warm it up, load it. */
static void run_server(int impl, uint64_t secs, sample *s) {
  char path[4200], serve[] = "serve", zero[] = "0";
  char *argv[12];
  int port = 0;
  if (IS_JS(impl)) {
    int argc = js_argv(impl, argv, 0);
    argv[argc++] = job_index("http_server_native") == job_now ? serve_native : serve;
    argv[argc++] = zero;
    argv[argc] = NULL;
  } else {
    snprintf(path, sizeof path, "%s/vow_bench", bin_dir);
    argv[0] = path, argv[1] = serve, argv[2] = zero, argv[3] = NULL;
  }
  pid_t pid = server_start(argv, &port);
  if (pid < 0) {
    failures++;
    return;
  }
  char url[128];
  double rps, lat, req;
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", port);
  long base = proc_status_kb(pid, "VmRSS");
  if (!quick && wrk_run(url, 1, &rps, &lat, &req) != 0) { /* warm-up (Node's JIT) */
    failures++;
    server_stop(pid);
    return;
  }
  double c0 = proc_cpu_s(pid), t0 = now_s();
  int err = wrk_run(url, (int)secs, &rps, &lat, &req);
  s->wall_s = now_s() - t0;
  double c1 = proc_cpu_s(pid);
  long hwm = proc_status_kb(pid, "VmHWM");
  server_stop(pid);
  if (err) {
    fprintf(stderr, "bench_suite: FAILED: wrk against the %s server\n", impl_name[impl]);
    failures++;
    return;
  }
  const char *keys[] = {"krps", "us", "cpu_us", "lat_ms", "requests", "rss_base_kb", "rss_hwm_kb"};
  double vals[] = {rps / 1000, 1e6 / rps, (c1 - c0) * 1e6 / req, lat, req, (double)base,
                   (double)hwm};
  for (int i = 0; i < 7; i++) {
    snprintf(s->keys[i], sizeof s->keys[i], "%s", keys[i]);
    s->values[i] = vals[i];
  }
  s->nkeys = 7;
  s->ok = 1;
}

/* One run of job j by impl at size n: fills *s. */
static void run_one(const job *j, int impl, uint64_t n, sample *s) {
  char path[4200], size[32], window[32], iters[32], name[64];
  char kv[] = "--kv";
  char *argv[12];
  snprintf(name, sizeof name, "%s", j->name);
  int argc = 0;
  snprintf(size, sizeof size, "%llu", (unsigned long long)n);
  snprintf(window, sizeof window, "%llu", (unsigned long long)timers_window());
  memset(s, 0, sizeof *s);
  if (j->kind == K_HTTP_SERVER) {
    job_now = (int)(j - jobs);
    run_server(impl, n, s);
    return;
  }
  char url[128] = "";
  if (j->kind == K_HTTP_CLIENT) {
    if (shared_server_url() != 0) {
      failures++;
      return;
    }
    snprintf(url, sizeof url, "%s", shared_url);
  }
  if (j->kind == K_SWITCH) {
    snprintf(path, sizeof path, "%s/bench_switch", bin_dir);
    snprintf(iters, sizeof iters, "%llu", (unsigned long long)n);
    argv[argc++] = path;
    argv[argc++] = kv;
    argv[argc++] = iters;
  } else if (IS_JS(impl)) {
    argc = js_argv(impl, argv, argc);
    argv[argc++] = name;
    argv[argc++] = size;
    argv[argc++] = window;
    if (url[0]) argv[argc++] = url;
  } else {
    snprintf(path, sizeof path, "%s/%s", bin_dir, impl == VOW ? "vow_bench" : "raw_bench");
    argv[argc++] = path;
    argv[argc++] = name;
    argv[argc++] = size;
    argv[argc++] = window;
    if (url[0]) argv[argc++] = url;
  }
  argv[argc] = NULL;
  static char buf[1 << 16];
  double t0 = now_s();
  int st = run_capture(argv, buf, sizeof buf, quick ? 120 : 900);
  s->wall_s = now_s() - t0;
  if (st != 0 || !parse_result(buf, s)) {
    fprintf(stderr, "bench_suite: FAILED: %s %s (n=%s, exit %d)\n", impl_name[impl], j->name, size,
            st);
    failures++;
    s->ok = 0;
    return;
  }
  s->ok = 1;
}

/* ---- statistics ----------------------------------------------------------------------------- */

typedef struct stats {
  int count;
  double median, min, max;
} stats;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static stats stats_of(double *v, int count) {
  stats s = {count, NAN, NAN, NAN};
  if (count == 0) return s;
  qsort(v, (size_t)count, sizeof *v, cmp_double);
  s.min = v[0];
  s.max = v[count - 1];
  s.median = count % 2 ? v[count / 2] : (v[count / 2 - 1] + v[count / 2]) / 2;
  return s;
}

static stats column_stats(const src *c) {
  double v[MAX_ROUNDS];
  int count = 0;
  int j = c->job ? job_index(c->job) : -1;
  if (j < 0) return stats_of(v, 0);
  for (int r = 0; r < rounds; r++) {
    double x;
    if (sample_get(&samples[j][c->impl][r], c->key, &x)) v[count++] = x;
  }
  return stats_of(v, count);
}

/* Per-round ratio a/b of two columns, paired by round (they ran back to back). */
static stats paired_ratio(const src *a, const src *b) {
  double v[MAX_ROUNDS];
  int count = 0;
  int ja = a->job ? job_index(a->job) : -1, jb = b->job ? job_index(b->job) : -1;
  if (ja < 0 || jb < 0) return stats_of(v, 0);
  for (int r = 0; r < rounds; r++) {
    double x, y;
    if (sample_get(&samples[ja][a->impl][r], a->key, &x) &&
        sample_get(&samples[jb][b->impl][r], b->key, &y) && y != 0)
      v[count++] = x / y;
  }
  return stats_of(v, count);
}

/* ---- formatting ------------------------------------------------------------------------------ */

static void fmt_num(char *buf, size_t cap, double x) {
  double a = fabs(x);
  if (isnan(x)) snprintf(buf, cap, "-");
  else if (a >= 1000) snprintf(buf, cap, "%.0f", x);
  else if (a >= 100) snprintf(buf, cap, "%.0f", x);
  else if (a >= 10) snprintf(buf, cap, "%.1f", x);
  else if (a >= 1) snprintf(buf, cap, "%.2f", x);
  else snprintf(buf, cap, "%.3f", x);
}

static void fmt_stats(char *buf, size_t cap, stats s) {
  char m[32], lo[32], hi[32];
  if (s.count == 0) {
    snprintf(buf, cap, "-");
    return;
  }
  fmt_num(m, sizeof m, s.median);
  if (s.count == 1) {
    snprintf(buf, cap, "%s", m);
    return;
  }
  fmt_num(lo, sizeof lo, s.min);
  fmt_num(hi, sizeof hi, s.max);
  snprintf(buf, cap, "%.18s (%.18s-%.18s)", m, lo, hi);
}

static void fmt_ratio(char *buf, size_t cap, double r) {
  if (isnan(r) || isinf(r)) snprintf(buf, cap, "-");
  else if (r >= 10) snprintf(buf, cap, "%.0fx", r);
  else snprintf(buf, cap, "%.2fx", r);
}

/* ---- evaluating one row ---------------------------------------------------------------------- */

typedef struct verdict {
  stats col[NIMPL];
  double node_ratio;  /* Node / vow */
  double raw_ratio;   /* vow / raw */
  double js_ratio;    /* the fastest JS runtime / vow */
  double bun_ratio;   /* Bun / vow */
  int js_fastest;     /* which runtime that is (NODE..DENO), -1: none ran */
  stats node_pair, raw_pair;
  int has_target, met;
  char target[96];
  int node_met, raw_met, abs_met, js_met, bun_met; /* -1: no such target, or not judged */
} verdict;

/* other / vow as "times better than other", for a cost or (hb) a rate. */
static double better_ratio(const stats *vow, const stats *other, int hb) {
  if (!vow->count || !other->count) return NAN;
  return hb ? vow->median / other->median : other->median / vow->median;
}

/* Appends one ratio target to v's text and judges it. */
static void target_min(verdict *v, char **t, size_t *cap, double ratio, double min,
                       const char *vs, int *met) {
  if (min <= 0) return;
  int n = snprintf(*t, *cap, "%s>=%gx %s", v->target[0] ? ", " : "", min, vs);
  if (n > 0 && (size_t)n < *cap) *t += n, *cap -= (size_t)n;
  v->has_target = 1;
  if (!isnan(ratio)) {
    *met = ratio >= min;
    v->met &= *met;
  }
}

static verdict evaluate(const row *w) {
  verdict v;
  memset(&v, 0, sizeof v);
  for (int i = 0; i < NIMPL; i++) v.col[i] = column_stats(&w->s[i]);
  double vw = v.col[VOW].median, nd = v.col[NODE].median, rw = v.col[RAW].median;
  int hb = w->higher_better;
  v.node_ratio = v.col[NODE].count && v.col[VOW].count ? (hb ? vw / nd : nd / vw) : NAN;
  v.raw_ratio = v.col[RAW].count && v.col[VOW].count ? (hb ? rw / vw : vw / rw) : NAN;
  v.node_pair = hb ? paired_ratio(&w->s[VOW], &w->s[NODE]) : paired_ratio(&w->s[NODE], &w->s[VOW]);
  v.raw_pair = hb ? paired_ratio(&w->s[RAW], &w->s[VOW]) : paired_ratio(&w->s[VOW], &w->s[RAW]);
  v.js_fastest = -1;
  v.js_ratio = NAN;
  for (int k = NODE; k <= DENO; k++) {
    double r = better_ratio(&v.col[VOW], &v.col[k], hb);
    if (!isnan(r) && (v.js_fastest < 0 || r < v.js_ratio)) v.js_ratio = r, v.js_fastest = k;
  }
  v.bun_ratio = better_ratio(&v.col[VOW], &v.col[BUN], hb);
  v.met = 1;
  v.node_met = v.raw_met = v.abs_met = v.js_met = v.bun_met = -1;
  char *t = v.target;
  size_t cap = sizeof v.target;
  target_min(&v, &t, &cap, v.node_ratio, w->node_min, "node", &v.node_met);
  target_min(&v, &t, &cap, v.js_ratio, w->js_min, "fastest JS", &v.js_met);
  target_min(&v, &t, &cap, v.bun_ratio, w->bun_min, "bun", &v.bun_met);
  if (w->raw_max > 0) {
    int n = snprintf(t, cap, "%s<=%gx raw", v.target[0] ? ", " : "", w->raw_max);
    t += n, cap -= (size_t)n;
    v.has_target = 1;
    if (!isnan(v.raw_ratio)) {
      v.raw_met = v.raw_ratio <= w->raw_max;
      v.met &= v.raw_met;
    }
  }
  if (w->abs_max > 0) {
    snprintf(t, cap, "%s<%g %s%s", v.target[0] ? ", " : "", w->abs_max, w->unit,
             quick ? " (full size)" : "");
    v.has_target = 1;
    if (!quick && v.col[VOW].count) {
      v.abs_met = v.col[VOW].median < w->abs_max;
      v.met &= v.abs_met;
    }
  }
  return v;
}

static const char *verdict_text(const verdict *v) {
  if (!v->has_target) return "";
  if (v->col[VOW].count == 0) return "n/a";
  if (v->node_met < 0 && v->raw_met < 0 && v->abs_met < 0 && v->js_met < 0 && v->bun_met < 0)
    return "n/a";
  return v->met ? "met" : "MISS";
}

/* ---- machine load ------------------------------------------------------------------------------ */

typedef struct cpu_snapshot {
  double busy_s, steal_s, total_s;
  double children_s;
} cpu_snapshot;

static cpu_snapshot cpu_snap(void) {
  cpu_snapshot c = {0, 0, 0, 0};
  FILE *f = fopen("/proc/stat", "r");
  if (f) {
    unsigned long long u, ni, sy, id, io, irq, sirq, st;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &u, &ni, &sy, &id, &io, &irq,
               &sirq, &st) == 8) {
      double hz = (double)sysconf(_SC_CLK_TCK);
      c.busy_s = (double)(u + ni + sy + irq + sirq) / hz;
      c.steal_s = (double)st / hz;
      c.total_s = (double)(u + ni + sy + id + io + irq + sirq + st) / hz;
    }
    fclose(f);
  }
  struct rusage ru;
  if (getrusage(RUSAGE_CHILDREN, &ru) == 0)
    c.children_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  return c;
}

static void loadavg(char *buf, size_t cap) {
  FILE *f = fopen("/proc/loadavg", "r");
  double a = 0, b = 0, c = 0;
  if (f) {
    if (fscanf(f, "%lf %lf %lf", &a, &b, &c) != 3) a = b = c = 0;
    fclose(f);
  }
  snprintf(buf, cap, "%.2f %.2f %.2f", a, b, c);
}

static void cpu_model(char *buf, size_t cap) {
  char line[512];
  snprintf(buf, cap, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  while (fgets(line, sizeof line, f)) {
    if (!strncmp(line, "model name", 10)) {
      char *colon = strchr(line, ':');
      if (colon) {
        colon += 2;
        colon[strcspn(colon, "\n")] = 0;
        snprintf(buf, cap, "%s", colon);
      }
      break;
    }
  }
  fclose(f);
}

/* ---- files ------------------------------------------------------------------------------------- */

static FILE *open_out(const char *name) {
  char path[4200];
  snprintf(path, sizeof path, "%s/%s", out_dir, name);
  FILE *f = fopen(path, "w");
  if (!f) fprintf(stderr, "bench_suite: cannot write %s: %s\n", path, strerror(errno));
  return f;
}

static void csv_stats(FILE *f, stats s) {
  if (s.count == 0) fprintf(f, ",,,");
  else fprintf(f, ",%.6g,%.6g,%.6g", s.median, s.min, s.max);
}

static void csv_num(FILE *f, double x) {
  if (isnan(x) || isinf(x)) fprintf(f, ",");
  else fprintf(f, ",%.6g", x);
}

static void write_results_csv(void) {
  FILE *f = open_out("results.csv");
  if (!f) return;
  fprintf(f, "workload,unit");
  for (int k = 0; k < NIMPL; k++)
    fprintf(f, ",%s_median,%s_min,%s_max", impl_name[k], impl_name[k], impl_name[k]);
  fprintf(f, ",vow_over_node,vow_over_node_min,vow_over_node_max,vow_over_fastest_js,fastest_js,"
             "vow_over_bun,vow_over_raw,vow_over_raw_min,vow_over_raw_max,target,verdict,rounds\n");
  for (size_t i = 0; i < NROWS; i++) {
    verdict v = evaluate(&rows[i]);
    fprintf(f, "\"%s\",%s", rows[i].label, rows[i].unit);
    for (int k = 0; k < NIMPL; k++) csv_stats(f, v.col[k]);
    csv_num(f, v.node_ratio);
    csv_num(f, v.node_pair.count ? v.node_pair.min : NAN);
    csv_num(f, v.node_pair.count ? v.node_pair.max : NAN);
    csv_num(f, v.js_ratio);
    fprintf(f, ",%s", v.js_fastest >= 0 ? impl_name[v.js_fastest] : "");
    csv_num(f, v.bun_ratio);
    csv_num(f, v.raw_ratio);
    csv_num(f, v.raw_pair.count ? v.raw_pair.min : NAN);
    csv_num(f, v.raw_pair.count ? v.raw_pair.max : NAN);
    fprintf(f, ",\"%s\",%s,%d\n", v.target, verdict_text(&v), rounds);
  }
  fclose(f);
}

static void write_samples_csv(void) {
  FILE *f = open_out("samples.csv");
  if (!f) return;
  fprintf(f, "phase,workload,impl,round,size,wall_s,key,value\n");
  for (size_t j = 0; j < NJOBS; j++) {
    for (int r = 0; r < rounds; r++)
      for (int k = 0; k < NIMPL; k++) {
        const sample *s = &samples[j][k][r];
        for (int q = 0; q < s->nkeys && s->ok; q++)
          fprintf(f, "main,%s,%s,%d,%llu,%.3f,%s,%.6g\n", jobs[j].name, impl_name[k], r + 1,
                  (unsigned long long)job_size(&jobs[j]), s->wall_s, s->keys[q], s->values[q]);
      }
    for (int m = 0; m < 2; m++)
      for (int r = 0; r < flat_rounds; r++) {
        const sample *s = &flat[j][m][r];
        for (int q = 0; q < s->nkeys && s->ok; q++)
          fprintf(f, "flat,%s,vow,%d,%llu,%.3f,%s,%.6g\n", jobs[j].name, r + 1,
                  (unsigned long long)(job_size(&jobs[j]) * (m + 1)), s->wall_s, s->keys[q],
                  s->values[q]);
      }
  }
  fclose(f);
}

/* ---- the SVG chart ------------------------------------------------------------------------------- */

static double axis_x(double v, double lo, double hi, double x0, double w) {
  if (v < lo) v = lo;
  if (v > hi) v = hi;
  return x0 + (log10(v) - log10(lo)) / (log10(hi) - log10(lo)) * w;
}

static void svg_text(FILE *f, double x, double y, const char *anchor, const char *style,
                     const char *text) {
  fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" %s>", x, y, anchor, style);
  for (const char *p = text; *p; p++) {
    if (*p == '<') fputs("&lt;", f);
    else if (*p == '>') fputs("&gt;", f);
    else if (*p == '&') fputs("&amp;", f);
    else fputc(*p, f);
  }
  fputs("</text>\n", f);
}

/* One panel: a log-scale bar per row that has the ratio. which: NODE or RAW. */
static double svg_panel(FILE *f, double y, int which) {
  const double label_w = 290, x0 = 300, w = 560;
  const double lo = which == NODE ? 0.5 : 0.1, hi = which == NODE ? 200 : 50;
  const double ticks[] = {0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200};
  int count = 0;
  for (size_t i = 0; i < NROWS; i++) {
    verdict v = evaluate(&rows[i]);
    double r = which == NODE ? v.node_ratio : v.raw_ratio;
    if (!isnan(r) && !isinf(r)) count++;
  }
  if (count == 0) return y;
  svg_text(f, 10, y + 14, "start", "font-weight=\"bold\" font-size=\"14\"",
           which == NODE ? "vow vs Node.js: times better (Node's cost / vow's cost; log scale; "
                           "higher is better)"
                         : "vow vs raw libuv: vow's cost as a multiple of raw (log scale; lower "
                           "is better)");
  y += 26;
  double top = y, height = count * 22.0;
  for (size_t t = 0; t < sizeof ticks / sizeof ticks[0]; t++) {
    if (ticks[t] < lo || ticks[t] > hi) continue;
    double x = axis_x(ticks[t], lo, hi, x0, w);
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n", x, top,
            x, top + height, ticks[t] == 1 ? "#444" : "#ddd");
    char lab[16];
    snprintf(lab, sizeof lab, "%gx", ticks[t]);
    svg_text(f, x, top + height + 14, "middle", "font-size=\"11\" fill=\"#444\"", lab);
  }
  for (size_t i = 0; i < NROWS; i++) {
    verdict v = evaluate(&rows[i]);
    double r = which == NODE ? v.node_ratio : v.raw_ratio;
    if (isnan(r) || isinf(r)) continue;
    int met = which == NODE ? v.node_met : v.raw_met;
    const char *color = met < 0 ? "#9aa5b1" : met ? "#2e9d57" : "#d64545";
    double xb = axis_x(1, lo, hi, x0, w), xr = axis_x(r, lo, hi, x0, w);
    double xa = xb < xr ? xb : xr, bw = fabs(xr - xb);
    svg_text(f, x0 - 8, y + 15, "end", "font-size=\"12\"", rows[i].label);
    (void)label_w;
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"14\" fill=\"%s\"/>\n", xa,
            y + 4, bw < 1 ? 1 : bw, color);
    double target = which == NODE ? rows[i].node_min : rows[i].raw_max;
    if (target > 0) {
      double xt = axis_x(target, lo, hi, x0, w);
      fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#000\" "
                 "stroke-width=\"2\"/>\n",
              xt, y + 1, xt, y + 21);
    }
    char lab[32];
    double xl = xr > xb ? xr : xb;
    if (target > 0 && axis_x(target, lo, hi, x0, w) > xl) xl = axis_x(target, lo, hi, x0, w);
    fmt_ratio(lab, sizeof lab, r);
    svg_text(f, xl + 4, y + 15, "start", "font-size=\"11\"", lab);
    y += 22;
  }
  return y + 30;
}

static void write_svg(const char *machine) {
  FILE *f = open_out("ratios.svg");
  if (!f) return;
  int counts[2] = {0, 0};
  for (size_t i = 0; i < NROWS; i++) {
    verdict v = evaluate(&rows[i]);
    counts[0] += !isnan(v.node_ratio) && !isinf(v.node_ratio);
    counts[1] += !isnan(v.raw_ratio) && !isinf(v.raw_ratio);
  }
  double height = 70 + (counts[0] ? counts[0] * 22.0 + 56 : 0) + (counts[1] ? counts[1] * 22.0 + 56 : 0);
  fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"920\" height=\"%.0f\" "
             "font-family=\"sans-serif\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n",
          height);
  svg_text(f, 10, 20, "start", "font-size=\"15\" font-weight=\"bold\"",
           quick ? "vow benchmark ratios (--quick: reduced sizes, 1 round; not for quoting)"
                 : "vow benchmark ratios (medians of interleaved rounds)");
  svg_text(f, 10, 38, "start", "font-size=\"11\" fill=\"#444\"", machine);
  svg_text(f, 10, 54, "start", "font-size=\"11\" fill=\"#444\"",
           "green: target met, red: missed, grey: no target; black tick: the target");
  double y = svg_panel(f, 66, NODE);
  y = svg_panel(f, y, RAW);
  fputs("</svg>\n", f);
  fclose(f);
}

/* ---- the flat-memory check ---------------------------------------------------------------------- */

typedef struct flat_result {
  double a, b;     /* 1x and 2x: peak KiB (stream) or bytes per item (live) */
  int ok, judged;
} flat_result;

static flat_result flat_eval(size_t j) {
  flat_result fr = {NAN, NAN, 0, 0};
  double v[2][MAX_ROUNDS];
  int count[2] = {0, 0};
  for (int m = 0; m < 2; m++)
    for (int r = 0; r < flat_rounds; r++) {
      double hwm, base;
      const sample *s = &flat[j][m][r];
      if (!sample_get(s, "rss_hwm_kb", &hwm) || !sample_get(s, "rss_base_kb", &base)) continue;
      uint64_t n = job_size(&jobs[j]) * (uint64_t)(m + 1);
      v[m][count[m]++] = jobs[j].mem == MEM_STREAM ? hwm : (hwm - base) * 1024.0 / (double)n;
    }
  if (!count[0] || !count[1]) return fr;
  fr.a = stats_of(v[0], count[0]).median;
  fr.b = stats_of(v[1], count[1]).median;
  fr.judged = 1;
  if (jobs[j].mem == MEM_STREAM) /* flat: no more than 5% or 512 KiB above */
    fr.ok = fr.b - fr.a <= fmax(0.05 * fr.a, 512);
  else /* linear: per item no more than 10% above */
    fr.ok = fr.b <= fr.a * 1.10;
  return fr;
}

static void flat_phase(void) {
  int any = 0;
  for (size_t j = 0; j < NJOBS; j++) {
    if (jobs[j].mem == MEM_NONE || !job_selected(&jobs[j])) continue;
    if (jobs[j].kind == K_HTTP_SERVER && !wrk_path[0]) continue;
    any = 1;
    for (int r = 0; r < flat_rounds; r++)
      for (int m = 0; m < 2; m++) {
        uint64_t n = job_size(&jobs[j]) * (uint64_t)(m + 1);
        fprintf(stderr, "  flat memory %-16s %dx  round %d/%d\n", jobs[j].name, m + 1, r + 1,
                flat_rounds);
        run_one(&jobs[j], VOW, n, &flat[j][m][r]);
      }
  }
  if (!any) return;
  FILE *f = open_out("flat_memory.csv");
  if (f) fprintf(f, "workload,kind,measure,at_1x,at_2x,verdict\n");
  out("\nFlat memory (vow, %d round%s each, medians): peak RSS must not grow with duration;\n"
      "live-set workloads must not use more memory per item at 2x than at 1x (+10%%).\n",
      flat_rounds, flat_rounds == 1 ? "" : "s");
  out("%-24s %-9s %-24s %12s %12s  %s\n", "workload", "kind", "measure", "1x", "2x", "verdict");
  for (size_t j = 0; j < NJOBS; j++) {
    if (jobs[j].mem == MEM_NONE || !job_selected(&jobs[j])) continue;
    if (jobs[j].kind == K_HTTP_SERVER && !wrk_path[0]) continue;
    flat_result fr = flat_eval(j);
    const char *kind = jobs[j].mem == MEM_STREAM ? "stream" : "live-set";
    const char *measure = jobs[j].mem == MEM_STREAM ? "peak RSS (KiB)" : "peak RSS per item (B)";
    const char *word = !fr.judged ? "n/a" : fr.ok ? "flat" : "GROWS";
    char a[32], b[32];
    fmt_num(a, sizeof a, fr.a);
    fmt_num(b, sizeof b, fr.b);
    out("%-24s %-9s %-24s %12s %12s  %s\n", jobs[j].name, kind, measure, a, b, word);
    if (f) fprintf(f, "%s,%s,\"%s\",%.6g,%.6g,%s\n", jobs[j].name, kind, measure, fr.a, fr.b,
                   word);
  }
  if (f) fclose(f);
}

/* ---- main ---------------------------------------------------------------------------------------- */

static void usage(void) {
  fprintf(stderr,
          "usage: bench_suite [--quick] [--rounds N] [--only w1,w2] [--no-node] [--node PATH]\n"
          "                   [--no-bun] [--bun PATH] [--no-deno] [--deno PATH] [--no-js]\n"
          "                   [--out DIR] [--no-flat] [--cpu] [--list]\n"
          "  BENCH_ROUNDS (default 5), BENCH_NODE, BENCH_BUN, BENCH_DENO and BENCH_CLOCK=cpu\n"
          "  (as --cpu) are read from the environment. Bun and Deno default to the copies\n"
          "  bench/deps.sh installs in the build tree (js/node_modules). --cpu: the ns rows\n"
          "  show process CPU time per op instead of wall-clock time (for a machine that\n"
          "  others are loading).\n");
  exit(64);
}

/* Where bench/deps.sh puts Bun and Deno: <build>/js/node_modules/<package>/... */
static const char *const js_default[NIMPL] = {
    NULL, NULL, "js/node_modules/@oven/bun-linux-x64/bin/bun",
    "js/node_modules/@deno/linux-x64-glibc/deno", NULL};

/* Finds the runtime and its version; a missing one is skipped, with a note. */
static void detect_js(int impl, int disabled) {
  if (disabled) return;
  if (!js_path[impl]) {
    snprintf(js_path_buf[impl], sizeof js_path_buf[impl], "%s/../%s", bin_dir, js_default[impl]);
    js_path[impl] = js_path_buf[impl];
  }
  char buf[256], exe[4200], version[] = "--version";
  snprintf(exe, sizeof exe, "%s", js_path[impl]);
  char *argv[] = {exe, version, NULL};
  if (access(exe, X_OK) == 0 || impl == NODE) {
    if (run_capture(argv, buf, sizeof buf, 30) == 0 && buf[0]) {
      char *v = buf + strcspn(buf, "0123456789"); /* "v20.1.0", "1.4.5", "deno 2.9.6 (...)" */
      v[strcspn(v, " \n")] = 0;
      snprintf(js_version[impl], sizeof js_version[impl], "%.60s", v);
      have_js[impl] = 1;
      return;
    }
  }
  fprintf(stderr, "bench_suite: %s not found (%s): the %s column is skipped%s\n",
          impl_name[impl], js_path[impl], impl_title[impl],
          impl == NODE ? "" : " (make bench installs it: bench/deps.sh)");
}

/* wrk on PATH (only `make bench` installs it: the smoke test runs without). */
static void find_wrk(void) {
  const char *path = getenv("PATH");
  char dirs[8192];
  snprintf(dirs, sizeof dirs, "%s", path ? path : "/usr/bin:/bin");
  for (char *d = strtok(dirs, ":"); d; d = strtok(NULL, ":")) {
    char candidate[4200];
    snprintf(candidate, sizeof candidate, "%.4000s/wrk", d);
    if (access(candidate, X_OK) == 0) {
      snprintf(wrk_path, sizeof wrk_path, "%s", candidate);
      return;
    }
  }
}

/* Warms the machine's memory once, before any round. On a VM whose host backs
 * guest memory lazily (Firecracker here), the first write to a guest page costs
 * the host's allocation too: 2 GiB touched for the first time took 5.6 s, the
 * same 2 GiB again 0.9 s. Whichever runtime first touches fresh pages pays
 * that (a million promises is 40 k pages, ~100 ns per promise). Touching
 * BENCH_WARM_MIB (default 2048; 0 skips it) once and freeing it leaves backed
 * pages that the kernel hands out first, to every runtime alike: the then
 * chain read 203 ns without it and 28-29 ns with it. The effect fades: this
 * guest reports freed memory back to the host at once (free page reporting,
 * /sys/module/page_reporting: order 5, min_free_ms 0), so rows later in the
 * run that build large heaps (fan-out: 1 M promises, 170 MB) still pay it in
 * some rounds; their min column is the warm figure. Returns the seconds it
 * took. */
static double warm_memory(size_t mib) {
  if (mib == 0) return 0;
  double t = now_s();
  size_t n = mib << 20;
  char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return -1;
  long page = sysconf(_SC_PAGESIZE);
  for (size_t i = 0; i < n; i += (size_t)page) ((volatile char *)p)[i] = 1;
  munmap(p, n);
  return now_s() - t;
}

int main(int argc, char **argv) {
  int no_js[NIMPL] = {0};
  const char *env = getenv("BENCH_ROUNDS");
  if (env && atoi(env) > 0) rounds = atoi(env);
  if (getenv("BENCH_NODE") && *getenv("BENCH_NODE")) js_path[NODE] = getenv("BENCH_NODE");
  if (getenv("BENCH_BUN") && *getenv("BENCH_BUN")) js_path[BUN] = getenv("BENCH_BUN");
  if (getenv("BENCH_DENO") && *getenv("BENCH_DENO")) js_path[DENO] = getenv("BENCH_DENO");
  if (getenv("BENCH_CLOCK") && !strcmp(getenv("BENCH_CLOCK"), "cpu")) cpu_clock = 1;
  int rounds_given = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) quick = 1;
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]), rounds_given = 1;
    else if (!strcmp(argv[i], "--only") && i + 1 < argc) snprintf(only, sizeof only, "%s", argv[++i]);
    else if (!strcmp(argv[i], "--no-node")) no_js[NODE] = 1;
    else if (!strcmp(argv[i], "--node") && i + 1 < argc) js_path[NODE] = argv[++i];
    else if (!strcmp(argv[i], "--no-bun")) no_js[BUN] = 1;
    else if (!strcmp(argv[i], "--bun") && i + 1 < argc) js_path[BUN] = argv[++i];
    else if (!strcmp(argv[i], "--no-deno")) no_js[DENO] = 1;
    else if (!strcmp(argv[i], "--deno") && i + 1 < argc) js_path[DENO] = argv[++i];
    else if (!strcmp(argv[i], "--no-js")) no_js[NODE] = no_js[BUN] = no_js[DENO] = 1;
    else if (!strcmp(argv[i], "--out") && i + 1 < argc) snprintf(out_dir, sizeof out_dir, "%s", argv[++i]);
    else if (!strcmp(argv[i], "--no-flat")) no_flat = 1;
    else if (!strcmp(argv[i], "--cpu")) cpu_clock = 1;
    else if (!strcmp(argv[i], "--list")) {
      for (size_t j = 0; j < NJOBS; j++)
        printf("%-18s %9llu  %-4s%-5s%-4s%-5s%-3s  %s\n", jobs[j].name,
               (unsigned long long)jobs[j].size, jobs[j].impls & (1u << VOW) ? "vow" : "",
               jobs[j].impls & (1u << NODE) ? "node" : "", jobs[j].impls & (1u << BUN) ? "bun" : "",
               jobs[j].impls & (1u << DENO) ? "deno" : "", jobs[j].impls & (1u << RAW) ? "raw" : "",
               jobs[j].what);
      return 0;
    } else usage();
  }
  if (only[0]) {
    char buf[sizeof only];
    strcpy(buf, only);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ","))
      if (job_index(tok) < 0) {
        fprintf(stderr, "bench_suite: unknown workload '%s' (--list shows them)\n", tok);
        return 64;
      }
  }
  if (quick && !rounds_given) rounds = 1;
  if (quick) flat_rounds = 1;
  if (rounds < 1) rounds = 1;
  if (rounds > MAX_ROUNDS) rounds = MAX_ROUNDS;

  /* The other programs sit next to this one. */
  ssize_t len = readlink("/proc/self/exe", bin_dir, sizeof bin_dir - 1);
  if (len <= 0) {
    fprintf(stderr, "bench_suite: cannot find my own directory\n");
    return 1;
  }
  bin_dir[len] = 0;
  *strrchr(bin_dir, '/') = 0;
  for (int k = NODE; k <= DENO; k++) detect_js(k, no_js[k]);
  find_wrk();
  mkdir(out_dir, 0755);
  report = open_out("report.txt");

  char model[256], load0[64], load1[64], machine[768], when[64];
  struct utsname un;
  uname(&un);
  cpu_model(model, sizeof model);
  loadavg(load0, sizeof load0);
  time_t t = time(NULL);
  strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", localtime(&t));
  snprintf(machine, sizeof machine, "%s, %ld CPUs, Linux %s, node %s, bun %s, deno %s, %s",
           model, sysconf(_SC_NPROCESSORS_ONLN), un.release, js_version[NODE], js_version[BUN],
           js_version[DENO], when);
  const char *warm_env = getenv("BENCH_WARM_MIB");
  size_t warm_mib = warm_env && *warm_env ? (size_t)strtoull(warm_env, NULL, 10) : 2048;
  double warm_s = warm_memory(warm_mib);
  cpu_snapshot c0 = cpu_snap();
  double t0 = now_s();

  fprintf(stderr, "bench_suite: %d round%s%s, results in %s\n", rounds, rounds == 1 ? "" : "s",
          quick ? " (--quick: sizes / 20)" : "", out_dir);
  for (size_t j = 0; j < NJOBS; j++) {
    if (!job_selected(&jobs[j])) continue;
    if (jobs[j].kind == K_HTTP_SERVER && !wrk_path[0]) {
      fprintf(stderr, "  %-16s skipped: wrk is not installed (make bench installs it)\n",
              jobs[j].name);
      continue;
    }
    uint64_t n = job_size(&jobs[j]);
    for (int r = 0; r < rounds; r++) {
      fprintf(stderr, "  %-16s n=%-9llu round %d/%d:", jobs[j].name, (unsigned long long)n, r + 1,
              rounds);
      for (int k = 0; k < NIMPL; k++) {
        if (!(jobs[j].impls & (1u << k)) || (IS_JS(k) && !have_js[k])) continue;
        run_one(&jobs[j], k, n, &samples[j][k][r]);
        fprintf(stderr, " %s %.1fs", impl_name[k], samples[j][k][r].wall_s);
      }
      fprintf(stderr, "\n");
    }
  }
  double t_main = now_s() - t0;
  cpu_snapshot c1 = cpu_snap();
  loadavg(load1, sizeof load1);

  /* Others' load: all CPU time used on the machine minus our children's. */
  double wall = t_main > 0 ? t_main : 1;
  double others = ((c1.busy_s - c0.busy_s) - (c1.children_s - c0.children_s)) / wall;
  double steal = (c1.steal_s - c0.steal_s) / wall;

  out("vow benchmark suite%s: %d interleaved round%s (vow, node, bun, deno, raw), median "
      "(min-max)%s\n",
      quick ? " --quick (sizes / 20, not for quoting)" : "", rounds, rounds == 1 ? "" : "s",
      cpu_clock ? "; ns rows are CPU time" : "; ns rows are wall-clock time");
  out("machine: %s\n", machine);
  out("load: loadavg %s at start, %s at end; other processes used %.2f of %ld CPUs on average "
      "during the %.0f s run (steal %.2f)\n",
      load0, load1, others < 0 ? 0 : others, sysconf(_SC_NPROCESSORS_ONLN), t_main, steal);
  if (warm_mib)
    out("memory: %zu MiB touched once before the rounds (%.1f s; BENCH_WARM_MIB=0 skips it)\n",
        warm_mib, warm_s);
  out("\n");
  for (int k = NODE; k <= DENO; k++)
    if (!have_js[k])
      out("note: %s was not run (%s%s): its column is empty\n", impl_title[k],
          no_js[k] ? "disabled" : "not found",
          no_js[k] || k == NODE ? "" : "; bench/deps.sh installs it, as make bench does");
  out("%-36s %-4s %-20s %-20s %-20s %-20s %-20s %8s %8s %8s  %-36s %s\n", "workload", "unit",
      "vow", "Node", "Bun", "Deno", "raw", "vow/node", "vow/js", "vow/raw", "target", "");
  for (size_t i = 0; i < NROWS; i++) {
    const row *w = &rows[i];
    int selected = 0;
    for (int k = 0; k < NIMPL; k++) {
      int j = w->s[k].job ? job_index(w->s[k].job) : -1;
      if (j >= 0 && job_selected(&jobs[j])) selected = 1;
    }
    if (!selected) continue;
    verdict v = evaluate(w);
    char c[NIMPL][64], rn[32], rj[32], rr[32];
    for (int k = 0; k < NIMPL; k++) fmt_stats(c[k], sizeof c[k], v.col[k]);
    fmt_ratio(rn, sizeof rn, v.node_ratio);
    fmt_ratio(rj, sizeof rj, v.js_ratio);
    fmt_ratio(rr, sizeof rr, v.raw_ratio);
    out("%-36s %-4s %-20s %-20s %-20s %-20s %-20s %8s %8s %8s  %-36s %s\n", w->label, w->unit,
        c[VOW], c[NODE], c[BUN], c[DENO], c[RAW], rn, rj, rr, v.target, verdict_text(&v));
  }
  out("\nvow/node = Node's cost / vow's (higher: vow better); vow/js = the same against the "
      "fastest of Node, Bun and Deno on that row;\nvow/raw = vow's cost / raw libuv's (lower: vow "
      "better). Targets against bun use Bun's column.\n");
  out("Row 8: the raw column of 'switch' is the ucontext back-end, of 'suspended coro RSS' a bare "
      "coroutine (bench_switch),\nof the 'small mode' rows vow's plain mode (the small mode's JS "
      "columns are their suspended functions at 10 k).\n");

  if (!no_flat) flat_phase();
  server_stop(shared_server);

  write_results_csv();
  write_samples_csv();
  write_svg(machine);
  out("\nwritten: %s/{report.txt,results.csv,samples.csv,flat_memory.csv,ratios.svg}\n", out_dir);
  if (report) fclose(report);
  if (failures) {
    fprintf(stderr, "bench_suite: %d run%s FAILED\n", failures, failures == 1 ? "" : "s");
    return 1;
  }
  return 0;
}
