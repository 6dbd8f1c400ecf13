/*
 * asyncgen.c — async generators and for-await (ECMA-262 "AsyncGenerator
 * Objects" and "AsyncFromSyncIterator Objects").
 *
 * A generator is a frame (async.h) plus the spec's request queue. Each
 * next/return/throw call enqueues a request with its own promise; the body
 * answers the request at the head of the queue when it yields or finishes.
 * The functions below are named after the spec's abstract operations.
 *
 * States (the spec's [[AsyncGeneratorState]]):
 *   START     suspendedStart: made, the body has not run (no coroutine yet)
 *   YIELD     suspendedYield: the body waits in vow_yield for a request
 *   EXECUTING the body runs, or waits in vow_await
 *   RETURNING awaiting-return: a return request's value is being awaited
 *   DONE      completed (the coroutine is gone)
 *
 * Invariants:
 *   - while EXECUTING or YIELD-resumed, the queue is not empty: its head is
 *     the request the body is working on;
 *   - the coroutine exists only between the first resume and the body's end;
 *   - the generator holds a reference to itself while its body is running or
 *     awaiting (so a consumer dropping it mid-step cannot free a live stack).
 */
#include <stdlib.h>

#include "core/alloc.h"
#include "async/async.h"

enum { G_START, G_YIELD, G_EXECUTING, G_RETURNING, G_DONE };
enum { REQ_NEXT, REQ_RETURN, REQ_THROW };

typedef struct request {
  struct request *next;
  int kind;
  vow_value value;
  vow_promise *promise;
} request;

struct vow_asyncgen {
  vow__frame f;           /* first: a generator's frame is the generator */
  uint32_t refs;
  int state;
  int return_requested;   /* the body was resumed with a return request */
  int self_ref;           /* holds a reference to itself while running */
  vow_asyncgen_fn fn;
  void *arg;
  void (*arg_free)(void *arg);
  size_t stack_size;
  const char *name;
  request *head;
  request *tail;
  vow_value result;       /* what the body returned */
};

static void drain_queue(vow_asyncgen *g);

/* ---- the request queue -------------------------------------------------------- */

static vow_promise *enqueue(vow_asyncgen *g, int kind, vow_value value) {
  vow_loop *loop = g->f.loop;
  vow_promise *p = vow_promise_new(loop);
  request *r = p ? vow__pool_alloc(&loop->pool, sizeof *r) : NULL;
  if (!r) {
    vow__promise_unref(p);
    vow__unref(value);
    return NULL;
  }
  *r = (request){NULL, kind, value, vow__promise_ref(p)};
  if (g->tail) g->tail->next = r;
  else g->head = r;
  g->tail = r;
  return p;
}

/* AsyncGeneratorCompleteStep: answers the head request. Takes value. */
static void complete_step(vow_asyncgen *g, vow_value value, int rejected, int done) {
  request *r = g->head;
  g->head = r->next;
  if (!g->head) g->tail = NULL;
  if (rejected) vow_promise_reject(r->promise, value);
  else vow_promise_resolve(r->promise, vow__iter_new(done, value));
  vow__promise_unref(r->promise);
  vow__unref(r->value);
  vow__pool_free(&g->f.loop->pool, r, sizeof *r);
}

/* ---- references ------------------------------------------------------------------- */

static void gen_free(vow_asyncgen *g) {
  vow_loop *loop = g->f.loop;
  if (g->f.co) vow__frame_end(&g->f); /* suspended at a yield: its stack is dropped */
  while (g->head) {
    request *r = g->head;
    g->head = r->next;
    vow__promise_unref(r->promise);
    vow__unref(r->value);
    vow__pool_free(&loop->pool, r, sizeof *r);
  }
  vow__unref(g->result);
  if (g->arg_free) g->arg_free(g->arg);
  vow__free(g);
}

vow_asyncgen *vow_asyncgen_ref(vow_asyncgen *g) {
  if (g) g->refs++;
  return g;
}

void vow_asyncgen_unref(vow_asyncgen *g) {
  if (g && --g->refs == 0) gen_free(g);
}

/* At loop teardown the async layer hands over generators still alive with a
 * coroutine. Their consumers' references become invalid with the loop. */
