/*
 * test_fetch.c — vow_fetch against vow's own server on 127.0.0.1 (ephemeral
 * ports, no outside network). Each test runs an async function, as a Node
 * script would run its top-level await; the JavaScript is quoted above it.
 * Times are never asserted tightly: ordering and structure are, and timeouts
 * only guard against hangs.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "io/io.h"
#include "log.h"
#include "core/loop.h"
#include "vow.h"

static vow_loop *loop;

static void setup(void) {
  log_reset();
  cr_assert_eq(vow_loop_new(&loop, NULL), 0);
}
static void teardown(void) {
  vow_loop_free(loop); /* when the test stopped early */
}
TestSuite(fetch, .init = setup, .fini = teardown, .timeout = 60);

/* ---- the test server ----------------------------------------------------------- */

typedef struct world {
  vow_server *srv;
  int port;
  int disconnects;  /* request signals that aborted: clients that went away */
  int seq;          /* requests seen */
} world;

static world W;

static const char *url(const char *path) {
  static char buf[8][256];
  static int i;
  char *b = buf[i++ % 8];
  snprintf(b, 256, "http://127.0.0.1:%d%s", W.port, path);
  return b;
}

static void on_disconnect(vow_loop *l, vow_value reason, void *data) {
  (void)l;
  world *w = data;
  cr_assert_eq(vow_error_code(reason), VOW_EABORTED);
  w->disconnects++;
}

/* A stream of n bytes, byte k being 'a' + k % 26, in chunks of 26 x 2521
 * bytes (so every chunk starts with 'a'). It owns nothing across a yield: a
 * loop teardown may drop its stack there. */
enum { BIG_CHUNK = 26 * 2521 };
static char alphabet[BIG_CHUNK];
static vow_value big_body(vow_loop *l, vow_asyncgen *g, void *arg) {
  (void)l, (void)g;
  size_t n = (size_t)(uintptr_t)arg, sent = 0;
  for (size_t k = 0; k < BIG_CHUNK; k++) alphabet[k] = (char)('a' + k % 26);
  while (sent < n) {
    size_t len = n - sent < BIG_CHUNK ? n - sent : BIG_CHUNK;
    sent += len;
    if (vow_yield(vow_string_n(alphabet, len), NULL) != 0) break; /* the client went away */
  }
  return vow_undefined();
}

/* "partial", then nothing until the client goes away. */
static vow_value stall_body(vow_loop *l, vow_asyncgen *g, void *arg) {
  (void)l, (void)g;
  vow_request *req = arg;
  if (vow_yield(vow_string("partial"), NULL) != 0) return vow_undefined();
  vow_value e;
  vow_await(vow_abort_signal_promise(vow_request_signal(req)), &e);
  vow_unref(e);
  return vow_undefined();
}

static int starts_with(const char *s, const char *prefix, const char **rest) {
  size_t n = strlen(prefix);
  if (strncmp(s, prefix, n) != 0) return 0;
  if (rest) *rest = s + n;
  return 1;
}

static vow_value handler(vow_loop *l, vow_request *req, void *data) {
  world *w = data;
  const char *t = vow_request_target(req), *rest;
  int id = ++w->seq;
  vow_abort_signal_on(vow_request_signal(req), on_disconnect, w);
  if (strcmp(t, "/hello") == 0) return vow_http_response(200, NULL, vow_string("hello"));
  if (starts_with(t, "/delay/", &rest)) {
    LOG("start%d", id);
    /* The delay, cut short if the client leaves: work follows the request's
     * signal. (AbortSignal.any([AbortSignal.timeout(ms), req.signal])) */
    vow_abort_signal *both[2] = {vow_abort_signal_timeout(l, (uint64_t)atoi(rest)), vow_request_signal(req)};
    vow_abort_signal *either = vow_abort_signal_any(l, both, 2);
    vow_value why;
    vow_await(vow_abort_signal_promise(either), &why);
    int left = vow_error_code(why) != VOW_ETIMEDOUT;
    vow_unref(why);
    vow_abort_signal_unref(either);
    vow_abort_signal_unref(both[0]);
    if (left) return vow_undefined(); /* nobody to answer */
    LOG("end%d", id);
    return vow_http_response(200, NULL, vow_stringf("delayed %s", rest));
  }
  if (starts_with(t, "/status/", &rest)) {
    int status = atoi(rest);
    return vow_http_response(status, NULL, vow_stringf("status %d", status));
  }
  if (strcmp(t, "/echo") == 0) {
    vow_value res = vow_http_response(200, "application/octet-stream", vow_ref(vow_request_body(req)));
    vow_http_response_header(res, "X-Method", vow_request_method(req));
    const char *h = vow_request_header(req, "x-test");
    vow_http_response_header(res, "X-Echo-Test", h ? h : "(none)");
    h = vow_request_header(req, "content-type");
    vow_http_response_header(res, "X-Echo-Type", h ? h : "(none)");
    h = vow_request_header(req, "content-length");
    vow_http_response_header(res, "X-Echo-Length", h ? h : "(none)");
    return res;
  }
  if (strcmp(t, "/headers") == 0) {
    vow_value res = vow_http_response(200, "text/html", vow_string("<p>hi</p>"));
    vow_http_response_header(res, "X-Custom", "yes");
    vow_http_response_header(res, "Set-Cookie", "a=1");
    vow_http_response_header(res, "Set-Cookie", "b=2");
    return res;
  }
  if (strcmp(t, "/redirect") == 0 || strcmp(t, "/loop") == 0) {
    vow_value res = vow_http_response(302, NULL, vow_string("moved"));
    vow_http_response_header(res, "Location", strcmp(t, "/loop") == 0 ? "/loop" : "/hello");
    return res;
  }
  if (strcmp(t, "/see-other") == 0) {
    vow_value res = vow_http_response(303, NULL, vow_undefined());
    vow_http_response_header(res, "Location", "/echo");
    return res;
  }
  if (starts_with(t, "/big/", &rest))
    return vow_http_response_stream(200, "text/plain",
                                     vow_asyncgen_new(l, big_body, (void *)(uintptr_t)strtoull(rest, NULL, 10)));
  if (strcmp(t, "/stall") == 0)
    return vow_http_response_stream(200, "text/plain", vow_asyncgen_new(l, stall_body, req));
  if (strcmp(t, "/throw") == 0) return vow_throw(vow_error(VOW_EINVAL, "handler failed"));
  return vow_http_response(404, NULL, vow_string("no such page"));
}

static void start_server(void) {
  W = (world){0};
  cr_assert_eq(vow_server_listen(loop, NULL, handler, &W, &W.srv), 0);
  W.port = vow_server_port(W.srv);
  cr_assert_gt(W.port, 0);
}

/* Runs body as the program's async main, then the loop to the end. */
static void run(vow_async_fn body) {
  start_server();
  vow_promise *p = vow_async(loop, body, NULL);
  int rc = vow_loop_run(loop);
  char buf[512];
  vow_value_format(vow_promise_result(p), buf, sizeof buf);
  cr_assert_eq(rc, 0, "the loop stopped with %s", vow_err_name(rc));
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED, "main ended with %s", buf);
  vow_promise_unref(p);
  cr_assert_eq(vow__fetch_active(loop), 0, "no transfer left");
}

static vow_value close_server(void) {
  vow_await(vow_server_close(W.srv), NULL);
  return vow_undefined();
}

/* await fetch(u) — fails the test on a rejection. Returns the response value. */
static vow_value get_ok(const char *u, const vow_fetch_options *o) {
  vow_value v;
  int rc = vow_await(vow_fetch(loop, u, o), &v);
  char buf[512];
  vow_value_format(v, buf, sizeof buf);
  cr_assert_eq(rc, 0, "fetch %s rejected: %s", u, buf);
  cr_assert_not_null(vow_as_response(v));
  return v;
}

/* await fetch(u) expecting a rejection; returns its code (and keeps the message). */
static int get_err(const char *u, const vow_fetch_options *o, char *msg, size_t cap) {
  vow_value e;
  int rc = vow_await(vow_fetch(loop, u, o), &e);
  cr_assert_eq(rc, VOW_EREJECTED, "fetch %s fulfilled", u);
  cr_assert_eq(vow_kind_of(e), VOW_ERROR);
  if (msg) snprintf(msg, cap, "%s", vow_error_message(e));
  int code = vow_error_code(e);
  vow_unref(e);
  return code;
}

/* await res.text() */
static int text_of(vow_value res, char *out, size_t cap) {
  vow_value t;
  int rc = vow_await(vow_response_text(vow_as_response(res)), &t);
  if (rc == 0) snprintf(out, cap, "%s", vow_str(t));
  else snprintf(out, cap, "%d", vow_error_code(t));
  vow_unref(t);
  return rc;
}

/* Waits (a few ms at a time, up to a guard) until *counter reaches n. */
static void wait_for(int *counter, int n) {
  for (int i = 0; i < 2000 && *counter < n; i++) vow_await(vow_delay(loop, 2, vow_undefined()), NULL);
  cr_assert_eq(*counter, n);
}

/* ---- basics ------------------------------------------------------------------------ */

/* const r = await fetch('/hello'); [r.status, r.ok, r.statusText, await r.text()]
 * -> [200, true, 'OK', 'hello'] */
static vow_value t_hello(vow_loop *l, void *a) {
  (void)l, (void)a;
  vow_value res = get_ok(url("/hello"), NULL);
  vow_response *r = vow_as_response(res);
  cr_assert_eq(vow_response_status(r), 200);
  cr_assert(vow_response_ok(r));
  cr_assert_str_eq(vow_response_status_text(r), "OK");
  cr_assert_str_eq(vow_response_url(r), url("/hello"));
  char text[64];
  cr_assert_eq(text_of(res, text, sizeof text), 0);
  cr_assert_str_eq(text, "hello");
  vow_unref(res);
  return close_server();
}
LOOP_TEST(fetch, get_text) { run(t_hello); }

