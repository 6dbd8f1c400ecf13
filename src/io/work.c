/*
 * work.c — CPU work on libuv's thread pool, settled as a promise on the loop.
 *
 * vow_work wraps uv_queue_work: the function runs on a pool thread, and the
 * completion callback (on the loop's thread) settles the promise through
 * vow__loop_enter, like any other macrotask. vow_loop_free waits for work in
 * flight (it cannot be stopped midway) and drops its results.
 */
#include <stdlib.h>

#include "core/alloc.h"
#include "promise/promise.h"

typedef struct work {
  uv_work_t req;
  vow_loop *loop;
  vow_work_fn fn;
  void *arg;
  vow_value result;    /* written on the pool thread, read after it joins */
  vow_promise *promise;
} work;

static void work_run(uv_work_t *req) {
  work *w = req->data;
  w->result = w->fn(w->arg);
}

static void work_settle(vow_loop *loop, void *arg) {
  (void)loop;
  work *w = arg;
  vow_value r = w->result;
  if (r.flags & VOW__THROWN) vow_promise_reject(w->promise, r);
  else vow_promise_resolve(w->promise, r);
}

static void work_done(uv_work_t *req, int status) {
  work *w = req->data;
  if (status == UV_ECANCELED) w->result = vow_throw(vow_error(VOW_EABORTED, "work cancelled"));
  if (w->loop->closing) vow_unref(w->result); /* the loop is going: nobody listens */
  else vow__loop_enter_named(w->loop, "work", work_settle, w);
  vow_promise_unref(w->promise);
  vow__free(w);
}

vow_promise *vow_work(vow_loop *loop, vow_work_fn fn, void *arg) {
  if (!fn) return NULL;
  vow_promise *p = vow_promise_new(loop);
  work *w = p ? vow__calloc(1, sizeof *w) : NULL;
  if (!w) {
    vow_promise_unref(p);
    return NULL;
  }
  *w = (work){.loop = loop, .fn = fn, .arg = arg, .promise = vow_promise_ref(p)};
  w->req.data = w;
  int err = uv_queue_work(&loop->uv, &w->req, work_run, work_done);
  if (err) {
    vow_promise_unref(w->promise);
    vow__free(w);
    vow_promise_reject(p, vow_error(err, vow_strerror(err)));
  }
  return p;
}
