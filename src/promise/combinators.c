/*
 * combinators.c — Promise.all, allSettled, race and any (ECMA-262
 * PerformPromiseAll and friends).
 *
 * Each input goes through PromiseResolve (a promise stays itself, a plain
 * value becomes a fulfilled promise) and gets one reaction, so the tick at
 * which the combined promise settles is the one V8 gives. The gathering
 * combinators share a counter that starts at 1 and is decremented once after
 * the loop over inputs, as in the spec: that is why an empty all() fulfils
 * at once, while a non-empty one never does before a tick has passed.
 */
#include <stdlib.h>

#include "core/alloc.h"
#include "promise/promise.h"

/* Lives while any element record does (plus the building call itself):
 * released exactly when `elements` reaches 0. */
typedef struct gather {
  vow_loop *loop;
  vow_promise *result;  /* the combinator's own promise (a reference) */
  vow_value values;     /* ARRAY: values, settled records, or reasons for any */
  uint32_t remaining;   /* the spec's remainingElementsCount */
  uint32_t elements;    /* element records alive (each is one reaction's ctx) */
} gather;

typedef struct element {
  gather *g;
  uint32_t index;
} element;

static void settle(vow_promise *p, vow_value v, int rejected) {
  if (rejected) vow_promise_reject(p, v);
  else vow_promise_resolve(p, v);
}

static void gather_release(gather *g) {
  vow__unref(g->values);
  vow__promise_unref(g->result);
  vow__free(g);
}

static void element_free(void *e) {
  element *el = e;
  gather *g = el->g;
  vow__pool_free(&g->loop->pool, el, sizeof *el);
  if (--g->elements == 0) gather_release(g);
}

/* One fewer pending input; the last one settles the combined promise. */
static void gather_step(gather *g, int as_rejection) {
  if (--g->remaining > 0) return;
  vow_value values = g->values;
  g->values = vow_undefined();
  if (as_rejection) settle(g->result, vow__aggregate_new(values), 1);
  else settle(g->result, values, 0);
}

static void store(element *el, vow_value v) {
  vow__array *a = (vow__array *)el->g->values.as.obj;
  vow__unref(a->items[el->index]);
  a->items[el->index] = v;
}

/* all: resolveElement / the capability's reject */
static vow_value all_fulfilled(vow_loop *loop, vow_value v, void *e) {
  (void)loop;
  store(e, vow__ref(v));
  gather_step(((element *)e)->g, 0);
  return vow_undefined();
}
static vow_value reject_result(vow_loop *loop, vow_value reason, void *e) {
  (void)loop;
  vow_promise_reject(((element *)e)->g->result, vow__ref(reason));
  return vow_undefined();
}
/* allSettled: both outcomes become records */
static vow_value settled_fulfilled(vow_loop *loop, vow_value v, void *e) {
  (void)loop;
  store(e, vow__settled_new(1, vow__ref(v)));
  gather_step(((element *)e)->g, 0);
  return vow_undefined();
}
static vow_value settled_rejected(vow_loop *loop, vow_value reason, void *e) {
  (void)loop;
  store(e, vow__settled_new(0, vow__ref(reason)));
  gather_step(((element *)e)->g, 0);
  return vow_undefined();
}
/* any: the capability's resolve / rejectElement */
static vow_value resolve_result(vow_loop *loop, vow_value v, void *e) {
  (void)loop;
  vow_promise_resolve(((element *)e)->g->result, vow__ref(v));
  return vow_undefined();
}
static vow_value any_rejected(vow_loop *loop, vow_value reason, void *e) {
  (void)loop;
  store(e, vow__ref(reason));
  gather_step(((element *)e)->g, 1);
  return vow_undefined();
}

/* The inputs of a combinator: values whose references it takes (vow_all),
 * or promises it borrows (vow_all_promises). Exactly one is non-NULL. */
typedef struct inputs {
  vow_value *items;
  vow_promise *const *ps;
} inputs;

/* Drops what the inputs from `from` on still hold (values only: borrowed
 * promises hold nothing of ours). */
static void release_inputs(inputs in, size_t from, size_t n) {
  for (size_t i = from; in.items && i < n; i++) vow__unref(in.items[i]);
}

/* PromiseResolve of input i: a new reference, or NULL out of memory. */
static vow_promise *input_promise(vow_loop *loop, inputs in, size_t i) {
  if (in.items) return vow_resolved(loop, in.items[i]);
  if (!in.ps[i]) return vow_rejected(loop, vow_error(VOW_EINVAL, "a combinator's input promise is NULL"));
  return vow_resolved(loop, vow_promise_value(vow__promise_ref(in.ps[i])));
}