/* const [a, b] = [fetch('/delay/200'), fetch('/delay/200')]; await a; await b
 * Both requests are on the server before either answers: they overlap. */
static vow_value t_parallel(vow_loop *l, void *a) {
  (void)l, (void)a;
  uint64_t t0 = uv_hrtime();
  vow_promise *pa = vow_fetch(loop, url("/delay/200"), NULL);
  vow_promise *pb = vow_fetch(loop, url("/delay/200"), NULL);
  vow_value ra, rb;
  cr_assert_eq(vow_await(pa, &ra), 0);
  cr_assert_eq(vow_await(pb, &rb), 0);
  uint64_t ms = (uv_hrtime() - t0) / 1000000;
  char ta[64], tb[64];
  text_of(ra, ta, sizeof ta);
  text_of(rb, tb, sizeof tb);
  cr_assert_str_eq(ta, "delayed 200");
  cr_assert_str_eq(tb, "delayed 200");
  vow_unref(ra), vow_unref(rb);
  cr_assert_str_eq(LOG_TEXT(), "start1 start2 end1 end2");
  cr_assert_lt(ms, 800, "two 200 ms requests in parallel took %llu ms", (unsigned long long)ms);
  return close_server();
}
LOOP_TEST(fetch, parallel_fetches_overlap) { run(t_parallel); }

/* A port that was bound and closed: nothing listens there. */
static int dead_port(void) {
  uv_loop_t l;
  uv_tcp_t t;
  struct sockaddr_in a;
  uv_loop_init(&l);
  uv_tcp_init(&l, &t);
  uv_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(uv_tcp_bind(&t, (struct sockaddr *)&a, 0), 0);
  int len = sizeof a;
  uv_tcp_getsockname(&t, (struct sockaddr *)&a, &len);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&l, UV_RUN_DEFAULT);
  uv_loop_close(&l);
  return ntohs(a.sin_port);
}

/* (await fetch('/status/404')).ok === false, while fetch(deadPort) rejects */
static vow_value t_404_vs_refused(vow_loop *l, void *a) {
  (void)l, (void)a;
  vow_value res = get_ok(url("/status/404"), NULL);
  vow_response *r = vow_as_response(res);
  cr_assert_eq(vow_response_status(r), 404);
  cr_assert_not(vow_response_ok(r));
  cr_assert_str_eq(vow_response_status_text(r), "Not Found");
  char text[64];
  text_of(res, text, sizeof text);
  cr_assert_str_eq(text, "status 404");
  vow_unref(res);
  res = get_ok(url("/status/500"), NULL);
  cr_assert_eq(vow_response_status(vow_as_response(res)), 500);
  cr_assert_str_eq(vow_response_status_text(vow_as_response(res)), "Internal Server Error");
  vow_unref(res);

  char dead[64], msg[512];
  snprintf(dead, sizeof dead, "http://127.0.0.1:%d/x", dead_port());
  cr_assert_eq(get_err(dead, NULL, msg, sizeof msg), UV_ECONNREFUSED, "%s", msg);
  cr_assert(strstr(msg, dead) != NULL, "the message names the URL: %s", msg);
  cr_assert(strstr(msg, "connect") != NULL, "and curl's description: %s", msg);
  return close_server();
}
LOOP_TEST(fetch, http_errors_fulfil_net_errors_reject) { run(t_404_vs_refused); }

/* Beyond fetch: reject_http_errors turns !ok into a rejection. */
static vow_value t_reject_http(vow_loop *l, void *a) {
  (void)l, (void)a;
  vow_fetch_options o = {.reject_http_errors = 1};
  char msg[512];
  cr_assert_eq(get_err(url("/status/404"), &o, msg, sizeof msg), VOW_EHTTP);
  cr_assert(strstr(msg, "404") != NULL, "%s", msg);
  vow_value res = get_ok(url("/hello"), &o);
  vow_unref(res);
  return close_server();
}
LOOP_TEST(fetch, reject_http_errors) { run(t_reject_http); }

/* r.headers.get('X-CUSTOM'), r.headers.get('set-cookie') -> 'yes', 'a=1, b=2' */
static vow_value t_headers(vow_loop *l, void *a) {
  (void)l, (void)a;
  vow_value res = get_ok(url("/headers"), NULL);
  vow_response *r = vow_as_response(res);
  cr_assert_str_eq(vow_response_header(r, "x-custom"), "yes");
  cr_assert_str_eq(vow_response_header(r, "X-CUSTOM"), "yes");
  cr_assert_str_eq(vow_response_header(r, "Content-Type"), "text/html");
  cr_assert_str_eq(vow_response_header(r, "content-length"), "9");
  cr_assert_str_eq(vow_response_header(r, "set-cookie"), "a=1, b=2");
  cr_assert_null(vow_response_header(r, "x-missing"));
  cr_assert_null(vow_as_response(vow_int(3)), "only a fetch's value is a response");
  vow_unref(res);
  return close_server();
}
LOOP_TEST(fetch, headers_are_case_insensitive) { run(t_headers); }

/* await (await fetch('/echo', {method: 'POST', body, headers: {'X-Test': 'v'}})).text() */
static vow_value t_post(vow_loop *l, void *a) {
  (void)l, (void)a;
  static const char body[] = "binary\0body with a NUL";
  const char *headers[] = {"X-Test: v", NULL};
  vow_fetch_options o = {.method = "POST", .headers = headers, .body = body, .body_len = sizeof body - 1};
  vow_value res = get_ok(url("/echo"), &o);
  vow_response *r = vow_as_response(res);
  cr_assert_str_eq(vow_response_header(r, "x-method"), "POST");
  cr_assert_str_eq(vow_response_header(r, "x-echo-test"), "v");
  cr_assert_str_eq(vow_response_header(r, "x-echo-type"), "(none)", "no form type added");
  vow_value t;
  cr_assert_eq(vow_await(vow_response_text(r), &t), 0);
  cr_assert_eq(vow_str_len(t), sizeof body - 1);
  cr_assert_eq(memcmp(vow_str(t), body, sizeof body - 1), 0);
  vow_unref(t);
  vow_unref(res);

  /* PUT with a 2 MB body: no "Expect: 100-continue" stall. */
  size_t n = 2 * 1024 * 1024;
  char *large = malloc(n);
  memset(large, 'z', n);
  vow_fetch_options put = {.method = "PUT", .body = large, .body_len = n};
  vow_promise *pending = vow_fetch(loop, url("/echo"), &put);
  free(large); /* copied by vow_fetch */
  cr_assert_eq(vow_await(pending, &res), 0);
  cr_assert_eq(vow_response_status(vow_as_response(res)), 413, "over the server's 1 MiB limit");
  vow_unref(res);

  vow_fetch_options bad = {.method = "GET", .body = "x", .body_len = 1};
  cr_assert_eq(get_err(url("/echo"), &bad, NULL, 0), VOW_ETYPE);
  const char *injected[] = {"X-A: 1\r\nX-B: 2", NULL};
  vow_fetch_options inj = {.headers = injected};
  cr_assert_eq(get_err(url("/echo"), &inj, NULL, 0), VOW_ETYPE);
  return close_server();
}
LOOP_TEST(fetch, post_body_round_trip) { run(t_post); }

/* fetch('/redirect') follows to /hello; {redirect: 'error'} rejects; {redirect: 'manual'}
 * hands back the 302; a redirect loop gives up after 20. */
static vow_value t_redirects(vow_loop *l, void *a) {
  (void)l, (void)a;
  vow_value res = get_ok(url("/redirect"), NULL);
  cr_assert_eq(vow_response_status(vow_as_response(res)), 200);
  cr_assert_str_eq(vow_response_url(vow_as_response(res)), url("/hello"));
  char text[64];
  text_of(res, text, sizeof text);
  cr_assert_str_eq(text, "hello", "the redirect's own body is not mixed in");
  vow_unref(res);

  vow_fetch_options err = {.redirect = VOW_REDIRECT_ERROR};
  cr_assert_eq(get_err(url("/redirect"), &err, NULL, 0), VOW_EPROTO);

  vow_fetch_options manual = {.redirect = VOW_REDIRECT_MANUAL};
  res = get_ok(url("/redirect"), &manual);
  cr_assert_eq(vow_response_status(vow_as_response(res)), 302);
  cr_assert_str_eq(vow_response_header(vow_as_response(res), "location"), "/hello");
  text_of(res, text, sizeof text);
  cr_assert_str_eq(text, "moved");
  vow_unref(res);

  char msg[512];
  cr_assert_eq(get_err(url("/loop"), NULL, msg, sizeof msg), VOW_EPROTO, "%s", msg);

  /* 303 after a POST: the next request is a GET (with no body). */
  vow_fetch_options post = {.method = "POST", .body = "data", .body_len = 4};
  res = get_ok(url("/see-other"), &post);
  cr_assert_str_eq(vow_response_header(vow_as_response(res), "x-method"), "GET");
  vow_unref(res);
  return close_server();
}
LOOP_TEST(fetch, redirect_follow_error_manual) { run(t_redirects); }

/* ---- combinators ----------------------------------------------------------------------- */

static vow_value fetch_value(const char *u) {
  return vow_promise_value(vow_fetch(loop, u, NULL));
}

