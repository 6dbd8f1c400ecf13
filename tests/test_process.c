/*
 * test_process.c — child processes: real children (/bin/sh, cat, yes | head,
 * sleep), real signals, and after every test the check that no child is left,
 * running or zombie (children.h reads /proc and asks waitpid(-1, WNOHANG)).
 *
 * The JavaScript these mirror is Node's child_process; what node 20 printed
 * for the same programs is quoted where a test follows it:
 *
 *   execFile('/bin/sh', ['-c', 'echo partial; exit 3'], (err, stdout) => ...)
 *     exit3: 3 null "partial\n"                      (err.code, err.signal)
 *   execFile('vow-no-such-program', [], ...)  missing: ENOENT spawn vow-no-such-program ENOENT
 *   execFile('yes', [], { maxBuffer: 1000 })  maxBuffer: ERR_CHILD_PROCESS_STDIO_MAXBUFFER 1000
 *   execFile('sleep', ['10'], { timeout: 50 })       timeout: true SIGTERM
 *   spawn('sleep', ['10']).kill() -> 'exit'          kill: null SIGTERM
 *   execFile('/bin/sh', ['-c', 'kill -KILL $$'])     killed: null SIGKILL
 *   execFile('sleep', ['10'], { signal }); abort()   abort: AbortError ABORT_ERR
 */
#define _DEFAULT_SOURCE /* usleep, setenv */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "children.h"
#include "log.h"
#include "vow.h"

LOOP_SUITE(process, NULL);

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Runs the loop until nothing is left and returns p's outcome (borrowed;
 * p stays the caller's). */
static void quiet(vow_loop *l, vow_promise *p, vow_value r, void *d) {
  (void)l, (void)p, (void)r, (void)d;
}

static vow_value settle(vow_promise *p) {
  cr_assert_not_null(p);
  vow_on_unhandled_rejection(loop, quiet, NULL); /* the rejections are the tests' to read */
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_neq(vow_promise_state(p), VOW_PENDING, "the promise settled");
  return vow_promise_result(p);
}

static void expect_rejection(vow_promise *p, int code, const char *message) {
  vow_value r = settle(p);
  cr_assert_eq(vow_promise_state(p), VOW_REJECTED);
  cr_assert_eq(vow_error_code(r), code, "code %s, expected %s", vow_err_name(vow_error_code(r)),
               vow_err_name(code));
  if (message) cr_assert_str_eq(vow_error_message(r), message);
}

/* ---- exec -------------------------------------------------------------------- */

LOOP_TEST(process, exec_collects_stdout_and_stderr) {
  vow_promise *p = vow_exec(loop, ARGV("/bin/sh", "-c", "echo hello; echo oops >&2"), NULL);
  vow_value r = settle(p);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED);
  cr_assert_str_eq(vow_str(vow_exec_stdout(r)), "hello\n");
  cr_assert_str_eq(vow_str(vow_exec_stderr(r)), "oops\n");
  cr_assert_eq(vow_exit_code(r), 0);
  cr_assert_eq(vow_exit_signal(r), 0);
  vow_promise_unref(p);
  ASSERT_NO_CHILDREN();
}

/* A script without a #! line runs under /bin/sh, as execvp (and so libuv
 * and Node) runs it; $0 is its path, found directly or along PATH:
 *   execFile('/tmp/d/noshebang', ['a1'])  -> "sh: /tmp/d/noshebang a1\n"
 *   execFile('noshebang', ['a2'], { env: { PATH: '/tmp/d' } })  -> "sh: /tmp/d/noshebang a2\n" */
LOOP_TEST(process, a_script_without_a_shebang_runs_under_sh) {
  char dir[] = "/tmp/vow-noshebang-XXXXXX", script[64], path_env[64], want[128];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(script, sizeof script, "%s/noshebang", dir);
  FILE *f = fopen(script, "w");
  cr_assert_not_null(f);
  fputs("echo \"sh: $0 $1\"\n", f);
  fclose(f);
  cr_assert_eq(chmod(script, 0755), 0);
  vow_promise *p = vow_exec(loop, ARGV(script, "a1"), NULL);
  vow_value r = settle(p);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED, "%s", vow_error_message(r));
  snprintf(want, sizeof want, "sh: %s a1\n", script);
  cr_assert_str_eq(vow_str(vow_exec_stdout(r)), want);
  vow_promise_unref(p);
  snprintf(path_env, sizeof path_env, "PATH=%s", dir);
  vow_exec_options o = {.env = ARGV(path_env)};
  p = vow_exec(loop, ARGV("noshebang", "a2"), &o);
  r = settle(p);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED, "%s", vow_error_message(r));
  snprintf(want, sizeof want, "sh: %s a2\n", script);
  cr_assert_str_eq(vow_str(vow_exec_stdout(r)), want);
  vow_promise_unref(p);
  unlink(script);
  rmdir(dir);
  ASSERT_NO_CHILDREN();
}

