/*
 * loop.c — the event loop: libuv's loop, JavaScript's ordering.
 *
 * A macrotask is anything libuv calls back: a timer, an immediate, an I/O
 * completion. Each one enters user code through vow__loop_enter, which runs it
 * and then performs a microtask checkpoint, exactly where Node runs
 * processTicksAndRejections. That single funnel is what makes "microtasks
 * before the next macrotask" true for every kind of callback.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/context.h"
#include "core/loop.h"

_Thread_local char vow__thread_mark;

/* A write to a socket whose peer has gone raises SIGPIPE, and libuv writes
 * without MSG_NOSIGNAL: under the default disposition any client that resets
 * mid-response would kill the program. Like Node at startup, vow turns the
 * default into "ignore" (the write then fails with EPIPE, which vow handles);
 * a handler the program installed, or its own SIG_IGN, is left alone. */
static void sigpipe_ignore_default(void) {
  struct sigaction now;
  if (sigaction(SIGPIPE, NULL, &now) != 0 || now.sa_handler != SIG_DFL ||
      (now.sa_flags & SA_SIGINFO))
    return;
  struct sigaction ignore = {.sa_handler = SIG_IGN};
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGPIPE, &ignore, NULL);
}

int vow_loop_new(vow_loop **out, const vow_loop_options *options) {
  if (!out) return VOW_EINVAL;
  *out = NULL;
  vow_loop *loop = vow__calloc(1, sizeof *loop);
  if (!loop) return VOW_ENOMEM;
  sigpipe_ignore_default();
  int err = uv_loop_init(&loop->uv);
  if (err) {
    vow__free(loop);
    return err;
  }
  loop->uv.data = loop;
  loop->owner = &vow__thread_mark;
  if (options) loop->options = *options;
  loop->virtual_now = uv_now(&loop->uv);
  vow__pool_init(&loop->pool, !loop->options.no_huge_pages);
  err = vow__timers_init(loop);
  if (!err) err = vow__post_init(loop);
  if (err) {
    uv_run(&loop->uv, UV_RUN_NOWAIT); /* closes what init opened */
    uv_loop_close(&loop->uv);
    vow__free(loop);
    return err;
  }
  vow__trace_from_env(loop);
  *out = loop;
  return 0;
}

void vow__loop_checkpoint(vow_loop *loop) {
  if (loop->in_checkpoint) return; /* the outer checkpoint will drain */
  if (vow__microtask_empty(loop) && !loop->hooks_due) return;
  loop->in_checkpoint = 1;
  do {
    if (loop->trace && !vow__microtask_empty(loop)) {
      uint64_t start = vow__trace_clock();
      vow__microtask_drain(loop);
      vow__trace_complete(loop, "loop", "microtasks", start);
    } else {
      vow__microtask_drain(loop);
    }
    if (loop->hooks_due) {
      loop->hooks_due = 0;
      for (int i = 0; i < VOW__EXT_COUNT; i++) {
        if (loop->ext_checkpoint[i]) loop->ext_checkpoint[i](loop, loop->ext[i]);
      }
    }
  } while (loop->hooks_due || !vow__microtask_empty(loop));
  loop->in_checkpoint = 0;
}

void vow__loop_enter_named(vow_loop *loop, const char *what, vow_task_fn fn, void *arg) {
  /* A binding made by the callback outside any async function lasts for the
   * callback only (core/context.h): the context current before comes back. */
  vow__context *top = vow__context_capture(loop);
  if (loop->trace) {
    uint64_t start = vow__trace_clock();
    fn(loop, arg);
    vow__trace_complete(loop, "macrotask", what, start);
  } else {
    fn(loop, arg);
  }
  if (__builtin_expect(loop->context != top, 0)) vow__context_release(vow__context_swap(loop, top));
  else vow__context_release(top); /* the loop holds it still */
  vow__loop_checkpoint(loop);
}

void vow_loop_enter(vow_loop *loop, vow_task_fn fn, void *arg) {
  if (!loop || !fn || !vow__loop_on_owner(loop)) return;
  vow__loop_enter_named(loop, "callback", fn, arg);
}

void vow__loop_fail(vow_loop *loop, int err) {
  if (loop->status == 0) loop->status = err;
  /* Outside uv_run the flag would linger and cut short the next uv_run. */
  if (loop->in_uv_run) uv_stop(&loop->uv);
}

