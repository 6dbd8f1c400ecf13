/*
 * test_copy_stack.c — the small-memory mode of async functions
 * (vow_async_options.copy_stack): copy-stack coroutines on a pool's one
 * shared stack, their frames copied out while they are suspended (coro.h,
 * invariant 9).
 *
 * What must hold: a function's frames come back intact, whoever ran on the
 * shared stack in between (other copy-stack functions, nested calls in both
 * modes); a suspended one keeps only the bytes it used; the order of events
 * is Node's, as in the plain mode; overflow and running out of memory are
 * reported, never silent corruption. Under ASan and TSan (and with the
 * ucontext back-end) the mode is a plain 16 KiB stack: the same tests then
 * check that the fallback behaves the same, and skip what only copying shows.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "async/async.h"
#include "core/loop.h"
#include "coro/coro.h"
#include "faults.h"
#include "log.h"
#include "vow.h"

LOOP_SUITE(copy_stack, NULL);

static const vow_async_options copy = {.copy_stack = 1, .name = "small"};

/* A local array and a pointer into it, checked after every await: the frames
 * came back to the same addresses with the same bytes. */
typedef struct {
  const char *name;
  vow_promise *gate;
  int tolerant; /* under injected failures: an await that fails ends the function;
                  it then owns a reference to gate (its caller may be gone first),
                  released by worker_release */
} worker_arg;

/* async function worker(name, gate) {
 *   const local = [1, 2, 3];
 *   for (let i = 0; i < 3; i++) { if (i === 1) await gate; else await null; out.push(name + i) }
 *   return local.length }
 * const ps = ['a', 'b', 'c'].map((n) => worker(n, gate)); out.push('sync');
 * setTimeout(() => { out.push('open'); open() }, 0); await Promise.all(ps)
 *                                   node: sync a0 b0 c0 open a1 b1 c1 a2 b2 c2 */
static vow_value worker(vow_loop *l, void *argp) {
  (void)l;
  worker_arg *arg = argp;
  int local[64];
  int *self = local; /* a pointer into this very frame */
  for (int k = 0; k < 64; k++) local[k] = k * (arg->name[0]);
  for (int i = 0; i < 3; i++) {
    int rc = i == 1 ? vow_await(vow_promise_ref(arg->gate), NULL) : vow_await_value(vow_null(), NULL);
    if (rc != 0 && arg->tolerant) return vow_int(-1);
    cr_assert_eq(rc, 0);
    cr_assert_eq(self, local);
    for (int k = 0; k < 64; k++) cr_assert_eq(self[k], k * (arg->name[0]), "%s: local[%d]", arg->name, k);
    LOG("%s%d", arg->name, i);
  }
  return vow_int(3);
}

static void open_gate(vow_loop *l, void *gate) {
  (void)l;
  LOG("open");
  vow_promise_resolve(gate, vow_undefined());
}

static void run_workers(const vow_async_options *mode) {
  static worker_arg args[3] = {{"a", NULL, 0}, {"b", NULL, 0}, {"c", NULL, 0}};
  vow_promise *gate = vow_promise_new(loop);
  vow_promise *ps[3];
  for (int i = 0; i < 3; i++) {
    args[i].gate = gate;
    ps[i] = vow_async_ex(loop, worker, &args[i], mode);
  }
  LOG("sync");
  vow_set_timeout(loop, 0, open_gate, gate);
  cr_assert_eq(vow_loop_run(loop), 0);
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(vow_as_int(vow_promise_result(ps[i])), 3);
    vow_promise_unref(ps[i]);
  }
  vow_promise_unref(gate);
}

LOOP_TEST(copy_stack, frames_survive_and_order_is_nodes) {
  run_workers(&copy);
  cr_assert_str_eq(LOG_TEXT(), "sync a0 b0 c0 open a1 b1 c1 a2 b2 c2");
  log_reset();
  run_workers(NULL); /* the plain mode says the same */
  cr_assert_str_eq(LOG_TEXT(), "sync a0 b0 c0 open a1 b1 c1 a2 b2 c2");
}

/* Nested calls, mixing the modes: a copy-stack function awaits a copy-stack
 * one (their frames take turns on the shared stack, through the copier),
 * which awaits a plain one, which awaits a copy-stack one again. Each level
 * keeps a local it checks after its await.
 *   async function level(n) { const mine = n * 1000; if (n === 0) { await null; return 1 }
 *     const r = await level(n - 1); return r + mine }       level(4) === 10001 */
