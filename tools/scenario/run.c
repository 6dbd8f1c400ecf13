/*
 * run.c — running a scenario on vow: an interpreter over the checked tree of
 * scenario.h, each statement mapped onto vow's public API.
 *
 * The JavaScript a statement stands for (FORMAT.md, and
 * `node tools/oracle/oracle.js --js FILE`) is the specification; each handler
 * below says which vow call it becomes. In short:
 *   - the program runs as the first macrotask, then vow_loop_run runs the loop
 *     until it is empty, on a virtual clock (timers never sleep);
 *   - then/catch/finally handlers are vow_handlers / vow_finally_fns whose
 *     context is a `site` (the run plus the statement that attached them);
 *     micro/timeout/interval/immediate callbacks get the same;
 *   - an async body runs through vow_async, an asyncgen body through
 *     vow_asyncgen_new (afresh for each forawait over it); their statements
 *     use vow_await_value, vow_yield and the vow_for_await cursor;
 *   - unhandled rejections go through vow_on_unhandled_rejection;
 *   - a promise used as a reason travels as a stand-in that holds no
 *     reference (see "promises as reasons" below).
 *
 * Errors at run time. Like the oracle, a run stops when the scenario uses a
 * name whose binding statement has not run yet, prints a value FORMAT has no
 * printing for, or passes a limit; the run is then "halted": every callback
 * and body that still runs returns at once, intervals are cleared, and the
 * loop drains. Nothing is printed for a halted run.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

/* A limit of ours, on loop (virtual) time: a scenario whose timers go on
 * longer than this (a 1 ms interval with a COUNT of 10^12) would run for hours
 * under Node.js too; it is stopped rather than left to spin. */
#define RUN_TIME_LIMIT_MS ((uint64_t)10 * 60 * 1000)

/* Stack of an async or asyncgen body's coroutine: vow's default, plus room for
 * the interpreter's recursion through nested try blocks (the only statements
 * that nest within one body). Generous: only touched pages cost memory. */
#define BODY_STACK_BASE ((size_t)256 << 10)
#define BODY_STACK_PER_TRY ((size_t)4 << 10)

static const sc_text UNHANDLED = {"unhandled", 9};

typedef struct scenario scenario;

/* What a name holds while the scenario runs. */
typedef struct slot {
  bool bound;              /* its binding statement has run */
  vow_promise *promise;    /* deferred, promise: a reference */
  size_t first;            /* deferred, promise: the slot of the promise's first name */
  vow_timer timer;         /* timer */
  int64_t ticks;           /* interval: ticks so far (the JavaScript's k) */
  const sc_stmt *gen;      /* asyncgen: its definition */
} slot;

/* The context of a callback or handler: the run, and the statement that
 * scheduled or attached it. One per statement, so none is ever allocated for
 * a callback that may never run. */
typedef struct site {
  scenario *sc;
  const sc_stmt *stmt;
} site;

/* The state of an async or asyncgen body: its arg. vow owns it from the call
 * on and releases it through arg_free (frame_free) when done with it — after
 * the body returned, or when the body will never run. (A body suspended when
 * the loop is freed is resumed by vow_loop_free with VOW_ECLOSING, and returns.) */
typedef struct frame {
  scenario *sc;
  const sc_stmt *stmt;       /* the async or asyncgen statement */
  bool is_gen;
  vow_value cur;             /* $: the latest await/yield result or caught reason */
  vow_value completion;      /* a return's value or a throw's reason, on its way out */
  bool in_forawait;          /* it is live */
  vow_for_await it;
} frame;

struct scenario {
  const sc_program *prog;
  vow_loop *loop;
  slot *slots;               /* by name */
  site *sites;               /* by statement id */
  sc_log log;
  uint64_t start;            /* loop time when the program began */
  bool halted;               /* an error stopped the run, or it is being torn down */
  char *error;               /* the error, with the statement's path */
};

/* Where the interpreter stands: what {"arg": true} reads, and the body that
 * await, return, throw, try, forawait and yield act on (NULL outside one). */
typedef struct env {
  scenario *sc;
  const vow_value *arg;
  frame *fr;
} env;

