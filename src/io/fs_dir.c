/*
 * fs_dir.c — directories: readdir as an async iterator, mkdir (-p), rm (-r).
 *
 * readdir is an async generator whose body, on its coroutine, awaits one
 * pool job per batch of up to 64 entries and yields them one by one. The
 * DIR stream and the batch live in one object shared by the generator and
 * the job in flight (a count of two at most, touched only on the loop's
 * thread); whichever lets go last closes the directory. Between jobs only
 * the loop thread touches it, during a job only the pool thread: the job's
 * queueing and completion order the two.
 */
#define _DEFAULT_SOURCE /* d_type and DT_* (glibc, musl, the BSDs all have them) */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "io/fs.h"
#include "promise/value.h"

static int sys_fail(vow__fs_op *op, const char *syscall) {
  return vow__fs_fail(op, uv_translate_sys_error(errno), syscall);
}

/* ---- readdir ----------------------------------------------------------------------- */

#define BATCH 64
_Static_assert(NAME_MAX <= 255, "a batch's names fit in BATCH * 256 bytes");

typedef struct dir_entry {
  uint16_t name;  /* offset into names */
  uint8_t type;   /* a vow_file_type */
} dir_entry;

typedef struct fs_dir {
  int refs;
  DIR *dir;                 /* NULL until the first batch opens it, and after the end */
  int end;                  /* the last batch reached the end (and closed dir) */
  int busy;                 /* a batch job is in flight: the pool thread has dir */
  int count, next;          /* entries in the batch, and the next to yield */
  dir_entry entries[BATCH];
  char names[BATCH * 256];  /* NAME_MAX is 255: a batch always fits */
  char path[];
} fs_dir;

static void dir_unref(fs_dir *d) {
  if (--d->refs > 0) return;
  if (d->dir) closedir(d->dir);
  vow__free(d);
}

typedef struct batch_op {
  vow__fs_op op;
  fs_dir *d;  /* a reference */
} batch_op;

static vow_file_type entry_type(DIR *dir, const struct dirent *e) {
  switch (e->d_type) {
    case DT_REG: return VOW_FILE_REGULAR;
    case DT_DIR: return VOW_FILE_DIRECTORY;
    case DT_LNK: return VOW_FILE_SYMLINK;
    case DT_FIFO: return VOW_FILE_FIFO;
    case DT_SOCK: return VOW_FILE_SOCKET;
    case DT_CHR: return VOW_FILE_CHAR_DEVICE;
    case DT_BLK: return VOW_FILE_BLOCK_DEVICE;
    default: break;
  }
  /* The file system does not say (some do not fill d_type): ask. */
  struct stat st;
  if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) return VOW_FILE_UNKNOWN;
  return vow__fs_type_of(st.st_mode);
}

static void batch_run(vow__fs_op *op) {
  fs_dir *d = ((batch_op *)op)->d;
  if (!d->dir && !(d->dir = opendir(d->path))) {
    sys_fail(op, "opendir");
    return;
  }
  size_t used = 0;
  d->count = d->next = 0;
  while (d->count < BATCH) {
    errno = 0;
    struct dirent *e = readdir(d->dir);
    if (!e) {
      if (errno) {
        sys_fail(op, "readdir");
        return;
      }
      closedir(d->dir);
      d->dir = NULL;
      d->end = 1;
      return;
    }
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    size_t len = strlen(e->d_name) + 1;
    d->entries[d->count++] = (dir_entry){(uint16_t)used, (uint8_t)entry_type(d->dir, e)};
    memcpy(d->names + used, e->d_name, len);
    used += len;
  }
}

/* The job is over (its promise settles next): the loop thread has dir again. */
static vow_value batch_finish(vow__fs_op *op) {
  ((batch_op *)op)->d->busy = 0;
  return vow_undefined();
}

static void batch_release(vow__fs_op *op) {
  fs_dir *d = ((batch_op *)op)->d;
  d->busy = 0;
  dir_unref(d);
}

static vow_promise *batch_start(vow_loop *loop, fs_dir *d) {
  batch_op *b = (batch_op *)vow__fs_op_new(loop, sizeof *b, d->path, NULL);
  if (!b) return NULL;
  d->refs++;
  d->busy = 1;
  b->d = d;
  b->op.run = batch_run;
  b->op.finish = batch_finish;
  b->op.release = batch_release;
  return vow__fs_op_start(&b->op, NULL);
}

/* A dirent value: the struct and its name in one block, inside a POINTER. */
static void dirent_free(void *p) { vow__free(p); }

