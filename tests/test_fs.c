/*
 * test_fs.c — the file calls (vow_fs_*) against real files in a fresh
 * temporary directory per test: whole files, stat, readdir, mkdir -p, rm -r,
 * rename, their errors, aborts, a full disk (/dev/full) and a file-size limit
 * (RLIMIT_FSIZE). Each test body is an async function, as a Node script with
 * top-level await; the JavaScript it mirrors is quoted above it, with what
 * node 20 printed. Nothing is timed: outcomes and contents are asserted.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "log.h"
#include "vow.h"

static vow_loop *loop;
static char dir[256]; /* this test's temporary directory */

static void setup(void) {
  log_reset();
  snprintf(dir, sizeof dir, "/tmp/vow-test-fs-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  cr_assert_eq(vow_loop_new(&loop, NULL), 0);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static void teardown(void) {
  vow_loop_free(loop); /* when the test stopped early */
  chmod(dir, 0700);
  nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}
TestSuite(fs, .init = setup, .fini = teardown, .timeout = 60);

/* A path inside this test's directory (a few kept at once). */
static const char *at(const char *name) {
  static char buf[8][512];
  static int i;
  char *b = buf[i++ % 8];
  int n = snprintf(b, 512, "%s/%s", dir, name);
  cr_assert(n > 0 && n < 512, "the path of '%s' fits", name);
  return b;
}

/* Runs body as an async function to the end; it must fulfil. Then the loop
 * is freed and nothing may have leaked. */
static void run(vow_async_fn body) {
  vow_promise *p = vow_async(loop, body, NULL);
  cr_assert_eq(vow_loop_run(loop), 0);
  if (vow_promise_state(p) != VOW_FULFILLED) {
    char buf[512];
    vow_value_format(vow_promise_result(p), buf, sizeof buf);
    cr_assert_fail("the test body did not fulfil: %s", buf);
  }
  vow_promise_unref(p);
  cr_assert_eq(vow_loop_free(loop), 0);
  loop = NULL;
  TEST_LEAK_CHECK();
}

/* await p, which must fulfil: its value (a new reference). */
static vow_value ok(vow_promise *p) {
  vow_value v;
  int rc = vow_await(p, &v);
  if (rc != 0) {
    char buf[512];
    vow_value_format(v, buf, sizeof buf);
    cr_assert_fail("expected a fulfilment, got %s", buf);
  }
  return v;
}

/* await p, which must reject with code and exactly message. */
static void fails(vow_promise *p, int code, const char *message) {
  vow_value e;
  cr_assert_eq(vow_await(p, &e), VOW_EREJECTED, "expected a rejection with %s", message);
  cr_assert_eq(vow_error_code(e), code, "code %s, expected %s (%s)", vow_err_name(vow_error_code(e)),
               vow_err_name(code), vow_error_message(e));
  cr_assert_str_eq(vow_error_message(e), message);
  vow_unref(e);
}

static char message_buf[4][1024];
/* Node's message for err on a path of this test's directory. */
static const char *msg(const char *fmt, const char *name) {
  static int i;
  char *b = message_buf[i++ % 4];
  snprintf(b, sizeof message_buf[0], fmt, name[0] ? at(name) : dir); /* "": the directory */
  return b;
}

static void write_text(const char *name, const char *text) {
  vow_unref(ok(vow_fs_write_file(loop, at(name), text, strlen(text), NULL)));
}

static void expect_text(const char *name, const char *text) {
  vow_value v = ok(vow_fs_read_file(loop, at(name), NULL));
  cr_assert_eq(vow_str_len(v), strlen(text));
  cr_assert_str_eq(vow_str(v), text);
  vow_unref(v);
}

static int entries_in(const char *path) {
  DIR *d = opendir(path);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
  if (d) closedir(d);
  return n;
}

static int open_fds(void) {
  return entries_in("/proc/self/fd");
}

/* ---- whole files --------------------------------------------------------------------- */

/* await writeFile('f', bytes); const b = await readFile('f');
 * b.equals(bytes) -> true, for bytes with NULs and every byte value. */
static vow_value round_trip(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  char bytes[3000];
  for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (char)(i * 7);
  vow_unref(ok(vow_fs_write_file(loop, at("f"), bytes, sizeof bytes, NULL)));
  vow_value v = ok(vow_fs_read_file(loop, at("f"), NULL));
  cr_assert_eq(vow_str_len(v), sizeof bytes);
  cr_assert_eq(memcmp(vow_str(v), bytes, sizeof bytes), 0);
  cr_assert_eq(vow_str(v)[sizeof bytes], '\0', "the string is NUL-terminated");
  vow_unref(v);
  /* an empty file reads as "" */
  vow_unref(ok(vow_fs_write_file(loop, at("empty"), NULL, 0, NULL)));
  expect_text("empty", "");
  /* writeFile replaces what was there */
  write_text("f", "short");
  expect_text("f", "short");
  return vow_undefined();
}
Test(fs, write_then_read_round_trips_every_byte) { run(round_trip); }

/* await writeFile('log', 'a'); await appendFile('log', 'b'); -> 'ab'
 * await writeFile('log', 'x', {flag: 'wx'}) -> EEXIST: file already exists, open 'log' */
static vow_value append_and_exclusive(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  write_text("log", "a");
  vow_fs_write_options append = {.append = 1};
  vow_unref(ok(vow_fs_write_file(loop, at("log"), "b", 1, &append)));
  expect_text("log", "ab");
  vow_fs_write_options wx = {.exclusive = 1};
  fails(vow_fs_write_file(loop, at("log"), "x", 1, &wx), UV_EEXIST,
        msg("EEXIST: file already exists, open '%s'", "log"));
  expect_text("log", "ab");
  vow_unref(ok(vow_fs_write_file(loop, at("new"), "n", 1, &wx)));
  expect_text("new", "n");
  /* mode: of a new file (the umask never takes the owner's bits) */
  vow_fs_write_options secret = {.mode = 0600};
  write_text("x", "");
  vow_unref(ok(vow_fs_write_file(loop, at("secret"), "s", 1, &secret)));
  struct stat st;
  cr_assert_eq(stat(at("secret"), &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600);
  return vow_undefined();
}
Test(fs, append_exclusive_and_mode) { run(append_and_exclusive); }

/* The atomic write replaces the file whole and leaves no temporary behind. */
static vow_value atomic_write(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  vow_fs_write_options atomic = {.atomic = 1};
  write_text("config", "old");
  vow_unref(ok(vow_fs_write_file(loop, at("config"), "new contents", 12, &atomic)));
  expect_text("config", "new contents");
  cr_assert_eq(entries_in(dir), 1, "no temporary file is left beside it");
  /* a relative path works too (its temporary is in the current directory) */
  cr_assert_eq(chdir(dir), 0);
  vow_unref(ok(vow_fs_write_file(loop, "relative", "r", 1, &atomic)));
  expect_text("relative", "r");
  cr_assert_eq(entries_in(dir), 2);
  /* errors name the target, not the temporary */
  fails(vow_fs_write_file(loop, at("nodir/config"), "x", 1, &atomic), UV_ENOENT,
        msg("ENOENT: no such file or directory, open '%s'", "nodir/config"));
  /* a link at the path is replaced by the new file, its target left alone */
  cr_assert_eq(symlink("config", at("link")), 0);
  vow_unref(ok(vow_fs_write_file(loop, at("link"), "via link", 8, &atomic)));
  struct stat st;
  cr_assert_eq(lstat(at("link"), &st), 0);
  cr_assert(S_ISREG(st.st_mode), "the link became a file");
  expect_text("link", "via link");
  expect_text("config", "new contents");
  vow_fs_write_options bad = {.atomic = 1, .append = 1};
  fails(vow_fs_write_file(loop, at("config"), "x", 1, &bad), VOW_EINVAL,
        "vow_fs_write_file: atomic cannot be combined with append or exclusive");
  return vow_undefined();
}
Test(fs, atomic_write_replaces_whole_and_leaves_no_temporary) { run(atomic_write); }

/* await readFile('nope.txt')   -> ENOENT: no such file or directory, open 'nope.txt'
 * await readFile('.')          -> EISDIR: illegal operation on a directory, read
 *                                 (vow adds the path: Node leaves it out of read errors)
 * await writeFile('nodir/x.txt', 'a') -> ENOENT: no such file or directory, open 'nodir/x.txt'
 * await writeFile('.', 'a')    -> EISDIR: illegal operation on a directory, open '.'
 * await readFile('')           -> ENOENT: no such file or directory, open '' */
static vow_value path_errors(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  fails(vow_fs_read_file(loop, at("nope.txt"), NULL), UV_ENOENT,
        msg("ENOENT: no such file or directory, open '%s'", "nope.txt"));
  fails(vow_fs_read_file(loop, dir, NULL), UV_EISDIR,
        msg("EISDIR: illegal operation on a directory, read '%s'", ""));
  fails(vow_fs_write_file(loop, at("nodir/x.txt"), "a", 1, NULL), UV_ENOENT,
        msg("ENOENT: no such file or directory, open '%s'", "nodir/x.txt"));
  fails(vow_fs_write_file(loop, dir, "a", 1, NULL), UV_EISDIR,
        msg("EISDIR: illegal operation on a directory, open '%s'", ""));
  fails(vow_fs_read_file(loop, "", NULL), UV_ENOENT, "ENOENT: no such file or directory, open ''");
  write_text("file", "x");
  fails(vow_fs_read_file(loop, at("file/inside"), NULL), UV_ENOTDIR,
        msg("ENOTDIR: not a directory, open '%s'", "file/inside"));
  char long_name[300];
  memset(long_name, 'n', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';
  fails(vow_fs_read_file(loop, at(long_name), NULL), UV_ENAMETOOLONG,
        msg("ENAMETOOLONG: name too long, open '%s'", long_name));
  if (geteuid() != 0) { /* root reads anything */
    cr_assert_eq(chmod(at("file"), 0), 0);
    fails(vow_fs_read_file(loop, at("file"), NULL), UV_EACCES,
          msg("EACCES: permission denied, open '%s'", "file"));
  }
  return vow_undefined();
}
Test(fs, every_path_error_rejects_with_nodes_message_and_the_path) { run(path_errors); }

/* Every call refuses a NULL path with a message naming it. */
static vow_value null_paths(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  fails(vow_fs_read_file(loop, NULL, NULL), VOW_EINVAL, "vow_fs_read_file: the path is NULL");
  fails(vow_fs_write_file(loop, NULL, "a", 1, NULL), VOW_EINVAL, "vow_fs_write_file: the path is NULL");
  fails(vow_fs_write_file(loop, at("x"), NULL, 1, NULL), VOW_EINVAL, "vow_fs_write_file: the data is NULL");
  fails(vow_fs_write_file_value(loop, at("x"), vow_int(1), NULL), VOW_EINVAL,
        "vow_fs_write_file: the data is not a STRING");
  fails(vow_fs_stat(loop, NULL), VOW_EINVAL, "vow_fs_stat: the path is NULL");
  fails(vow_fs_lstat(loop, NULL), VOW_EINVAL, "vow_fs_lstat: the path is NULL");
  fails(vow_fs_mkdir(loop, NULL, NULL), VOW_EINVAL, "vow_fs_mkdir: the path is NULL");
  fails(vow_fs_rm(loop, NULL, NULL), VOW_EINVAL, "vow_fs_rm: the path is NULL");
  fails(vow_fs_rename(loop, at("a"), NULL), VOW_EINVAL, "vow_fs_rename: a path is NULL");
  vow_asyncgen *g = vow_fs_readdir(loop, NULL);
  fails(vow_asyncgen_next(g, vow_undefined()), VOW_EINVAL, "vow_fs_readdir: the path is NULL");
  vow_asyncgen_unref(g);
  cr_assert_eq(entries_in(dir), 0, "nothing was made");
  return vow_undefined();
}
Test(fs, null_arguments_reject_naming_the_call) { run(null_paths); }

/* A file whose size fstat cannot tell (a FIFO, /proc) is read to its end. */
static void *fifo_writer(void *path) {
  int fd = open(path, O_WRONLY);
  char chunk[4096];
  for (size_t i = 0; i < sizeof chunk; i++) chunk[i] = (char)('a' + i % 26);
  for (int i = 0; i < 100 && fd >= 0; i++) /* 400 KiB: the buffer grows past 64 KiB */
    if (write(fd, chunk, sizeof chunk) != (ssize_t)sizeof chunk) break;
  if (fd >= 0) close(fd);
  return NULL;
}

static vow_value unknown_size(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  vow_value v = ok(vow_fs_read_file(loop, "/proc/self/status", NULL));
  cr_assert(strstr(vow_str(v), "VmRSS:") != NULL, "read /proc/self/status (fstat size 0)");
  vow_unref(v);
  cr_assert_eq(mkfifo(at("fifo"), 0600), 0);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, fifo_writer, (void *)at("fifo")), 0);
  v = ok(vow_fs_read_file(loop, at("fifo"), NULL));
  pthread_join(t, NULL);
  cr_assert_eq(vow_str_len(v), 100 * 4096);
  cr_assert_eq(vow_str(v)[4096 * 50 + 3], 'd');
  vow_unref(v);
  return vow_undefined();
}
Test(fs, a_file_of_unknown_size_is_read_to_its_end) { run(unknown_size); }

/* max_size: a bigger file rejects with VOW_ETOOBIG, known size or not. */
static vow_value too_big(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  write_text("ten", "0123456789");
  vow_fs_read_options nine = {.max_size = 9}, ten = {.max_size = 10};
  fails(vow_fs_read_file(loop, at("ten"), &nine), VOW_ETOOBIG,
        msg("VOW_ETOOBIG: file is larger than the limit, read '%s'", "ten"));
  vow_unref(ok(vow_fs_read_file(loop, at("ten"), &ten)));
  cr_assert_eq(mkfifo(at("fifo"), 0600), 0);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, fifo_writer, (void *)at("fifo")), 0);
  vow_fs_read_options small = {.max_size = 100000};
  fails(vow_fs_read_file(loop, at("fifo"), &small), VOW_ETOOBIG,
        msg("VOW_ETOOBIG: file is larger than the limit, read '%s'", "fifo"));
  pthread_join(t, NULL); /* the writer got EPIPE when the reader closed, and ended */
  return vow_undefined();
}
Test(fs, max_size_rejects_bigger_files) {
  signal(SIGPIPE, SIG_IGN); /* the FIFO's writer outlives its reader */
  run(too_big);
}

