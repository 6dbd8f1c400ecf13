/*
 * promise.h — promises' insides, shared with combinators.c, rejection.c and
 * async.c (internal).
 */
#ifndef VOW_PROMISE_H
#define VOW_PROMISE_H

#include "core/loop.h"
#include "promise/value.h"

/* State and flags live in the object header's spare bytes, so a pending
 * promise is 32 bytes: header 8, result-or-reactions 16, loop 8. */
#define P_STATE(p) ((p)->h.bits[0])
#define P_FLAGS(p) ((p)->h.bits[1])
/* What made it, for vow_loop_dump (async/dump.c): 0, or P_TAG_DELAY. */
#define P_TAG(p) ((p)->h.bits[2])
enum { P_TAG_DELAY = 1 };

enum {
  P_ALREADY_RESOLVED = 1, /* its resolving functions have been used */
  P_HANDLED = 2,          /* [[PromiseIsHandled]]: a reaction was ever attached */
  P_TRACKED = 4,          /* in the unhandled-rejection list, not yet handled */
  P_SELF_REASON = 8,      /* rejected with itself: the result does not own its reference */
  P_LISTED = 16           /* in the loop's table of pending promises (pending.c) */
};

typedef struct vow__reaction vow__reaction;

struct vow_promise {
  vow_object h;
  union {
    vow_value result;         /* settled */
    vow__reaction *reactions; /* pending: newest first (reversed when triggered) */
  } u;
  vow_loop *loop;
};

/* A PromiseReaction record, which doubles as its PromiseReactionJob: once
 * its promise settles, source holds a reference to that promise (whose
 * result is the outcome) and the record is queued. 48 bytes; a reaction with
 * a ctx_free, or made while an async context was current (core/context.h),
 * is a vow__reaction_full (the record's size class is then 64): the plain
 * record does not grow for contexts, which cost only when used. */
struct vow__reaction {
  vow__reaction *next;
  uintptr_t derived;           /* vow_promise * (owned; 0 for internal reactions)
                                  | REACTION_* flags in the low bits */
  vow_handler on_ok;
  vow_handler on_err;
  void *ctx;
  vow_promise *source;         /* triggered: the settled promise (a reference) */
};

typedef struct vow__reaction_full {
  vow__reaction r;
  void (*ctx_free)(void *ctx);  /* may be NULL */
  vow__context *context;        /* the handler runs in it (a reference), or NULL */
} vow__reaction_full;

enum {
  REACTION_TAKES = 1,    /* the handlers take their argument's reference */
  REACTION_FULL = 2,     /* a vow__reaction_full: a ctx_free or a context */
  REACTION_FLAGS = 3     /* promises are 16-byte aligned: the low bits are free */
};

/* Per-loop state of the promise layer (extension slot VOW__EXT_PROMISE). */
typedef struct vow__promise_state {
  /* Unhandled-rejection candidates, in rejection order (owned references). */
  vow_promise **rejected;
  size_t rejected_len;
  size_t rejected_cap;
  vow_rejection_fn hook;
  void *hook_data;
  /* Releasing a promise can release a chain of others: the reactions still
   * to release wait here, so teardown is iterative, never deeply recursive. */
  vow__reaction *graveyard;
  int burying;
  /* Promises locked in to another promise (a pending adoption). Adoption can
   * make cycles of references (a follows b, b follows a) that no count can
   * free; the loop's teardown breaks them through this registry. */
  struct vow__adoption **adoptions;
  size_t adoptions_len;
  size_t adoptions_cap;
  /* The table of pending promises (pending.c), kept only for VOW_DUMP_ON=exit;
   * NULL otherwise, which is all promise creation tests. */
  struct vow__pending *pending;
} vow__promise_state;

/* pending.c. Whether VOW_DUMP_ON asks for the report at the loop's end
 * ("exit"); the table for a new state (NULL when not asked, or no memory). */
typedef struct vow__pending vow__pending;
vow__pending *vow__pending_new(void);
/* Lists p (pending, just made); when the table cannot grow, counts it as
 * missed instead. */
void vow__pending_add(vow__pending *t, vow_promise *p) __attribute__((cold, noinline));
/* p (P_LISTED) settles or is destroyed: out of the table. */
void vow__pending_remove(vow_promise *p) __attribute__((cold, noinline));
/* Calls fn for every listed pending promise of the loop, in no particular
 * order; returns how many, and *missed (may be NULL) takes how many more
 * could not be listed. */
size_t vow__pending_each(vow_loop *loop, void (*fn)(vow_promise *p, void *ctx), void *ctx,
                         size_t *missed);
/* At the promise layer's end: frees the table (its promises are unlisted). */
void vow__pending_free(vow_loop *loop, vow__pending *t);

vow__promise_state *vow__promise_state_get(vow_loop *loop);

/* vow_promise_ref and vow_promise_unref, inline for vow's own hot paths. */
static inline vow_promise *vow__promise_ref(vow_promise *p) {
  if (p) p->h.refs++;
  return p;
}
static inline void vow__promise_unref(vow_promise *p) {
  if (p && --p->h.refs == 0) vow__promise_destroy(p);
}

/* PerformPromiseThen: attaches a reaction; derived (a reference, taken) may
 * be NULL. Returns 0 or VOW_ENOMEM (then ctx_free has run and derived is
 * released). */
int vow__promise_then(vow_promise *p, vow_handler on_ok, vow_handler on_err, void *ctx,
                      void (*ctx_free)(void *), vow_promise *derived);

/* The reaction of an await: like vow__promise_then with no derived promise
 * and no ctx_free, except that the handlers take their argument's reference
 * (the job keeps none: what the awaiting code drops is freed at once). */
int vow__promise_await(vow_promise *p, vow_handler on_ok, vow_handler on_err, void *ctx);
/* 1 if the microtask job (fn, arg) is the reaction job of a vow__promise_await
 * made with this ctx: the job that will call its handler. */
int vow__promise_job_is_await(vow_task_fn fn, void *arg, const void *ctx);

/* A fresh pending promise (not NULL-checked for thread: internal callers). */
vow_promise *vow__promise_alloc(vow_loop *loop);

/* rejection.c: HostPromiseRejectionTracker. */
void vow__rejection_track(vow_promise *p);   /* rejected with no handler */
void vow__rejection_handled(vow_promise *p); /* a handler was attached later */
void vow__rejection_checkpoint(vow_loop *loop, void *state);

#endif
