/*
 * async.c — async functions and await, on stackful coroutines.
 *
 * This is where coroutines (coro.c) meet promises (promise.c). An async
 * function's frame runs its body on a coroutine; vow_await attaches a reaction
 * to a pending promise whose handlers resume the coroutine, then yields back
 * to whoever resumed it (vow_async's caller the first time, the microtask
 * queue afterwards). That is V8's await: PerformPromiseThen on the promise,
 * one tick once it has settled. An outcome known at once (a settled promise,
 * a plain value) needs no reaction: the resumption itself is queued, or, when
 * nothing could run before it, the body simply carries on (may_carry_on).
 *
 * Invariants:
 *   - a frame is in its loop's frame list from start to end;
 *   - `awaiting` is non-NULL exactly while the frame is suspended on a pending
 *     promise; suspended on a known outcome, the frame holds it in `outcome`
 *     and its resumption job is queued;
 *   - a frame's result is settled only after its coroutine finished, by the
 *     code that resumed it last, so the coroutine's stack is free by then.
 */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/list.h"
#include "async/async.h"

typedef struct async_frame {
  vow__frame f;        /* first: a vow__frame * is an async_frame * */
  vow_async_fn fn;
  void *arg;
  void (*arg_free)(void *arg);
  vow_promise *promise;
  vow_value result;
} async_frame;

/* ---- per-loop state ---------------------------------------------------------- */

static void async_frame_abandon(async_frame *a);

/* The loop is being freed. Every suspended async function and generator is
 * resumed one last time: its vow_await (or vow_yield) returns VOW_ECLOSING,
 * and so does every later one at once, so the body runs to its end and
 * releases what it holds — the way Python closes a suspended generator. */
static void async_state_free(vow_loop *loop, void *state) {
  vow__async_state *st = state;
  vow__dump_on_stop(loop, st->dump_on);
  while (st->frames) {
    vow__frame *f = st->frames;
    if (!f->closing) {
      vow__frame_close(f); /* ends it, which unlinks it */
      continue;
    }
    /* Resumed already and still here: it is running (teardown from inside
     * a body). Drop it rather than loop. */
    if (f->kind == FRAME_ASYNC) async_frame_abandon((async_frame *)f);
    else vow__asyncgen_abandon(f);
  }
  vow__stack_pool_free(st->stacks);
  vow__free(st);
}

static void async_state_closing(vow_loop *loop, void *state) {
  vow__dump_at_exit(loop, ((vow__async_state *)state)->dump_on);
}

static vow__async_state *async_state_get(vow_loop *loop) {
  vow__async_state *st = vow__loop_ext(loop, VOW__EXT_ASYNC);
  if (st) return st;
  st = vow__calloc(1, sizeof *st);
  if (!st) return NULL;
  st->stacks = vow__stack_pool_new(loop->options.stack_size, 64, VOW_CORO_BACKEND_DEFAULT);
  if (!st->stacks) {
    vow__free(st);
    return NULL;
  }
  vow__stack_pool_set_allocator(st->stacks, vow__realloc, vow__free);
  vow__loop_set_ext(loop, VOW__EXT_ASYNC, st, async_state_free, NULL);
  st->dump_on = vow__dump_on_start(loop);
  if (st->dump_on) vow__loop_set_closing(loop, VOW__EXT_ASYNC, async_state_closing);
  return st;
}

/* ---- frames ---------------------------------------------------------------------- */

int vow__frame_start(vow__frame *f, vow_loop *loop, int kind, vow_coro_fn body, size_t stack_size,
                     int copy_stack, const char *name) {
  vow__async_state *st = async_state_get(loop);
  if (!st) return VOW_ENOMEM;
  f->kind = kind;
  f->loop = loop;
  f->name = name;
  f->co = copy_stack ? vow__coro_new_copy(st->stacks, body, f, name)
                     : vow__coro_new(st->stacks, stack_size, body, f, name);
  if (!f->co) return VOW_ENOMEM;
  f->copy_stack = vow__coro_is_copy(f->co);
  if (loop->trace) f->span = vow__trace_span_begin(loop, "async", name);
  /* Its context, inherited from whoever starts it: frames carry contexts
   * once a binding was ever made on the loop, and cost nothing before. */
  if (__builtin_expect(loop->context_used, 0)) f->context = vow__context_capture(loop);
  /* For vow_loop_dump: libuv's cached time read in place (uv_now is a call). */
  f->started = loop->options.virtual_clock ? loop->virtual_now : loop->uv.time;
  f->capture = NULL;
  vow__coro_set_data(f->co, f);
  VOW__LIST_PUSH(st->frames, f);
  return 0;
}

