/*
 * test_signal.c — signals as promises, AbortSignals and listeners, with real
 * signals: sent by kill() to ourselves, and by a child process (kill $PPID).
 *
 * The JavaScript mirrored:
 *   const ac = new AbortController();
 *   process.once('SIGINT', () => ac.abort());   // Ctrl-C aborts everything
 *   process.on('SIGUSR2', () => n++);            // a listener, every time
 * Node, like vow, gives the signal back its default action when the last
 * listener goes.
 */
#define _DEFAULT_SOURCE
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "children.h"
#include "log.h"
#include "vow.h"

LOOP_SUITE(signal, NULL);

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static int is_default(int signum) {
  struct sigaction sa;
  sigaction(signum, NULL, &sa);
  return sa.sa_handler == SIG_DFL;
}

static void send_signal(vow_loop *l, void *arg) {
  (void)l;
  kill(getpid(), (int)(intptr_t)arg);
}

/* Releases the loop's hold when the promise settles: the hold stands for
 * "the program has other work" while a signal is awaited. */
static vow_value release(vow_loop *l, vow_value v, void *ctx) {
  (void)v, (void)ctx;
  vow_loop_release(l);
  return vow_undefined();
}

LOOP_TEST(signal, promise_fulfils_with_the_signal_number) {
  vow_promise *p = vow_signal_promise(loop, SIGUSR1);
  cr_assert(!is_default(SIGUSR1), "watched: the default action is off");
  vow_loop_hold(loop);
  vow_promise_unref(vow_then(p, release, release, NULL));
  vow_set_timeout(loop, 1, send_signal, (void *)(intptr_t)SIGUSR1);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED);
  cr_assert_eq(vow_as_int(vow_promise_result(p)), SIGUSR1);
  cr_assert(is_default(SIGUSR1), "once fired, the default action is back");
  vow_promise_unref(p);
}

static void never(vow_loop *l, int signum, void *data) {
  (void)l, (void)signum, (void)data;
  cr_assert_fail("no SIGHUP was sent");
}

LOOP_TEST(signal, watchers_keep_no_reference_on_the_loop) {
  vow_promise *p = vow_signal_promise(loop, SIGINT);
  vow_abort_signal *s = vow_signal_abort(loop, (int[]){SIGINT, SIGTERM}, 2);
  int64_t id = vow_signal_on(loop, SIGHUP, never, NULL);
  cr_assert_gt(id, 0);
  cr_assert_eq(vow_loop_run(loop), 0, "the run returns at once");
  cr_assert_eq(vow_promise_state(p), VOW_PENDING);
  cr_assert(!vow_abort_signal_aborted(s));
  vow_promise_unref(p);
  vow_abort_signal_unref(s);
  /* Freed with the watches in place: the teardown ends them. */
}

static vow_value sleeper(vow_loop *l, void *arg) {
  vow_abort_signal *stop = arg;
  vow_exec_options o = {.signal = stop};
  vow_value r;
  int err = vow_await(vow_exec(l, ARGV("sleep", "10"), &o), &r);
  LOG("exec:%s", err ? vow_error_message(r) : "finished");
  vow_unref(r);
  vow_spawn_options so = {.argv = ARGV("sleep", "10"), .signal = stop};
  vow_process *p;
  LOG("spawn-after:%s", vow_err_name(vow_process_spawn(l, &so, &p)));
  return vow_undefined();
}

LOOP_TEST(signal, ctrl_c_aborts_everything) {
  vow_abort_signal *stop = vow_signal_abort(loop, (int[]){SIGINT, SIGTERM}, 2);
  cr_assert_not_null(stop);
  vow_promise *work = vow_async(loop, sleeper, stop);
  vow_set_timeout(loop, 5, send_signal, (void *)(intptr_t)SIGINT);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert(vow_abort_signal_aborted(stop));
  vow_value reason = vow_abort_signal_reason(stop);
  cr_assert_eq(vow_error_code(reason), VOW_EABORTED);
  cr_assert_str_eq(vow_error_message(reason), "interrupted by SIGINT");
  cr_assert_str_eq(LOG_TEXT(), "exec:interrupted by SIGINT spawn-after:VOW_EABORTED");
  cr_assert(is_default(SIGINT) && is_default(SIGTERM), "both watches ended");
  vow_promise_unref(work);
  vow_abort_signal_unref(stop);
  ASSERT_NO_CHILDREN();
}

