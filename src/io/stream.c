/*
 * stream.c — byte streams: one interface over libuv stream handles (pipes,
 * TCP, TTYs) and over file descriptors read and written on libuv's pool.
 *
 * Life of a stream:
 *
 *   INERT --opened--> OPEN --close--> CLOSING --handle closed / fd closed--> CLOSED
 *
 * Invariants:
 *   - refs counts the references handed out (the maker's, values, readers);
 *     holds counts what libuv still owes us (the open handle, each request in
 *     flight). The memory goes when both are zero; the last ref closes the
 *     stream, so holds then drain on their own.
 *   - Reading is pulled: the kernel is read only while a reader is active and
 *     less than HIGH_WATER bytes wait in `in` (reading stops at once when the
 *     reader goes, so an abandoned stream never keeps the loop alive).
 *   - Writes complete in order: libuv keeps a handle's writes in order, and a
 *     file stream has at most one write in flight, the rest queued behind it.
 *     `writes` lists every write not yet completed, oldest first.
 *   - Every callback from libuv that settles a promise does so through
 *     vow__loop_enter, so microtasks drain after it.
 *   - Once the loop's I/O state is torn down (orphaned), callbacks only give
 *     back memory: no promise is settled and no user code runs.
 */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/list.h"
#include "io/io.h"
#include "io/lines.h"
#include "io/stream.h"
#include "promise/promise.h"

enum { HIGH_WATER = 64 * 1024, READ_SIZE = 64 * 1024, DEFAULT_MAX_LINE = 64 * 1024 };
enum { S_INERT, S_OPEN, S_CLOSING, S_CLOSED };

typedef struct wreq {
  union {
    uv_write_t write;
    uv_fs_t fs;
  } uv;
  vow_stream *s;
  vow_value chunk;      /* the bytes: a STRING */
  vow_promise *done;    /* settled when written */
  size_t queued;        /* its bytes counted in queued_bytes (less what uv_try_write took) */
  struct wreq *next;
  int submitted;        /* handed to libuv */
} wreq;

struct vow_stream {
  vow_loop *loop;
  vow__io *io;
  vow_stream *prev, *next;   /* the loop's open streams (for teardown) */
  int refs;
  int holds;
  int state;
  int is_fd;                 /* the file-descriptor backend */
  int orphaned;              /* the loop's I/O state is gone */
  char name[96];             /* for messages: "stdin", "tcp 127.0.0.1:80" */

  /* reading */
  vow__buf in;               /* read, not yet handed to the reader */
  int reading;               /* handles: uv_read_start is in force */
  int read_inflight;         /* files: an fs read is in flight */
  int eof;
  int read_err;              /* a libuv code, once reading failed */
  void *reader;              /* the active reader's record; NULL when none */
  vow_promise *waiter;       /* the reader waits for data (a reference) */

  /* writing */
  wreq *writes, *writes_tail;
  size_t queued_bytes;
  int ended;                 /* vow_stream_end was called */
  int cancelled_writes;      /* closing dropped writes (a pending end then fails) */
  vow_promise *end_done;     /* settled when the end is done (a reference) */
  uv_shutdown_t shutdown;

  /* closing */
  vow_value reason;          /* why it was closed (undefined: by request) */
  vow_promise *close_done;   /* settled when closed (a reference) */

  /* bounds */
  uint64_t idle_ms;
  uint64_t last_active;
  vow_timer idle_timer;
  vow_abort_signal *signal;
  int64_t signal_listener;

  /* the file-descriptor backend */
  uv_file fd;
  int own_fd;
  int64_t offset;            /* -1: the descriptor's position */
  uv_fs_t read_req;
  char *read_buf;

  vow__uv_stream h;          /* the handle backend (last: the biggest part) */
};

static void begin_close(vow_stream *s);
static void pull(vow_stream *s);

/* ---- errors ----------------------------------------------------------------- */

/* "ECONNRESET: read tcp 127.0.0.1:6379" — the code's name, the operation,
 * the stream. */
static vow_value stream_error(const vow_stream *s, int code, const char *op) {
  const char *name = code <= -5000 ? vow_err_name(code) : uv_err_name(code);
  return vow_errorf(code, "%s: %s %s", name, op, s->name);
}

/* ---- lifetime --------------------------------------------------------------- */