/* Promise.all, allSettled, race and any over fetches. */
static vow_value t_combinators(vow_loop *l, void *a) {
  (void)l, (void)a;
  char dead[64];
  snprintf(dead, sizeof dead, "http://127.0.0.1:%d/", dead_port());
  vow_value v;

  cr_assert_eq(vow_await(vow_all(loop, VOW_VALUES(fetch_value(url("/hello")), fetch_value(url("/delay/20"))), 2), &v), 0);
  cr_assert_eq(vow_array_len(v), 2);
  cr_assert_eq(vow_response_status(vow_as_response(vow_array_get(v, 0))), 200);
  cr_assert_eq(vow_response_status(vow_as_response(vow_array_get(v, 1))), 200);
  vow_unref(v);

  cr_assert_eq(vow_await(vow_all(loop, VOW_VALUES(fetch_value(url("/delay/50")), fetch_value(dead)), 2), &v),
               VOW_EREJECTED, "all fails fast");
  cr_assert_eq(vow_error_code(v), UV_ECONNREFUSED);
  vow_unref(v);

  cr_assert_eq(vow_await(vow_all_settled(loop, VOW_VALUES(fetch_value(url("/status/404")), fetch_value(dead)), 2), &v), 0);
  cr_assert(vow_settled_ok(vow_array_get(v, 0)));
  cr_assert_eq(vow_response_status(vow_as_response(vow_settled_value(vow_array_get(v, 0)))), 404);
  cr_assert_not(vow_settled_ok(vow_array_get(v, 1)));
  cr_assert_eq(vow_error_code(vow_settled_value(vow_array_get(v, 1))), UV_ECONNREFUSED);
  vow_unref(v);

  cr_assert_eq(vow_await(vow_race(loop, VOW_VALUES(fetch_value(url("/delay/300")), fetch_value(url("/hello"))), 2), &v), 0);
  cr_assert_str_eq(vow_response_url(vow_as_response(v)), url("/hello"));
  vow_unref(v);

  cr_assert_eq(vow_await(vow_any(loop, VOW_VALUES(fetch_value(dead), fetch_value(url("/delay/10"))), 2), &v), 0);
  cr_assert_eq(vow_response_status(vow_as_response(v)), 200);
  vow_unref(v);
  cr_assert_eq(vow_await(vow_any(loop, VOW_VALUES(fetch_value(dead), fetch_value(dead)), 2), &v), VOW_EREJECTED);
  cr_assert_eq(vow_error_code(v), VOW_EAGGREGATE);
  cr_assert_eq(vow_error_code(vow_array_get(v, 1)), UV_ECONNREFUSED);
  vow_unref(v);
  /* The race's loser (/delay/300) finishes on its own; the server closes after it. */
  return close_server();
}
LOOP_TEST(fetch, combinators_over_fetches) { run(t_combinators); }

/* ---- failures: timeout, abort, reset, TLS, DNS ---------------------------------------------- */

/* const r = await fetch('/stall', {signal: AbortSignal.timeout(300)}); await r.text()
 * The headers and "partial" arrive, then nothing: the body times out, and the
 * server's request signal sees the client go. */
static vow_value t_timeout_mid_body(vow_loop *l, void *a) {
  (void)l, (void)a;
  vow_fetch_options o = {.timeout_ms = 300};
  vow_value res = get_ok(url("/stall"), &o);
  cr_assert_eq(vow_response_status(vow_as_response(res)), 200);
  vow_value t;
  cr_assert_eq(vow_await(vow_response_text(vow_as_response(res)), &t), VOW_EREJECTED);
  cr_assert_eq(vow_error_code(t), VOW_ETIMEDOUT, "%s", vow_error_message(t));
  vow_unref(t);
  vow_unref(res);
  wait_for(&W.disconnects, 1);
  /* Before the headers, too. */
  char msg[512];
  vow_fetch_options quick = {.timeout_ms = 50};
  cr_assert_eq(get_err(url("/delay/3000"), &quick, msg, sizeof msg), VOW_ETIMEDOUT);
  cr_assert(strstr(msg, "/delay/3000") != NULL, "%s", msg);
  wait_for(&W.disconnects, 2);
  return close_server();
}
LOOP_TEST(fetch, timeout_mid_body_stops_the_transfer) { run(t_timeout_mid_body); }

/* const c = new AbortController(); const r = await fetch('/stall', {signal: c.signal});
 * for await (const chunk of r.body) { log(chunk); c.abort() }   -> partial, then AbortError */
static vow_value t_abort_mid_body(vow_loop *l, void *a) {
  (void)a;
  vow_abort_signal *s = vow_abort_signal_new(l);
  vow_fetch_options o = {.signal = s};
  vow_value res = get_ok(url("/stall"), &o);
  vow_for_await it;
  vow_for_await_gen(&it, vow_response_body(vow_as_response(res)));
  VOW_FOR_AWAIT(&it, chunk) {
    LOG("%s", vow_str(chunk));
    vow_abort(s, vow_undefined());
  }
  vow_value err;
  cr_assert_eq(vow_for_await_end(&it, &err), VOW_EREJECTED);
  cr_assert_eq(vow_error_code(err), VOW_EABORTED);
  vow_unref(err);
  cr_assert_str_eq(LOG_TEXT(), "partial");
  cr_assert_eq(vow__fetch_active(l), 0, "the transfer stopped at once");
  wait_for(&W.disconnects, 1);
  vow_unref(res);
  vow_abort_signal_unref(s);

  /* Aborted before it starts: rejected with the reason, nothing sent. */
  s = vow_abort_signal_new(l);
  vow_abort(s, vow_string("stop"));
  o.signal = s;
  cr_assert_eq(vow_await(vow_fetch(l, url("/hello"), &o), &err), VOW_EREJECTED);
  cr_assert_str_eq(vow_str(err), "stop", "the signal's reason, as is");
  vow_unref(err);
  vow_abort_signal_unref(s);
  return close_server();
}
LOOP_TEST(fetch, abort_mid_body_stops_the_transfer) { run(t_abort_mid_body); }

/* const c = new AbortController(); await timeout(fetch('/delay/5000', {signal}), 100, c)
 * vow_timeout aborts the fetch it gives up on, while it waits for headers. */
static vow_value t_abort_waiting_for_headers(vow_loop *l, void *a) {
  (void)a;
  vow_abort_signal *s = vow_abort_signal_new(l);
  vow_fetch_options o = {.signal = s};
  vow_value e;
  cr_assert_eq(vow_await(vow_timeout(l, vow_fetch(l, url("/delay/5000"), &o), 100, s), &e), VOW_EREJECTED);
  cr_assert_eq(vow_error_code(e), VOW_ETIMEDOUT);
  vow_unref(e);
  cr_assert_eq(vow__fetch_active(l), 0);
  wait_for(&W.disconnects, 1);
  vow_abort_signal_unref(s);
  return close_server();
}
LOOP_TEST(fetch, abort_while_waiting_for_headers) { run(t_abort_waiting_for_headers); }

/* A raw server that accepts and closes at once: "empty reply" is a reset. */
static void raw_close(uv_handle_t *h) { free(h); }
static void on_raw_conn(uv_stream_t *server, int status) {
  if (status < 0) return;
  uv_tcp_t *c = malloc(sizeof *c);
  uv_tcp_init(server->loop, c);
  if (uv_accept(server, (uv_stream_t *)c) == 0) uv_tcp_close_reset(c, raw_close);
  else uv_close((uv_handle_t *)c, raw_close);
}

static vow_value t_reset_tls_dns(vow_loop *l, void *a) {
  (void)a;
  uv_tcp_t raw;
  struct sockaddr_in addr;
  uv_tcp_init(vow_loop_uv(l), &raw);
  uv_ip4_addr("127.0.0.1", 0, &addr);
  cr_assert_eq(uv_tcp_bind(&raw, (struct sockaddr *)&addr, 0), 0);
  cr_assert_eq(uv_listen((uv_stream_t *)&raw, 16, on_raw_conn), 0);
  int len = sizeof addr;
  uv_tcp_getsockname(&raw, (struct sockaddr *)&addr, &len);
  char u[64], msg[512];
  snprintf(u, sizeof u, "http://127.0.0.1:%d/", ntohs(addr.sin_port));
  cr_assert_eq(get_err(u, NULL, msg, sizeof msg), UV_ECONNRESET, "%s", msg);
  uv_close((uv_handle_t *)&raw, NULL);

  /* HTTPS to a plain-HTTP port: the handshake fails (the server answers 400). */
  snprintf(u, sizeof u, "https://127.0.0.1:%d/hello", W.port);
  cr_assert_eq(get_err(u, NULL, msg, sizeof msg), VOW_ETLS, "%s", msg);

  cr_assert_eq(get_err("http://no-such-host.invalid/", NULL, msg, sizeof msg), UV_EAI_NONAME, "%s", msg);
  cr_assert_eq(get_err("ftp://127.0.0.1/", NULL, msg, sizeof msg), VOW_EINVAL, "%s", msg);
  return close_server();
}
LOOP_TEST(fetch, reset_tls_and_dns_failures) { run(t_reset_tls_dns); }

/* ---- bodies ------------------------------------------------------------------------------------ */

static vow_value t_body_once(vow_loop *l, void *a) {
  (void)l, (void)a;
  vow_value res = get_ok(url("/hello"), NULL);
  char text[64];
  cr_assert_eq(text_of(res, text, sizeof text), 0);
  cr_assert_eq(text_of(res, text, sizeof text), VOW_EREJECTED);
  cr_assert_str_eq(text, "-5001", "VOW_EINVAL: the body was already read");
  vow_for_await it;
  vow_for_await_gen(&it, vow_response_body(vow_as_response(res)));
  VOW_FOR_AWAIT(&it, chunk) cr_assert_fail("no chunk from a used body");
  cr_assert_eq(vow_for_await_end(&it, NULL), VOW_EREJECTED);
  vow_unref(res);

  /* Over max_body: text() rejects with VOW_ETOOBIG and the transfer stops. */
  vow_fetch_options o = {.max_body = 1000};
  res = get_ok(url("/big/1000000"), &o);
  cr_assert_eq(text_of(res, text, sizeof text), VOW_EREJECTED);
  cr_assert_str_eq(text, "-5016");
  vow_unref(res);
  cr_assert_eq(vow__fetch_active(loop), 0);
  return close_server();
}
LOOP_TEST(fetch, body_is_read_once_and_limited) { run(t_body_once); }

