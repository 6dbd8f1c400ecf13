/*
 * race_abort.c — a race that aborts its losers.
 *
 * Promise.race settles with the first input to settle and leaves the others
 * running. vow_race_abort pairs every input with the AbortSignal that stops
 * it: the first settlement wins, and every other input's signal is aborted
 * with VOW_EABORTED "lost the race". It lives here, above the promise layer,
 * because it is the one combinator that knows cancellation; the plain four
 * stay in promise/combinators.c.
 *
 * The race record lives while any input's reaction does (plus the building
 * call itself): refs counts them, and the last release frees it.
 */
#include <stdlib.h>

#include "core/alloc.h"
#include "promise/promise.h"

/* Drops the references to the inputs from `from` on (the building call's
 * error paths: what was not yet handed to a reaction). */
static void release_values(vow_value *items, size_t from, size_t n) {
  for (size_t i = from; i < n; i++) vow__unref(items[i]);
}

typedef struct abort_race {
  int refs;               /* one per input's reaction */
  int settled;
  vow_promise *result;
  size_t n;
  vow_abort_signal **signals; /* references; NULL where an input has none */
} abort_race;

typedef struct abort_entry {
  abort_race *race;
  size_t index;
} abort_entry;

static void abort_race_release(abort_race *r) {
  if (--r->refs > 0) return;
  for (size_t i = 0; i < r->n; i++) vow_abort_signal_unref(r->signals[i]);
  vow__free(r->signals);
  vow__promise_unref(r->result);
  vow__free(r);
}

static void abort_entry_free(void *e) {
  abort_race *r = ((abort_entry *)e)->race;
  vow__free(e);
  abort_race_release(r);
}

/* The first settlement wins and aborts everyone else's signal. */
static void abort_race_settle(abort_entry *e, vow_value outcome, int rejected) {
  abort_race *r = e->race;
  if (r->settled) return;
  r->settled = 1;
  if (rejected) vow_promise_reject(r->result, vow__ref(outcome));
  else vow_promise_resolve(r->result, vow__ref(outcome));
  for (size_t i = 0; i < r->n; i++)
    if (i != e->index && r->signals[i])
      vow_abort(r->signals[i], vow_error(VOW_EABORTED, "lost the race"));
}

static vow_value abort_race_fulfilled(vow_loop *loop, vow_value v, void *e) {
  (void)loop;
  abort_race_settle(e, v, 0);
  return vow_undefined();
}
static vow_value abort_race_rejected(vow_loop *loop, vow_value reason, void *e) {
  (void)loop;
  abort_race_settle(e, reason, 1);
  return vow_undefined();
}

vow_promise *vow_race_abort(vow_loop *loop, vow_value *items, vow_abort_signal *const *signals,
                            size_t n) {
  if (!items && n) return NULL;
  vow_promise *result = vow_promise_new(loop);
  abort_race *r = result ? vow__calloc(1, sizeof *r) : NULL;
  vow_abort_signal **refs = r ? vow__calloc(n ? n : 1, sizeof *refs) : NULL;
  if (!refs) {
    vow__free(r);
    vow__promise_unref(result);
    release_values(items, 0, n);
    return NULL;
  }
  *r = (abort_race){1, 0, vow__promise_ref(result), n, refs};
  for (size_t i = 0; i < n; i++) refs[i] = signals ? vow_abort_signal_ref(signals[i]) : NULL;
  for (size_t i = 0; i < n; i++) {
    vow_promise *next = vow_resolved(loop, items[i]);
    abort_entry *e = next ? vow__malloc(sizeof *e) : NULL;
    if (!e) {
      vow__promise_unref(next);
      release_values(items, i + 1, n);
      vow_promise_reject(result, vow_error_nomem());
      break;
    }
    *e = (abort_entry){r, i};
    r->refs++;
    int err = vow__promise_then(next, abort_race_fulfilled, abort_race_rejected, e,
                                abort_entry_free, NULL);
    vow__promise_unref(next);
    if (err) { /* no reaction (abort_entry_free has run): this input can never settle it */
      release_values(items, i + 1, n);
      vow_promise_reject(result, vow_error_nomem());
      break;
    }
  }
  abort_race_release(r);
  return result;
}