static vow_value dirent_value(const char *name, vow_file_type type) {
  size_t len = strlen(name) + 1;
  vow_dirent *e = vow__malloc(sizeof *e + len);
  if (!e) return vow_error_nomem();
  e->name = memcpy((char *)(e + 1), name, len);
  e->type = type;
  return vow_pointer(e, dirent_free);
}

const vow_dirent *vow_as_dirent(vow_value v) {
  if (v.kind != VOW_POINTER || !v.as.obj) return NULL;
  vow__pointer *p = (vow__pointer *)v.as.obj;
  return p->destroy == dirent_free ? p->ptr : NULL;
}

/* The body's result, once it is done: the directory is closed now, not when
 * the generator goes (which a consumer may keep for a while) — unless a batch
 * is still in flight (the loop is being freed under an await): the last
 * reference closes it then. */
static vow_value dir_done(fs_dir *d, vow_value result) {
  if (d->busy) return result;
  if (d->dir) closedir(d->dir);
  d->dir = NULL;
  return result;
}

static vow_value dir_body(vow_loop *loop, vow_asyncgen *gen, void *arg) {
  (void)gen;
  fs_dir *d = arg;
  for (;;) {
    while (d->next < d->count) {
      const dir_entry *e = &d->entries[d->next++];
      vow_value v = dirent_value(d->names + e->name, (vow_file_type)e->type);
      if (v.kind != VOW_POINTER) return dir_done(d, vow_throw(v));
      vow_value sent;
      int rc = vow_yield(v, &sent);
      if (rc == VOW_EDONE) return dir_done(d, sent);  /* return(): the consumer left */
      if (rc != 0) return dir_done(d, vow_throw(sent)); /* throw(), or the loop closing */
      vow_unref(sent);
    }
    if (d->end) return dir_done(d, vow_undefined());
    vow_value err;
    if (vow_await(batch_start(loop, d), &err) != 0) return dir_done(d, vow_throw(err));
  }
}

static void dir_arg_free(void *arg) { dir_unref(arg); }

static vow_value no_path(vow_loop *loop, vow_asyncgen *gen, void *arg) {
  (void)loop, (void)gen, (void)arg;
  return vow_throw(vow_error(VOW_EINVAL, "vow_fs_readdir: the path is NULL"));
}

vow_asyncgen *vow_fs_readdir(vow_loop *loop, const char *path) {
  static const vow_async_options opts = {.name = "readdir", .arg_free = dir_arg_free};
  static const vow_async_options bad = {.name = "readdir"};
  if (!vow__loop_usable(loop)) return NULL;
  if (!path) return vow_asyncgen_new_ex(loop, no_path, NULL, &bad);
  size_t len = strlen(path) + 1;
  fs_dir *d = vow__calloc(1, sizeof *d + len);
  if (!d) return NULL;
  d->refs = 1;
  memcpy(d->path, path, len);
  return vow_asyncgen_new_ex(loop, dir_body, d, &opts); /* runs arg_free when it fails */
}

/* ---- mkdir ---------------------------------------------------------------------------- */

typedef struct mkdir_op {
  vow__fs_op op;
  int recursive;
  unsigned mode;
  size_t first;   /* mkdir -p: length of the shallowest directory made; 0: none */
  char *buf;      /* mkdir -p: a working copy of the path */
} mkdir_op;

static int is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The length of buf[0, len)'s parent ("a/b/c" -> 3, "/a" -> 1), 0 if none. */
static size_t parent_len(const char *buf, size_t len) {
  while (len > 0 && buf[len - 1] != '/') len--;   /* the last component */
  while (len > 1 && buf[len - 1] == '/') len--;   /* the slashes before it */
  return len;
}

/* mkdir -p of buf[0, len): makes the missing parents first (a recursion as
 * deep as the path has components, at most PATH_MAX / 2). */
static int make_dirs(mkdir_op *m, size_t len, int depth) {
  char *buf = m->buf, saved = buf[len];
  buf[len] = '\0';
  int err = mkdir(buf, m->mode) == 0 ? 0 : uv_translate_sys_error(errno);
  if (err == UV_ENOENT && depth < 4096) {
    size_t parent = parent_len(buf, len);
    if (parent > 0 && parent < len) {
      buf[len] = saved;
      err = make_dirs(m, parent, depth + 1);
      buf[len] = '\0';
      if (err == 0) err = mkdir(buf, m->mode) == 0 ? 0 : uv_translate_sys_error(errno);
      if (err == 0 && !m->first) m->first = len;
    }
  } else if (err == 0 && !m->first) {
    m->first = len;
  }
  if (err == UV_EEXIST && is_dir(buf)) err = 0; /* there already, or made meanwhile */
  buf[len] = saved;
  return err;
}

