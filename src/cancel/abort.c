/*
 * abort.c — AbortController/AbortSignal, AbortSignal.timeout and .any, and
 * vow_timeout, the timeout pattern that cancels what it gives up on.
 *
 * A signal keeps its listeners in an array, in the order they were added.
 * Aborting dispatches to the listeners present when it starts; a listener
 * removed meanwhile is skipped (its slot is emptied, not moved), and after the
 * dispatch every listener is released: a signal aborts only once.
 */
#include <stdlib.h>

#include "core/alloc.h"
#include "promise/promise.h"

typedef struct listener {
  int64_t id;
  vow_abort_fn fn;            /* NULL: removed */
  void *data;
  void (*drop)(void *data);   /* releases data when the listener goes unrun */
} listener;

struct vow_abort_signal {
  uint32_t refs;
  int aborted;
  vow_loop *loop;
  vow_value reason;
  listener *listeners;
  size_t len;
  size_t cap;
  int64_t next_id;
};

vow_abort_signal *vow_abort_signal_new(vow_loop *loop) {
  if (!vow__loop_usable(loop)) return NULL;
  vow_abort_signal *s = vow__calloc(1, sizeof *s);
  if (!s) return NULL;
  s->refs = 1;
  s->loop = loop;
  s->next_id = 1;
  return s;
}

vow_abort_signal *vow_abort_signal_ref(vow_abort_signal *s) {
  if (s) s->refs++;
  return s;
}

static void drop_listeners(vow_abort_signal *s) {
  /* Taken off the signal first: a drop may release the last reference to
   * another signal, or to this one's dependants, but never re-enters here. */
  listener *list = s->listeners;
  size_t len = s->len;
  s->listeners = NULL;
  s->len = s->cap = 0;
  for (size_t i = 0; i < len; i++)
    if (list[i].fn && list[i].drop) list[i].drop(list[i].data);
  vow__free(list);
}

void vow_abort_signal_unref(vow_abort_signal *s) {
  if (!s || --s->refs > 0) return;
  drop_listeners(s);
  vow_unref(s->reason);
  vow__free(s);
}

int vow_abort_signal_aborted(const vow_abort_signal *s) {
  return s && s->aborted;
}

vow_value vow_abort_signal_reason(const vow_abort_signal *s) {
  return s && s->aborted ? s->reason : vow_undefined();
}

static int64_t add_listener(vow_abort_signal *s, vow_abort_fn fn, void *data,
                            void (*drop)(void *)) {
  if (s->len == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 4;
    listener *list = vow__realloc(s->listeners, cap * sizeof *list);
    if (!list) {
      if (drop) drop(data);
      return VOW_ENOMEM;
    }
    s->listeners = list;
    s->cap = cap;
  }
  int64_t id = s->next_id++;
  s->listeners[s->len++] = (listener){id, fn, data, drop};
  return id;
}

int64_t vow_abort_signal_on(vow_abort_signal *s, vow_abort_fn fn, void *data) {
  if (!s || !fn) return VOW_EINVAL;
  if (!vow__loop_on_owner(s->loop)) return VOW_ETHREAD;
  if (s->aborted) return s->next_id++; /* never runs, as in JavaScript */
  return add_listener(s, fn, data, NULL);
}

int vow_abort_signal_off(vow_abort_signal *s, int64_t id) {
  if (!s) return VOW_EINVAL;
  if (!vow__loop_on_owner(s->loop)) return VOW_ETHREAD;
  for (size_t i = 0; i < s->len; i++) {
    if (s->listeners[i].id == id && s->listeners[i].fn) {
      s->listeners[i].fn = NULL;
      if (s->listeners[i].drop) s->listeners[i].drop(s->listeners[i].data);
      return 1;
    }
  }
  return 0;
}

int vow_abort(vow_abort_signal *s, vow_value reason) {
  if (!s || !vow__loop_on_owner(s->loop) || s->aborted) {
    vow_unref(reason);
    return s ? (s->aborted ? 0 : VOW_ETHREAD) : VOW_EINVAL;
  }
  if (reason.kind == VOW_UNDEFINED) reason = vow_error(VOW_EABORTED, "This operation was aborted");
  reason.flags = 0;
  s->aborted = 1;
  s->reason = reason;
  vow_abort_signal_ref(s); /* a listener may drop the caller's last reference */
  size_t n = s->len;       /* listeners added while dispatching do not run */
  for (size_t i = 0; i < n; i++) {
    listener l = s->listeners[i];
    if (!l.fn) continue;
    s->listeners[i].fn = NULL;
    l.fn(s->loop, s->reason, l.data);
    if (l.drop) l.drop(l.data);
  }
  drop_listeners(s);
  vow_abort_signal_unref(s);
  return 1;
}

/* ---- AbortSignal.timeout ------------------------------------------------------ */

static void timeout_fire(vow_loop *loop, void *signal) {
  (void)loop;
  vow_abort(signal, vow_error(VOW_ETIMEDOUT, "The operation was aborted due to timeout"));
  vow_abort_signal_unref(signal);
}

static void timeout_dispose(vow_loop *loop, void *signal) {
  (void)loop;
  vow_abort_signal_unref(signal);
}

