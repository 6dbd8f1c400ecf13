/*
 * 07 — A fetch with a timeout that really stops the transfer
 *
 * Promise.race gives up on a slow request but leaves it running. An
 * AbortSignal stops it: vow_timeout rejects after the deadline *and* aborts
 * the signal handed to fetch, which closes the connection at once — whether
 * the fetch is still waiting for headers or, as here, in the middle of the
 * body. The server (in this same program) sees its client go away.
 *
 * The JavaScript this mirrors (Node 20):
 *
 *   const server = http.createServer((req, res) => {
 *     res.on('close', () => console.log('server: the client went away'));
 *     res.write('partial');                        // ...and then nothing
 *   }).listen(0);
 *
 *   async function fetchSlow(signal) {
 *     const res = await fetch(`http://127.0.0.1:${port}/slow`, { signal });
 *     console.log(`client: ${res.status} ${res.statusText}, reading the body...`);
 *     return await res.text();
 *   }
 *   const controller = new AbortController();
 *   const timer = setTimeout(() => controller.abort(new Error('Timeout!')), 1000);
 *   try {
 *     console.log(await fetchSlow(controller.signal));
 *   } catch (err) {
 *     console.log('fetch:', err.message);           // fetch: Timeout!
 *   } finally {
 *     clearTimeout(timer);
 *   }
 *   server.close(() => console.log('server closed'));
 */
#include <stdio.h>
#include <vow.h>

typedef struct lesson {
  char url[64];
  vow_abort_signal *signal;   /* the fetch's: vow_timeout aborts it */
  vow_promise *client_gone;   /* the server resolves it when its client leaves */
  int requests;               /* requests the server saw */
} lesson;

/* ---- the server: headers and "partial", then it stalls ---------------------- */

static void on_client_gone(vow_loop *loop, vow_value reason, void *data) {
  (void)loop, (void)reason;
  lesson *ls = data;
  printf("server: the client went away (the transfer really stopped)\n");
  vow_promise_resolve(ls->client_gone, vow_undefined());
}

static vow_value stall(vow_loop *loop, vow_asyncgen *gen, void *arg) {
  (void)gen;
  vow_request *req = arg;
  printf("server: sent the headers and \"partial\", now stalling\n");
  if (vow_yield(vow_string("partial"), NULL) != 0) return vow_undefined();
  vow_value reason; /* wait, sending nothing, until the client leaves */
  vow_await(vow_abort_signal_promise(vow_request_signal(req)), &reason);
  vow_unref(reason);
  (void)loop;
  return vow_undefined();
}

static vow_value handler(vow_loop *loop, vow_request *req, void *data) {
  ((lesson *)data)->requests++;
  vow_abort_signal_on(vow_request_signal(req), on_client_gone, data);
  return vow_http_response_stream(200, NULL, vow_asyncgen_new(loop, stall, req));
}

/* ---- the client ----------------------------------------------------------------- */

static vow_value fetch_slow(vow_loop *loop, void *arg) {
  lesson *ls = arg;
  vow_fetch_options options = {.signal = ls->signal};
  vow_value res, text;
  if (vow_await(vow_fetch(loop, ls->url, &options), &res) != 0) return vow_throw(res);
  vow_response *r = vow_as_response(res);
  printf("client: %d %s, reading the body...\n", vow_response_status(r), vow_response_status_text(r));
  int rc = vow_await(vow_response_text(r), &text);
  vow_unref(res);
  return rc == 0 ? text : vow_throw(text);
}

static vow_value main_async(vow_loop *loop, void *arg) {
  (void)arg;
  lesson ls = {.signal = vow_abort_signal_new(loop), .client_gone = vow_promise_new(loop)};
  vow_server *server;
  if (vow_server_listen(loop, NULL, handler, &ls, &server) != 0) return vow_throw(vow_string("listen"));
  snprintf(ls.url, sizeof ls.url, "http://127.0.0.1:%d/slow", vow_server_port(server));

  vow_value result;
  vow_promise *work = vow_async(loop, fetch_slow, &ls);
  if (vow_await(vow_timeout(loop, work, 1000, ls.signal), &result) == 0)
    printf("fetch: %s\n", vow_str(result));
  else
    printf("fetch: %s\n", vow_error_message(result));
  vow_unref(result);

  if (ls.requests) vow_await(vow_promise_ref(ls.client_gone), NULL);
  vow_await(vow_server_close(server), NULL);
  printf("server closed\n");
  vow_promise_unref(ls.client_gone);
  vow_abort_signal_unref(ls.signal);
  return vow_undefined();
}

int main(void) {
  vow_loop *loop;
  if (vow_loop_new(&loop, NULL) != 0) return 1;
  vow_promise *done = vow_async(loop, main_async, NULL);
  int err = vow_loop_run(loop);
  int ok = err == 0 && vow_promise_state(done) == VOW_FULFILLED;
  vow_promise_unref(done);
  vow_loop_free(loop);
  return ok ? 0 : 1;
}
