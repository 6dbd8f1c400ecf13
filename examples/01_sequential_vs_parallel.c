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
 * The requests are real: the example starts a small HTTP server on 127.0.0.1
 * whose /user and /posts answer after 200 ms, and fetches from it.
 */
#include <stdio.h>
#include <vow.h>

static int port;

/* The server's side: every endpoint takes 200 ms to answer. */
static vow_value slow_endpoint(vow_loop *loop, vow_request *req, void *data) {
  (void)data;
  vow_await(vow_delay(loop, 200, vow_undefined()), NULL);
  return vow_http_response(200, NULL, vow_stringf("the data of %s", vow_request_target(req)));
}

/* fetch(path), as a promise of the response. */
static vow_promise *fetch_path(vow_loop *loop, const char *path) {
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  return vow_fetch(loop, url, NULL);
}

static void get_sequential(vow_loop *loop) {
  vow_value user, posts;
  vow_await(fetch_path(loop, "/user"), &user);   /* wait for the first... */
  vow_await(fetch_path(loop, "/posts"), &posts); /* ...before starting the second */
  vow_unref(user);
  vow_unref(posts);
}

static void get_parallel(vow_loop *loop) {
  vow_promise *user_promise = fetch_path(loop, "/user");   /* starts now */
  vow_promise *posts_promise = fetch_path(loop, "/posts"); /* starts now too */
  vow_value user, posts;
  vow_await(user_promise, &user);
  vow_await(posts_promise, &posts);
  vow_unref(user);
  vow_unref(posts);
}

/* Runs one version and reports how long it took. */
static void time_it(vow_loop *loop, const char *label, void (*version)(vow_loop *)) {
  uint64_t start = vow_loop_now(loop);
  version(loop);
  printf("%-10s %4llu ms\n", label, (unsigned long long)(vow_loop_now(loop) - start));
}

static vow_value main_async(vow_loop *loop, void *arg) {
  (void)arg;
  vow_server *server;
  if (vow_server_listen(loop, NULL, slow_endpoint, NULL, &server) != 0)
    return vow_throw(vow_string("cannot start the server"));
  port = vow_server_port(server);
  time_it(loop, "sequential", get_sequential); /* about 400 ms */
  time_it(loop, "parallel", get_parallel);     /* about 200 ms */
  vow_await(vow_server_close(server), NULL);
  return vow_undefined();
}

int main(void) {
  return vow_run(main_async, NULL, NULL, NULL) == 0 ? 0 : 1;
}