/* Cold: what only frames inside cancel scopes or async contexts hold. */
static __attribute__((cold, noinline)) void frame_end_extras(vow__frame *f) {
  if (f->scope) vow__scope_abandon(f);
  vow__context_release(f->context);
  f->context = NULL;
}

void vow__frame_end(vow__frame *f) {
  vow__async_state *st = vow__loop_ext(f->loop, VOW__EXT_ASYNC);
  if (__builtin_expect(((uintptr_t)f->scope | (uintptr_t)f->context) != 0, 0)) frame_end_extras(f);
  VOW__LIST_UNLINK(st->frames, f);
  if (f->span && f->loop->trace) vow__trace_span_end(f->loop, f->span);
  f->span = 0;
  vow__coro_free(f->co);
  f->co = NULL;
  vow__promise_unref(f->awaiting);
  f->awaiting = NULL;
  vow__unref(f->outcome);
  f->outcome = vow_undefined();
}

vow__frame *vow__frame_current(void) {
  vow_coro *co = vow__coro_current();
  return co ? vow__coro_get_data(co) : NULL;
}

/* One call site of vow__coro_resume, not one per branch: two copies made
 * vow__frame_resume too big to inline into its callers. */
static void coro_run(vow__frame *f) {
  int tracing = f->loop->trace != NULL;
  uint64_t start = tracing ? vow__trace_clock() : 0;
  vow__coro_resume(f->co);
  if (tracing) vow__trace_complete(f->loop, "coroutine", f->name, start);
}

/* Once the loop has contexts: the body runs in its own, and takes it along
 * when it suspends (with whatever it bound meanwhile): moves, no counting. */
static __attribute__((noinline)) void coro_run_in_context(vow__frame *f) {
  vow__context *outer = vow__context_swap(f->loop, f->context);
  coro_run(f);
  f->context = vow__context_swap(f->loop, outer);
}

/* The body made the loop's first binding: the context it ran in was NULL
 * (nothing had been bound), and what it bound is its own. */
static __attribute__((cold, noinline)) void first_binding_made(vow__frame *f) {
  f->context = vow__context_swap(f->loop, NULL);
}

int vow__frame_resume(vow__frame *f) {
  if (__builtin_expect(f->loop->context_used, 0)) {
    coro_run_in_context(f);
  } else {
    coro_run(f);
    if (__builtin_expect(f->loop->context_used, 0)) first_binding_made(f);
  }
  return vow__coro_done(f->co);
}

/* ---- await ------------------------------------------------------------------------- */

static void resume_with(vow__frame *f, vow_value outcome, int rejected);

/* The jobs that resume an awaiting frame. in_job tells vow_await that the
 * frame runs directly under the microtask queue's drain (see below). */
static void resume_from_job(vow__frame *f, vow_value outcome, int rejected) {
  if (f->taking) { /* f runs this job itself (run_ahead): it is running already */
    f->taking = 0;
    f->outcome = outcome;
    f->rejected = rejected;
    return;
  }
  f->in_job = 1;
  resume_with(f, outcome, rejected);
}

void vow__frame_wake(vow__frame *f, vow_value outcome, int rejected) {
  resume_from_job(f, outcome, rejected);
}

static vow_value on_awaited_fulfilled(vow_loop *loop, vow_value value, void *f) {
  (void)loop;
  resume_from_job(f, value, 0); /* taken: see vow__promise_await */
  return vow_undefined();
}

static vow_value on_awaited_rejected(vow_loop *loop, vow_value reason, void *f) {
  (void)loop;
  resume_from_job(f, reason, 1);
  return vow_undefined();
}

/* The await of an outcome known at once (a settled promise, a plain value):
 * the outcome waits in the frame (see await_known). */
static void awaited_settled_job(vow_loop *loop, void *arg) {
  (void)loop;
  vow__frame *f = arg;
  vow_value outcome = f->outcome;
  f->outcome = vow_undefined();
  resume_from_job(f, outcome, f->rejected);
}

static void async_finish(async_frame *a);

static void resume_with(vow__frame *f, vow_value outcome, int rejected) {
  f->outcome = outcome;
  f->rejected = rejected;
  int finished = vow__frame_resume(f);
  f->in_job = 0;
  if (f->kind == FRAME_ASYNC) {
    if (finished) async_finish((async_frame *)f);
  } else {
    vow__asyncgen_resumed(f, finished);
  }
}