/* ---- a full disk, a file-size limit -------------------------------------------------------- */

/* await writeFile('/dev/full', 'abc') -> ENOSPC: no space left on device, write */
static vow_value disk_full(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  static char big[3 << 20]; /* more than one chunk */
  fails(vow_fs_write_file(loop, "/dev/full", "abc", 3, NULL), UV_ENOSPC,
        "ENOSPC: no space left on device, write '/dev/full'");
  vow_fs_write_options append = {.append = 1, .fsync = 1};
  fails(vow_fs_write_file(loop, "/dev/full", big, sizeof big, &append), UV_ENOSPC,
        "ENOSPC: no space left on device, write '/dev/full'");
  return vow_undefined();
}
Test(fs, a_full_disk_rejects_with_enospc) { run(disk_full); }

/* With RLIMIT_FSIZE at 64 KiB (and SIGXFSZ ignored, as the header says),
 * writing 1 MiB rejects with EFBIG; an atomic write leaves the old file whole
 * and no temporary behind. Criterion runs each test in its own process, so
 * the limit and the signal disposition stay in this one. */
static vow_value file_size_limit(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  static char mib[1 << 20];
  write_text("keep", "the old contents");
  fails(vow_fs_write_file(loop, at("big"), mib, sizeof mib, NULL), UV_EFBIG,
        msg("EFBIG: file too large, write '%s'", "big"));
  struct stat st;
  cr_assert_eq(stat(at("big"), &st), 0);
  cr_assert_eq(st.st_size, 64 << 10, "it wrote up to the limit, then stopped");
  vow_fs_write_options atomic = {.atomic = 1};
  fails(vow_fs_write_file(loop, at("keep"), mib, sizeof mib, &atomic), UV_EFBIG,
        msg("EFBIG: file too large, write '%s'", "keep"));
  expect_text("keep", "the old contents");
  cr_assert_eq(entries_in(dir), 2, "keep and big, no temporary");
  return vow_undefined();
}
Test(fs, a_file_size_limit_rejects_with_efbig) {
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = {64 << 10, 64 << 10};
  cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
  run(file_size_limit);
}

