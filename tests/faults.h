/*
 * faults.h — allocation-failure injection for the tests.
 *
 * Every allocation vow makes goes through vow_set_allocator's hook. A test
 * arms the failing allocator below, runs one scenario, and disarms it; the
 * driver fault_every_site() reruns the scenario with the 1st allocation
 * failing, then the 2nd, and so on until a run sees no failure, so every
 * allocation site the scenario reaches is failed once.
 *
 * Two modes:
 *   FAULT_ONCE       only allocation number n fails (one failure per run);
 *   FAULT_FROM       allocation n and every one after it fail: sustained
 *                    out-of-memory, which error paths must survive too (they
 *                    may not allocate their way out of it).
 *
 * Each run must end — with a result, a rejection or an error code — without a
 * crash, a hang or a leak; what "ends" means is the scenario's to check.
 */
#ifndef VOW_TEST_FAULTS_H
#define VOW_TEST_FAULTS_H

#include <stdlib.h>

#include "vow.h"

typedef enum { FAULT_ONCE, FAULT_FROM } fault_mode;

static long fault_allocations; /* made so far in this run */
static long fault_at;          /* the first allocation that fails (1-based); 0: none */
static long fault_failures;    /* failed so far, over all runs */
static fault_mode fault_how;

static void *fault_realloc(void *ptr, size_t size, void *ctx) {
  (void)ctx;
  if (size == 0) {
    free(ptr);
    return NULL;
  }
  long n = ++fault_allocations;
  if (fault_at && (n == fault_at || (fault_how == FAULT_FROM && n > fault_at))) {
    fault_failures++;
    return NULL;
  }
  return realloc(ptr, size);
}

/* Installs the failing allocator: allocation n fails (and, FAULT_FROM, every
 * one after it); n = 0 fails none but still counts. */
static inline void fault_arm(long n, fault_mode how) {
  static const vow_allocator a = {fault_realloc, NULL};
  fault_allocations = 0;
  fault_at = n;
  fault_how = how;
  vow_set_allocator(&a);
}

static inline void fault_disarm(void) { vow_set_allocator(NULL); }

/* Runs once(n, how) for n = 1, 2, ... until a run fails no allocation; each
 * call arms, runs and disarms. Returns how many runs saw a failure. */
static inline long fault_every_site(int (*once)(long n, fault_mode how), fault_mode how) {
  long n = 1;
  for (;;) {
    long before = fault_failures;
    once(n, how);
    if (fault_failures == before) break;
    n++;
  }
  return n - 1;
}

#endif