LOOP_TEST(process, exec_runs_a_pipeline_through_sh) {
  vow_promise *p = vow_exec(loop, ARGV("/bin/sh", "-c", "yes | head -n 3"), NULL);
  vow_value r = settle(p);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED);
  cr_assert_str_eq(vow_str(vow_exec_stdout(r)), "y\ny\ny\n");
  vow_promise_unref(p);
  ASSERT_NO_CHILDREN();
}

LOOP_TEST(process, exec_keeps_binary_output_whole) {
  /* printf '\0...' : NUL bytes and 200 KiB, over several reads. */
  vow_promise *p = vow_exec(loop, ARGV("/bin/sh", "-c", "printf 'a\\000b'; head -c 204800 /dev/zero"), NULL);
  vow_value r = settle(p);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED);
  vow_value out = vow_exec_stdout(r);
  cr_assert_eq(vow_str_len(out), 3 + 204800);
  cr_assert_eq(memcmp(vow_str(out), "a\0b", 3), 0);
  vow_promise_unref(p);
}

LOOP_TEST(process, exec_nonzero_exit_rejects_with_the_code_and_the_output) {
  vow_promise *p = vow_exec(loop, ARGV("/bin/sh", "-c", "echo partial; exit 3"), NULL);
  expect_rejection(p, VOW_EEXIT, "exec '/bin/sh': exited with code 3");
  vow_value r = vow_promise_result(p);
  cr_assert_eq(vow_exit_code(r), 3);
  cr_assert_eq(vow_exit_signal(r), 0);
  cr_assert_str_eq(vow_str(vow_exec_stdout(r)), "partial\n");
  vow_promise_unref(p);
  ASSERT_NO_CHILDREN();
}

LOOP_TEST(process, exec_child_killed_by_a_signal_rejects) {
  vow_promise *p = vow_exec(loop, ARGV("/bin/sh", "-c", "echo before; kill -KILL $$"), NULL);
  expect_rejection(p, VOW_EEXIT, "exec '/bin/sh': killed by SIGKILL");
  vow_value r = vow_promise_result(p);
  cr_assert_eq(vow_exit_code(r), -1);
  cr_assert_eq(vow_exit_signal(r), SIGKILL);
  cr_assert_str_eq(vow_str(vow_exec_stdout(r)), "before\n");
  vow_promise_unref(p);
  ASSERT_NO_CHILDREN();
}

LOOP_TEST(process, exec_missing_program_rejects_naming_it) {
  vow_promise *p = vow_exec(loop, ARGV("vow-no-such-program", "x"), NULL);
  expect_rejection(p, UV_ENOENT, "ENOENT: spawn 'vow-no-such-program'");
  vow_promise_unref(p);
  vow_exec_options o = {.cwd = "/vow-no-such-dir"};
  p = vow_exec(loop, ARGV("/bin/true"), &o);
  expect_rejection(p, UV_ENOENT, "ENOENT: spawn '/bin/true' (cwd '/vow-no-such-dir')");
  vow_promise_unref(p);
  p = vow_exec(loop, ARGV("/etc/passwd"), NULL); /* not executable */
  expect_rejection(p, UV_EACCES, "EACCES: spawn '/etc/passwd'");
  vow_promise_unref(p);
  ASSERT_NO_CHILDREN();
}

LOOP_TEST(process, exec_bad_argv_rejects_with_einval) {
  const char *const empty[] = {NULL};
  vow_promise *p = vow_exec(loop, empty, NULL);
  expect_rejection(p, VOW_EINVAL, "exec: argv is empty");
  vow_promise_unref(p);
  p = vow_exec(loop, NULL, NULL);
  expect_rejection(p, VOW_EINVAL, "exec: argv is empty");
  vow_promise_unref(p);
  p = vow_exec(loop, ARGV(""), NULL);
  expect_rejection(p, VOW_EINVAL, "exec: argv[0] is an empty string");
  vow_promise_unref(p);
  vow_exec_options o = {.kill_signal = 999};
  p = vow_exec(loop, ARGV("true"), &o);
  expect_rejection(p, VOW_EINVAL, "exec 'true': no signal 999");
  vow_promise_unref(p);
  ASSERT_NO_CHILDREN();
}

