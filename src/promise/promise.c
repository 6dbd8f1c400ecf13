/*
 * promise.c — ECMAScript promises (ECMA-262, section "Promise Objects").
 *
 * The functions here follow the spec's abstract operations one for one, and
 * are named after them where that helps: resolve_step is the body of a
 * promise resolve function, trigger_reactions is TriggerPromiseReactions,
 * vow__promise_then is PerformPromiseThen, and the two job kinds are
 * PromiseReactionJob and PromiseResolveThenableJob. Matching the spec step by
 * step is what makes vow's tick order equal to V8's.
 *
 * Invariants:
 *   - state is PENDING exactly while u.reactions is the live field;
 *   - a reaction is owned by exactly one place: its promise's list (pending),
 *     the microtask queue (queued), or the graveyard (being released);
 *   - P_TRACKED implies the promise is rejected and referenced from the
 *     promise state's rejected list.
 */
#include <assert.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "core/context.h"
#include "promise/promise.h"

/* The sizes the header documents. */
_Static_assert(sizeof(vow_promise) == 32, "a pending promise is 32 bytes");
_Static_assert(sizeof(vow__reaction) == 48, "a reaction is 48 bytes");
_Static_assert(sizeof(vow__reaction_full) <= 64, "one with a ctx_free, 64");

static void reaction_job(vow_loop *loop, void *arg);
static void thenable_job(vow_loop *loop, void *arg);
static void remote_settle_run(vow_loop *loop, void *arg);
static void remote_settle_dispose(vow_loop *loop, void *arg);

/* ---- per-loop state ---------------------------------------------------------- */

static void reaction_release(vow_loop *loop, vow__reaction *r);

static void bury(vow_loop *loop, vow__promise_state *st) {
  if (st->burying) return; /* the outer call is already emptying the graveyard */
  st->burying = 1;
  while (st->graveyard) {
    vow__reaction *r = st->graveyard;
    st->graveyard = r->next;
    reaction_release(loop, r);
  }
  st->burying = 0;
}

static void dispose_reaction_job(vow_loop *loop, void *arg) {
  reaction_release(loop, arg);
}

typedef struct thenable_job_rec {
  vow_promise *promise;  /* to resolve */
  vow_promise *thenable; /* to follow */
} thenable_job_rec;

static void dispose_thenable_job(vow_loop *loop, void *arg) {
  thenable_job_rec *j = arg;
  vow__promise_unref(j->promise);
  vow__promise_unref(j->thenable);
  vow__pool_free(&loop->pool, j, sizeof *j);
}

/* ---- the adoption registry ------------------------------------------------- */

/* The context of an adoption reaction: the promise that follows (a reference)
 * and its place in the registry, so removal is O(1). */
typedef struct vow__adoption {
  vow_promise *promise;
  vow_loop *loop;
  size_t index;
} adoption;

#define NOT_REGISTERED SIZE_MAX

static void registry_remove(vow__promise_state *st, adoption *a) {
  if (a->index == NOT_REGISTERED) return;
  adoption *last = st->adoptions[--st->adoptions_len];
  st->adoptions[a->index] = last;
  last->index = a->index;
  a->index = NOT_REGISTERED;
}

static adoption *adoption_new(vow_loop *loop, vow_promise *p) {
  vow__promise_state *st = vow__loop_ext(loop, VOW__EXT_PROMISE);
  if (st->adoptions_len == st->adoptions_cap) {
    size_t cap = st->adoptions_cap ? st->adoptions_cap * 2 : 16;
    adoption **list = vow__realloc(st->adoptions, cap * sizeof *list);
    if (!list) return NULL;
    st->adoptions = list;
    st->adoptions_cap = cap;
  }
  adoption *a = vow__pool_alloc(&loop->pool, sizeof *a);
  if (!a) return NULL;
  *a = (adoption){p, loop, st->adoptions_len};
  st->adoptions[st->adoptions_len++] = a;
  return a;
}

