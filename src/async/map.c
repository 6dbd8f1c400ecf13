/*
 * map.c — a concurrency-limited map (the contract of npm's p-map).
 *
 * At most `limit` calls are in flight; each settlement starts the next item.
 * Results land in their input slot, so the output keeps input order whatever
 * the completion order. In fail-fast mode the first rejection rejects the
 * map, stops new starts, and aborts the shared signal every call was given.
 */
#include <stdlib.h>

#include "core/alloc.h"
#include "promise/promise.h"

typedef struct map_state {
  int refs;               /* element records alive, plus one while starting */
  vow_loop *loop;
  vow_value *items;
  size_t n;
  size_t next;            /* the next item to start */
  size_t in_flight;
  size_t finished;
  size_t limit;
  int settled_mode;
  int failed;
  vow_value results;      /* ARRAY of n slots */
  vow_promise *result;
  vow_abort_signal *signal;
  vow_map_fn fn;
  void *ctx;
} map_state;

typedef struct map_element {
  map_state *st;
  size_t index;
} map_element;

static void map_release(map_state *st) {
  if (--st->refs > 0) return;
  for (size_t i = 0; i < st->n; i++) vow_unref(st->items[i]);
  vow__free(st->items);
  vow_unref(st->results);
  vow_promise_unref(st->result);
  vow_abort_signal_unref(st->signal);
  vow__free(st);
}

static void element_free(void *e) {
  map_element *el = e;
  map_state *st = el->st;
  vow__free(el);
  map_release(st);
}

static void store(map_state *st, size_t index, vow_value v) {
  vow__array *a = (vow__array *)st->results.as.obj;
  vow_unref(a->items[index]);
  a->items[index] = v;
}

static void start_more(map_state *st);

static void finish_one(map_state *st) {
  st->in_flight--;
  st->finished++;
  start_more(st);
}

static vow_value on_fulfilled(vow_loop *loop, vow_value v, void *e) {
  (void)loop;
  map_element *el = e;
  store(el->st, el->index, el->st->settled_mode ? vow__settled_new(1, vow_ref(v)) : vow_ref(v));
  finish_one(el->st);
  return vow_undefined();
}

static vow_value on_rejected(vow_loop *loop, vow_value reason, void *e) {
  (void)loop;
  map_element *el = e;
  map_state *st = el->st;
  if (st->settled_mode) {
    store(st, el->index, vow__settled_new(0, vow_ref(reason)));
  } else if (!st->failed) {
    st->failed = 1;
    vow_promise_reject(st->result, vow_ref(reason));
    vow_abort(st->signal, vow_error(VOW_EABORTED, "map abandoned after a failure"));
  }
  finish_one(st);
  return vow_undefined();
}

/* Starts items while there is room; settles the map when all are done. */
static void start_more(map_state *st) {
  while (!st->failed && st->next < st->n && (st->limit == 0 || st->in_flight < st->limit)) {
    size_t i = st->next++;
    vow_promise *p = st->fn(st->loop, st->items[i], i, st->signal, st->ctx);
    if (!p) p = vow_rejected(st->loop, vow_error_nomem());
    map_element *el = p ? vow__malloc(sizeof *el) : NULL;
    if (!el) {
      vow_promise_unref(p);
      st->failed = 1;
      vow_promise_reject(st->result, vow_error_nomem());
      return;
    }
    *el = (map_element){st, i};
    st->refs++;
    int err = vow__promise_then(p, on_fulfilled, on_rejected, el, element_free, NULL);
    vow_promise_unref(p);
    if (err) { /* no reaction (element_free has run): this item would never finish */
      st->failed = 1;
      vow_promise_reject(st->result, vow_error_nomem());
      vow_abort(st->signal, vow_error_nomem()); /* as after a rejection: stop the rest */
      return;
    }
    st->in_flight++;
  }
  if (!st->failed && st->finished == st->n) vow_promise_resolve(st->result, vow_ref(st->results));
}

vow_promise *vow_map(vow_loop *loop, vow_value *items, size_t n, vow_map_fn fn, void *ctx,
                     const vow_map_options *options) {
  vow_promise *result = fn ? vow_promise_new(loop) : NULL;
  map_state *st = result ? vow__calloc(1, sizeof *st) : NULL;
  vow_value *copy = st ? vow__malloc((n ? n : 1) * sizeof *copy) : NULL;
  vow_abort_signal *signal = copy ? vow_abort_signal_new(loop) : NULL;
  vow_value results = signal ? vow_array(n) : vow_undefined();
  if (results.kind != VOW_ARRAY) {
    vow_abort_signal_unref(signal);
    vow__free(copy);
    vow__free(st);
    vow_promise_unref(result);
    for (size_t i = 0; i < n; i++) vow_unref(items[i]);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    copy[i] = items[i];
    vow_array_push(results, vow_undefined());
  }
  *st = (map_state){.refs = 1, .loop = loop, .items = copy, .n = n, .results = results,
                    .result = vow_promise_ref(result), .signal = signal, .fn = fn, .ctx = ctx,
                    .limit = options ? options->concurrency : 0,
                    .settled_mode = options ? options->settled : 0};
  start_more(st);
  map_release(st);
  return result;
}