/* ---- aborts -------------------------------------------------------------------------------- */

/* const ac = new AbortController(); ac.abort();
 * await readFile('f', {signal: ac.signal}) -> AbortError: The operation was aborted */
static vow_value aborted_before(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  write_text("f", "data");
  vow_abort_signal *s = vow_abort_signal_new(loop);
  vow_abort(s, vow_undefined());
  vow_fs_read_options ro = {.signal = s};
  vow_fs_write_options wo = {.signal = s};
  fails(vow_fs_read_file(loop, at("f"), &ro), VOW_EABORTED, "This operation was aborted");
  fails(vow_fs_write_file(loop, at("g"), "x", 1, &wo), VOW_EABORTED, "This operation was aborted");
  cr_assert_eq(entries_in(dir), 1, "the aborted write made nothing");
  vow_abort_signal_unref(s);
  return vow_undefined();
}
Test(fs, an_aborted_signal_rejects_at_once_and_does_nothing) { run(aborted_before); }

/* A read blocked on a FIFO: the abort marks it (or takes it off the queue);
 * one more byte wakes the pool thread, which sees the mark and stops. */
typedef struct blocked {
  vow_abort_signal *signal;
  int wfd;
} blocked;

static void abort_then_wake(vow_loop *l, void *arg) {
  (void)l;
  blocked *b = arg;
  vow_abort(b->signal, vow_error(VOW_ETIMEDOUT, "gave up"));
  cr_assert_eq(write(b->wfd, "!", 1), 1);
}

