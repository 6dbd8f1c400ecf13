/*
 * test_stream.c — byte streams (vow.h section 12, "streams"), on real pipes,
 * files, devices and a pseudo-terminal: reading as chunks and as lines,
 * writing with backpressure, half-close, close, idle timeouts, abort signals,
 * and the loop freed under open streams.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "io/lines.h"
#include "log.h"
#include "vow.h"

LOOP_SUITE(stream, NULL);

/* Both ends of a fresh pipe as streams; the raw descriptors are closed (the
 * streams work on duplicates). */
static void pipe_streams(vow_stream **rd, vow_stream **wr) {
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  cr_assert_eq(vow_stream_open_fd(loop, fds[0], rd), 0);
  cr_assert_eq(vow_stream_open_fd(loop, fds[1], wr), 0);
  close(fds[0]);
  close(fds[1]);
}

/* Everything a generator yields, joined with sep (NULL: nothing between). */
static int collect(vow_asyncgen *gen, const char *sep, char *out, size_t cap, vow_value *error) {
  vow_for_await it;
  size_t len = 0;
  out[0] = '\0';
  cr_assert_eq(vow_for_await_gen(&it, gen), 0);
  VOW_FOR_AWAIT(&it, v) {
    len += (size_t)snprintf(out + len, cap - len, "%s%s", len && sep ? sep : "", vow_str(v));
    if (len >= cap) len = cap - 1;
  }
  return vow_for_await_end(&it, error);
}

/* ---- chunks and lines ---- */

typedef struct pair {
  vow_stream *rd, *wr;
} pair;

static vow_value write_then_end(vow_loop *l, void *arg) {
  (void)l;
  pair *p = arg;
  const char *parts[] = {"one\r\ntw", "o\rthree\n", "four\r", "\nfive"};
  for (int i = 0; i < 4; i++) cr_assert_eq(vow_await(vow_stream_write(p->wr, parts[i], strlen(parts[i])), NULL), 0);
  cr_assert_eq(vow_await(vow_stream_end(p->wr), NULL), 0);
  return vow_undefined();
}

static vow_value read_lines(vow_loop *l, void *arg) {
  pair *p = arg;
  vow_promise_unref(vow_async(l, write_then_end, p));
  char got[256];
  cr_assert_eq(collect(vow_stream_lines(p->rd, 0), "|", got, sizeof got, NULL), 0);
  /* node: readline over the same pieces (crlfDelay: Infinity) gives
   * one two three four five */
  cr_assert_str_eq(got, "one|two|three|four|five");
  return vow_undefined();
}

LOOP_TEST(stream, lines_end_at_lf_crlf_and_lone_cr_as_in_node) {
  pair p;
  pipe_streams(&p.rd, &p.wr);
  vow_promise *r = vow_async(loop, read_lines, &p);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(r), VOW_FULFILLED);
  vow_promise_unref(r);
  vow_stream_unref(p.rd);
  vow_stream_unref(p.wr);
}

static vow_value read_chunks(vow_loop *l, void *arg) {
  pair *p = arg;
  vow_promise_unref(vow_async(l, write_then_end, p));
  char got[256];
  cr_assert_eq(collect(vow_stream_chunks(p->rd), NULL, got, sizeof got, NULL), 0);
  cr_assert_str_eq(got, "one\r\ntwo\rthree\nfour\r\nfive");
  return vow_undefined();
}

LOOP_TEST(stream, chunks_carry_every_byte_in_order_then_end) {
  pair p;
  pipe_streams(&p.rd, &p.wr);
  vow_promise *r = vow_async(loop, read_chunks, &p);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(r), VOW_FULFILLED);
  vow_promise_unref(r);
  vow_stream_unref(p.rd);
  vow_stream_unref(p.wr);
}

static vow_value binary_round_trip(vow_loop *l, void *arg) {
  (void)l;
  pair *p = arg;
  char bytes[300];
  for (int i = 0; i < 300; i++) bytes[i] = (char)(i % 256); /* NULs included */
  cr_assert_eq(vow_await(vow_stream_write(p->wr, bytes, sizeof bytes), NULL), 0);
  vow_stream_unref(p->wr);  /* the last reference closes the writing end */
  p->wr = NULL;
  size_t total = 0;
  vow_for_await it;
  vow_for_await_gen(&it, vow_stream_chunks(p->rd));
  VOW_FOR_AWAIT(&it, c) {
    cr_assert_eq(memcmp(vow_str(c), bytes + total, vow_str_len(c)), 0);
    total += vow_str_len(c);
  }
  cr_assert_eq(vow_for_await_end(&it, NULL), 0);
  cr_assert_eq(total, sizeof bytes);
  return vow_undefined();
}