void vow__asyncgen_abandon(vow__frame *f) {
  vow_asyncgen *g = (vow_asyncgen *)f;
  vow__frame_end(f);
  if (g->self_ref) {
    g->self_ref = 0;
    vow_asyncgen_unref(g);
  }
}

/* ---- running the body ----------------------------------------------------------- */

static void gen_body(vow_coro *co, void *arg) {
  (void)co;
  vow_asyncgen *g = arg;
  vow_value r = g->fn(g->f.loop, g, g->arg);
  /* `return value;` awaits value; falling off the end, a return request
   * (already awaited by vow_yield) and vow_return_awaited do not. */
  int done_awaiting = (r.flags & VOW__AWAITED) != 0;
  r.flags &= (uint8_t)~VOW__AWAITED;
  if (!(r.flags & VOW__THROWN) && !done_awaiting && !g->return_requested && r.kind != VOW_UNDEFINED) {
    vow_value awaited;
    int rc = vow_await_value(r, &awaited);
    r = rc == 0 ? awaited : vow_throw(awaited);
  }
  g->result = r;
}

/* The body returned: answer the head request, then the rest of the queue. */
static void body_finished(vow_asyncgen *g) {
  vow_value r = g->result;
  g->result = vow_undefined();
  vow__frame_end(&g->f);
  g->state = G_DONE;
  int thrown = (r.flags & VOW__THROWN) != 0;
  r.flags = 0;
  if (g->head) complete_step(g, r, thrown, 1);
  else vow__unref(r); /* closed by the loop's teardown while nobody asked */
  drain_queue(g);
}

/* Called by async.c after a frame resumed from an await yields or finishes. */
void vow__asyncgen_resumed(vow__frame *f, int finished) {
  vow_asyncgen *g = (vow_asyncgen *)f;
  if (finished) body_finished(g);
  if (g->state != G_EXECUTING && g->self_ref) { /* not running any more */
    g->self_ref = 0;
    vow_asyncgen_unref(g);
  }
}

/* AsyncGeneratorResume: the body continues with the head request. */
static void resume(vow_asyncgen *g) {
  g->state = G_EXECUTING;
  if (!g->self_ref) {
    g->self_ref = 1;
    vow_asyncgen_ref(g);
  }
  if (!g->f.co && vow__frame_start(&g->f, g->f.loop, FRAME_GENERATOR, gen_body, g->stack_size, 0,
                                   g->name) != 0) {
    g->state = G_DONE;
    complete_step(g, vow_error(VOW_ENOMEM, "cannot allocate a coroutine stack"), 1, 1);
    drain_queue(g);
    vow__asyncgen_resumed(&g->f, 0);
    return;
  }
  vow__asyncgen_resumed(&g->f, vow__frame_resume(&g->f));
}

/* ---- return requests: AsyncGeneratorAwaitReturn ---------------------------------- */

static vow_value on_return_fulfilled(vow_loop *loop, vow_value value, void *gen) {
  (void)loop;
  vow_asyncgen *g = gen;
  g->state = G_DONE;
  complete_step(g, vow__ref(value), 0, 1);
  drain_queue(g);
  return vow_undefined();
}

static vow_value on_return_rejected(vow_loop *loop, vow_value reason, void *gen) {
  (void)loop;
  vow_asyncgen *g = gen;
  g->state = G_DONE;
  complete_step(g, vow__ref(reason), 1, 1);
  drain_queue(g);
  return vow_undefined();
}

static void gen_unref_ctx(void *g) { vow_asyncgen_unref(g); }

static void await_return(vow_asyncgen *g) {
  g->state = G_RETURNING;
  vow_promise *p = vow_resolved(g->f.loop, vow__ref(g->head->value));
  if (!p || vow__promise_then(p, on_return_fulfilled, on_return_rejected, vow_asyncgen_ref(g),
                              gen_unref_ctx, NULL) != 0) {
    g->state = G_DONE;
    complete_step(g, vow_error_nomem(), 1, 1);
    drain_queue(g);
  }
  vow__promise_unref(p);
}

/* AsyncGeneratorDrainQueue: the body is over; answer what is queued. */
static void drain_queue(vow_asyncgen *g) {
  while (g->head) {
    if (g->head->kind == REQ_RETURN) {
      await_return(g);
      return;
    }
    if (g->head->kind == REQ_THROW) complete_step(g, vow__ref(g->head->value), 1, 1);
    else complete_step(g, vow_undefined(), 0, 1);
  }
  g->state = G_DONE;
}