static void unlink_stream(vow_stream *s) {
  if (s->orphaned || !s->io) return;
  if (s->prev || s->io->streams == s) VOW__LIST_UNLINK(s->io->streams, s);
  for (int i = 0; i < 3; i++)
    if (s->io->stdio[i] == s) s->io->stdio[i] = NULL;
}

static void stream_free(vow_stream *s) {
  unlink_stream(s);
  vow_unref(s->reason);
  vow__buf_free(&s->in);
  vow__free(s->read_buf);
  vow__free(s);
}

/* Frees the stream once nothing refers to it and libuv owes it nothing. */
static void maybe_free(vow_stream *s) {
  if (s->refs == 0 && s->holds == 0) stream_free(s);
}

static void release_hold(vow_stream *s) {
  s->holds--;
  maybe_free(s);
}

vow_stream *vow_stream_ref(vow_stream *s) {
  if (s) s->refs++;
  return s;
}

void vow_stream_unref(vow_stream *s) {
  if (!s) return;
  if (--s->refs > 0) return;
  s->holds++; /* a file stream may finish closing inside begin_close */
  if (!s->orphaned) begin_close(s);
  s->holds--;
  maybe_free(s);
}

vow_stream *vow__stream_alloc(vow_loop *loop, vow__uv_stream **handle) {
  if (!vow__loop_usable(loop)) return NULL;
  vow__io *io = vow__io_get(loop);
  vow_stream *s = io ? vow__calloc(1, sizeof *s) : NULL;
  if (!s) return NULL;
  s->loop = loop;
  s->io = io;
  s->refs = 1;
  s->fd = -1;
  s->offset = -1;
  snprintf(s->name, sizeof s->name, "stream");
  *handle = &s->h;
  return s;
}

static void link_stream(vow_stream *s) {
  s->state = S_OPEN;
  s->holds++; /* the open handle or descriptor */
  s->last_active = vow__loop_now(s->loop);
  VOW__LIST_PUSH(s->io->streams, s);
}

void vow__stream_opened(vow_stream *s) {
  s->h.handle.data = s;
  link_stream(s);
}

void vow__stream_discard(vow_stream *s) {
  if (s) vow__free(s);
}

void vow__stream_set_name(vow_stream *s, const char *name) {
  snprintf(s->name, sizeof s->name, "%s", name);
}

vow_stream *vow__stream_from_fd(vow_loop *loop, uv_file fd, int own, int64_t offset) {
  vow__uv_stream *unused;
  vow_stream *s = vow__stream_alloc(loop, &unused);
  if (!s) {
    if (own && loop) {
      uv_fs_t req;
      uv_fs_close(&loop->uv, &req, fd, NULL);
      uv_fs_req_cleanup(&req);
    }
    return NULL;
  }
  s->is_fd = 1;
  s->fd = fd;
  s->own_fd = own;
  s->offset = offset;
  snprintf(s->name, sizeof s->name, "fd %d", (int)fd);
  s->read_req.data = s;
  link_stream(s);
  return s;
}

vow__uv_stream *vow__stream_handle(vow_stream *s) {
  return s && !s->is_fd && s->state == S_OPEN ? &s->h : NULL;
}

/* ---- values ------------------------------------------------------------------ */

static void stream_value_free(void *s) { vow_stream_unref(s); }

vow_value vow__stream_value(vow_stream *s) {
  return vow_pointer(s, stream_value_free);
}

vow_stream *vow_as_stream(vow_value v) {
  if (v.kind != VOW_POINTER || !v.as.obj) return NULL;
  vow__pointer *p = (vow__pointer *)v.as.obj;
  return p->destroy == stream_value_free ? p->ptr : NULL;
}

/* ---- settling, always from inside the loop's entry point ---------------------- */

static void settle(vow_promise **p, vow_value v, int rejected) {
  vow_promise *q = *p;
  *p = NULL;
  if (!q) {
    vow_unref(v);
    return;
  }
  if (rejected) vow_promise_reject(q, v);
  else vow_promise_resolve(q, v);
  vow_promise_unref(q);
}

static void wake_reader_task(vow_loop *loop, void *arg) {
  (void)loop;
  vow_stream *s = arg;
  settle(&s->waiter, vow_undefined(), 0);
}