LOOP_TEST(signal, a_signal_from_a_child_process) {
  vow_promise *p = vow_signal_promise(loop, SIGTERM);
  vow_promise *x = vow_exec(loop, ARGV("/bin/sh", "-c", "kill -TERM $PPID"), NULL);
  vow_loop_hold(loop);
  vow_promise_unref(vow_then(p, release, release, NULL));
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(x), VOW_FULFILLED);
  cr_assert_eq(vow_as_int(vow_promise_result(p)), SIGTERM);
  vow_promise_unref(p), vow_promise_unref(x);
  ASSERT_NO_CHILDREN();
}

static void count(vow_loop *l, int signum, void *data) {
  int *n = data;
  LOG("got%d", signum == SIGUSR2 ? ++*n : -1);
  if (*n < 3) vow_set_timeout(l, 1, send_signal, (void *)(intptr_t)SIGUSR2);
  else vow_loop_release(l);
}

LOOP_TEST(signal, a_listener_runs_every_time) {
  int n = 0;
  int64_t id = vow_signal_on(loop, SIGUSR2, count, &n);
  cr_assert_gt(id, 0);
  vow_loop_hold(loop);
  vow_set_timeout(loop, 1, send_signal, (void *)(intptr_t)SIGUSR2);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(LOG_TEXT(), "got1 got2 got3");
  cr_assert(!is_default(SIGUSR2));
  cr_assert_eq(vow_signal_off(loop, id), 1);
  cr_assert_eq(vow_signal_off(loop, id), 0, "removed once");
  cr_assert(is_default(SIGUSR2));
}

typedef struct self_off {
  int64_t id;
  int runs;
} self_off;

static void off_myself(vow_loop *l, int signum, void *data) {
  (void)signum;
  self_off *s = data;
  s->runs++;
  cr_assert_eq(vow_signal_off(l, s->id), 1);
  vow_loop_release(l);
}

LOOP_TEST(signal, a_listener_can_remove_itself) {
  self_off s = {0, 0};
  s.id = vow_signal_on(loop, SIGUSR1, off_myself, &s);
  vow_loop_hold(loop);
  vow_set_timeout(loop, 1, send_signal, (void *)(intptr_t)SIGUSR1);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(s.runs, 1);
  cr_assert(is_default(SIGUSR1));
}

LOOP_TEST(signal, aborting_elsewhere_ends_the_watch) {
  vow_abort_signal *s = vow_signal_abort(loop, (int[]){SIGINT}, 1);
  cr_assert(!is_default(SIGINT));
  vow_abort(s, vow_undefined());
  cr_assert(is_default(SIGINT), "Ctrl-C does what it did before");
  cr_assert_eq(vow_error_code(vow_abort_signal_reason(s)), VOW_EABORTED);
  vow_abort_signal_unref(s);
}

static vow_value release_nothing(vow_loop *l, vow_value v, void *ctx) {
  (void)l, (void)v, (void)ctx;
  return vow_undefined();
}

LOOP_TEST(signal, bad_signals_are_refused) {
  vow_promise *p = vow_signal_promise(loop, SIGKILL);
  cr_assert_eq(vow_promise_state(p), VOW_REJECTED);
  cr_assert_eq(vow_error_code(vow_promise_result(p)), VOW_EINVAL);
  cr_assert_str_eq(vow_error_message(vow_promise_result(p)), "signal: SIGKILL cannot be watched");
  vow_promise_unref(vow_catch(p, release_nothing, NULL));
  vow_promise_unref(p);
  p = vow_signal_promise(loop, 0);
  cr_assert_str_eq(vow_error_message(vow_promise_result(p)), "signal: signal 0 cannot be watched");
  vow_promise_unref(vow_catch(p, release_nothing, NULL));
  vow_promise_unref(p);
  cr_assert_eq(vow_signal_on(loop, SIGSTOP, count, NULL), VOW_EINVAL);
  cr_assert_eq(vow_signal_on(loop, 999, count, NULL), VOW_EINVAL);
  cr_assert_eq(vow_signal_on(loop, SIGINT, NULL, NULL), VOW_EINVAL);
  cr_assert_eq(vow_signal_on(NULL, SIGINT, count, NULL), VOW_EINVAL);
  cr_assert_null(vow_signal_abort(loop, (int[]){SIGINT}, 0));
  cr_assert_null(vow_signal_abort(loop, NULL, 1));
  cr_assert_null(vow_signal_abort(loop, (int[]){SIGINT, SIGKILL}, 2));
  cr_assert(is_default(SIGINT), "nothing was left watching");
  cr_assert_eq(vow_signal_off(loop, 12345), 0);
  cr_assert_eq(vow_loop_run(loop), 0);
}
