/*
 * test_faults_fs.c — allocation failure at every allocation site of the file
 * calls (tests/faults.h): the op and its promise, the abort listener, the
 * buffer readFile fills on the pool thread and its growth, the copy
 * writeFile makes, stat's and readdir's values, mkdir -p's result, the error
 * values and their messages. Each run must end — fulfilled or rejected —
 * without a crash, a hang or a leak, once with one failure (FAULT_ONCE) and
 * once with memory gone for good from that point (FAULT_FROM).
 *
 * The scenario awaits one call at a time, so the pool thread allocates only
 * while the loop's thread waits for it and the sites are numbered alike in
 * every run (but for an await that could not be made: the next call may then
 * overlap the job still on the pool, which only moves the numbering). It
 * reads no FIFO: a job left running by such an await would block in open()
 * for good once the writer is gone, and vow_loop_free waits for pool jobs.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault_scenarios.h"
#include "log.h"
#include "vow.h"

static char dir[256];

static const char *at(const char *name) {
  static char buf[8][512];
  static int i;
  char *b = buf[i++ % 8];
  snprintf(b, 512, "%s/%s", dir, name);
  return b;
}

/* ---- the scenario ------------------------------------------------------------------ */

static void drop(vow_promise *p) {
  vow_value v;
  vow_await(p, &v);
  vow_unref(v);
}

/* await p; in the run without failures, its value must be want_len bytes
 * long (-1: not checked) or it must reject (-2). */
static void expect(vow_promise *p, long want_len) {
  vow_value v;
  int rc = vow_await(p, &v);
  if (!fault_at && want_len == -2) cr_assert_eq(rc, VOW_EREJECTED);
  if (!fault_at && want_len >= 0) {
    cr_assert_eq(rc, 0);
    cr_assert_eq((long)vow_str_len(v), want_len);
  }
  vow_unref(v);
}

static vow_value scenario(vow_loop *loop, void *arg) {
  (void)arg;
  vow_value v;
  /* whole files, with a signal (a listener), an error (its message) */
  vow_abort_signal *s = vow_abort_signal_new(loop);
  vow_fs_write_options wo = {.signal = s};
  vow_fs_read_options ro = {.signal = s};
  drop(vow_fs_write_file(loop, at("f"), "hello", 5, &wo));
  expect(vow_fs_read_file(loop, at("f"), &ro), 5);
  expect(vow_fs_read_file(loop, at("missing"), NULL), -2);
  vow_fs_write_options atomic = {.atomic = 1};
  drop(vow_fs_write_file(loop, at("f"), "again", 5, &atomic));
  vow_fs_write_options append = {.append = 1};
  drop(vow_fs_write_file_value(loop, at("f"), vow_string("!"), &append));
  drop(vow_fs_write_file(loop, NULL, "x", 1, NULL));
  /* a file of unknown size (fstat says 0): the buffer grows on the pool
   * thread, 64 KiB, 128 KiB, then the limit, and the probe past it. The
   * page map of this process reads 8 bytes per page of its address space:
   * far more than the limit, and the same every run. */
  vow_fs_read_options limit = {.max_size = 200 << 10};
  expect(vow_fs_read_file(loop, "/proc/self/pagemap", &limit), -2);
  /* stat, mkdir -p (its result), readdir (the dir, the generator, a batch, entries) */
  drop(vow_fs_stat(loop, at("f")));
  drop(vow_fs_lstat(loop, at("nope")));
  vow_fs_mkdir_options p = {.recursive = 1};
  expect(vow_fs_mkdir(loop, at("d/e"), &p), (long)strlen(at("d")));
  vow_for_await it;
  int entries = 0;
  if (vow_for_await_gen(&it, vow_fs_readdir(loop, dir)) == 0) {
    VOW_FOR_AWAIT(&it, e) entries += vow_as_dirent(e) != NULL;
    vow_for_await_end(&it, NULL);
  }
  if (!fault_at) cr_assert_eq(entries, 2, "f and d");
  vow_asyncgen *g = vow_fs_readdir(loop, at("nope"));
  if (g) drop(vow_asyncgen_next(g, vow_undefined()));
  vow_asyncgen_unref(g);
  /* a file as a stream: opened with a signal, read; another written */
  vow_fs_stream_options so = {.signal = s};
  if (vow_await(vow_fs_open_read(loop, at("f"), &so), &v) == 0) {
    if (vow_for_await_gen(&it, vow_stream_chunks(vow_as_stream(v))) == 0) {
      VOW_FOR_AWAIT(&it, c) (void)c;
      vow_for_await_end(&it, NULL);
    }
  }
  vow_unref(v);
  if (vow_await(vow_fs_open_write(loop, at("g"), NULL), &v) == 0) {
    drop(vow_stream_write(vow_as_stream(v), "abc", 3));
    drop(vow_stream_close(vow_as_stream(v)));
  }
  vow_unref(v);
  drop(vow_fs_open_read(loop, at("nope"), NULL));
  /* rename, rm -r */
  drop(vow_fs_rename(loop, at("f"), at("d/f")));
  vow_fs_rm_options r = {.recursive = 1};
  drop(vow_fs_rm(loop, at("d"), &r));
  /* an abort while a call is queued */
  vow_promise *late = vow_fs_stat(loop, dir);
  vow_abort(s, vow_undefined());
  drop(vow_fs_read_file(loop, "/proc/self/status", &ro)); /* not the FIFO: the abort may have failed */
  drop(late);
  vow_abort_signal_unref(s);
  v = vow_string("done");
  return v;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static void make_dir(void) {
  snprintf(dir, sizeof dir, "/tmp/vow-test-faults-fs-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
}
static void remove_dir(void) { nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS); }

/* Each run in a fresh directory. */
static const fault_scenario files = {.name = "files", .fn = scenario,
                                     .options = {.stack_size = 64 * 1024},
                                     .before = make_dir, .after = remove_dir};

TestSuite(faults_fs, .timeout = 120);

Test(faults_fs, every_allocation_can_fail_once_and_for_good) {
  long total = fault_scenario_check(&files);
  cr_assert_gt(total, 40, "the scenario makes allocations (%ld)", total);
  fprintf(stderr, "faults_fs: %ld allocations in the scenario, each failed in its own run\n", total);
}
