/*
 * process.c — child processes: spawn with argv, env, cwd and a mode per
 * stdio fd; the exit as a promise; kill, also when an AbortSignal aborts;
 * and exec, which collects a child's output within a size and a time limit.
 *
 * Why glibc's posix_spawn and a pidfd rather than uv_spawn: uv_spawn
 * fork()s, and fork copies the parent's page tables and every mapping
 * (vow links libcurl and its TLS stack: ~200 of them), which the child
 * then tears down again at its exec; the loop meanwhile blocks on a pipe
 * until the exec. posix_spawn clones with CLONE_VFORK (the child borrows
 * our memory until it execs: nothing is copied). Measured on the 2-core
 * test machine, bench spawn_true (4 at a time, /bin/true), interleaved
 * runs: uv_spawn 830-1400 spawns/s at 245-300 us of parent CPU each;
 * posix_spawn 2250-2480/s at 55-57 us; Node 20 920-1070/s at 520-615 us
 * (bench_suite --rounds 3 on a busier machine: 1252/s against Node's 385).
 * A minimal libuv program without libcurl's mappings spawns 2-3x faster
 * with uv_spawn than vow did, which is how the cost was traced to fork.
 * Where the kernel gives no pidfd (before Linux 5.3, or a seccomp filter
 * says ENOSYS/EPERM), or while SIGCHLD is ignored (the kernel would reap
 * the child and drop its status; libuv's SIGCHLD handler undoes that), the
 * child is spawned with uv_spawn as before.
 *
 * A vow_process holds its handle: a uv_poll_t on the child's pidfd, or
 * libuv's uv_process_t. From the spawn to its free it is on the loop's
 * list (vow__io.processes), where the loop's teardown finds it to reap its
 * child and release its exit promise. Its life:
 *
 *   running  the spawn succeeded and the child has not been reaped: its
 *            handle is open;
 *   exited   the child was reaped (by waitid on its pidfd when that became
 *            readable, or by libuv, which calls on_uv_exit): the exit
 *            promise is fulfilled and the handle closes. The reference the
 *            open handle holds goes in the close callback, which also
 *            closes the pidfd (only then: the poll watches it until closed).
 *
 * Invariants:
 *   - no zombie: a child is reaped either while the loop runs (on_pidfd, or
 *     libuv's SIGCHLD watcher, which waits only for its own uv_process_t
 *     children, never ours), or by the teardown, which kills it (SIGKILL)
 *     and waits for it. The handle is closed only after one of the two,
 *     because closing a uv_process_t takes the child off the list of
 *     children libuv reaps;
 *   - no signal is sent once the child is reaped (`running` is 0): its pid
 *     may already be another process's;
 *   - references: the caller's, and one while the handle is open; an exec
 *     job holds the caller's reference of the process it made;
 *   - every libuv callback that may settle a promise enters through
 *     vow__loop_enter; after the teardown, callbacks only free memory.
 *
 * An exec job reads the child's stdout and stderr through pipes of its own
 * (not vow_streams: it only ever collects), into buffers that grow up to
 * the limit and no further. It settles once three things have happened: the
 * exit, and the end of each pipe — Node's 'close', not 'exit', so no output
 * is lost — and closes the pipes then.
 */
#define _GNU_SOURCE /* posix_spawn_file_actions_addchdir_np, in glibc since 2.29 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/list.h"
#include "io/io.h"
#include "io/stream.h"
#include "promise/value.h"

#define DEFAULT_MAX_OUTPUT ((size_t)1 << 20)
enum { READ_CHUNK = 64 * 1024, MAX_SIGNAL = 64 };

typedef struct exec_job exec_job;

struct vow_process {
  union {                   /* which one: pidfd >= 0 says the poll */
    uv_handle_t any;
    uv_process_t process;   /* uv_spawn's child (no pidfd on this kernel) */
    uv_poll_t poll;         /* posix_spawn's child: readable once it exited */
  } handle;
  int pid;
  int pidfd;                /* -1 when libuv's uv_process_t watches the child */
  vow_loop *loop;
  uint32_t refs;
  int running;              /* spawned and not yet reaped */
  int listed;               /* on the loop's list (until freed, or the loop is) */
  int64_t status;           /* the exit INT, once exited */
  vow_promise *exit;        /* fulfilled at the exit; NULL after the teardown */
  vow_abort_signal *signal; /* options.signal, until the exit */
  int64_t listener;
  int kill_signal;
  vow_stream *stdio[3];     /* the pipes, for VOW_STDIO_PIPE */
  exec_job *exec;           /* the job that made it, if vow_exec did */
  vow_process *prev, *next; /* on the loop's list, from the spawn to the free */
};

/* What the child's fd 0, 1 or 2 is: a VOW_STDIO_* mode, and for a pipe the
 * parent's end (a uv_pipe_t initialised, not yet open). */
typedef struct child_fd {
  int mode;
  uv_pipe_t *pipe;
} child_fd;

