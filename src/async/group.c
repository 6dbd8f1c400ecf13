/*
 * group.c — task groups: asyncio.TaskGroup, Trio's nursery, tokio's JoinSet.
 *
 * A group runs async functions (its children) and ends when every one of
 * them has: no child outlives it. Each child runs inside a root cancel scope
 * whose signal is the group's, so cancelling the group reaches every await
 * of every child (scope.c). The group is cancelled by:
 *   - the first child that fails (its function threw): the siblings' awaits
 *     return VOW_EABORTED, in spawn order, one microtask later;
 *   - its deadline (options.timeout_ms): VOW_ETIMEDOUT;
 *   - options.signal, vow_group_cancel, or the cancel scope the group was
 *     made in (a group is bounded by the scope around it, as a nursery is);
 *   - the release of its last reference before it was awaited.
 * Children beyond options.limit wait in a queue, in spawn order, and start
 * as running ones end; a cancelled group starts no more of them.
 *
 * A child reports its own end, in its frame, once its function returned
 * (and the promise it returned, if any, settled): no reaction is needed, so
 * nothing can fail between a child's end and the group learning of it.
 *
 * Invariants:
 *   - live counts the children spawned and not ended (running or queued);
 *     the group's memory stays until refs and live are both 0;
 *   - done settles once, when the group was awaited (closed) and live is 0;
 *     after that nothing can be spawned into it.
 */
#include <string.h>

#include "core/alloc.h"
#include "async/scope.h"

typedef struct child {
  vow_scope scope;          /* its root scope, on the group's signal */
  vow_group *group;
  vow_async_fn fn;
  void *arg;
  void (*arg_free)(void *arg);
  size_t stack_size;
  const char *name;
  size_t index;             /* in spawn order: its result's place */
  struct child *next;       /* in the queue of children waiting for a slot */
} child;

struct vow_group {
  uint32_t refs;            /* the user's references */
  size_t live;
  vow_loop *loop;
  const char *name;
  vow_abort_signal *signal; /* the children's scopes' signal (a reference) */
  vow_abort_signal *outer;  /* followed: the scope the group was made in */
  int64_t outer_id;
  vow_abort_signal *user;   /* followed: options.signal */
  int64_t user_id;
  vow_timer deadline;
  size_t limit;
  size_t running;
  int aggregate;
  child *queue;             /* waiting for a slot, oldest first */
  child *queue_tail;
  vow_value results;        /* ARRAY, one slot per child in spawn order */
  vow_value errors;         /* ARRAY of the failures, in the order they came */
  vow_promise *done;        /* made by vow_group_wait (a reference), or NULL */
  int closed;               /* awaited: its last child's end settles done */
  int finished;             /* done settled */
};

static void unfollow(vow_abort_signal **from, int64_t *id) {
  if (!*from) return;
  if (*id > 0) vow_abort_signal_off(*from, *id);
  vow_abort_signal_unref(*from);
  *from = NULL;
  *id = 0;
}

/* Stops what could still cancel the group. */
static void detach(vow_group *g) {
  if (g->deadline) vow_clear_timer(g->loop, g->deadline);
  g->deadline = 0;
  unfollow(&g->outer, &g->outer_id);
  unfollow(&g->user, &g->user_id);
}

static void group_free(vow_group *g) {
  detach(g);
  vow_abort_signal_unref(g->signal);
  vow_unref(g->results);
  vow_unref(g->errors);
  vow__promise_unref(g->done);
  vow__free(g);
}

static void maybe_free(vow_group *g) {
  if (g->refs == 0 && g->live == 0) group_free(g);
}

/* ---- the end ------------------------------------------------------------------- */

static vow_value outcome(vow_group *g, int *rejected) {
  *rejected = 1;
  size_t failures = vow_array_len(g->errors);
  if (failures > 0 && g->aggregate) {
    vow_value all = vow_array(failures);
    for (size_t i = 0; i < failures && all.kind == VOW_ARRAY; i++)
      vow_array_push(all, vow_ref(vow_array_get(g->errors, i))); /* within its capacity */
    return vow__aggregate_new(all); /* or the error of making it */
  }
  if (failures > 0) return vow_ref(vow_array_get(g->errors, 0));
  if (vow_abort_signal_aborted(g->signal)) return vow_ref(vow_abort_signal_reason(g->signal));
  *rejected = 0;
  return vow_ref(g->results);
}

static void finish(vow_group *g) {
  g->finished = 1;
  detach(g);
  int rejected;
  vow_value v = outcome(g, &rejected);
  if (rejected) vow_promise_reject(g->done, v);
  else vow_promise_resolve(g->done, v);
}

static void maybe_finish(vow_group *g) {
  if (g->closed && !g->finished && g->live == 0) finish(g);
}

/* ---- cancellation ------------------------------------------------------------------ */

