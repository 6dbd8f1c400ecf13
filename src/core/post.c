/*
 * post.c — running tasks on a loop from other threads.
 *
 * The one mechanism for crossing threads: a mutex-protected queue of tasks
 * and a uv_async_t that wakes the loop. The loop takes the whole queue under
 * the lock and runs it outside, each task as a macrotask. The async handle is
 * unreferenced unless the loop is held, so posts alone never keep a run alive.
 */
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/loop.h"

static void on_wakeup(uv_async_t *handle);

int vow__post_init(vow_loop *loop) {
  int err = uv_mutex_init(&loop->post_lock);
  if (err) return err;
  err = uv_async_init(&loop->uv, &loop->post_wakeup, on_wakeup);
  if (err) {
    uv_mutex_destroy(&loop->post_lock);
    return err;
  }
  uv_unref((uv_handle_t *)&loop->post_wakeup);
  return 0;
}

/* Takes the queue; the caller owns the returned array. */
static vow__task *take_posts(vow_loop *loop, size_t *n) {
  uv_mutex_lock(&loop->post_lock);
  vow__task *tasks = loop->posts;
  *n = loop->posts_len;
  loop->posts = NULL;
  loop->posts_len = loop->posts_cap = 0;
  uv_mutex_unlock(&loop->post_lock);
  return tasks;
}

/* The run stopped before tasks[from]: tasks[from..n) go back to the front
 * of the queue, in their order and before anything posted meanwhile, for the
 * next run. Takes tasks. Out of memory for the merge, they are released as
 * at vow_loop_free (re-posting them one by one could lose some, or reorder). */
static void put_back(vow_loop *loop, vow__task *tasks, size_t from, size_t n) {
  size_t rest = n - from;
  uv_mutex_lock(&loop->post_lock);
  size_t later = loop->posts_len;
  vow__task *merged = later ? vow__realloc(tasks, (rest + later) * sizeof *tasks) : tasks;
  if (merged) {
    memmove(merged, merged + from, rest * sizeof *merged);
    if (later) memcpy(merged + rest, loop->posts, later * sizeof *merged);
    vow__free(loop->posts);
    loop->posts = merged;
    loop->posts_len = rest + later;
    loop->posts_cap = later ? rest + later : n; /* tasks held at least n */
  }
  uv_mutex_unlock(&loop->post_lock);
  if (merged) {
    uv_async_send(&loop->post_wakeup); /* so that the next run takes them */
    return;
  }
  for (size_t i = from; i < n; i++) vow__loop_dispose_task(loop, tasks[i].fn, tasks[i].arg);
  vow__free(tasks);
}

static void on_wakeup(uv_async_t *handle) {
  vow_loop *loop = handle->loop->data;
  size_t n;
  vow__task *tasks = take_posts(loop, &n);
  for (size_t i = 0; i < n; i++) {
    if (loop->status) { /* the run stopped: the rest waits for the next one */
      put_back(loop, tasks, i, n);
      return;
    }
    vow__loop_enter_named(loop, "post", tasks[i].fn, tasks[i].arg);
  }
  vow__free(tasks);
}

int vow_loop_post(vow_loop *loop, vow_task_fn fn, void *arg) {
  if (!loop || !fn) return VOW_EINVAL;
  uv_mutex_lock(&loop->post_lock);
  if (loop->posts_len == loop->posts_cap) {
    size_t cap = loop->posts_cap ? loop->posts_cap * 2 : 16;
    vow__task *tasks = vow__realloc(loop->posts, cap * sizeof *tasks);
    if (!tasks) {
      uv_mutex_unlock(&loop->post_lock);
      return VOW_ENOMEM;
    }
    loop->posts = tasks;
    loop->posts_cap = cap;
  }
  loop->posts[loop->posts_len++] = (vow__task){fn, arg};
  uv_mutex_unlock(&loop->post_lock);
  return uv_async_send(&loop->post_wakeup);
}

int vow_loop_hold(vow_loop *loop) {
  if (!loop) return VOW_EINVAL;
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  if (loop->holds++ == 0) uv_ref((uv_handle_t *)&loop->post_wakeup);
  return 0;
}

int vow_loop_release(vow_loop *loop) {
  if (!loop) return VOW_EINVAL;
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  if (loop->holds == 0) return VOW_EINVAL;
  if (--loop->holds == 0) uv_unref((uv_handle_t *)&loop->post_wakeup);
  return 0;
}

void vow__post_dispose_all(vow_loop *loop) {
  size_t n;
  vow__task *tasks = take_posts(loop, &n);
  for (size_t i = 0; i < n; i++) vow__loop_dispose_task(loop, tasks[i].fn, tasks[i].arg);
  vow__free(tasks);
}

void vow__post_close(vow_loop *loop) {
  uv_close((uv_handle_t *)&loop->post_wakeup, NULL);
}

void vow__post_free(vow_loop *loop) {
  vow__free(loop->posts);
  loop->posts = NULL;
  uv_mutex_destroy(&loop->post_lock);
}
