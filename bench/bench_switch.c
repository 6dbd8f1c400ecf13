/*
 * bench_switch.c - what a coroutine costs, per back-end.
 *
 *   switch     ns per one-way context switch (a resume + yield pair is two)
 *   lifecycle  ns to create, run to completion and free a coroutine whose
 *              function returns at once, with the stack pool's cache and
 *              without it (a fresh mmap + mprotect + munmap every time)
 *   memory     resident bytes per suspended coroutine (10 000 of them, each
 *              stopped at its first yield), and the address space reserved
 *
 * Usage: bench_switch [--kv] [switch-iterations]   (default 2 000 000)
 * Numbers are the best of 5 runs. Build with optimisation (RelWithDebInfo or
 * Release) for numbers worth quoting.
 *
 * --kv prints one machine-readable line instead of the table, for the suite
 * (bench_suite, `make bench`; protocol in bench_common.h):
 *   RESULT asm_ns=.. ucx_ns=.. asm_pooled_ns=.. asm_mmap_ns=.. ucx_pooled_ns=..
 *          asm_rss_b=.. ucx_rss_b=.. reserved_b=..
 * (a back-end that is not compiled in reports -1).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "coro/coro.h"

#define RUNS 5
#define SUSPENDED 10000

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "bench_switch: %s failed\n", what);
  exit(1);
}

static void yield_forever(vow_coro *co, void *arg) {
  (void)arg;
  for (;;)
    vow__coro_yield(co);
}

static void return_at_once(vow_coro *co, void *arg) {
  (void)co;
  (void)arg;
}

static void yield_once(vow_coro *co, void *arg) {
  (void)arg;
  vow__coro_yield(co);
}

static double switch_ns(vow_coro_backend backend, long iterations) {
  vow_stack_pool *pool = vow__stack_pool_new(0, 1, backend);
  vow_coro *co = pool ? vow__coro_new(pool, 0, yield_forever, NULL, "bench") : NULL;
  double best = 1e30;
  long i;
  int run;

  if (co == NULL)
    die("coroutine creation");
  for (i = 0; i < 1000; i++) /* warm up: fault the stack in, fill the caches */
    vow__coro_resume(co);
  for (run = 0; run < RUNS; run++) {
    double t0 = now_ns(), ns;
    for (i = 0; i < iterations; i++)
      vow__coro_resume(co);
    ns = (now_ns() - t0) / (2.0 * (double)iterations);
    if (ns < best)
      best = ns;
  }
  vow__coro_free(co);
  vow__stack_pool_free(pool);
  return best;
}

static double lifecycle_ns(vow_coro_backend backend, unsigned cached, long iterations) {
  vow_stack_pool *pool = vow__stack_pool_new(0, cached, backend);
  double best = 1e30;
  int run;

  if (pool == NULL)
    die("pool creation");
  for (run = 0; run < RUNS; run++) {
    double t0 = now_ns(), ns;
    long i;
    for (i = 0; i < iterations; i++) {
      vow_coro *co = vow__coro_new(pool, 0, return_at_once, NULL, "bench");
      if (co == NULL)
        die("vow__coro_new");
      vow__coro_resume(co);
      vow__coro_free(co);
    }
    ns = (now_ns() - t0) / (double)iterations;
    if (ns < best)
      best = ns;
  }
  vow__stack_pool_free(pool);
  return best;
}

static long resident_bytes(void) {
  long size = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");

  if (f == NULL)
    return -1;
  if (fscanf(f, "%ld %ld", &size, &resident) != 2)
    resident = -1;
  fclose(f);
  return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

/* Resident bytes per suspended coroutine; -1 where /proc is missing. */
static double suspended_bytes(vow_coro_backend backend, size_t *reserved) {
  vow_stack_pool *pool = vow__stack_pool_new(0, 0, backend);
  vow_coro **cos = calloc(SUSPENDED, sizeof(*cos));
  long before, after;
  int i;

  if (pool == NULL || cos == NULL)
    die("allocation");
  *reserved = vow__stack_pool_stack_size(pool) + (size_t)sysconf(_SC_PAGESIZE);
  before = resident_bytes();
  for (i = 0; i < SUSPENDED; i++) {
    cos[i] = vow__coro_new(pool, 0, yield_once, NULL, "bench");
    if (cos[i] == NULL)
      die("vow__coro_new");
    vow__coro_resume(cos[i]);
  }
  after = resident_bytes();
  for (i = 0; i < SUSPENDED; i++)
    vow__coro_free(cos[i]);
  free(cos);
  vow__stack_pool_free(pool);
  if (before < 0 || after < 0)
    return -1;
  return (double)(after - before) / SUSPENDED;
}

typedef struct measured {
  int available;
  double sw, pooled, fresh, bytes;
  size_t reserved;
} measured;

static measured measure(vow_coro_backend backend, long iterations) {
  long slow = iterations / 20 > 1000 ? iterations / 20 : 1000;
  measured m = {0, -1, -1, -1, -1, 0};

  if (!vow__coro_backend_available(backend))
    return m;
  m.available = 1;
  /* ucontext switches make a system call each: fewer iterations suffice. */
  m.sw = switch_ns(backend, backend == VOW_CORO_BACKEND_UCONTEXT ? iterations / 10 : iterations);
  m.pooled = lifecycle_ns(backend, 16, slow);
  m.fresh = lifecycle_ns(backend, 0, slow / 10);
  m.bytes = suspended_bytes(backend, &m.reserved);
  return m;
}

static void bench(const char *label, vow_coro_backend backend, long iterations) {
  measured m = measure(backend, iterations);

  if (!m.available) {
    printf("%-9s  not compiled in\n", label);
    return;
  }
  printf("%-9s  %8.1f  %13.1f  %12.1f  %12.0f  %12zu\n", label, m.sw, m.pooled, m.fresh,
         m.bytes, m.reserved);
}

/* One RESULT line for bench_suite. */
static void bench_kv(long iterations) {
  measured a = measure(VOW_CORO_BACKEND_ASM, iterations);
  measured u = measure(VOW_CORO_BACKEND_UCONTEXT, iterations);

  printf("RESULT asm_ns=%.4g ucx_ns=%.4g asm_pooled_ns=%.4g asm_mmap_ns=%.4g ucx_pooled_ns=%.4g "
         "asm_rss_b=%.6g ucx_rss_b=%.6g reserved_b=%zu\n",
         a.sw, u.sw, a.pooled, a.fresh, u.pooled, a.bytes, u.bytes,
         a.available ? a.reserved : u.reserved);
}

int main(int argc, char **argv) {
  int kv = argc > 1 && strcmp(argv[1], "--kv") == 0;
  long iterations = argc > 1 + kv ? atol(argv[1 + kv]) : 2000000;

  if (iterations < 1000)
    iterations = 1000;
  if (kv) {
    bench_kv(iterations);
    return 0;
  }
  printf("%-9s  %8s  %13s  %12s  %12s  %12s\n", "backend", "ns/switch", "ns/coro pooled",
         "ns/coro mmap", "B resident", "B reserved");
  bench("asm", VOW_CORO_BACKEND_ASM, iterations);
  bench("ucontext", VOW_CORO_BACKEND_UCONTEXT, iterations);
  printf("(default back-end in this build: %s)\n",
         vow__coro_default_backend() == VOW_CORO_BACKEND_ASM ? "asm" : "ucontext");
  return 0;
}