/* What spawn needs beyond the public options: exec's own pipes. */
typedef struct spawn_args {
  const char *const *argv;
  const char *const *env;
  const char *cwd;
  child_fd stdio[3];
} spawn_args;

static void exec_exited(exec_job *job);
static void exec_abort(exec_job *job, vow_value reason);
static void exec_teardown(exec_job *job);

/* ---- the process object ------------------------------------------------------------ */

static void unlink_process(vow_process *p);

static void process_free(vow_process *p) {
  unlink_process(p);
  for (int i = 0; i < 3; i++) vow_stream_unref(p->stdio[i]);
  vow_promise_unref(p->exit);
  vow__free(p);
}

vow_process *vow_process_ref(vow_process *p) {
  if (p) p->refs++;
  return p;
}

void vow_process_unref(vow_process *p) {
  if (p && --p->refs == 0) process_free(p);
}

static void handle_closed(uv_handle_t *h) {
  vow_process *p = h->data;
  if (p->pidfd >= 0) close(p->pidfd); /* only now: the poll watched it until closed */
  p->pidfd = -1;
  vow_process_unref(p);
}

static void link_process(vow_process *p) {
  vow__io *io = vow__io_get(p->loop); /* made before the spawn: never NULL here */
  VOW__LIST_PUSH(io->processes, p);
  p->listed = 1;
}

static void unlink_process(vow_process *p) {
  if (!p->listed) return;
  vow__io *io = vow__loop_ext(p->loop, VOW__EXT_IO);
  if (io) VOW__LIST_UNLINK(io->processes, p);
  p->listed = 0;
}

static void drop_signal(vow_process *p) {
  if (p->listener > 0) vow_abort_signal_off(p->signal, p->listener);
  p->listener = 0;
  vow_abort_signal_unref(p->signal);
  p->signal = NULL;
}

/* The child was reaped: the exit promise fulfils, the handle closes. */
static void exited_task(vow_loop *loop, void *arg) {
  (void)loop;
  vow_process *p = arg;
  drop_signal(p);
  vow_promise_resolve(p->exit, vow_int(p->status));
  if (p->exec) exec_exited(p->exec);
  uv_close(&p->handle.any, handle_closed);
}

static void reaped(vow_process *p, int64_t status, int term_signal) {
  p->running = 0;
  p->status = term_signal ? -(int64_t)term_signal : status;
  vow__loop_enter(p->loop, exited_task, p);
}

static void on_uv_exit(uv_process_t *h, int64_t status, int term_signal) {
  reaped(h->data, status, term_signal);
}

/* The pidfd is readable: the child has exited; reap it. */
static void on_pidfd(uv_poll_t *h, int status, int events) {
  (void)status, (void)events;
  vow_process *p = h->data;
  siginfo_t info = {0};
  if (waitid(P_PIDFD, (id_t)p->pidfd, &info, WEXITED | WNOHANG) < 0) {
    /* ECHILD: someone else reaped it (a waitpid(-1) elsewhere), and took its
     * status; stop watching rather than spin. As under libuv, that exit is
     * never seen; signals to it give UV_ESRCH (the pidfd is exact). */
    if (errno != EINTR) uv_poll_stop(h);
    return;
  }
  if (info.si_pid == 0) return; /* not yet */
  uv_poll_stop(h);
  if (info.si_code == CLD_EXITED) reaped(p, info.si_status, 0);
  else reaped(p, 0, info.si_status);
}

/* Sends signum to the child, which is not yet reaped (so its pid is its own). */
static int signal_child(vow_process *p, int signum) {
  if (p->pidfd < 0) return uv_process_kill(&p->handle.process, signum);
  return pidfd_send_signal(p->pidfd, signum, NULL, 0) == 0 ? 0 : uv_translate_sys_error(errno);
}

static void on_abort(vow_loop *loop, vow_value reason, void *data) {
  (void)loop;
  vow_process *p = data;
  p->listener = 0; /* it ran: the signal drops it */
  if (p->running) signal_child(p, p->kill_signal);
  if (p->exec) exec_abort(p->exec, reason);
}

static int bad_signal(int signum) {
  return signum < 0 || signum > MAX_SIGNAL;
}

/* argv checks shared by spawn and exec: NULL when fine, else what is wrong. */
static const char *argv_problem(const char *const *argv) {
  if (!argv || !argv[0]) return "argv is empty";
  if (!argv[0][0]) return "argv[0] is an empty string";
  return NULL;
}

/* libuv's and posix_spawn's arrays are not const-qualified; they only read them. */
static char **unconst(const char *const *v) {
  char **r;
  memcpy(&r, &v, sizeof r);
  return r;
}

/* ---- uv_spawn: the fallback where the kernel gives no pidfd -------------------------- */

/* On failure returns the code, and p is untouched but for its closed
 * handle's reference. */
