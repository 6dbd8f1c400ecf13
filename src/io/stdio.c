/*
 * stdio.c — process.stdin, stdout and stderr, and a stream over any open
 * descriptor.
 *
 * What backs the stream is decided by what the descriptor is, at run time:
 * a TTY or a pipe/socket is a libuv handle (polled); a regular file or a
 * character device such as /dev/null is the file-descriptor backend (read and
 * written on libuv's pool), since files cannot be polled. So `prog < file`,
 * `cmd | prog` and a terminal all read the same way.
 *
 * The caller's descriptor is never closed: the stream works on a duplicate
 * (F_DUPFD_CLOEXEC, above 2), which it closes with itself. A pipe's file
 * description is shared with the original, so libuv's O_NONBLOCK applies to
 * both, as it does in Node.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "io/io.h"
#include "io/stream.h"

/* A handle-backed stream over fd (taken), of the kind libuv guessed. */
static int open_handle(vow_loop *loop, int fd, uv_handle_type kind, vow_stream **out) {
  vow__uv_stream *h;
  vow_stream *s = vow__stream_alloc(loop, &h);
  if (!s) {
    close(fd);
    return VOW_ENOMEM;
  }
  int rc;
  if (kind == UV_TTY) {
    rc = uv_tty_init(&loop->uv, &h->tty, fd, 0);
    if (rc != 0) {
      close(fd);
      vow__stream_discard(s);
      return rc;
    }
  } else {
    rc = kind == UV_TCP ? uv_tcp_init(&loop->uv, &h->tcp) : uv_pipe_init(&loop->uv, &h->pipe, 0);
    if (rc != 0) {
      close(fd);
      vow__stream_discard(s);
      return rc;
    }
    rc = kind == UV_TCP ? uv_tcp_open(&h->tcp, fd) : uv_pipe_open(&h->pipe, fd);
  }
  vow__stream_opened(s);
  if (rc != 0) {
    close(fd); /* not taken by libuv: the open failed */
    vow_stream_unref(s); /* closes the initialised handle */
    return rc;
  }
  *out = s;
  return 0;
}

int vow_stream_open_fd(vow_loop *loop, int fd, vow_stream **out) {
  if (!out) return VOW_EINVAL;
  *out = NULL;
  if (!vow__loop_usable(loop)) return loop ? VOW_ETHREAD : VOW_EINVAL;
  uv_handle_type kind = uv_guess_handle(fd);
  if (kind == UV_UNKNOWN_HANDLE) return fcntl(fd, F_GETFD) < 0 ? UV_EBADF : VOW_EINVAL;
  if (kind == UV_UDP) return VOW_EINVAL;
  int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (dup_fd < 0) return uv_translate_sys_error(errno);
  char name[32];
  snprintf(name, sizeof name, "fd %d", fd);
  if (kind == UV_FILE) {
    vow_stream *s = vow__stream_from_fd(loop, dup_fd, 1, -1);
    if (!s) return VOW_ENOMEM;
    vow__stream_set_name(s, name);
    *out = s;
    return 0;
  }
  int rc = open_handle(loop, dup_fd, kind, out);
  if (rc == 0) vow__stream_set_name(*out, name);
  return rc;
}

/* The loop's stream over fd 0, 1 or 2: made once, shared after. */
static vow_stream *stdio_stream(vow_loop *loop, int fd) {
  static const char *const names[3] = {"stdin", "stdout", "stderr"};
  if (!vow__loop_usable(loop)) return NULL;
  vow__io *io = vow__io_get(loop);
  if (!io) return NULL;
  if (io->stdio[fd]) return vow_stream_ref(io->stdio[fd]);
  vow_stream *s;
  if (vow_stream_open_fd(loop, fd, &s) != 0) return NULL;
  vow__stream_set_name(s, names[fd]);
  io->stdio[fd] = s; /* weak: cleared when the stream goes */
  return s;
}

vow_stream *vow_stdin(vow_loop *loop) { return stdio_stream(loop, 0); }
vow_stream *vow_stdout(vow_loop *loop) { return stdio_stream(loop, 1); }
vow_stream *vow_stderr(vow_loop *loop) { return stdio_stream(loop, 2); }
