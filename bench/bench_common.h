/*
 * bench_common.h - what vow_bench.c and raw_bench.c share: clocks, memory
 * readings, the workloads' random numbers and the one-line result protocol.
 *
 * Protocol. A benchmark process runs ONE workload once (after its own warm-up
 * pass) and prints exactly one line on stdout:
 *
 *     RESULT key=value key=value ...
 *
 * which bench_suite parses. Every process also reports rss_base_kb (VmRSS
 * before the workload) and rss_hwm_kb (VmHWM, the peak, at the end), so peak
 * memory is always "this run, in a fresh process, minus the baseline".
 * A process that finds a wrong result (a chain that did not reach n, a timer
 * that never fired) prints why on stderr and exits non-zero: the suite then
 * fails, which is what keeps the bench_smoke test meaningful.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__GNUC__)
#define BENCH_NOINLINE __attribute__((noinline))
#define BENCH_UNUSED __attribute__((unused))
#define BENCH_PRINTF __attribute__((format(printf, 1, 2)))
#else
#define BENCH_NOINLINE
#define BENCH_UNUSED
#define BENCH_PRINTF
#endif

static BENCH_UNUSED uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time of the whole process (user + system, all threads). */
static BENCH_UNUSED uint64_t cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static BENCH_UNUSED BENCH_PRINTF void bench_die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("bench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(2);
}

/* A "VmXXX:  1234 kB" line of /proc/self/status, in KiB; -1 if missing. */
static BENCH_UNUSED long status_kb(const char *field) {
  char line[256];
  size_t len = strlen(field);
  long kb = -1;
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, field, len) == 0 && line[len] == ':') {
      kb = strtol(line + len + 1, NULL, 10);
      break;
    }
  }
  fclose(f);
  return kb;
}

/* Bytes handed out by malloc and not yet freed (all arenas, mmapped blocks
 * included). vow's pools take their 64 KiB chunks from malloc, so this sees
 * them too. */
static BENCH_UNUSED double heap_in_use(void) {
  struct mallinfo2 mi = mallinfo2();
  return (double)mi.uordblks + (double)mi.hblkhd;
}

/* xorshift32, seeded identically in node_bench.mjs: the three versions of the
 * timer workload get the very same delays. */
static BENCH_UNUSED uint32_t xorshift32(uint32_t *state) {
  uint32_t x = *state;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  return *state = x;
}

/* ---- the result line --------------------------------------------------------- */

static long bench_rss_base_kb = -1;

/* Call first thing in main: the baseline every peak is measured against. */
static BENCH_UNUSED void bench_start(void) {
  bench_rss_base_kb = status_kb("VmRSS");
}

static BENCH_UNUSED void result_begin(void) {
  fputs("RESULT", stdout);
}

static BENCH_UNUSED void result_kv(const char *key, double value) {
  printf(" %s=%.6g", key, value);
}

/* Adds the memory keys every process reports and ends the line. */
static BENCH_UNUSED void result_end(void) {
  result_kv("rss_base_kb", (double)bench_rss_base_kb);
  result_kv("rss_hwm_kb", (double)status_kb("VmHWM"));
  fputc('\n', stdout);
  fflush(stdout);
}

/* argv: <workload> <n> [window_ms] [url]. */
typedef struct bench_args {
  const char *workload;
  uint64_t n;
  uint64_t window_ms; /* timers: delays are uniform in [0, window_ms) */
  const char *url;    /* http_client: the server to ask */
} bench_args;

static BENCH_UNUSED bench_args bench_parse(int argc, char **argv, const char *usage) {
  bench_args a = {0};
  if (argc < 3) {
    fprintf(stderr, "usage: %s %s\n", argv[0], usage);
    exit(64);
  }
  a.workload = argv[1];
  a.n = strtoull(argv[2], NULL, 10);
  a.window_ms = argc > 3 ? strtoull(argv[3], NULL, 10) : 1000;
  a.url = argc > 4 ? argv[4] : NULL;
  if (a.n < 1 && strcmp(a.workload, "serve") != 0) bench_die("n must be at least 1");
  if (a.window_ms < 1) a.window_ms = 1;
  return a;
}

/* The warm-up pass: a tenth of the work, at least a little. */
static BENCH_UNUSED uint64_t warmup_size(uint64_t n) {
  uint64_t w = n / 10;
  return w < 100 ? (n < 100 ? n : 100) : w;
}

#endif
