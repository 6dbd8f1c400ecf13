/*
 * fs.c — whole files, stat and rename: Node's fs/promises readFile,
 * writeFile/appendFile, stat/lstat and rename, each one pool job (fs_op.c).
 *
 * readFile reads straight into the STRING it fulfils with: the pool thread
 * allocates the string's block (its size known from fstat, or grown for a
 * file of unknown size) and the loop thread only stamps its header, so the
 * bytes are never copied.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "io/fs.h"
#include "io/io.h"
#include "io/stream.h"
#include "promise/value.h"

/* The pool job reads and writes in chunks of at most this: an abort stops it
 * within one chunk. */
#define CHUNK ((size_t)1 << 20)
/* The most bytes a STRING holds (its length is 32 bits, and one is kept for
 * the NUL). */
#define STRING_MAX ((size_t)UINT32_MAX - 1)
/* The first buffer for a file whose size fstat does not tell (a pipe, /proc). */
#define UNKNOWN_SIZE_START ((size_t)64 << 10)
#define STRING_HEADER offsetof(vow__string, data)

static int sys_fail(vow__fs_op *op, const char *syscall) {
  return vow__fs_fail(op, uv_translate_sys_error(errno), syscall);
}

static int close_checked(vow__fs_op *op, int fd, int err) {
  if (close(fd) != 0 && err == 0 && errno != EINTR) return sys_fail(op, "close");
  return err;
}

/* ---- readFile ---------------------------------------------------------------------- */

typedef struct read_op {
  vow__fs_op op;
  size_t max_size;
  vow__string *buf;  /* made by the pool job; the loop thread turns it into the value */
} read_op;

static size_t min_size(size_t a, size_t b) { return a < b ? a : b; }

/* Grows r->buf to hold cap bytes (and the NUL). */
static int buf_reserve(read_op *r, size_t cap) {
  vow__string *s = vow__realloc(r->buf, STRING_HEADER + cap + 1);
  if (!s) return vow__fs_fail(&r->op, VOW_ENOMEM, "read");
  r->buf = s;
  return 0;
}

/* A file that filled max_size bytes: is there more? */
static int more_than_max(read_op *r, int fd) {
  char probe;
  ssize_t n;
  while ((n = read(fd, &probe, 1)) < 0 && errno == EINTR) {
  }
  if (n < 0) return sys_fail(&r->op, "read");
  return n > 0 ? vow__fs_fail(&r->op, VOW_ETOOBIG, "read") : 0;
}

/* Reads fd to its end, or `known` bytes (what fstat said: Node reads no more
 * even if the file has grown since). */
static int read_into(read_op *r, int fd, size_t known) {
  size_t cap = known ? known : min_size(UNKNOWN_SIZE_START, r->max_size), len = 0;
  if (buf_reserve(r, cap) != 0) return -1;
  for (;;) {
    if (len == cap) {
      if (known) break;
      if (cap == r->max_size) {
        if (more_than_max(r, fd) != 0) return -1;
        break;
      }
      size_t grown = cap > r->max_size / 2 ? r->max_size : cap * 2;
      if (buf_reserve(r, grown) != 0) return -1;
      cap = grown;
    }
    if (vow__fs_op_aborted(&r->op)) return vow__fs_fail(&r->op, VOW_EABORTED, "read");
    ssize_t n = read(fd, r->buf->data + len, min_size(cap - len, CHUNK));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_fail(&r->op, "read");
    if (n == 0) break;
    len += (size_t)n;
  }
  r->buf->len = (uint32_t)len;
  return 0;
}

static void read_run(vow__fs_op *op) {
  read_op *r = (read_op *)op;
  int fd = open(op->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    sys_fail(op, "open");
    return;
  }
  struct stat st;
  int err;
  if (fstat(fd, &st) != 0) err = sys_fail(op, "fstat");
  else if (S_ISDIR(st.st_mode)) err = vow__fs_fail(op, UV_EISDIR, "read");
  else if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > r->max_size)
    err = vow__fs_fail(op, VOW_ETOOBIG, "read");
  else err = read_into(r, fd, S_ISREG(st.st_mode) ? (size_t)st.st_size : 0);
  close_checked(op, fd, err);
}

static vow_value read_finish(vow__fs_op *op) {
  read_op *r = (read_op *)op;
  vow__string *s = r->buf;
  r->buf = NULL; /* it becomes the value */
  s->h = (vow_object){.refs = 1, .kind = VOW_STRING};
  s->data[s->len] = '\0';
  vow_value v = {.kind = VOW_STRING};
  v.as.obj = &s->h;
  return v;
}

