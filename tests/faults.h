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
 *
 * Counting allocations fails every site a run reaches only when every run
 * makes them in the same order. Over real sockets it need not (a body read
 * in one chunk or in two; which of two transfers is served first), so a site
 * can be the nth allocation in one run and never the nth in the run that
 * fails the nth. With VOW_FAULT_SITES set (tools/coverage/fault_sites.sh),
 * fault_every_site therefore also sweeps by call stack: a clean run lists
 * the distinct stacks that allocate, and then one run per stack fails the
 * first allocation made from it (and, FAULT_FROM, every one after), whenever
 * it comes. Such runs call once(-1, how); fault_hit_at tells at which
 * allocation the failure came (0: the stack was not reached that time).
 */
#ifndef VOW_TEST_FAULTS_H
#define VOW_TEST_FAULTS_H

#include <execinfo.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "vow.h"

typedef enum { FAULT_ONCE, FAULT_FROM } fault_mode;

/* Counted atomically: vow_work's functions and the threadsafe calls may
 * allocate on other threads. Tests read them between runs, plainly. */
static long fault_allocations; /* made so far in this run */
static long fault_at;          /* the first allocation that fails (1-based); -1: by stack; 0: none */
static long fault_failures;    /* failed so far, over all runs */
static long fault_live;        /* blocks the hook gave since fault_arm, not yet freed */
static fault_mode fault_how;
static uint64_t fault_target;  /* a by-stack run: the stack that fails; 0: by count */
static long fault_hit_at;      /* by stack: the allocation that failed first; 0: none yet */
static int fault_census;       /* a run that lists the stacks that allocate */

/* ---- which sites were failed (tools/coverage/fault_sites.sh) ----
 *
 * With VOW_FAULT_SITES=FILE in the environment, the first failure of each
 * run (allocation n: under FAULT_FROM the later ones are each the first of
 * another run, so nothing is missed, and the cost stays linear) appends the
 * call stack that asked for the memory to FILE, one line:
 *   "once|from BASE ADDR ADDR ...", hexadecimal return addresses, innermost
 * first, and BASE the run-time address of fault_realloc itself, from which
 * the script finds the load address (nm gives its link-time one). The
 * script maps each address to a line of src/ with addr2line: an allocation
 * site counts as failed when it is on one of these stacks. Stacks already
 * written by this process are not written again. */
#define FAULT_STACK_DEPTH 16
#define FAULT_SEEN_MAX 4096

static void *fault_realloc(void *ptr, size_t size, void *ctx);

/* FNV-1a over return addresses, seeded; never 0 (0 means "no stack"). */
static uint64_t fault_hash_frames(void *const *frames, int n, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (int i = 0; i < n; i++) h = (h ^ (uint64_t)(uintptr_t)frames[i]) * 1099511628211ull;
  return h ? h : 1;
}

/* Adds h to the set of *len hashes (room for FAULT_SEEN_MAX; the caller
 * holds the set's lock). 1 if it was not there yet. */
static int fault_hash_add(uint64_t *set, int *len, uint64_t h) {
  for (int i = 0; i < *len; i++)
    if (set[i] == h) return 0;
  if (*len < FAULT_SEEN_MAX) set[(*len)++] = h;
  return 1;
}

static void fault_record_stack(void) {
  static int fd = -2;
  static uint64_t seen[FAULT_SEEN_MAX]; /* hashes of the stacks written */
  static int nseen;
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  static int wanted = -1; /* whether VOW_FAULT_SITES is set, looked up once */
  int w = __atomic_load_n(&wanted, __ATOMIC_RELAXED);
  if (w < 0) __atomic_store_n(&wanted, w = getenv("VOW_FAULT_SITES") != NULL, __ATOMIC_RELAXED);
  if (!w) return;
  void *frames[FAULT_STACK_DEPTH];
  int n = backtrace(frames, FAULT_STACK_DEPTH);
  uint64_t h = fault_hash_frames(frames, n, (uint64_t)fault_how);
  pthread_mutex_lock(&lock);
  if (fd == -2) {
    const char *path = getenv("VOW_FAULT_SITES");
    fd = path ? open(path, O_WRONLY | O_CREAT | O_APPEND, 0644) : -1;
  }
  if (fd >= 0 && fault_hash_add(seen, &nseen, h)) {
    char line[FAULT_STACK_DEPTH * 20 + 64];
    int len = snprintf(line, sizeof line, "%s %zx", fault_how == FAULT_FROM ? "from" : "once",
                       (size_t)(uintptr_t)fault_realloc);
    for (int i = 0; i < n; i++)
      len += snprintf(line + len, sizeof line - (size_t)len, " %zx", (size_t)(uintptr_t)frames[i]);
    line[len++] = '\n';
    if (write(fd, line, (size_t)len) != len) { /* best effort: the tests go on */ }
  }
  pthread_mutex_unlock(&lock);
}