static int closing_error(vow_value *out) {
  *out = vow_error(VOW_ECLOSING, "the loop is being freed");
  return VOW_ECLOSING;
}

/* Takes a settled p's outcome (a new reference): from now on its rejection,
 * if it is one, is handled, as a reaction attached to it would make it. */
static int take_settled(vow_promise *p, vow_value *out) {
  int rejected = P_STATE(p) == VOW_REJECTED;
  if (rejected && (P_FLAGS(p) & P_TRACKED)) vow__rejection_handled(p);
  P_FLAGS(p) |= P_HANDLED;
  *out = vow__ref(p->u.result);
  return rejected;
}

/* Whether f may carry on past an await whose outcome is known now (a plain
 * value or a settled promise) without suspending. It may when it runs right
 * under the microtask drain (a job resumed it) and nothing else is queued:
 * suspending would queue f's resumption and switch back to the drain, which
 * would take that very job next and switch here again. Nothing can run in
 * between, so carrying on is the same program, minus two context switches.
 * (When tracing, every await suspends, so that the trace shows it.) */
static int may_carry_on(const vow__frame *f) {
  return f->in_job && vow__microtask_empty(f->loop) && !f->loop->trace;
}

/* The outcome handed back by a resumption: *out takes it. */
static int resumed(vow__frame *f, vow_value *out) {
  *out = f->outcome;
  f->outcome = vow_undefined();
  return f->closing ? VOW_ECLOSING : f->rejected ? VOW_EREJECTED : 0;
}

/* Room for a copy-stack frame's frames before it suspends or calls. */
static inline int reserve(vow__frame *f) {
  return f->copy_stack ? vow__coro_reserve(f->co) : 0;
}

/* await of an outcome known now (taken). Where f may not carry on, the job
 * that resumes it is queued where V8 queues the reaction job of a settled
 * promise: at once (the same tick, and no reaction record). */
static int await_known(vow__frame *f, vow_value outcome, int rejected, vow_value *out) {
  if (may_carry_on(f)) {
    *out = outcome;
    return rejected ? VOW_EREJECTED : 0;
  }
  /* A copy-stack frame's room for its frames first (vow__coro_reserve). */
  if (reserve(f) != 0 || vow__microtask_push(f->loop, awaited_settled_job, f) != 0) {
    vow__unref(outcome);
    *out = vow_error_nomem();
    return VOW_ENOMEM;
  }
  f->outcome = outcome;
  f->rejected = rejected;
  vow__frame_suspend(f); /* resumed by awaited_settled_job, or the teardown */
  return resumed(f, out);
}

/* f has attached its reaction to the pending promise it awaits and would now
 * yield to the microtask drain, which would run the jobs at the head of the
 * queue. Where those are resumptions of other frames with known outcomes
 * (awaited_settled_job: no user code outside those frames' own coroutines),
 * f runs them itself, one by one from the head, as the drain would; and if
 * that settled its promise and put f's own reaction job at the head, f takes
 * that too: it is what the drain would run next, resuming f. Any other job
 * at the head (a then handler, say) stops it: user code must not run inside
 * f's coroutine, where an await would be f's.
 * The jobs run in the same order as without this; f saves the switches to
 * the drain and back (an async call that awaits once: 6 switches -> 4).
 * Only when f runs right under the drain (in_job), does not copy its stack,
 * and nothing is traced. Returns 1
 * when f was resumed this way (its outcome is in f), 0 if it must yield. */
/* Out of line: vow_await stays small enough to inline into the callers. */
static int run_ahead(vow__frame *f) __attribute__((noinline));
static int run_ahead(vow__frame *f) {
  vow_loop *loop = f->loop;
  vow__microtask_queue *q = &loop->micro;
  while (q->head != q->tail) {
    vow__task t = q->ring[q->head & (q->cap - 1)];
    if (P_STATE(f->awaiting) != VOW_PENDING) {
      if (!vow__promise_job_is_await(t.fn, t.arg, f)) return 0;
      q->head++;
      f->taking = 1;
      t.fn(loop, t.arg); /* resume_from_job takes the outcome */
      return 1;
    }
    if (t.fn != awaited_settled_job) return 0;
    q->head++;
    t.fn(loop, t.arg);
  }
  return 0;
}

/* Whether run_ahead has anything to do: the cheap test, inline. Not from a
 * copy-stack frame: the jobs would run deeper on the shared stack than the
 * room its await made for its frames (vow__coro_reserve). */