vow_abort_signal *vow_abort_signal_timeout(vow_loop *loop, uint64_t ms) {
  vow_abort_signal *s = vow_abort_signal_new(loop);
  if (!s) return NULL;
  if (vow__loop_add_disposer(loop, timeout_fire, timeout_dispose) != 0) {
    vow_abort_signal_unref(s);
    return NULL;
  }
  vow_timer t = vow_set_timeout(loop, ms, timeout_fire, vow_abort_signal_ref(s));
  if (t < 0) {
    vow_abort_signal_unref(s); /* the timer's reference */
    vow_abort(s, vow_error((int)t, vow_strerror((int)t)));
    return s;
  }
  vow_timer_unref(loop, t); /* as in Node: it does not keep the process alive */
  return s;
}

/* ---- AbortSignal.any ------------------------------------------------------------ */

static void follow_abort(vow_loop *loop, vow_value reason, void *composite) {
  (void)loop;
  vow_abort(composite, vow_ref(reason));
}

static void signal_unref_data(void *s) { vow_abort_signal_unref(s); }

vow_abort_signal *vow_abort_signal_any(vow_loop *loop, vow_abort_signal *const *signals, size_t n) {
  vow_abort_signal *any = vow_abort_signal_new(loop);
  if (!any) return NULL;
  for (size_t i = 0; i < n; i++) {
    if (signals[i] && signals[i]->aborted) {
      vow_abort(any, vow_ref(signals[i]->reason));
      return any;
    }
  }
  for (size_t i = 0; i < n; i++) {
    if (!signals[i]) continue;
    if (add_listener(signals[i], follow_abort, vow_abort_signal_ref(any), signal_unref_data) < 0) {
      vow_abort_signal_unref(any);
      return NULL;
    }
  }
  return any;
}

/* ---- a promise to race against ------------------------------------------------------ */

static void reject_on_abort(vow_loop *loop, vow_value reason, void *p) {
  (void)loop;
  vow_promise_reject(p, vow_ref(reason));
}

static void promise_unref_data(void *p) { vow_promise_unref(p); }

vow_promise *vow_abort_signal_promise(vow_abort_signal *s) {
  if (!s) return NULL;
  if (s->aborted) return vow_rejected(s->loop, vow_ref(s->reason));
  vow_promise *p = vow_promise_new(s->loop);
  if (!p) return NULL;
  if (add_listener(s, reject_on_abort, vow_promise_ref(p), promise_unref_data) < 0) {
    vow_promise_unref(p);
    return NULL;
  }
  return p;
}

/* ---- vow_timeout ------------------------------------------------------------------------ */

/* Shared by the timer and the reaction on the work: freed by the later of
 * the two to let go of it. */
typedef struct timeout_race {
  int refs;
  vow_loop *loop;
  vow_promise *result;
  vow_abort_signal *work_signal;
  vow_timer timer;
} timeout_race;

static void race_release(timeout_race *r) {
  if (--r->refs > 0) return;
  vow_promise_unref(r->result);
  vow_abort_signal_unref(r->work_signal);
  vow__pool_free(&r->loop->pool, r, sizeof *r);
}

static void race_release_ctx(void *r) { race_release(r); }

static void race_timer_fire(vow_loop *loop, void *arg) {
  (void)loop;
  timeout_race *r = arg;
  r->timer = 0;
  vow_value err = vow_error(VOW_ETIMEDOUT, "Timeout!");
  vow_promise_reject(r->result, vow_ref(err));
  if (r->work_signal) vow_abort(r->work_signal, vow_ref(err)); /* unlike Promise.race */
  vow_unref(err);
  race_release(r);
}

static void race_timer_dispose(vow_loop *loop, void *arg) {
  (void)loop;
  race_release(arg);
}

static void race_settle(timeout_race *r, vow_value outcome, int rejected) {
  if (r->timer > 0 && vow_clear_timer(r->loop, r->timer) == 1) race_release(r); /* the timer's share */
  r->timer = 0;
  if (rejected) vow_promise_reject(r->result, vow_ref(outcome));
  else vow_promise_resolve(r->result, vow_ref(outcome));
}

static vow_value race_fulfilled(vow_loop *loop, vow_value v, void *r) {
  (void)loop;
  race_settle(r, v, 0);
  return vow_undefined();
}

static vow_value race_rejected(vow_loop *loop, vow_value reason, void *r) {
  (void)loop;
  race_settle(r, reason, 1);
  return vow_undefined();
}

vow_promise *vow_timeout(vow_loop *loop, vow_promise *work, uint64_t ms,
                         vow_abort_signal *work_signal) {
  vow_promise *result = work ? vow_promise_new(loop) : NULL;
  /* One per race on the hot path of every timeout: from the loop's pool. */
  timeout_race *r = result ? vow__pool_alloc(&loop->pool, sizeof *r) : NULL;
  if (!r || vow__loop_add_disposer(loop, race_timer_fire, race_timer_dispose) != 0) {
    if (r) vow__pool_free(&loop->pool, r, sizeof *r);
    vow_promise_unref(result);
    vow_promise_unref(work);
    return NULL;
  }
  *r = (timeout_race){2, loop, vow_promise_ref(result), vow_abort_signal_ref(work_signal), 0};
  r->timer = vow_set_timeout(loop, ms, race_timer_fire, r);
  if (r->timer < 0) {
    vow_promise_reject(result, vow_error((int)r->timer, vow_strerror((int)r->timer)));
    r->timer = 0;
    race_release(r); /* no timer: drop its share */
  }
  if (vow__promise_then(work, race_fulfilled, race_rejected, r, race_release_ctx, NULL) != 0)
    vow_promise_reject(result, vow_error_nomem());
  vow_promise_unref(work);
  return result;
}
