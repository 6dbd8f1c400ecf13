/*
 * fs_op.c — a file-system call as one job on libuv's thread pool, and the
 * errors it rejects with (see fs.h).
 *
 * Why one job per call, not libuv's uv_fs_* requests: reading a small file is
 * open, fstat, read and close, and each uv_fs_* request is a round trip
 * between the loop and a pool thread (a queue, a wakeup, a callback). Doing
 * the four in one job makes the trip once, which is most of what reading
 * 10 000 small files costs.
 *
 * Abort: the listener marks the op and asks libuv to cancel the job. A job
 * still queued is cancelled (done runs with UV_ECANCELED, run never did); a
 * running one sees the mark at its next chunk and stops. Either way the
 * promise rejects with the signal's reason when done runs, so when it
 * settles no pool thread touches the paths any more.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/alloc.h"
#include "io/fs.h"

static size_t size_of(const char *s) { return s ? strlen(s) + 1 : 0; }

vow__fs_op *vow__fs_op_new(vow_loop *loop, size_t size, const char *path, const char *path2) {
  size_t n1 = size_of(path), n2 = size_of(path2);
  vow_promise *p = vow_promise_new(loop); /* checks the loop and the thread */
  vow__fs_op *op = p ? vow__calloc(1, size + n1 + n2) : NULL;
  if (!op) {
    vow_promise_unref(p);
    return NULL;
  }
  char *text = (char *)op + size;
  op->loop = loop;
  op->promise = p;
  op->req.data = op;
  if (path) op->path = memcpy(text, path, n1);
  if (path2) op->path2 = memcpy(text + n1, path2, n2);
  return op;
}

static void op_free(vow__fs_op *op) {
  if (op->release) op->release(op);
  if (op->signal) {
    if (op->listener > 0) vow_abort_signal_off(op->signal, op->listener);
    vow_abort_signal_unref(op->signal);
  }
  vow_promise_unref(op->promise);
  vow__free(op);
}

int vow__fs_op_aborted(const vow__fs_op *op) {
  return __atomic_load_n(&op->aborted, __ATOMIC_RELAXED);
}

static void op_run(uv_work_t *req) {
  vow__fs_op *op = req->data;
  if (!vow__fs_op_aborted(op)) op->run(op);
}

static void op_settle(vow_loop *loop, void *arg) {
  (void)loop;
  vow__fs_op *op = arg;
  if (op->signal && vow_abort_signal_aborted(op->signal))
    vow_promise_reject(op->promise, vow_ref(vow_abort_signal_reason(op->signal)));
  else if (op->err)
    vow_promise_reject(op->promise, vow__fs_error(op->err, op->syscall, op->path, op->path2));
  else {
    vow_value v = op->finish ? op->finish(op) : vow_undefined();
    if (v.flags & VOW__THROWN) vow_promise_reject(op->promise, v); /* finish ran out of memory */
    else vow_promise_resolve(op->promise, v);
  }
}

static void op_done(uv_work_t *req, int status) {
  vow__fs_op *op = req->data;
  (void)status; /* UV_ECANCELED only follows an abort, which op_settle reports */
  if (!op->loop->closing) vow__loop_enter_named(op->loop, "fs", op_settle, op);
  op_free(op);
}

static void op_on_abort(vow_loop *loop, vow_value reason, void *data) {
  (void)loop, (void)reason;
  vow__fs_op *op = data;
  op->listener = 0; /* it ran: the signal dropped it */
  __atomic_store_n(&op->aborted, 1, __ATOMIC_RELAXED);
  uv_cancel((uv_req_t *)&op->req); /* UV_EBUSY when running: it stops at its next chunk */
}

vow_promise *vow__fs_op_start(vow__fs_op *op, vow_abort_signal *signal) {
  vow_promise *p = vow_promise_ref(op->promise);
  if (signal && vow_abort_signal_aborted(signal)) {
    vow_promise_reject(p, vow_ref(vow_abort_signal_reason(signal)));
    op_free(op);
    return p;
  }
  if (signal) {
    op->signal = vow_abort_signal_ref(signal);
    int64_t id = vow_abort_signal_on(signal, op_on_abort, op);
    if (id < 0) {
      vow_promise_reject(p, vow_error_nomem());
      op_free(op);
      return p;
    }
    op->listener = id;
  }
  int err = uv_queue_work(&op->loop->uv, &op->req, op_run, op_done);
  if (err) {
    vow_promise_reject(p, vow__fs_error(err, "queue", op->path, op->path2));
    op_free(op);
  }
  return p;
}

vow_value vow__fs_error(int err, const char *syscall, const char *path, const char *path2) {
  const char *name = vow_err_name(err);
  const char *text = err == VOW_ETOOBIG ? "file is larger than the limit" : vow_strerror(err);
  const char *q1 = path ? " '" : "", *p1 = path ? path : "", *e1 = path ? "'" : "";
  const char *q2 = path2 ? " -> '" : "", *p2 = path2 ? path2 : "", *e2 = path2 ? "'" : "";
  return vow_errorf(err, "%s: %s, %s%s%s%s%s%s%s", name, text, syscall, q1, p1, e1, q2, p2, e2);
}

vow_promise *vow__fs_invalid(vow_loop *loop, const char *message) {
  return vow_rejected(loop, vow_error(VOW_EINVAL, message));
}

vow_file_type vow__fs_type_of(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return VOW_FILE_REGULAR;
    case S_IFDIR: return VOW_FILE_DIRECTORY;
    case S_IFLNK: return VOW_FILE_SYMLINK;
    case S_IFIFO: return VOW_FILE_FIFO;
    case S_IFSOCK: return VOW_FILE_SOCKET;
    case S_IFCHR: return VOW_FILE_CHAR_DEVICE;
    case S_IFBLK: return VOW_FILE_BLOCK_DEVICE;
    default: return VOW_FILE_UNKNOWN;
  }
}
