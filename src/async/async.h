/*
 * async.h — frames: what async functions and async generators share
 * (internal). A frame is a coroutine plus the state await needs.
 */
#ifndef VOW_ASYNC_H
#define VOW_ASYNC_H

#include "coro/coro.h"
#include "promise/promise.h"

enum { FRAME_ASYNC = 1, FRAME_GENERATOR = 2 };

typedef struct vow__frame vow__frame;

struct vow__frame {
  int kind;              /* FRAME_ASYNC or FRAME_GENERATOR */
  vow_loop *loop;
  vow_coro *co;
  vow__frame *prev;      /* in the loop's list of live frames */
  vow__frame *next;
  vow_promise *awaiting; /* the pending promise it is suspended on (a reference), or NULL */
  vow_value outcome;     /* the awaited value or reason, handed to vow_await */
  int rejected;          /* ... and which of the two it is */
  int closing;           /* resumed by the loop's teardown: awaits fail with VOW_ECLOSING */
  int in_job;            /* running because a microtask job resumed it (see vow_await) */
  int taking;            /* runs its own resumption job (see run_ahead): take, do not resume */
  int copy_stack;        /* its coroutine copies its stack (vow__coro_reserve before suspending) */
  const char *name;      /* for traces and overflow reports (borrowed) */
  uint64_t span;         /* its trace span, 0 when not tracing */
  struct vow_scope *scope; /* its innermost cancel scope (scope.c), or NULL */
  vow__context *context; /* its async context while suspended (a reference; core/context.h) */
  uint64_t started;      /* the loop's time when it started (for vow_loop_dump) */
  struct vow__backtrace *capture; /* set by a dump that resumed it for its backtrace, or NULL */
};

/* dump.c: a backtrace a suspended frame takes of itself, into the dump's
 * buffer (vow_loop_dump_ex with VOW_DUMP_BACKTRACE). */
typedef struct vow__backtrace {
  void **addrs;
  int cap;
  int n; /* taken: how many of addrs are set */
} vow__backtrace;
void vow__frame_take_backtrace(vow__frame *f) __attribute__((cold, noinline));

/* Every suspension of a frame (await, yield, a scope's await) goes through
 * here. A resumption with f->capture set is not one: a dump wants f's
 * backtrace, which only f can take; it takes it and suspends again, with
 * nothing else touched (no promise, no job, no outcome). The one branch is on
 * the way back from the yield, predicted not taken. */
static inline void vow__frame_suspend(vow__frame *f) {
  vow__coro_yield(f->co);
  if (__builtin_expect(f->capture != NULL, 0)) vow__frame_take_backtrace(f);
}

/* Per-loop state of the async layer (extension slot VOW__EXT_ASYNC). */
typedef struct vow__async_state {
  vow_stack_pool *stacks;
  vow__frame *frames;    /* live frames: running, suspended or never resumed */
  void *dump_on;         /* VOW_DUMP_ON's state (dump.c), or NULL */
} vow__async_state;

/* dump.c. A describer says what a pending promise stands for ("fetch URL"):
 * returns 1 and writes buf when it knows p. Registered once, process-wide,
 * by the layers above (fetch.c). */
typedef int (*vow__describe_fn)(vow_loop *loop, vow_promise *p, char *buf, size_t cap);
void vow__dump_add_describer(vow__describe_fn fn);
/* VOW_DUMP_ON for a loop: started with the async layer's state, stopped
 * (after the dump at exit, if asked) when it is freed. */
void *vow__dump_on_start(vow_loop *loop);
/* VOW_DUMP_ON=exit: what was left, told as vow_loop_free begins (before the
 * loop drops its queued tasks and timers), then the state's end. */
void vow__dump_at_exit(vow_loop *loop, void *state);
void vow__dump_on_stop(vow_loop *loop, void *state);

/* Creates f's coroutine on the loop's stack pool (a copy-stack one if
 * copy_stack, see vow_async_options) and links f as live.
 * Returns 0 or VOW_ENOMEM. */
int vow__frame_start(vow__frame *f, vow_loop *loop, int kind, vow_coro_fn body, size_t stack_size,
                     int copy_stack, const char *name);
/* Unlinks f and releases its coroutine (f itself is the caller's). */
void vow__frame_end(vow__frame *f);
/* The frame running on this thread, or NULL. */
vow__frame *vow__frame_current(void);
/* Resumes f; returns non-zero when its body has finished. */
int vow__frame_resume(vow__frame *f);

/* Resumes a suspended frame from a job (or a listener) with an outcome
 * (taken): what a reaction to its awaited promise does. */
void vow__frame_wake(vow__frame *f, vow_value outcome, int rejected);

/* scope.c: the await of a frame inside a cancel scope. Returns 1 when the
 * scope handled the await (p taken, *out and *rc set): the scope was cancelled
 * already, or p is pending and the frame waited for it or for the scope.
 * Returns 0 for a settled p in a live scope: the plain await goes on. */
int vow__scope_await(vow__frame *f, vow_promise *p, vow_value *out, int *rc);
/* The frame ends with scopes still open (its body never closed them, or it
 * is dropped at the loop's teardown): they are closed. */
void vow__scope_abandon(vow__frame *f);

/* Resumes a suspended frame for the last time, at the loop's teardown. */
void vow__frame_close(vow__frame *f);

/* asyncgen.c: releases a generator frame that was never finished (loop
 * teardown), and takes over after a generator frame resumed from an await
 * yielded or finished. */
void vow__asyncgen_abandon(vow__frame *f);
void vow__asyncgen_resumed(vow__frame *f, int finished);

#endif