LOOP_TEST(process, exec_over_max_output_kills_the_child) {
  vow_exec_options o = {.max_output = 1000};
  vow_promise *p = vow_exec(loop, ARGV("yes"), &o); /* would write forever */
  expect_rejection(p, VOW_ETOOBIG, "exec 'yes': stdout is larger than 1000 bytes");
  vow_value r = vow_promise_result(p); /* what was collected, up to the limit, as e.stdout */
  cr_assert_eq(vow_str_len(vow_exec_stdout(r)), 1000);
  cr_assert_eq(memcmp(vow_str(vow_exec_stdout(r)), "y\ny\n", 4), 0);
  cr_assert_eq(vow_exit_signal(r), SIGTERM, "killed with the kill signal");
  vow_promise_unref(p);
  ASSERT_NO_CHILDREN();
}

LOOP_TEST(process, exec_output_exactly_at_the_limit_is_fine) {
  vow_exec_options o = {.max_output = 6};
  vow_promise *p = vow_exec(loop, ARGV("/bin/sh", "-c", "printf 123456"), &o);
  vow_value r = settle(p);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED);
  cr_assert_str_eq(vow_str(vow_exec_stdout(r)), "123456");
  vow_promise_unref(p);
  o.max_output = 5;
  p = vow_exec(loop, ARGV("/bin/sh", "-c", "printf 123456 >&2"), &o);
  expect_rejection(p, VOW_ETOOBIG, "exec '/bin/sh': stderr is larger than 5 bytes");
  vow_promise_unref(p);
}

LOOP_TEST(process, exec_timeout_kills_and_rejects) {
  vow_exec_options o = {.timeout_ms = 20};
  vow_promise *p = vow_exec(loop, ARGV("sleep", "10"), &o);
  expect_rejection(p, VOW_ETIMEDOUT, "exec 'sleep': timed out after 20 ms");
  cr_assert_eq(vow_exit_signal(vow_promise_result(p)), SIGTERM, "err.killed, err.signal SIGTERM");
  vow_promise_unref(p);
  ASSERT_NO_CHILDREN();
}

static void abort_now(vow_loop *l, void *arg) {
  (void)l;
  vow_abort(arg, vow_undefined());
}

LOOP_TEST(process, exec_abort_kills_and_rejects_with_the_reason) {
  vow_abort_signal *s = vow_abort_signal_new(loop);
  vow_exec_options o = {.signal = s};
  vow_promise *p = vow_exec(loop, ARGV("sleep", "10"), &o);
  vow_set_timeout(loop, 5, abort_now, s);
  expect_rejection(p, VOW_EABORTED, "This operation was aborted");
  cr_assert(vow_is_undefined(vow_error_cause(vow_promise_result(p))), "the signal's reason, as it is");
  vow_promise_unref(p);
  /* An already aborted signal: nothing starts. */
  p = vow_exec(loop, ARGV("sleep", "10"), &o);
  expect_rejection(p, VOW_EABORTED, "This operation was aborted");
  vow_promise_unref(p);
  vow_abort_signal_unref(s);
  ASSERT_NO_CHILDREN();
}

LOOP_TEST(process, exec_env_replaces_and_null_inherits) {
  vow_exec_options o = {.env = ARGV("GREETING=hi")};
  vow_promise *p = vow_exec(loop, ARGV("/bin/sh", "-c", "echo $GREETING:$VOW_TEST_VAR"), &o);
  cr_assert_str_eq(vow_str(vow_exec_stdout(settle(p))), "hi:\n");
  vow_promise_unref(p);
  setenv("VOW_TEST_VAR", "inherited", 1);
  p = vow_exec(loop, ARGV("/bin/sh", "-c", "echo $VOW_TEST_VAR"), NULL);
  cr_assert_str_eq(vow_str(vow_exec_stdout(settle(p))), "inherited\n");
  vow_promise_unref(p);
  vow_exec_options c = {.cwd = "/"};
  p = vow_exec(loop, ARGV("pwd"), &c);
  cr_assert_str_eq(vow_str(vow_exec_stdout(settle(p))), "/\n");
  vow_promise_unref(p);
}