static int uv_spawn_child(vow_process *p, spawn_args *a) {
  uv_stdio_container_t stdio[3];
  for (int i = 0; i < 3; i++) {
    if (a->stdio[i].mode == VOW_STDIO_INHERIT) {
      stdio[i].flags = UV_INHERIT_FD;
      stdio[i].data.fd = i;
    } else if (a->stdio[i].mode == VOW_STDIO_IGNORE) {
      stdio[i].flags = UV_IGNORE;
    } else {
      stdio[i].flags = UV_CREATE_PIPE | (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE);
      stdio[i].data.stream = (uv_stream_t *)a->stdio[i].pipe;
    }
  }
  uv_process_options_t uo = {
      .exit_cb = on_uv_exit,
      .file = a->argv[0],
      .args = unconst(a->argv),
      .env = a->env ? unconst(a->env) : NULL,
      .cwd = a->cwd,
      .stdio_count = 3,
      .stdio = stdio,
  };
  p->handle.process.data = p;
  int err = uv_spawn(&p->loop->uv, &p->handle.process, &uo);
  p->refs++; /* the handle's, open either way */
  if (err) {
    uv_close(&p->handle.any, handle_closed);
    return err;
  }
  p->pid = p->handle.process.pid;
  return 0;
}

/* ---- posix_spawn and a pidfd --------------------------------------------------------- */

/* Whether this kernel gives pidfds (Linux 5.3, and not forbidden by a
 * seccomp filter): asked once per process. */
static int pidfd_known; /* 0: not asked; 1: yes; -1: no */

void vow__process_use_uv_spawn(void) {
  __atomic_store_n(&pidfd_known, -1, __ATOMIC_RELAXED);
}

static int pidfd_works(void) {
  int k = __atomic_load_n(&pidfd_known, __ATOMIC_RELAXED);
  if (k == 0) {
    int fd = pidfd_open(getpid(), 0);
    k = fd >= 0 || (errno != ENOSYS && errno != EPERM) ? 1 : -1;
    if (fd >= 0) close(fd);
    __atomic_store_n(&pidfd_known, k, __ATOMIC_RELAXED);
  }
  return k > 0;
}

/* Whether SIGCHLD is ignored (or SA_NOCLDWAIT): the kernel would then reap
 * our children itself and their statuses would be lost. uv_spawn installs
 * its SIGCHLD handler, which undoes that, so such a child goes to libuv. */
