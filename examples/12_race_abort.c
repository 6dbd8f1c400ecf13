/*
 * 12 — A race that stops its losers
 *
 * Ask two mirrors for the same file and take whichever answers first. With
 * Promise.race the slower download keeps running to the end, unobserved.
 * vow_race_abort aborts the losers' signals the moment a winner settles, so
 * the slow one stops at once.
 *
 * The JavaScript this mirrors needs the wiring done by hand:
 *
 *   const a = new AbortController(), b = new AbortController();
 *   const winner = await Promise.race([
 *     download(mirrorA, a.signal).finally(() => b.abort()),
 *     download(mirrorB, b.signal).finally(() => a.abort())]);
 */
#include <stdio.h>
#include <stdlib.h>
#include <vow.h>

typedef struct download {
  const char *mirror;
  vow_promise *done;
  vow_timer timer;
} download;

static void finished(vow_loop *loop, void *arg) {
  (void)loop;
  download *d = arg;
  printf("%s finished\n", d->mirror);
  vow_promise_resolve(d->done, vow_stringf("file from %s", d->mirror));
}

static void stopped(vow_loop *loop, vow_value reason, void *arg) {
  download *d = arg;
  vow_clear_timer(loop, d->timer);
  printf("%s stopped: %s\n", d->mirror, vow_error_message(reason));
  vow_promise_reject(d->done, vow_ref(reason));
}

/* Stands in for a download that takes ms and stops when its signal aborts. */
static vow_promise *start_download(vow_loop *loop, download *d, uint64_t ms,
                                   vow_abort_signal *signal) {
  d->done = vow_promise_new(loop);
  d->timer = vow_set_timeout(loop, ms, finished, d);
  vow_abort_signal_on(signal, stopped, d);
  return vow_promise_ref(d->done);
}

static vow_value main_async(vow_loop *loop, void *arg) {
  (void)arg;
  download a = {"mirror A", NULL, 0}, b = {"mirror B", NULL, 0};
  vow_abort_signal *signals[2] = {vow_abort_signal_new(loop), vow_abort_signal_new(loop)};
  vow_value downloads[2] = {
      vow_promise_value(start_download(loop, &a, 500, signals[0])),
      vow_promise_value(start_download(loop, &b, 120, signals[1])),
  };
  vow_value file;
  vow_await(vow_race_abort(loop, downloads, signals, 2), &file);
  printf("winner: %s\n", vow_str(file));
  vow_unref(file);
  vow_promise_unref(a.done), vow_promise_unref(b.done);
  vow_abort_signal_unref(signals[0]), vow_abort_signal_unref(signals[1]);
  return vow_undefined();
}

int main(void) {
  return vow_run(main_async, NULL, NULL, NULL) == 0 ? 0 : 1;
}