/* Out of line, and called from one place (fault_realloc): the same site
 * hashes the same in every run. */
static __attribute__((noinline)) uint64_t fault_stack_hash(void) {
  void *frames[FAULT_STACK_DEPTH];
  int n = backtrace(frames, FAULT_STACK_DEPTH);
  return fault_hash_frames(frames, n, 0);
}

/* The census: the distinct stacks a clean run allocates from, in order. */
static uint64_t fault_stacks[FAULT_SEEN_MAX];
static int fault_nstacks;

static void fault_census_add(uint64_t h) {
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  pthread_mutex_lock(&lock);
  fault_hash_add(fault_stacks, &fault_nstacks, h);
  pthread_mutex_unlock(&lock);
}

/* Whether allocation n (by stack) fails: the first from fault_target, and
 * under FAULT_FROM every one after it. */
static int fault_by_stack(long n, uint64_t stack) {
  if (__atomic_load_n(&fault_hit_at, __ATOMIC_ACQUIRE)) return fault_how == FAULT_FROM;
  if (stack != fault_target) return 0;
  long none = 0;
  return __atomic_compare_exchange_n(&fault_hit_at, &none, n, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) ||
         fault_how == FAULT_FROM;
}

static void *fault_realloc(void *ptr, size_t size, void *ctx) {
  (void)ctx;
  if (size == 0) {
    if (ptr) __atomic_sub_fetch(&fault_live, 1, __ATOMIC_RELAXED);
    free(ptr);
    return NULL;
  }
  long n = __atomic_add_fetch(&fault_allocations, 1, __ATOMIC_RELAXED);
  uint64_t stack = fault_census || fault_target ? fault_stack_hash() : 0;
  if (fault_census) fault_census_add(stack);
  if (fault_target ? fault_by_stack(n, stack)
                   : fault_at && (n == fault_at || (fault_how == FAULT_FROM && n > fault_at))) {
    __atomic_add_fetch(&fault_failures, 1, __ATOMIC_RELAXED);
    if (n == (fault_target ? fault_hit_at : fault_at)) fault_record_stack();
    return NULL;
  }
  void *block = realloc(ptr, size);
  if (block && !ptr) __atomic_add_fetch(&fault_live, 1, __ATOMIC_RELAXED);
  return block;
}

/* Installs the failing allocator: allocation n fails (and, FAULT_FROM, every
 * one after it); n = 0 fails none but still counts. fault_live counts the
 * blocks given from here on and not yet freed: 0 once everything made since
 * is freed (a leak check that needs no sanitizer). */
static inline void fault_arm(long n, fault_mode how) {
  static const vow_allocator a = {fault_realloc, NULL};
  fault_allocations = 0;
  fault_live = 0;
  fault_at = n; /* n < 0: a run by stack (fault_target); nonzero either way when armed */
  fault_hit_at = 0;
  fault_how = how;
  vow_set_allocator(&a);
}

static inline void fault_disarm(void) { vow_set_allocator(NULL); }

/* The sweep by stack (see the top): a census run, then a run per stack. */
static inline void fault_every_stack(int (*once)(long n, fault_mode how), fault_mode how) {
  fault_nstacks = 0;
  fault_census = 1;
  once(0, how);
  fault_census = 0;
  int count = fault_nstacks, reached = 0;
  for (int i = 0; i < count; i++) {
    fault_target = fault_stacks[i];
    once(-1, how);
    reached += fault_hit_at != 0;
  }
  fault_target = 0;
  fprintf(stderr, "faults: %d stacks allocate; failed by stack (%s), %d were reached\n", count,
          how == FAULT_FROM ? "and on" : "once", reached);
}

/* Runs once(n, how) for n = 1, 2, ... until a run fails no allocation and n
 * is past every allocation count a run has reached; each call arms, runs
 * and disarms. Returns the last failure point tried: every point from 1 to
 * it was failed in a run of its own. Going on past a run that failed nothing
 * matters for scenarios whose allocations vary from run to run (I/O read in
 * as many chunks as the kernel hands over): a short run must not end the
 * sweep before the points that longer runs reach. */
static inline long fault_every_site(int (*once)(long n, fault_mode how), fault_mode how) {
  /* How far a whole run goes: the caller's last run (tests count their total
   * in one, and a run may allocate more than the next), and one more here. */
  long most = fault_allocations;
  once(0, how);
  if (fault_allocations > most) most = fault_allocations;
  for (long n = 1;; n++) {
    long before = fault_failures;
    once(n, how);
    int failed = fault_failures != before;
    /* Once memory has run out for good, what a run attempts after is not how
     * far a whole run goes; a single failure lets the run go on to its end. */
    long reached = how == FAULT_FROM && failed ? n : fault_allocations;
    if (reached > most) most = reached;
    if (!failed && n > most) {
      if (getenv("VOW_FAULT_SITES")) fault_every_stack(once, how);
      return n - 1;
    }
  }
}

#endif