static int sigchld_ignored(void) {
  struct sigaction sa;
  if (sigaction(SIGCHLD, NULL, &sa) != 0) return 0;
  if (sa.sa_flags & SA_NOCLDWAIT) return 1;
  return !(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN;
}

/* Moves *fd above 2 when it is 0-2 (ours were closed): the child's dup2s
 * onto 0-2, in order, must not overwrite a pipe end before it is copied. */
static int above_stdio(int *fd) {
  if (*fd > 2) return 0;
  int moved = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
  if (moved < 0) return errno;
  close(*fd);
  *fd = moved;
  return 0;
}

/* The child's ends of its stdio: file actions that dup2 the pipes' child
 * ends (made here, in fds[i][1]; the parent's end in fds[i][0]) onto 0-2,
 * open /dev/null for 'ignore', and for 'inherit' clear close-on-exec of our
 * own fd as libuv does. Returns 0 or a positive errno. */
static int stdio_actions(posix_spawn_file_actions_t *fa, const spawn_args *a, int fds[3][2]) {
  for (int i = 0; i < 3; i++) {
    int err = 0;
    if (a->stdio[i].mode == VOW_STDIO_PIPE) {
      /* a socketpair, as uv_spawn makes (both ends close-on-exec) */
      err = uv_socketpair(SOCK_STREAM, 0, fds[i], 0, 0);
      if (err) return -err;
      err = above_stdio(&fds[i][1]);
      if (!err) err = posix_spawn_file_actions_adddup2(fa, fds[i][1], i);
    } else if (a->stdio[i].mode == VOW_STDIO_IGNORE) {
      err = posix_spawn_file_actions_addopen(fa, i, "/dev/null", i == 0 ? O_RDONLY : O_RDWR, 0);
    } else {
      err = posix_spawn_file_actions_adddup2(fa, i, i);
    }
    if (err) return err;
  }
  if (a->cwd) return posix_spawn_file_actions_addchdir_np(fa, a->cwd);
  return 0;
}

/* The child starts as libuv's would: every signal at its default action
 * and none blocked. */
static int default_signals(posix_spawnattr_t *attr) {
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  int err = posix_spawnattr_setsigdefault(attr, &all);
  if (!err) err = posix_spawnattr_setsigmask(attr, &none);
  if (!err) err = posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  return err;
}

/* posix_spawn of the program at path. A file the kernel will not execute
 * (ENOEXEC: a script with no #! line) runs under /bin/sh, as execvp runs it,
 * and so libuv's uv_spawn and Node: argv becomes {"/bin/sh", path, argv[1],
 * ...}. A positive errno, as posix_spawn returns. */
static int spawn_file(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                      const posix_spawnattr_t *attr, char **argv, char **envp) {
  int err = posix_spawn(pid, path, fa, attr, argv, envp);
  if (err != ENOEXEC) return err;
  static char sh[] = "/bin/sh";
  size_t argc = 0;
  while (argv[argc]) argc++;
  char **sh_argv = vow__malloc((argc + 2) * sizeof *sh_argv);
  if (!sh_argv) return ENOMEM;
  sh_argv[0] = sh;
  sh_argv[1] = unconst(&path)[0];
  for (size_t i = 1; i <= argc; i++) sh_argv[i + 1] = argv[i]; /* and the NULL */
  err = posix_spawn(pid, sh, fa, attr, sh_argv, envp);
  vow__free(sh_argv);
  return err;
}

/* execvp's search, with the PATH of the child's environment when it is
 * given (libuv and Node look the program up there), else ours. A positive
 * errno, as posix_spawn returns. */
static int spawn_search(pid_t *pid, const spawn_args *a, const posix_spawn_file_actions_t *fa,
                        const posix_spawnattr_t *attr) {
  const char *file = a->argv[0];
  char **argv = unconst(a->argv);
  char **envp = a->env ? unconst(a->env) : environ;
  if (strchr(file, '/')) return spawn_file(pid, file, fa, attr, argv, envp);
  const char *path = a->env ? NULL : getenv("PATH");
  for (const char *const *e = a->env; e && *e; e++) {
    if (!strncmp(*e, "PATH=", 5)) path = *e + 5;
  }
  if (!path) path = "/bin:/usr/bin"; /* execvp's, when there is no PATH */
  int denied = 0;
  for (const char *dir = path;; dir++) {
    const char *end = strchr(dir, ':');
    size_t len = end ? (size_t)(end - dir) : strlen(dir);
    char full[PATH_MAX];
    if (len + strlen(file) + 2 <= sizeof full) {
      snprintf(full, sizeof full, "%.*s%s%s", (int)len, dir, len ? "/" : "", file);
      /* A directory without the file costs a lookup, not a clone and exec. */
      int err = access(full, F_OK) != 0 && (errno == ENOENT || errno == ENOTDIR)
                    ? errno
                    : spawn_file(pid, full, fa, attr, argv, envp);
      if (err == 0) return 0;
      if (err == EACCES) denied = 1;
      else if (err != ENOENT && err != ENOTDIR) return err;
    }
    if (!end) return denied ? EACCES : ENOENT;
    dir = end;
  }
}

/* Spawns with posix_spawn and watches the exit through a pidfd. On failure
 * returns the code and p is untouched (no handle was made). */
static int pidfd_spawn_child(vow_process *p, spawn_args *a) {
  int fds[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  int err = posix_spawn_file_actions_init(&fa);
  if (err) return uv_translate_sys_error(err);
  err = posix_spawnattr_init(&attr);
  if (!err) {
    err = stdio_actions(&fa, a, fds);
    if (!err) err = default_signals(&attr);
    pid_t pid = 0;
    if (!err) err = spawn_search(&pid, a, &fa, &attr);
    if (!err) p->pid = pid;
    posix_spawnattr_destroy(&attr);
  }
  posix_spawn_file_actions_destroy(&fa);
  for (int i = 0; i < 3; i++) {
    if (fds[i][1] >= 0) close(fds[i][1]); /* the child has its copies */
  }
  if (!err) {
    p->pidfd = pidfd_open(p->pid, 0);
    if (p->pidfd < 0) err = errno;
  }
  if (!err) err = -uv_poll_init(&p->loop->uv, &p->handle.poll, p->pidfd);
  if (err && p->pid > 0) {
    kill(p->pid, SIGKILL); /* started, but cannot be watched: never leave it behind */
    while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR) {
    }
  }
  if (err) {
    if (p->pidfd >= 0) close(p->pidfd);
    p->pidfd = -1;
    for (int i = 0; i < 3; i++) {
      if (fds[i][0] >= 0) close(fds[i][0]);
    }
    return err > 0 ? uv_translate_sys_error(err) : -err;
  }
  p->handle.poll.data = p;
  p->refs++; /* the handle's */
  uv_poll_start(&p->handle.poll, UV_READABLE, on_pidfd);
  for (int i = 0; i < 3; i++) {
    if (fds[i][0] >= 0 && uv_pipe_open(a->stdio[i].pipe, fds[i][0]) != 0) close(fds[i][0]);
  }
  return 0;
}

/* Spawns the child for p (allocated, refs 1, loop set). On failure returns
 * the code and p is as it was but for a closed handle's reference. */
static int spawn_child(vow_process *p, spawn_args *a) {
  int err = pidfd_works() && !sigchld_ignored() ? pidfd_spawn_child(p, a) : uv_spawn_child(p, a);
  if (err) return err;
  p->running = 1;
  link_process(p);
  return 0;
}

/* A process with its exit promise, or NULL when out of memory. */
static vow_process *process_new(vow_loop *loop, int kill_signal) {
  vow_process *p = vow__calloc(1, sizeof *p);
  if (!p) return NULL;
  p->exit = vow_promise_new(loop);
  if (!p->exit) {
    vow__free(p);
    return NULL;
  }
  p->loop = loop;
  p->refs = 1;
  p->pidfd = -1;
  p->kill_signal = kill_signal ? kill_signal : SIGTERM;
  return p;
}

/* Watches a.signal for p; returns 0 or VOW_ENOMEM (the child is then killed). */
static int watch_signal(vow_process *p, vow_abort_signal *signal) {
  if (!signal) return 0;
  p->signal = vow_abort_signal_ref(signal);
  int64_t id = vow_abort_signal_on(signal, on_abort, p);
  if (id < 0) {
    signal_child(p, SIGKILL);
    return VOW_ENOMEM;
  }
  p->listener = id;
  return 0;
}

/* ---- spawn --------------------------------------------------------------------------- */

/* A pipe for the child's fd, as a stream: initialised here, opened by the spawn. */
static int make_pipe(vow_process *p, int fd, const char *program, child_fd *c) {
  vow__uv_stream *h;
  vow_stream *s = vow__stream_alloc(p->loop, &h);
  if (!s) return VOW_ENOMEM;
  int err = uv_pipe_init(&p->loop->uv, &h->pipe, 0);
  if (err) {
    vow__stream_discard(s);
    return err;
  }
  vow__stream_opened(s);
  static const char *const names[3] = {"stdin", "stdout", "stderr"};
  char name[96];
  snprintf(name, sizeof name, "process '%s' %s", program, names[fd]);
  vow__stream_set_name(s, name);
  p->stdio[fd] = s;
  c->pipe = &h->pipe;
  return 0;
}

int vow_process_spawn(vow_loop *loop, const vow_spawn_options *o, vow_process **out) {
  if (!out) return VOW_EINVAL;
  *out = NULL;
  if (!loop || !o || argv_problem(o->argv) || bad_signal(o->kill_signal)) return VOW_EINVAL;
  vow_spawn_options in_scope;
  VOW__IN_SCOPE(loop, o, in_scope);
  for (int i = 0; i < 3; i++) {
    if (o->stdio[i] < VOW_STDIO_INHERIT || o->stdio[i] > VOW_STDIO_IGNORE) return VOW_EINVAL;
  }
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  if (loop->closing) return VOW_ECLOSING;
  if (o->signal && vow_abort_signal_aborted(o->signal)) return VOW_EABORTED;
  vow_process *p = vow__io_get(loop) ? process_new(loop, o->kill_signal) : NULL;
  if (!p) return VOW_ENOMEM;
  spawn_args a = {.argv = o->argv, .env = o->env, .cwd = o->cwd};
  int err = 0;
  for (int i = 0; i < 3 && !err; i++) {
    a.stdio[i].mode = o->stdio[i];
    if (o->stdio[i] == VOW_STDIO_PIPE) err = make_pipe(p, i, o->argv[0], &a.stdio[i]);
  }
  if (!err) err = spawn_child(p, &a);
  if (!err) err = watch_signal(p, o->signal);
  if (err) {
    vow_process_unref(p); /* the pipes close with it; a started child is killed and reaped */
    return err;
  }
  *out = p;
  return 0;
}

int vow_process_pid(const vow_process *p) {
  return p ? p->pid : 0;
}

vow_stream *vow_process_stdin(vow_process *p) { return p ? p->stdio[0] : NULL; }
vow_stream *vow_process_stdout(vow_process *p) { return p ? p->stdio[1] : NULL; }
vow_stream *vow_process_stderr(vow_process *p) { return p ? p->stdio[2] : NULL; }

vow_promise *vow_process_exit(vow_process *p) {
  return p ? vow_promise_ref(p->exit) : NULL;
}

int vow_process_kill(vow_process *p, int signum) {
  if (!p || bad_signal(signum)) return VOW_EINVAL;
  if (!p->running) return UV_ESRCH; /* also once the loop is gone: p->loop is then stale */
  if (!vow__loop_on_owner(p->loop)) return VOW_ETHREAD;
  return signal_child(p, signum);
}

int vow_process_loop_unref(vow_process *p) {
  if (!p) return VOW_EINVAL;
  if (!uv_is_closing(&p->handle.any)) uv_unref(&p->handle.any);
  return 0;
}

int vow_process_loop_ref(vow_process *p) {
  if (!p) return VOW_EINVAL;
  if (!uv_is_closing(&p->handle.any)) uv_ref(&p->handle.any);
  return 0;
}

/* ---- reading an exit ----------------------------------------------------------------- */

typedef struct exec_result {
  vow_value out, err; /* STRINGs */
  int64_t status;     /* the exit INT */
} exec_result;

static void exec_result_free(void *ptr) {
  exec_result *r = ptr;
  vow_unref(r->out);
  vow_unref(r->err);
  vow__free(r);
}

/* The exec result in v (a result, or a VOW_EEXIT error caused by one), or NULL. */
static const exec_result *as_result(vow_value v) {
  if (v.kind == VOW_ERROR) v = vow_error_cause(v);
  if (v.kind != VOW_POINTER || !v.as.obj) return NULL;
  const vow__pointer *ptr = (const vow__pointer *)v.as.obj;
  return ptr->destroy == exec_result_free ? ptr->ptr : NULL;
}

/* The exit INT in v; *found is 0 when v holds none. */
static int64_t status_of(vow_value v, int *found) {
  const exec_result *r = as_result(v);
  *found = 1;
  if (r) return r->status;
  if (v.kind == VOW_INT) return v.as.i;
  *found = 0;
  return 0;
}

int vow_exit_code(vow_value exit) {
  int found;
  int64_t s = status_of(exit, &found);
  return found && s >= 0 ? (int)s : -1;
}

int vow_exit_signal(vow_value exit) {
  int found;
  int64_t s = status_of(exit, &found);
  return found && s < 0 ? (int)-s : 0;
}

vow_value vow_exec_stdout(vow_value result) {
  const exec_result *r = as_result(result);
  return r ? r->out : vow_undefined();
}

vow_value vow_exec_stderr(vow_value result) {
  const exec_result *r = as_result(result);
  return r ? r->err : vow_undefined();
}

/* ---- exec ---------------------------------------------------------------------------- */

struct exec_job {
  vow_loop *loop;
  vow_process *p;        /* the caller's reference of the process */
  vow_promise *promise;  /* NULL once settled (or after the teardown) */
  uv_pipe_t pipes[2];    /* the child's stdout and stderr */
  vow__buf out[2];
  int reading[2];        /* the pipe has not ended */
  int exited;
  uint32_t refs;         /* one per open pipe, one until settled */
  size_t max_output;
  vow_timer timer;
  uint64_t timeout_ms;
  vow_value failure;     /* the first reason to reject, if any: limit, timeout, abort */
  int own_failure;       /* failure is exec's own (a limit), not a signal's reason */
  char name[];           /* argv[0], for messages */
};

static void job_release(exec_job *job) {
  if (--job->refs > 0) return;
  vow__buf_free(&job->out[0]);
  vow__buf_free(&job->out[1]);
  vow_unref(job->failure);
  vow__free(job);
}

static void pipe_closed(uv_handle_t *h) {
  job_release(h->data);
}

static void close_pipes(exec_job *job) {
  for (int i = 0; i < 2; i++) {
    if (!uv_is_closing((uv_handle_t *)&job->pipes[i]))
      uv_close((uv_handle_t *)&job->pipes[i], pipe_closed);
  }
}

/* Kills the child and remembers why (reason taken), if nothing came first. */
static void exec_fail(exec_job *job, vow_value reason, int own) {
  if (job->failure.kind == VOW_UNDEFINED) job->failure = reason, job->own_failure = own;
  else vow_unref(reason);
  vow_process_kill(job->p, job->p->kill_signal);
}

static vow_value exec_result_value(exec_job *job) {
  exec_result *r = vow__malloc(sizeof *r);
  if (!r) return vow_error_nomem();
  r->out = vow_string_n(job->out[0].data ? job->out[0].data : "", job->out[0].len);
  r->err = vow_string_n(job->out[1].data ? job->out[1].data : "", job->out[1].len);
  r->status = job->p->status;
  vow_value v = vow_pointer(r, exec_result_free); /* which frees r when it fails */
  if (v.kind != VOW_POINTER) return vow_error_nomem();
  if (r->out.kind != VOW_STRING || r->err.kind != VOW_STRING) {
    vow_unref(v);
    return vow_error_nomem();
  }
  return v;
}

/* How the job ends: a value to fulfil with, or (*ok = 0) a reason. */
static vow_value exec_outcome(exec_job *job, int *ok) {
  *ok = 0;
  vow_value result = exec_result_value(job);
  if (job->failure.kind != VOW_UNDEFINED) {
    vow_value f = job->failure;
    job->failure = vow_undefined();
    /* A limit of exec's own carries what was collected, as Node's error
     * does (e.stdout); an abort rejects with the signal's reason as it is. */
    if (!job->own_failure || result.kind != VOW_POINTER) {
      vow_unref(result);
      return f;
    }
    vow_value with = vow_error_with_cause(vow_error_code(f), vow_error_message(f), result);
    vow_unref(f);
    return with;
  }
  if (result.kind == VOW_ERROR) return result;
  int64_t s = job->p->status;
  if (s == 0) {
    *ok = 1;
    return result;
  }
  char what[64];
  if (s > 0) snprintf(what, sizeof what, "exited with code %d", (int)s);
  else snprintf(what, sizeof what, "killed by %s", vow__signal_name((int)-s));
  char msg[512];
  snprintf(msg, sizeof msg, "exec '%s': %s", job->name, what);
  return vow_error_with_cause(VOW_EEXIT, msg, result);
}

static void exec_settle(vow_loop *loop, void *arg) {
  (void)loop;
  exec_job *job = arg;
  if (!job->promise) return;
  vow_clear_timer(job->loop, job->timer);
  int ok;
  vow_value v = exec_outcome(job, &ok);
  vow_promise *promise = job->promise;
  job->promise = NULL;
  if (ok) vow_promise_resolve(promise, v);
  else vow_promise_reject(promise, v);
  vow_promise_unref(promise);
  close_pipes(job);
  job->p->exec = NULL;
  vow_process_unref(job->p);
  job->p = NULL;
  job_release(job); /* the unsettled job's */
}

/* Settles once the child exited and both pipes ended. Called from inside
 * a loop entry (the exit) or not (a pipe's read callback). */
static void maybe_settle(exec_job *job, int entered) {
  if (!job->exited || job->reading[0] || job->reading[1] || !job->promise) return;
  if (entered) exec_settle(job->loop, job);
  else vow__loop_enter(job->loop, exec_settle, job);
}

static void exec_exited(exec_job *job) {
  job->exited = 1;
  maybe_settle(job, 1);
}

static void exec_abort(exec_job *job, vow_value reason) {
  exec_fail(job, vow_ref(reason), 0);
}

static void on_timeout(vow_loop *loop, void *arg) {
  (void)loop;
  exec_job *job = arg;
  job->timer = 0;
  exec_fail(job, vow_errorf(VOW_ETIMEDOUT, "exec '%s': timed out after %llu ms", job->name,
                            (unsigned long long)job->timeout_ms), 1);
}

static int pipe_index(exec_job *job, uv_handle_t *h) {
  return h == (uv_handle_t *)&job->pipes[0] ? 0 : 1;
}

/* Reads straight into the buffer's free tail, offering no more than one
 * byte past the limit: that byte, if it comes, is how the limit is seen. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  exec_job *job = h->data;
  vow__buf *b = &job->out[pipe_index(job, h)];
  size_t want = job->max_output + 1 - b->len;
  if (want > READ_CHUNK) want = READ_CHUNK;
  *buf = uv_buf_init(NULL, 0);
  if (b->cap - b->len < want) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < want) cap *= 2;
    char *d = vow__realloc(b->data, cap);
    if (!d) return; /* libuv reports UV_ENOBUFS to on_read */
    b->data = d;
    b->cap = cap;
  }
  *buf = uv_buf_init(b->data + b->len, (unsigned)want);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  exec_job *job = s->data;
  int i = pipe_index(job, (uv_handle_t *)s);
  if (nread > 0) {
    job->out[i].len += (size_t)nread;
    if (job->out[i].len <= job->max_output) return;
    job->out[i].len = job->max_output;
    exec_fail(job, vow_errorf(VOW_ETOOBIG, "exec '%s': %s is larger than %zu bytes", job->name,
                              i == 0 ? "stdout" : "stderr", job->max_output), 1);
  } else if (nread == UV_ENOBUFS) {
    exec_fail(job, vow_errorf(VOW_ENOMEM, "exec '%s': no memory for its %s", job->name,
                              i == 0 ? "stdout" : "stderr"), 1);
  } else if (nread == 0) {
    return;
  } else if (nread != UV_EOF) {
    exec_fail(job, vow_errorf((int)nread, "%s: exec '%s': reading its %s", vow_err_name((int)nread),
                              job->name, i == 0 ? "stdout" : "stderr"), 1);
  }
  uv_read_stop(s);
  job->reading[i] = 0;
  maybe_settle(job, 0);
}