static vow_value level(vow_loop *l, void *argp) {
  intptr_t n = (intptr_t)argp;
  volatile intptr_t mine = n * 1000;
  char pad[300];
  memset(pad, (int)n, sizeof pad);
  vow_value v;
  if (n == 0) return vow_int(vow_await_value(vow_null(), NULL) == 0 ? 1 : -1);
  /* level 2 runs plain, the others on the shared stack */
  vow_async_options o = {.copy_stack = n - 1 != 2, .name = "level"};
  if (vow_await(vow_async_ex(l, level, (void *)(n - 1), &o), &v) != 0) { /* only under faults */
    vow_unref(v);
    return vow_int(-1);
  }
  for (size_t i = 0; i < sizeof pad; i++) cr_assert_eq(pad[i], (char)n);
  cr_assert_eq(mine, n * 1000);
  return vow_int(vow_as_int(v) + mine);
}

LOOP_TEST(copy_stack, nested_calls_in_both_modes) {
  vow_promise *p = vow_async_ex(loop, level, (void *)(intptr_t)4, &copy);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED);
  cr_assert_eq(vow_as_int(vow_promise_result(p)), 1 + 1000 + 2000 + 3000 + 4000);
  vow_promise_unref(p);
}

/* Many at once, each suspended on the same pending promise: each keeps only
 * what it used of the shared stack (a few hundred bytes), not a page. */
static vow_value wait_gate(vow_loop *l, void *gate) {
  (void)l;
  vow_value v;
  cr_assert_eq(vow_await(vow_promise_ref(gate), &v), 0);
  return v;
}

LOOP_TEST(copy_stack, a_suspended_function_keeps_only_the_bytes_it_used) {
  enum { N = 200 };
  vow_promise *gate = vow_promise_new(loop), *ps[N];
  for (int i = 0; i < N; i++) ps[i] = vow_async_ex(loop, wait_gate, gate, &copy);
  vow__async_state *st = vow__loop_ext(loop, VOW__EXT_ASYNC);
  int frames = 0;
  for (vow__frame *f = st->frames; f; f = f->next, frames++) {
    cr_assert_eq(vow__coro_is_copy(f->co), vow__coro_copy_stacks());
    if (vow__coro_copy_stacks()) cr_assert_lt(vow__coro_saved_bytes(f->co), 1024);
  }
  cr_assert_eq(frames, N);
  vow_promise_resolve(gate, vow_int(7));
  cr_assert_eq(vow_loop_run(loop), 0);
  for (int i = 0; i < N; i++) {
    cr_assert_eq(vow_as_int(vow_promise_result(ps[i])), 7);
    vow_promise_unref(ps[i]);
  }
  vow_promise_unref(gate);
}

/* Freeing the loop with copy-stack functions suspended resumes each one
 * last time (its await gives VOW_ECLOSING), as in the plain mode. */
static vow_value wait_forever(vow_loop *l, void *never) {
  (void)l;
  int rc = vow_await(vow_promise_ref(never), NULL);
  LOG(rc == VOW_ECLOSING ? "closed" : "other");
  return vow_undefined();
}

Test(copy_stack_teardown, suspended_functions_are_closed) {
  vow_loop *l;
  cr_assert_eq(vow_loop_new(&l, NULL), 0);
  log_reset();
  vow_promise *never = vow_promise_new(l);
  for (int i = 0; i < 3; i++) vow_promise_unref(vow_async_ex(l, wait_forever, never, &copy));
  vow_promise_unref(never);
  cr_assert_eq(vow_loop_run(l), 0);
  cr_assert_eq(vow_loop_free(l), 0);
  cr_assert_str_eq(LOG_TEXT(), "closed closed closed");
  TEST_LEAK_CHECK();
}

/* ---- stack overflow ------------------------------------------------------ */

static unsigned long endless(unsigned long n) {
  volatile char pad[256];
  pad[0] = (char)n;
  if (n == (unsigned long)-1) return 0; /* never: keeps -Winfinite-recursion quiet */
  unsigned long r = endless(n + 1);
  return r + (unsigned long)pad[0];
}

static vow_value runaway(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  vow_await_value(vow_null(), NULL); /* suspend once, with another function's frames saved */
  return vow_int((int64_t)endless(0));
}

/* Runs child() in a forked process with stderr captured into out; returns
 * its wait status. */
static int in_child(void (*child)(void), char *out, size_t cap) {
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    dup2(fds[1], 2);
    child();
    _exit(0);
  }
  close(fds[1]);
  size_t len = 0;
  ssize_t n;
  while (len < cap - 1 && (n = read(fds[0], out + len, cap - 1 - len)) > 0) len += (size_t)n;
  out[len] = 0;
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  return status;
}

static void overflow_child(void) {
  vow_loop *l;
  vow_loop_options o = {.stack_size = 64 * 1024}; /* the shared stack's size too */
  vow_loop_new(&l, &o);
  vow_async_options ao = {.copy_stack = 1, .name = "tiny_handler"};
  vow_promise_unref(vow_async_ex(l, wait_gate, vow_promise_new(l), &ao)); /* another one on it */
  vow_promise_unref(vow_async_ex(l, runaway, NULL, &ao));
  vow_loop_run(l);
}