/* ---- the public API ---------------------------------------------------------------- */

vow_asyncgen *vow_asyncgen_new_ex(vow_loop *loop, vow_asyncgen_fn fn, void *arg,
                                  const vow_async_options *options) {
  vow_asyncgen *g = fn && vow__loop_usable(loop)
                        ? vow__calloc(1, sizeof *g) : NULL;
  if (!g) { /* the body will never run: arg is released now */
    if (options && options->arg_free) options->arg_free(arg);
    return NULL;
  }
  g->f.loop = loop;
  g->f.kind = FRAME_GENERATOR;
  g->refs = 1;
  g->state = G_START;
  g->fn = fn;
  g->arg = arg;
  g->stack_size = options ? options->stack_size : 0;
  g->arg_free = options ? options->arg_free : NULL;
  g->name = options && options->name ? options->name : "async generator";
  return g;
}

vow_asyncgen *vow_asyncgen_new(vow_loop *loop, vow_asyncgen_fn fn, void *arg) {
  return vow_asyncgen_new_ex(loop, fn, arg, NULL);
}

static int usable(const vow_asyncgen *g) {
  return g && vow__loop_usable(g->f.loop);
}

vow_promise *vow_asyncgen_next(vow_asyncgen *g, vow_value value) {
  if (!usable(g)) {
    vow__unref(value);
    return NULL;
  }
  if (g->state == G_DONE) {
    vow__unref(value);
    return vow_resolved(g->f.loop, vow__iter_new(1, vow_undefined()));
  }
  vow_promise *p = enqueue(g, REQ_NEXT, value);
  if (p && (g->state == G_START || g->state == G_YIELD)) resume(g);
  return p;
}

vow_promise *vow_asyncgen_return(vow_asyncgen *g, vow_value value) {
  if (!usable(g)) {
    vow__unref(value);
    return NULL;
  }
  vow_promise *p = enqueue(g, REQ_RETURN, value);
  if (!p) return NULL;
  if (g->state == G_START || g->state == G_DONE) await_return(g);
  else if (g->state == G_YIELD) resume(g);
  return p;
}

vow_promise *vow_asyncgen_throw(vow_asyncgen *g, vow_value reason) {
  if (!usable(g)) {
    vow__unref(reason);
    return NULL;
  }
  if (g->state == G_START) g->state = G_DONE;
  if (g->state == G_DONE) return vow_rejected(g->f.loop, reason);
  vow_promise *p = enqueue(g, REQ_THROW, reason);
  if (p && g->state == G_YIELD) resume(g);
  return p;
}

/* AsyncGeneratorUnwrapYieldResumption, for the request at the head. */
static int unwrap_resumption(vow_asyncgen *g, vow_value *sent) {
  request *r = g->head;
  switch (r->kind) {
    case REQ_NEXT:
      *sent = vow__ref(r->value);
      return 0;
    case REQ_THROW:
      *sent = vow__ref(r->value);
      return VOW_EREJECTED;
    default: {
      int rc = vow_await_value(vow__ref(r->value), sent);
      if (rc != 0) return rc;
      g->return_requested = 1;
      return VOW_EDONE;
    }
  }
}

int vow_yield(vow_value value, vow_value *sent) {
  vow_value dropped;
  if (!sent) sent = &dropped;
  vow__frame *f = vow__frame_current();
  if (!f || f->kind != FRAME_GENERATOR) {
    vow__unref(value);
    *sent = vow_error(VOW_ENOTASYNC, "yield is only valid in async generator bodies");
    if (sent == &dropped) vow__unref(dropped);
    return VOW_ENOTASYNC;
  }
  vow_asyncgen *g = (vow_asyncgen *)f;
  vow_value awaited;
  int rc = vow_await_value(value, &awaited);
  if (rc == 0) {
    complete_step(g, awaited, 0, 0);
    if (!g->head) { /* nothing asked for yet: wait for a request */
      g->state = G_YIELD;
      vow__frame_suspend(f);
    }
    if (f->closing) { /* resumed by the loop's teardown, not by a request */
      vow__unref(f->outcome);
      f->outcome = vow_undefined();
      rc = VOW_ECLOSING;
      *sent = vow_error(VOW_ECLOSING, "the loop is being freed");
    } else {
      rc = unwrap_resumption(g, sent);
    }
  } else {
    *sent = awaited;
  }
  if (sent == &dropped) vow__unref(dropped);
  return rc;
}