/* Something the reader waits for happened (data, end, error, close). */
static void wake_reader(vow_stream *s, int from_libuv) {
  if (!s->waiter || s->orphaned) return;
  if (from_libuv) vow__loop_enter(s->loop, wake_reader_task, s);
  else wake_reader_task(s->loop, s);
}

static void touch(vow_stream *s) {
  if (s->idle_ms) s->last_active = vow__loop_now(s->loop);
}

/* ---- reading: the handle backend ---------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  vow_stream *s = h->data;
  vow__io *io = s->io;
  if (!io->read_scratch) io->read_scratch = vow__malloc(READ_SIZE);
  *buf = uv_buf_init(io->read_scratch, io->read_scratch ? READ_SIZE : 0);
}

/* Files need nothing: a read in flight finishes, and pull() issues no next one. */
static void stop_reading(vow_stream *s) {
  if (!s->reading) return;
  s->reading = 0;
  uv_read_stop(&s->h.stream);
}

/* Data, end or an error arrived: buffer it and wake the reader. */
static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  vow_stream *s = h->data;
  if (nread == 0) return; /* EAGAIN */
  if (nread > 0) {
    if (vow__buf_append(&s->in, buf->base, (size_t)nread) != 0) {
      s->read_err = VOW_ENOMEM;
      stop_reading(s);
    }
    touch(s);
  } else {
    if (nread == UV_EOF) s->eof = 1;
    else s->read_err = nread == UV_ENOBUFS ? VOW_ENOMEM : (int)nread;
    stop_reading(s);
  }
  if (s->in.len >= HIGH_WATER) stop_reading(s);
  wake_reader(s, 1);
}

/* ---- reading: the file-descriptor backend -------------------------------------- */

static void try_close_fd(vow_stream *s, int from_libuv);

static void on_fs_read(uv_fs_t *req) {
  vow_stream *s = req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  s->read_inflight = 0;
  if (s->orphaned || s->state != S_OPEN) {
    try_close_fd(s, 1); /* it may have waited for this read */
    release_hold(s);
    return;
  }
  if (n > 0) {
    if (s->offset >= 0) s->offset += n;
    if (vow__buf_append(&s->in, s->read_buf, (size_t)n) != 0) s->read_err = VOW_ENOMEM;
    touch(s);
  } else if (n == 0) {
    s->eof = 1;
  } else {
    s->read_err = (int)n;
  }
  pull(s);
  wake_reader(s, 1);
  release_hold(s);
}

static void fd_read(vow_stream *s) {
  if (!s->read_buf) s->read_buf = vow__malloc(READ_SIZE);
  if (!s->read_buf) {
    s->read_err = VOW_ENOMEM;
    return;
  }
  uv_buf_t b = uv_buf_init(s->read_buf, READ_SIZE);
  int rc = uv_fs_read(&s->loop->uv, &s->read_req, s->fd, &b, 1, s->offset, on_fs_read);
  if (rc < 0) {
    s->read_err = rc;
    return;
  }
  s->read_inflight = 1;
  s->holds++;
}

/* Reads ahead while a reader is active and the buffer is below the mark. */
static void pull(vow_stream *s) {
  if (s->reading || s->read_inflight || !s->reader || s->state != S_OPEN || s->orphaned) return;
  if (s->eof || s->read_err || s->in.len >= HIGH_WATER) return;
  if (s->is_fd) {
    fd_read(s);
    return;
  }
  int rc = uv_read_start(&s->h.stream, on_alloc, on_read);
  if (rc < 0) s->read_err = rc;
  else s->reading = 1;
}

/* ---- readers ----------------------------------------------------------------- */

/* One reader (a chunks or lines generator): its record is the generator's arg. */
typedef struct reader {
  vow_stream *s;      /* a reference */
  int claimed;        /* this reader is s->reader */
  vow__lines lines;   /* lines readers only */
  size_t max_line;    /* 0: a chunks reader */
} reader;

/* The reader is done: the stream stops reading until the next one comes. */
static void unclaim(reader *r) {
  r->claimed = 0;
  r->s->reader = NULL;
  stop_reading(r->s);
}

static void reader_release(void *arg) {
  reader *r = arg;
  vow_stream *s = r->s;
  if (r->claimed && s->reader == r) unclaim(r);
  vow__lines_free(&r->lines);
  vow__free(r);
  vow_stream_unref(s);
}