LOOP_TEST(stream, chunks_are_binary_safe_and_dropping_the_writer_ends_the_reader) {
  pair p;
  pipe_streams(&p.rd, &p.wr);
  vow_promise *r = vow_async(loop, binary_round_trip, &p);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(r), VOW_FULFILLED);
  vow_promise_unref(r);
  vow_stream_unref(p.rd);
}

static vow_value long_line(vow_loop *l, void *arg) {
  (void)l;
  pair *p = arg;
  char line[100];
  memset(line, 'x', sizeof line);
  vow_promise_unref(vow_stream_write(p->wr, "short\n", 6));
  vow_promise_unref(vow_stream_write(p->wr, line, sizeof line));
  vow_promise_unref(vow_stream_end(p->wr));
  char got[256];
  vow_value err;
  cr_assert_eq(collect(vow_stream_lines(p->rd, 64), "|", got, sizeof got, &err), VOW_EREJECTED);
  cr_assert_str_eq(got, "short");
  cr_assert_eq(vow_error_code(err), VOW_ETOOBIG);
  cr_assert(strstr(vow_error_message(err), "longer than 64 bytes"), "%s", vow_error_message(err));
  vow_unref(err);
  return vow_undefined();
}

LOOP_TEST(stream, a_line_longer_than_the_limit_rejects_with_etoobig) {
  pair p;
  pipe_streams(&p.rd, &p.wr);
  vow_promise *r = vow_async(loop, long_line, &p);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(r), VOW_FULFILLED);
  vow_promise_unref(r);
  vow_stream_unref(p.rd);
  vow_stream_unref(p.wr);
}

static vow_value two_readers(vow_loop *l, void *arg) {
  (void)l;
  pair *p = arg;
  vow_promise_unref(vow_stream_write(p->wr, "a", 1));
  vow_asyncgen *first = vow_stream_chunks(p->rd);
  vow_value v;
  cr_assert_eq(vow_await(vow_asyncgen_next(first, vow_undefined()), &v), 0);
  cr_assert_str_eq(vow_str(vow_iter_value(v)), "a");
  vow_unref(v);
  vow_asyncgen *second = vow_stream_chunks(p->rd);
  cr_assert_eq(vow_await(vow_asyncgen_next(second, vow_undefined()), &v), VOW_EREJECTED);
  cr_assert_eq(vow_error_code(v), VOW_EBUSY);
  vow_unref(v);
  vow_asyncgen_unref(second);
  /* Once the first reader is done, a new one may read what follows. */
  cr_assert_eq(vow_await(vow_asyncgen_return(first, vow_undefined()), NULL), 0);
  vow_asyncgen_unref(first);
  vow_promise_unref(vow_stream_write(p->wr, "b", 1));
  vow_promise_unref(vow_stream_end(p->wr));
  char got[16];
  cr_assert_eq(collect(vow_stream_chunks(p->rd), NULL, got, sizeof got, NULL), 0);
  cr_assert_str_eq(got, "b");
  return vow_undefined();
}

LOOP_TEST(stream, one_reader_at_a_time) {
  pair p;
  pipe_streams(&p.rd, &p.wr);
  vow_promise *r = vow_async(loop, two_readers, &p);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(r), VOW_FULFILLED);
  vow_promise_unref(r);
  vow_stream_unref(p.rd);
  vow_stream_unref(p.wr);
}

/* ---- backpressure ---- */

enum { BIG = 4 << 20 };

