/*
 * test_coro.c - stackful coroutines and the stack pool (src/coro/coro.h).
 *
 * Every behavioural test runs once per back-end: coro_asm::NAME and
 * coro_ucontext::NAME (skipped when the back-end is not compiled in). The
 * assertions are made on the thread's own stack: a failing Criterion assert
 * longjmps, which must not happen from a coroutine stack.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coro/coro.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* ---- helpers -------------------------------------------------------------- */

static void need(vow_coro_backend backend) {
  if (!vow__coro_backend_available(backend))
    cr_skip_test("back-end not compiled into this build");
}

#define TEST_BOTH(name)                                                                  \
  static void name##_body(vow_coro_backend backend);                                     \
  Test(coro_asm, name) {                                                                 \
    need(VOW_CORO_BACKEND_ASM);                                                          \
    name##_body(VOW_CORO_BACKEND_ASM);                                                   \
  }                                                                                      \
  Test(coro_ucontext, name) {                                                            \
    need(VOW_CORO_BACKEND_UCONTEXT);                                                     \
    name##_body(VOW_CORO_BACKEND_UCONTEXT);                                              \
  }                                                                                      \
  static void name##_body(vow_coro_backend backend)

static vow_stack_pool *new_pool(vow_coro_backend backend, size_t stack_size, unsigned cached) {
  vow_stack_pool *pool = vow__stack_pool_new(stack_size, cached, backend);
  cr_assert_not_null(pool, "vow__stack_pool_new failed");
  cr_assert_eq(vow__stack_pool_backend(pool), backend);
  return pool;
}

static vow_coro *new_coro(vow_stack_pool *pool, size_t size, vow_coro_fn fn, void *arg,
                          const char *name) {
  vow_coro *co = vow__coro_new(pool, size, fn, arg, name);
  cr_assert_not_null(co, "vow__coro_new failed");
  return co;
}

static void free_pool(vow_stack_pool *pool) {
  cr_assert_eq(vow__stack_pool_live(pool), 0, "stacks still handed out");
  vow__stack_pool_free(pool);
}

/* Keeps p (and the frame it lives in) alive as far as the compiler knows: no
 * tail call, no merged recursion. */
static void __attribute__((noinline)) touch(volatile char *p) {
  __asm__ volatile("" : : "r"(p) : "memory");
}

/* A trace of events, appended to from coroutines and from the main stack. */
typedef struct {
  char text[1024];
  size_t len;
} trace;

static void trace_add(trace *t, const char *s) {
  size_t n = strlen(s);
  if (t->len + n < sizeof(t->text)) {
    memcpy(t->text + t->len, s, n + 1);
    t->len += n;
  }
}

/* ---- run to completion -------------------------------------------------- */

typedef struct {
  int ran;
  vow_coro *self_seen;
  void *arg_seen;
  void *data_seen;
} once_state;

static void run_once(vow_coro *co, void *arg) {
  once_state *s = arg;
  s->ran++;
  s->self_seen = vow__coro_current();
  s->arg_seen = vow__coro_arg(co);
  s->data_seen = vow__coro_get_data(co);
}

TEST_BOTH(runs_to_completion) {
  vow_stack_pool *pool = new_pool(backend, 0, 4);
  once_state s = {0};
  int token;
  vow_coro *co = new_coro(pool, 0, run_once, &s, "once");

  cr_assert_eq(vow__stack_pool_stack_size(pool), 256 * 1024);
  cr_assert_null(vow__coro_current());
  cr_assert_not(vow__coro_done(co));
  cr_assert_null(vow__coro_get_data(co));
  vow__coro_set_data(co, &token);
  cr_assert_eq(s.ran, 0, "a coroutine runs only when resumed");

  vow__coro_resume(co);
  cr_assert_eq(s.ran, 1);
  cr_assert(vow__coro_done(co));
  cr_assert_eq(s.self_seen, co, "current() inside the coroutine");
  cr_assert_eq(s.arg_seen, &s);
  cr_assert_eq(s.data_seen, &token);
  cr_assert_null(vow__coro_current(), "back on the thread's stack");
  cr_assert_str_eq(vow__coro_name(co), "once");
  vow__coro_free(co);
  free_pool(pool);
}

/* ---- ping-pong: locals and callee-saved state survive switches ----------- */

#define PINGPONG_ROUNDS 20000