/* The next chunk, inside the reader's coroutine: 1 with *out (a STRING), 0 at
 * the end, or a negative code with *out the reason. */
static int next_chunk(vow_loop *loop, vow_stream *s, vow_value *out) {
  for (;;) {
    if (s->state == S_OPEN && s->in.len) {
      *out = vow_string_n(s->in.data, s->in.len);
      s->in.len = 0;
      pull(s);
      return out->kind == VOW_STRING ? 1 : VOW_ENOMEM;
    }
    if (s->state != S_OPEN) {
      if (vow_is_undefined(s->reason)) return 0;
      *out = vow_ref(s->reason);
      return vow_error_code(s->reason) ? vow_error_code(s->reason) : VOW_EABORTED;
    }
    if (s->read_err) {
      *out = stream_error(s, s->read_err, "read");
      return s->read_err;
    }
    if (s->eof) return 0;
    pull(s);
    if (s->read_err) continue;
    s->waiter = vow_promise_new(loop);
    if (!s->waiter) {
      *out = vow_error_nomem();
      return VOW_ENOMEM;
    }
    vow_promise *waiter = s->waiter;
    vow_value ignored;
    int rc = vow_await(vow_promise_ref(waiter), &ignored);
    vow_unref(ignored);
    if (s->waiter == waiter) { /* the await itself failed: nobody settled it */
      vow_promise_unref(waiter);
      s->waiter = NULL;
    }
    if (rc == VOW_ECLOSING || rc == VOW_ENOMEM) {
      *out = rc == VOW_ENOMEM ? vow_error_nomem() : vow_error(VOW_ECLOSING, "the loop is being freed");
      return rc;
    }
  }
}

/* Claims the stream for r, or says why not. */
static int claim(reader *r, vow_value *why) {
  vow_stream *s = r->s;
  if (s->reader) {
    *why = stream_error(s, VOW_EBUSY, "read (another reader is active) from");
    return VOW_EBUSY;
  }
  s->reader = r;
  r->claimed = 1;
  return 0;
}

/* Yields v; returns 0 to go on, or the body's result when the consumer stopped. */
static int hand_out(vow_value v, vow_value *result) {
  vow_value sent;
  int rc = vow_yield(v, &sent);
  if (rc == 0) {
    vow_unref(sent);
    return 0;
  }
  *result = rc == VOW_EDONE ? sent : vow_throw(sent);
  return 1;
}

static vow_value chunks_body(vow_loop *loop, vow_asyncgen *gen, void *arg) {
  (void)gen;
  reader *r = arg;
  vow_value why;
  if (claim(r, &why) != 0) return vow_throw(why);
  vow_value result = vow_undefined();
  for (;;) {
    vow_value chunk;
    int rc = next_chunk(loop, r->s, &chunk);
    if (rc == 0) break;
    if (rc < 0) {
      result = vow_throw(chunk);
      break;
    }
    if (hand_out(chunk, &result)) break;
  }
  unclaim(r);
  return result;
}

static vow_value lines_body(vow_loop *loop, vow_asyncgen *gen, void *arg) {
  (void)gen;
  reader *r = arg;
  vow_value why;
  if (claim(r, &why) != 0) return vow_throw(why);
  vow_value result = vow_undefined();
  int at_end = 0;
  for (;;) {
    const char *line;
    size_t len;
    int got = vow__lines_next(&r->lines, at_end, &line, &len);
    if (got == VOW_ETOOBIG) {
      char what[64];
      snprintf(what, sizeof what, "read (a line longer than %zu bytes) from", r->max_line);
      result = vow_throw(stream_error(r->s, VOW_ETOOBIG, what));
      break;
    }
    if (got == 1) {
      vow_value v = vow_string_n(line, len);
      if (v.kind != VOW_STRING) {
        result = vow_throw(v);
        break;
      }
      if (hand_out(v, &result)) break;
      continue;
    }
    if (at_end) break;
    vow_value chunk;
    int rc = next_chunk(loop, r->s, &chunk);
    if (rc == 0) {
      at_end = 1;
      continue;
    }
    if (rc < 0) {
      result = vow_throw(chunk);
      break;
    }
    int pushed = vow__lines_push(&r->lines, vow_str(chunk), vow_str_len(chunk));
    vow_unref(chunk);
    if (pushed != 0) {
      result = vow_throw(vow_error_nomem());
      break;
    }
  }
  unclaim(r);
  return result;
}