static inline int may_run_ahead(const vow__frame *f) {
  const vow__microtask_queue *q = &f->loop->micro;
  return f->in_job && !f->copy_stack && !f->loop->trace && q->head != q->tail &&
         q->ring[q->head & (q->cap - 1)].fn == awaited_settled_job;
}

/* await of a pending p (taken): PerformPromiseThen with handlers that resume
 * f, which holds p until then. */
static int await_pending(vow__frame *f, vow_promise *p, vow_value *out) __attribute__((noinline));
static int await_pending(vow__frame *f, vow_promise *p, vow_value *out) {
  if (reserve(f) != 0 || vow__promise_await(p, on_awaited_fulfilled, on_awaited_rejected, f) != 0) {
    vow__promise_unref(p);
    *out = vow_error_nomem();
    return VOW_ENOMEM;
  }
  f->awaiting = p;
  if (!(may_run_ahead(f) && run_ahead(f)))
    vow__frame_suspend(f); /* resumed by a reaction job, or the teardown */
  vow__promise_unref(f->awaiting);
  f->awaiting = NULL;
  return resumed(f, out);
}

static int foreign_promise(vow_promise *p, vow_value *out) __attribute__((cold, noinline));
static int foreign_promise(vow_promise *p, vow_value *out) {
  vow__promise_unref(p);
  *out = vow_error(VOW_EINVAL, "await of a promise that belongs to another loop");
  return VOW_EINVAL;
}

/* The frame an await may run in, or NULL with *rc and *out set. */
static vow__frame *awaiting_frame(vow_value *out, int *rc) {
  vow__frame *f = vow__frame_current();
  if (!f || !vow__loop_on_owner(f->loop)) {
    *out = vow_error(VOW_ENOTASYNC, "await is only valid in async functions");
    *rc = VOW_ENOTASYNC;
    return NULL;
  }
  if (f->closing) { /* nothing will ever settle now */
    *rc = closing_error(out);
    return NULL;
  }
  return f;
}

int vow_await(vow_promise *p, vow_value *out) {
  vow_value ignored;
  if (!out) out = &ignored;
  int rc;
  vow__frame *f = awaiting_frame(out, &rc);
  if (!f) {
    vow__promise_unref(p);
  } else if (!p) {
    *out = vow_error_nomem();
    rc = VOW_ENOMEM;
  } else if (p->loop != f->loop) {
    rc = foreign_promise(p, out);
  } else if (__builtin_expect(f->scope != NULL, 0) && vow__scope_await(f, p, out, &rc)) {
    /* inside a cancel scope: handled by scope.c */
  } else if (P_STATE(p) == VOW_PENDING) {
    rc = await_pending(f, p, out);
  } else {
    vow_value outcome;
    int rejected = take_settled(p, &outcome);
    vow__promise_unref(p); /* the outcome is all the await needs of it */
    rc = await_known(f, outcome, rejected, out);
  }
  if (out == &ignored) vow__unref(ignored);
  return rc;
}

void vow__frame_close(vow__frame *f) {
  f->closing = 1;
  /* An outcome waiting for a resumption job that will never run (the loop's
   * teardown drops queued jobs) is dropped with it. */
  vow__unref(f->outcome);
  f->outcome = vow_undefined();
  vow_value err;
  closing_error(&err);
  resume_with(f, err, 1);
}

int vow_await_value(vow_value value, vow_value *out) {
  if (value.kind == VOW_PROMISE) return vow_await(value.as.promise, out);
  /* A plain value is a promise fulfilled with it, without making one. */
  value.flags = 0;
  vow_value ignored;
  if (!out) out = &ignored;
  int rc;
  vow__frame *f = awaiting_frame(out, &rc);
  if (!f) vow__unref(value);
  else if (__builtin_expect(f->scope != NULL, 0) && vow__scope_await(f, NULL, out, &rc)) vow__unref(value);
  else rc = await_known(f, value, 0, out);
  if (out == &ignored) vow__unref(ignored);
  return rc;
}

vow_loop *vow_current_loop(void) {
  vow__frame *f = vow__frame_current();
  return f ? f->loop : NULL;
}

/* ---- async functions -------------------------------------------------------------- */

static void async_body(vow_coro *co, void *arg) {
  (void)co;
  async_frame *a = arg;
  a->result = a->fn(a->f.loop, a->arg);
  if (a->arg_free) a->arg_free(a->arg);
  a->arg_free = NULL;
}

/* The body returned: settle the promise with its result (a rejection when
 * thrown, adoption when a promise), then release the frame. */