typedef struct {
  unsigned long ints[6];
  double fps[4];
  long rounds;
} mix;

/* One step of a computation with many live values: at -O2 they sit in
 * callee-saved registers (and d8-d15 on AArch64) across every switch. */
static void mix_step(unsigned long *a, unsigned long *b, unsigned long *c, unsigned long *d,
                     unsigned long *e, unsigned long *f, double *x, double *y, double *z,
                     double *w, long i) {
  *a += (unsigned long)i;
  *b ^= *a * 31;
  *c = *c * 7 % 1000003 + (unsigned long)i;
  *d -= *b >> 3;
  *e += *c ^ *d;
  *f = *f * 3 + 1;
  *x += 0.5;
  *y = *y * 1.0000001 + 0.25;
  *z -= *x / 1024.0;
  *w = *w * 0.5 + (double)(i & 7);
}

static void pingpong(vow_coro *co, void *arg) {
  mix *out = arg;
  unsigned long a = 1, b = 2, c = 3, d = 4, e = 5, f = 6;
  double x = 0.125, y = 2.5, z = -1.0, w = 3.0;
  long i;

  for (i = 0; i < PINGPONG_ROUNDS; i++) {
    mix_step(&a, &b, &c, &d, &e, &f, &x, &y, &z, &w, i);
    vow__coro_yield(co);
    out->rounds++;
  }
  out->ints[0] = a, out->ints[1] = b, out->ints[2] = c;
  out->ints[3] = d, out->ints[4] = e, out->ints[5] = f;
  out->fps[0] = x, out->fps[1] = y, out->fps[2] = z, out->fps[3] = w;
}

TEST_BOTH(pingpong_preserves_state) {
  vow_stack_pool *pool = new_pool(backend, 0, 4);
  mix got = {0};
  unsigned long a = 1, b = 2, c = 3, d = 4, e = 5, f = 6; /* the same, computed here */
  double x = 0.125, y = 2.5, z = -1.0, w = 3.0;
  long i, resumes = 0;
  vow_coro *co = new_coro(pool, 0, pingpong, &got, "pingpong");

  for (i = 0; !vow__coro_done(co); i++) {
    vow__coro_resume(co);
    resumes++;
    if (i < PINGPONG_ROUNDS)
      mix_step(&a, &b, &c, &d, &e, &f, &x, &y, &z, &w, i);
  }
  cr_assert_eq(resumes, PINGPONG_ROUNDS + 1);
  cr_assert_eq(got.rounds, PINGPONG_ROUNDS);
  cr_assert_eq(got.ints[0], a);
  cr_assert_eq(got.ints[1], b);
  cr_assert_eq(got.ints[2], c);
  cr_assert_eq(got.ints[3], d);
  cr_assert_eq(got.ints[4], e);
  cr_assert_eq(got.ints[5], f);
  cr_assert(got.fps[0] == x && got.fps[1] == y && got.fps[2] == z && got.fps[3] == w,
            "floating-point locals changed across switches");
  vow__coro_free(co);
  free_pool(pool);
}

/* ---- floating-point control state is per coroutine (coro.h, invariant 7) -- */

enum { ROUND_NEAREST, ROUND_DOWN, ROUND_UP, ROUND_ZERO, ROUND_MIXED = -1 };

#if defined(__x86_64__)
#define HAVE_ROUNDING_CONTROL 1
/* SSE (MXCSR bits 13-14) and x87 (control word bits 10-11) use the same
 * encoding; each is checked, so that a back-end losing either shows. */