static vow_value aborted_during(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  cr_assert_eq(mkfifo(at("fifo"), 0600), 0);
  blocked b = {vow_abort_signal_new(loop), open(at("fifo"), O_RDWR)}; /* never blocks (Linux) */
  cr_assert_geq(b.wfd, 0);
  cr_assert_eq(write(b.wfd, "some bytes", 10), 10);
  vow_fs_read_options ro = {.signal = b.signal};
  vow_promise *p = vow_fs_read_file(loop, at("fifo"), &ro);
  vow_set_timeout(loop, 20, abort_then_wake, &b);
  fails(p, VOW_ETIMEDOUT, "gave up");
  close(b.wfd);
  vow_abort_signal_unref(b.signal);
  return vow_undefined();
}
Test(fs, an_abort_stops_a_read_in_progress) { run(aborted_during); }

/* Work still on the pool when the loop is freed: freeing waits for it and
 * drops its result; nothing leaks. */
Test(fs, freeing_the_loop_with_calls_in_flight) {
  for (int i = 0; i < 8; i++) {
    vow_promise_unref(vow_fs_write_file(loop, at("f"), "abc", 3, NULL));
    vow_promise_unref(vow_fs_read_file(loop, "/proc/self/status", NULL));
    vow_promise_unref(vow_fs_stat(loop, dir));
  }
  cr_assert_eq(vow_loop_free(loop), 0);
  loop = NULL;
  TEST_LEAK_CHECK();
}

/* ---- stat ---------------------------------------------------------------------------------- */

/* const s = await stat('f'); s.isFile(), s.size -> true 5
 * (await lstat('link')).isSymbolicLink() -> true; (await stat('link')).isFile() -> true
 * await stat('nope') -> ENOENT: no such file or directory, stat 'nope' */