#if defined(__SANITIZE_ADDRESS__)
#define RSS_UNRELIABLE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RSS_UNRELIABLE 1
#endif
#endif
#ifndef RSS_UNRELIABLE
#define RSS_UNRELIABLE 0
#endif

static size_t rss_bytes(void) {
  FILE *f = fopen("/proc/self/statm", "r");
  unsigned long size = 0, resident = 0;
  if (f) {
    if (fscanf(f, "%lu %lu", &size, &resident) != 2) resident = 0;
    fclose(f);
  }
  return resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* for await (const chunk of (await fetch('/big/50MB')).body) await sleep(1)
 * A slow reader: the transfer pauses, so memory stays bounded. */
static vow_value t_stream_50mb(vow_loop *l, void *a) {
  (void)a;
  const size_t total = 50u << 20;
  char path[64];
  snprintf(path, sizeof path, "/big/%zu", total);
  size_t rss0 = rss_bytes(), rss_max = rss0;
  vow_value res = get_ok(url(path), NULL);
  vow_response *r = vow_as_response(res);
  vow_for_await it;
  vow_for_await_gen(&it, vow_response_body(r));
  size_t got = 0, chunks = 0;
  int bad = 0;
  VOW_FOR_AWAIT(&it, chunk) {
    const char *s = vow_str(chunk);
    for (size_t k = 0, n = vow_str_len(chunk); k < n; k++)
      if (s[k] != (char)('a' + (got + k) % 26)) bad = 1;
    got += vow_str_len(chunk);
    if (++chunks % 4 == 0) vow_await(vow_delay(l, 1, vow_undefined()), NULL); /* slow */
    size_t rss = rss_bytes();
    if (rss > rss_max) rss_max = rss;
  }
  cr_assert_eq(vow_for_await_end(&it, NULL), 0);
  cr_assert_eq(got, total);
  cr_assert_not(bad, "the bytes arrive in order");
  size_t peak = vow__response_buffered_peak(r);
  fprintf(stderr, "fetch: 50 MB streamed in %zu chunks; buffered peak %zu KiB; RSS +%zu KiB (from %zu KiB)\n",
          chunks, peak / 1024, (rss_max - rss0) / 1024, rss0 / 1024);
  cr_assert_leq(peak, 512 * 1024, "backpressure bounds the buffer (%zu)", peak);
#if !RSS_UNRELIABLE /* a sanitizer's quarantine keeps freed memory resident */
  cr_assert_lt(rss_max - rss0, (size_t)40 << 20, "RSS grew by %zu KiB", (rss_max - rss0) / 1024);
#endif
  vow_unref(res);
  return close_server();
}
LOOP_TEST(fetch, stream_50mb_slow_reader_is_bounded) { run(t_stream_50mb); }

/* Dropping a response without reading it stops its transfer (frees the connection). */
static vow_value t_drop_unread(vow_loop *l, void *a) {
  (void)a;
  vow_value res = get_ok(url("/big/100000000"), NULL);
  cr_assert_eq(vow__fetch_active(l), 1);
  vow_unref(res);
  vow_await_value(vow_undefined(), NULL); /* the await's job held the value until now */
  cr_assert_eq(vow__fetch_active(l), 0);
  wait_for(&W.disconnects, 1);
  /* A stream released half-read stops its transfer too. */
  res = get_ok(url("/big/100000000"), NULL);
  vow_asyncgen *g = vow_response_body(vow_as_response(res));
  vow_unref(res);
  vow_value first;
  cr_assert_eq(vow_await(vow_asyncgen_next(g, vow_undefined()), &first), 0);
  cr_assert_gt(vow_str_len(vow_iter_value(first)), 0);
  vow_unref(first);
  cr_assert_eq(vow__fetch_active(l), 1);
  vow_asyncgen_unref(g);
  cr_assert_eq(vow__fetch_active(l), 0);
  wait_for(&W.disconnects, 2);
  return close_server();
}
LOOP_TEST(fetch, dropping_an_unread_response_stops_it) { run(t_drop_unread); }

/* ---- scale and teardown ------------------------------------------------------------------------ */

/* await Promise.all(Array.from({length: 1000}, () => fetch('/hello'))) */
static vow_value t_thousand(vow_loop *l, void *a) {
  (void)a;
  enum { N = 1000 };
  vow_value *all = malloc(N * sizeof *all);
  uint64_t t0 = uv_hrtime();
  for (int i = 0; i < N; i++) all[i] = fetch_value(url("/hello"));
  vow_value v;
  int rc = vow_await(vow_all(l, all, N), &v);
  free(all);
  char buf[256];
  vow_value_format(v, buf, sizeof buf);
  cr_assert_eq(rc, 0, "%s", buf);
  cr_assert_eq(vow_array_len(v), N);
  int ok = 0;
  for (size_t i = 0; i < N; i++) {
    char text[16];
    if (text_of(vow_array_get(v, i), text, sizeof text) == 0 && strcmp(text, "hello") == 0) ok++;
  }
  uint64_t ms = (uv_hrtime() - t0) / 1000000;
  fprintf(stderr, "fetch: %d concurrent requests in %llu ms\n", N, (unsigned long long)ms);
  cr_assert_eq(ok, N);
  vow_unref(v);
  cr_assert_eq(W.seq, N);
  return close_server();
}
LOOP_TEST(fetch, a_thousand_concurrent_requests) { run(t_thousand); }

/* Two fetches one after the other reuse one connection (curl's cache, our keep-alive). */
static vow_value t_reuse(vow_loop *l, void *a) {
  (void)l, (void)a;
  for (int i = 0; i < 3; i++) {
    vow_value res = get_ok(url("/hello"), NULL);
    char text[16];
    text_of(res, text, sizeof text);
    vow_unref(res);
    cr_assert_eq(vow__server_connections(W.srv), 1);
  }
  return close_server();
}
LOOP_TEST(fetch, keep_alive_reuses_the_connection) { run(t_reuse); }

/* vow_loop_free with transfers in flight: before headers, mid-body and paused. */
static void stop_run(vow_loop *l, void *arg) {
  (void)arg;
  vow__loop_fail(l, VOW_ECLOSING);
}
static vow_value t_inflight(vow_loop *l, void *a) {
  (void)a;
  vow_promise_unref(vow_fetch(l, url("/delay/5000"), NULL));
  vow_value res = get_ok(url("/stall"), NULL);
  vow_value big = get_ok(url("/big/100000000"), NULL); /* paused: nobody reads */
  vow_asyncgen *g = vow_response_body(vow_as_response(res));
  vow_promise_unref(vow_asyncgen_next(g, vow_undefined()));
  vow_promise_unref(vow_asyncgen_next(g, vow_undefined())); /* waits for bytes */
  vow_asyncgen_unref(g);
  vow_unref(res);
  vow_unref(big);
  vow_set_timeout(l, 50, stop_run, NULL);
  vow_value never;
  vow_await(vow_promise_new(l), &never);
  return never;
}
LOOP_TEST(fetch, loop_free_with_transfers_in_flight) {
  start_server();
  vow_promise *p = vow_async(loop, t_inflight, NULL);
  cr_assert_eq(vow_loop_run(loop), VOW_ECLOSING);
  cr_assert_geq(vow__fetch_active(loop), 2);
  vow_promise_unref(p);
}

/* ---- connections kept, closed and reused; easy handles reused ---------------------------------- */

/* A raw HTTP/1.1 server on libuv alone, on any uv loop (the test's, or its own
 * in a thread): it answers each request (GET, no body) with the number of the
 * connection it came on ("c1", "c2"...), and keeps the connection (close_ms
 * < 0) or closes it close_ms after answering its first request (0: at once,
 * from the write's callback). Its counters belong to its loop's thread. */
typedef struct raw_server raw_server;

typedef struct raw_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  raw_server *srv;
  struct raw_conn *prev, *next;
  int id;          /* 1, 2...: the order of acceptance */
  int handles;     /* still open: tcp and timer */
  int answered;
  size_t len;
  char in[2048];
} raw_conn;

struct raw_server {
  uv_tcp_t tcp;
  uv_async_t stop; /* threaded: raw_stop, from the test's thread */
  int port;
  int close_ms;
  int accepted, answered;
  int closed;      /* connections closed (their fd is closed: the FIN is sent) */
  int freed;       /* ... and their handles' close callbacks have run */
  int listener_closed;
  raw_conn *conns;
};

typedef struct raw_write {
  uv_write_t req;
  raw_conn *c;
  char out[96];
} raw_write;

static void raw_conn_freed(uv_handle_t *h) {
  raw_conn *c = h->data;
  if (--c->handles) return;
  raw_server *s = c->srv;
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->freed++;
  free(c);
}

static void raw_conn_close(raw_conn *c) {
  if (uv_is_closing((uv_handle_t *)&c->tcp)) return;
  c->srv->closed++;
  uv_close((uv_handle_t *)&c->tcp, raw_conn_freed); /* closes the fd now */
  uv_close((uv_handle_t *)&c->timer, raw_conn_freed);
}

static void raw_timer_fired(uv_timer_t *t) { raw_conn_close(t->data); }