static int get_rounding(void) {
  unsigned mxcsr;
  unsigned short cw;
  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(cw));
  if (((mxcsr >> 13) & 3) != ((cw >> 10) & 3u))
    return ROUND_MIXED;
  return (int)((mxcsr >> 13) & 3);
}
static void set_rounding(int mode) {
  unsigned mxcsr;
  unsigned short cw;
  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(cw));
  mxcsr = (mxcsr & ~(3u << 13)) | ((unsigned)mode << 13);
  cw = (unsigned short)((cw & ~(3u << 10)) | ((unsigned)mode << 10));
  __asm__ volatile("ldmxcsr %0" : : "m"(mxcsr));
  __asm__ volatile("fldcw %0" : : "m"(cw));
}
#elif defined(__aarch64__)
#define HAVE_ROUNDING_CONTROL 1
/* FPCR.RMode (bits 22-23): 0 nearest, 1 up, 2 down, 3 zero. */
static int get_rounding(void) {
  static const int from_rmode[4] = {ROUND_NEAREST, ROUND_UP, ROUND_DOWN, ROUND_ZERO};
  unsigned long fpcr;
  __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
  return from_rmode[(fpcr >> 22) & 3];
}
static void set_rounding(int mode) {
  static const unsigned long to_rmode[4] = {0, 2, 1, 3};
  unsigned long fpcr;
  __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
  fpcr = (fpcr & ~(3ul << 22)) | (to_rmode[mode] << 22);
  __asm__ volatile("msr fpcr, %0" : : "r"(fpcr));
}
#else
#define HAVE_ROUNDING_CONTROL 0
#endif

#if HAVE_ROUNDING_CONTROL
static volatile double one = 1.0, three = 3.0;

typedef struct {
  int at_start;       /* inherited from the creator */
  int after_yield;    /* its own mode survived the resumer changing its own */
  double third_up;    /* 1/3 computed in the coroutine, rounding up */
} fp_seen;

static void fp_coroutine(vow_coro *co, void *arg) {
  fp_seen *s = arg;
  s->at_start = get_rounding();
  set_rounding(ROUND_UP);
  vow__coro_yield(co);
  s->after_yield = get_rounding();
  s->third_up = one / three;
}
#endif

TEST_BOTH(fp_control_state_is_per_coroutine) {
#if HAVE_ROUNDING_CONTROL
  vow_stack_pool *pool = new_pool(backend, 0, 4);
  int saved = get_rounding();
  fp_seen s = {-2, -2, 0};
  vow_coro *co;
  double third_down;
  int main_after_first, main_after_second;

  set_rounding(ROUND_ZERO);
  co = new_coro(pool, 0, fp_coroutine, &s, "fp"); /* inherits ROUND_ZERO */
  set_rounding(ROUND_NEAREST);                    /* too late to matter */
  vow__coro_resume(co);                           /* it switches to ROUND_UP */
  main_after_first = get_rounding();
  set_rounding(ROUND_DOWN);
  third_down = one / three;
  vow__coro_resume(co);
  main_after_second = get_rounding();
  set_rounding(saved);

  cr_assert_eq(s.at_start, ROUND_ZERO, "a coroutine starts with its creator's mode");
  cr_assert_eq(main_after_first, ROUND_NEAREST, "the coroutine's mode leaked to its resumer");
  cr_assert_eq(s.after_yield, ROUND_UP, "the resumer's mode leaked into the coroutine");
  cr_assert_eq(main_after_second, ROUND_DOWN);
  /* Valgrind tracks the mode bits but computes SSE arithmetic round-to-nearest. */
  if (!RUNNING_ON_VALGRIND)
    cr_assert(s.third_up > third_down, "SSE arithmetic did not follow the mode");
  vow__coro_free(co);
  free_pool(pool);
#else
  (void)backend;
  cr_skip_test("no rounding-mode helpers for this architecture");
#endif
}

/* ---- nesting: yield returns to whoever resumed -------------------------- */

typedef struct {
  vow_coro *a, *b;
  trace t;
  int current_ok; /* every current() seen was the expected one */
} nest;

static void check_current(nest *n, vow_coro *expected) {
  if (vow__coro_current() != expected)
    n->current_ok = 0;
}

static void nest_b(vow_coro *co, void *arg) {
  nest *n = arg;
  check_current(n, co);
  trace_add(&n->t, "b1 ");
  vow__coro_yield(co); /* to A */
  check_current(n, co);
  trace_add(&n->t, "b2 ");
  vow__coro_yield(co); /* to main, which resumed it this time */
  check_current(n, co);
  trace_add(&n->t, "b3 ");
}

static void nest_a(vow_coro *co, void *arg) {
  nest *n = arg;
  trace_add(&n->t, "a1 ");
  vow__coro_resume(n->b);
  check_current(n, co);
  trace_add(&n->t, "a2 ");
  vow__coro_yield(co);
  trace_add(&n->t, "a3 ");
  vow__coro_resume(n->b); /* B finishes: back here, not to main */
  check_current(n, co);
  trace_add(&n->t, vow__coro_done(n->b) ? "a4 " : "a4? ");
}