/* How a statement (or block) ended. */
typedef enum flow {
  FLOW_NEXT,   /* go on with the next statement */
  FLOW_RETURN, /* `return`: the body's completion value is set */
  FLOW_THROW,  /* `throw` or a rejected await: the body's completion is the reason */
  FLOW_HALT    /* the run is halted */
} flow;

/* ---- errors ----------------------------------------------------------------------- */

/* Halts the run with an error (the first one counts). where may be NULL. */
static int fail(scenario *sc, const char *where, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static int fail(scenario *sc, const char *where, const char *fmt, ...) {
  if (!sc->error) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sc->error = where ? sc_strdupf("%s: %s", where, msg) : sc_strdupf("%s", msg);
  }
  if (!sc->halted && sc->loop) {
    /* Intervals would go on ticking (to no effect) until their COUNT. */
    for (size_t i = 0; i < sc->prog->n_slots; i++) {
      const slot *sl = &sc->slots[i];
      if (sc->prog->kinds[i] == SC_KIND_TIMER && sl->bound) vow_clear_timer(sc->loop, sl->timer);
    }
  }
  sc->halted = true;
  return -1;
}

/* A vow call that returns NULL or a negative code fails only when memory runs out. */
static int fail_vow(scenario *sc, const char *where, int code) {
  return fail(sc, where, "vow: %s", vow_strerror(code));
}

static flow status(int rc) {
  return rc == 0 ? FLOW_NEXT : FLOW_HALT;
}

/* ---- the log ------------------------------------------------------------------------ */

static int log_line(scenario *sc, const char *where, sc_text label) {
  char *error = NULL;
  if (sc_log_line(&sc->log, label, &error) == 0) return 0;
  fail(sc, where, "%s", error ? error : "out of memory");
  free(error);
  return -1;
}

static int log_value(scenario *sc, const char *where, sc_text label, vow_value v) {
  char *error = NULL;
  if (sc_log_value(&sc->log, label, v, &error) == 0) return 0;
  fail(sc, where, "%s", error ? error : "out of memory");
  free(error);
  return -1;
}

/* process.on('unhandledRejection', r => log('unhandled ' + P(r))) */
static void on_unhandled(vow_loop *loop, vow_promise *p, vow_value reason, void *data) {
  (void)loop, (void)p;
  scenario *sc = data;
  if (!sc->halted) log_value(sc, NULL, UNHANDLED, reason);
}

/* ---- names and values ------------------------------------------------------------------ */

/* The slot of a name used at where, or NULL (and the run fails) when its
 * binding statement has not run yet. */
static slot *bound(scenario *sc, const char *where, size_t i) {
  if (sc->slots[i].bound) return &sc->slots[i];
  fail(sc, where, "name \"%s\" is used at run time before its binding statement ran", sc->prog->names[i]);
  return NULL;
}

/* Binds the statement's name to p (a new reference, taken; NULL: out of memory). */
static int bind_promise(scenario *sc, const sc_stmt *s, vow_promise *p) {
  if (!p) return fail_vow(sc, s->where, VOW_ENOMEM);
  slot *sl = &sc->slots[s->slot];
  if (sl->bound) { /* load.c makes this impossible: each binding statement runs at most once */
    vow_promise_unref(p);
    return fail(sc, s->where, "name \"%s\" is bound twice at run time", sc->prog->names[s->slot]);
  }
  sl->bound = true;
  sl->promise = p;
  sl->first = s->slot;
  return 0;
}

/* ---- promises as reasons ------------------------------------------------------------------
 *
 * FORMAT 1.1 lets a promise be a rejection reason (reject, rejected, throw, a
 * handler's throw), which JavaScript never adopts: it travels as a value into
 * catch blocks, allSettled records and AggregateError lists, and prints as
 * promise:NAME. A reason holding a reference to its promise could close a
 * reference cycle (d1 rejected with d2 and d2 with d1; an input of any() or
 * allSettled() rejected with the combinator's own promise), which JavaScript's
 * collector frees and vow's reference counts cannot (vow.h, "Cycles"). So the
 * run puts a stand-in in the promise's place: a VOW_POINTER to the slot of
 * the promise's first name, holding no reference (the slot holds one until
 * the run ends). vow never looks into a reason, so it carries the stand-in as
 * it would carry the promise; and wherever JavaScript uses the value as a
 * promise (resolving or returning with it, awaiting it, yielding it, handing
 * it to a combinator, Promise.resolve) eval() below turns it back into the
 * promise itself. */