/* The program is looked up in the PATH of the env it is given, as Node does:
 *   spawn('true', [], { env: { PATH: '/nonexistent' } })      error ENOENT
 *   spawn('true', [], { env: { PATH: '/nonexistent:/bin' } }) exit 0
 *   spawn('true', [], { env: {} })                            exit 0 (/bin:/usr/bin)
 */
LOOP_TEST(process, exec_looks_the_program_up_in_the_given_path) {
  vow_exec_options o = {.env = ARGV("PATH=/nonexistent")};
  vow_promise *p = vow_exec(loop, ARGV("true"), &o);
  expect_rejection(p, UV_ENOENT, "ENOENT: spawn 'true'");
  vow_promise_unref(p);
  const char *const *found[] = {ARGV("PATH=/nonexistent:/bin"), ARGV("HOME=/")};
  for (int i = 0; i < 2; i++) {
    o.env = found[i];
    p = vow_exec(loop, ARGV("true"), &o);
    settle(p);
    cr_assert_eq(vow_promise_state(p), VOW_FULFILLED, "found with env %s", found[i][0]);
    vow_promise_unref(p);
  }
  ASSERT_NO_CHILDREN();
}

/* The child starts with every signal at its default action, though the loop
 * ignores SIGPIPE: a shell that sends itself one dies of it, as under Node
 * (execFile('/bin/sh', ['-c', 'kill -PIPE $$']) -> err.signal 'SIGPIPE'). */
LOOP_TEST(process, exec_child_starts_with_default_signal_actions) {
  vow_promise *p = vow_exec(loop, ARGV("/bin/sh", "-c", "kill -PIPE $$; echo survived"), NULL);
  expect_rejection(p, VOW_EEXIT, "exec '/bin/sh': killed by SIGPIPE");
  cr_assert_str_eq(vow_str(vow_exec_stdout(vow_promise_result(p))), "");
  vow_promise_unref(p);
  ASSERT_NO_CHILDREN();
}

LOOP_TEST(process, exec_many_at_once) {
  enum { N = 8 };
  vow_promise *ps[N];
  for (int i = 0; i < N; i++) {
    char script[64];
    snprintf(script, sizeof script, "echo %d", i);
    ps[i] = vow_exec(loop, ARGV("/bin/sh", "-c", script), NULL);
  }
  vow_promise *all = vow_all_promises(loop, ps, N);
  vow_value r = settle(all);
  cr_assert_eq(vow_promise_state(all), VOW_FULFILLED);
  for (int i = 0; i < N; i++) {
    char want[8];
    snprintf(want, sizeof want, "%d\n", i);
    cr_assert_str_eq(vow_str(vow_exec_stdout(vow_array_get(r, i))), want);
    vow_promise_unref(ps[i]);
  }
  vow_promise_unref(all);
  ASSERT_NO_CHILDREN();
}

/* ---- spawn, exit, kill --------------------------------------------------------- */

static vow_process *spawn_ok(const char *const *argv, vow_abort_signal *signal, int kill_signal) {
  vow_spawn_options o = {.argv = argv, .signal = signal, .kill_signal = kill_signal};
  o.stdio[0] = o.stdio[1] = VOW_STDIO_IGNORE;
  vow_process *p = NULL;
  int err = vow_process_spawn(loop, &o, &p);
  cr_assert_eq(err, 0, "spawn %s: %s", argv[0], vow_err_name(err));
  cr_assert_not_null(p);
  cr_assert_gt(vow_process_pid(p), 0);
  return p;
}

static int64_t exit_of(vow_process *p) {
  vow_promise *e = vow_process_exit(p);
  vow_value v = settle(e);
  cr_assert_eq(vow_promise_state(e), VOW_FULFILLED);
  cr_assert_eq(vow_kind_of(v), VOW_INT);
  int64_t status = vow_as_int(v);
  vow_promise_unref(e);
  return status;
}