/* The adoption reaction ran or was released. */
static void adoption_free(void *ctx) {
  adoption *a = ctx;
  vow_loop *loop = a->loop;
  registry_remove(vow__loop_ext(loop, VOW__EXT_PROMISE), a);
  vow_promise *p = a->promise;
  vow__pool_free(&loop->pool, a, sizeof *a);
  vow__promise_unref(p);
}

/* Teardown: drop every pending adoption's reference; cycles then unwind. */
static void break_adoptions(vow__promise_state *st) {
  while (st->adoptions_len > 0) {
    adoption *a = st->adoptions[st->adoptions_len - 1];
    registry_remove(st, a);
    vow_promise *p = a->promise;
    a->promise = NULL; /* the reaction, when released, frees only the record */
    vow__promise_unref(p);
  }
}

static void state_free(vow_loop *loop, void *state) {
  vow__promise_state *st = state;
  vow__pending_free(loop, st->pending); /* first: its report lists them as they were */
  st->pending = NULL;
  break_adoptions(st);
  for (size_t i = 0; i < st->rejected_len; i++) {
    P_FLAGS(st->rejected[i]) &= (uint8_t)~P_TRACKED;
    vow__promise_unref(st->rejected[i]);
  }
  bury(loop, st);
  vow__free(st->adoptions);
  vow__free(st->rejected);
  vow__free(st);
}

vow__promise_state *vow__promise_state_get(vow_loop *loop) {
  vow__promise_state *st = vow__loop_ext(loop, VOW__EXT_PROMISE);
  if (st) return st;
  st = vow__calloc(1, sizeof *st);
  if (!st) return NULL;
  if (vow__loop_add_disposer(loop, reaction_job, dispose_reaction_job) != 0 ||
      vow__loop_add_disposer(loop, thenable_job, dispose_thenable_job) != 0 ||
      vow__loop_add_disposer(loop, remote_settle_run, remote_settle_dispose) != 0) {
    vow__free(st);
    return NULL;
  }
  vow__loop_set_ext(loop, VOW__EXT_PROMISE, st, state_free, vow__rejection_checkpoint);
  st->pending = vow__pending_new();
  return st;
}

/* ---- allocation and references ------------------------------------------------ */

/* The loop's first promise makes the layer's state: out of line, so that
 * making it (inlined, with the pending table's set-up) does not give every
 * vow__promise_alloc a frame with callee-saved registers to push. */
static __attribute__((cold, noinline)) vow__promise_state *first_state(vow_loop *loop) {
  return vow__promise_state_get(loop);
}

vow_promise *vow__promise_alloc(vow_loop *loop) {
  if (!vow__loop_ext(loop, VOW__EXT_PROMISE) && !first_state(loop)) return NULL;
  vow_promise *p = vow__pool_alloc(&loop->pool, sizeof *p);
  if (!p) return NULL;
  p->h.refs = 1;
  p->h.kind = VOW_PROMISE;
  P_STATE(p) = VOW_PENDING;
  P_FLAGS(p) = 0;
  p->h.bits[2] = 0;
  p->u.reactions = NULL;
  p->loop = loop;
  /* Read again, not kept across the allocation: a register less to save. */
  vow__promise_state *st = vow__loop_ext(loop, VOW__EXT_PROMISE);
  if (__builtin_expect(st->pending != NULL, 0)) vow__pending_add(st->pending, p);
  return p;
}

vow_promise *vow_promise_new(vow_loop *loop) {
  return vow__loop_usable(loop) ? vow__promise_alloc(loop) : NULL;
}

vow_promise *vow_promise_ref(vow_promise *p) {
  return vow__promise_ref(p);
}

void vow_promise_unref(vow_promise *p) {
  vow__promise_unref(p);
}


/* The last reference went. A pending promise can never settle now, so its
 * reactions are released unrun, through the graveyard (see promise.h). A
 * settled one has only its result to drop (whatever that frees buries its
 * own reactions). */