/* A stand-in for the promise whose first name is slot i. */
static vow_value stand_in(scenario *sc, size_t i) {
  return vow_pointer(&sc->slots[i], NULL);
}

/* The slot a stand-in names, or SIZE_MAX when v is not one. */
static size_t stand_in_slot(const scenario *sc, vow_value v) {
  const slot *sl = vow_as_pointer(v);
  if (!sl || sl < sc->slots || sl >= sc->slots + sc->prog->n_slots) return SIZE_MAX;
  return (size_t)(sl - sc->slots);
}

/* sc_log's promise_name: the first name of a promise or of its stand-in. */
static const char *promise_name(void *ctx, vow_value v) {
  const scenario *sc = ctx;
  if (vow_kind_of(v) == VOW_POINTER) {
    size_t i = stand_in_slot(sc, v);
    return i == SIZE_MAX ? NULL : sc->prog->names[i];
  }
  /* A promise itself reaches the log only if vow hands one where JavaScript
   * has none (a fulfilment value is never a promise): look for it. */
  vow_promise *p = vow_as_promise(v);
  for (size_t i = 0; p && i < sc->prog->n_slots; i++) {
    if (sc->slots[i].promise == p) return sc->prog->names[sc->slots[i].first];
  }
  return NULL;
}

/* Where a value goes: somewhere a promise is used as a promise (adopted,
 * awaited...), or where it is only carried (a reason) or printed. */
typedef enum use { USE_VALUE, USE_REASON } use;

/* The vow value V stands for, as a new reference in *out. */
static int eval_as(const env *e, const char *where, const sc_value *v, use u, vow_value *out) {
  *out = vow_undefined();
  switch (v->kind) {
    case SC_VAL_UNDEFINED:
      return 0;
    case SC_VAL_INT:
      *out = vow_int(v->i);
      return 0;
    case SC_VAL_STRING:
      *out = vow_string_n(v->s, v->len);
      return 0;
    case SC_VAL_PROMISE: {
      slot *sl = bound(e->sc, where, v->slot);
      if (!sl) return -1;
      *out = u == USE_REASON ? stand_in(e->sc, sl->first) : vow_promise_value(vow_promise_ref(sl->promise));
      return 0;
    }
    case SC_VAL_ARG: {
      size_t i = u == USE_VALUE ? stand_in_slot(e->sc, *e->arg) : SIZE_MAX;
      *out = i == SIZE_MAX ? vow_ref(*e->arg) : vow_promise_value(vow_promise_ref(e->sc->slots[i].promise));
      return 0;
    }
  }
  return fail(e->sc, where, "internal error: a value of unknown kind");
}

static int eval(const env *e, const char *where, const sc_value *v, vow_value *out) {
  return eval_as(e, where, v, USE_VALUE, out);
}

/* A reason (reject, rejected, throw) or a value to print. */
static int eval_reason(const env *e, const char *where, const sc_value *v, vow_value *out) {
  return eval_as(e, where, v, USE_REASON, out);
}

/* The slot of the first name of the promise V stands for, or SIZE_MAX when V
 * is not a promise. */
static size_t first_name(const env *e, const sc_value *v) {
  if (v->kind == SC_VAL_PROMISE) return e->sc->slots[v->slot].first;
  if (v->kind == SC_VAL_ARG) return stand_in_slot(e->sc, *e->arg);
  return SIZE_MAX;
}

/* The values of a list, into a malloc'd array (never NULL on success). */
static int eval_list(const env *e, const sc_stmt *s, vow_value **out) {
  vow_value *items = malloc((s->n_items ? s->n_items : 1) * sizeof *items);
  if (!items) return fail_vow(e->sc, s->where, VOW_ENOMEM);
  for (size_t i = 0; i < s->n_items; i++) {
    if (eval(e, s->where, &s->items[i], &items[i]) != 0) {
      while (i--) vow_unref(items[i]);
      free(items);
      return -1;
    }
  }
  *out = items;
  return 0;
}

/* ---- body frames ------------------------------------------------------------------------ */