TEST_BOTH(nested_resume_chain) {
  vow_stack_pool *pool = new_pool(backend, 0, 4);
  nest n;

  memset(&n, 0, sizeof(n));
  n.current_ok = 1;
  n.a = new_coro(pool, 0, nest_a, &n, "A");
  n.b = new_coro(pool, 0, nest_b, &n, "B");
  vow__coro_resume(n.a);
  trace_add(&n.t, "m1 ");
  check_current(&n, NULL);
  vow__coro_resume(n.b);
  trace_add(&n.t, "m2 ");
  check_current(&n, NULL);
  vow__coro_resume(n.a);
  trace_add(&n.t, "m3");

  cr_assert_str_eq(n.t.text, "a1 b1 a2 m1 b2 m2 a3 b3 a4 m3");
  cr_assert(n.current_ok, "vow__coro_current() was wrong somewhere");
  cr_assert(vow__coro_done(n.a) && vow__coro_done(n.b));
  vow__coro_free(n.a);
  vow__coro_free(n.b);
  free_pool(pool);
}

/* ---- both back-ends run the same program the same way ------------------- */

typedef struct {
  trace *t;
  vow_coro *helper;
  int id;
} worker_arg;

static void helper_fn(vow_coro *co, void *arg) {
  trace *t = arg;
  int i;
  for (i = 0;; i++) {
    char buf[32];
    snprintf(buf, sizeof(buf), "h%d ", i);
    trace_add(t, buf);
    vow__coro_yield(co);
  }
}

static void worker_fn(vow_coro *co, void *arg) {
  worker_arg *w = arg;
  double acc = w->id + 0.5;
  int i;

  for (i = 0; i < 3; i++) {
    char buf[64];
    acc = acc * 1.5 + i;
    snprintf(buf, sizeof(buf), "w%d.%d=%.3f ", w->id, i, acc);
    trace_add(w->t, buf);
    if (w->id == i)
      vow__coro_resume(w->helper); /* nested: helper yields back here */
    vow__coro_yield(co);
  }
  trace_add(w->t, w->id == 2 ? "end" : "");
}

/* A round-robin scheduler over three workers sharing a nested helper. */
static void scripted_program(vow_coro_backend backend, trace *t) {
  vow_stack_pool *pool = new_pool(backend, 64 * 1024, 2);
  vow_coro *workers[3], *helper;
  worker_arg args[3];
  int i, live = 3;

  memset(t, 0, sizeof(*t));
  helper = new_coro(pool, 0, helper_fn, t, "helper");
  for (i = 0; i < 3; i++) {
    args[i].t = t, args[i].helper = helper, args[i].id = i;
    workers[i] = new_coro(pool, 0, worker_fn, &args[i], "worker");
  }
  while (live > 0) {
    for (i = 0; i < 3; i++) {
      if (workers[i] == NULL)
        continue;
      vow__coro_resume(workers[i]);
      if (vow__coro_done(workers[i])) {
        vow__coro_free(workers[i]);
        workers[i] = NULL;
        live--;
      }
    }
  }
  vow__coro_free(helper); /* suspended forever in its loop */
  free_pool(pool);
}

Test(coro, backends_produce_identical_traces) {
  trace via_asm, via_ucontext;

  need(VOW_CORO_BACKEND_ASM);
  need(VOW_CORO_BACKEND_UCONTEXT);
  scripted_program(VOW_CORO_BACKEND_ASM, &via_asm);
  scripted_program(VOW_CORO_BACKEND_UCONTEXT, &via_ucontext);
  cr_assert_str_eq(via_asm.text, via_ucontext.text);
  cr_assert_str_eq(via_asm.text,
                   "w0.0=0.750 h0 w1.0=2.250 w2.0=3.750 "
                   "w0.1=2.125 w1.1=4.375 h1 w2.1=6.625 "
                   "w0.2=5.188 w1.2=8.562 w2.2=11.938 h2 end");
}

/* ---- the pool reuses stacks ----------------------------------------------- */

static void record_frame(vow_coro *co, void *arg) {
  (void)co;
  *(uintptr_t *)arg = (uintptr_t)__builtin_frame_address(0);
}

