/*
 * 15 — Child processes, as promises
 *
 * Run a command and get its output; see a failure as a rejection that still
 * carries what the command printed; give up on a command that takes too long
 * (and really stop it); talk to a program through its stdin and stdout.
 *
 * The JavaScript this mirrors (node prints the same four stories):
 *
 *   const run = promisify(execFile);
 *   const { stdout } = await run('/bin/sh', ['-c', 'yes | head -n 3 | wc -l']);
 *   console.log(`yes | head -n 3 | wc -l: ${stdout.trim()}`);
 *   try { await run('/bin/sh', ['-c', 'echo half done; exit 3']); }
 *   catch (e) { console.log(`failed with code ${e.code}, after printing: ${e.stdout.trim()}`); }
 *   try { await run('sleep', ['10'], { timeout: 100 }); }
 *   catch (e) { console.log(`sleep 10: killed by ${e.signal} after the timeout`); }
 *   const cat = spawn('cat');
 *   cat.stdin.write('hello\n'); cat.stdin.end('world\n');
 *   for await (const line of readline.createInterface({ input: cat.stdout }))
 *     console.log(`cat says: ${line}`);
 *   const [code] = await once(cat, 'exit');
 *   console.log(`cat exited with code ${code}`);
 */
#include <signal.h>
#include <stdio.h>
#include <vow.h>

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

/* Prints a string without its last newline, as .trim() would here. */
static void print_trimmed(vow_value s) {
  size_t n = vow_str_len(s);
  if (n && vow_str(s)[n - 1] == '\n') n--;
  printf("%.*s\n", (int)n, vow_str(s));
}

static vow_value main_async(vow_loop *loop, void *arg) {
  (void)arg;
  vow_value r;

  /* A pipeline runs through sh: nothing is a shell unless you ask for one. */
  if (vow_await(vow_exec(loop, ARGV("/bin/sh", "-c", "yes | head -n 3 | wc -l"), NULL), &r) == 0) {
    printf("yes | head -n 3 | wc -l: ");
    print_trimmed(vow_exec_stdout(r));
  }
  vow_unref(r);

  /* A non-zero exit rejects; the output is still there. */
  if (vow_await(vow_exec(loop, ARGV("/bin/sh", "-c", "echo half done; exit 3"), NULL), &r) != 0) {
    printf("failed with code %d, after printing: ", vow_exit_code(r));
    print_trimmed(vow_exec_stdout(r));
  }
  vow_unref(r);

  /* The timeout kills the child (SIGTERM), and the promise waits until it is gone. */
  vow_exec_options quick = {.timeout_ms = 100};
  if (vow_await(vow_exec(loop, ARGV("sleep", "10"), &quick), &r) != 0)
    printf("sleep 10: killed by SIGTERM after the timeout (%s)\n", vow_err_name(vow_error_code(r)));
  vow_unref(r);

  /* stdin and stdout as streams: write, end, read the lines back. */
  vow_spawn_options o = {.argv = ARGV("cat"), .stdio = {VOW_STDIO_PIPE, VOW_STDIO_PIPE, VOW_STDIO_INHERIT}};
  vow_process *cat;
  if (vow_process_spawn(loop, &o, &cat) != 0) return vow_throw(vow_error(VOW_EINVAL, "no cat"));
  vow_promise_unref(vow_stream_write(vow_process_stdin(cat), "hello\n", 6));
  vow_promise_unref(vow_stream_write(vow_process_stdin(cat), "world\n", 6));
  vow_promise_unref(vow_stream_end(vow_process_stdin(cat)));
  vow_for_await it;
  vow_for_await_gen(&it, vow_stream_lines(vow_process_stdout(cat), 0));
  VOW_FOR_AWAIT(&it, line) printf("cat says: %s\n", vow_str(line));
  vow_for_await_end(&it, NULL);
  vow_await(vow_process_exit(cat), &r);
  printf("cat exited with code %d\n", vow_exit_code(r));
  vow_process_unref(cat);
  return vow_undefined();
}

int main(void) {
  return vow_run(main_async, NULL, NULL, NULL) == 0 ? 0 : 1;
}
