/*
 * test_dump.c — task dumps with backtraces (vow_loop_dump_ex,
 * VOW_DUMP_BACKTRACE; vow.h section 16).
 *
 * A dump with backtraces resumes each suspended coroutine for an instant so
 * that it unwinds its own stack. These tests check that the backtrace names
 * the function that awaits (this file is linked with -rdynamic, and the
 * functions to be named are not static), that every kind of suspension
 * point answers (a plain await, an await inside a cancel scope, a
 * generator's yield), that frames which cannot be unwound say why, and that
 * the program goes on exactly as without the dump: Node's order.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "log.h"
#include "vow.h"

static vow_loop *loop;

static void setup(void) {
  log_reset();
  cr_assert_eq(vow_loop_new(&loop, NULL), 0);
}
static void teardown(void) {
  vow_loop_free(loop);
}
#define END()             \
  do {                    \
    vow_loop_free(loop);  \
    loop = NULL;          \
    TEST_LEAK_CHECK();    \
  } while (0)
TestSuite(dump, .init = setup, .fini = teardown);

static char *dumped(unsigned flags) {
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  cr_assert_geq(vow_loop_dump_ex(loop, f, flags), 0);
  fclose(f);
  return text;
}

/* The dump's section for the function named name: from its line to the
 * next function's line (or the end). A new string. */
static char *section(const char *text, const char *name) {
  char head[64];
  snprintf(head, sizeof head, "'%s', age", name);
  const char *from = strstr(text, head);
  cr_assert(from, "no '%s' in:\n%s", name, text);
  const char *to = strstr(from + 1, "\n  async");
  size_t n = to ? (size_t)(to - from) : strlen(from);
  return strndup(from, n);
}

/* Not static, not inlined: the backtraces must name them. */
int dump_test_plain_await(vow_promise *p, vow_value *v);
int dump_test_scoped_await(vow_promise *p, vow_value *v);
int dump_test_yield(void);

__attribute__((noinline)) int dump_test_plain_await(vow_promise *p, vow_value *v) {
  int rc = vow_await(vow_promise_ref(p), v);
  __asm__ volatile("" ::: "memory"); /* no tail call: this frame stays */
  return rc;
}

__attribute__((noinline)) int dump_test_scoped_await(vow_promise *p, vow_value *v) {
  vow_scope *s;
  cr_assert_eq(vow_scope_begin(vow_promise_loop(p), NULL, &s), 0);
  int rc = vow_await(vow_promise_ref(p), v);
  cr_assert_eq(vow_scope_end(s, NULL), 0);
  return rc;
}

__attribute__((noinline)) int dump_test_yield(void) {
  vow_value sent;
  int rc = vow_yield(vow_int(1), &sent);
  vow_unref(sent);
  __asm__ volatile("" ::: "memory");
  return rc;
}

static vow_value plain(vow_loop *l, void *arg) {
  (void)l;
  LOG("plain:start");
  vow_value v;
  cr_assert_eq(dump_test_plain_await(arg, &v), 0);
  LOG("plain:got %lld", (long long)vow_as_int(v));
  return v;
}

static vow_value scoped(vow_loop *l, void *arg) {
  (void)l;
  LOG("scoped:start");
  vow_value v;
  cr_assert_eq(dump_test_scoped_await(arg, &v), 0);
  LOG("scoped:got %lld", (long long)vow_as_int(v));
  return v;
}

static vow_value gen_body(vow_loop *l, vow_asyncgen *g, void *arg) {
  (void)l, (void)g, (void)arg;
  LOG("gen:start");
  cr_assert_eq(dump_test_yield(), 0);
  LOG("gen:after");
  return vow_undefined();
}

static vow_value log_then(vow_loop *l, vow_value v, void *ctx) {
  (void)l, (void)ctx;
  LOG("then");
  return v;
}

static char *g_text; /* the dump main took */