static vow_value slow_reader(vow_loop *l, void *arg) {
  pair *p = arg;
  char *big = malloc(BIG);
  memset(big, 'z', BIG);
  vow_promise *w = vow_stream_write(p->wr, big, BIG);
  free(big);
  vow_asyncgen *gen = vow_stream_chunks(p->rd);
  vow_value v;
  cr_assert_eq(vow_await(vow_asyncgen_next(gen, vow_undefined()), &v), 0);
  size_t total = vow_str_len(vow_iter_value(v));
  vow_unref(v);
  /* The reader pauses. Whatever the machine's speed, the 4 MiB cannot have
   * gone anywhere: the reader buffers at most its high-water mark plus one
   * read, the pipe holds its 64 KiB, the rest waits in the writer. */
  cr_assert_eq(vow_await(vow_delay(l, 50, vow_undefined()), NULL), 0);
  cr_assert_eq(vow_promise_state(w), VOW_PENDING, "the write finished with its reader paused");
  cr_assert_gt(vow_stream_write_queue(p->wr), (size_t)BIG - 512 * 1024);
  for (;;) {
    cr_assert_eq(vow_await(vow_asyncgen_next(gen, vow_undefined()), &v), 0);
    int done = vow_iter_done(v);
    if (!done) {
      cr_assert_leq(vow_str_len(vow_iter_value(v)), (size_t)128 * 1024, "a chunk over the mark + one read");
      total += vow_str_len(vow_iter_value(v));
    }
    vow_unref(v);
    if (total == BIG) break;
    cr_assert(!done);
  }
  cr_assert_eq(vow_await(w, NULL), 0);
  cr_assert_eq(vow_stream_write_queue(p->wr), 0);
  vow_asyncgen_unref(gen);
  return vow_undefined();
}

LOOP_TEST(stream, a_paused_reader_holds_the_writer_back) {
  pair p;
  pipe_streams(&p.rd, &p.wr);
  vow_promise *r = vow_async(loop, slow_reader, &p);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(r), VOW_FULFILLED);
  vow_promise_unref(r);
  vow_stream_unref(p.rd);
  vow_stream_unref(p.wr);
}

/* ---- ending, closing, errors ---- */

static vow_value writes_after_end(vow_loop *l, void *arg) {
  (void)l;
  pair *p = arg;
  cr_assert_eq(vow_await(vow_stream_end(p->wr), NULL), 0);
  vow_value err;
  cr_assert_eq(vow_await(vow_stream_write(p->wr, "x", 1), &err), VOW_EREJECTED);
  cr_assert_eq(vow_error_code(err), UV_EPIPE);
  cr_assert(strstr(vow_error_message(err), "EPIPE: write after end of fd"), "%s", vow_error_message(err));
  vow_unref(err);
  /* The reader sees the end. */
  char got[8];
  cr_assert_eq(collect(vow_stream_chunks(p->rd), NULL, got, sizeof got, NULL), 0);
  cr_assert_str_eq(got, "");
  return vow_undefined();
}

LOOP_TEST(stream, writing_after_end_rejects_with_epipe) {
  pair p;
  pipe_streams(&p.rd, &p.wr);
  vow_promise *r = vow_async(loop, writes_after_end, &p);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(r), VOW_FULFILLED);
  vow_promise_unref(r);
  vow_stream_unref(p.rd);
  vow_stream_unref(p.wr);
}

static vow_value peer_gone(vow_loop *l, void *arg) {
  (void)l;
  pair *p = arg;
  cr_assert_eq(vow_await(vow_stream_close(p->rd), NULL), 0);
  vow_value err;
  char big[65536] = {0};
  int rc = 0;
  for (int i = 0; i < 4 && rc == 0; i++) rc = vow_await(vow_stream_write(p->wr, big, sizeof big), &err);
  cr_assert_eq(rc, VOW_EREJECTED);
  cr_assert_eq(vow_error_code(err), UV_EPIPE, "%s", vow_error_message(err));
  vow_unref(err);
  return vow_undefined();
}

/* In a child with SIGPIPE at its default: the loop must keep it alive. */
Test(stream, a_write_to_a_vanished_reader_rejects_and_never_raises_sigpipe) {
  vow_loop_free(loop);
  loop = NULL;
  pid_t pid = fork();
  if (pid == 0) {
    signal(SIGPIPE, SIG_DFL);
    vow_loop *l;
    if (vow_loop_new(&l, NULL) != 0) _exit(2);
    loop = l;
    pair p;
    pipe_streams(&p.rd, &p.wr);
    vow_promise *r = vow_async(l, peer_gone, &p);
    vow_loop_run(l);
    int ok = vow_promise_state(r) == VOW_FULFILLED;
    vow_promise_unref(r);
    vow_stream_unref(p.rd);
    vow_stream_unref(p.wr);
    vow_loop_free(l);
    _exit(ok ? 0 : 3);
  }
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status), "the child died of signal %d", WTERMSIG(status));
  cr_assert_eq(WEXITSTATUS(status), 0);
}

