/*
 * 21 — Tagging every log line with its request's id, through async context
 *
 * A server handles requests concurrently; each log line should say which
 * request it is about — including lines written deep in helpers that were
 * never handed the request. Async context carries the id: the handler binds
 * it once, and every async function, reaction and timer started from there
 * sees it, while the other requests, interleaved on the same loop, see
 * their own.
 *
 * The JavaScript this mirrors (Node 20):
 *
 *   const requestId = new AsyncLocalStorage();
 *   const log = (msg) => console.log(`[req-${requestId.getStore()}] ${msg}`);
 *   async function queryDb(what) {            // knows nothing of requests
 *     await setTimeout(5);
 *     log(`db: query for ${what}`);
 *     return requestId.getStore();
 *   }
 *   let next = 0;
 *   const server = http.createServer((req, res) => {
 *     const id = ++next;
 *     requestId.run(id, async () => {
 *       log(`start: ${req.method} ${req.url}`);
 *       const seenBy = await queryDb(req.url);
 *       log(`done: ${req.method} ${req.url}`);
 *       res.end(seenBy === id ? 'ok' : 'mixed up');
 *     });
 *   }).listen(0);
 *   const answers = await Promise.all(['/a', '/b', '/c'].map(p =>
 *     fetch(`http://127.0.0.1:${port}${p}`).then(r => r.text())));
 *   console.log(`client: ${answers.length} answers, ` +
 *               (answers.every(a => a === 'ok') ? 'each from its own request' : 'mixed up'));
 *   server.close(() => console.log('server closed'));
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vow.h>

static const char request_id; /* the context's key: any address will do */

/* Every line says whose it is: the id comes from the context, not from
 * the caller. */
static void log_line(vow_loop *loop, const char *what, const char *target) {
  printf("[req-%lld] %s %s\n", (long long)vow_as_int(vow_context_get(loop, &request_id)), what, target);
}

/* ---- the server -------------------------------------------------------------------- */

/* A helper that is never told which request it works for. */
static vow_value query_db(vow_loop *loop, void *what) {
  vow_await(vow_delay(loop, 5, vow_undefined()), NULL);
  log_line(loop, "db: query for", what);
  return vow_ref(vow_context_get(loop, &request_id));
}

typedef struct handling {
  vow_request *req;
  int64_t id;
} handling;

static vow_value handle(vow_loop *loop, void *arg) {
  handling *h = arg;
  char target[64];
  snprintf(target, sizeof target, "%s", vow_request_target(h->req));
  log_line(loop, "start: GET", target);
  vow_value seen_by;
  vow_await(vow_async(loop, query_db, target), &seen_by);
  log_line(loop, "done: GET", target);
  int same = vow_as_int(seen_by) == h->id;
  vow_unref(seen_by);
  return vow_http_response(200, NULL, vow_string(same ? "ok" : "mixed up"));
}

static void handling_free(void *h) {
  free(h);
}

static vow_value on_request(vow_loop *loop, vow_request *req, void *next_id) {
  handling *h = malloc(sizeof *h);
  if (!h) return vow_http_response(500, NULL, vow_string("out of memory"));
  *h = (handling){req, ++*(int64_t *)next_id};
  vow_async_options o = {.arg_free = handling_free};
  vow_promise *p = vow_context_run(loop, &request_id, vow_int(h->id), handle, h, &o);
  return p ? vow_promise_value(p) : vow_http_response(500, NULL, vow_string("out of memory"));
}

/* ---- the client ---------------------------------------------------------------------- */

static vow_value get_text(vow_loop *loop, void *url) {
  vow_value res, text;
  if (vow_await(vow_fetch(loop, url, NULL), &res) != 0) return vow_throw(res);
  int rc = vow_await(vow_response_text(vow_as_response(res)), &text);
  vow_unref(res);
  return rc == 0 ? text : vow_throw(text);
}

static vow_value main_async(vow_loop *loop, void *arg) {
  (void)arg;
  int64_t next_id = 0;
  vow_server *server;
  if (vow_server_listen(loop, NULL, on_request, &next_id, &server) != 0)
    return vow_throw(vow_string("listen"));
  char urls[3][64];
  vow_group *g = vow_group_new(loop, NULL);
  for (int i = 0; i < 3; i++) {
    snprintf(urls[i], sizeof urls[i], "http://127.0.0.1:%d/%c", vow_server_port(server), 'a' + i);
    vow_group_spawn(g, get_text, urls[i], NULL);
  }
  vow_value answers;
  if (vow_group_await(g, &answers) == 0) {
    int ok = 1;
    for (size_t i = 0; i < vow_array_len(answers); i++)
      ok &= strcmp(vow_str(vow_array_get(answers, i)), "ok") == 0;
    printf("client: %zu answers, %s\n", vow_array_len(answers), ok ? "each from its own request" : "mixed up");
  } else {
    printf("client: %s\n", vow_error_message(answers));
  }
  vow_unref(answers);
  vow_group_unref(g);
  vow_await(vow_server_close(server), NULL);
  printf("server closed\n");
  return vow_undefined();
}

int main(void) {
  vow_loop *loop;
  if (vow_loop_new(&loop, NULL) != 0) return 1;
  vow_promise *done = vow_async(loop, main_async, NULL);
  int ok = vow_loop_run(loop) == 0 && vow_promise_state(done) == VOW_FULFILLED;
  vow_promise_unref(done);
  vow_loop_free(loop);
  return ok ? 0 : 1;
}