static void read_release(vow__fs_op *op) {
  vow__free(((read_op *)op)->buf);
}

vow_promise *vow_fs_read_file(vow_loop *loop, const char *path, const vow_fs_read_options *options) {
  static const vow_fs_read_options defaults = {0};
  const vow_fs_read_options *o = options ? options : &defaults;
  vow_fs_read_options in_scope;
  VOW__IN_SCOPE(loop, o, in_scope);
  if (!path) return vow__fs_invalid(loop, "vow_fs_read_file: the path is NULL");
  read_op *r = (read_op *)vow__fs_op_new(loop, sizeof *r, path, NULL);
  if (!r) return NULL;
  r->max_size = o->max_size && o->max_size < STRING_MAX ? o->max_size : STRING_MAX;
  r->op.run = read_run;
  r->op.finish = read_finish;
  r->op.release = read_release;
  return vow__fs_op_start(&r->op, o->signal);
}

/* ---- writeFile, appendFile ------------------------------------------------------------ */

typedef struct write_op {
  vow__fs_op op;
  vow_value data;     /* the STRING written (owned; read-only on the pool thread) */
  const char *bytes;
  size_t len;
  int flags;          /* open(2) flags */
  unsigned mode;
  int atomic, sync;
  char *temp;         /* atomic: room for the temporary file's name */
  size_t temp_cap;
} write_op;

static int write_all(write_op *w, int fd) {
  size_t done = 0;
  while (done < w->len) {
    if (vow__fs_op_aborted(&w->op)) return vow__fs_fail(&w->op, VOW_EABORTED, "write");
    ssize_t n = write(fd, w->bytes + done, min_size(w->len - done, CHUNK));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return sys_fail(&w->op, "write");
    done += (size_t)n;
  }
  return 0;
}

static int write_to(write_op *w, int fd) {
  int err = write_all(w, fd);
  if (err == 0 && w->sync && fsync(fd) != 0) err = sys_fail(&w->op, "fsync");
  return close_checked(&w->op, fd, err);
}

/* A fresh file beside the target, "dir/.name.PID-N.tmp", made with O_EXCL. */
static int open_temp(write_op *w) {
  static unsigned counter;
  const char *path = w->op.path, *slash = strrchr(path, '/');
  int dir_len = slash ? (int)(slash - path + 1) : 0;
  for (int tries = 0; tries < 100; tries++) {
    unsigned n = __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED);
    snprintf(w->temp, w->temp_cap, "%.*s.%s.%ld-%u.tmp", dir_len, path, path + dir_len,
             (long)getpid(), n);
    int fd = open(w->temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, w->mode);
    if (fd >= 0 || errno != EEXIST) return fd >= 0 ? fd : sys_fail(&w->op, "open");
  }
  return vow__fs_fail(&w->op, UV_EEXIST, "open");
}

static void write_atomic(write_op *w) {
  int fd = open_temp(w);
  if (fd < 0) return;
  int err = write_to(w, fd);
  if (err == 0 && vow__fs_op_aborted(&w->op)) err = vow__fs_fail(&w->op, VOW_EABORTED, "rename");
  if (err == 0 && rename(w->temp, w->op.path) != 0) err = sys_fail(&w->op, "rename");
  if (err) unlink(w->temp);
}

static void write_run(vow__fs_op *op) {
  write_op *w = (write_op *)op;
  if (w->atomic) {
    write_atomic(w);
    return;
  }
  int fd = open(op->path, w->flags, w->mode);
  if (fd < 0) sys_fail(op, "open");
  else write_to(w, fd);
}

static void write_release(vow__fs_op *op) {
  vow_unref(((write_op *)op)->data);
}