static void mkdir_run(vow__fs_op *op) {
  mkdir_op *m = (mkdir_op *)op;
  if (!m->recursive) {
    if (mkdir(op->path, m->mode) != 0) sys_fail(op, "mkdir");
    return;
  }
  size_t len = strlen(m->buf);
  while (len > 1 && m->buf[len - 1] == '/') len--; /* "a/b/" is "a/b" */
  int err = make_dirs(m, len, 0);
  if (err) vow__fs_fail(op, err, "mkdir");
}

static vow_value mkdir_finish(vow__fs_op *op) {
  mkdir_op *m = (mkdir_op *)op;
  if (!m->first) return vow_undefined();
  vow_value v = vow_string_n(m->buf, m->first);
  return v.kind == VOW_STRING ? v : vow_throw(v);
}

vow_promise *vow_fs_mkdir(vow_loop *loop, const char *path, const vow_fs_mkdir_options *options) {
  static const vow_fs_mkdir_options defaults = {0};
  const vow_fs_mkdir_options *o = options ? options : &defaults;
  if (!path) return vow__fs_invalid(loop, "vow_fs_mkdir: the path is NULL");
  size_t buf_size = o->recursive ? strlen(path) + 1 : 0;
  mkdir_op *m = (mkdir_op *)vow__fs_op_new(loop, sizeof *m + buf_size, path, NULL);
  if (!m) return NULL;
  m->recursive = o->recursive;
  m->mode = o->mode ? o->mode : 0777;
  if (buf_size) m->buf = memcpy((char *)(m + 1), path, buf_size);
  m->op.run = mkdir_run;
  m->op.finish = mkdir_finish;
  return vow__fs_op_start(&m->op, NULL);
}

/* ---- rm ------------------------------------------------------------------------------------ */

typedef struct rm_op {
  vow__fs_op op;
  int recursive, force;
} rm_op;

/* Trees deeper than this are refused (UV_ELOOP) rather than risk the pool
 * thread's stack: each level is one frame and one open directory. */
#define RM_MAX_DEPTH 512

/* Removes name (in the directory at_fd) and, if it is a directory, all it
 * holds; symbolic links are removed, never followed. 0 or a UV_E* code, and
 * *syscall names the call that failed. */
static int remove_tree(int at_fd, const char *name, int depth, const char **syscall) {
  if (unlinkat(at_fd, name, 0) == 0) return 0;
  if (errno != EISDIR && errno != EPERM) {
    *syscall = "unlink";
    return errno == ENOENT ? 0 : uv_translate_sys_error(errno); /* gone meanwhile: fine */
  }
  if (depth >= RM_MAX_DEPTH) {
    *syscall = "rm";
    return UV_ELOOP;
  }
  int fd = openat(at_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
  if (!dir) {
    int e = errno;
    if (fd >= 0) close(fd);
    *syscall = "opendir";
    return uv_translate_sys_error(e);
  }
  int err = 0;
  struct dirent *e;
  while (err == 0 && (errno = 0, e = readdir(dir)) != NULL) {
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      err = remove_tree(dirfd(dir), e->d_name, depth + 1, syscall);
  }
  if (err == 0 && errno) {
    *syscall = "readdir";
    err = uv_translate_sys_error(errno);
  }
  closedir(dir);
  if (err == 0 && unlinkat(at_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
    *syscall = "rmdir";
    err = uv_translate_sys_error(errno);
  }
  return err;
}

static void rm_run(vow__fs_op *op) {
  rm_op *r = (rm_op *)op;
  struct stat st;
  if (lstat(op->path, &st) != 0) {
    if (!(errno == ENOENT && r->force)) sys_fail(op, "lstat");
    return;
  }
  if (!S_ISDIR(st.st_mode)) {
    if (unlink(op->path) != 0 && !(errno == ENOENT && r->force)) sys_fail(op, "unlink");
    return;
  }
  if (!r->recursive) {
    vow__fs_fail(op, UV_EISDIR, "rm");
    return;
  }
  const char *syscall = "rm";
  int err = remove_tree(AT_FDCWD, op->path, 0, &syscall);
  if (err) vow__fs_fail(op, err, syscall);
}

vow_promise *vow_fs_rm(vow_loop *loop, const char *path, const vow_fs_rm_options *options) {
  static const vow_fs_rm_options defaults = {0};
  const vow_fs_rm_options *o = options ? options : &defaults;
  if (!path) return vow__fs_invalid(loop, "vow_fs_rm: the path is NULL");
  rm_op *r = (rm_op *)vow__fs_op_new(loop, sizeof *r, path, NULL);
  if (!r) return NULL;
  r->recursive = o->recursive;
  r->force = o->force;
  r->op.run = rm_run;
  return vow__fs_op_start(&r->op, NULL);
}