static void raw_written(uv_write_t *req, int status) {
  raw_write *w = (raw_write *)req;
  raw_conn *c = w->c;
  free(w);
  if (uv_is_closing((uv_handle_t *)&c->tcp) || c->srv->close_ms < 0) return;
  if (status < 0 || c->srv->close_ms == 0) raw_conn_close(c);
  else uv_timer_start(&c->timer, raw_timer_fired, (uint64_t)c->srv->close_ms, 0);
}

static void raw_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)hint;
  raw_conn *c = h->data;
  *b = uv_buf_init(c->in + c->len, (unsigned)(sizeof c->in - c->len));
}

/* Where "\r\n\r\n" ends in s[0..len), or 0. */
static size_t head_end(const char *s, size_t len) {
  for (size_t i = 0; i + 4 <= len; i++)
    if (memcmp(s + i, "\r\n\r\n", 4) == 0) return i + 4;
  return 0;
}

static void raw_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *b) {
  (void)b;
  raw_conn *c = stream->data;
  if (n < 0) { /* EOF, a reset, or a request too large for c->in */
    raw_conn_close(c);
    return;
  }
  c->len += (size_t)n;
  size_t end;
  while ((end = head_end(c->in, c->len)) != 0) {
    memmove(c->in, c->in + end, c->len - end);
    c->len -= end;
    raw_write *w = malloc(sizeof *w);
    w->c = c;
    char body[16];
    int body_len = snprintf(body, sizeof body, "c%d", c->id);
    int len = snprintf(w->out, sizeof w->out, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s",
                       body_len, body);
    uv_buf_t out = uv_buf_init(w->out, (unsigned)len);
    c->answered++;
    c->srv->answered++;
    uv_write(&w->req, stream, &out, 1, raw_written);
    if (c->srv->close_ms >= 0) { /* one request per connection */
      uv_read_stop(stream);
      break;
    }
  }
}

static void raw_accept(uv_stream_t *listener, int status) {
  raw_server *s = listener->data;
  if (status < 0) return;
  raw_conn *c = calloc(1, sizeof *c);
  uv_tcp_init(listener->loop, &c->tcp);
  uv_timer_init(listener->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles = 2;
  c->srv = s;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    s->closed--; /* not a connection */
    raw_conn_close(c);
    return;
  }
  c->id = ++s->accepted;
  uv_read_start((uv_stream_t *)&c->tcp, raw_alloc, raw_read);
}

static void raw_listen(raw_server *s, uv_loop_t *uv, int close_ms) {
  memset(s, 0, sizeof *s);
  s->close_ms = close_ms;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(uv_tcp_init(uv, &s->tcp), 0);
  s->tcp.data = s;
  cr_assert_eq(uv_tcp_bind(&s->tcp, (const struct sockaddr *)&a, 0), 0);
  cr_assert_eq(uv_listen((uv_stream_t *)&s->tcp, 128, raw_accept), 0);
  struct sockaddr_storage b;
  int len = sizeof b;
  uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&b, &len);
  s->port = ntohs(((struct sockaddr_in *)&b)->sin_port);
}

static void raw_listener_closed(uv_handle_t *h) { ((raw_server *)h->data)->listener_closed = 1; }

/* Stops listening and closes every connection (their callbacks follow). */
static void raw_shutdown(raw_server *s) {
  uv_close((uv_handle_t *)&s->tcp, raw_listener_closed);
  for (raw_conn *c = s->conns; c; c = c->next) raw_conn_close(c);
}

/* The threaded server: its loop runs until raw_stop closes everything. */
static void raw_stop(uv_async_t *a) {
  raw_shutdown(a->data);
  uv_close((uv_handle_t *)a, NULL);
}
static void raw_thread(void *arg) {
  raw_server *s = arg;
  uv_run(s->tcp.loop, UV_RUN_DEFAULT);
}

/* await (await fetch(u)).text() -> want */
static void fetch_expect(const char *u, const vow_fetch_options *o, const char *want) {
  vow_value res = get_ok(u, o);
  char text[64];
  cr_assert_eq(text_of(res, text, sizeof text), 0, "the body of %s", u);
  vow_unref(res);
  cr_assert_str_eq(text, want, "fetch %s", u);
}

/* A server that closes every connection after answering — 20 ms later, while
 * curl holds the connection idle in its cache (its poll sees the close), then
 * at once — and a keep-alive one beside it:
 *   for (i = 1..30) { await (await fetch(raw)).text() == 'c' + i; wait for the close }
 *   for (i = 31..60) await (await fetch(raw)).text() == 'c' + i
 *   10 x { fetch(raw); fetch('/hello') }   // the keep-alive connection stays the one
 * Every fetch succeeds, on a connection of its own (the body is the
 * connection's number: 60 accepted, 60 answered). Closed descriptors are
 * reused at once, so a new connection's socket often gets the number of one
 * whose record is stale: the records must follow the sockets, not the numbers. */
static vow_value t_server_closes(vow_loop *l, void *a) {
  (void)a;
  raw_server rs;
  raw_listen(&rs, vow_loop_uv(l), 20);
  char u[64], want[16];
  snprintf(u, sizeof u, "http://127.0.0.1:%d/", rs.port);
  int n = 0;
  for (int i = 0; i < 30; i++) {
    snprintf(want, sizeof want, "c%d", ++n);
    fetch_expect(u, NULL, want);
    wait_for(&rs.closed, n);                                /* the server closed it... */
    vow_await(vow_delay(l, 1, vow_undefined()), NULL);      /* ...while it idles in curl's cache */
  }
  rs.close_ms = 0;
  for (int i = 0; i < 30; i++) {
    snprintf(want, sizeof want, "c%d", ++n);
    fetch_expect(u, NULL, want);
  }
  for (int i = 0; i < 10; i++) {
    snprintf(want, sizeof want, "c%d", ++n);
    fetch_expect(u, NULL, want);
    fetch_expect(url("/hello"), NULL, "hello");
    cr_assert_eq(vow__server_connections(W.srv), 1, "the keep-alive connection is reused");
  }
  cr_assert_eq(rs.accepted, n);
  cr_assert_eq(rs.answered, n);
  raw_shutdown(&rs);
  wait_for(&rs.listener_closed, 1);
  wait_for(&rs.freed, n);
  return close_server();
}
LOOP_TEST(fetch, server_closing_each_connection) { run(t_server_closes); }

/* The server closes (and with it the connections idle in curl's cache) and
 * comes back on the same port; three times: once after the client has seen
 * the closes, once at once, once with fetches at once:
 *   await Promise.all([1,2,3,4].map(() => fetch('/delay/10')))  // 4 idle connections
 *   await server.close(); server = http.createServer(h).listen(port)
 *   await fetch('/hello') x4 in turn, then x4 at once              // all succeed */
static vow_value t_server_restarts(vow_loop *l, void *a) {
  (void)a;
  for (int round = 0; round < 3; round++) {
    vow_value v;
    cr_assert_eq(vow_await(vow_all(l, VOW_VALUES(fetch_value(url("/delay/10")), fetch_value(url("/delay/10")),
                                                 fetch_value(url("/delay/10")), fetch_value(url("/delay/10"))),
                                   4),
                           &v),
                 0);
    for (int k = 0; k < 4; k++) cr_assert_eq(vow_response_status(vow_as_response(vow_array_get(v, k))), 200);
    vow_unref(v);
    cr_assert_geq(vow__server_connections(W.srv), 2, "connections idle in curl's cache");
    int seq = W.seq;
    vow_await(vow_server_close(W.srv), NULL);
    if (round == 0) vow_await(vow_delay(l, 5, vow_undefined()), NULL); /* the idle polls see the closes */
    vow_server_options same_port = {.port = W.port};
    cr_assert_eq(vow_server_listen(l, &same_port, handler, &W, &W.srv), 0);
    cr_assert_eq(vow_server_port(W.srv), W.port);
    if (round < 2)
      for (int k = 0; k < 4; k++) fetch_expect(url("/hello"), NULL, "hello");
    cr_assert_eq(vow_await(vow_all(l, VOW_VALUES(fetch_value(url("/hello")), fetch_value(url("/hello")),
                                                 fetch_value(url("/hello")), fetch_value(url("/hello"))),
                                   4),
                           &v),
                 0);
    for (int k = 0; k < 4; k++) cr_assert_eq(vow_response_status(vow_as_response(vow_array_get(v, k))), 200);
    vow_unref(v);
    cr_assert_eq(W.seq, seq + (round < 2 ? 8 : 4), "the new server answered them");
  }
  return close_server();
}
LOOP_TEST(fetch, server_restarting_under_idle_connections) { run(t_server_restarts); }

/* The run ends while curl still keeps a connection to a server (elsewhere: a
 * thread of its own) idle in its cache — its poll does not keep the loop
 * alive — and the next run on the same loop reuses it:
 *   run 1: await fetch(u) x3      // 'c1' each: one connection
 *   (vow_loop_run returns)
 *   run 2: await fetch(u) x2      // 'c1' still: the same connection
 * Then vow_loop_free closes it (LOOP_TEST checks for leaks). A guard (an
 * unreferenced timer) stops a run that does not end, to fail fast. */
typedef struct fetch_n {
  const char *url;
  int n;
} fetch_n;

static vow_value t_fetch_n(vow_loop *l, void *arg) {
  (void)l;
  fetch_n *f = arg;
  for (int i = 0; i < f->n; i++) fetch_expect(f->url, NULL, "c1");
  return vow_undefined();
}

static int run_stuck;
static void unstick(vow_loop *l, void *arg) {
  (void)arg;
  run_stuck = 1;
  uv_stop(vow_loop_uv(l));
}