static vow_value close_wakes_reader(vow_loop *l, void *arg) {
  pair *p = arg;
  vow_asyncgen *gen = vow_stream_chunks(p->rd);
  vow_promise *next = vow_asyncgen_next(gen, vow_undefined());
  cr_assert_eq(vow_await(vow_delay(l, 1, vow_undefined()), NULL), 0);
  cr_assert_eq(vow_promise_state(next), VOW_PENDING);
  vow_promise *closed = vow_stream_close(p->rd);
  vow_value v;
  cr_assert_eq(vow_await(next, &v), 0);
  cr_assert(vow_iter_done(v), "a reader of a closed stream is done");
  vow_unref(v);
  cr_assert_eq(vow_await(closed, NULL), 0);
  /* Closing twice is harmless, and reading a closed stream ends at once. */
  cr_assert_eq(vow_await(vow_stream_close(p->rd), NULL), 0);
  char got[8];
  cr_assert_eq(collect(vow_stream_chunks(p->rd), NULL, got, sizeof got, NULL), 0);
  vow_asyncgen_unref(gen);
  return vow_undefined();
}

LOOP_TEST(stream, close_ends_a_waiting_reader) {
  pair p;
  pipe_streams(&p.rd, &p.wr);
  vow_promise *r = vow_async(loop, close_wakes_reader, &p);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(r), VOW_FULFILLED);
  vow_promise_unref(r);
  vow_stream_unref(p.rd);
  vow_stream_unref(p.wr);
}

static vow_value aborted_reader(vow_loop *l, void *arg) {
  pair *p = arg;
  vow_abort_signal *sig = vow_abort_signal_new(l);
  cr_assert_eq(vow_stream_set_signal(p->rd, sig), 0);
  vow_asyncgen *gen = vow_stream_chunks(p->rd);
  vow_promise *next = vow_asyncgen_next(gen, vow_undefined());
  vow_abort(sig, vow_error(VOW_EABORTED, "user pressed stop"));
  vow_value v;
  cr_assert_eq(vow_await(next, &v), VOW_EREJECTED);
  cr_assert_str_eq(vow_error_message(v), "user pressed stop");
  vow_unref(v);
  /* Writes to a stream closed by its signal reject with the same reason. */
  cr_assert_eq(vow_await(vow_stream_write(p->rd, "x", 1), &v), VOW_EREJECTED);
  cr_assert_str_eq(vow_error_message(v), "user pressed stop");
  vow_unref(v);
  vow_abort_signal_unref(sig);
  vow_asyncgen_unref(gen);
  return vow_undefined();
}

LOOP_TEST(stream, an_abort_signal_closes_the_stream_with_its_reason) {
  pair p;
  pipe_streams(&p.rd, &p.wr);
  vow_promise *r = vow_async(loop, aborted_reader, &p);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(r), VOW_FULFILLED);
  vow_promise_unref(r);
  vow_stream_unref(p.rd);
  vow_stream_unref(p.wr);
}

static vow_value idle_reader(vow_loop *l, void *arg) {
  (void)l;
  pair *p = arg;
  cr_assert_eq(vow_stream_set_timeout(p->rd, 200), 0);
  char got[8];
  vow_value err;
  cr_assert_eq(collect(vow_stream_chunks(p->rd), NULL, got, sizeof got, &err), VOW_EREJECTED);
  cr_assert_eq(vow_error_code(err), VOW_ETIMEDOUT);
  cr_assert(strstr(vow_error_message(err), "ETIMEDOUT: idle for 200 ms"), "%s", vow_error_message(err));
  vow_unref(err);
  return vow_undefined();
}

Test(stream, an_idle_stream_times_out) {
  vow_loop_free(loop);
  vow_loop_options o = {.virtual_clock = 1};
  cr_assert_eq(vow_loop_new(&loop, &o), 0);
  pair p;
  pipe_streams(&p.rd, &p.wr);
  vow_promise *r = vow_async(loop, idle_reader, &p);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(r), VOW_FULFILLED);
  vow_promise_unref(r);
  vow_stream_unref(p.rd);
  vow_stream_unref(p.wr);
  cr_assert_eq(vow_loop_free(loop), 0);
  loop = NULL;
  TEST_LEAK_CHECK();
}

/* ---- files and devices (the descriptor backend) ---- */