static vow_value dump_main(vow_loop *l, void *arg) {
  vow_promise *never = arg;
  vow_promise *w1 = vow_async_ex(l, plain, never, &(vow_async_options){.name = "plain"});
  vow_promise *w2 = vow_async_ex(l, scoped, never, &(vow_async_options){.name = "scoped"});
  vow_asyncgen *g = vow_asyncgen_new_ex(l, gen_body, NULL, &(vow_async_options){.name = "gen"});
  cr_assert_eq(vow_await(vow_asyncgen_next(g, vow_undefined()), NULL), 0);
  LOG("main:dump");
  g_text = dumped(VOW_DUMP_BACKTRACE);
  vow_promise_resolve(never, vow_int(7));
  vow_promise *done = vow_resolved(l, vow_undefined());
  vow_promise_unref(vow_then(done, log_then, NULL, NULL));
  vow_promise_unref(done);
  LOG("main:resolved");
  cr_assert_eq(vow_await(w1, NULL), 0);
  cr_assert_eq(vow_await(w2, NULL), 0);
  LOG("main:waited");
  cr_assert_eq(vow_await(vow_asyncgen_next(g, vow_undefined()), NULL), 0);
  vow_asyncgen_unref(g);
  LOG("main:end");
  return vow_undefined();
}

/* The JavaScript (node 20):
 *   let resolve; const never = new Promise(r => resolve = r);
 *   async function waiter(name) { console.log(name + ':start');
 *     const v = await never; console.log(name + ':got', v); return v; }
 *   async function* gen() { console.log('gen:start'); yield 1; console.log('gen:after'); }
 *   async function main() {
 *     const w1 = waiter('plain'), w2 = waiter('scoped'); const g = gen();
 *     await g.next();
 *     console.log('main:dump');          // the dump with backtraces
 *     resolve(7); Promise.resolve().then(() => console.log('then'));
 *     console.log('main:resolved');
 *     await w1; await w2; console.log('main:waited');
 *     await g.next(); console.log('main:end');
 *   }
 *   main();
 * printed: plain:start scoped:start gen:start main:dump main:resolved
 *          plain:got 7 scoped:got 7 then main:waited gen:after main:end */
Test(dump, backtraces_name_the_suspension_points_and_change_nothing) {
  vow_promise *never = vow_promise_new(loop);
  vow_promise *p = vow_async_ex(loop, dump_main, never, &(vow_async_options){.name = "main"});
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED);
  vow_promise_unref(p);
  vow_promise_unref(never);
  cr_assert_str_eq(g_log.text, "plain:start scoped:start gen:start main:dump main:resolved "
                               "plain:got 7 scoped:got 7 then main:waited gen:after main:end");
  char *text = g_text;
  cr_assert(strstr(text, "4 async functions alive\n"), "%s", text);
  char *s = section(text, "main");
  cr_assert(strstr(s, "running (it called the dump)\n      (no backtrace: it is running or has not started)"),
            "%s", s);
  free(s);
  s = section(text, "plain");
  cr_assert(strstr(s, ": awaiting a pending promise\n      #0 0x"), "%s", s);
  cr_assert(strstr(s, " dump_test_plain_await+0x"), "%s", s);
  free(s);
  s = section(text, "scoped");
  cr_assert(strstr(s, " dump_test_scoped_await+0x"), "%s", s);
  free(s);
  s = section(text, "gen");
  cr_assert(strstr(s, "suspended at a yield"), "%s", s);
  cr_assert(strstr(s, " dump_test_yield+0x"), "%s", s);
  free(s);
  free(text);
  END();
}

/* The same dump from outside any async function (a then handler on a
 * timer): every suspended function has its backtrace,
 * twice in a row (the frames went back to being suspended). */
static vow_value dump_twice(vow_loop *l, vow_value v, void *never) {
  (void)l;
  for (int i = 0; i < 2; i++) {
    char *text = dumped(VOW_DUMP_BACKTRACE);
    char *s = section(text, "plain");
    cr_assert(strstr(s, " dump_test_plain_await+0x"), "%s", s);
    free(s);
    free(text);
  }
  vow_promise_resolve(never, vow_int(3));
  return v;
}