void vow__promise_destroy(vow_promise *p) {
  vow_loop *loop = p->loop;
  if (P_STATE(p) != VOW_PENDING) {
    vow_value result = p->u.result;
    int owns_result = !(P_FLAGS(p) & P_SELF_REASON);
    vow__pool_free(&loop->pool, p, sizeof *p);
    if (owns_result) vow__unref(result);
    return;
  }
  if (__builtin_expect(P_FLAGS(p) & P_LISTED, 0)) vow__pending_remove(p);
  vow__promise_state *st = vow__loop_ext(loop, VOW__EXT_PROMISE);
  vow__promise_state late = {0}; /* the layer is gone (a thread-pool job that
                                    finished during the loop's teardown) */
  if (!st) st = &late;
  vow__reaction *r = p->u.reactions;
  while (r) {
    vow__reaction *next = r->next;
    r->next = st->graveyard;
    st->graveyard = r;
    r = next;
  }
  vow__pool_free(&loop->pool, p, sizeof *p);
  bury(loop, st);
}

/* ---- reactions and jobs ----------------------------------------------------------- */

static vow_promise *reaction_derived(const vow__reaction *r) {
  return (vow_promise *)(r->derived & ~(uintptr_t)REACTION_FLAGS);
}

static void (*reaction_ctx_free(const vow__reaction *r))(void *) {
  return (r->derived & REACTION_FULL) ? ((const vow__reaction_full *)r)->ctx_free : NULL;
}

static vow__context *reaction_context(const vow__reaction *r) {
  return (r->derived & REACTION_FULL) ? ((const vow__reaction_full *)r)->context : NULL;
}

static void reaction_free(vow_loop *loop, vow__reaction *r) {
  if (r->derived & REACTION_FULL) vow__pool_free(&loop->pool, r, sizeof(vow__reaction_full));
  else vow__pool_free(&loop->pool, r, sizeof *r);
}

/* A reaction that will never run (its promise was dropped pending, or the
 * loop is torn down with its job queued). */
static void reaction_release(vow_loop *loop, vow__reaction *r) {
  void (*ctx_free)(void *) = reaction_ctx_free(r);
  if (ctx_free) ctx_free(r->ctx);
  vow__context_release(reaction_context(r));
  vow_promise *d = reaction_derived(r), *source = r->source;
  reaction_free(loop, r);
  vow__promise_unref(d);
  vow__promise_unref(source);
}

static void enqueue(vow_loop *loop, vow_task_fn fn, void *job) {
  if (vow__microtask_push(loop, fn, job) == 0) return;
  /* The queue could not grow: the job cannot run. Release it and stop the run
   * with a clear error rather than lose a settlement silently. */
  vow__loop_dispose_task(loop, fn, job);
  vow__loop_fail(loop, VOW_ENOMEM);
}

/* TriggerPromiseReactions: the list is newest first; jobs go out oldest
 * first. p has settled; each job holds a reference to it for its outcome. */
static void trigger_reactions(vow_promise *p, vow__reaction *list) {
  vow__reaction *oldest_first = NULL;
  while (list) {
    vow__reaction *next = list->next;
    list->next = oldest_first;
    oldest_first = list;
    list = next;
  }
  while (oldest_first) {
    vow__reaction *r = oldest_first;
    oldest_first = r->next;
    r->source = vow__promise_ref(p);
    enqueue(p->loop, reaction_job, r);
  }
}

static void fulfill(vow_promise *p, vow_value value) {
  vow__reaction *reactions = p->u.reactions;
  if (__builtin_expect(P_FLAGS(p) & P_LISTED, 0)) vow__pending_remove(p);
  p->u.result = value;
  P_STATE(p) = VOW_FULFILLED;
  trigger_reactions(p, reactions);
}