static vow_value file_round_trip(vow_loop *l, void *path) {
  (void)l;
  int fd = open(path, O_WRONLY | O_TRUNC);
  vow_stream *w;
  cr_assert_eq(vow_stream_open_fd(l, fd, &w), 0);
  close(fd);
  for (int i = 0; i < 100; i++) {
    char line[32];
    int n = snprintf(line, sizeof line, "line %d\n", i);
    vow_promise_unref(vow_stream_write(w, line, (size_t)n)); /* queued in order */
  }
  cr_assert_eq(vow_await(vow_stream_end(w), NULL), 0);
  cr_assert_eq(vow_stream_write_queue(w), 0);
  vow_stream_unref(w);
  fd = open(path, O_RDONLY);
  vow_stream *r;
  cr_assert_eq(vow_stream_open_fd(l, fd, &r), 0);
  close(fd);
  int count = 0;
  vow_for_await it;
  vow_for_await_gen(&it, vow_stream_lines(r, 0));
  VOW_FOR_AWAIT(&it, line) {
    char want[32];
    snprintf(want, sizeof want, "line %d", count++);
    cr_assert_str_eq(vow_str(line), want);
  }
  cr_assert_eq(vow_for_await_end(&it, NULL), 0);
  cr_assert_eq(count, 100);
  vow_stream_unref(r);
  return vow_undefined();
}

LOOP_TEST(stream, a_file_is_written_in_order_and_read_back_as_lines) {
  char path[] = "/tmp/vow-stream-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  close(fd);
  vow_promise *r = vow_async(loop, file_round_trip, path);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(r), VOW_FULFILLED);
  vow_promise_unref(r);
  unlink(path);
}

static vow_value disk_full(vow_loop *l, void *arg) {
  (void)arg;
  int fd = open("/dev/full", O_WRONLY);
  cr_assert_geq(fd, 0);
  vow_stream *w;
  cr_assert_eq(vow_stream_open_fd(l, fd, &w), 0);
  close(fd);
  vow_value err;
  cr_assert_eq(vow_await(vow_stream_write(w, "data", 4), &err), VOW_EREJECTED);
  cr_assert_eq(vow_error_code(err), UV_ENOSPC);
  cr_assert(strstr(vow_error_message(err), "ENOSPC: write fd"), "%s", vow_error_message(err));
  vow_unref(err);
  vow_stream_unref(w);
  return vow_undefined();
}

LOOP_TEST(stream, a_full_disk_rejects_the_write_with_enospc) {
  vow_promise *r = vow_async(loop, disk_full, NULL);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(r), VOW_FULFILLED);
  vow_promise_unref(r);
}

LOOP_TEST(stream, bad_descriptors_are_refused_with_a_code) {
  vow_stream *s = (vow_stream *)1;
  cr_assert_eq(vow_stream_open_fd(loop, 987, &s), UV_EBADF);
  cr_assert_null(s);
  cr_assert_eq(vow_stream_open_fd(loop, -1, &s), UV_EBADF);
  cr_assert_eq(vow_stream_open_fd(NULL, 0, &s), VOW_EINVAL);
  cr_assert_null(vow_stream_chunks(NULL));
  cr_assert_null(vow_stream_write(NULL, "x", 1));
  cr_assert_eq(vow_stream_set_timeout(NULL, 1), VOW_EINVAL);
  vow_stream_unref(NULL);
}

/* ---- the loop freed under open streams ---- */

static vow_value waits_forever(vow_loop *l, void *arg) {
  (void)l;
  pair *p = arg;
  char got[8];
  vow_value err;
  collect(vow_stream_chunks(p->rd), NULL, got, sizeof got, &err);
  vow_unref(err);
  return vow_undefined();
}

Test(stream, freeing_the_loop_under_a_waiting_reader_and_pending_writes) {
  pair p;
  pipe_streams(&p.rd, &p.wr);
  vow_promise *r = vow_async(loop, waits_forever, &p);
  char big[200000] = {0};
  vow_promise *w = vow_stream_write(p.wr, big, sizeof big); /* more than the pipe holds */
  vow_promise_unref(w);
  vow_stream_unref(p.wr);
  vow_promise_unref(r);
  /* Nothing runs: the loop is freed with the reader suspended and the write
   * pending. It must end, and leak nothing. */
  vow_stream_unref(p.rd);
  cr_assert_eq(vow_loop_free(loop), 0);
  loop = NULL;
  TEST_LEAK_CHECK();
}

/* ---- stdin on a terminal ---- */