static vow_asyncgen *new_reader(vow_stream *s, size_t max_line) {
  if (!s || !vow__loop_usable(s->loop)) return NULL;
  reader *r = vow__calloc(1, sizeof *r);
  if (!r) return NULL;
  r->s = vow_stream_ref(s);
  r->max_line = max_line;
  if (max_line) vow__lines_init(&r->lines, max_line);
  static const vow_async_options chunk_opts = {.name = "stream chunks", .arg_free = reader_release};
  static const vow_async_options line_opts = {.name = "stream lines", .arg_free = reader_release};
  return vow_asyncgen_new_ex(s->loop, max_line ? lines_body : chunks_body, r,
                             max_line ? &line_opts : &chunk_opts);
}

vow_asyncgen *vow_stream_chunks(vow_stream *s) {
  return new_reader(s, 0);
}

vow_asyncgen *vow_stream_lines(vow_stream *s, size_t max_line) {
  return new_reader(s, max_line ? max_line : DEFAULT_MAX_LINE);
}

/* ---- writing ------------------------------------------------------------------ */

static void writes_push(vow_stream *s, wreq *w) {
  if (s->writes_tail) s->writes_tail->next = w;
  else s->writes = w;
  s->writes_tail = w;
}

static wreq *writes_pop(vow_stream *s) {
  wreq *w = s->writes;
  if (!w) return NULL;
  s->writes = w->next;
  if (!s->writes) s->writes_tail = NULL;
  return w;
}

/* libuv's buffers are not const, though writes only read them. */
static uv_buf_t chunk_buf(vow_value chunk) {
  union {
    const char *in;
    char *out;
  } bytes = {vow_str(chunk)};
  return uv_buf_init(bytes.out, (unsigned)vow_str_len(chunk));
}

static void wreq_free(wreq *w) {
  vow_unref(w->chunk);
  vow_promise_unref(w->done);
  vow__free(w);
}

static void check_end(vow_stream *s);

typedef struct completion {
  wreq *w;
  int status;
} completion;

static void write_done_task(vow_loop *loop, void *arg) {
  (void)loop;
  completion *c = arg;
  wreq *w = c->w;
  vow_stream *s = w->s;
  if (c->status == 0) settle(&w->done, vow_undefined(), 0);
  else if (c->status == UV_ECANCELED && !vow_is_undefined(s->reason))
    settle(&w->done, vow_ref(s->reason), 1);
  else settle(&w->done, stream_error(s, c->status, "write"), 1);
  check_end(s);
}

static void fd_write_next(vow_stream *s);

/* A write finished (in order: it is the oldest one). */
static void write_finished(vow_stream *s, int status) {
  wreq *w = writes_pop(s);
  s->queued_bytes -= w->queued;
  if (status == 0) touch(s);
  if (!s->orphaned) {
    completion c = {w, status};
    vow__loop_enter(s->loop, write_done_task, &c);
  }
  wreq_free(w);
  if (s->is_fd) {
    if (s->state == S_OPEN && !s->orphaned) fd_write_next(s);
    else try_close_fd(s, 1); /* it may have waited for this write */
  }
  release_hold(s);
}

static void on_write(uv_write_t *req, int status) {
  wreq *w = req->data;
  write_finished(w->s, status);
}

static void on_fs_write(uv_fs_t *req) {
  wreq *w = req->data;
  vow_stream *s = w->s;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  size_t len = vow_str_len(w->chunk);
  if (n >= 0 && (size_t)n < len) n = UV_EIO; /* a short write to a file: the disk is full */
  if (n >= 0 && s->offset >= 0) s->offset += n;
  write_finished(s, n < 0 ? (int)n : 0);
}

/* File streams: one write in flight, so they land in order. */
static void fd_write_next(vow_stream *s) {
  wreq *w = s->writes;
  if (!w || w->submitted) return;
  w->submitted = 1;
  uv_buf_t b = chunk_buf(w->chunk);
  w->uv.fs.data = w;
  int rc = uv_fs_write(&s->loop->uv, &w->uv.fs, s->fd, &b, 1, s->offset, on_fs_write);
  if (rc < 0) {
    /* Nothing is in flight: finish it as libuv would have, on a later turn. */
    w->uv.fs.result = rc;
    on_fs_write(&w->uv.fs);
  }
}