static void run_to_end(fetch_n *f) {
  vow_promise *p = vow_async(loop, t_fetch_n, f);
  vow_timer guard = vow_set_timeout(loop, 3000, unstick, NULL);
  cr_assert_gt(guard, 0);
  vow_timer_unref(loop, guard);
  run_stuck = 0;
  int rc = vow_loop_run(loop);
  cr_assert_eq(rc, 0, "the loop stopped with %s", vow_err_name(rc));
  cr_assert_not(run_stuck, "vow_loop_run did not return: idle connections keep the loop alive");
  vow_clear_timeout(loop, guard);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED);
  vow_promise_unref(p);
  cr_assert_eq(vow__fetch_active(loop), 0);
}

LOOP_TEST(fetch, loop_ends_with_idle_connections_and_the_next_run_reuses_them) {
  uv_loop_t server_loop;
  cr_assert_eq(uv_loop_init(&server_loop), 0);
  raw_server rs;
  raw_listen(&rs, &server_loop, -1);
  cr_assert_eq(uv_async_init(&server_loop, &rs.stop, raw_stop), 0);
  rs.stop.data = &rs;
  uv_thread_t thread;
  cr_assert_eq(uv_thread_create(&thread, raw_thread, &rs), 0);
  char u[64];
  snprintf(u, sizeof u, "http://127.0.0.1:%d/", rs.port);

  run_to_end(&(fetch_n){u, 3});
  run_to_end(&(fetch_n){u, 2});

  uv_async_send(&rs.stop);
  uv_thread_join(&thread);
  cr_assert_eq(uv_loop_close(&server_loop), 0);
  cr_assert_eq(rs.accepted, 1);
  cr_assert_eq(rs.answered, 5);
}

/* Plain fetches and fetches with options, in turn and all at once, on one
 * loop: a finished transfer's easy handle serves a later fetch, and must not
 * carry its options over. Each echoes what the server saw:
 *   await fetch('/echo', {method: 'POST', headers: {'X-Test': 'post'}, body: 'post body'})
 *   await fetch('/echo')   // GET, no X-Test, no Content-Length, no body
 *   ... PUT, HEAD, DELETE, redirect: 'manual' or 'error', timeouts, then plain ones:
 *   await fetch('/redirect')    // followed again: 200 'hello'
 *   await fetch('/delay/200', {timeout: 100})  // rejects: TimeoutError
 *   await fetch('/delay/200')   // no timeout now: 'delayed 200' */
typedef struct echo_case {
  const char *path;
  vow_fetch_options o;
  int status;
  const char *method, *test, *length; /* what /echo saw; NULL: not /echo */
  const char *body;
  int err; /* the rejection expected instead, or 0 */
} echo_case;

static const char *const post_headers[] = {"X-Test: post", NULL};
static const char *const get_headers[] = {"X-Test: get", NULL};

enum { PLAIN, POST, HDR, PUT, HEAD, DEL, MANUAL, NO_REDIRECT, FOLLOW, TMO, TIMES_OUT, SLOW, POST_EMPTY, CASES };
static const echo_case echo_cases[CASES] = {
    [PLAIN] = {"/echo", {0}, 200, "GET", "(none)", "(none)", "", 0},
    [POST] = {"/echo", {.method = "POST", .headers = post_headers, .body = "post body", .body_len = 9},
              200, "POST", "post", "9", "post body", 0},
    [HDR] = {"/echo", {.headers = get_headers}, 200, "GET", "get", "(none)", "", 0},
    [PUT] = {"/echo", {.method = "PUT", .body = "put", .body_len = 3}, 200, "PUT", "(none)", "3", "put", 0},
    [HEAD] = {"/echo", {.method = "HEAD"}, 200, "HEAD", "(none)", "(none)", "", 0},
    [DEL] = {"/echo", {.method = "DELETE"}, 200, "DELETE", "(none)", "(none)", "", 0},
    [MANUAL] = {"/redirect", {.redirect = VOW_REDIRECT_MANUAL}, 302, NULL, NULL, NULL, "moved", 0},
    [NO_REDIRECT] = {"/redirect", {.redirect = VOW_REDIRECT_ERROR}, 0, NULL, NULL, NULL, NULL, VOW_EPROTO},
    [FOLLOW] = {"/redirect", {0}, 200, NULL, NULL, NULL, "hello", 0},
    [TMO] = {"/echo", {.timeout_ms = 5000}, 200, "GET", "(none)", "(none)", "", 0},
    [TIMES_OUT] = {"/delay/200", {.timeout_ms = 100}, 0, NULL, NULL, NULL, NULL, VOW_ETIMEDOUT},
    [SLOW] = {"/delay/200", {0}, 200, NULL, NULL, NULL, "delayed 200", 0},
    [POST_EMPTY] = {"/echo", {.method = "POST"}, 200, "POST", "(none)", "0", "", 0},
};

static vow_value echo_check(vow_loop *l, void *arg) {
  (void)l;
  const echo_case *c = arg;
  const char *m = c->o.method ? c->o.method : "GET";
  if (c->err) {
    char msg[256];
    cr_assert_eq(get_err(url(c->path), &c->o, msg, sizeof msg), c->err, "%s %s: %s", m, c->path, msg);
    return vow_undefined();
  }
  vow_value res = get_ok(url(c->path), &c->o);
  vow_response *r = vow_as_response(res);
  cr_assert_eq(vow_response_status(r), c->status, "%s %s", m, c->path);
  if (c->method) {
    cr_assert_str_eq(vow_response_header(r, "x-method"), c->method, "%s %s", m, c->path);
    cr_assert_str_eq(vow_response_header(r, "x-echo-test"), c->test, "%s %s: X-Test", m, c->path);
    cr_assert_str_eq(vow_response_header(r, "x-echo-length"), c->length, "%s %s: Content-Length", m,
                     c->path);
  }
  char text[64];
  cr_assert_eq(text_of(res, text, sizeof text), 0);
  cr_assert_str_eq(text, c->body, "%s %s: the body", m, c->path);
  vow_unref(res);
  return vow_undefined();
}

static vow_value t_reused_handles(vow_loop *l, void *a) {
  (void)a;
  /* Each kind after a plain fetch (whose handle is taken as it is only by
   * another plain one) and after one with options, and followed by a plain one. */
  static const int order[] = {PLAIN, POST,   PLAIN,       HDR,        PLAIN,  PUT,    PLAIN,     HEAD,
                              PLAIN, DEL,    PLAIN,       MANUAL,     FOLLOW, TMO,    PLAIN,     TIMES_OUT,
                              SLOW,  POST,   TIMES_OUT,   SLOW,       POST,   TMO,    SLOW,      POST_EMPTY,
                              HDR,   POST,   HDR,         PLAIN,      TMO,    MANUAL, HEAD,      FOLLOW,
                              PUT,   FOLLOW, NO_REDIRECT, FOLLOW,     DEL,    MANUAL, PLAIN,     NO_REDIRECT,
                              HEAD,  PUT,    DEL,         POST_EMPTY, PLAIN};
  for (size_t i = 0; i < sizeof order / sizeof *order; i++)
    echo_check(l, (void *)&echo_cases[order[i]]);
  /* All at once, twice: the second round takes the handles the first left, in another order. */
  for (int round = 0; round < 2; round++) {
    vow_value items[2 * CASES], v;
    for (int i = 0; i < 2 * CASES; i++) {
      int k = round == 0 ? i % CASES : (2 * CASES - 1 - i) % CASES;
      items[i] = vow_promise_value(vow_async(l, echo_check, (void *)&echo_cases[k]));
    }
    cr_assert_eq(vow_await(vow_all(l, items, 2 * CASES), &v), 0);
    vow_unref(v);
  }
  return close_server();
}
LOOP_TEST(fetch, reused_handles_do_not_carry_options_over) { run(t_reused_handles); }

/* ---- HTTPS, end to end ---- */

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

/* https against a local `openssl s_server` whose certificate (made here, for
 * 127.0.0.1) is trusted through ca_file: the TLS handshake, the verification
 * of the certificate against the address, and the exchange all happen for
 * real. Without ca_file the same fetch fails verification with VOW_ETLS. */
static int free_port(void) {
  uv_loop_t l;
  uv_tcp_t t;
  struct sockaddr_in a;
  struct sockaddr_storage b;
  int len = sizeof b;
  uv_loop_init(&l);
  uv_tcp_init(&l, &t);
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_bind(&t, (const struct sockaddr *)&a, 0);
  uv_tcp_getsockname(&t, (struct sockaddr *)&b, &len);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&l, UV_RUN_DEFAULT);
  uv_loop_close(&l);
  return ntohs(((struct sockaddr_in *)&b)->sin_port);
}

typedef struct https_case {
  char url[64];
  char ca[64];
  int ok_status;
  int unverified_code;
} https_case;

static vow_value fetch_https(vow_loop *l, void *arg) {
  https_case *c = arg;
  vow_value r, text;
  vow_fetch_options trusted = {.ca_file = c->ca};
  for (int attempt = 0; attempt < 50; attempt++) { /* until s_server listens */
    if (vow_await(vow_fetch(l, c->url, &trusted), &r) == 0) break;
    vow_unref(r);
    r = vow_undefined();
    vow_await(vow_delay(l, 100, vow_undefined()), NULL);
  }
  if (vow_as_response(r)) {
    c->ok_status = vow_response_status(vow_as_response(r));
    vow_await(vow_response_text(vow_as_response(r)), &text);
    if (!strstr(vow_str(text), "s_server")) c->ok_status = -1;
    vow_unref(text);
  }
  vow_unref(r);
  if (vow_await(vow_fetch(l, c->url, NULL), &r) != 0) c->unverified_code = vow_error_code(r);
  vow_unref(r);
  return vow_undefined();
}