static vow_value stats(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  write_text("f", "12345");
  cr_assert_eq(symlink(at("f"), at("link")), 0);
  struct stat want;
  cr_assert_eq(stat(at("f"), &want), 0);
  vow_value v = ok(vow_fs_stat(loop, at("f")));
  const vow_stat *s = vow_as_stat(v);
  cr_assert_not_null(s);
  cr_assert_eq(s->type, VOW_FILE_REGULAR);
  cr_assert_eq(s->size, 5);
  cr_assert_eq(s->ino, (uint64_t)want.st_ino);
  cr_assert_eq(s->mode, (uint32_t)want.st_mode);
  cr_assert_eq(s->mtime_ns, (int64_t)want.st_mtim.tv_sec * 1000000000 + want.st_mtim.tv_nsec);
  cr_assert_null(vow_as_dirent(v), "a stat is not a dirent");
  vow_unref(v);
  v = ok(vow_fs_lstat(loop, at("link")));
  cr_assert_eq(vow_as_stat(v)->type, VOW_FILE_SYMLINK);
  vow_unref(v);
  v = ok(vow_fs_stat(loop, at("link")));
  cr_assert_eq(vow_as_stat(v)->type, VOW_FILE_REGULAR);
  vow_unref(v);
  v = ok(vow_fs_stat(loop, dir));
  cr_assert_eq(vow_as_stat(v)->type, VOW_FILE_DIRECTORY);
  vow_unref(v);
  v = ok(vow_fs_stat(loop, "/dev/null"));
  cr_assert_eq(vow_as_stat(v)->type, VOW_FILE_CHAR_DEVICE);
  vow_unref(v);
  cr_assert_null(vow_as_stat(vow_int(3)));
  fails(vow_fs_stat(loop, at("nope")), UV_ENOENT, msg("ENOENT: no such file or directory, stat '%s'", "nope"));
  fails(vow_fs_lstat(loop, at("nope")), UV_ENOENT, msg("ENOENT: no such file or directory, lstat '%s'", "nope"));
  return vow_undefined();
}
Test(fs, stat_and_lstat) { run(stats); }

/* ---- readdir ------------------------------------------------------------------------------- */

/* for await (const e of await opendir(d)) -> every entry once, with its type,
 * no '.' or '..' (200 files, a directory, a link: more than one batch) */
static vow_value listing(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  char name[32];
  for (int i = 0; i < 200; i++) {
    snprintf(name, sizeof name, "file%03d", i);
    write_text(name, "");
  }
  cr_assert_eq(mkdir(at("sub"), 0700), 0);
  cr_assert_eq(symlink("file000", at("link")), 0);
  char seen[200] = {0};
  int files = 0, dirs = 0, links = 0, fds = open_fds();
  vow_for_await it;
  cr_assert_eq(vow_for_await_gen(&it, vow_fs_readdir(loop, dir)), 0);
  VOW_FOR_AWAIT(&it, v) {
    const vow_dirent *e = vow_as_dirent(v);
    cr_assert_not_null(e);
    int k;
    if (e->type == VOW_FILE_REGULAR && sscanf(e->name, "file%d", &k) == 1 && k >= 0 && k < 200) {
      cr_assert_eq(seen[k]++, 0, "%s seen twice", e->name);
      files++;
    } else if (e->type == VOW_FILE_DIRECTORY && !strcmp(e->name, "sub")) {
      dirs++;
    } else if (e->type == VOW_FILE_SYMLINK && !strcmp(e->name, "link")) {
      links++;
    } else {
      cr_assert_fail("unexpected entry '%s' of type %d", e->name, e->type);
    }
  }
  cr_assert_eq(vow_for_await_end(&it, NULL), 0);
  cr_assert_eq(files, 200);
  cr_assert_eq(dirs + links, 2);
  cr_assert_eq(open_fds(), fds, "the directory was closed at its end");
  /* leaving early closes it too */
  cr_assert_eq(vow_for_await_gen(&it, vow_fs_readdir(loop, dir)), 0);
  int n = 0;
  VOW_FOR_AWAIT(&it, v) {
    if (++n == 3) break; /* v is released by vow_for_await_end */
  }
  cr_assert_eq(vow_for_await_end(&it, NULL), 0);
  cr_assert_eq(open_fds(), fds, "the directory was closed when the loop left early");
  /* an empty directory yields nothing */
  cr_assert_eq(vow_for_await_gen(&it, vow_fs_readdir(loop, at("sub"))), 0);
  VOW_FOR_AWAIT(&it, v) cr_assert_fail("sub is empty");
  cr_assert_eq(vow_for_await_end(&it, NULL), 0);
  return vow_undefined();
}
Test(fs, readdir_yields_every_entry_with_its_type) { run(listing); }

/* await opendir('nope')  -> ENOENT: no such file or directory, opendir 'nope'
 * await opendir('t.mjs') -> ENOTDIR: not a directory, opendir 't.mjs' */
static vow_value listing_errors(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  write_text("file", "x");
  vow_asyncgen *g = vow_fs_readdir(loop, at("nope"));
  fails(vow_asyncgen_next(g, vow_undefined()), UV_ENOENT,
        msg("ENOENT: no such file or directory, opendir '%s'", "nope"));
  vow_asyncgen_unref(g);
  g = vow_fs_readdir(loop, at("file"));
  fails(vow_asyncgen_next(g, vow_undefined()), UV_ENOTDIR, msg("ENOTDIR: not a directory, opendir '%s'", "file"));
  vow_asyncgen_unref(g);
  /* a generator released before its first next() never opens anything */
  vow_asyncgen_unref(vow_fs_readdir(loop, dir));
  return vow_undefined();
}
Test(fs, readdir_errors_reject_the_first_next) { run(listing_errors); }

