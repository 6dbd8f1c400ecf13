/*
 * fs.h — one file-system call as one pool job (internal), shared by fs.c
 * (whole files, stat, mkdir, rm, rename) and fs_dir.c (readdir).
 *
 * A vow__fs_op carries a call from the loop's thread to a pool thread and
 * back:
 *
 *   loop thread                      pool thread
 *   vow__fs_op_new (paths copied)
 *   vow__fs_op_start  ───────────►   op->run(op): the system calls, blocking;
 *                                    sets op->err and op->syscall on failure
 *   settle (through the loop's  ◄──  (done)
 *   entry point): op->finish(op)
 *   fulfils, or the error rejects;
 *   then op->release(op), once
 *
 * Ownership: between start and done the pool thread owns everything the op
 * points to except `promise` and `signal`, which only the loop thread
 * touches. The one field both threads touch is `aborted`, atomically.
 */
#ifndef VOW_IO_FS_H
#define VOW_IO_FS_H

#include <stddef.h>
#include <uv.h>

#include "core/loop.h"

typedef struct vow__fs_op vow__fs_op;

struct vow__fs_op {
  uv_work_t req;
  vow_loop *loop;
  vow_promise *promise;       /* settled by the op (a reference) */
  vow_abort_signal *signal;   /* a reference, or NULL */
  int64_t listener;           /* on signal; 0: none */
  int aborted;                /* set by the loop thread, read by the pool's (atomics) */
  int err;                    /* the pool job's outcome: 0, or a UV_E* / VOW_E* code */
  const char *syscall;        /* which call failed (a static string) */
  const char *path;           /* copied, after the op's own fields */
  const char *path2;          /* rename's destination, or NULL */
  void (*run)(vow__fs_op *op);          /* pool thread */
  vow_value (*finish)(vow__fs_op *op);  /* loop thread, when err is 0: the value */
  void (*release)(vow__fs_op *op);      /* loop thread, always once; may be NULL */
};

/* An op of `size` bytes (a struct that starts with a vow__fs_op) with path
 * and path2 (may be NULL) copied after it, and its promise. NULL when out of
 * memory (nothing is left allocated). */
vow__fs_op *vow__fs_op_new(vow_loop *loop, size_t size, const char *path, const char *path2);

/* Queues op on the pool and returns its promise (a new reference). signal
 * (borrowed, may be NULL) aborts it. On any failure to start, the promise is
 * returned rejected and op->release has run. Takes op. */
vow_promise *vow__fs_op_start(vow__fs_op *op, vow_abort_signal *signal);

/* On the pool thread: non-zero once the op's signal aborted. Long jobs
 * check it between chunks. */
int vow__fs_op_aborted(const vow__fs_op *op);

/* On the pool thread: records a failure (err < 0) of syscall and returns err. */
static inline int vow__fs_fail(vow__fs_op *op, int err, const char *syscall) {
  op->err = err;
  op->syscall = syscall;
  return err;
}

/* The ERROR value Node would make: "CODE: description, syscall 'path'"
 * ("... 'path' -> 'path2'" when path2 is set). A new reference. */
vow_value vow__fs_error(int err, const char *syscall, const char *path, const char *path2);

/* A promise rejected with VOW_EINVAL and message (copied): bad arguments
 * ("fs.readFile: no path"). NULL when out of memory or on the wrong thread. */
vow_promise *vow__fs_invalid(vow_loop *loop, const char *message);

/* The file type of a st_mode. */
vow_file_type vow__fs_type_of(unsigned mode);

#endif
