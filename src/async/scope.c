/*
 * scope.c — cancel scopes: deadlines and signals that reach every await.
 *
 * A scope is Trio's CancelScope (asyncio.timeout's, too): it belongs to the
 * async function that opened it, and while it is open every vow_await of that
 * function is an exit point. A scope has an AbortSignal. It is cancelled when
 * that signal aborts: by its deadline, by the signal of its options, by
 * vow_scope_cancel, or because the scope around it was cancelled (a scope
 * follows its enclosing one, unless it shields). Then:
 *   - an await suspended inside it wakes, one microtask later, with
 *     VOW_ETIMEDOUT (a deadline) or VOW_EABORTED (anything else) and the
 *     signal's reason; the promise it awaited goes on unobserved;
 *   - every later await inside it returns that at once (the scope stays
 *     cancelled: Trio's rule, so cleanup that must await needs a shield);
 *   - the work started inside it that watches the innermost scope stops:
 *     vow_delay (through loop->cancel_hook, core/context.h), fetch, and any
 *     I/O call that asks vow_scope_signal_current for its signal.
 * A shielding scope does not follow the one around it: awaits inside it are
 * reached by its own deadline and signal only (Trio's shield=True).
 *
 * Invariants:
 *   - a frame's scopes form a stack (frame->scope is the innermost, each
 *     scope's parent the next one out); only the innermost may be closed;
 *   - an await suspended inside a scope is represented by a waiter, shared by
 *     the reaction to its promise and the listener on the scope's signal:
 *     whichever fires first claims it (state), the other finds it claimed;
 *     the frame drops its own share once it runs again.
 */
#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "async/scope.h"

/* ---- the scope's signal -------------------------------------------------------- */

int vow__scope_code(vow_value reason) {
  return vow_kind_of(reason) == VOW_ERROR && vow_error_code(reason) == VOW_ETIMEDOUT
             ? VOW_ETIMEDOUT : VOW_EABORTED;
}

/* The enclosing scope was cancelled: so is this one, but not by itself (its
 * end does not report it: the enclosing scope's does, as in Trio). */
static void follow_outer(vow_loop *loop, vow_value reason, void *arg) {
  (void)loop;
  vow_scope *s = arg;
  if (!vow_abort_signal_aborted(s->signal)) s->by_outer = 1;
  vow_abort(s->signal, vow_ref(reason));
}

static void follow_user(vow_loop *loop, vow_value reason, void *s) {
  (void)loop;
  vow_abort(((vow_scope *)s)->signal, vow_ref(reason));
}

/* s's signal aborts when from does (now, if it has): returns the listener id
 * (0 when it aborted s at once), or VOW_ENOMEM. */
static int64_t follow(vow_scope *s, vow_abort_signal *from, vow_abort_fn fn) {
  if (vow_abort_signal_aborted(from)) {
    fn(s->loop, vow_abort_signal_reason(from), s);
    return 0;
  }
  return vow_abort_signal_on(from, fn, s);
}

static void unfollow(vow_abort_signal **from, int64_t *id) {
  if (!*from) return;
  if (*id > 0) vow_abort_signal_off(*from, *id);
  vow_abort_signal_unref(*from);
  *from = NULL;
  *id = 0;
}

static void deadline_fire(vow_loop *loop, void *s) {
  (void)loop;
  vow_scope *scope = s;
  scope->deadline = 0;
  vow_abort(scope->signal, vow_error(VOW_ETIMEDOUT, "the cancel scope's deadline passed"));
}

/* ---- the cancel hook: work started inside a scope watches it ------------------- */

static vow_scope *innermost(vow_loop *loop) {
  vow__frame *f = vow__frame_current();
  return f && f->loop == loop ? f->scope : NULL;
}

static int64_t hook_watch(vow_loop *loop, vow_abort_fn fn, void *data, void **scope) {
  vow_scope *s = innermost(loop);
  if (!s) return 0;
  if (vow_abort_signal_aborted(s->signal)) {
    fn(loop, vow_abort_signal_reason(s->signal), data);
    return 0;
  }
  int64_t id = vow_abort_signal_on(s->signal, fn, data);
  if (id > 0) *scope = vow_abort_signal_ref(s->signal);
  return id;
}

static void hook_unwatch(void *signal, int64_t id) {
  vow_abort_signal_off(signal, id);
  vow_abort_signal_unref(signal);
}

static const vow__cancel_hook scope_hook = {hook_watch, hook_unwatch};

