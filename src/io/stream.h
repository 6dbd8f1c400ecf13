/*
 * stream.h — how the I/O layer's files make vow_streams (internal).
 *
 * A vow_stream has one of two backends:
 *
 *   - a libuv stream handle (uv_tcp_t, uv_pipe_t, uv_tty_t), which the
 *     stream owns and closes: tcp.c, process.c and stdio.c make these;
 *   - a file descriptor read and written with uv_fs_read / uv_fs_write on
 *     libuv's thread pool (regular files, and stdin or stdout redirected to a
 *     file, which libuv cannot poll): fs.c and stdio.c make these.
 *
 * Making a handle-backed stream is two steps, because the handle must live
 * inside the stream before libuv sees it (uv_spawn fills pipes in place, a
 * connect request points at the handle):
 *
 *   vow__uv_stream *h;
 *   vow_stream *s = vow__stream_alloc(loop, &h);    // NULL: out of memory
 *   if (uv_tcp_init(uv, &h->tcp) != 0) { vow__stream_discard(s); ... }
 *   vow__stream_opened(s);                           // from here on: unref closes it
 *
 * Until vow__stream_opened the stream is inert (nothing reads, writes or
 * closes it); vow__stream_discard frees it without touching the handle.
 */
#ifndef VOW_IO_STREAM_H
#define VOW_IO_STREAM_H

#include <uv.h>

#include "core/loop.h"

typedef union vow__uv_stream {
  uv_handle_t handle;
  uv_stream_t stream;
  uv_tcp_t tcp;
  uv_pipe_t pipe;
  uv_tty_t tty;
} vow__uv_stream;

/* A new stream (one reference, the caller's) with room for a handle that the
 * caller initialises; *handle points at it. NULL when out of memory. */
vow_stream *vow__stream_alloc(vow_loop *loop, vow__uv_stream **handle);
/* The handle is initialised: the stream now owns it (closing it with the stream). */
void vow__stream_opened(vow_stream *s);
/* Frees a stream whose handle was never initialised. */
void vow__stream_discard(vow_stream *s);

/* A stream over a file descriptor, read and written through libuv's fs calls
 * from offset (-1: the descriptor's current position, as for stdin). When own
 * is set the stream closes fd when it closes. A new reference, or NULL when
 * out of memory (fd is then closed if owned). */
vow_stream *vow__stream_from_fd(vow_loop *loop, uv_file fd, int own, int64_t offset);

/* Names the stream in its error messages ("tcp 127.0.0.1:6379", "stdin",
 * "process 'cat' stdout"); copied, cut at 95 bytes. */
void vow__stream_set_name(vow_stream *s, const char *name);

/* The libuv handle of a handle-backed stream (borrowed), or NULL for a file
 * stream or a closed one: for getsockname, keep-alive, TTY modes. */
vow__uv_stream *vow__stream_handle(vow_stream *s);

/* A POINTER value holding s: takes the caller's reference to s (released
 * when the value's last reference goes), read back with vow_as_stream. */
vow_value vow__stream_value(vow_stream *s);

#endif