static void reject_now(vow_promise *p, vow_value reason) {
  vow__reaction *reactions = p->u.reactions;
  if (__builtin_expect(P_FLAGS(p) & P_LISTED, 0)) vow__pending_remove(p);
  if (reason.kind == VOW_PROMISE && reason.as.promise == p) {
    /* reject(p) with p itself is legal JavaScript. A reason that owned a
     * reference to its own promise would keep it alive forever, so this one
     * reference is not counted (the caller holds another while we are here). */
    P_FLAGS(p) |= P_SELF_REASON;
    p->h.refs--;
  }
  p->u.result = reason;
  P_STATE(p) = VOW_REJECTED;
  if (!(P_FLAGS(p) & P_HANDLED)) vow__rejection_track(p);
  trigger_reactions(p, reactions);
}

/* The body of a promise resolve function, after its alreadyResolved check. */
static void resolve_step(vow_promise *p, vow_value value) {
  value.flags = 0;
  if (value.kind != VOW_PROMISE) {
    fulfill(p, value);
    return;
  }
  vow_promise *thenable = value.as.promise;
  if (thenable == p) {
    vow__unref(value);
    reject_now(p, vow_error(VOW_ETYPE, "Chaining cycle detected for promise #<Promise>"));
    return;
  }
  if (thenable->loop != p->loop) {
    vow__unref(value);
    reject_now(p, vow_error(VOW_EINVAL, "cannot adopt a promise of another loop"));
    return;
  }
  /* NewPromiseResolveThenableJob: subscribing happens one tick later. */
  thenable_job_rec *j = vow__pool_alloc(&p->loop->pool, sizeof *j);
  if (!j) {
    vow__unref(value);
    reject_now(p, vow_error_nomem());
    return;
  }
  j->promise = vow__promise_ref(p);
  j->thenable = thenable; /* the value's reference moves here */
  enqueue(p->loop, thenable_job, j);
}

/* The resolving functions made by a thenable job: fresh ones, so they skip
 * the alreadyResolved flag that p's own functions have set. */
static vow_value adopt_fulfilled(vow_loop *loop, vow_value value, void *a) {
  (void)loop;
  resolve_step(((adoption *)a)->promise, vow__ref(value));
  return vow_undefined();
}

static vow_value adopt_rejected(vow_loop *loop, vow_value reason, void *a) {
  (void)loop;
  reject_now(((adoption *)a)->promise, vow__ref(reason));
  return vow_undefined();
}

static void thenable_job(vow_loop *loop, void *arg) {
  thenable_job_rec *j = arg;
  vow_promise *p = j->promise, *thenable = j->thenable;
  vow__pool_free(&loop->pool, j, sizeof *j);
  /* thenable.then(resolve, reject): p's reference moves into the reaction. */
  adoption *a = adoption_new(loop, p);
  if (!a) {
    reject_now(p, vow_error_nomem());
    vow__promise_unref(p);
  } else if (vow__promise_then(thenable, adopt_fulfilled, adopt_rejected, a, adoption_free, NULL) != 0) {
    vow__loop_fail(loop, VOW_ENOMEM);
  }
  vow__promise_unref(thenable);
}

/* A capability's resolve/reject: the first call wins. Takes value. */
static int capability_settle(vow_promise *p, vow_value value, int rejected) {
  if (P_FLAGS(p) & P_ALREADY_RESOLVED) {
    value.flags = 0;
    vow__unref(value);
    return 0;
  }
  P_FLAGS(p) |= P_ALREADY_RESOLVED;
  if (rejected) {
    value.flags = 0;
    reject_now(p, value);
  } else {
    resolve_step(p, value);
  }
  return 1;
}

/* PromiseReactionJob. The record is returned to the pool before the handler
 * runs, so a handler that attaches a reaction reuses it: a then-chain in its
 * steady state allocates nothing. The outcome is the source promise's result,
 * borrowed while the job holds the source. */