/* The shared stack has a guard page: a copy-stack function that runs off it
 * is named, and the process aborts, as for any coroutine. */
Test(copy_stack_overflow, is_caught_and_names_the_function) {
#if defined(__SANITIZE_ADDRESS__)
  cr_skip_test("ASan owns SIGSEGV and reports stack overflows itself");
#endif
  char out[1024];
  int status = in_child(overflow_child, out, sizeof out);
  cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "the child aborted (status %d)", status);
  cr_assert_not_null(strstr(out, "vow: stack overflow in coroutine 'tiny_handler' (stack of "), "stderr: %s", out);
}

/* ---- out of memory ------------------------------------------------------- */

/* Every allocation of a scenario with copy-stack functions (their headers,
 * their frame buffers, what await and the nested calls need) can fail: each
 * run ends without a crash or a leak. A failure makes an await or a call
 * fail with VOW_ENOMEM, never the copying of frames (the room for them is
 * made before a function suspends or calls). */
static void worker_release(void *arg) {
  vow_promise_unref(((worker_arg *)arg)->gate);
}
static const vow_async_options owning = {.copy_stack = 1, .name = "small", .arg_free = worker_release};

static vow_value scenario(vow_loop *l, void *arg) {
  (void)arg;
  vow_promise *gate = vow_promise_new(l);
  /* Not on this function's stack: it is a copy-stack one, so its frames are
   * elsewhere while the workers run (the mode's rule, vow.h). */
  static worker_arg args[2] = {{"x", NULL, 1}, {"y", NULL, 1}};
  args[0].gate = vow_promise_ref(gate);
  args[1].gate = vow_promise_ref(gate);
  vow_promise *a = vow_async_ex(l, worker, &args[0], &owning);
  vow_promise *b = vow_async_ex(l, worker, &args[1], &owning);
  vow_promise *c = vow_async_ex(l, level, (void *)(intptr_t)3, &copy);
  vow_promise_resolve(gate, vow_undefined());
  vow_await(a, NULL);
  vow_await(b, NULL);
  vow_value v;
  vow_await(c, &v);
  vow_unref(v);
  vow_promise_unref(gate);
  return vow_string("done");
}

static void quiet(vow_loop *l, vow_promise *p, vow_value r, void *d) {
  (void)l, (void)p, (void)r, (void)d;
}

static int run_once(long n, fault_mode how) {
  fault_arm(n, how);
  vow_loop *l;
  if (vow_loop_new(&l, NULL) == 0) {
    vow_on_unhandled_rejection(l, quiet, NULL);
    vow_promise *p = vow_async_ex(l, scenario, NULL, &copy);
    vow_loop_run(l);
    if (n == 0) cr_assert_str_eq(vow_str(vow_promise_result(p)), "done");
    vow_promise_unref(p);
    cr_assert_eq(vow_loop_free(l), 0, "the loop frees after a failure at allocation %ld", n);
  }
  fault_disarm();
  cr_assert_eq(vow__pool_leaked, 0, "pooled objects leaked after a failure at allocation %ld", n);
  return 0;
}

/* The first run also teaches the reserve how deep the switch path is (its
 * evictions may grow a buffer once, coro.c): count on the second. */
Test(copy_stack_faults, every_allocation_can_fail) {
  run_once(0, FAULT_ONCE);
  run_once(0, FAULT_ONCE);
  long total = fault_allocations;
  long failed = fault_every_site(run_once, FAULT_ONCE);
  cr_assert_geq(failed + 1, total, "every allocation site was failed once (%ld of %ld)", failed, total);
  TEST_LEAK_CHECK();
}

Test(copy_stack_faults, sustained_out_of_memory_from_every_point) {
  run_once(0, FAULT_ONCE);
  run_once(0, FAULT_ONCE);
  long total = fault_allocations;
  long failed = fault_every_site(run_once, FAULT_FROM);
  cr_assert_geq(failed + 1, total, "memory ran out at every point (%ld of %ld)", failed, total);
  TEST_LEAK_CHECK();
}

/* At the coroutine layer, where nothing makes room in advance: a coroutine
 * suspended deeper than its buffer, then evicted by another one while no
 * memory is left. Its frames could go nowhere, so vow says so and aborts
 * rather than drop them. */
static int refuse;
static void *refusing_realloc(void *p, size_t size) {
  return refuse ? NULL : realloc(p, size);
}

static void deep_yield(int depth, vow_coro *co) {
  volatile char pad[512];
  pad[0] = (char)depth;
  if (depth > 0) deep_yield(depth - 1, co);
  else vow__coro_yield(co);
  (void)pad[0];
}