/* ---- mkdir, rm, rename --------------------------------------------------------------------- */

/* await mkdir('d')                        -> undefined
 * await mkdir('d')                        -> EEXIST: file already exists, mkdir 'd'
 * await mkdir('d', {recursive: true})     -> undefined
 * await mkdir('d/a/b/c', {recursive: true}) -> d/a
 * await mkdir('t.mjs/a', {recursive: true}) -> ENOTDIR: not a directory, mkdir 't.mjs/a'
 * await mkdir('x/y')                      -> ENOENT: no such file or directory, mkdir 'x/y' */
static vow_value mkdirs(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  vow_fs_mkdir_options p = {.recursive = 1};
  vow_value v = ok(vow_fs_mkdir(loop, at("d"), NULL));
  cr_assert(vow_is_undefined(v));
  fails(vow_fs_mkdir(loop, at("d"), NULL), UV_EEXIST, msg("EEXIST: file already exists, mkdir '%s'", "d"));
  v = ok(vow_fs_mkdir(loop, at("d"), &p));
  cr_assert(vow_is_undefined(v), "nothing to make");
  v = ok(vow_fs_mkdir(loop, at("d/a/b/c"), &p));
  cr_assert_str_eq(vow_str(v), at("d/a"), "the first directory made");
  vow_unref(v);
  struct stat st;
  cr_assert_eq(stat(at("d/a/b/c"), &st), 0);
  cr_assert(S_ISDIR(st.st_mode));
  /* doubled and trailing slashes: Node prints 'e/' here, vow the directory without a separator */
  v = ok(vow_fs_mkdir(loop, at("e//f/"), &p));
  cr_assert_str_eq(vow_str(v), at("e"));
  vow_unref(v);
  write_text("t.mjs", "");
  fails(vow_fs_mkdir(loop, at("t.mjs/a"), &p), UV_ENOTDIR, msg("ENOTDIR: not a directory, mkdir '%s'", "t.mjs/a"));
  fails(vow_fs_mkdir(loop, at("t.mjs"), &p), UV_EEXIST, msg("EEXIST: file already exists, mkdir '%s'", "t.mjs"));
  fails(vow_fs_mkdir(loop, at("x/y"), NULL), UV_ENOENT, msg("ENOENT: no such file or directory, mkdir '%s'", "x/y"));
  vow_fs_mkdir_options private = {.mode = 0700};
  vow_unref(ok(vow_fs_mkdir(loop, at("private"), &private)));
  cr_assert_eq(stat(at("private"), &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0700);
  return vow_undefined();
}
Test(fs, mkdir_and_mkdir_p) { run(mkdirs); }

/* await rm('d')                    -> Node: ERR_FS_EISDIR "Path is a directory: rm returned EISDIR
 *                                     (is a directory) d"; vow: EISDIR: illegal operation on a directory, rm 'd'
 * await rm('nope')                 -> ENOENT: no such file or directory, lstat 'nope'
 * await rm('nope', {force: true})  -> undefined
 * await rm('d', {recursive: true}) -> undefined (links inside are removed, not followed) */
static vow_value removals(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  vow_fs_rm_options r = {.recursive = 1}, f = {.force = 1};
  vow_fs_mkdir_options p = {.recursive = 1};
  write_text("f", "x");
  vow_unref(ok(vow_fs_rm(loop, at("f"), NULL)));
  cr_assert_eq(access(at("f"), F_OK), -1);
  fails(vow_fs_rm(loop, at("nope"), NULL), UV_ENOENT, msg("ENOENT: no such file or directory, lstat '%s'", "nope"));
  vow_unref(ok(vow_fs_rm(loop, at("nope"), &f)));
  /* a tree: nested directories, files, and a link to a directory outside it */
  vow_unref(ok(vow_fs_mkdir(loop, at("tree/a/b/c"), &p)));
  vow_unref(ok(vow_fs_mkdir(loop, at("outside"), NULL)));
  write_text("outside/precious", "keep me");
  write_text("tree/a/one", "1");
  write_text("tree/a/b/two", "2");
  cr_assert_eq(symlink(at("outside"), at("tree/a/b/c/link")), 0);
  fails(vow_fs_rm(loop, at("tree"), NULL), UV_EISDIR, msg("EISDIR: illegal operation on a directory, rm '%s'", "tree"));
  vow_unref(ok(vow_fs_rm(loop, at("tree"), &r)));
  cr_assert_eq(access(at("tree"), F_OK), -1, "the tree is gone");
  expect_text("outside/precious", "keep me");
  /* a link to a directory is removed as a link, recursive or not */
  cr_assert_eq(symlink(at("outside"), at("dirlink")), 0);
  vow_unref(ok(vow_fs_rm(loop, at("dirlink"), NULL)));
  expect_text("outside/precious", "keep me");
  cr_assert_eq(entries_in(dir), 1);
  return vow_undefined();
}
Test(fs, rm_and_rm_r) { run(removals); }

/* await rename('a', 'b') -> b holds a's contents
 * await rename('nope', 'b') -> ENOENT: no such file or directory, rename 'nope' -> 'b' */
static vow_value renames(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  write_text("a", "contents");
  write_text("b", "replaced");
  vow_unref(ok(vow_fs_rename(loop, at("a"), at("b"))));
  expect_text("b", "contents");
  cr_assert_eq(access(at("a"), F_OK), -1);
  char want[1200];
  snprintf(want, sizeof want, "ENOENT: no such file or directory, rename '%s' -> '%s'", at("nope"), at("b"));
  fails(vow_fs_rename(loop, at("nope"), at("b")), UV_ENOENT, want);
  return vow_undefined();
}
Test(fs, rename_replaces_and_names_both_paths) { run(renames); }

/* ---- files as streams ---------------------------------------------------------------------- */

static long vm_kb(const char *field) {
  char line[256];
  long kb = -1;
  FILE *f = fopen("/proc/self/status", "r");
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, field, strlen(field))) kb = strtol(line + strlen(field) + 1, NULL, 10);
  if (f) fclose(f);
  return kb;
}