static vow_promise *combine(vow_loop *loop, inputs in, size_t n, vow_handler on_ok,
                            vow_handler on_err, int reject_when_done) {
  if (!in.items && !in.ps && n) return NULL; /* an array may be NULL only when empty */
  vow_promise *result = vow_promise_new(loop);
  gather *g = result ? vow__calloc(1, sizeof *g) : NULL;
  vow_value values = g ? vow_array(n) : vow_undefined();
  if (!g || values.kind != VOW_ARRAY || n >= UINT32_MAX) {
    vow__unref(values);
    vow__free(g);
    vow__promise_unref(result);
    release_inputs(in, 0, n);
    return NULL;
  }
  *g = (gather){loop, vow__promise_ref(result), values, 1, 0};
  g->elements = 1; /* held by this function until the loop is done */
  for (size_t i = 0; i < n; i++) {
    vow_array_push(values, vow_undefined()); /* cannot fail: capacity is n */
    vow_promise *next = input_promise(loop, in, i);
    element *el = next ? vow__pool_alloc(&loop->pool, sizeof *el) : NULL;
    if (!el) {
      vow__promise_unref(next);
      release_inputs(in, i + 1, n);
      vow_promise_reject(result, vow_error_nomem());
      break;
    }
    *el = (element){g, (uint32_t)i};
    g->remaining++;
    g->elements++;
    int err = vow__promise_then(next, on_ok, on_err, el, element_free, NULL);
    vow__promise_unref(next);
    if (err) { /* no reaction: element_free has run, and this input never counts down */
      g->remaining--;
      release_inputs(in, i + 1, n);
      vow_promise_reject(result, vow_error_nomem());
      break;
    }
  }
  gather_step(g, reject_when_done); /* the spec's final decrement */
  if (--g->elements == 0) gather_release(g);
  return result;
}

/* race needs no gathering: every input settles the result through its
 * resolving functions, and only the first call counts. */
static vow_value race_fulfilled(vow_loop *loop, vow_value v, void *result) {
  (void)loop;
  vow_promise_resolve(result, vow__ref(v));
  return vow_undefined();
}
static vow_value race_rejected(vow_loop *loop, vow_value reason, void *result) {
  (void)loop;
  vow_promise_reject(result, vow__ref(reason));
  return vow_undefined();
}
static void result_unref(void *p) { vow__promise_unref(p); }

static vow_promise *race(vow_loop *loop, inputs in, size_t n) {
  if (!in.items && !in.ps && n) return NULL; /* an array may be NULL only when empty */
  vow_promise *result = vow_promise_new(loop);
  if (!result) {
    release_inputs(in, 0, n);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    vow_promise *next = input_promise(loop, in, i);
    if (!next) {
      release_inputs(in, i + 1, n);
      vow_promise_reject(result, vow_error_nomem());
      break;
    }
    int err = vow__promise_then(next, race_fulfilled, race_rejected, vow__promise_ref(result),
                                result_unref, NULL);
    vow__promise_unref(next);
    if (err) { /* no reaction: this input can never settle the race */
      release_inputs(in, i + 1, n);
      vow_promise_reject(result, vow_error_nomem());
      break;
    }
  }
  return result;
}

#define VALUES(items) ((inputs){(items), NULL})
#define PROMISES(ps) ((inputs){NULL, (ps)})

vow_promise *vow_all(vow_loop *loop, vow_value *items, size_t n) {
  return combine(loop, VALUES(items), n, all_fulfilled, reject_result, 0);
}
vow_promise *vow_all_settled(vow_loop *loop, vow_value *items, size_t n) {
  return combine(loop, VALUES(items), n, settled_fulfilled, settled_rejected, 0);
}
vow_promise *vow_any(vow_loop *loop, vow_value *items, size_t n) {
  return combine(loop, VALUES(items), n, resolve_result, any_rejected, 1);
}
vow_promise *vow_race(vow_loop *loop, vow_value *items, size_t n) {
  return race(loop, VALUES(items), n);
}

vow_promise *vow_all_promises(vow_loop *loop, vow_promise *const *ps, size_t n) {
  return combine(loop, PROMISES(ps), n, all_fulfilled, reject_result, 0);
}
vow_promise *vow_all_settled_promises(vow_loop *loop, vow_promise *const *ps, size_t n) {
  return combine(loop, PROMISES(ps), n, settled_fulfilled, settled_rejected, 0);
}
vow_promise *vow_any_promises(vow_loop *loop, vow_promise *const *ps, size_t n) {
  return combine(loop, PROMISES(ps), n, resolve_result, any_rejected, 1);
}
vow_promise *vow_race_promises(vow_loop *loop, vow_promise *const *ps, size_t n) {
  return race(loop, PROMISES(ps), n);
}