Test(dump, backtraces_from_outside_any_function) {
  vow_promise *never = vow_promise_new(loop);
  vow_promise *p = vow_async_ex(loop, plain, never, &(vow_async_options){.name = "plain"});
  vow_promise *timer = vow_delay(loop, 1, vow_undefined());
  vow_promise_unref(vow_then(timer, dump_twice, NULL, never));
  vow_promise_unref(timer);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED);
  cr_assert_eq(vow_as_int(vow_promise_result(p)), 3);
  cr_assert_str_eq(g_log.text, "plain:start plain:got 3");
  vow_promise_unref(p);
  vow_promise_unref(never);
  END();
}

/* A copy-stack function is not resumed for its backtrace (where the build
 * really copies stacks; elsewhere it is a plain coroutine and has one). */
static vow_value copy_main(vow_loop *l, void *arg) {
  (void)l;
  vow_value v;
  dump_test_plain_await(arg, &v);
  return v;
}

static vow_value dump_copy(vow_loop *l, vow_value v, void *never) {
  (void)l;
  char *text = dumped(VOW_DUMP_BACKTRACE);
  char *s = section(text, "copier");
  cr_assert(strstr(s, "(no backtrace: a copy-stack coroutine: its frames may be off the stack)\n") ||
                strstr(s, " dump_test_plain_await+0x"),
            "%s", s);
  free(s);
  free(text);
  vow_promise_resolve(never, vow_int(1));
  return v;
}

Test(dump, copy_stack_functions_are_skipped_with_a_note) {
  vow_promise *never = vow_promise_new(loop);
  vow_promise *p = vow_async_ex(loop, copy_main, never, &(vow_async_options){.name = "copier", .copy_stack = 1});
  vow_promise *timer = vow_delay(loop, 1, vow_undefined());
  vow_promise_unref(vow_then(timer, dump_copy, NULL, never));
  vow_promise_unref(timer);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED);
  vow_promise_unref(p);
  vow_promise_unref(never);
  END();
}

Test(dump, bad_arguments) {
  cr_assert_eq(vow_loop_dump_ex(loop, stdout, 0x80), VOW_EINVAL);
  cr_assert_eq(vow_loop_dump_ex(NULL, stdout, VOW_DUMP_BACKTRACE), VOW_EINVAL);
  cr_assert_eq(vow_loop_dump_ex(loop, NULL, VOW_DUMP_BACKTRACE), VOW_EINVAL);
  char *text = dumped(VOW_DUMP_BACKTRACE); /* nothing alive: just the count */
  cr_assert(strstr(text, ": 0 async functions alive\n"), "%s", text);
  free(text);
  END();
}

/* VOW_DUMP_ON=SIGUSR1,backtrace: the signal's dump has the backtraces. */
static void signalled(uv_signal_t *h, int signum) {
  (void)signum;
  uv_close((uv_handle_t *)h, NULL);
  vow_promise_resolve(h->data, vow_int(2));
  vow_loop_release(loop);
}

Test(dump, dump_on_signal_with_backtraces) {
  vow_loop_free(loop); /* this test makes its own, with the environment set */
  setenv("VOW_DUMP_ON", "SIGUSR1,backtrace", 1);
  cr_assert_eq(vow_loop_new(&loop, NULL), 0);
  char path[] = "/tmp/vow-dump-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  int saved = dup(2);
  dup2(fd, 2);
  vow_promise *never = vow_promise_new(loop);
  vow_promise *p = vow_async_ex(loop, plain, never, &(vow_async_options){.name = "sleeper"});
  static uv_signal_t mine; /* ends the run after the dump's watcher ran (same batch) */
  uv_signal_init(vow_loop_uv(loop), &mine);
  mine.data = never;
  uv_signal_start(&mine, signalled, SIGUSR1);
  vow_loop_hold(loop);
  raise(SIGUSR1);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED);
  vow_promise_unref(p);
  vow_promise_unref(never);
  vow_loop_free(loop);
  loop = NULL;
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  FILE *f = fdopen(fd, "r");
  rewind(f);
  char text[8192] = {0};
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  unlink(path);
  unsetenv("VOW_DUMP_ON");
  cr_assert_gt(n, 0);
  char *s = section(text, "sleeper");
  cr_assert(strstr(s, " dump_test_plain_await+0x"), "%s", s);
  free(s);
  cr_assert_str_eq(g_log.text, "plain:start plain:got 2");
  TEST_LEAK_CHECK();
}