static vow_promise *rejected_now(vow_promise *p, vow_value reason) {
  vow_promise_reject(p, reason);
  return p;
}

static vow_value spawn_error(int err, const char *name, const char *cwd) {
  if (cwd) return vow_errorf(err, "%s: spawn '%s' (cwd '%s')", vow_err_name(err), name, cwd);
  return vow_errorf(err, "%s: spawn '%s'", vow_err_name(err), name);
}

static exec_job *job_new(vow_loop *loop, const char *name, const vow_exec_options *o) {
  size_t len = strlen(name) + 1;
  exec_job *job = vow__calloc(1, sizeof *job + len);
  if (!job) return NULL;
  memcpy(job->name, name, len);
  job->loop = loop;
  job->refs = 1;
  job->max_output = o->max_output ? o->max_output : DEFAULT_MAX_OUTPUT;
  job->timeout_ms = o->timeout_ms;
  for (int i = 0; i < 2; i++) {
    uv_pipe_init(&loop->uv, &job->pipes[i], 0);
    job->pipes[i].data = job;
    job->refs++;
  }
  return job;
}

vow_promise *vow_exec(vow_loop *loop, const char *const *argv, const vow_exec_options *options) {
  static const vow_exec_options defaults = {0};
  const vow_exec_options *o = options ? options : &defaults;
  vow_exec_options in_scope;
  VOW__IN_SCOPE(loop, o, in_scope);
  vow_promise *promise = vow_promise_new(loop); /* checks the loop and the thread */
  if (!promise) return NULL;
  const char *problem = argv_problem(argv);
  if (problem) return rejected_now(promise, vow_errorf(VOW_EINVAL, "exec: %s", problem));
  if (bad_signal(o->kill_signal))
    return rejected_now(promise, vow_errorf(VOW_EINVAL,
                                            "exec '%s': no signal %d", argv[0], o->kill_signal));
  if (o->signal && vow_abort_signal_aborted(o->signal))
    return rejected_now(promise, vow_ref(vow_abort_signal_reason(o->signal)));
  if (o->timeout_ms > VOW_TIMEOUT_MAX)
    return rejected_now(promise, vow_errorf(VOW_EINVAL,
                                            "exec '%s': timeout above the maximum", argv[0]));
  vow_process *p = vow__io_get(loop) ? process_new(loop, o->kill_signal) : NULL;
  exec_job *job = p ? job_new(loop, argv[0], o) : NULL;
  if (!job) {
    vow_process_unref(p);
    return rejected_now(promise, vow_errorf(VOW_ENOMEM, "exec '%s': out of memory", argv[0]));
  }
  spawn_args a = {.argv = argv, .env = o->env, .cwd = o->cwd};
  a.stdio[0].mode = VOW_STDIO_IGNORE;
  for (int i = 0; i < 2; i++) a.stdio[i + 1] = (child_fd){VOW_STDIO_PIPE, &job->pipes[i]};
  int err = spawn_child(p, &a);
  if (err) {
    close_pipes(job);
    job_release(job);
    vow_process_unref(p);
    return rejected_now(promise, spawn_error(err, argv[0], o->cwd));
  }
  job->p = p;
  p->exec = job;
  job->promise = vow_promise_ref(promise);
  if (watch_signal(p, o->signal) != 0)
    exec_fail(job, vow_errorf(VOW_ENOMEM, "exec '%s': out of memory", argv[0]), 1);
  for (int i = 0; i < 2; i++) {
    job->reading[i] = uv_read_start((uv_stream_t *)&job->pipes[i], on_alloc, on_read) == 0;
  }
  if (o->timeout_ms) {
    job->timer = vow_set_timeout(loop, o->timeout_ms, on_timeout, job);
    if (job->timer < 0) {
      job->timer = 0;
      exec_fail(job, vow_errorf(VOW_ENOMEM, "exec '%s': out of memory", argv[0]), 1);
    }
  }
  return promise;
}