vow_promise *vow_fs_write_file_value(vow_loop *loop, const char *path, vow_value data,
                                     const vow_fs_write_options *options) {
  static const vow_fs_write_options defaults = {0};
  const vow_fs_write_options *o = options ? options : &defaults;
  vow_fs_write_options in_scope;
  VOW__IN_SCOPE(loop, o, in_scope);
  const char *bad = !path                              ? "vow_fs_write_file: the path is NULL"
                    : data.kind != VOW_STRING          ? "vow_fs_write_file: the data is not a STRING"
                    : o->atomic && (o->append || o->exclusive)
                        ? "vow_fs_write_file: atomic cannot be combined with append or exclusive"
                        : NULL;
  if (bad) {
    vow_unref(data);
    return vow__fs_invalid(loop, bad);
  }
  size_t temp_cap = o->atomic ? strlen(path) + 48 : 0;
  write_op *w = (write_op *)vow__fs_op_new(loop, sizeof *w + temp_cap, path, NULL);
  if (!w) {
    vow_unref(data);
    return NULL;
  }
  w->data = data;
  w->bytes = vow_str(data);
  w->len = vow_str_len(data);
  w->flags = O_WRONLY | O_CREAT | O_CLOEXEC | (o->append ? O_APPEND : O_TRUNC) |
             (o->exclusive ? O_EXCL : 0);
  w->mode = o->mode ? o->mode : 0666;
  w->atomic = o->atomic;
  w->sync = o->fsync || o->atomic;
  w->temp = temp_cap ? (char *)(w + 1) : NULL;
  w->temp_cap = temp_cap;
  w->op.run = write_run;
  w->op.release = write_release;
  return vow__fs_op_start(&w->op, o->signal);
}

vow_promise *vow_fs_write_file(vow_loop *loop, const char *path, const void *data, size_t len,
                               const vow_fs_write_options *options) {
  if (!data && len) return vow__fs_invalid(loop, "vow_fs_write_file: the data is NULL");
  if (!vow__loop_usable(loop)) return NULL;
  vow_value copy = vow_string_n(data ? data : "", len);
  if (copy.kind != VOW_STRING) return vow_rejected(loop, copy);
  return vow_fs_write_file_value(loop, path, copy, options);
}

/* ---- stat, lstat ------------------------------------------------------------------------ */

typedef struct stat_op {
  vow__fs_op op;
  int follow;
  struct stat st;
} stat_op;

static void stat_run(vow__fs_op *op) {
  stat_op *s = (stat_op *)op;
  if ((s->follow ? stat(op->path, &s->st) : lstat(op->path, &s->st)) != 0)
    sys_fail(op, s->follow ? "stat" : "lstat");
}

static void stat_free(void *p) { vow__free(p); }