static void child_drop(child *c) {
  if (c->arg_free) c->arg_free(c->arg);
  vow__free(c);
}

/* The group's signal aborted: the queued children never start. */
static void on_group_abort(vow_loop *loop, vow_value reason, void *arg) {
  (void)loop, (void)reason;
  vow_group *g = arg;
  while (g->queue) {
    child *c = g->queue;
    g->queue = c->next;
    child_drop(c);
    g->live--;
  }
  g->queue_tail = NULL;
  /* (Not freed here: with children queued one was running, and still is.) */
  maybe_finish(g);
}

static void follow_abort(vow_loop *loop, vow_value reason, void *g) {
  (void)loop;
  vow_abort(((vow_group *)g)->signal, vow_ref(reason));
}

static int64_t follow(vow_group *g, vow_abort_signal *from) {
  if (vow_abort_signal_aborted(from)) {
    vow_abort(g->signal, vow_ref(vow_abort_signal_reason(from)));
    return 0;
  }
  return vow_abort_signal_on(from, follow_abort, g);
}

static void deadline_fire(vow_loop *loop, void *arg) {
  (void)loop;
  vow_group *g = arg;
  g->deadline = 0;
  vow_abort(g->signal, vow_error(VOW_ETIMEDOUT, "the task group's deadline passed"));
}

int vow_group_cancel(vow_group *g, vow_value reason) {
  if (!g || g->finished) {
    vow_unref(reason);
    return g ? 0 : VOW_EINVAL;
  }
  return vow_abort(g->signal, reason);
}

const char *vow__group_name(const vow_group *g) {
  return g->name;
}

vow_abort_signal *vow_group_signal(vow_group *g) {
  return g ? g->signal : NULL;
}

/* ---- children ---------------------------------------------------------------------- */

static void start(child *c);

/* Whether a child's rejection is the group's own cancellation coming back
 * (asyncio's CancelledError), not a failure of its own. */
static int is_cancellation(vow_group *g, vow_value reason) {
  if (!vow_abort_signal_aborted(g->signal)) return 0;
  vow_value r = vow_abort_signal_reason(g->signal);
  if (reason.kind == r.kind && reason.as.obj == r.as.obj) return 1;
  if (vow_kind_of(reason) != VOW_ERROR) return 0;
  int code = vow_error_code(reason);
  return code == VOW_EABORTED || code == VOW_ETIMEDOUT;
}

static void child_failed(vow_group *g, vow_value reason) {
  if (is_cancellation(g, reason)) {
    vow_unref(reason);
    return;
  }
  /* Out of memory here, the failure is not listed, but the group is still
   * cancelled, and then rejects with the reason of that. */
  vow_array_push(g->errors, vow_ref(reason));
  if (!vow_abort_signal_aborted(g->signal))
    vow_abort(g->signal, vow_error_with_cause(VOW_EABORTED, "the task group was cancelled: a task failed",
                                              reason));
  else vow_unref(reason);
}

/* A child ended with result (taken): thrown, or its value. */
static void child_ended(child *c, vow_value result) {
  vow_group *g = c->group;
  if (result.flags & VOW__THROWN) {
    result.flags = 0;
    child_failed(g, result);
  } else {
    vow__array *a = (vow__array *)g->results.as.obj;
    a->items[c->index] = result;
  }
  g->running--;
  g->live--;
  if (g->queue && !vow_abort_signal_aborted(g->signal) && (!g->limit || g->running < g->limit)) {
    child *next = g->queue;
    g->queue = next->next;
    if (!g->queue) g->queue_tail = NULL;
    start(next);
  }
  maybe_finish(g);
}

/* The child's body: its function inside the group's scope; a promise it
 * returns is awaited there too, so the group learns of its real end. */
static vow_value child_body(vow_loop *loop, void *arg) {
  child *c = arg;
  vow_group *g = c->group;
  vow__scope_enter(&c->scope, vow__frame_current(), g->signal);
  c->scope.group = g;
  vow_value result = c->fn(loop, c->arg);
  if (!(result.flags & VOW__THROWN) && result.kind == VOW_PROMISE) {
    vow_value settled;
    int rc = vow_await(result.as.promise, &settled);
    result = rc == 0 ? settled : vow_throw(settled);
  }
  vow__scope_leave(&c->scope);
  if (c->arg_free) c->arg_free(c->arg);
  child_ended(c, result);
  vow__free(c);
  maybe_free(g);
  return vow_undefined();
}