static vow_stream *open_stream(vow_promise *p) {
  vow_value v = ok(p);
  vow_stream *s = vow_stream_ref(vow_as_stream(v));
  cr_assert_not_null(s, "the value holds a stream");
  vow_unref(v);
  return s;
}

/* for await (const chunk of createReadStream(big)) n += chunk.length
 * over a 1 GiB (sparse) file: every byte arrives, and the peak RSS stays
 * flat, far below the file's size. */
#define GIB ((int64_t)1 << 30)
static vow_value stream_a_gib(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  int fd = open(at("big"), O_WRONLY | O_CREAT, 0600);
  cr_assert_geq(fd, 0);
  cr_assert_eq(ftruncate(fd, GIB), 0);
  cr_assert_eq(pwrite(fd, "end", 3, GIB - 3), 3);
  close(fd);
  long hwm0 = vm_kb("VmHWM"), rss0 = vm_kb("VmRSS");
  vow_stream *s = open_stream(vow_fs_open_read(loop, at("big"), NULL));
  int64_t n = 0, chunks = 0;
  char last[3] = {0};
  vow_for_await it;
  cr_assert_eq(vow_for_await_gen(&it, vow_stream_chunks(s)), 0);
  VOW_FOR_AWAIT(&it, c) {
    size_t len = vow_str_len(c);
    n += (int64_t)len;
    chunks++;
    if (len >= 3) memcpy(last, vow_str(c) + len - 3, 3);
  }
  cr_assert_eq(vow_for_await_end(&it, NULL), 0);
  vow_stream_unref(s);
  long hwm1 = vm_kb("VmHWM");
  cr_assert_eq(n, GIB, "every byte arrived (%lld)", (long long)n);
  cr_assert_eq(memcmp(last, "end", 3), 0);
  /* The peak over the run, against what was resident before it: the most the
   * stream ever held at once, whatever it freed since. */
  long grew_kb = hwm1 - (hwm0 > rss0 ? hwm0 : rss0);
  fprintf(stderr, "1 GiB streamed in %lld chunks; peak RSS grew %ld KiB\n", (long long)chunks,
          grew_kb > 0 ? grew_kb : 0);
#if !defined(__SANITIZE_ADDRESS__) /* ASan's quarantine keeps 256 MiB of freed blocks resident */
  cr_assert_lt(grew_kb, 64 << 10, "peak RSS grew by %ld KiB streaming 1 GiB", grew_kb);
#endif
  return vow_undefined();
}
Test(fs, a_gib_file_streams_in_flat_memory) { run(stream_a_gib); }

/* const w = createWriteStream('out'); w.write('one '); w.write('two '); w.end('three');
 * then readFile('out') -> 'one two three'; createReadStream('out', {start: 4}) -> 'two three' */
static vow_value write_stream(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  write_text("out", "old contents, longer than the new");
  vow_stream *w = open_stream(vow_fs_open_write(loop, at("out"), NULL));
  vow_promise *a = vow_stream_write(w, "one ", 4), *b = vow_stream_write(w, "two ", 4);
  vow_promise *c = vow_stream_write_value(w, vow_string("three\nfour"));
  vow_unref(ok(a)), vow_unref(ok(b)), vow_unref(ok(c));
  vow_unref(ok(vow_stream_close(w)));
  vow_stream_unref(w);
  expect_text("out", "one two three\nfour");
  /* from an offset, as lines */
  vow_fs_stream_options from4 = {.start = 4};
  vow_stream *r = open_stream(vow_fs_open_read(loop, at("out"), &from4));
  vow_for_await it;
  cr_assert_eq(vow_for_await_gen(&it, vow_stream_lines(r, 0)), 0);
  VOW_FOR_AWAIT(&it, line) LOG("%s", vow_str(line));
  cr_assert_eq(vow_for_await_end(&it, NULL), 0);
  vow_stream_unref(r);
  cr_assert_str_eq(LOG_TEXT(), "two three four");
  /* append, and a writer with a start keeps the rest */
  vow_fs_stream_options append = {.append = 1}, at4 = {.start = 4};
  w = open_stream(vow_fs_open_write(loop, at("out"), &append));
  vow_unref(ok(vow_stream_write(w, "!", 1)));
  vow_stream_unref(w);
  w = open_stream(vow_fs_open_write(loop, at("out"), &at4));
  vow_unref(ok(vow_stream_write(w, "TWO", 3)));
  vow_unref(ok(vow_stream_close(w)));
  vow_stream_unref(w);
  expect_text("out", "one TWO three\nfour!");
  return vow_undefined();
}
Test(fs, write_stream_then_read_stream_from_an_offset) { run(write_stream); }

