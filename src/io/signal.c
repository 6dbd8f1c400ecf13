/*
 * signal.c — signals as promises, AbortSignals and listeners: Ctrl-C
 * (SIGINT) and SIGTERM reach the loop as macrotasks.
 *
 * Each watch is one uv_signal_t (libuv lets any number watch one signal, and
 * restores the default action when the last one stops). A watch is one of:
 *
 *   PROMISE   fulfils its promise with the signal number, then ends;
 *   ABORT     aborts its AbortSignal, then ends; it also listens to that
 *             signal, so that an abort from elsewhere ends it too (several
 *             watches share one AbortSignal, one per signal number);
 *   LISTENER  calls its function on every delivery, until vow_signal_off.
 *
 * Invariants:
 *   - every handle is unreferenced: no watch keeps vow_loop_run going;
 *   - a watch is on the loop's list (vow__signal_state) from its start until
 *     it ends; ending closes its handle, and the memory goes in the close
 *     callback, so a watch that ends inside its own callback is still valid
 *     until that callback has returned;
 *   - deliveries enter through vow__loop_enter; the teardown runs no user code.
 */
#include <signal.h>
#include <stdio.h>

#include "core/alloc.h"
#include "io/io.h"

enum { WATCH_PROMISE, WATCH_ABORT, WATCH_LISTENER };

typedef struct watch {
  uv_signal_t handle;
  vow_loop *loop;
  int kind;
  int signum;
  int64_t id;
  vow_promise *promise;     /* WATCH_PROMISE */
  vow_abort_signal *abort;  /* WATCH_ABORT */
  int64_t abort_listener;
  vow_signal_fn fn;         /* WATCH_LISTENER */
  void *data;
  struct watch *prev, *next;
} watch;

typedef struct vow__signal_state {
  watch *watches;
  int64_t next_id;
} vow__signal_state;

/* ---- names --------------------------------------------------------------------- */