/* Why a write cannot be queued now, or 0. */
static int write_refused(const vow_stream *s) {
  if (s->state != S_OPEN || s->ended) return UV_EPIPE;
  return 0;
}

vow_promise *vow_stream_write_value(vow_stream *s, vow_value chunk) {
  if (!s || !vow__loop_usable(s->loop)) {
    vow_unref(chunk);
    return NULL;
  }
  if (chunk.kind != VOW_STRING) {
    vow_unref(chunk);
    return vow_rejected(s->loop, stream_error(s, VOW_ETYPE, "write (the chunk is not a STRING) to"));
  }
  int refused = write_refused(s);
  if (refused) {
    vow_unref(chunk);
    if (s->state != S_OPEN && !vow_is_undefined(s->reason))
      return vow_rejected(s->loop, vow_ref(s->reason));
    return vow_rejected(s->loop, stream_error(s, refused, "write after end of"));
  }
  /* Nothing queued: try the kernel first, as Node does (uv_try_write). A
   * write it takes whole is done now, with no request and no poll change;
   * what it leaves goes through uv_write, behind nothing, so order holds. */
  uv_buf_t b = chunk_buf(chunk);
  if (!s->is_fd && !s->writes && b.len) {
    int n = uv_try_write(&s->h.stream, &b, 1);
    if (n == (int)b.len) {
      touch(s);
      vow_unref(chunk);
      return vow_resolved(s->loop, vow_undefined());
    }
    if (n > 0) b = uv_buf_init(b.base + n, b.len - (unsigned)n);
    else if (n != UV_EAGAIN && n != UV_ENOSYS) {
      vow_unref(chunk);
      return vow_rejected(s->loop, stream_error(s, n, "write"));
    }
  }
  vow_promise *p = vow_promise_new(s->loop);
  wreq *w = p ? vow__calloc(1, sizeof *w) : NULL;
  if (!w) {
    vow_unref(chunk);
    vow_promise_unref(p);
    return NULL;
  }
  *w = (wreq){.s = s, .chunk = chunk, .done = vow_promise_ref(p)};
  if (!s->is_fd) {
    w->uv.write.data = w;
    int rc = uv_write(&w->uv.write, &s->h.stream, &b, 1, on_write);
    if (rc < 0) {
      settle(&w->done, stream_error(s, rc, "write"), 1);
      wreq_free(w);
      return p;
    }
    w->submitted = 1;
  }
  writes_push(s, w);
  w->queued = b.len;
  s->queued_bytes += w->queued;
  s->holds++;
  if (s->is_fd) fd_write_next(s);
  return p;
}

vow_promise *vow_stream_write(vow_stream *s, const void *data, size_t len) {
  if (!s || (!data && len)) return NULL;
  vow_value chunk = vow_string_n(data ? data : "", len);
  if (chunk.kind != VOW_STRING) return s && vow__loop_usable(s->loop) ? vow_rejected(s->loop, chunk) : NULL;
  return vow_stream_write_value(s, chunk);
}

size_t vow_stream_write_queue(const vow_stream *s) {
  return s ? s->queued_bytes : 0;
}

/* ---- ending -------------------------------------------------------------------- */

typedef struct shutdown_done {
  vow_stream *s;
  int status;
} shutdown_done;


static void shutdown_task(vow_loop *loop, void *arg) {
  (void)loop;
  shutdown_done *d = arg;
  vow_stream *s = d->s;
  if (d->status == UV_ENOTSOCK) {
    /* A pipe (not a socket) has one direction: its end is its close, once
     * the writes before it are out (they are: libuv shuts down after them). */
    settle(&s->end_done, vow_undefined(), 0);
    begin_close(s);
  } else if (d->status == 0 || d->status == UV_ENOTCONN) {
    settle(&s->end_done, vow_undefined(), 0);
  } else {
    settle(&s->end_done, stream_error(s, d->status, "shutdown"), 1);
  }
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  vow_stream *s = req->data;
  if (!s->orphaned) {
    shutdown_done d = {s, status};
    vow__loop_enter(s->loop, shutdown_task, &d);
  }
  release_hold(s);
}