static frame *frame_new(scenario *sc, const sc_stmt *stmt, bool is_gen) {
  frame *fr = calloc(1, sizeof *fr);
  if (!fr) return NULL;
  fr->sc = sc;
  fr->stmt = stmt;
  fr->is_gen = is_gen;
  return fr;
}

/* The bodies' arg_free. */
static void frame_free(void *arg) {
  frame *fr = arg;
  if (fr->in_forawait) vow_for_await_end(&fr->it, NULL); /* dropped inside a for-await */
  vow_unref(fr->cur);
  vow_unref(fr->completion);
  free(fr);
}

/* Sets $ (takes v). */
static void set_cur(frame *fr, vow_value v) {
  vow_unref(fr->cur);
  fr->cur = v;
}

/* Sets the completion of a return or throw (takes v). */
static void set_completion(frame *fr, vow_value v) {
  vow_unref(fr->completion);
  fr->completion = v;
}

static size_t body_stack(const sc_stmt *s) {
  return BODY_STACK_BASE + s->try_depth * BODY_STACK_PER_TRY;
}

/* ---- statements: prototypes -------------------------------------------------------------- */

static flow exec_block(const env *e, const sc_block *b);

static void on_micro(vow_loop *loop, void *arg);
static void on_timer(vow_loop *loop, void *arg);
static void on_interval(vow_loop *loop, void *arg);
static vow_value on_fulfilled(vow_loop *loop, vow_value v, void *ctx);
static vow_value on_rejected(vow_loop *loop, vow_value v, void *ctx);
static vow_value on_finally(vow_loop *loop, void *ctx);
static vow_value async_body(vow_loop *loop, void *arg);
static vow_value gen_body(vow_loop *loop, vow_asyncgen *gen, void *arg);

static site *site_of(scenario *sc, const sc_stmt *s) {
  site *st = &sc->sites[s->id];
  st->sc = sc;
  st->stmt = s;
  return st;
}

/* ---- statements of any function --------------------------------------------------------- */

/* log(L) or log(L + " " + P(V)) */
static flow exec_log(const env *e, const sc_stmt *s) {
  if (!s->has_value) return status(log_line(e->sc, s->where, s->label));
  vow_value v;
  if (eval_reason(e, s->where, &s->value, &v) != 0) return FLOW_HALT;
  int rc = log_value(e->sc, s->where, s->label, v);
  vow_unref(v);
  return status(rc);
}

/* N.res(V) / N.rej(V): vow_promise_resolve / vow_promise_reject (no-ops once settled). */
static flow exec_settle(const env *e, const sc_stmt *s) {
  slot *sl = bound(e->sc, s->where, s->slot);
  vow_value v;
  if (!sl || eval_as(e, s->where, &s->value, s->op == SC_RESOLVE ? USE_VALUE : USE_REASON, &v) != 0) {
    return FLOW_HALT;
  }
  int rc = s->op == SC_RESOLVE ? vow_promise_resolve(sl->promise, v) : vow_promise_reject(sl->promise, v);
  return status(rc < 0 ? fail_vow(e->sc, s->where, rc) : 0);
}

/* N = Promise.resolve(V) / Promise.reject(V). Promise.resolve(p) is p itself,
 * which keeps the first name it had. */
static flow exec_resolved(const env *e, const sc_stmt *s) {
  vow_value v;
  bool resolve = s->op == SC_RESOLVED;
  if (eval_as(e, s->where, &s->value, resolve ? USE_VALUE : USE_REASON, &v) != 0) return FLOW_HALT;
  vow_loop *loop = e->sc->loop;
  const vow_promise *given = resolve ? vow_as_promise(v) : NULL; /* only compared */
  size_t first = resolve ? first_name(e, &s->value) : SIZE_MAX;
  vow_promise *p = resolve ? vow_resolved(loop, v) : vow_rejected(loop, v);
  if (bind_promise(e->sc, s, p) != 0) return FLOW_HALT;
  if (p == given && first != SIZE_MAX) e->sc->slots[s->slot].first = first;
  return FLOW_NEXT;
}