static void deep_body(vow_coro *co, void *arg) {
  (void)arg;
  deep_yield(4, co);
}

static void plain_body(vow_coro *co, void *arg) {
  (void)co, (void)arg;
}

static void eviction_child(void) {
  vow_stack_pool *pool = vow__stack_pool_new(0, 4, VOW_CORO_BACKEND_ASM);
  vow__stack_pool_set_allocator(pool, refusing_realloc, free);
  vow_coro *a = vow__coro_new_copy(pool, deep_body, NULL, "evicted");
  vow_coro *b = vow__coro_new_copy(pool, plain_body, NULL, "other");
  vow__coro_resume(a); /* suspends 2 KiB deep, its buffer holds 80 bytes */
  refuse = 1;
  vow__coro_resume(b); /* must copy a out first: no memory */
}

Test(copy_stack_faults, no_memory_to_save_frames_aborts_with_a_message) {
  if (!vow__coro_backend_available(VOW_CORO_BACKEND_ASM) || !vow__coro_copy_stacks())
    cr_skip_test("this build does not copy stacks");
  char out[1024];
  int status = in_child(eviction_child, out, sizeof out);
  cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "the child aborted (status %d)", status);
  cr_assert_not_null(strstr(out, "vow: out of memory saving the stack of copy-stack coroutine 'evicted' ("),
                     "stderr: %s", out);
}

/* ---- the coroutine layer ----------------------------------------------------- */

/* Two copy-stack coroutines taking turns, and one resuming the other
 * directly (both on the shared stack: the copier moves the frames). */
static void counter_body(vow_coro *co, void *arg) {
  int *out = arg;
  int local[100];
  for (int i = 0; i < 100; i++) local[i] = i;
  for (int round = 0; round < 5; round++) {
    int sum = 0;
    for (int i = 0; i < 100; i++) sum += local[i];
    out[round] = sum + round;
    vow__coro_yield(co);
  }
}

typedef struct {
  vow_coro *inner;
  int log[8];
  int n;
} nest_arg;

static void outer_body(vow_coro *co, void *argp) {
  nest_arg *arg = argp;
  volatile int mine = 42;
  while (!vow__coro_done(arg->inner)) {
    vow__coro_resume(arg->inner); /* shared stack to shared stack */
    arg->log[arg->n++] = mine;
    vow__coro_yield(co);
  }
}

static void check_layer(vow_coro_backend backend) {
  vow_stack_pool *pool = vow__stack_pool_new(0, 4, backend);
  cr_assert_not_null(pool);
  int a_out[5] = {0}, b_out[5] = {0};
  vow_coro *a = vow__coro_new_copy(pool, counter_body, a_out, "a");
  vow_coro *b = vow__coro_new_copy(pool, counter_body, b_out, "b");
  while (!vow__coro_done(a) || !vow__coro_done(b)) {
    if (!vow__coro_done(a)) vow__coro_resume(a);
    if (!vow__coro_done(b)) vow__coro_resume(b);
  }
  for (int r = 0; r < 5; r++) {
    cr_assert_eq(a_out[r], 4950 + r);
    cr_assert_eq(b_out[r], 4950 + r);
  }
  vow__coro_free(a);
  vow__coro_free(b);

  int c_out[5] = {0};
  nest_arg arg = {.n = 0};
  arg.inner = vow__coro_new_copy(pool, counter_body, c_out, "inner");
  vow_coro *outer = vow__coro_new_copy(pool, outer_body, &arg, "outer");
  while (!vow__coro_done(outer)) vow__coro_resume(outer);
  cr_assert_eq(arg.n, 6); /* five yields and the return */
  for (int i = 0; i < arg.n; i++) cr_assert_eq(arg.log[i], 42);
  for (int r = 0; r < 5; r++) cr_assert_eq(c_out[r], 4950 + r);
  vow__coro_free(outer);
  vow__coro_free(arg.inner);
  cr_assert_eq(vow__stack_pool_live(pool), vow__coro_copy_stacks() && backend == VOW_CORO_BACKEND_ASM ? 2 : 0,
               "only the shared stack and the copier's are out");
  vow__stack_pool_free(pool);
}

Test(copy_coro, frames_survive_turns_and_nesting_asm) {
  if (!vow__coro_backend_available(VOW_CORO_BACKEND_ASM)) cr_skip_test("no asm back-end");
  check_layer(VOW_CORO_BACKEND_ASM);
}

/* The ucontext back-end has no copy stacks: the same program on plain 16 KiB
 * stacks gives the same results. */
Test(copy_coro, frames_survive_turns_and_nesting_ucontext) {
  if (!vow__coro_backend_available(VOW_CORO_BACKEND_UCONTEXT)) cr_skip_test("no ucontext back-end");
  check_layer(VOW_CORO_BACKEND_UCONTEXT);
}
