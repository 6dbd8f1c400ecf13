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
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "faults.h"
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

static void quiet(vow_loop *l, vow_promise *p, vow_value r, void *d) {
  (void)l, (void)p, (void)r, (void)d;
}

static int run_once(long n, fault_mode how) {
  if (getenv("FAULT_TRACE")) fprintf(stderr, "run %ld %d\n", n, (int)how);
  fault_arm(n, how);
  vow_loop *loop;
  vow_loop_options opts = {.virtual_clock = 1, .stack_size = 64 * 1024};
  if (vow_loop_new(&loop, &opts) == 0) {
    vow_on_unhandled_rejection(loop, quiet, NULL);
    vow_promise *p = vow_async(loop, scenario, NULL);
    vow_loop_run(loop);
    if (n == 0) cr_assert_str_eq(vow_str(vow_promise_result(p)), "done");
    vow_promise_unref(p);
    cr_assert_eq(vow_loop_free(loop), 0, "the loop frees after a failure at allocation %ld", n);
  }
  fault_disarm();
  cr_assert_eq(vow__pool_leaked, 0, "pooled objects leaked after a failure at allocation %ld", n);
  return 0;
}

static void make_file(void) {
  snprintf(file_path, sizeof file_path, "/tmp/vow-faults-stream-XXXXXX");
  int fd = mkstemp(file_path);
  cr_assert_geq(fd, 0);
  close(fd);
}

Test(faults_stream, every_allocation_can_fail) {
  make_file();
  run_once(0, FAULT_ONCE);
  long total = fault_allocations;
  cr_assert_gt(total, 20, "the scenario makes allocations (%ld)", total);
  long failed = fault_every_site(run_once, FAULT_ONCE);
  cr_assert_geq(failed + 1, total, "every allocation was failed once (%ld of %ld)", failed, total);
  unlink(file_path);
  TEST_LEAK_CHECK();
}

Test(faults_stream, sustained_out_of_memory_from_every_point) {
  make_file();
  run_once(0, FAULT_ONCE);
  long total = fault_allocations;
  long failed = fault_every_site(run_once, FAULT_FROM);
  cr_assert_geq(failed + 1, total, "memory ran out at every point (%ld of %ld)", failed, total);
  unlink(file_path);
  TEST_LEAK_CHECK();
}