vow_abort_signal *vow_scope_signal_current(vow_loop *loop) {
  vow_scope *s = loop ? innermost(loop) : NULL;
  return s ? s->signal : NULL;
}

/* ---- opening and closing ----------------------------------------------------------- */

static void push(vow_scope *s, vow__frame *f) {
  s->loop = f->loop;
  s->frame = f;
  s->parent = f->scope;
  f->scope = s;
  f->loop->cancel_hook = &scope_hook;
}

void vow__scope_enter(vow_scope *s, vow__frame *f, vow_abort_signal *signal) {
  memset(s, 0, sizeof *s);
  s->signal = vow_abort_signal_ref(signal);
  s->embedded = 1;
  push(s, f);
}

/* Releases what s holds and pops it off its frame. */
static void pop(vow_scope *s) {
  unfollow(&s->outer, &s->outer_id);
  unfollow(&s->user, &s->user_id);
  if (s->deadline) vow_clear_timer(s->loop, s->deadline);
  s->deadline = 0;
  s->frame->scope = s->parent;
  vow_abort_signal_unref(s->signal);
  s->signal = NULL;
  if (!s->embedded) vow__free(s);
}

void vow__scope_leave(vow_scope *s) {
  pop(s);
}

void vow__scope_abandon(vow__frame *f) {
  while (f->scope) pop(f->scope);
}

int vow_scope_begin(vow_loop *loop, const vow_scope_options *options, vow_scope **out) {
  if (!out) return VOW_EINVAL;
  *out = NULL;
  vow__frame *f = vow__frame_current();
  if (!f || f->loop != loop || !vow__loop_on_owner(loop)) return VOW_ENOTASYNC;
  uint64_t ms = options ? options->timeout_ms : 0;
  if (ms > VOW_TIMEOUT_MAX) return VOW_EINVAL;
  vow_scope *s = vow__calloc(1, sizeof *s);
  vow_abort_signal *signal = s ? vow_abort_signal_new(loop) : NULL;
  if (!signal) {
    vow__free(s);
    return VOW_ENOMEM;
  }
  s->signal = signal;
  push(s, f);
  int shield = options && options->shield;
  int64_t err = 0;
  if (!shield && s->parent) {
    s->outer = vow_abort_signal_ref(s->parent->signal);
    err = s->outer_id = follow(s, s->outer, follow_outer);
  }
  if (err >= 0 && options && options->signal) {
    s->user = vow_abort_signal_ref(options->signal);
    err = s->user_id = follow(s, s->user, follow_user);
  }
  if (err >= 0 && ms > 0 && !vow_abort_signal_aborted(signal)) {
    err = s->deadline = vow_set_timeout(loop, ms, deadline_fire, s);
    if (err < 0) s->deadline = 0;
  }
  if (err < 0) {
    pop(s);
    return (int)err;
  }
  *out = s;
  return 0;
}

int vow_shield_begin(vow_loop *loop, vow_scope **out) {
  vow_scope_options o = {.shield = 1};
  return vow_scope_begin(loop, &o, out);
}

int vow_scope_end(vow_scope *s, vow_value *reason) {
  if (reason) *reason = vow_undefined();
  if (!s) return VOW_EINVAL;
  if (vow__frame_current() != s->frame || s->embedded) return VOW_EINVAL;
  /* Scopes opened inside s and left open close with it. */
  while (s->frame->scope != s) pop(s->frame->scope);
  int rc = 0;
  if (vow_abort_signal_aborted(s->signal) && !s->by_outer) {
    vow_value r = vow_abort_signal_reason(s->signal);
    rc = vow__scope_code(r);
    if (reason) *reason = vow_ref(r);
  }
  pop(s);
  return rc;
}

int vow_scope_cancel(vow_scope *s, vow_value reason) {
  if (!s) {
    vow_unref(reason);
    return VOW_EINVAL;
  }
  return vow_abort(s->signal, reason);
}

vow_abort_signal *vow_scope_signal(vow_scope *s) {
  return s ? s->signal : NULL;
}

/* ---- await inside a scope -------------------------------------------------------- */

enum { WAITING, SETTLED, CANCELLED };

typedef struct waiter {
  vow__frame *f;        /* the frame, until it runs again */
  vow_loop *loop;
  int refs;             /* the reaction's share, the frame's, a queued wake's */
  int state;
  vow_value reason;     /* CANCELLED: the scope's reason (a reference) */
} waiter;

static void waiter_unref(void *arg) {
  waiter *w = arg;
  if (--w->refs > 0) return;
  vow_unref(w->reason);
  vow__pool_free(&w->loop->pool, w, sizeof *w);
}