TEST_BOTH(pool_reuses_stacks) {
  vow_stack_pool *pool = new_pool(backend, 0, 2);
  uintptr_t first = 0, second = 0, third = 0;
  vow_coro *co, *co2;

  co = new_coro(pool, 0, record_frame, &first, "first");
  vow__coro_resume(co);
  vow__coro_free(co);
  cr_assert_eq(vow__stack_pool_cached(pool), 1);
  cr_assert_eq(vow__stack_pool_live(pool), 0);

  co2 = new_coro(pool, 0, record_frame, &second, "second");
  cr_assert_eq(vow__stack_pool_cached(pool), 0, "the cached stack was not taken");
  cr_assert_eq(co2, co, "the coroutine header sits at the top of the same stack");
  vow__coro_resume(co2);
  cr_assert_eq(second, first, "a fresh stack instead of the cached one");
  vow__coro_free(co2);

  /* Stacks of another size are not cached. */
  co = new_coro(pool, 64 * 1024, record_frame, &third, "odd size");
  vow__coro_resume(co);
  cr_assert_neq(third, 0);
  vow__coro_free(co);
  cr_assert_eq(vow__stack_pool_cached(pool), 1);
  free_pool(pool);
}

TEST_BOTH(pool_caches_at_most_max_cached) {
  vow_stack_pool *pool = new_pool(backend, 32 * 1024, 3);
  vow_coro *cos[5];
  uintptr_t frame;
  int i;

  for (i = 0; i < 5; i++)
    cos[i] = new_coro(pool, 0, record_frame, &frame, "c");
  cr_assert_eq(vow__stack_pool_live(pool), 5);
  for (i = 0; i < 5; i++)
    vow__coro_free(cos[i]); /* never resumed: allowed */
  cr_assert_eq(vow__stack_pool_cached(pool), 3);
  free_pool(pool);
}

/* ---- freeing suspended coroutines leaks nothing -------------------------- */

/* 1 if addr lies in any mapping of this process. Reads /proc/self/maps rather
 * than probing with a system call, which valgrind would flag. */
static int is_mapped(uintptr_t addr) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[512];
  int found = 0;

  cr_assert_not_null(f);
  while (!found && fgets(line, sizeof(line), f) != NULL) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && addr >= lo && addr < hi)
      found = 1;
  }
  fclose(f);
  return found;
}

static void suspend_forever(vow_coro *co, void *arg) {
  volatile char big[2048]; /* a real frame on the stack when it is dropped */
  big[0] = 'x';
  touch(big);
  /* Not &big: ASan's use-after-return mode moves locals to the heap. */
  *(uintptr_t *)arg = (uintptr_t)__builtin_frame_address(0);
  for (;;)
    vow__coro_yield(co);
}

TEST_BOTH(freeing_suspended_coroutines_leaks_nothing) {
  enum { N = 64 };
  vow_stack_pool *pool = new_pool(backend, 0, 0); /* no cache: free unmaps */
  vow_coro *cos[N];
  uintptr_t frames[N];
  int i;

  for (i = 0; i < N; i++) {
    cos[i] = new_coro(pool, 0, suspend_forever, &frames[i], "suspended");
    vow__coro_resume(cos[i]);
    vow__coro_resume(cos[i]);
    cr_assert_not(vow__coro_done(cos[i]));
  }
  cr_assert_eq(vow__stack_pool_live(pool), N);
  for (i = 0; i < N; i++)
    cr_assert(is_mapped(frames[i]));
  for (i = 0; i < N; i++)
    vow__coro_free(cos[i]);
  cr_assert_eq(vow__stack_pool_live(pool), 0);
  cr_assert_eq(vow__stack_pool_cached(pool), 0);
  for (i = 0; i < N; i++)
    cr_assert_not(is_mapped(frames[i]), "stack %d still mapped after free", i);
  free_pool(pool);
}

TEST_BOTH(cached_stack_of_suspended_coroutine_runs_fresh) {
  vow_stack_pool *pool = new_pool(backend, 0, 1);
  uintptr_t frame = 0;
  once_state s = {0};
  vow_coro *co = new_coro(pool, 0, suspend_forever, &frame, "dropped");

  vow__coro_resume(co);
  vow__coro_free(co); /* suspended inside suspend_forever */
  cr_assert_eq(vow__stack_pool_cached(pool), 1);
  co = new_coro(pool, 0, run_once, &s, "fresh");
  vow__coro_resume(co);
  cr_assert_eq(s.ran, 1);
  cr_assert(vow__coro_done(co));
  vow__coro_free(co);
  free_pool(pool);
}