static void start(child *c) {
  vow_group *g = c->group;
  g->running++;
  vow_async_options o = {.stack_size = c->stack_size, .name = c->name};
  vow_promise *p = vow_async_ex(g->loop, child_body, c, &o);
  /* child_body never throws (the result goes to the group), and may have
   * freed c already: a rejected promise says the body never ran. */
  int ran = p && P_STATE(p) != VOW_REJECTED;
  if (p && !ran) {
    if (P_FLAGS(p) & P_TRACKED) vow__rejection_handled(p);
    P_FLAGS(p) |= P_HANDLED;
  }
  vow__promise_unref(p);
  if (ran) return;
  /* Its coroutine could not be made: it failed without running. */
  child_ended(c, vow_throw(vow_error(VOW_ENOMEM, "cannot allocate a task's coroutine")));
  child_drop(c);
  maybe_free(g);
}

int vow_group_spawn(vow_group *g, vow_async_fn fn, void *arg, const vow_async_options *options) {
  void (*arg_free)(void *) = options ? options->arg_free : NULL;
  int err = !g || !fn ? VOW_EINVAL : !vow__loop_on_owner(g->loop) ? VOW_ETHREAD
          : g->finished ? VOW_EINVAL : vow_abort_signal_aborted(g->signal) ? VOW_EABORTED : 0;
  child *c = err ? NULL : vow__calloc(1, sizeof *c);
  if (!err && (!c || vow_array_push(g->results, vow_undefined()) != 0)) err = VOW_ENOMEM;
  if (err) {
    vow__free(c);
    if (arg_free) arg_free(arg);
    return err;
  }
  *c = (child){.group = g, .fn = fn, .arg = arg, .arg_free = arg_free,
               .stack_size = options ? options->stack_size : 0,
               .name = options && options->name ? options->name : "task",
               .index = vow_array_len(g->results) - 1};
  g->live++;
  if (g->limit && g->running >= g->limit) {
    if (g->queue_tail) g->queue_tail->next = c;
    else g->queue = c;
    g->queue_tail = c;
  } else {
    start(c);
  }
  return 0;
}

/* ---- the group itself ---------------------------------------------------------------- */

vow_group *vow_group_new(vow_loop *loop, const vow_group_options *options) {
  if (!vow__loop_usable(loop)) return NULL;
  uint64_t ms = options ? options->timeout_ms : 0;
  if (ms > VOW_TIMEOUT_MAX) return NULL;
  vow_group *g = vow__calloc(1, sizeof *g);
  if (!g) return NULL;
  g->refs = 1;
  g->loop = loop;
  g->name = options && options->name ? options->name : "group";
  g->limit = options ? options->limit : 0;
  g->aggregate = options && options->aggregate;
  g->signal = vow_abort_signal_new(loop);
  g->results = vow_array(4);
  g->errors = vow_array(0);
  int64_t err = !g->signal || g->results.kind != VOW_ARRAY || g->errors.kind != VOW_ARRAY
                    ? VOW_ENOMEM : vow_abort_signal_on(g->signal, on_group_abort, g);
  vow_abort_signal *scope = vow_scope_signal_current(loop);
  if (err >= 0 && scope) {
    g->outer = vow_abort_signal_ref(scope);
    err = g->outer_id = follow(g, scope);
  }
  if (err >= 0 && options && options->signal) {
    g->user = vow_abort_signal_ref(options->signal);
    err = g->user_id = follow(g, options->signal);
  }
  if (err >= 0 && ms > 0) {
    err = g->deadline = vow_set_timeout(loop, ms, deadline_fire, g);
    if (err < 0) g->deadline = 0;
  }
  if (err < 0) {
    group_free(g);
    return NULL;
  }
  return g;
}

vow_group *vow_group_ref(vow_group *g) {
  if (g) g->refs++;
  return g;
}

void vow_group_unref(vow_group *g) {
  if (!g || --g->refs > 0) return;
  if (g->live > 0 && !g->finished) {
    /* Nobody can await it now: its children are stopped, not orphaned. */
    g->refs++; /* kept while the abort runs its listeners */
    vow_abort(g->signal, vow_error(VOW_EABORTED, "the task group was released before it was awaited"));
    g->refs--;
  }
  maybe_free(g);
}

vow_promise *vow_group_wait(vow_group *g) {
  if (!g || !vow__loop_usable(g->loop)) return NULL;
  if (!g->done) {
    g->done = vow__promise_alloc(g->loop);
    if (!g->done) return NULL;
    g->closed = 1;
    maybe_finish(g);
  }
  return vow__promise_ref(g->done);
}

int vow_group_await(vow_group *g, vow_value *out) {
  vow__frame *f = vow__frame_current();
  if (!f) return vow_await(NULL, out); /* VOW_ENOTASYNC */
  if (!g) {
    if (out) *out = vow_error(VOW_EINVAL, "vow_group_await of no group");
    return VOW_EINVAL;
  }
  /* Not an exit point: a cancelled scope around this await cancels the group
   * (it follows the scope it was made in), and the group still ends only
   * after its children have — the exit of Python's `async with`. */
  vow_scope *scope = f->scope;
  f->scope = NULL;
  int rc = vow_await(vow_group_wait(g), out);
  f->scope = scope;
  return rc;
}