/* A certificate for 127.0.0.1 in dir (key.pem, cert.pem); 0, or -1 without
 * an openssl command. */
static int make_certificate(const char *dir) {
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
           "-addext subjectAltName=IP:127.0.0.1 -keyout %s/key.pem -out %s/cert.pem 2>/dev/null",
           dir, dir);
  return system(cmd) == 0 ? 0 : -1;
}

/* `openssl s_server -www` on port with dir's certificate, as a child process. */
static pid_t start_s_server(const char *dir, int port) {
  pid_t parent = getpid();
  pid_t server = fork();
  if (server == 0) {
#ifdef __linux__
    /* Dies with the test process, even one that crashed or timed out before
     * its kill below: no s_server is left behind. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
#else
    (void)parent;
#endif
    char accept[16], key[80], cert[80];
    snprintf(accept, sizeof accept, "%d", port);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1), dup2(devnull, 2);
    execlp("openssl", "openssl", "s_server", "-accept", accept, "-key", key, "-cert", cert, "-www",
           "-quiet", (char *)NULL);
    _exit(127);
  }
  return server;
}

static void stop_s_server(pid_t server, const char *dir) {
  char cmd[512];
  kill(server, SIGTERM);
  waitpid(server, NULL, 0);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  system(cmd);
}

Test(fetch_tls, https_with_a_trusted_certificate) {
  char dir[] = "/tmp/vow-tls-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  if (make_certificate(dir) != 0) cr_skip_test("no openssl command to make a certificate with");
  int port = free_port();
  pid_t server = start_s_server(dir, port);
  https_case c = {.ok_status = 0};
  snprintf(c.url, sizeof c.url, "https://127.0.0.1:%d/", port);
  snprintf(c.ca, sizeof c.ca, "%s/cert.pem", dir);
  vow_loop *l;
  vow_loop_new(&l, NULL);
  vow_promise_unref(vow_async(l, fetch_https, &c));
  vow_loop_run(l);
  vow_loop_free(l);
  stop_s_server(server, dir);
  cr_assert_eq(c.ok_status, 200, "https with the trusted certificate: status %d", c.ok_status);
  cr_assert_eq(c.unverified_code, VOW_ETLS, "an untrusted certificate fails verification");
}

/* ---- hardening: what a hostile or broken peer does ---------------------------------------- */

/* A scripted raw server on the test's loop: for each request head it reads on
 * a connection, script(connection, request) says what to do — answer with the
 * bytes it returns (malloc'd; the server frees them), keeping the connection,
 * or reset it (return NULL). Request bodies are not read as such: what follows
 * a head is taken as the next request's bytes, so scripts answer only heads. */
typedef char *(*script_fn)(int conn, int request, size_t *len);

typedef struct script_server {
  uv_tcp_t tcp;
  int port;
  script_fn script;
  int accepted;
  int resets;     /* connections the script reset */
  int freed;      /* connections whose handles are closed */
  int listener_closed;
  struct script_conn *conns;
} script_server;

typedef struct script_conn {
  uv_tcp_t tcp;
  script_server *srv;
  struct script_conn *prev, *next;
  int id, requests;
  size_t len;
  char in[4096];
} script_conn;

typedef struct script_write {
  uv_write_t req;
  char *out;
} script_write;

static void script_conn_freed(uv_handle_t *h) {
  script_conn *c = h->data;
  script_server *s = c->srv;
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->freed++;
  free(c);
}

static void script_written(uv_write_t *req, int status) {
  (void)status; /* the client may have gone: it is its business */
  script_write *w = (script_write *)req;
  free(w->out);
  free(w);
}

static void script_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)hint;
  script_conn *c = h->data;
  *b = uv_buf_init(c->in + c->len, (unsigned)(sizeof c->in - c->len));
}

static void script_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *b) {
  (void)b;
  script_conn *c = stream->data;
  if (uv_is_closing((uv_handle_t *)stream)) return;
  if (n < 0) {
    uv_close((uv_handle_t *)stream, script_conn_freed);
    return;
  }
  c->len += (size_t)n;
  size_t end;
  while ((end = head_end(c->in, c->len)) != 0) {
    memmove(c->in, c->in + end, c->len - end);
    c->len -= end;
    size_t len = 0;
    char *out = c->srv->script(c->id, ++c->requests, &len);
    if (!out) {
      c->srv->resets++;
      uv_tcp_close_reset(&c->tcp, script_conn_freed);
      return;
    }
    script_write *w = malloc(sizeof *w);
    w->out = out;
    uv_buf_t buf = uv_buf_init(out, (unsigned)len);
    uv_write(&w->req, stream, &buf, 1, script_written);
  }
  if (c->len == sizeof c->in) c->len = 0; /* a head too large for us, or a body: dropped */
}

static void script_accept(uv_stream_t *listener, int status) {
  script_server *s = listener->data;
  if (status < 0) return;
  script_conn *c = calloc(1, sizeof *c);
  c->srv = s;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  uv_tcp_init(listener->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    s->freed--; /* not a connection */
    uv_close((uv_handle_t *)&c->tcp, script_conn_freed);
    return;
  }
  c->id = ++s->accepted;
  uv_read_start((uv_stream_t *)&c->tcp, script_alloc, script_read);
}

static void script_listen(script_server *s, uv_loop_t *uv, script_fn script) {
  memset(s, 0, sizeof *s);
  s->script = script;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(uv_tcp_init(uv, &s->tcp), 0);
  s->tcp.data = s;
  cr_assert_eq(uv_tcp_bind(&s->tcp, (const struct sockaddr *)&a, 0), 0);
  cr_assert_eq(uv_listen((uv_stream_t *)&s->tcp, 128, script_accept), 0);
  struct sockaddr_storage b;
  int len = sizeof b;
  uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&b, &len);
  s->port = ntohs(((struct sockaddr_in *)&b)->sin_port);
}

static void script_listener_closed(uv_handle_t *h) { ((script_server *)h->data)->listener_closed = 1; }

/* Stops listening and closes every connection. */
static void script_close(script_server *s) {
  uv_close((uv_handle_t *)&s->tcp, script_listener_closed);
  for (script_conn *c = s->conns; c; c = c->next)
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, script_conn_freed);
  wait_for(&s->listener_closed, 1);
  wait_for(&s->freed, s->accepted);
}

/* A response: the status line, then head (header lines, may be empty), then
 * a body of its Content-Length. */
static char *response_of(const char *status_line, const char *head, const char *body, size_t *len) {
  size_t n = strlen(status_line) + strlen(head) + strlen(body) + 64;
  char *out = malloc(n);
  *len = (size_t)snprintf(out, n, "%s\r\n%sContent-Length: %zu\r\n\r\n%s", status_line, head,
                          strlen(body), body);
  return out;
}

/* A keep-alive server that answers each connection's first request ("c1",
 * "c2"... by connection) and resets the connection on its second: the
 * request curl sends on a connection it reuses meets a reset, as when a
 * server drops an idle connection at the moment the client reuses it.
 *   for (i = 1..3) await (await fetch(u)).text() == 'c' + i
 * curl's tool retries such a request on a new connection (a reused
 * connection that fails before any byte of the reply came is retried, once);
 * so does fetch: all three succeed, on three connections, two of them reset. */
static char *answer_once_then_reset(int conn, int request, size_t *len) {
  if (request > 1) return NULL;
  char body[16];
  snprintf(body, sizeof body, "c%d", conn);
  return response_of("HTTP/1.1 200 OK", "", body, len);
}

static vow_value t_retry_reused(vow_loop *l, void *a) {
  (void)a;
  script_server s;
  script_listen(&s, vow_loop_uv(l), answer_once_then_reset);
  char u[64], want[16];
  snprintf(u, sizeof u, "http://127.0.0.1:%d/", s.port);
  for (int i = 1; i <= 3; i++) {
    snprintf(want, sizeof want, "c%d", i);
    fetch_expect(u, NULL, want);
  }
  cr_assert_eq(s.accepted, 3);
  cr_assert_eq(s.resets, 2, "each reused connection was reset");
  script_close(&s);
  return close_server();
}
LOOP_TEST(fetch, a_reused_connection_reset_is_retried_on_a_new_one) { run(t_retry_reused); }

/* Replies that are wrong each get the code that says how:
 *   a 300 KB header line          -> VOW_ETOOBIG (curl's limit is 100 KiB a line)
 *   "garbage" for a status line   -> VOW_EPROTO  (not HTTP at all: HTTP/0.9, refused)
 *   "HTTP/1.5 200 OK"             -> VOW_EPROTO  (no such version)
 *   "HTTP/1.1 abc OK"             -> VOW_EPROTO
 * (Node's fetch rejects each with TypeError "fetch failed", the cause naming
 * the parse error: HPE_HEADER_OVERFLOW, HPE_INVALID_CONSTANT...) while a URL
 * whose scheme fetch does not speak is still the caller's VOW_EINVAL. */
static int reply_kind;
static char *bad_reply(int conn, int request, size_t *len) {
  (void)conn, (void)request;
  char *out;
  switch (reply_kind) {
    case 0: {
      size_t n = 300 * 1000;
      char *head = malloc(n + 16);
      memcpy(head, "X-Big: ", 7);
      memset(head + 7, 'a', n);
      memcpy(head + 7 + n, "\r\n", 3);
      out = response_of("HTTP/1.1 200 OK", head, "ok", len);
      free(head);
      return out;
    }
    case 1:
      out = strdup("garbage\r\n\r\n");
      *len = strlen(out);
      return out;
    case 2: return response_of("HTTP/1.5 200 OK", "", "ok", len);
    default: return response_of("HTTP/1.1 abc OK", "", "ok", len);
  }
}