/* Open errors reject the open; write errors reject the write. */
static vow_value stream_errors(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  fails(vow_fs_open_read(loop, at("nope"), NULL), UV_ENOENT,
        msg("ENOENT: no such file or directory, open '%s'", "nope"));
  fails(vow_fs_open_read(loop, dir, NULL), UV_EISDIR, msg("EISDIR: illegal operation on a directory, open '%s'", ""));
  fails(vow_fs_open_write(loop, at("no/dir"), NULL), UV_ENOENT,
        msg("ENOENT: no such file or directory, open '%s'", "no/dir"));
  write_text("x", "");
  vow_fs_stream_options wx = {.exclusive = 1}, bad = {.start = -1};
  fails(vow_fs_open_write(loop, at("x"), &wx), UV_EEXIST, msg("EEXIST: file already exists, open '%s'", "x"));
  fails(vow_fs_open_read(loop, at("x"), &bad), VOW_EINVAL, "vow_fs_open_read: start is negative");
  fails(vow_fs_open_read(loop, NULL, NULL), VOW_EINVAL, "vow_fs_open_read: the path is NULL");
  fails(vow_fs_open_write(loop, NULL, NULL), VOW_EINVAL, "vow_fs_open_write: the path is NULL");
  vow_stream *full = open_stream(vow_fs_open_write(loop, "/dev/full", NULL));
  fails(vow_stream_write(full, "abc", 3), UV_ENOSPC, "ENOSPC: write '/dev/full'");
  vow_stream_unref(full);
  /* an aborted signal rejects the open; one that aborts later closes the stream */
  vow_abort_signal *sig = vow_abort_signal_new(loop);
  vow_fs_stream_options with = {.signal = sig};
  vow_stream *r = open_stream(vow_fs_open_read(loop, at("x"), &with));
  vow_abort(sig, vow_error(VOW_ETIMEDOUT, "enough"));
  vow_asyncgen *g = vow_stream_chunks(r);
  fails(vow_asyncgen_next(g, vow_undefined()), VOW_ETIMEDOUT, "enough");
  vow_asyncgen_unref(g);
  vow_stream_unref(r);
  fails(vow_fs_open_read(loop, at("x"), &with), VOW_ETIMEDOUT, "enough");
  vow_abort_signal_unref(sig);
  return vow_undefined();
}
Test(fs, stream_errors_name_the_path) { run(stream_errors); }

/* Work still queued when its signal aborts is taken off the pool's queue:
 * here the only pool thread is held by a read of a FIFO that has no writer
 * yet (its open blocks until one comes), so the atomic write behind it is
 * queued for sure when the abort comes. It rejects with the reason, and the
 * target is untouched, with no temporary beside it. */
static vow_value aborted_in_queue(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  write_text("target", "old");
  cr_assert_eq(mkfifo(at("fifo"), 0600), 0);
  vow_promise *blocker = vow_fs_read_file(loop, at("fifo"), NULL); /* holds the pool's thread */
  vow_abort_signal *s = vow_abort_signal_new(loop);
  vow_fs_write_options atomic = {.atomic = 1, .signal = s};
  vow_promise *w = vow_fs_write_file(loop, at("target"), "new", 3, &atomic);
  vow_abort(s, vow_error(VOW_EABORTED, "changed my mind"));
  fails(w, VOW_EABORTED, "changed my mind");
  char now[8] = {0};
  FILE *f = fopen(at("target"), "r"); /* not vow_fs_read_file: it would queue behind the blocker */
  cr_assert_not_null(f);
  cr_assert_eq(fread(now, 1, sizeof now - 1, f), 3);
  fclose(f);
  cr_assert_str_eq(now, "old");
  /* Opening the writing end waits for the blocker's open of the reading
   * end, however late the pool thread gets to it: then "x", then the end. */
  int wfd = open(at("fifo"), O_WRONLY);
  cr_assert_geq(wfd, 0);
  cr_assert_eq(write(wfd, "x", 1), 1);
  close(wfd);
  vow_value v = ok(blocker);
  cr_assert_str_eq(vow_str(v), "x");
  vow_unref(v);
  expect_text("target", "old");
  cr_assert_eq(entries_in(dir), 2, "target and fifo, no temporary");
  vow_abort_signal_unref(s);
  return vow_undefined();
}
Test(fs, an_abort_takes_queued_work_off_the_pool) {
  setenv("UV_THREADPOOL_SIZE", "1", 1); /* read by libuv when this process first uses its pool */
  run(aborted_in_queue);
}