/* N = SRC.then(h1, h2) / SRC.catch(h) / SRC.finally(h) */
static flow exec_then(const env *e, const sc_stmt *s) {
  slot *src = bound(e->sc, s->where, s->src);
  if (!src) return FLOW_HALT;
  site *st = site_of(e->sc, s);
  vow_promise *p;
  if (s->op == SC_FINALLY) {
    p = vow_finally(src->promise, on_finally, st);
  } else {
    p = vow_then(src->promise, s->on_ok ? on_fulfilled : NULL, s->on_err ? on_rejected : NULL, st);
  }
  return status(bind_promise(e->sc, s, p));
}

/* N = Promise.all([V...]) and allSettled, race, any */
static flow exec_combinator(const env *e, const sc_stmt *s) {
  vow_value *items;
  if (eval_list(e, s, &items) != 0) return FLOW_HALT;
  vow_loop *loop = e->sc->loop;
  vow_promise *p = NULL;
  switch (s->op) {
    case SC_ALL: p = vow_all(loop, items, s->n_items); break;
    case SC_ALL_SETTLED: p = vow_all_settled(loop, items, s->n_items); break;
    case SC_RACE: p = vow_race(loop, items, s->n_items); break;
    default: p = vow_any(loop, items, s->n_items); break;
  }
  free(items); /* the values moved into the combinator */
  return status(bind_promise(e->sc, s, p));
}

/* queueMicrotask / setImmediate */
static flow exec_micro(const env *e, const sc_stmt *s) {
  site *st = site_of(e->sc, s);
  int64_t rc = s->op == SC_MICRO ? vow_queue_microtask(e->sc->loop, on_micro, st)
                                 : vow_set_immediate(e->sc->loop, on_timer, st);
  return status(rc < 0 ? fail_vow(e->sc, s->where, (int)rc) : 0);
}

/* T = setTimeout(...) / T = setInterval(...) */
static flow exec_timer(const env *e, const sc_stmt *s) {
  scenario *sc = e->sc;
  slot *sl = &sc->slots[s->slot];
  site *st = site_of(sc, s);
  vow_timer id = s->op == SC_TIMEOUT ? vow_set_timeout(sc->loop, (uint64_t)s->ms, on_timer, st)
                                     : vow_set_interval(sc->loop, (uint64_t)s->ms, on_interval, st);
  if (id < 0) return status(fail_vow(sc, s->where, (int)id));
  if (sl->bound) { /* load.c makes this impossible, as in bind_promise */
    return status(fail(sc, s->where, "name \"%s\" is bound twice at run time", sc->prog->names[s->slot]));
  }
  sl->bound = true;
  sl->timer = id;
  sl->ticks = 0;
  return FLOW_NEXT;
}

/* clearTimeout(T) */
static flow exec_clear(const env *e, const sc_stmt *s) {
  slot *sl = bound(e->sc, s->where, s->slot);
  if (!sl) return FLOW_HALT;
  vow_clear_timer(e->sc->loop, sl->timer);
  return FLOW_NEXT;
}

/* N = (async () => { S })(): the body runs now, up to its first await. */
static flow exec_async(const env *e, const sc_stmt *s) {
  frame *fr = frame_new(e->sc, s, false);
  if (!fr) return status(fail_vow(e->sc, s->where, VOW_ENOMEM));
  vow_async_options o = {.stack_size = body_stack(s), .name = "scenario async body",
                         .arg_free = frame_free};
  return status(bind_promise(e->sc, s, vow_async_ex(e->sc->loop, async_body, fr, &o)));
}

/* async function* G() { S }: only defines G. */
static flow exec_asyncgen(const env *e, const sc_stmt *s) {
  slot *sl = &e->sc->slots[s->slot];
  sl->bound = true;
  sl->gen = s;
  return FLOW_NEXT;
}

/* ---- statements of async bodies ---------------------------------------------------------- */

/* $ = await V, and log(L + " " + P($)) */
static flow exec_await(const env *e, const sc_stmt *s) {
  frame *fr = e->fr;
  vow_value v, result;
  if (eval(e, s->where, &s->value, &v) != 0) return FLOW_HALT;
  int rc = vow_await_value(v, &result);
  if (e->sc->halted) {
    vow_unref(result);
    return FLOW_HALT;
  }
  if (rc != 0) { /* rejected: the reason is thrown at the await */
    set_completion(fr, result);
    return FLOW_THROW;
  }
  set_cur(fr, result);
  return s->has_label ? status(log_value(e->sc, s->where, s->label, fr->cur)) : FLOW_NEXT;
}