static void reaction_job(vow_loop *loop, void *arg) {
  vow__reaction *r = arg;
  vow_promise *source = r->source;
  vow_value outcome = source->u.result;
  int rejected = P_STATE(source) == VOW_REJECTED;
  int takes = (r->derived & REACTION_TAKES) != 0;
  vow_handler handler = rejected ? r->on_err : r->on_ok;
  vow_promise *derived = reaction_derived(r);
  void *ctx = r->ctx;
  void (*ctx_free)(void *) = NULL;
  vow__context *context = NULL, *outer = NULL;
  if (r->derived & REACTION_FULL) {
    ctx_free = ((vow__reaction_full *)r)->ctx_free;
    context = ((vow__reaction_full *)r)->context;
  }
  reaction_free(loop, r);
  /* The handler runs in the context its then() was called in. */
  if (__builtin_expect(context != NULL, 0)) outer = vow__context_swap(loop, context);

  if (!handler) { /* pass the outcome through */
    if (derived) capability_settle(derived, vow__ref(outcome), rejected);
  } else if (takes) { /* an await's reaction: no derived promise */
    /* The handler gets a reference of its own, and the job keeps nothing:
     * what an awaiting body drops after the await is freed at once. */
    vow_value taken = vow__ref(outcome);
    vow__promise_unref(source);
    source = NULL;
    vow__unref(handler(loop, taken, ctx));
  } else {
    vow_value result = handler(loop, outcome, ctx);
    if (derived) capability_settle(derived, result, (result.flags & VOW__THROWN) != 0);
    else vow__unref(result);
  }
  if (ctx_free) ctx_free(ctx);
  if (__builtin_expect(context != NULL, 0)) vow__context_release(vow__context_swap(loop, outer));
  vow__promise_unref(derived);
  vow__promise_unref(source);
}

/* PerformPromiseThen. takes: the handlers take their argument's reference
 * (internal reactions only; see vow__promise_await). */
static int then_with(vow_promise *p, vow_handler on_ok, vow_handler on_err, void *ctx,
                     void (*ctx_free)(void *), vow_promise *derived, int takes) {
  vow_loop *loop = p->loop;
  /* An await's reaction needs no context: its frame restores its own. */
  vow__context *context = takes ? NULL : loop->context;
  int full = ctx_free || context;
  vow__reaction *r = full ? vow__pool_alloc(&loop->pool, sizeof(vow__reaction_full))
                          : vow__pool_alloc(&loop->pool, sizeof(vow__reaction));
  if (!r) {
    if (ctx_free) ctx_free(ctx);
    vow__promise_unref(derived);
    return VOW_ENOMEM;
  }
  uintptr_t flags = (takes ? REACTION_TAKES : 0) | (full ? REACTION_FULL : 0);
  assert(((uintptr_t)derived & REACTION_FLAGS) == 0);
  *r = (vow__reaction){NULL, (uintptr_t)derived | flags, on_ok, on_err, ctx, NULL};
  if (full) {
    ((vow__reaction_full *)r)->ctx_free = ctx_free;
    ((vow__reaction_full *)r)->context = vow__context_capture(loop);
  }
  switch (P_STATE(p)) {
    case VOW_PENDING:
      r->next = p->u.reactions;
      p->u.reactions = r;
      break;
    case VOW_REJECTED:
      if (!(P_FLAGS(p) & P_HANDLED)) vow__rejection_handled(p);
      /* fall through */
    default:
      r->source = vow__promise_ref(p);
      enqueue(loop, reaction_job, r);
      break;
  }
  P_FLAGS(p) |= P_HANDLED;
  return 0;
}

int vow__promise_then(vow_promise *p, vow_handler on_ok, vow_handler on_err, void *ctx,
                      void (*ctx_free)(void *), vow_promise *derived) {
  return then_with(p, on_ok, on_err, ctx, ctx_free, derived, 0);
}