/* A file stream's end is done when its last write is. */
static void check_end(vow_stream *s) {
  if (!s->is_fd || !s->ended || !s->end_done || s->writes) return;
  if (s->cancelled_writes) settle(&s->end_done, stream_error(s, UV_ECANCELED, "end"), 1);
  else settle(&s->end_done, vow_undefined(), 0);
}

vow_promise *vow_stream_end(vow_stream *s) {
  if (!s || !vow__loop_usable(s->loop)) return NULL;
  if (s->ended) return s->end_done ? vow_promise_ref(s->end_done) : vow_resolved(s->loop, vow_undefined());
  if (s->state != S_OPEN) return vow_resolved(s->loop, vow_undefined());
  /* As with close: out of memory there is no promise, but the end happens,
   * or the peer would wait for it forever. */
  vow_promise *p = vow_promise_new(s->loop);
  s->ended = 1;
  s->end_done = vow_promise_ref(p);
  if (s->is_fd) {
    check_end(s);
    return p;
  }
  s->shutdown.data = s;
  int rc = uv_shutdown(&s->shutdown, &s->h.stream, on_shutdown);
  if (rc < 0) settle(&s->end_done, stream_error(s, rc, "shutdown"), 1);
  else s->holds++;
  return p;
}

/* ---- closing -------------------------------------------------------------------- */

/* Writes that never reached libuv (a file stream's queue) end with the close. */
static void drop_queued_writes(vow_stream *s) {
  while (s->writes) {
    wreq *w = writes_pop(s);
    s->queued_bytes -= w->queued;
    s->cancelled_writes = 1;
    if (w->done) {
      if (!vow_is_undefined(s->reason)) settle(&w->done, vow_ref(s->reason), 1);
      else settle(&w->done, stream_error(s, UV_ECANCELED, "write"), 1);
    }
    wreq_free(w);
    s->holds--;
  }
}

static void closed_task(vow_loop *loop, void *arg) {
  vow_stream *s = arg;
  drop_queued_writes(s);
  check_end(s);
  settle(&s->close_done, vow_undefined(), 0);
  wake_reader_task(loop, s);
}

/* The handle or descriptor is closed: settle what waited, drop the hold. */
static void finish_close(vow_stream *s, int from_libuv) {
  s->state = S_CLOSED;
  if (s->orphaned) drop_queued_writes(s); /* their promises are gone already */
  else if (from_libuv) vow__loop_enter(s->loop, closed_task, s);
  else closed_task(s->loop, s);
  unlink_stream(s);
  release_hold(s);
}

static void on_close(uv_handle_t *h) {
  finish_close(h->data, 1);
}

/* A closing file stream closes its descriptor once no fs request uses it. */
static void try_close_fd(vow_stream *s, int from_libuv) {
  if (!s->is_fd || s->state != S_CLOSING) return;
  if (s->read_inflight || (s->writes && s->writes->submitted)) return;
  if (s->own_fd && s->fd >= 0) {
    uv_fs_t req;
    uv_fs_close(&s->loop->uv, &req, s->fd, NULL);
    uv_fs_req_cleanup(&req);
  }
  s->fd = -1;
  finish_close(s, from_libuv);
}

static void clear_bounds(vow_stream *s) {
  if (s->idle_timer > 0) vow_clear_timer(s->loop, s->idle_timer);
  s->idle_timer = 0;
  if (s->signal) {
    vow_abort_signal_off(s->signal, s->signal_listener);
    vow_abort_signal_unref(s->signal);
    s->signal = NULL;
  }
}

/* OPEN -> CLOSING: stops reading and the bounds, and closes the handle (a
 * file stream's descriptor, once its requests in flight are back). */
static void begin_close(vow_stream *s) {
  if (s->state != S_OPEN) return;
  s->state = S_CLOSING;
  s->reading = 0;
  clear_bounds(s);
  vow__buf_free(&s->in);
  if (s->is_fd) try_close_fd(s, 0);
  else uv_close(&s->h.handle, on_close);
}

/* Closes with a reason (taken): the reader and queued writes reject with it. */
static void close_with(vow_stream *s, vow_value reason) {
  if (s->state != S_OPEN) {
    vow_unref(reason);
    return;
  }
  s->reason = reason;
  vow_stream_ref(s);
  begin_close(s);
  wake_reader(s, 0);
  vow_stream_unref(s);
}