/* ---- VOW_DUMP_ON=exit: the promises still pending at the loop's end ---------------- */

/* Runs body with stderr going to a file and VOW_DUMP_ON=spec, on a fresh
 * loop that body frees; returns what was written (a new string). */
static char *stderr_of(const char *spec, void (*body)(void)) {
  vow_loop_free(loop);
  setenv("VOW_DUMP_ON", spec, 1);
  cr_assert_eq(vow_loop_new(&loop, NULL), 0);
  char path[] = "/tmp/vow-dump-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  body();
  loop = NULL;
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  unsetenv("VOW_DUMP_ON");
  FILE *f = fdopen(fd, "r");
  rewind(f);
  char *text = calloc(1, 8192);
  fread(text, 1, 8191, f);
  fclose(f);
  unlink(path);
  return text;
}

static char g_expect[3][128];

static vow_value sleeper(vow_loop *l, void *p) {
  (void)l;
  vow_value v;
  int rc = vow_await(vow_promise_ref(p), &v); /* VOW_ECLOSING, at the loop's end */
  vow_unref(v);
  return vow_int(rc);
}

static void leave_three_pending(void) {
  vow_promise *never = vow_promise_new(loop);
  vow_promise *settled = vow_resolved(loop, vow_int(1)); /* never listed */
  vow_promise *gone = vow_promise_new(loop);              /* listed, then settled */
  vow_promise_resolve(gone, vow_int(2));
  vow_promise *p = vow_async_ex(loop, sleeper, never, &(vow_async_options){.name = "sleeper"});
  /* Still there when vow_loop_free begins, which is when the report is made. */
  vow_promise *timer = vow_delay(loop, 3600 * 1000, vow_undefined());
  snprintf(g_expect[0], sizeof g_expect[0], "  promise %p: a pending promise, awaited by async 'sleeper'\n",
           (void *)never);
  snprintf(g_expect[1], sizeof g_expect[1], "  promise %p: a pending promise\n", (void *)p);
  snprintf(g_expect[2], sizeof g_expect[2], "  promise %p: a timer (vow_delay)\n", (void *)timer);
  /* The loop does not run (it would wait for the timer). Only the frame
   * holds never and p now. */
  vow_promise_unref(never);
  vow_promise_unref(settled);
  vow_promise_unref(gone);
  vow_promise_unref(p);
  vow_promise_unref(timer);
  vow_loop_free(loop);
}

Test(dump, exit_reports_the_promises_still_pending) {
  char *text = stderr_of("exit", leave_three_pending);
  const char *head = strstr(text, "vow: the loop is being freed with 3 promises still pending:\n");
  cr_assert(head, "%s", text);
  for (int i = 0; i < 3; i++) cr_assert(strstr(head, g_expect[i]), "no '%s' in:\n%s", g_expect[i], text);
  cr_assert(strstr(text, "with async functions still suspended:\n"), "%s", text);
  free(text);
  TEST_LEAK_CHECK();
}

/* Without "exit", nothing is listed or reported. */
Test(dump, no_report_unless_asked) {
  char *text = stderr_of("SIGUSR2", leave_three_pending);
  cr_assert_eq(strstr(text, "still pending"), NULL, "%s", text);
  free(text);
  TEST_LEAK_CHECK();
}