static vow_value echo_stdin_lines(vow_loop *l, void *arg) {
  (void)arg;
  vow_stream *in = vow_stdin(l), *out = vow_stdout(l);
  if (!in || !out) return vow_throw(vow_error(VOW_EINVAL, "no stdio"));
  cr_assert_eq(vow_stdin(l), in, "one stdin stream per loop");
  vow_stream_unref(in);
  vow_for_await it;
  vow_for_await_gen(&it, vow_stream_lines(in, 0));
  VOW_FOR_AWAIT(&it, line) {
    char msg[128];
    int n = snprintf(msg, sizeof msg, "got:%s.\n", vow_str(line));
    vow_await(vow_stream_write(out, msg, (size_t)n), NULL);
    if (!strcmp(vow_str(line), "quit")) break;
  }
  vow_for_await_end(&it, NULL);
  vow_stream_unref(in);
  vow_stream_unref(out);
  return vow_undefined();
}

Test(stream, stdin_lines_on_a_real_terminal) {
  vow_loop_free(loop);
  loop = NULL;
  int master;
  pid_t pid = forkpty(&master, NULL, NULL, NULL);
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    int rc = vow_run(echo_stdin_lines, NULL, NULL, NULL);
    _exit(rc == 0 ? 0 : 4);
  }
  const char *typed = "hello tty\nsecond\nquit\n";
  cr_assert_eq(write(master, typed, strlen(typed)), (ssize_t)strlen(typed));
  char seen[4096];
  size_t len = 0;
  while (len < sizeof seen - 1 && !strstr(seen, "got:quit.")) {
    ssize_t n = read(master, seen + len, sizeof seen - 1 - len);
    if (n <= 0) break; /* EIO once the child has exited */
    len += (size_t)n;
    seen[len] = '\0';
  }
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  close(master);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child ended with status %d", status);
  cr_assert(strstr(seen, "got:hello tty."), "%s", seen);
  cr_assert(strstr(seen, "got:second."), "%s", seen);
  cr_assert(strstr(seen, "got:quit."), "%s", seen);
}

/* stdin from a pipe and from a file read the same lines. */
static void run_with_stdin(int fd, const char *expect) {
  int out[2];
  cr_assert_eq(pipe(out), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fd, 0);
    dup2(out[1], 1);
    close(out[0]);
    _exit(vow_run(echo_stdin_lines, NULL, NULL, NULL) == 0 ? 0 : 4);
  }
  close(out[1]);
  char seen[512];
  size_t len = 0;
  ssize_t n;
  while ((n = read(out[0], seen + len, sizeof seen - 1 - len)) > 0) len += (size_t)n;
  seen[len] = '\0';
  close(out[0]);
  int status;
  waitpid(pid, &status, 0);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  cr_assert_str_eq(seen, expect);
}

Test(stream, stdin_lines_from_a_pipe_and_from_a_file) {
  vow_loop_free(loop);
  loop = NULL;
  const char *text = "alpha\r\nbeta\ngamma";
  const char *expect = "got:alpha.\ngot:beta.\ngot:gamma.\n";
  int in[2];
  cr_assert_eq(pipe(in), 0);
  cr_assert_eq(write(in[1], text, strlen(text)), (ssize_t)strlen(text));
  close(in[1]);
  run_with_stdin(in[0], expect);
  close(in[0]);
  char path[] = "/tmp/vow-stdin-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  lseek(fd, 0, SEEK_SET);
  run_with_stdin(fd, expect);
  close(fd);
  unlink(path);
}

/* ---- the line splitter on its own ---- */

Test(lines, pieces_of_any_size_give_the_same_lines) {
  const char *text = "a\r\nbb\rccc\n\ndddd\r\r\ne";
  const char *want = "a|bb|ccc||dddd||e|";
  for (size_t step = 1; step <= strlen(text); step++) {
    vow__lines l;
    vow__lines_init(&l, 64);
    char got[64] = "";
    for (size_t at = 0; at <= strlen(text); at += step) {
      size_t n = strlen(text) - at < step ? strlen(text) - at : step;
      cr_assert_eq(vow__lines_push(&l, text + at, n), 0);
      int last = at + step > strlen(text);
      const char *line;
      size_t len;
      while (vow__lines_next(&l, last, &line, &len) == 1)
        snprintf(got + strlen(got), sizeof got - strlen(got), "%.*s|", (int)len, line);
    }
    cr_assert_str_eq(got, want, "split every %zu bytes", step);
    vow__lines_free(&l);
  }
}