/* `return V` in an async generator: JavaScript awaits V right there, even
 * when it is undefined, so a rejection is caught by an enclosing try. The body
 * awaits it and hands vow the result as already awaited. */
static flow gen_return(const env *e, const sc_stmt *s, vow_value v) {
  (void)s;
  frame *fr = e->fr;
  vow_value result;
  int rc = vow_await_value(v, &result);
  if (e->sc->halted) {
    vow_unref(result);
    return FLOW_HALT;
  }
  set_completion(fr, rc == 0 ? vow_return_awaited(result) : result);
  return rc == 0 ? FLOW_RETURN : FLOW_THROW;
}

/* return V: an async function's promise is resolved with V (a promise is adopted). */
static flow exec_return(const env *e, const sc_stmt *s) {
  vow_value v;
  if (eval(e, s->where, &s->value, &v) != 0) return FLOW_HALT;
  if (e->fr->is_gen) return gen_return(e, s, v);
  set_completion(e->fr, v);
  return FLOW_RETURN;
}

/* throw V */
static flow exec_throw(const env *e, const sc_stmt *s) {
  vow_value v;
  if (eval_reason(e, s->where, &s->value, &v) != 0) return FLOW_HALT;
  set_completion(e->fr, v);
  return FLOW_THROW;
}

/* try { S1 } catch (e) { $ = e; S2 } */
static flow exec_try(const env *e, const sc_stmt *s) {
  flow f = exec_block(e, &s->body);
  if (f != FLOW_THROW) return f;
  set_cur(e->fr, e->fr->completion);
  e->fr->completion = vow_undefined();
  return exec_block(e, &s->rescue);
}

/* $ = yield V */
static flow exec_yield(const env *e, const sc_stmt *s) {
  frame *fr = e->fr;
  vow_value v, sent;
  if (eval(e, s->where, &s->value, &v) != 0) return FLOW_HALT;
  int rc = vow_yield(v, &sent);
  if (e->sc->halted) {
    vow_unref(sent);
    return FLOW_HALT;
  }
  switch (rc) {
    case 0: /* next(v) */
      set_cur(fr, sent);
      return FLOW_NEXT;
    case VOW_EDONE: /* return(v), from a for-await left early: a return at the yield */
      set_completion(fr, sent);
      return FLOW_RETURN;
    default: /* throw(e), or V rejected: thrown at the yield */
      set_completion(fr, sent);
      return FLOW_THROW;
  }
}

/* Prepares fr->it for `for await (const x of G())`: a fresh generator. */
static int forawait_gen(const env *e, const sc_stmt *s) {
  scenario *sc = e->sc;
  slot *sl = bound(sc, s->where, s->src);
  if (!sl) return -1;
  frame *gf = frame_new(sc, sl->gen, true);
  if (!gf) return fail_vow(sc, s->where, VOW_ENOMEM);
  vow_async_options o = {.stack_size = body_stack(sl->gen), .name = "scenario asyncgen body",
                         .arg_free = frame_free};
  vow_asyncgen *g = vow_asyncgen_new_ex(sc->loop, gen_body, gf, &o);
  int rc = vow_for_await_gen(&e->fr->it, g); /* takes g */
  return rc == 0 ? 0 : fail_vow(sc, s->where, g ? rc : VOW_ENOMEM);
}

/* Prepares fr->it for `for await (const x of [V...])`. */
static int forawait_array(const env *e, const sc_stmt *s) {
  vow_value *items;
  if (eval_list(e, s, &items) != 0) return -1;
  int rc = vow_for_await_array(&e->fr->it, e->sc->loop, items, s->n_items); /* takes the values */
  free(items);
  return rc == 0 ? 0 : fail_vow(e->sc, s->where, rc);
}