/* ---- a custom stack size is usable -------------------------------------- */

typedef struct {
  uintptr_t top;
  size_t target;
  size_t reached;
  unsigned depth;
} deep;

static size_t recurse(deep *d, unsigned depth) {
  volatile char pad[400];
  uintptr_t here = (uintptr_t)__builtin_frame_address(0);
  size_t r;

  pad[0] = (char)depth;
  if (d->top - here >= d->target) {
    d->reached = d->top - here;
    d->depth = depth;
    return 0;
  }
  r = recurse(d, depth + 1);
  touch(pad);
  return r + 1;
}

static void deep_fn(vow_coro *co, void *arg) {
  deep *d = arg;
  (void)co;
  d->top = (uintptr_t)__builtin_frame_address(0);
  recurse(d, 0);
}

TEST_BOTH(custom_stack_size_is_usable) {
  vow_stack_pool *pool = new_pool(backend, 0, 4);
  deep d = {0, 48 * 1024, 0, 0}; /* 75% of 64 KiB */
  vow_coro *co = new_coro(pool, 64 * 1024, deep_fn, &d, "deep");

  vow__coro_resume(co);
  cr_assert(vow__coro_done(co));
  cr_assert_geq(d.reached, d.target, "recursion stopped at %zu bytes", d.reached);
  cr_assert_gt(d.depth, 50);
  vow__coro_free(co);
  free_pool(pool);
}

TEST_BOTH(stack_sizes_round_up) {
  vow_stack_pool *pool = new_pool(backend, 100 * 1000, 0);
  size_t page = (size_t)sysconf(_SC_PAGESIZE);

  cr_assert_eq(vow__stack_pool_stack_size(pool) % page, 0);
  cr_assert_geq(vow__stack_pool_stack_size(pool), 100 * 1000);
  cr_assert_lt(vow__stack_pool_stack_size(pool), 100 * 1000 + page);
  vow__stack_pool_free(pool);
  pool = new_pool(backend, 1, 0); /* tiny: raised to the 16 KiB minimum */
  cr_assert_eq(vow__stack_pool_stack_size(pool), 16 * 1024);
  vow__stack_pool_free(pool);
}

/* ---- errors are return values ------------------------------------------- */

TEST_BOTH(allocation_failures_return_null) {
  vow_stack_pool *pool = new_pool(backend, 0, 4);

  cr_assert_null(vow__coro_new(pool, (size_t)1 << 62, run_once, NULL, "huge"),
                 "a stack larger than the address space");
  cr_assert_null(vow__coro_new(pool, (size_t)-1, run_once, NULL, "overflowing size"));
  cr_assert_eq(vow__stack_pool_live(pool), 0);
  free_pool(pool);
  cr_assert_null(vow__stack_pool_new((size_t)-1, 0, backend));
  cr_assert_null(vow__stack_pool_new(0, 0, (vow_coro_backend)42), "no such back-end");
}

Test(coro, default_backend_is_available) {
  vow_coro_backend def = vow__coro_default_backend();
  vow_stack_pool *pool = vow__stack_pool_new(0, 0, VOW_CORO_BACKEND_DEFAULT);

  cr_assert(def == VOW_CORO_BACKEND_ASM || def == VOW_CORO_BACKEND_UCONTEXT);
  cr_assert(vow__coro_backend_available(def));
  cr_assert_not_null(pool);
  cr_assert_eq(vow__stack_pool_backend(pool), def);
  vow__stack_pool_free(pool);
}

/* ---- stack overflow ------------------------------------------------------- */

static unsigned long runaway(unsigned long n) {
  volatile char pad[256];
  unsigned long r;

  pad[0] = (char)n;
  if (n == (unsigned long)-1) /* never: keeps -Winfinite-recursion quiet */
    return 0;
  r = runaway(n + 1);
  touch(pad);
  return r + 1;
}

static void runaway_fn(vow_coro *co, void *arg) {
  (void)co;
  *(unsigned long *)arg = runaway(0);
}

static void no_core_dump(void) {
  struct rlimit rl = {0, 0};
  setrlimit(RLIMIT_CORE, &rl);
}