LOOP_TEST(process, spawn_exit_gives_the_code) {
  vow_process *t = spawn_ok(ARGV("/bin/true"), NULL, 0);
  cr_assert_eq(exit_of(t), 0);
  vow_process *f = spawn_ok(ARGV("/bin/sh", "-c", "exit 7"), NULL, 0);
  vow_promise *e = vow_process_exit(f);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_exit_code(vow_promise_result(e)), 7);
  cr_assert_eq(vow_exit_signal(vow_promise_result(e)), 0);
  cr_assert_eq(vow_process_exit(f), e, "the same promise every time");
  vow_promise_unref(e), vow_promise_unref(e);
  vow_process_unref(t), vow_process_unref(f);
  ASSERT_NO_CHILDREN();
}

LOOP_TEST(process, kill_gives_an_exit_by_signal_then_esrch) {
  vow_process *p = spawn_ok(ARGV("sleep", "10"), NULL, 0);
  cr_assert_eq(vow_process_kill(p, 0), 0, "signal 0: the child is alive");
  cr_assert_eq(vow_process_kill(p, SIGTERM), 0);
  int64_t status = exit_of(p);
  cr_assert_eq(status, -SIGTERM);
  cr_assert_eq(vow_process_kill(p, SIGTERM), UV_ESRCH, "no signal once reaped");
  cr_assert_eq(vow_process_kill(p, -1), VOW_EINVAL);
  cr_assert_eq(vow_process_kill(NULL, SIGTERM), VOW_EINVAL);
  vow_process_unref(p);
  ASSERT_NO_CHILDREN();
}

LOOP_TEST(process, abort_signal_kills_with_kill_signal) {
  vow_abort_signal *s = vow_abort_signal_new(loop);
  vow_process *a = spawn_ok(ARGV("sleep", "10"), s, 0);
  vow_process *b = spawn_ok(ARGV("sleep", "10"), s, SIGKILL);
  vow_set_timeout(loop, 5, abort_now, s);
  cr_assert_eq(exit_of(a), -SIGTERM);
  cr_assert_eq(exit_of(b), -SIGKILL);
  vow_process_unref(a), vow_process_unref(b);
  /* Already aborted: nothing is started. */
  vow_spawn_options o = {.argv = ARGV("sleep", "10"), .signal = s};
  vow_process *c = (vow_process *)1;
  cr_assert_eq(vow_process_spawn(loop, &o, &c), VOW_EABORTED);
  cr_assert_null(c);
  vow_abort_signal_unref(s);
  ASSERT_NO_CHILDREN();
}

LOOP_TEST(process, spawn_errors_are_codes) {
  vow_process *p = (vow_process *)1;
  vow_spawn_options o = {.argv = ARGV("vow-no-such-program")};
  cr_assert_eq(vow_process_spawn(loop, &o, &p), UV_ENOENT);
  cr_assert_null(p);
  const char *const empty[] = {NULL};
  o.argv = empty;
  cr_assert_eq(vow_process_spawn(loop, &o, &p), VOW_EINVAL);
  o.argv = NULL;
  cr_assert_eq(vow_process_spawn(loop, &o, &p), VOW_EINVAL);
  o.argv = ARGV("");
  cr_assert_eq(vow_process_spawn(loop, &o, &p), VOW_EINVAL);
  o.argv = ARGV("true");
  o.stdio[1] = 42;
  cr_assert_eq(vow_process_spawn(loop, &o, &p), VOW_EINVAL);
  o.stdio[1] = 0;
  o.kill_signal = -3;
  cr_assert_eq(vow_process_spawn(loop, &o, &p), VOW_EINVAL);
  cr_assert_eq(vow_process_spawn(loop, NULL, &p), VOW_EINVAL);
  cr_assert_eq(vow_process_spawn(NULL, &o, &p), VOW_EINVAL);
  cr_assert_eq(vow_process_spawn(loop, &o, NULL), VOW_EINVAL);
  o = (vow_spawn_options){.argv = ARGV("/bin/true"), .cwd = "/vow-no-such-dir"};
  cr_assert_eq(vow_process_spawn(loop, &o, &p), UV_ENOENT);
  cr_assert_eq(vow_loop_run(loop), 0);
  ASSERT_NO_CHILDREN();
}

LOOP_TEST(process, released_early_the_child_still_runs_to_its_exit) {
  vow_process *p = spawn_ok(ARGV("/bin/sh", "-c", "exit 4"), NULL, 0);
  vow_promise *e = vow_process_exit(p);
  vow_process_unref(p); /* the child runs on; the loop waits for it */
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_exit_code(vow_promise_result(e)), 4);
  vow_promise_unref(e);
  ASSERT_NO_CHILDREN();
}