/* for await (const x of SRC) log(L + " " + P(x)) */
static flow exec_forawait(const env *e, const sc_stmt *s) {
  scenario *sc = e->sc;
  frame *fr = e->fr;
  if ((s->from_gen ? forawait_gen(e, s) : forawait_array(e, s)) != 0) return FLOW_HALT;
  fr->in_forawait = true;
  VOW_FOR_AWAIT(&fr->it, x) {
    if (sc->halted || log_value(sc, s->where, s->label, x) != 0) break;
  }
  vow_value error;
  int rc = vow_for_await_end(&fr->it, &error);
  fr->in_forawait = false;
  if (sc->halted) {
    vow_unref(error);
    return FLOW_HALT;
  }
  if (rc < 0) { /* the source rejected: thrown at the for-await */
    set_completion(fr, error);
    return FLOW_THROW;
  }
  vow_unref(error);
  return FLOW_NEXT;
}

/* ---- the interpreter ---------------------------------------------------------------------- */

static flow exec(const env *e, const sc_stmt *s) {
  switch (s->op) {
    case SC_LOG: return exec_log(e, s);
    case SC_DEFERRED: return status(bind_promise(e->sc, s, vow_promise_new(e->sc->loop)));
    case SC_RESOLVE:
    case SC_REJECT: return exec_settle(e, s);
    case SC_RESOLVED:
    case SC_REJECTED: return exec_resolved(e, s);
    case SC_THEN:
    case SC_CATCH:
    case SC_FINALLY: return exec_then(e, s);
    case SC_ALL:
    case SC_ALL_SETTLED:
    case SC_RACE:
    case SC_ANY: return exec_combinator(e, s);
    case SC_MICRO:
    case SC_IMMEDIATE: return exec_micro(e, s);
    case SC_TIMEOUT:
    case SC_INTERVAL: return exec_timer(e, s);
    case SC_CLEAR: return exec_clear(e, s);
    case SC_ASYNC: return exec_async(e, s);
    case SC_ASYNCGEN: return exec_asyncgen(e, s);
    case SC_AWAIT: return exec_await(e, s);
    case SC_RETURN: return exec_return(e, s);
    case SC_THROW: return exec_throw(e, s);
    case SC_TRY: return exec_try(e, s);
    case SC_FORAWAIT: return exec_forawait(e, s);
    case SC_YIELD: return exec_yield(e, s);
  }
  return status(fail(e->sc, s->where, "internal error: unknown statement"));
}

static flow exec_block(const env *e, const sc_block *b) {
  for (size_t i = 0; i < b->n; i++) {
    if (e->sc->halted) return FLOW_HALT;
    flow f = exec(e, &b->stmts[i]);
    if (f != FLOW_NEXT) return f;
  }
  return e->sc->halted ? FLOW_HALT : FLOW_NEXT;
}

/* ---- callbacks ------------------------------------------------------------------------------ */

/* A micro/timeout/interval/immediate block: a plain function, without an argument. */
static void run_callback(const site *st) {
  env e = {st->sc, NULL, NULL};
  if (!st->sc->halted) exec_block(&e, &st->stmt->body);
}

static void on_micro(vow_loop *loop, void *arg) {
  (void)loop;
  run_callback(arg);
}

/* Timeouts, interval ticks and immediates: macrotasks, where time passes, so
 * where it is limited. */
static void on_timer(vow_loop *loop, void *arg) {
  const site *st = arg;
  scenario *sc = st->sc;
  if (!sc->halted && vow_loop_now(loop) - sc->start > RUN_TIME_LIMIT_MS) {
    fail(sc, st->stmt->where, "the scenario runs for more than %llu s of loop time",
         (unsigned long long)(RUN_TIME_LIMIT_MS / 1000));
  }
  run_callback(st);
}

/* if (++k === COUNT) clearInterval(T); S */
static void on_interval(vow_loop *loop, void *arg) {
  const site *st = arg;
  slot *sl = &st->sc->slots[st->stmt->slot];
  if (++sl->ticks == st->stmt->count) vow_clear_timer(loop, sl->timer);
  on_timer(loop, arg);
}

