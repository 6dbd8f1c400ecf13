/*
 * 01 — Sequential vs parallel
 *
 * Awaiting one request before starting the next makes their times add up.
 * Starting both first and awaiting afterwards lets them overlap, so the total
 * is the longer of the two.
 *
 * The JavaScript this mirrors:
 *
 *   async function getSequential() {
 *     const user = await fetchUser();     // 200 ms
 *     const posts = await fetchPosts();   // 200 ms more
 *   }
 *   async function getParallel() {
 *     const userPromise = fetchUser();    // starts now
 *     const postsPromise = fetchPosts();  // starts now too
 *     const user = await userPromise;
 *     const posts = await postsPromise;   // both done after ~200 ms
 *   }
 *
 * Here the two "requests" are timers that answer after 200 ms; the fetch
 * examples of the tour do the same against a real HTTP server.
 */
#include <stdio.h>
#include <vow.h>

/* Stands in for a request: a promise fulfilled with `what` after 200 ms. */
static vow_promise *fake_fetch(vow_loop *loop, const char *what) {
  return vow_delay(loop, 200, vow_string(what));
}

static vow_value get_sequential(vow_loop *loop, void *arg) {
  (void)arg;
  vow_value user, posts;
  vow_await(fake_fetch(loop, "user"), &user);   /* wait for the first... */
  vow_await(fake_fetch(loop, "posts"), &posts); /* ...before starting the second */
  vow_unref(user);
  vow_unref(posts);
  return vow_undefined();
}

static vow_value get_parallel(vow_loop *loop, void *arg) {
  (void)arg;
  vow_promise *user_promise = fake_fetch(loop, "user");   /* starts now */
  vow_promise *posts_promise = fake_fetch(loop, "posts"); /* starts now too */
  vow_value user, posts;
  vow_await(user_promise, &user);
  vow_await(posts_promise, &posts);
  vow_unref(user);
  vow_unref(posts);
  return vow_undefined();
}

/* Runs one version to completion and reports how long it took. */
static void time_it(vow_loop *loop, const char *label, vow_async_fn version) {
  uint64_t start = vow_loop_now(loop);
  vow_promise_unref(vow_async(loop, version, NULL));
  vow_loop_run(loop);
  printf("%-10s %4llu ms\n", label, (unsigned long long)(vow_loop_now(loop) - start));
}

int main(void) {
  vow_loop *loop;
  if (vow_loop_new(&loop, NULL) != 0) return 1;
  time_it(loop, "sequential", get_sequential); /* about 400 ms */
  time_it(loop, "parallel", get_parallel);     /* about 200 ms */
  vow_loop_free(loop);
  return 0;
}