static vow_value t_bad_replies(vow_loop *l, void *a) {
  (void)a;
  script_server s;
  script_listen(&s, vow_loop_uv(l), bad_reply);
  char u[64], msg[512];
  snprintf(u, sizeof u, "http://127.0.0.1:%d/", s.port);
  static const int want[] = {VOW_ETOOBIG, VOW_EPROTO, VOW_EPROTO, VOW_EPROTO};
  for (reply_kind = 0; reply_kind < 4; reply_kind++) {
    int code = get_err(u, NULL, msg, sizeof msg);
    cr_assert_eq(code, want[reply_kind], "reply %d: %s (%s)", reply_kind, vow_err_name(code), msg);
    cr_assert(strstr(msg, u), "the message names the URL: %s", msg);
  }
  cr_assert_eq(get_err("ftp://127.0.0.1/", NULL, msg, sizeof msg), VOW_EINVAL, "%s", msg);
  script_close(&s);
  return close_server();
}
LOOP_TEST(fetch, bad_replies_get_codes_that_name_what_was_wrong) { run(t_bad_replies); }

/* Response headers are limited as request headers are, in size (Node's fetch:
 * 16 KiB, UND_ERR_HEADERS_OVERFLOW) and in number:
 *   40 000 headers                    -> VOW_ETOOBIG, at once (they are not all read)
 *   a 20 KB header / a 15 KB one      -> VOW_ETOOBIG / 200 (as Node's fetch)
 *   6 headers with max_headers 5 / 6  -> VOW_ETOOBIG / 200
 *   2001 / 2000 headers (max_header_bytes 64 KiB) -> VOW_ETOOBIG / 200 (the default count, 2000) */
static int header_lines, header_value_len;
static char *many_headers(int conn, int request, size_t *len) {
  (void)conn, (void)request;
  size_t cap = (size_t)header_lines * ((size_t)header_value_len + 32) + 1, at = 0;
  char *head = malloc(cap);
  head[0] = '\0';
  for (int i = 0; i < header_lines; i++) {
    at += (size_t)snprintf(head + at, cap - at, "X-%d: ", i);
    memset(head + at, 'v', (size_t)header_value_len);
    at += (size_t)header_value_len;
    at += (size_t)snprintf(head + at, cap - at, "\r\n");
  }
  char *out = response_of("HTTP/1.1 200 OK", head, "ok", len);
  free(head);
  return out;
}

static int fetch_headers(const char *u, int lines, int value_len, const vow_fetch_options *o, char *msg) {
  header_lines = lines, header_value_len = value_len;
  vow_value v;
  int rc = vow_await(vow_fetch(loop, u, o), &v);
  int code = rc == 0 ? vow_response_status(vow_as_response(v)) : vow_error_code(v);
  snprintf(msg, 512, "%s", rc == 0 ? "fulfilled" : vow_error_message(v));
  vow_unref(v);
  return code;
}

static vow_value t_header_limits(vow_loop *l, void *a) {
  (void)a;
  script_server s;
  script_listen(&s, vow_loop_uv(l), many_headers);
  char u[64], msg[512];
  snprintf(u, sizeof u, "http://127.0.0.1:%d/", s.port);
  cr_assert_eq(fetch_headers(u, 40000, 1, NULL, msg), VOW_ETOOBIG, "%s", msg);
  cr_assert(strstr(msg, "header"), "the message says what was too big: %s", msg);
  cr_assert_eq(fetch_headers(u, 1, 20000, NULL, msg), VOW_ETOOBIG, "%s", msg);
  cr_assert_eq(fetch_headers(u, 1, 15000, NULL, msg), 200, "%s", msg);
  vow_fetch_options five = {.max_headers = 5}, six = {.max_headers = 6};
  cr_assert_eq(fetch_headers(u, 5, 1, &five, msg), VOW_ETOOBIG, "%s", msg); /* and Content-Length */
  cr_assert_eq(fetch_headers(u, 5, 1, &six, msg), 200, "%s", msg);
  vow_fetch_options big = {.max_header_bytes = 64 * 1024};
  cr_assert_eq(fetch_headers(u, 2000, 1, &big, msg), VOW_ETOOBIG, "%s", msg); /* 2001 in all */
  cr_assert_eq(fetch_headers(u, 1999, 1, &big, msg), 200, "%s", msg);
  cr_assert_eq(fetch_headers(u, 1, 20000, &big, msg), 200, "%s", msg);
  script_close(&s);
  return close_server();
}
LOOP_TEST(fetch, response_headers_are_limited_in_size_and_number) { run(t_header_limits); }

/* SIGPIPE. A peer that goes away while the client uploads makes the client's
 * writes fail (ECONNRESET, then EPIPE); write() would also raise SIGPIPE,
 * whose default action kills the process. fetch's writes must never raise it,
 * whatever the program's disposition: the child below sets it back to
 * SIG_DFL after making its loop (so that nothing the loop does for it counts)
 * and POSTs 16 MB to a server that reads the request's head and resets the
 * connection (plain HTTP), or to `openssl s_server`, which it kills (SIGKILL:
 * its sockets are reset) 200 ms into the upload (HTTPS: OpenSSL's writes,
 * and its close_notify after the failure). The child must exit normally, the
 * fetch rejected — with ECONNRESET or EPIPE over plain HTTP.
 * Exit codes: 0 as expected, 1 fulfilled, 2 another rejection, 3 setup. */
static char *reset_at_once(int conn, int request, size_t *len) {
  (void)conn, (void)request, (void)len;
  return NULL;
}

typedef struct upload {
  char url[64];
  const char *ca;       /* HTTPS: the certificate to trust */
  pid_t s_server;       /* HTTPS: killed during the upload */
  script_server *raw;   /* plain HTTP: the server, closed at the end */
  int code;             /* the rejection's code, or the status */
  int rejected;
} upload;

static void stop_s_server_reading(vow_loop *l, void *arg) {
  (void)l;
  kill(((upload *)arg)->s_server, SIGSTOP);
}
static void kill_s_server(vow_loop *l, void *arg) {
  (void)l;
  kill(((upload *)arg)->s_server, SIGKILL);
}

static vow_value t_upload(vow_loop *l, void *arg) {
  upload *up = arg;
  vow_fetch_options o = {.ca_file = up->ca};
  vow_value v;
  for (int i = 0; up->ca && i < 50; i++) { /* until s_server listens */
    int rc = vow_await(vow_fetch(l, up->url, &o), &v);
    vow_unref(v);
    if (rc == 0) break;
    vow_await(vow_delay(l, 100, vow_undefined()), NULL);
  }
  size_t n = (size_t)16 << 20;
  char *body = malloc(n);
  memset(body, 'x', n);
  o = (vow_fetch_options){.method = "POST", .body = body, .body_len = n, .ca_file = up->ca};
  vow_promise *p = vow_fetch(l, up->url, &o);
  free(body); /* copied */
  if (up->ca) { /* it stops reading (our writes fill the socket's buffers), then dies */
    vow_set_timeout(l, 30, stop_s_server_reading, up);
    vow_set_timeout(l, 130, kill_s_server, up);
  }
  up->rejected = vow_await(p, &v) != 0;
  up->code = up->rejected ? vow_error_code(v) : vow_response_status(vow_as_response(v));
  vow_unref(v);
  if (up->raw) uv_close((uv_handle_t *)&up->raw->tcp, NULL);
  return vow_undefined();
}

static int upload_child(upload *up) {
  alarm(30); /* a hang is a failure too: SIGALRM */
  vow_loop_free(loop); /* the parent's, copied by fork */
  if (vow_loop_new(&loop, NULL) != 0) return 3;
  signal(SIGPIPE, SIG_DFL);
  script_server s;
  if (!up->ca) {
    script_listen(&s, vow_loop_uv(loop), reset_at_once);
    snprintf(up->url, sizeof up->url, "http://127.0.0.1:%d/", s.port);
    up->raw = &s;
  }
  vow_promise_unref(vow_async(loop, t_upload, up));
  if (vow_loop_run(loop) != 0 || vow_loop_free(loop) != 0) return 3;
  if (!up->rejected) return 1;
  return up->ca || up->code == UV_ECONNRESET || up->code == UV_EPIPE ? 0 : 2;
}

static void expect_child_survives(upload *up) {
  fflush(NULL);
  pid_t child = fork();
  cr_assert_geq(child, 0);
  if (child == 0) _exit(upload_child(up));
  int status;
  cr_assert_eq(waitpid(child, &status, 0), child);
  cr_assert(!WIFSIGNALED(status), "the child was killed by signal %d (%s)", WTERMSIG(status),
            WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE ? "SIGPIPE" : "not SIGPIPE");
  cr_assert_eq(WEXITSTATUS(status), 0, "the child exited with %d", WEXITSTATUS(status));
}

Test(fetch, an_upload_to_a_peer_that_resets_raises_no_sigpipe) {
  upload up = {.ca = NULL};
  expect_child_survives(&up);
}

Test(fetch_tls, an_https_upload_to_a_peer_that_dies_raises_no_sigpipe) {
  char dir[] = "/tmp/vow-tls-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  if (make_certificate(dir) != 0) cr_skip_test("no openssl command to make a certificate with");
  int port = free_port();
  char ca[64];
  snprintf(ca, sizeof ca, "%s/cert.pem", dir);
  upload up = {.ca = ca, .s_server = start_s_server(dir, port)};
  snprintf(up.url, sizeof up.url, "https://127.0.0.1:%d/", port);
  expect_child_survives(&up);
  stop_s_server(up.s_server, dir);
}
