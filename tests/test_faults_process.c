/*
 * test_faults_process.c — allocation failure at every allocation site of the
 * processes and signals: spawn, exec (its job, its growing output buffers,
 * its result and its errors, its timer), the exit promise, the AbortSignal
 * listener, the signal watches of all three kinds and the loop's I/O state.
 *
 * The scenario runs again and again with the 1st allocation failing, then
 * the 2nd... (FAULT_ONCE), and with every allocation from the nth on failing
 * (FAULT_FROM). Every run must end without a crash, a hang or a leak, and
 * leave no child behind, running or zombie.
 */
#define _DEFAULT_SOURCE
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "children.h"
#include "faults.h"
#include "log.h"
#include "vow.h"

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static int heard;

static void on_usr1(vow_loop *l, int signum, void *data) {
  (void)l, (void)data;
  if (signum == SIGUSR1) heard++;
}

static void await_exec(vow_loop *loop, const char *const *argv, const vow_exec_options *o) {
  vow_value v;
  vow_await(vow_exec(loop, argv, o), &v);
  vow_unref(v);
}

/* A script with no #! line, which spawn runs under /bin/sh (its own allocation). */
static char script[64];

static void make_script(void) {
  snprintf(script, sizeof script, "/tmp/vow-faults-noshebang-%ld", (long)getpid());
  FILE *f = fopen(script, "w");
  cr_assert_not_null(f);
  fputs("echo ran\n", f);
  fclose(f);
  cr_assert_eq(chmod(script, 0755), 0);
}

static void remove_script(void) { unlink(script); }

TestSuite(faults_process, .init = make_script, .fini = remove_script);

static vow_value scenario(vow_loop *loop, void *arg) {
  (void)arg;
  vow_value v;
  /* exec: output collected, a failure exit, a missing program, the limits */
  await_exec(loop, ARGV("/bin/sh", "-c", "echo hi; echo err >&2; head -c 10000 /dev/zero"), NULL);
  await_exec(loop, ARGV("/bin/sh", "-c", "exit 2"), NULL);
  await_exec(loop, ARGV("vow-no-such-program"), NULL);
  await_exec(loop, ARGV(script), NULL); /* under /bin/sh */
  await_exec(loop, ARGV(""), NULL); /* VOW_EINVAL */
  vow_await(vow_signal_promise(loop, SIGKILL), &v), vow_unref(v); /* cannot be watched */
  vow_exec_options small = {.max_output = 100};
  await_exec(loop, ARGV("yes"), &small);
  vow_exec_options quick = {.timeout_ms = 1};
  await_exec(loop, ARGV("sleep", "10"), &quick);
  /* spawn and its exit */
  vow_process *p;
  vow_spawn_options o = {.argv = ARGV("/bin/true")};
  if (vow_process_spawn(loop, &o, &p) == 0) {
    vow_await(vow_process_exit(p), &v), vow_unref(v);
    vow_process_unref(p);
  }
  /* pipes: cat echoes what its stdin gets */
  vow_spawn_options co = {.argv = ARGV("cat"), .stdio = {VOW_STDIO_PIPE, VOW_STDIO_PIPE, VOW_STDIO_PIPE}};
  if (vow_process_spawn(loop, &co, &p) == 0) {
    int err = vow_await(vow_stream_write(vow_process_stdin(p), "meow\n", 5), &v);
    vow_unref(v);
    if (err == 0) err = vow_await(vow_stream_end(vow_process_stdin(p)), &v), vow_unref(v);
    if (err) vow_process_kill(p, SIGTERM); /* cat would wait for the end of its input forever */
    vow_for_await it;
    if (vow_for_await_gen(&it, vow_stream_chunks(vow_process_stdout(p))) == 0) {
      VOW_FOR_AWAIT(&it, chunk) (void)chunk;
      vow_for_await_end(&it, NULL);
    }
    vow_await(vow_process_exit(p), &v), vow_unref(v);
    vow_process_unref(p);
  }
  /* signals: one SIGUSR1 reaches a promise, a listener and an AbortSignal,
   * which kills the sleeper it was given */
  vow_promise *sp = vow_signal_promise(loop, SIGUSR1);
  int64_t id = vow_signal_on(loop, SIGUSR1, on_usr1, NULL);
  vow_abort_signal *stop = vow_signal_abort(loop, (int[]){SIGUSR1}, 1);
  vow_process *sleeper = NULL;
  vow_spawn_options so = {.argv = ARGV("sleep", "10"), .signal = stop};
  if (stop && vow_process_spawn(loop, &so, &sleeper) != 0) sleeper = NULL;
  if (sp && vow_promise_state(sp) == VOW_PENDING) { /* watched: the signal cannot kill us */
    vow_loop_hold(loop);
    kill(getpid(), SIGUSR1);
    vow_await(vow_promise_ref(sp), &v), vow_unref(v);
    vow_loop_release(loop);
  }
  if (sleeper) {
    if (!vow_abort_signal_aborted(stop)) vow_abort(stop, vow_undefined()); /* its watch failed */
    vow_await(vow_process_exit(sleeper), &v), vow_unref(v);
    vow_process_unref(sleeper);
  }
  if (id > 0) vow_signal_off(loop, id);
  vow_promise_unref(sp);
  vow_abort_signal_unref(stop);
  return vow_string("done");
}

static void quiet(vow_loop *l, vow_promise *p, vow_value r, void *d) {
  (void)l, (void)p, (void)r, (void)d;
}

static int run_once(long n, fault_mode how) {
  heard = 0;
  fault_arm(n, how);
  vow_loop *loop;
  if (vow_loop_new(&loop, NULL) == 0) {
    vow_on_unhandled_rejection(loop, quiet, NULL);
    vow_promise *p = vow_async(loop, scenario, NULL);
    vow_loop_run(loop);
    if (n == 0) {
      cr_assert_str_eq(vow_str(vow_promise_result(p)), "done");
      cr_assert_eq(heard, 1, "the listener heard the signal once");
    }
    vow_promise_unref(p);
    cr_assert_eq(vow_loop_free(loop), 0, "the loop frees after a failure at allocation %ld", n);
  }
  fault_disarm();
  cr_assert_eq(vow__pool_leaked, 0, "pooled objects leaked after a failure at allocation %ld", n);
  ASSERT_NO_CHILDREN();
  return 0;
}

Test(faults_process, every_allocation_can_fail) {
  run_once(0, FAULT_ONCE);
  long total = fault_allocations;
  cr_assert_gt(total, 30, "the scenario makes allocations (%ld)", total);
  long failed = fault_every_site(run_once, FAULT_ONCE);
  fprintf(stderr, "faults_process: %ld allocations, %ld runs failed one\n", total, failed);
  cr_assert_geq(failed + 1, total, "every allocation site was failed once (%ld of %ld)", failed, total);
  TEST_LEAK_CHECK();
}

Test(faults_process, sustained_out_of_memory_from_every_point) {
  run_once(0, FAULT_ONCE);
  long total = fault_allocations;
  long failed = fault_every_site(run_once, FAULT_FROM);
  cr_assert_geq(failed + 1, total, "memory ran out at every point (%ld of %ld)", failed, total);
  TEST_LEAK_CHECK();
}