/* ---- for await ------------------------------------------------------------------- */

int vow_for_await_gen(vow_for_await *it, vow_asyncgen *gen) {
  *it = (vow_for_await){0};
  if (!gen) return VOW_EINVAL;
  it->loop = gen->f.loop;
  it->gen = gen;
  return 0;
}

int vow_for_await_array(vow_for_await *it, vow_loop *loop, vow_value *items, size_t n) {
  *it = (vow_for_await){0};
  vow_value *copy = n ? vow__malloc(n * sizeof *copy) : NULL;
  if (!loop || (n && !copy)) {
    for (size_t i = 0; i < n; i++) vow__unref(items[i]);
    vow__free(copy);
    return loop ? VOW_ENOMEM : VOW_EINVAL;
  }
  for (size_t i = 0; i < n; i++) copy[i] = items[i];
  it->loop = loop;
  it->items = copy;
  it->count = n;
  return 0;
}

/* %AsyncFromSyncIteratorPrototype%.next's onFulfilled closure: ctx is
 * non-NULL for the final {value: undefined, done: true}. */
static vow_value make_iter_result(vow_loop *loop, vow_value value, void *done) {
  (void)loop;
  return vow__iter_new(done != NULL, vow__ref(value));
}

/* The promise of the next iterator result, as the spec's next() gives it.
 * Over an array that is AsyncFromSyncIteratorContinuation: the value (or
 * undefined, once exhausted) is wrapped with PromiseResolve and mapped to an
 * iterator result by a then — so even the final "done" costs its ticks. */
static vow_promise *next_result(vow_for_await *it) {
  static int done_marker;
  if (it->gen) return vow_asyncgen_next(it->gen, vow_undefined());
  int done = it->next == it->count;
  vow_promise *wrapper = vow_resolved(it->loop, done ? vow_undefined() : it->items[it->next++]);
  vow_promise *p = vow_then(wrapper, make_iter_result, NULL, done ? &done_marker : NULL);
  vow__promise_unref(wrapper);
  return p;
}

static int stop(vow_for_await *it, int status, vow_value error) {
  it->finished = 1;
  it->status = status;
  vow__unref(it->error);
  it->error = error;
  return status;
}

int vow_for_await_next(vow_for_await *it, vow_value *value) {
  *value = vow_undefined();
  if (!it->loop) return stop(it, VOW_EINVAL, vow_error(VOW_EINVAL, "for-await over nothing"));
  if (it->finished) return it->status < 0 ? it->status : 0;
  vow_value result;
  int rc = vow_await(next_result(it), &result);
  if (rc != 0) return stop(it, rc, result);
  if (result.kind != VOW_ITER) {
    vow__unref(result);
    return stop(it, VOW_ETYPE, vow_error(VOW_ETYPE, "iterator result is not an object"));
  }
  if (vow_iter_done(result)) {
    vow__unref(result);
    return stop(it, 0, vow_undefined());
  }
  *value = vow__ref(vow_iter_value(result));
  vow__unref(result);
  return 1;
}

int vow_for_await_step(vow_for_await *it, vow_value *value) {
  vow__unref(it->held);
  it->held = vow_undefined();
  int rc = vow_for_await_next(it, value);
  if (rc > 0) it->held = *value;
  return rc;
}

int vow_for_await_end(vow_for_await *it, vow_value *error) {
  vow__unref(it->held); /* the value of a pass left with break */
  it->held = vow_undefined();
  if (!it->finished && it->gen) { /* left early: AsyncIteratorClose */
    vow_value ignored;
    vow_await(vow_asyncgen_return(it->gen, vow_undefined()), &ignored);
    vow__unref(ignored);
  }
  for (size_t i = it->next; i < it->count; i++) vow__unref(it->items[i]);
  vow__free(it->items);
  vow_asyncgen_unref(it->gen);
  int status = it->status;
  if (error) *error = it->error;
  else vow__unref(it->error);
  *it = (vow_for_await){0};
  it->status = status;
  it->finished = 1;
  return status;
}