/* Overflows a 64 KiB coroutine stack; returns only if the overflow did not
 * kill the process. */
static void overflow_now(vow_coro_backend backend) {
  vow_stack_pool *pool = vow__stack_pool_new(0, 0, backend);
  unsigned long result = 0;
  vow_coro *co = pool != NULL ? vow__coro_new(pool, 64 * 1024, runaway_fn, &result,
                                               "runaway") : NULL;
  if (co != NULL)
    vow__coro_resume(co);
}

#if VOW_ASAN
Test(coro_overflow, aborts) {
  cr_skip_test("ASan owns SIGSEGV and reports stack overflows itself");
}
#else
Test(coro_overflow, aborts, .signal = SIGABRT) {
  no_core_dump();
  overflow_now(VOW_CORO_BACKEND_DEFAULT);
}
#endif

/* Runs fn(backend) in a child whose stderr is captured in out. Returns the
 * child's wait status. */
static int in_child(void (*fn)(vow_coro_backend), vow_coro_backend backend, char *out,
                    size_t cap) {
  int fds[2], status = 0;
  size_t len = 0;
  pid_t pid;

  cr_assert_eq(pipe(fds), 0);
  fflush(NULL);
  pid = fork();
  cr_assert_neq(pid, -1);
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    no_core_dump();
    fn(backend);
    _exit(0);
  }
  close(fds[1]);
  for (;;) {
    ssize_t n = read(fds[0], out + len, cap - 1 - len);
    if (n > 0 && (len += (size_t)n) < cap - 1)
      continue;
    if (n < 0 && errno == EINTR)
      continue;
    break;
  }
  out[len] = '\0';
  close(fds[0]);
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  return status;
}

/* Skips the test unless this thread reports overflows (not under ASan). */
static void need_reporter(vow_coro_backend backend) {
  vow_stack_pool *pool = new_pool(backend, 0, 0);
  vow_coro *co = new_coro(pool, 0, run_once, NULL, "probe");
  vow__coro_free(co);
  vow__stack_pool_free(pool);
  if (!vow__coro_overflow_reporting())
    cr_skip_test("no overflow reporter in this build (ASan)");
}

TEST_BOTH(overflow_message_names_the_coroutine) {
  char out[4096];
  int status;

  need_reporter(backend);
  status = in_child(overflow_now, backend, out, sizeof(out));
  cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
            "child did not abort (status 0x%x); stderr: %s", status, out);
  cr_assert_not_null(strstr(out, "vow: stack overflow in coroutine 'runaway' "
                                 "(stack of 65536 bytes)\n"),
                     "stderr was: %s", out);
}

static void null_write_fn(vow_coro *co, void *arg) {
  (void)co;
  *(volatile int *)arg = 1;
}

static void fault_elsewhere(vow_coro_backend backend) {
  vow_stack_pool *pool = vow__stack_pool_new(0, 0, backend);
  vow_coro *co = vow__coro_new(pool, 0, null_write_fn, NULL, "innocent");
  vow__coro_resume(co);
}

TEST_BOTH(other_faults_are_not_reported_as_overflows) {
  char out[4096];
  int status;

  need_reporter(backend);
  status = in_child(fault_elsewhere, backend, out, sizeof(out));
  cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
            "a NULL write must still die of SIGSEGV (status 0x%x)", status);
  cr_assert_null(strstr(out, "vow:"), "misreported: %s", out);
}

/* The handler that was there first still gets the faults that are not ours. */
static void user_handler(int sig) {
  static const char msg[] = "user handler\n";
  (void)sig;
  if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
    _exit(4);
  _exit(3);
}

static void fault_with_user_handler(vow_coro_backend backend) {
  signal(SIGSEGV, user_handler); /* before vow installs its own */
  {
    vow_stack_pool *pool = vow__stack_pool_new(0, 0, backend);
    vow_coro *co = vow__coro_new(pool, 0, null_write_fn, NULL, "innocent");
    if (!vow__coro_overflow_reporting())
      _exit(77); /* vow did not install a handler: nothing to chain */
    vow__coro_resume(co);
  }
}