/* ---- loop teardown --------------------------------------------------------------------- */

static void exec_teardown(exec_job *job) {
  vow_promise_unref(job->promise);
  job->promise = NULL;
  close_pipes(job);
  vow_process *p = job->p;
  job->p = NULL;
  job_release(job);
  vow_process_unref(p); /* may be the last reference */
}

/* Kills and reaps every child still running, so none is left a zombie, and
 * closes the handles (whose callbacks, in the loop's last turn, only free).
 * Every process lets go of its exit promise, which belongs to the loop; a
 * process the caller still holds is plain memory from here on. Exec jobs
 * whose child exited but whose pipes are still open (a grandchild can hold
 * them) close too. */
void vow__process_teardown(vow_loop *loop, vow_process *list) {
  (void)loop;
  while (list) {
    vow_process *p = list;
    list = p->next;
    p->prev = p->next = NULL;
    p->listed = 0;
    if (p->running) {
      signal_child(p, SIGKILL);
      siginfo_t info;
      /* uv_poll_init made the pidfd non-blocking, which makes waitid WNOHANG */
      if (p->pidfd >= 0) fcntl(p->pidfd, F_SETFL, fcntl(p->pidfd, F_GETFL) & ~O_NONBLOCK);
      idtype_t by = p->pidfd >= 0 ? P_PIDFD : P_PID;
      id_t id = p->pidfd >= 0 ? (id_t)p->pidfd : (id_t)p->pid;
      while (waitid(by, id, &info, WEXITED) < 0 && errno == EINTR) {
      }
      p->running = 0;
      uv_close(&p->handle.any, handle_closed); /* which closes a pidfd after its poll */
    }
    drop_signal(p);
    vow_promise_unref(p->exit);
    p->exit = NULL;
    exec_job *job = p->exec;
    p->exec = NULL;
    if (job) exec_teardown(job); /* last: it may free p */
  }
}