LOOP_TEST(process, loop_unref_does_not_wait_and_free_reaps) {
  vow_process *p = spawn_ok(ARGV("sleep", "10"), NULL, 0);
  vow_promise *e = vow_process_exit(p);
  cr_assert_eq(vow_process_loop_unref(p), 0);
  cr_assert_eq(vow_loop_run(loop), 0, "the run returns without waiting for the child");
  cr_assert_eq(vow_promise_state(e), VOW_PENDING);
  cr_assert_eq(children_count(NULL), 1, "the child is still running");
  cr_assert_eq(vow_process_loop_ref(p), 0);
  cr_assert_eq(vow_process_kill(p, SIGTERM), 0);
  cr_assert_eq(vow_loop_run(loop), 0, "referenced again: the run waits for the exit");
  cr_assert_eq(vow_exit_signal(vow_promise_result(e)), SIGTERM);
  vow_promise_unref(e);
  vow_process_unref(p);
  ASSERT_NO_CHILDREN();
}

/* ---- no zombie, ever ----------------------------------------------------------- */

static void after_free_no_children(void) {
  cr_assert_eq(vow_loop_free(loop), 0);
  loop = NULL;
  ASSERT_NO_CHILDREN();
}

Test(process, loop_freed_with_children_running_kills_and_reaps_them) {
  vow_process *ps[3];
  for (int i = 0; i < 3; i++) ps[i] = spawn_ok(ARGV("sleep", "10"), NULL, 0);
  vow_promise *x = vow_exec(loop, ARGV("sleep", "10"), NULL);
  cr_assert_eq(children_count(NULL), 4);
  vow_promise_unref(x); /* promises go before their loop */
  after_free_no_children(); /* never ran: all four still running */
  cr_assert_null(vow_process_exit(ps[1]), "no exit promise once the loop is gone");
  cr_assert_eq(vow_process_kill(ps[1], SIGTERM), UV_ESRCH);
  for (int i = 0; i < 3; i++) vow_process_unref(ps[i]); /* after the loop: plain memory */
  TEST_LEAK_CHECK();
}

Test(process, loop_freed_with_children_exited_but_not_reaped) {
  /* The children exit at once, but the loop never runs to reap them: the
   * teardown's waitpid does. */
  vow_process *p = spawn_ok(ARGV("/bin/true"), NULL, 0);
  vow_process_unref(p);
  vow_promise_unref(vow_exec(loop, ARGV("/bin/sh", "-c", "echo bye"), NULL));
  usleep(50 * 1000); /* whether they exited or not, the check below holds */
  after_free_no_children();
  TEST_LEAK_CHECK();
}

Test(process, a_process_held_past_its_loop_is_plain_memory) {
  vow_process *p = spawn_ok(ARGV("/bin/true"), NULL, 0);
  cr_assert_eq(exit_of(p), 0); /* exited and reaped; its exit promise lives on */
  after_free_no_children();
  cr_assert_null(vow_process_exit(p));
  cr_assert_eq(vow_process_kill(p, SIGTERM), UV_ESRCH);
  cr_assert_gt(vow_process_pid(p), 0);
  vow_process_unref(p); /* the loop already released what it held of it */
  TEST_LEAK_CHECK();
}

static void free_while_running(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  vow_loop *me = loop;
  cr_assert_eq(vow_loop_free(me), VOW_EBUSY, "not from inside a callback");
}

Test(process, loop_freed_after_a_run_that_left_an_unreferenced_child) {
  vow_process *p = spawn_ok(ARGV("sleep", "10"), NULL, 0);
  vow_process_loop_unref(p);
  vow_set_timeout(loop, 1, free_while_running, NULL);
  cr_assert_eq(vow_loop_run(loop), 0);
  vow_process_unref(p);
  after_free_no_children();
  TEST_LEAK_CHECK();
}


/* ---- pipes: stdin, stdout, stderr as streams ----------------------------------- */

static vow_process *spawn_piped(const char *const *argv, int in, int out, int err) {
  vow_spawn_options o = {.argv = argv, .stdio = {in, out, err}};
  vow_process *p = NULL;
  int e = vow_process_spawn(loop, &o, &p);
  cr_assert_eq(e, 0, "spawn %s: %s", argv[0], vow_err_name(e));
  return p;
}

/* Everything the stream gives until its end, as one string (a new reference),
 * inside an async function. */