TEST_BOTH(other_faults_reach_the_previous_handler) {
  char out[4096];
  int status;

  /* In the child only: the handler is installed once per process, and the
   * user's must come first. */
  status = in_child(fault_with_user_handler, backend, out, sizeof(out));
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
    cr_skip_test("no overflow reporter in this build (ASan)");
  cr_assert_str_eq(out, "user handler\n", "previous handler not called: %s", out);
  /* Valgrind replaces the exit status when the child made errors (the NULL
   * write is one). */
  cr_assert(WIFEXITED(status) && (WEXITSTATUS(status) == 3 || RUNNING_ON_VALGRIND),
            "status 0x%x", status);
}

/* ---- misuse --------------------------------------------------------------- */

/* Resuming a finished coroutine asserts; built without asserts, the coroutine
 * entry aborts instead of running off its stack. */
Test(coro, resuming_a_finished_coroutine_aborts, .signal = SIGABRT) {
  vow_stack_pool *pool = vow__stack_pool_new(0, 0, VOW_CORO_BACKEND_DEFAULT);
  once_state s = {0};
  vow_coro *co = vow__coro_new(pool, 0, run_once, &s, "finished");

  no_core_dump();
  vow__coro_resume(co);
  vow__coro_resume(co);
}

/* ---- many coroutines -------------------------------------------------------- */

static void count_twice(vow_coro *co, void *arg) {
  long *slot = arg;
  *slot += 1;
  vow__coro_yield(co);
  *slot += 1;
}

TEST_BOTH(ten_thousand_alive_at_once) {
  enum { N = 10000 };
  vow_stack_pool *pool = new_pool(backend, 0, 64);
  vow_coro **cos = calloc(N, sizeof(*cos));
  long *slots = calloc(N, sizeof(*slots));
  int i;

  cr_assert(cos != NULL && slots != NULL);
  for (i = 0; i < N; i++) {
    cos[i] = new_coro(pool, 0, count_twice, &slots[i], "many");
    vow__coro_resume(cos[i]);
  }
  cr_assert_eq(vow__stack_pool_live(pool), N);
  for (i = 0; i < N; i++) {
    cr_assert_eq(slots[i], 1);
    if (i % 2 == 0) /* half finish, half are freed while suspended */
      vow__coro_resume(cos[i]);
  }
  for (i = 0; i < N; i++) {
    cr_assert_eq(slots[i], i % 2 == 0 ? 2 : 1);
    cr_assert_eq(vow__coro_done(cos[i]), i % 2 == 0);
    vow__coro_free(cos[i]);
  }
  cr_assert_eq(vow__stack_pool_live(pool), 0);
  cr_assert_eq(vow__stack_pool_cached(pool), 64);
  free_pool(pool);
  free(cos);
  free(slots);
}

/* ---- threads: the current coroutine is per thread ------------------------- */

typedef struct {
  vow_coro_backend backend;
  long rounds;
  int ok;
} thread_job;

static void count_rounds(vow_coro *co, void *arg) {
  thread_job *job = arg;
  long i;
  for (i = 0; i < 5000; i++) {
    if (vow__coro_current() != co)
      job->ok = 0;
    job->rounds++;
    vow__coro_yield(co);
  }
}

static void *thread_main(void *arg) {
  thread_job *job = arg;
  vow_stack_pool *pool = vow__stack_pool_new(0, 2, job->backend);
  vow_coro *co = pool != NULL ? vow__coro_new(pool, 0, count_rounds, job, "thread") : NULL;

  if (co == NULL)
    return NULL;
  job->ok = 1;
  while (!vow__coro_done(co)) {
    vow__coro_resume(co);
    if (vow__coro_current() != NULL)
      job->ok = 0;
  }
  if (VOW_ASAN == vow__coro_overflow_reporting()) /* each thread gets its own alt stack */
    job->ok = 0;
  vow__coro_free(co);
  vow__stack_pool_free(pool);
  return NULL;
}

TEST_BOTH(threads_run_their_own_coroutines) {
  thread_job jobs[2] = {{backend, 0, 0}, {backend, 0, 0}};
  pthread_t threads[2];
  int i;

  for (i = 0; i < 2; i++)
    cr_assert_eq(pthread_create(&threads[i], NULL, thread_main, &jobs[i]), 0);
  for (i = 0; i < 2; i++) {
    cr_assert_eq(pthread_join(threads[i], NULL), 0);
    cr_assert(jobs[i].ok, "thread %d saw a wrong current coroutine", i);
    cr_assert_eq(jobs[i].rounds, 5000);
  }
}