int vow_loop_run(vow_loop *loop) {
  if (!loop) return VOW_EINVAL;
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  if (loop->running || loop->in_checkpoint) return VOW_EBUSY;
  if (loop->closing) return VOW_ECLOSING;
  loop->running = 1;
  /* status is not cleared here: a failure recorded since the last run
   * returned (the caller's own code ran out of memory queueing a job, say)
   * stops this run at once, rather than being forgotten while the run goes on
   * without the settlement it lost. */
  if (loop->status == 0) {
    /* The caller's code so far was the first macrotask: drain what it queued. */
    vow__loop_checkpoint(loop);
  }
  if (loop->status == 0) {
    loop->in_uv_run = 1;
    uv_run(&loop->uv, UV_RUN_DEFAULT);
    loop->in_uv_run = 0;
  }
  loop->running = 0;
  int status = loop->status;
  loop->status = 0; /* reported once */
  return status;
}

int vow_loop_free(vow_loop *loop) {
  if (!loop) return 0;
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  if (loop->running || loop->in_checkpoint || loop->closing) return VOW_EBUSY;
  loop->closing = 1;
  for (int i = VOW__EXT_COUNT - 1; i >= 0; i--)
    if (loop->ext_closing[i]) loop->ext_closing[i](loop, loop->ext[i]);
  vow__trace_free(loop); /* writes the file of a trace still running */
  /* Release what queued tasks hold, then each layer's state (newest layer
   * first: async before promises), then the libuv handles, then memory. */
  vow__microtask_dispose_all(loop);
  vow__timers_dispose_all(loop);
  vow__post_dispose_all(loop);
  vow__context_release(vow__context_swap(loop, NULL)); /* the top level's */
  for (int i = VOW__EXT_COUNT - 1; i >= 0; i--) {
    if (loop->ext_free[i]) loop->ext_free[i](loop, loop->ext[i]);
    loop->ext[i] = NULL;
    /* A layer's teardown can settle promises (async functions closed with
     * VOW_ECLOSING do): release the jobs that queued while the layers below,
     * which those jobs belong to, still exist. */
    vow__microtask_dispose_all(loop);
  }
  /* Thread-pool work cannot be stopped midway: wait for it (its results are
   * dropped, since the loop is closing). */
  while (loop->uv.active_reqs.count > 0) uv_run(&loop->uv, UV_RUN_ONCE);
  vow__timers_close(loop);
  vow__post_close(loop);
  /* One turn runs the close callbacks. Handles of the user's own that are
   * still open keep uv_loop_close from succeeding; closing them is theirs. */
  uv_run(&loop->uv, UV_RUN_NOWAIT);
  int err = uv_loop_close(&loop->uv);
  vow__timers_free(loop);
  vow__post_free(loop);
  vow__microtask_free(&loop->micro);
  vow__pool_destroy(&loop->pool);
  /* UV_EBUSY: a handle of the caller's is still open and points at this
   * memory, so the loop structure is left allocated rather than freed under it. */
  if (err == 0) vow__free(loop);
  return err;
}

struct uv_loop_s *vow_loop_uv(vow_loop *loop) {
  return loop ? &loop->uv : NULL;
}

uint64_t vow_loop_now(const vow_loop *loop) {
  return vow__loop_now(loop);
}

int vow_loop_alive(const vow_loop *loop) {
  return loop && loop->running;
}

void vow__loop_set_ext(vow_loop *loop, int slot, void *state, vow__ext_free_fn free_fn,
                       vow__checkpoint_fn checkpoint_fn) {
  loop->ext[slot] = state;
  loop->ext_free[slot] = free_fn;
  loop->ext_checkpoint[slot] = checkpoint_fn;
}

int vow__loop_add_disposer(vow_loop *loop, vow_task_fn fn, vow__dispose_fn dispose) {
  for (int i = 0; i < loop->ndisposers; i++) {
    if (loop->disposers[i].fn == fn) {
      loop->disposers[i].dispose = dispose;
      return 0;
    }
  }
  if (loop->ndisposers == VOW__MAX_DISPOSERS) return VOW_ENOMEM;
  loop->disposers[loop->ndisposers].fn = fn;
  loop->disposers[loop->ndisposers].dispose = dispose;
  loop->ndisposers++;
  return 0;
}

void vow__loop_dispose_task(vow_loop *loop, vow_task_fn fn, void *arg) {
  for (int i = 0; i < loop->ndisposers; i++) {
    if (loop->disposers[i].fn == fn) {
      loop->disposers[i].dispose(loop, arg);
      return;
    }
  }
}