int vow__promise_await(vow_promise *p, vow_handler on_ok, vow_handler on_err, void *ctx) {
  return then_with(p, on_ok, on_err, ctx, NULL, NULL, 1);
}

int vow__promise_job_is_await(vow_task_fn fn, void *arg, const void *ctx) {
  const vow__reaction *r = arg;
  return fn == reaction_job && (r->derived & REACTION_TAKES) && r->ctx == ctx;
}

/* ---- the public operations ------------------------------------------------------ */

int vow_promise_resolve(vow_promise *p, vow_value value) {
  if (!p || !vow__loop_on_owner(p->loop)) {
    vow__unref(value);
    return p ? VOW_ETHREAD : VOW_EINVAL;
  }
  return capability_settle(p, value, 0);
}

int vow_promise_reject(vow_promise *p, vow_value reason) {
  if (!p || !vow__loop_on_owner(p->loop)) {
    vow__unref(reason);
    return p ? VOW_ETHREAD : VOW_EINVAL;
  }
  return capability_settle(p, reason, 1);
}

vow_promise *vow_resolved(vow_loop *loop, vow_value value) {
  if (!vow__loop_usable(loop)) {
    vow__unref(value);
    return NULL;
  }
  if (value.kind == VOW_PROMISE && value.as.promise->loop == loop) return value.as.promise;
  vow_promise *p = vow__promise_alloc(loop);
  if (!p) {
    vow__unref(value);
    return NULL;
  }
  P_FLAGS(p) |= P_ALREADY_RESOLVED;
  resolve_step(p, value); /* a promise of another loop is rejected there */
  return p;
}

vow_promise *vow_rejected(vow_loop *loop, vow_value reason) {
  vow_promise *p = vow__loop_usable(loop) ? vow__promise_alloc(loop) : NULL;
  if (!p) {
    vow__unref(reason);
    return NULL;
  }
  P_FLAGS(p) |= P_ALREADY_RESOLVED;
  reason.flags = 0;
  reject_now(p, reason);
  return p;
}

vow_promise *vow_then_full(vow_promise *p, vow_handler on_ok, vow_handler on_err, void *ctx,
                           void (*ctx_free)(void *ctx)) {
  vow_promise *derived = p && vow__loop_usable(p->loop) ? vow__promise_alloc(p->loop) : NULL;
  if (!derived) {
    if (ctx_free) ctx_free(ctx);
    return NULL;
  }
  if (vow__promise_then(p, on_ok, on_err, ctx, ctx_free, vow__promise_ref(derived)) != 0) {
    vow__promise_unref(derived);
    return NULL;
  }
  return derived;
}

vow_promise *vow_then(vow_promise *p, vow_handler on_ok, vow_handler on_err, void *ctx) {
  return vow_then_full(p, on_ok, on_err, ctx, NULL);
}

vow_promise *vow_catch(vow_promise *p, vow_handler on_err, void *ctx) {
  return vow_then_full(p, NULL, on_err, ctx, NULL);
}

/* ---- finally: the spec's thenFinally / catchFinally closures ---------------------- */

typedef struct finally_ctx {
  vow_loop *loop;
  vow_finally_fn fn;
  void *ctx;
} finally_ctx;

typedef struct value_box {
  vow_loop *loop;
  vow_value value;
} value_box;

static void finally_ctx_free(void *c) {
  finally_ctx *f = c;
  vow__pool_free(&f->loop->pool, f, sizeof *f);
}

static void value_box_free(void *b) {
  value_box *box = b;
  vow__unref(box->value);
  vow__pool_free(&box->loop->pool, box, sizeof *box);
}

static vow_value return_boxed(vow_loop *loop, vow_value ignored, void *b) {
  (void)loop, (void)ignored;
  return vow__ref(((value_box *)b)->value);
}

static vow_value throw_boxed(vow_loop *loop, vow_value ignored, void *b) {
  (void)loop, (void)ignored;
  return vow_throw(vow__ref(((value_box *)b)->value));
}