vow_promise *vow_stream_close(vow_stream *s) {
  if (!s || !vow__loop_usable(s->loop)) return NULL;
  if (s->state == S_CLOSED) return vow_resolved(s->loop, vow_undefined());
  /* Out of memory there is no promise to return, but the stream closes all
   * the same: a close that did nothing would leave its writes waiting. */
  if (!s->close_done) s->close_done = vow_promise_new(s->loop);
  vow_promise *p = vow_promise_ref(s->close_done);
  vow_stream_ref(s);
  if (s->state == S_OPEN) {
    begin_close(s);
    wake_reader(s, 0);
  }
  vow_stream_unref(s);
  return p;
}

/* ---- bounds: idle timeout, abort signal ------------------------------------------ */

static void idle_check(vow_loop *loop, void *arg) {
  vow_stream *s = arg;
  s->idle_timer = 0;
  if (s->state != S_OPEN || !s->idle_ms) return;
  uint64_t idle = vow__loop_now(loop) - s->last_active;
  if (idle < s->idle_ms) {
    s->idle_timer = vow_set_timeout(loop, s->idle_ms - idle, idle_check, s);
    if (s->idle_timer > 0) vow_timer_unref(loop, s->idle_timer);
    return;
  }
  char what[64];
  snprintf(what, sizeof what, "idle for %llu ms:", (unsigned long long)s->idle_ms);
  close_with(s, stream_error(s, VOW_ETIMEDOUT, what));
}

int vow_stream_set_timeout(vow_stream *s, uint64_t ms) {
  if (!s || !vow__loop_usable(s->loop)) return VOW_EINVAL;
  if (ms > VOW_TIMEOUT_MAX) return VOW_ERANGE;
  if (s->state != S_OPEN) return UV_EPIPE;
  s->idle_ms = ms;
  s->last_active = vow__loop_now(s->loop);
  if (s->idle_timer > 0) vow_clear_timer(s->loop, s->idle_timer);
  s->idle_timer = 0;
  if (!ms) return 0;
  vow_timer t = vow_set_timeout(s->loop, ms, idle_check, s);
  if (t < 0) return (int)t;
  vow_timer_unref(s->loop, t);
  s->idle_timer = t;
  return 0;
}

static void on_abort(vow_loop *loop, vow_value reason, void *arg) {
  (void)loop;
  vow_stream *s = arg;
  vow_abort_signal_unref(s->signal);
  s->signal = NULL;
  close_with(s, vow_ref(reason));
}

int vow_stream_set_signal(vow_stream *s, vow_abort_signal *signal) {
  if (!s || !signal || !vow__loop_usable(s->loop)) return VOW_EINVAL;
  if (s->state != S_OPEN) return UV_EPIPE;
  if (s->signal) return VOW_EBUSY;
  if (vow_abort_signal_aborted(signal)) {
    close_with(s, vow_ref(vow_abort_signal_reason(signal)));
    return 0;
  }
  int64_t id = vow_abort_signal_on(signal, on_abort, s);
  if (id < 0) return (int)id;
  s->signal = vow_abort_signal_ref(signal);
  s->signal_listener = id;
  return 0;
}

/* ---- the loop's teardown ------------------------------------------------------- */

/* Settles nothing and runs no user code: releases the promises and values the
 * streams hold (the promise layer is still alive), closes what is open, and
 * leaves libuv's late callbacks only memory to give back. */
void vow__streams_teardown(vow_loop *loop, vow__io *io) {
  (void)loop;
  while (io->streams) {
    vow_stream *s = io->streams;
    unlink_stream(s);
    clear_bounds(s);
    s->orphaned = 1;
    vow_promise_unref(s->waiter), s->waiter = NULL;
    vow_promise_unref(s->close_done), s->close_done = NULL;
    vow_promise_unref(s->end_done), s->end_done = NULL;
    vow_unref(s->reason), s->reason = vow_undefined();
    for (wreq *w = s->writes; w; w = w->next) vow_promise_unref(w->done), w->done = NULL;
    if (s->state == S_OPEN) {
      s->state = S_CLOSING;
      s->reading = 0;
      if (s->is_fd) try_close_fd(s, 0);
      else uv_close(&s->h.handle, on_close);
    }
  }
  vow__free(io->read_scratch);
  io->read_scratch = NULL;
}