static vow_value read_all(vow_stream *s) {
  char buf[8192];
  size_t len = 0;
  vow_for_await it;
  if (vow_for_await_gen(&it, vow_stream_chunks(s)) != 0) return vow_error_nomem();
  VOW_FOR_AWAIT(&it, chunk) {
    size_t n = vow_str_len(chunk);
    if (len + n < sizeof buf) memcpy(buf + len, vow_str(chunk), n), len += n;
  }
  vow_value error;
  if (vow_for_await_end(&it, &error) < 0) return error;
  return vow_string_n(buf, len);
}

/*   const cat = spawn('cat'); cat.stdin.write('hello\n'); cat.stdin.end('world\n');
 *   for await (const chunk of cat.stdout) out += chunk;   -> "hello\nworld\n", exit 0 */
static vow_value cat_round_trip(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  vow_process *cat = spawn_piped(ARGV("cat"), VOW_STDIO_PIPE, VOW_STDIO_PIPE, VOW_STDIO_INHERIT);
  cr_assert_null(vow_process_stderr(cat), "stderr was inherited, not piped");
  vow_value v;
  cr_assert_eq(vow_await(vow_stream_write(vow_process_stdin(cat), "hello\n", 6), &v), 0);
  cr_assert_eq(vow_await(vow_stream_write(vow_process_stdin(cat), "world\n", 6), &v), 0);
  cr_assert_eq(vow_await(vow_stream_end(vow_process_stdin(cat)), &v), 0);
  vow_value out = read_all(vow_process_stdout(cat));
  cr_assert_str_eq(vow_str(out), "hello\nworld\n");
  vow_unref(out);
  cr_assert_eq(vow_await(vow_process_exit(cat), &v), 0);
  cr_assert_eq(vow_exit_code(v), 0);
  vow_process_unref(cat);
  return vow_string("ok");
}

LOOP_TEST(process, pipes_write_stdin_read_stdout) {
  vow_promise *p = vow_async(loop, cat_round_trip, NULL);
  cr_assert_str_eq(vow_str(settle(p)), "ok");
  vow_promise_unref(p);
  ASSERT_NO_CHILDREN();
}

static vow_value count_lines(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  vow_process *p = spawn_piped(ARGV("/bin/sh", "-c", "yes | head -n 2000; echo done >&2"),
                               VOW_STDIO_IGNORE, VOW_STDIO_PIPE, VOW_STDIO_PIPE);
  cr_assert_null(vow_process_stdin(p));
  int lines = 0;
  vow_for_await it;
  vow_for_await_gen(&it, vow_stream_lines(vow_process_stdout(p), 0));
  VOW_FOR_AWAIT(&it, line) {
    cr_assert_str_eq(vow_str(line), "y");
    lines++;
  }
  cr_assert_eq(vow_for_await_end(&it, NULL), 0);
  vow_value err = read_all(vow_process_stderr(p));
  cr_assert_str_eq(vow_str(err), "done\n");
  vow_unref(err);
  vow_value v;
  vow_await(vow_process_exit(p), &v);
  vow_process_unref(p);
  return vow_int(lines);
}

LOOP_TEST(process, pipes_stdout_lines_and_stderr) {
  vow_promise *p = vow_async(loop, count_lines, NULL);
  cr_assert_eq(vow_as_int(settle(p)), 2000);
  vow_promise_unref(p);
  ASSERT_NO_CHILDREN();
}

/* A program that ignores SIGCHLD (the kernel would then reap children
 * itself) still gets its children's exit codes, as under Node (libuv's
 * SIGCHLD handler replaces the SIG_IGN):
 *   process.on... / spawn('/bin/sh', ['-c', 'exit 3']) -> 'exit' 3 */
LOOP_TEST(process, exit_code_seen_while_sigchld_is_ignored) {
  signal(SIGCHLD, SIG_IGN);
  vow_process *p = spawn_ok(ARGV("/bin/sh", "-c", "exit 3"), NULL, 0);
  cr_assert_eq(exit_of(p), 3);
  vow_process_unref(p);
  signal(SIGCHLD, SIG_DFL);
  ASSERT_NO_CHILDREN();
}

/* A child that closes its stdin while we write: the write rejects with
 * EPIPE, and SIGPIPE does not kill us. */
