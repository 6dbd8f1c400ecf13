/*
 * 16 — Ctrl-C aborts everything
 *
 * A program with work in flight (here a child process; in a server, fetches,
 * timers, streams) should stop all of it cleanly on Ctrl-C or SIGTERM.
 * vow_signal_abort gives an AbortSignal that aborts on the first of them:
 * hand it to every piece of work, and each one stops itself. The signal
 * watch keeps the loop no busier: when the work is done, the program ends.
 *
 * The JavaScript this mirrors:
 *
 *   const ac = new AbortController();
 *   process.once('SIGINT', () => { console.log('got SIGINT: aborting everything'); ac.abort(); });
 *   const child = spawn('sleep', ['30'], { signal: ac.signal });
 *   console.log('working... (press Ctrl-C)');
 *   setTimeout(() => process.kill(process.pid, 'SIGINT'), 200); // stands in for Ctrl-C
 *   const [code, signal] = await once(child, 'exit');
 *   console.log(`the child stopped: ${signal}`);
 *   console.log('clean exit');
 *
 * node prints: working... / got SIGINT: aborting everything /
 *              the child stopped: SIGTERM / clean exit
 */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <vow.h>

static void say_why(vow_loop *loop, vow_value reason, void *data) {
  (void)loop, (void)data;
  printf("got SIGINT: aborting everything (%s)\n", vow_error_message(reason));
}

/* Stands in for the user pressing Ctrl-C, so that the example runs unattended. */
static void press_ctrl_c(vow_loop *loop, void *arg) {
  (void)loop, (void)arg;
  kill(getpid(), SIGINT);
}

static vow_value main_async(vow_loop *loop, void *arg) {
  (void)arg;
  vow_abort_signal *stop = vow_signal_abort(loop, (int[]){SIGINT, SIGTERM}, 2);
  if (!stop) return vow_throw(vow_error_nomem());
  vow_abort_signal_on(stop, say_why, NULL);
  vow_spawn_options o = {.argv = (const char *const[]){"sleep", "30", NULL}, .signal = stop};
  vow_process *child;
  if (vow_process_spawn(loop, &o, &child) != 0) return vow_throw(vow_error(VOW_EINVAL, "no sleep"));
  printf("working... (press Ctrl-C)\n");
  vow_set_timeout(loop, 200, press_ctrl_c, NULL);
  vow_value exit;
  vow_await(vow_process_exit(child), &exit);
  printf("the child stopped: %s\n", vow_exit_signal(exit) == SIGTERM ? "SIGTERM" : "another way");
  vow_unref(exit);
  vow_process_unref(child);
  vow_abort_signal_unref(stop);
  printf("clean exit\n");
  return vow_undefined();
}

int main(void) {
  return vow_run(main_async, NULL, NULL, NULL) == 0 ? 0 : 1;
}