static int64_t ns_of(struct timespec t) {
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static vow_value stat_finish(vow__fs_op *op) {
  const struct stat *st = &((stat_op *)op)->st;
  vow_stat *out = vow__malloc(sizeof *out);
  if (!out) return vow_throw(vow_error_nomem());
  *out = (vow_stat){
      .type = vow__fs_type_of(st->st_mode),
      .mode = (uint32_t)st->st_mode,
      .size = (uint64_t)st->st_size,
      .dev = (uint64_t)st->st_dev,
      .ino = (uint64_t)st->st_ino,
      .nlink = (uint64_t)st->st_nlink,
      .uid = (uint64_t)st->st_uid,
      .gid = (uint64_t)st->st_gid,
      .blocks = (uint64_t)st->st_blocks,
      .atime_ns = ns_of(st->st_atim),
      .mtime_ns = ns_of(st->st_mtim),
      .ctime_ns = ns_of(st->st_ctim),
  };
  vow_value v = vow_pointer(out, stat_free);
  return v.kind == VOW_POINTER ? v : vow_throw(v);
}

static vow_promise *stat_start(vow_loop *loop, const char *path, int follow) {
  if (!path) return vow__fs_invalid(loop, follow ? "vow_fs_stat: the path is NULL"
                                                 : "vow_fs_lstat: the path is NULL");
  stat_op *s = (stat_op *)vow__fs_op_new(loop, sizeof *s, path, NULL);
  if (!s) return NULL;
  s->follow = follow;
  s->op.run = stat_run;
  s->op.finish = stat_finish;
  return vow__fs_op_start(&s->op, NULL);
}

vow_promise *vow_fs_stat(vow_loop *loop, const char *path) { return stat_start(loop, path, 1); }
vow_promise *vow_fs_lstat(vow_loop *loop, const char *path) { return stat_start(loop, path, 0); }

const vow_stat *vow_as_stat(vow_value v) {
  if (v.kind != VOW_POINTER || !v.as.obj) return NULL;
  vow__pointer *p = (vow__pointer *)v.as.obj;
  return p->destroy == stat_free ? p->ptr : NULL;
}

/* ---- rename ------------------------------------------------------------------------------- */

static void rename_run(vow__fs_op *op) {
  if (rename(op->path, op->path2) != 0) sys_fail(op, "rename");
}

vow_promise *vow_fs_rename(vow_loop *loop, const char *from, const char *to) {
  if (!from || !to) return vow__fs_invalid(loop, "vow_fs_rename: a path is NULL");
  vow__fs_op *op = vow__fs_op_new(loop, sizeof *op, from, to);
  if (!op) return NULL;
  op->run = rename_run;
  return vow__fs_op_start(op, NULL);
}

/* ---- open as a stream ------------------------------------------------------------------------ */

typedef struct open_op {
  vow__fs_op op;
  int flags;
  unsigned mode;
  int64_t offset;            /* where the stream starts; -1: the descriptor's position */
  int fd;                    /* opened by the pool job; -1 once the stream owns it */
  vow_abort_signal *signal;  /* handed to the stream (a reference) */
} open_op;

static void open_run(vow__fs_op *op) {
  open_op *o = (open_op *)op;
  o->fd = open(op->path, o->flags, o->mode);
  if (o->fd < 0) {
    sys_fail(op, "open");
    return;
  }
  struct stat st;
  int err = fstat(o->fd, &st) != 0 ? sys_fail(op, "fstat")
            : S_ISDIR(st.st_mode)   ? vow__fs_fail(op, UV_EISDIR, "open") /* reads would fail */
                                    : 0;
  if (err) {
    close(o->fd);
    o->fd = -1;
  }
}

static vow_value open_finish(vow__fs_op *op) {
  open_op *o = (open_op *)op;
  vow_stream *s = vow__stream_from_fd(op->loop, o->fd, 1, o->offset);
  o->fd = -1; /* the stream's now (closed by it when it could not be made) */
  if (!s) return vow_throw(vow_error_nomem());
  char name[96];
  snprintf(name, sizeof name, "'%s'", op->path);
  vow__stream_set_name(s, name);
  if (o->signal && vow_stream_set_signal(s, o->signal) != 0) {
    vow_stream_unref(s);
    return vow_throw(vow_error_nomem());
  }
  vow_value v = vow__stream_value(s);
  return v.kind == VOW_POINTER ? v : vow_throw(v);
}

static void open_release(vow__fs_op *op) {
  open_op *o = (open_op *)op;
  if (o->fd >= 0) close(o->fd); /* opened, then aborted or the loop went */
  vow_abort_signal_unref(o->signal);
}

static vow_promise *open_start(vow_loop *loop, const char *path, int flags, unsigned mode,
                               int64_t offset, vow_abort_signal *signal) {
  open_op *o = (open_op *)vow__fs_op_new(loop, sizeof *o, path, NULL);
  if (!o) return NULL;
  o->flags = flags | O_CLOEXEC;
  o->mode = mode;
  o->offset = offset;
  o->fd = -1;
  o->signal = vow_abort_signal_ref(signal);
  o->op.run = open_run;
  o->op.finish = open_finish;
  o->op.release = open_release;
  return vow__fs_op_start(&o->op, signal);
}

vow_promise *vow_fs_open_read(vow_loop *loop, const char *path, const vow_fs_stream_options *options) {
  static const vow_fs_stream_options defaults = {0};
  const vow_fs_stream_options *o = options ? options : &defaults;
  vow_fs_stream_options in_scope;
  VOW__IN_SCOPE(loop, o, in_scope);
  if (!path) return vow__fs_invalid(loop, "vow_fs_open_read: the path is NULL");
  if (o->start < 0) return vow__fs_invalid(loop, "vow_fs_open_read: start is negative");
  return open_start(loop, path, O_RDONLY, 0, o->start, o->signal);
}

vow_promise *vow_fs_open_write(vow_loop *loop, const char *path, const vow_fs_stream_options *options) {
  static const vow_fs_stream_options defaults = {0};
  const vow_fs_stream_options *o = options ? options : &defaults;
  vow_fs_stream_options in_scope;
  VOW__IN_SCOPE(loop, o, in_scope);
  if (!path) return vow__fs_invalid(loop, "vow_fs_open_write: the path is NULL");
  if (o->start < 0) return vow__fs_invalid(loop, "vow_fs_open_write: start is negative");
  if (o->start && o->append)
    return vow__fs_invalid(loop, "vow_fs_open_write: start cannot be combined with append");
  int flags = O_WRONLY | O_CREAT | (o->append ? O_APPEND : o->start ? 0 : O_TRUNC) |
              (o->exclusive ? O_EXCL : 0);
  return open_start(loop, path, flags, o->mode ? o->mode : 0666, o->append ? -1 : o->start,
                    o->signal);
}