static void async_finish(async_frame *a) {
  vow_promise *p = a->promise;
  vow_value result = a->result;
  vow_loop *loop = a->f.loop;
  vow__frame_end(&a->f);
  vow__pool_free(&loop->pool, a, sizeof *a);
  if (result.flags & VOW__THROWN) vow_promise_reject(p, result);
  else vow_promise_resolve(p, result);
  vow__promise_unref(p);
}

static void async_frame_abandon(async_frame *a) {
  vow_promise *p = a->promise;
  if (a->arg_free) a->arg_free(a->arg); /* its body will never finish */
  vow_loop *loop = a->f.loop;
  vow__frame_end(&a->f);
  vow__pool_free(&loop->pool, a, sizeof *a);
  vow__promise_unref(p);
}

/* The fields vow__frame_start does not set, cleared one by one: GCC makes a
 * memset (or `= {0}`) of this size a `rep stos`, whose start-up costs as much
 * as the rest of an async call's setup. */
static void async_frame_clear(async_frame *a) {
  a->f.awaiting = NULL;
  a->f.outcome = vow_undefined();
  a->f.rejected = 0;
  a->f.closing = 0;
  a->f.in_job = 0;
  a->f.taking = 0;
  a->f.copy_stack = 0;
  a->f.span = 0;
  a->f.scope = NULL;
  a->f.context = NULL;
  a->fn = NULL;
  a->arg = NULL;
  a->arg_free = NULL;
  a->promise = NULL;
  a->result = vow_undefined();
}

vow_promise *vow_async_ex(vow_loop *loop, vow_async_fn fn, void *arg,
                          const vow_async_options *options) {
  vow_promise *p = fn ? vow_promise_new(loop) : NULL;
  if (!p) { /* the body will never run: arg is released now */
    if (options && options->arg_free) options->arg_free(arg);
    return NULL;
  }
  /* Running fn may copy the caller's frames out if the caller is a
   * copy-stack function: make room for them first (vow__coro_reserve). */
  vow__frame *caller = vow__frame_current();
  if (caller && reserve(caller) != 0) {
    if (options && options->arg_free) options->arg_free(arg);
    vow_promise_reject(p, vow_error(VOW_ENOMEM, "cannot save the calling async function's stack"));
    return p;
  }
  /* From the loop's pool: calloc would cost more than the rest of the call. */
  async_frame *a = vow__pool_alloc(&loop->pool, sizeof *a);
  if (a) async_frame_clear(a);
  size_t stack_size = options ? options->stack_size : 0;
  int copy_stack = options ? options->copy_stack : 0;
  const char *name = options && options->name ? options->name : "async";
  if (!a ||
      vow__frame_start(&a->f, loop, FRAME_ASYNC, async_body, stack_size, copy_stack, name) != 0) {
    if (a) vow__pool_free(&loop->pool, a, sizeof *a);
    if (options && options->arg_free) options->arg_free(arg);
    vow_promise_reject(p, vow_error(VOW_ENOMEM, "cannot allocate a coroutine stack"));
    return p;
  }
  a->fn = fn;
  a->arg = arg;
  a->arg_free = options ? options->arg_free : NULL;
  a->promise = vow__promise_ref(p);
  if (vow__frame_resume(&a->f)) async_finish(a);
  return p;
}

vow_promise *vow_async(vow_loop *loop, vow_async_fn fn, void *arg) {
  return vow_async_ex(loop, fn, arg, NULL);
}

/* ---- asyncio.run ----------------------------------------------------------------------- */

int vow_run(vow_async_fn fn, void *arg, const vow_loop_options *options, vow_value *result) {
  if (result) *result = vow_undefined();
  if (!fn) return VOW_EINVAL;
  vow_loop *loop;
  int err = vow_loop_new(&loop, options);
  if (err) return err;
  vow_promise *p = vow_async(loop, fn, arg);
  /* Its rejection is ours to report, not an unhandled one: mark it handled. */
  if (p) {
    if (P_STATE(p) == VOW_REJECTED && (P_FLAGS(p) & P_TRACKED)) vow__rejection_handled(p);
    P_FLAGS(p) |= P_HANDLED;
  }
  err = p ? vow_loop_run(loop) : VOW_ENOMEM;
  if (!err && vow_promise_state(p) == VOW_REJECTED) {
    err = VOW_EREJECTED;
    fputs("vow: the main async function rejected: ", stderr);
    vow_value_print(stderr, vow_promise_result(p));
    fputc('\n', stderr);
  }
  if (result && p && vow_promise_state(p) != VOW_PENDING) *result = vow__ref(vow_promise_result(p));
  vow__promise_unref(p);
  vow_loop_free(loop);
  return err;
}