/* (x) => { log(L + " " + P(x)); S; return RET } — arg is NULL for finally's () => ... */
static vow_value run_handler(const site *st, const sc_handler *h, const vow_value *arg) {
  scenario *sc = st->sc;
  env e = {sc, arg, NULL};
  vow_value result = vow_undefined();
  if (sc->halted) return result;
  if (h->has_log) {
    int rc = arg ? log_value(sc, st->stmt->where, h->log, *arg) : log_line(sc, st->stmt->where, h->log);
    if (rc != 0) return result;
  }
  if (exec_block(&e, &h->body) != FLOW_NEXT || h->ret_kind == SC_RET_NONE) return result;
  bool throws = h->ret_kind == SC_RET_THROW;
  if (eval_as(&e, st->stmt->where, &h->ret, throws ? USE_REASON : USE_VALUE, &result) != 0) return vow_undefined();
  return throws ? vow_throw(result) : result;
}

static vow_value on_fulfilled(vow_loop *loop, vow_value v, void *ctx) {
  (void)loop;
  const site *st = ctx;
  return run_handler(st, st->stmt->on_ok, &v);
}

static vow_value on_rejected(vow_loop *loop, vow_value v, void *ctx) {
  (void)loop;
  const site *st = ctx;
  return run_handler(st, st->stmt->on_err, &v);
}

static vow_value on_finally(vow_loop *loop, void *ctx) {
  (void)loop;
  const site *st = ctx;
  return run_handler(st, st->stmt->on_ok, NULL);
}

/* ---- bodies ---------------------------------------------------------------------------------- */

/* Runs a body's statements and turns how they ended into the body's result:
 * a return's value, a thrown reason, or undefined for falling off the end. */
static vow_value run_body(frame *fr) {
  env e = {fr->sc, &fr->cur, fr};
  flow f = exec_block(&e, &fr->stmt->body);
  vow_value result = vow_undefined();
  if (f == FLOW_RETURN) result = fr->completion;
  else if (f == FLOW_THROW) result = vow_throw(fr->completion);
  else vow_unref(fr->completion);
  fr->completion = vow_undefined();
  return result;
}

static vow_value async_body(vow_loop *loop, void *arg) {
  (void)loop;
  return run_body(arg);
}

static vow_value gen_body(vow_loop *loop, vow_asyncgen *gen, void *arg) {
  (void)loop, (void)gen;
  return run_body(arg);
}

/* ---- a run ------------------------------------------------------------------------------------- */

static int setup(scenario *sc, const sc_program *prog) {
  vow_loop_options options = {0};
  options.virtual_clock = 1;
  sc->prog = prog;
  sc->slots = calloc(prog->n_slots ? prog->n_slots : 1, sizeof *sc->slots);
  sc->sites = calloc(prog->n_stmts ? prog->n_stmts : 1, sizeof *sc->sites);
  if (!sc->slots || !sc->sites) return -1;
  if (vow_loop_new(&sc->loop, &options) != 0) return -1;
  sc->start = vow_loop_now(sc->loop);
  sc->log.promise_name = promise_name;
  sc->log.promise_name_ctx = sc;
  return vow_on_unhandled_rejection(sc->loop, on_unhandled, sc);
}

/* Releases what the run holds, then the loop. Bodies still suspended are
 * resumed by vow_loop_free with VOW_ECLOSING: the run is halted first, so they
 * return at once without running another statement. */
static void teardown(scenario *sc) {
  sc->halted = true;
  for (size_t i = 0; sc->slots && i < sc->prog->n_slots; i++) vow_promise_unref(sc->slots[i].promise);
  vow_loop_free(sc->loop);
  free(sc->slots);
  free(sc->sites);
  sc_log_free(&sc->log);
}

int sc_run(const sc_program *prog, FILE *out, char **error) {
  scenario sc = {0};
  *error = NULL;
  if (setup(&sc, prog) != 0) {
    fail(&sc, NULL, "cannot make a vow loop");
  } else {
    env top = {&sc, NULL, NULL};
    exec_block(&top, &prog->main); /* the first macrotask */
    int rc = vow_loop_run(sc.loop);
    if (rc != 0) fail(&sc, NULL, "vow_loop_run: %s", vow_strerror(rc));
  }
  int result = 0;
  if (sc.halted) {
    *error = sc.error ? sc.error : sc_strdupf("out of memory");
    result = -1;
  } else if (fwrite(sc.log.buf ? sc.log.buf : "", 1, sc.log.len, out) != sc.log.len || fflush(out) != 0) {
    *error = sc_strdupf("cannot write the output");
    result = -1;
  }
  teardown(&sc);
  return result;
}