/* result = onFinally(); p = PromiseResolve(result); return p.then(() => outcome)
 * (or () => { throw outcome } after a rejection). */
static vow_value finally_step(vow_loop *loop, vow_value outcome, finally_ctx *f, int rejected) {
  vow_value result = f->fn(loop, f->ctx);
  if (result.flags & VOW__THROWN) return result;
  vow_promise *p = vow_resolved(loop, result);
  value_box *box = vow__pool_alloc(&loop->pool, sizeof *box);
  if (!p || !box) {
    vow__promise_unref(p);
    vow__pool_free(&loop->pool, box, sizeof *box);
    return vow_throw(vow_error_nomem());
  }
  *box = (value_box){loop, vow__ref(outcome)};
  vow_promise *q = vow_then_full(p, rejected ? throw_boxed : return_boxed, NULL, box, value_box_free);
  vow__promise_unref(p);
  return q ? vow_promise_value(q) : vow_throw(vow_error_nomem());
}

static vow_value then_finally(vow_loop *loop, vow_value value, void *f) {
  return finally_step(loop, value, f, 0);
}

static vow_value catch_finally(vow_loop *loop, vow_value reason, void *f) {
  return finally_step(loop, reason, f, 1);
}

vow_promise *vow_finally(vow_promise *p, vow_finally_fn fn, void *ctx) {
  if (!fn) return vow_then(p, NULL, NULL, NULL); /* not callable: pass through */
  if (!p || !vow__loop_usable(p->loop)) return NULL;
  finally_ctx *f = vow__pool_alloc(&p->loop->pool, sizeof *f);
  if (!f) return NULL;
  *f = (finally_ctx){p->loop, fn, ctx};
  return vow_then_full(p, then_finally, catch_finally, f, finally_ctx_free);
}

/* ---- resolving from another thread --------------------------------------------------
 * The value and the caller's reference to p travel to p's loop through
 * vow_loop_post, the one bridge between threads. */

typedef struct remote_settle {
  vow_promise *promise;
  vow_value value;
  int reject;
} remote_settle;

static void remote_settle_run(vow_loop *loop, void *arg) {
  (void)loop;
  remote_settle *r = arg;
  if (r->reject) vow_promise_reject(r->promise, r->value);
  else vow_promise_resolve(r->promise, r->value);
  vow__promise_unref(r->promise);
  vow__free(r);
}

static void remote_settle_dispose(vow_loop *loop, void *arg) {
  (void)loop;
  remote_settle *r = arg;
  vow__unref(r->value);
  vow__promise_unref(r->promise);
  vow__free(r);
}

static int settle_threadsafe(vow_promise *p, vow_value value, int reject) {
  if (!p) {
    vow__unref(value);
    return VOW_EINVAL;
  }
  remote_settle *r = vow__malloc(sizeof *r);
  if (!r) {
    vow__unref(value);
    return VOW_ENOMEM; /* p's reference stays with the caller */
  }
  *r = (remote_settle){p, value, reject};
  int err = vow_loop_post(p->loop, remote_settle_run, r);
  if (err) {
    vow__unref(value);
    vow__free(r);
  }
  return err;
}

int vow_promise_resolve_threadsafe(vow_promise *p, vow_value value) {
  return settle_threadsafe(p, value, 0);
}

int vow_promise_reject_threadsafe(vow_promise *p, vow_value reason) {
  return settle_threadsafe(p, reason, 1);
}


/* ---- inspection ---------------------------------------------------------------- */

vow_state vow_promise_state(const vow_promise *p) {
  return p ? (vow_state)P_STATE(p) : VOW_PENDING;
}

vow_value vow_promise_result(const vow_promise *p) {
  return p && P_STATE(p) != VOW_PENDING ? p->u.result : vow_undefined();
}

vow_loop *vow_promise_loop(const vow_promise *p) {
  return p ? p->loop : NULL;
}