static vow_value write_to_closed_stdin(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  vow_process *p = spawn_piped(ARGV("/bin/sh", "-c", "exec 0<&-; echo closed; exec sleep 10"),
                               VOW_STDIO_PIPE, VOW_STDIO_PIPE, VOW_STDIO_INHERIT);
  vow_for_await it;
  vow_for_await_gen(&it, vow_stream_lines(vow_process_stdout(p), 0));
  vow_value line;
  cr_assert_eq(vow_for_await_next(&it, &line), 1);
  cr_assert_str_eq(vow_str(line), "closed");
  vow_unref(line);
  vow_for_await_end(&it, NULL);
  static char big[256 * 1024];
  vow_value v;
  int err = 0;
  for (int i = 0; i < 8 && err == 0; i++) { /* more than the pipe holds */
    err = vow_await(vow_stream_write(vow_process_stdin(p), big, sizeof big), &v);
    if (err) break;
  }
  cr_assert_eq(err, VOW_EREJECTED);
  cr_assert_eq(vow_error_code(v), UV_EPIPE, "%s", vow_error_message(v));
  vow_unref(v);
  vow_process_kill(p, SIGTERM);
  vow_await(vow_process_exit(p), &v);
  cr_assert_eq(vow_exit_signal(v), SIGTERM);
  vow_process_unref(p);
  return vow_string("survived");
}

LOOP_TEST(process, pipes_epipe_rejects_without_sigpipe) {
  vow_promise *p = vow_async(loop, write_to_closed_stdin, NULL);
  cr_assert_str_eq(vow_str(settle(p)), "survived");
  vow_promise_unref(p);
  ASSERT_NO_CHILDREN();
}

static vow_value abort_piped(vow_loop *l, void *arg) {
  vow_abort_signal *s = arg;
  vow_spawn_options o = {.argv = ARGV("cat"), .stdio = {VOW_STDIO_PIPE, VOW_STDIO_PIPE, 0}, .signal = s};
  vow_process *cat;
  cr_assert_eq(vow_process_spawn(l, &o, &cat), 0);
  vow_set_timeout(l, 5, abort_now, s);
  vow_value out = read_all(vow_process_stdout(cat)); /* ends when cat dies */
  cr_assert_str_eq(vow_str(out), "");
  vow_unref(out);
  vow_value v;
  vow_await(vow_process_exit(cat), &v);
  vow_process_unref(cat);
  return v;
}

LOOP_TEST(process, pipes_end_when_an_abort_kills_the_child) {
  vow_abort_signal *s = vow_abort_signal_new(loop);
  vow_promise *p = vow_async(loop, abort_piped, s);
  cr_assert_eq(vow_exit_signal(settle(p)), SIGTERM);
  vow_promise_unref(p);
  vow_abort_signal_unref(s);
  ASSERT_NO_CHILDREN();
}

Test(process, loop_freed_with_a_piped_child_waiting_for_input) {
  vow_process *cat = spawn_piped(ARGV("cat"), VOW_STDIO_PIPE, VOW_STDIO_PIPE, VOW_STDIO_PIPE);
  vow_promise_unref(vow_stream_write(vow_process_stdin(cat), "unread", 6));
  vow_asyncgen *reader = vow_stream_chunks(vow_process_stdout(cat));
  vow_promise_unref(vow_asyncgen_next(reader, vow_undefined()));
  vow_asyncgen_unref(reader);
  after_free_no_children();
  vow_process_unref(cat); /* its streams, closed with the loop, go with it */
  TEST_LEAK_CHECK();
}

/* ---- readers ------------------------------------------------------------------ */

Test(process, exit_readers_on_other_values_are_neutral) {
  cr_assert_eq(vow_exit_code(vow_int(3)), 3);
  cr_assert_eq(vow_exit_signal(vow_int(-9)), 9);
  cr_assert_eq(vow_exit_code(vow_int(-9)), -1);
  vow_value s = vow_string("x");
  cr_assert_eq(vow_exit_code(s), -1);
  cr_assert_eq(vow_exit_signal(s), 0);
  cr_assert(vow_is_undefined(vow_exec_stdout(s)));
  vow_value e = vow_error(VOW_EINVAL, "no");
  cr_assert_eq(vow_exit_code(e), -1);
  cr_assert(vow_is_undefined(vow_exec_stderr(e)));
  vow_unref(s), vow_unref(e);
  cr_assert_eq(vow_process_pid(NULL), 0);
  cr_assert_null(vow_process_stdout(NULL));
  cr_assert_null(vow_process_exit(NULL));
}