static vow_value waiter_settled(waiter *w, vow_value outcome, int rejected) {
  if (w->state == WAITING && w->f) {
    w->state = SETTLED;
    vow__frame_wake(w->f, vow_ref(outcome), rejected);
  }
  return vow_undefined();
}

static vow_value waiter_ok(vow_loop *loop, vow_value v, void *w) {
  (void)loop;
  return waiter_settled(w, v, 0);
}

static vow_value waiter_err(vow_loop *loop, vow_value v, void *w) {
  (void)loop;
  return waiter_settled(w, v, 1);
}

/* The wake of a cancelled await: one microtask after the scope's signal
 * aborted, as asyncio delivers Task.cancel() at the task's next step. */
static void wake_job(vow_loop *loop, void *arg) {
  (void)loop;
  waiter *w = arg;
  if (w->state == CANCELLED && w->f) vow__frame_wake(w->f, vow_ref(w->reason), 1);
  waiter_unref(w);
}

static void wake_dispose(vow_loop *loop, void *arg) {
  (void)loop;
  waiter_unref(arg);
}

static void waiter_cancel(vow_loop *loop, vow_value reason, void *arg) {
  waiter *w = arg;
  if (w->state != WAITING || !w->f) return;
  if (vow__microtask_push(loop, wake_job, w) != 0) {
    vow__loop_fail(loop, VOW_ENOMEM); /* the await goes on waiting for its promise */
    return;
  }
  w->state = CANCELLED;
  w->reason = vow_ref(reason);
  w->refs++;
}

/* The plain await's treatment of a promise it gives up on: awaited, so its
 * rejection is not reported as unhandled. */
static void give_up(vow_promise *p) {
  if (!p) return;
  if (P_STATE(p) == VOW_REJECTED && (P_FLAGS(p) & P_TRACKED)) vow__rejection_handled(p);
  P_FLAGS(p) |= P_HANDLED;
  vow__promise_unref(p);
}

static int cancelled_now(vow_scope *s, vow_value *out) {
  vow_value reason = vow_abort_signal_reason(s->signal);
  *out = vow_ref(reason);
  return vow__scope_code(reason);
}

static int await_in_scope(vow__frame *f, vow_scope *s, vow_promise *p, vow_value *out) {
  vow_loop *loop = f->loop;
  waiter *w = vow__pool_alloc(&loop->pool, sizeof *w);
  if (!w || vow__loop_add_disposer(loop, wake_job, wake_dispose) != 0) {
    if (w) vow__pool_free(&loop->pool, w, sizeof *w);
    vow__promise_unref(p);
    *out = vow_error_nomem();
    return VOW_ENOMEM;
  }
  *w = (waiter){f, loop, 2, WAITING, vow_undefined()};
  int64_t id = vow_abort_signal_on(s->signal, waiter_cancel, w);
  int err = id < 0;
  if (err) waiter_unref(w); /* the reaction's share: never made */
  else if ((err = vow__promise_then(p, waiter_ok, waiter_err, w, waiter_unref, NULL) != 0))
    vow_abort_signal_off(s->signal, id); /* (the failed then released its share) */
  if (err) {
    waiter_unref(w);
    vow__promise_unref(p);
    *out = vow_error_nomem();
    return VOW_ENOMEM;
  }
  vow_abort_signal *signal = vow_abort_signal_ref(s->signal);
  f->awaiting = p;
  vow__frame_suspend(f); /* resumed by the reaction, the wake, or the teardown */
  vow__promise_unref(f->awaiting);
  f->awaiting = NULL;
  vow_abort_signal_off(signal, id);
  vow_abort_signal_unref(signal);
  int cancelled = w->state == CANCELLED;
  w->f = NULL;
  waiter_unref(w);
  *out = f->outcome;
  f->outcome = vow_undefined();
  if (f->closing) return VOW_ECLOSING;
  if (cancelled) return vow__scope_code(*out);
  return f->rejected ? VOW_EREJECTED : 0;
}

int vow__scope_await(vow__frame *f, vow_promise *p, vow_value *out, int *rc) {
  vow_scope *s = f->scope;
  if (vow_abort_signal_aborted(s->signal)) {
    give_up(p);
    *rc = cancelled_now(s, out);
    return 1;
  }
  if (!p || P_STATE(p) != VOW_PENDING) return 0;
  *rc = await_in_scope(f, s, p, out);
  return 1;
}
