/*
 * test_faults_stream.c — allocation failure at every allocation site that
 * streams and stdio reach (src/io/stream.c, stdio.c, lines.c): a pipe written
 * and read as chunks and as lines, a half-close, a file read and written
 * through the descriptor backend, a close with queued writes, an idle
 * timeout and an abort. Each run fails one allocation (then, sustained, every
 * allocation from that one on) and must end without a crash or a leak.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fault_scenarios.h"
#include "log.h"
#include "vow.h"

static char file_path[64];

static void drain(vow_asyncgen *gen) {
  vow_for_await it;
  if (vow_for_await_gen(&it, gen) != 0) return;
  VOW_FOR_AWAIT(&it, v) (void)v;
  vow_value err;
  vow_for_await_end(&it, &err);
  vow_unref(err);
}

static vow_value writer(vow_loop *l, void *wr) {
  (void)l;
  vow_await(vow_stream_write(wr, "one\r\ntwo\n", 9), NULL);
  vow_await(vow_stream_write_value(wr, vow_string("three\rfour")), NULL);
  vow_await(vow_stream_end(wr), NULL);
  return vow_undefined();
}

static void stream_unref_arg(void *s) { vow_stream_unref(s); }

static vow_value scenario(vow_loop *l, void *arg) {
  (void)arg;
  int fds[2];
  if (pipe(fds) != 0) return vow_undefined();
  vow_stream *rd = NULL, *wr = NULL;
  vow_stream_open_fd(l, fds[0], &rd);
  vow_stream_open_fd(l, fds[1], &wr);
  close(fds[0]);
  close(fds[1]);
  if (rd && wr) {
    /* The writer owns the writing end: if it cannot even start, arg_free
     * closes the end, and the reader below sees the end of the stream. */
    vow_async_options o = {.arg_free = stream_unref_arg};
    vow_promise_unref(vow_async_ex(l, writer, wr, &o));
    wr = NULL;
    drain(vow_stream_lines(rd, 0));
  }
  vow_stream_unref(rd);
  vow_stream_unref(wr);

  /* The descriptor backend: write a file, then read it as chunks. */
  int fd = open(file_path, O_WRONLY | O_TRUNC);
  vow_stream *f = NULL;
  if (fd >= 0 && vow_stream_open_fd(l, fd, &f) == 0) {
    vow_promise_unref(vow_stream_write(f, "abc\n", 4));
    vow_promise_unref(vow_stream_write(f, "def\n", 4));
    vow_await(vow_stream_end(f), NULL);
    vow_stream_unref(f);
  }
  if (fd >= 0) close(fd);
  fd = open(file_path, O_RDONLY);
  if (fd >= 0 && vow_stream_open_fd(l, fd, &f) == 0) {
    drain(vow_stream_chunks(f));
    vow_stream_unref(f);
  }
  if (fd >= 0) close(fd);

  /* A close with writes queued, an idle timeout, an abort. */
  if (pipe(fds) != 0) return vow_undefined();
  rd = wr = NULL;
  vow_stream_open_fd(l, fds[0], &rd);
  vow_stream_open_fd(l, fds[1], &wr);
  close(fds[0]);
  close(fds[1]);
  if (rd && wr) {
    static char big[100000];
    vow_promise *w = vow_stream_write(wr, big, sizeof big);
    vow_promise_unref(vow_stream_close(wr));
    vow_await(w, NULL);
    vow_stream_set_timeout(rd, 10);
    drain(vow_stream_chunks(rd));
  }
  vow_stream_unref(rd);
  vow_stream_unref(wr);
  if (pipe(fds) != 0) return vow_undefined();
  rd = NULL;
  vow_stream_open_fd(l, fds[0], &rd);
  close(fds[0]);
  vow_abort_signal *sig = vow_abort_signal_new(l);
  /* (Without its signal the read below would wait for a writer that never comes.) */
  if (rd && sig && vow_stream_set_signal(rd, sig) == 0) {
    vow_asyncgen *gen = vow_stream_chunks(rd);
    vow_promise *next = vow_asyncgen_next(gen, vow_undefined());
    vow_abort(sig, vow_undefined());
    vow_await(next, NULL);
    vow_asyncgen_unref(gen);
  }
  close(fds[1]);
  vow_abort_signal_unref(sig);
  vow_stream_unref(rd);
  return vow_string("done");
}

static void make_file(void) {
  snprintf(file_path, sizeof file_path, "/tmp/vow-faults-stream-XXXXXX");
  int fd = mkstemp(file_path);
  cr_assert_geq(fd, 0);
  close(fd);
}
static void remove_file(void) { unlink(file_path); }

static const fault_scenario streams = {
    .name = "streams", .fn = scenario, .options = {.virtual_clock = 1, .stack_size = 64 * 1024},
    .before = make_file, .after = remove_file};

Test(faults_stream, every_allocation_can_fail_once_and_for_good) {
  long total = fault_scenario_check(&streams);
  cr_assert_gt(total, 20, "the scenario makes allocations (%ld)", total);
}