const char *vow__signal_name(int signum) {
  static const struct {
    int num;
    const char *name;
  } names[] = {
      {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},
      {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},
      {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
      {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"}, {SIGCHLD, "SIGCHLD"},
      {SIGCONT, "SIGCONT"}, {SIGSTOP, "SIGSTOP"}, {SIGTSTP, "SIGTSTP"}, {SIGTTIN, "SIGTTIN"},
      {SIGTTOU, "SIGTTOU"}, {SIGURG, "SIGURG"},   {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"},
      {SIGVTALRM, "SIGVTALRM"}, {SIGPROF, "SIGPROF"}, {SIGWINCH, "SIGWINCH"}, {SIGSYS, "SIGSYS"},
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (names[i].num == signum) return names[i].name;
  }
  static _Thread_local char buf[24];
  snprintf(buf, sizeof buf, "signal %d", signum);
  return buf;
}

/* ---- watches ------------------------------------------------------------------- */

static vow__signal_state *state_get(vow_loop *loop) {
  vow__io *io = vow__io_get(loop);
  if (!io) return NULL;
  if (!io->signals) {
    io->signals = vow__calloc(1, sizeof *io->signals);
    if (io->signals) io->signals->next_id = 1;
  }
  return io->signals;
}

static void watch_closed(uv_handle_t *h) {
  vow__free(h->data);
}

/* Ends a watch: off the list, its handle closing, what it holds released. */
static void watch_end(watch *w) {
  vow__signal_state *st = ((vow__io *)vow__loop_ext(w->loop, VOW__EXT_IO))->signals;
  if (w->prev) w->prev->next = w->next;
  else st->watches = w->next;
  if (w->next) w->next->prev = w->prev;
  w->prev = w->next = NULL;
  if (w->abort_listener > 0) vow_abort_signal_off(w->abort, w->abort_listener);
  w->abort_listener = 0;
  vow_abort_signal_unref(w->abort);
  vow_promise_unref(w->promise);
  w->abort = NULL;
  w->promise = NULL;
  uv_close((uv_handle_t *)&w->handle, watch_closed);
}

static void deliver(vow_loop *loop, void *arg) {
  watch *w = arg;
  switch (w->kind) {
    case WATCH_PROMISE:
      vow_promise_resolve(w->promise, vow_int(w->signum));
      watch_end(w);
      break;
    case WATCH_ABORT: {
      /* its listener ends w */
      vow_abort(w->abort, vow_errorf(VOW_EABORTED, "interrupted by %s", vow__signal_name(w->signum)));
      break;
    }
    default:
      w->fn(loop, w->signum, w->data);
      break;
  }
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)signum;
  watch *w = h->data;
  vow__loop_enter_named(w->loop, "signal", deliver, w);
}

/* A watch of signum, started and on the list; NULL with *err set on failure. */
static watch *watch_start(vow_loop *loop, int kind, int signum, int *err) {
  vow__signal_state *st = state_get(loop);
  watch *w = st ? vow__calloc(1, sizeof *w) : NULL;
  if (!w) {
    *err = VOW_ENOMEM;
    return NULL;
  }
  w->loop = loop;
  w->kind = kind;
  w->signum = signum;
  w->handle.data = w;
  uv_signal_init(&loop->uv, &w->handle);
  *err = uv_signal_start(&w->handle, on_signal, signum);
  if (*err) {
    if (*err == UV_EINVAL) *err = VOW_EINVAL;
    uv_close((uv_handle_t *)&w->handle, watch_closed);
    return NULL;
  }
  uv_unref((uv_handle_t *)&w->handle);
  w->id = st->next_id++;
  w->next = st->watches;
  if (w->next) w->next->prev = w;
  st->watches = w;
  return w;
}

static int bad_signum(int signum) {
  return signum <= 0 || signum > 64 || signum == SIGKILL || signum == SIGSTOP;
}

vow_promise *vow_signal_promise(vow_loop *loop, int signum) {
  vow_promise *p = vow_promise_new(loop); /* checks the loop and the thread */
  if (!p) return NULL;
  if (bad_signum(signum)) {
    vow_promise_reject(p, vow_errorf(VOW_EINVAL, "signal: %s cannot be watched",
                                     vow__signal_name(signum)));
    return p;
  }
  int err;
  watch *w = watch_start(loop, WATCH_PROMISE, signum, &err);
  if (!w) {
    vow_promise_reject(p, vow_errorf(err, "%s: signal: watching %s", vow_err_name(err),
                                     vow__signal_name(signum)));
    return p;
  }
  w->promise = vow_promise_ref(p);
  return p;
}

static void aborted(vow_loop *loop, vow_value reason, void *data) {
  (void)loop, (void)reason;
  watch *w = data;
  w->abort_listener = 0; /* it ran: the signal drops it */
  watch_end(w);
}

vow_abort_signal *vow_signal_abort(vow_loop *loop, const int *signums, size_t n) {
  if (!vow__loop_usable(loop) || !signums || n == 0) return NULL;
  for (size_t i = 0; i < n; i++) {
    if (bad_signum(signums[i])) return NULL;
  }
  vow_abort_signal *s = vow_abort_signal_new(loop);
  if (!s) return NULL;
  for (size_t i = 0; i < n; i++) {
    int err;
    watch *w = watch_start(loop, WATCH_ABORT, signums[i], &err);
    int64_t id = w ? vow_abort_signal_on(s, aborted, w) : -1;
    if (id < 0) {
      if (w) watch_end(w);
      /* Ends the watches already made (their listeners), then the signal. */
      vow_abort(s, vow_error_nomem());
      vow_abort_signal_unref(s);
      return NULL;
    }
    w->abort = vow_abort_signal_ref(s);
    w->abort_listener = id;
  }
  return s;
}

int64_t vow_signal_on(vow_loop *loop, int signum, vow_signal_fn fn, void *data) {
  if (!loop || !fn || bad_signum(signum)) return VOW_EINVAL;
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  if (loop->closing) return VOW_ECLOSING;
  int err;
  watch *w = watch_start(loop, WATCH_LISTENER, signum, &err);
  if (!w) return err;
  w->fn = fn;
  w->data = data;
  return w->id;
}

int vow_signal_off(vow_loop *loop, int64_t id) {
  if (!loop || !vow__loop_on_owner(loop)) return 0;
  vow__io *io = vow__loop_ext(loop, VOW__EXT_IO);
  for (watch *w = io && io->signals ? io->signals->watches : NULL; w; w = w->next) {
    if (w->id == id && w->kind == WATCH_LISTENER) {
      watch_end(w);
      return 1;
    }
  }
  return 0;
}

/* ---- loop teardown ----------------------------------------------------------------- */

void vow__signal_teardown(vow_loop *loop, vow__signal_state *st) {
  (void)loop;
  while (st->watches) watch_end(st->watches);
  vow__free(st);
}
