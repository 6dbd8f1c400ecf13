/*
 * test_server.c — vow's HTTP server against raw clients: plain blocking
 * sockets run on the thread pool (vow_work) while the loop serves, so every
 * byte on the wire is the test's choice — pipelined requests, garbage,
 * oversized headers and bodies, stalls, clients that vanish.
 *
 * The Node.js equivalent of the server side is http.createServer(async
 * (req, res) => ...) with server.requestTimeout / keepAliveTimeout set; each
 * test says what Node answers where it matters. Times only guard against hangs.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>
#include <uv.h>

#include "io/io.h"
#include "faults.h"
#include "log.h"
#include "core/loop.h"
#include "vow.h"

static vow_loop *loop;

static void setup(void) {
  log_reset();
  cr_assert_eq(vow_loop_new(&loop, NULL), 0);
}
static void teardown(void) {
  vow_loop_free(loop);
}
TestSuite(server, .init = setup, .fini = teardown, .timeout = 60);

/* ---- the server under test --------------------------------------------------------- */

typedef struct world {
  vow_server *srv;
  int port;
  int seq;
  int aborted;      /* request signals that fired */
  int cleanups;     /* stream generators that were told to stop */
} world;

static world W;

static void on_abort(vow_loop *l, vow_value reason, void *data) {
  (void)l, (void)reason;
  ((world *)data)->aborted++;
}

/* "one", "two", "three", a tick apart; logs its cleanup when stopped early. */
static vow_value words(vow_loop *l, vow_asyncgen *g, void *arg) {
  (void)g, (void)arg;
  static const char *w[] = {"one", "two", "three"};
  for (int i = 0; i < 3; i++) {
    vow_await(vow_delay(l, 5, vow_undefined()), NULL);
    vow_value sent;
    if (vow_yield(vow_string(w[i]), &sent) != 0) {
      W.cleanups++;
      return sent;
    }
  }
  return vow_undefined();
}

/* 64 KiB chunks until the client leaves. (Nothing it owns lives across a
 * yield: a loop teardown may drop its stack there.) */
static char x64k[65536];
static vow_value endless(vow_loop *l, vow_asyncgen *g, void *arg) {
  (void)l, (void)g, (void)arg;
  memset(x64k, 'x', sizeof x64k);
  vow_value sent = vow_undefined();
  while (vow_yield(vow_string_n(x64k, sizeof x64k), &sent) == 0) vow_unref(sent);
  W.cleanups++;
  return sent;
}

static vow_value slow_answer(vow_loop *l, vow_value v, void *ctx) {
  (void)l, (void)v, (void)ctx;
  return vow_http_response(201, NULL, vow_string("later"));
}

static vow_value handler(vow_loop *l, vow_request *req, void *data) {
  world *w = data;
  const char *t = vow_request_target(req);
  w->seq++;
  vow_abort_signal_on(vow_request_signal(req), on_abort, w);
  if (strcmp(t, "/a") == 0) {
    LOG("a-start");
    vow_await(vow_delay(l, 30, vow_undefined()), NULL);
    LOG("a-end");
    return vow_http_response(200, NULL, vow_string("A"));
  }
  if (strcmp(t, "/b") == 0 || strcmp(t, "/c") == 0) {
    LOG("%s", t + 1);
    return vow_http_response(200, NULL, vow_stringf("%s:%s", t + 1, vow_str(vow_request_body(req))));
  }
  if (strcmp(t, "/slow") == 0) {
    LOG("slow-start");
    vow_await(vow_delay(l, 100, vow_undefined()), NULL);
    LOG("slow-end");
    return vow_http_response(200, NULL, vow_string("slow"));
  }
  if (strcmp(t, "/never") == 0) {
    vow_value v;
    vow_await(vow_promise_new(l), &v); /* answered never: only the signal says goodbye */
    return v;
  }
  if (strcmp(t, "/promise") == 0) { /* a promise of a response */
    vow_promise *d = vow_delay(l, 5, vow_undefined());
    vow_promise *p = vow_then(d, slow_answer, NULL, NULL);
    vow_promise_unref(d);
    return vow_promise_value(p);
  }
  if (strcmp(t, "/throw") == 0) return vow_throw(vow_error(VOW_EINVAL, "the handler failed"));
  if (strcmp(t, "/not-a-response") == 0) return vow_int(42);
  if (strcmp(t, "/words") == 0)
    return vow_http_response_stream(200, NULL, vow_asyncgen_new(l, words, NULL));
  if (strcmp(t, "/endless") == 0)
    return vow_http_response_stream(200, NULL, vow_asyncgen_new(l, endless, NULL));
  if (strcmp(t, "/big") == 0) { /* 64 KiB */
    memset(x64k, 'x', sizeof x64k);
    return vow_http_response(200, NULL, vow_string_n(x64k, sizeof x64k));
  }
  if (strcmp(t, "/headers") == 0) {
    vow_value res = vow_http_response(200, NULL, vow_stringf("%s|%s", vow_request_method(req),
                                                             vow_request_header(req, "X-MIXED")));
    cr_assert_eq(vow_http_response_header(res, "X-Bad", "a\r\nInjected: yes"), VOW_EINVAL);
    cr_assert_eq(vow_http_response_header(vow_int(1), "X", "y"), VOW_EINVAL);
    vow_http_response_header(res, "X-Good", "yes");
    return res;
  }
  return vow_http_response(404, NULL, vow_string("nope"));
}

static void start_server(const vow_server_options *o) {
  W = (world){0};
  cr_assert_eq(vow_server_listen(loop, o, handler, &W, &W.srv), 0);
  W.port = vow_server_port(W.srv);
}

static void run(vow_async_fn body, const vow_server_options *o) {
  start_server(o);
  vow_async_options big = {.stack_size = 4 << 20, .name = "test"}; /* clients live on it */
  vow_promise *p = vow_async_ex(loop, body, NULL, &big);
  int rc = vow_loop_run(loop);
  char buf[512];
  vow_value_format(vow_promise_result(p), buf, sizeof buf);
  cr_assert_eq(rc, 0, "the loop stopped with %s", vow_err_name(rc));
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED, "main ended with %s", buf);
  vow_promise_unref(p);
}

static vow_value close_server(void) {
  cr_assert_eq(vow_await(vow_server_close(W.srv), NULL), 0);
  return vow_undefined();
}

/* ---- a raw client, on a pool thread ----------------------------------------------- */

typedef struct client {
  int port;
  const char *send;      /* bytes to send at once */
  size_t send_len;       /* 0: strlen(send) */
  int responses;         /* complete responses to read (0: none) */
  const char *send2;     /* then this, on the same connection... */
  int responses2;        /* ...and this many more responses */
  int close_after;       /* close right after sending (abrupt) */
  int read_some;         /* read this many bytes, then close (a reader that vanishes) */
  int want_eof;          /* then wait for the server to close */
  int drip;              /* send one byte at a time */
  /* results */
  int connected;
  int connect_errno;
  char out[1 << 16];
  size_t out_len;
  size_t total;          /* bytes read in all (read_some keeps only the last ones) */
  int eof;               /* the server closed the connection */
} client;

static const char *find(const char *hay, size_t n, const char *needle, size_t m) {
  for (size_t i = 0; n >= m && i <= n - m; i++)
    if (memcmp(hay + i, needle, m) == 0) return hay + i;
  return NULL;
}

/* Length of the first complete response in buf, or 0. Understands
 * Content-Length, chunked, and (for close-delimited bodies) nothing. */
static size_t response_len(const char *buf, size_t len) {
  const char *end = find(buf, len, "\r\n\r\n", 4);
  if (!end) return 0;
  size_t head = (size_t)(end - buf) + 4;
  char headers[8192];
  size_t hn = head < sizeof headers - 1 ? head : sizeof headers - 1;
  memcpy(headers, buf, hn);
  headers[hn] = '\0';
  for (char *p = headers; *p; p++) *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
  const char *cl = strstr(headers, "content-length:");
  if (cl) {
    size_t n = strtoull(cl + 15, NULL, 10);
    return len >= head + n ? head + n : 0;
  }
  if (strstr(headers, "transfer-encoding: chunked")) {
    const char *z = find(buf + head, len - head, "\r\n0\r\n\r\n", 7);
    if (!z && len - head >= 5 && memcmp(buf + head, "0\r\n\r\n", 5) == 0) return head + 5;
    return z ? (size_t)(z - buf) + 7 : 0;
  }
  return head;
}

static size_t count_responses(const char *buf, size_t len) {
  size_t n = 0, off = 0, r;
  while ((r = response_len(buf + off, len - off)) > 0) off += r, n++;
  return n;
}

static int read_more(client *c, int fd) {
  if (c->out_len >= sizeof c->out) return 0;
  ssize_t n = recv(fd, c->out + c->out_len, sizeof c->out - c->out_len, 0);
  if (n == 0) c->eof = 1;
  if (n <= 0) return 0;
  c->out_len += (size_t)n;
  c->total += (size_t)n;
  if (c->read_some && c->out_len == sizeof c->out) c->out_len = 0; /* keep reading */
  return 1;
}

static void send_all(int fd, const char *s, size_t n) {
  while (n) {
    ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    s += w, n -= (size_t)w;
  }
}

static vow_value client_run(void *arg) {
  client *c = arg;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct timeval guard = {5, 0}; /* a hang guard, never a timing claim */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof guard);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    c->connect_errno = errno;
    close(fd);
    return vow_undefined();
  }
  c->connected = 1;
  size_t send_len = c->send && c->send_len ? c->send_len : c->send ? strlen(c->send) : 0;
  for (size_t i = 0; c->drip && i < send_len; i++) {
    send_all(fd, c->send + i, 1);
    uv_sleep(1); /* so that most bytes come in reads of their own */
  }
  if (c->send && !c->drip) send_all(fd, c->send, send_len);
  if (c->close_after) {
    close(fd);
    return vow_undefined();
  }
  while (c->read_some && (int)c->total < c->read_some && read_more(c, fd)) {}
  if (c->read_some) {
    close(fd);
    return vow_undefined();
  }
  while ((int)count_responses(c->out, c->out_len) < c->responses && read_more(c, fd)) {}
  if (c->send2) {
    send_all(fd, c->send2, strlen(c->send2));
    int total = c->responses + c->responses2;
    while ((int)count_responses(c->out, c->out_len) < total && read_more(c, fd)) {}
  }
  if (c->want_eof)
    while (read_more(c, fd)) {}
  c->out[c->out_len < sizeof c->out ? c->out_len : sizeof c->out - 1] = '\0';
  close(fd);
  return vow_undefined();
}

/* Starts the client on the pool; await the promise for it to finish. */
static vow_promise *client_start(client *c) {
  c->port = W.port;
  return vow_work(loop, client_run, c);
}

static void client_do(client *c) {
  cr_assert_eq(vow_await(client_start(c), NULL), 0);
  if (c->out_len < sizeof c->out) c->out[c->out_len] = '\0';
}

static void wait_for(int *counter, int n) {
  for (int i = 0; i < 2000 && *counter < n; i++) vow_await(vow_delay(loop, 2, vow_undefined()), NULL);
  cr_assert_eq(*counter, n);
}

static void wait_no_connections(void) {
  for (int i = 0; i < 2000 && vow__server_connections(W.srv) > 0; i++)
    vow_await(vow_delay(loop, 2, vow_undefined()), NULL);
  cr_assert_eq(vow__server_connections(W.srv), 0);
}

/* The server still answers a plain request. */
static void assert_healthy(void) {
  client c = {.send = "GET /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok", .responses = 1};
  client_do(&c);
  cr_assert(strstr(c.out, "HTTP/1.1 200 OK\r\n") == c.out, "%s", c.out);
  cr_assert(strstr(c.out, "\r\n\r\nb:ok") != NULL, "%s", c.out);
}

/* ---- keep-alive and pipelining ------------------------------------------------------------ */

/* Three requests in one packet (the second with a Content-Length body, the third
 * chunked), then a fourth on the same connection: answered in order, although
 * the first takes longest. Node answers pipelined requests in order too. */
static vow_value t_pipelining(vow_loop *l, void *a) {
  (void)l, (void)a;
  client c = {
      .send = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
              "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
              "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
      .responses = 3,
      .send2 = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
      .responses2 = 1,
  };
  client_do(&c);
  const char *a1 = strstr(c.out, "\r\n\r\nA");
  const char *b1 = strstr(c.out, "\r\n\r\nb:hello");
  const char *c1 = strstr(c.out, "\r\n\r\nc:abcde");
  const char *b2 = strstr(c.out, "\r\n\r\nb:");
  cr_assert(a1 && b1 && c1, "%s", c.out);
  cr_assert(a1 < b1 && b1 < c1, "in order: %s", c.out);
  cr_assert(b2 && strstr(c1, "b:") != NULL, "the fourth, on the same connection");
  cr_assert_eq(count_responses(c.out, c.out_len), 4);
  cr_assert(strstr(c.out, "Connection: keep-alive") != NULL);
  cr_assert_eq(W.seq, 4);
  cr_assert_str_eq(LOG_TEXT(), "a-start a-end b c b");
  return close_server();
}
LOOP_TEST(server, keep_alive_and_pipelining_in_order) { run(t_pipelining, NULL); }

/* HTTP/1.0 without keep-alive: one answer, then the server closes. */
static vow_value t_http10(vow_loop *l, void *a) {
  (void)l, (void)a;
  client c = {.send = "GET /b HTTP/1.0\r\n\r\n", .responses = 1, .want_eof = 1};
  client_do(&c);
  cr_assert(strstr(c.out, "Connection: close") != NULL, "%s", c.out);
  cr_assert(c.eof);
  client k = {.send = "GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", .responses = 1,
              .send2 = "GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", .responses2 = 1};
  client_do(&k);
  cr_assert_eq(count_responses(k.out, k.out_len), 2, "%s", k.out);
  client s = {.send = "GET /words HTTP/1.0\r\n\r\n", .want_eof = 1};
  client_do(&s);
  cr_assert(strstr(s.out, "\r\n\r\nonetwothree") != NULL, "HTTP/1.0: no chunking, the close ends it: %s", s.out);
  return close_server();
}
LOOP_TEST(server, http10_closes_unless_keep_alive) { run(t_http10, NULL); }

/* Expect: 100-continue: the server says "go on" before the body is sent (as Node does). */
static vow_value t_continue(vow_loop *l, void *a) {
  (void)l, (void)a;
  client c = {.send = "POST /b HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
              .responses = 1, .send2 = "body", .responses2 = 1};
  client_do(&c);
  cr_assert(strncmp(c.out, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n", 42) == 0, "%s", c.out);
  cr_assert(strstr(c.out, "\r\n\r\nb:body") != NULL, "%s", c.out);
  return close_server();
}
LOOP_TEST(server, expect_100_continue) { run(t_continue, NULL); }

/* The idle keep-alive connection closes after keepalive_timeout_ms, silently. */
static vow_value t_keepalive_timeout(vow_loop *l, void *a) {
  (void)l, (void)a;
  client c = {.send = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n", .responses = 1, .want_eof = 1};
  client_do(&c);
  cr_assert(c.eof);
  cr_assert_eq(count_responses(c.out, c.out_len), 1, "nothing after the answer: %s", c.out);
  return close_server();
}
LOOP_TEST(server, idle_keep_alive_connection_closes) {
  vow_server_options o = {.keepalive_timeout_ms = 50};
  run(t_keepalive_timeout, &o);
}

/* ---- responses ---------------------------------------------------------------------------- */

/* A promise of a response, a thrown error (500), a value that is not a response
 * (500), HEAD (headers only), headers both ways. */
static vow_value t_responses(vow_loop *l, void *a) {
  (void)l, (void)a;
  client c = {.send = "GET /promise HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /throw HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /not-a-response HTTP/1.1\r\nHost: x\r\n\r\n"
                      "HEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"
                      "PUT /headers HTTP/1.1\r\nHost: x\r\nx-mixed: Case\r\nContent-Length: 0\r\n\r\n",
              .responses = 5};
  client_do(&c);
  const char *p = c.out;
  cr_assert(strstr(p, "HTTP/1.1 201 Created\r\n") == p, "%s", p);
  cr_assert((p = strstr(p, "HTTP/1.1 500 Internal Server Error")) != NULL, "thrown: %s", c.out);
  cr_assert((p = strstr(p + 1, "HTTP/1.1 500 Internal Server Error")) != NULL, "not a response");
  cr_assert((p = strstr(p + 1, "HTTP/1.1 200 OK")) != NULL, "HEAD");
  cr_assert(strstr(p, "Content-Length: 2\r\n") != NULL, "HEAD tells the length...");
  const char *put = strstr(p, "HTTP/1.1 200 OK\r\nContent-Type");
  cr_assert(put && strstr(p, "\r\n\r\nb:") == NULL, "...but sends no body");
  put = strstr(p + 1, "HTTP/1.1 200 OK");
  cr_assert(put && strstr(put, "X-Good: yes\r\n") != NULL, "%s", put);
  cr_assert(strstr(put, "Injected") == NULL);
  cr_assert(strstr(put, "\r\n\r\nPUT|Case") != NULL, "%s", put);
  return close_server();
}
LOOP_TEST(server, handler_results_and_errors) { run(t_responses, NULL); }

/* A streamed response: chunked, each chunk written before the next is pulled. */
static vow_value t_stream(vow_loop *l, void *a) {
  (void)l, (void)a;
  client c = {.send = "GET /words HTTP/1.1\r\nHost: x\r\n\r\n", .responses = 1};
  client_do(&c);
  cr_assert(strstr(c.out, "Transfer-Encoding: chunked\r\n") != NULL, "%s", c.out);
  cr_assert(strstr(c.out, "\r\n\r\n3\r\none\r\n3\r\ntwo\r\n5\r\nthree\r\n0\r\n\r\n") != NULL, "%s", c.out);
  cr_assert_eq(W.cleanups, 0);
  return close_server();
}
LOOP_TEST(server, streamed_response_is_chunked) { run(t_stream, NULL); }

/* ---- bad input ------------------------------------------------------------------------------- */

static void assert_status_and_close(client *c, const char *status) {
  cr_assert(strncmp(c->out, status, strlen(status)) == 0, "expected %s, got: %.200s", status, c->out);
  cr_assert(strstr(c->out, "Connection: close\r\n") != NULL);
  cr_assert(c->eof, "the server closed the connection");
}

/* Garbage: 400 and close (Node: 400 Bad Request, then it destroys the socket). */
static vow_value t_garbage(vow_loop *l, void *a) {
  (void)l, (void)a;
  client c = {.send = "\x16\x03\x01 this is not HTTP\r\n\r\n", .want_eof = 1};
  client_do(&c);
  assert_status_and_close(&c, "HTTP/1.1 400 Bad Request\r\n");
  client d = {.send = "GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n", .want_eof = 1};
  client_do(&d);
  assert_status_and_close(&d, "HTTP/1.1 400 Bad Request\r\n");
  client e = {.send = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", .want_eof = 1};
  client_do(&e);
  assert_status_and_close(&e, "HTTP/1.1 400 Bad Request\r\n");
  assert_healthy();
  wait_no_connections();
  return close_server();
}
LOOP_TEST(server, malformed_request_gets_400) { run(t_garbage, NULL); }

/* Headers over max_header_bytes: 431 (Node: 431 past its 16 KiB default). */
static vow_value t_big_headers(vow_loop *l, void *a) {
  (void)l, (void)a;
  static char req[8192];
  int n = snprintf(req, sizeof req, "GET /b HTTP/1.1\r\nX-Big: ");
  memset(req + n, 'h', 4000);
  strcpy(req + n + 4000, "\r\n\r\n");
  client c = {.send = req, .want_eof = 1};
  client_do(&c);
  assert_status_and_close(&c, "HTTP/1.1 431 Request Header Fields Too Large\r\n");
  assert_healthy();
  return close_server();
}
LOOP_TEST(server, oversized_headers_get_431) {
  vow_server_options o = {.max_header_bytes = 1024};
  run(t_big_headers, &o);
}

/* Bodies over max_body_bytes: 413, announced (Content-Length) or found out (chunked). */
static vow_value t_big_body(vow_loop *l, void *a) {
  (void)l, (void)a;
  client c = {.send = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\nonly the start", .want_eof = 1};
  client_do(&c);
  assert_status_and_close(&c, "HTTP/1.1 413 Payload Too Large\r\n");
  static char req[4096];
  int n = snprintf(req, sizeof req, "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 3; i++) n += snprintf(req + n, sizeof req - (size_t)n, "190\r\n%0400d\r\n", 0);
  snprintf(req + n, sizeof req - (size_t)n, "0\r\n\r\n");
  client d = {.send = req, .want_eof = 1};
  client_do(&d);
  assert_status_and_close(&d, "HTTP/1.1 413 Payload Too Large\r\n");
  assert_healthy();
  return close_server();
}
LOOP_TEST(server, oversized_body_gets_413) {
  vow_server_options o = {.max_body_bytes = 1000};
  run(t_big_body, &o);
}

/* A request not complete within request_timeout_ms: 408 and close (Node's
 * requestTimeout). A connection that never sends a byte gets the same. */
static vow_value t_stalled(vow_loop *l, void *a) {
  (void)l, (void)a;
  client c = {.send = "GET /b HTTP/1.1\r\nHost: x\r\n", .want_eof = 1};
  client d = {.send = "", .want_eof = 1};
  client e = {.send = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc", .want_eof = 1};
  vow_promise *pd = client_start(&d), *pe = client_start(&e);
  client_do(&c);
  assert_status_and_close(&c, "HTTP/1.1 408 Request Timeout\r\n");
  cr_assert_eq(vow_await(pd, NULL), 0);
  assert_status_and_close(&d, "HTTP/1.1 408 Request Timeout\r\n");
  cr_assert_eq(vow_await(pe, NULL), 0);
  assert_status_and_close(&e, "HTTP/1.1 408 Request Timeout\r\n");
  assert_healthy();
  cr_assert_eq(W.seq, 1, "no handler ran for the stalled requests");
  return close_server();
}
LOOP_TEST(server, stalled_request_gets_408) {
  vow_server_options o = {.request_timeout_ms = 150};
  run(t_stalled, &o);
}

/* Half a request, then the client closes: nothing to answer, nothing left over. */
static vow_value t_half(vow_loop *l, void *a) {
  (void)l, (void)a;
  client c = {.send = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf", .close_after = 1};
  client_do(&c);
  client d = {.send = "GET /b HTT", .close_after = 1};
  client_do(&d);
  wait_no_connections();
  cr_assert_eq(W.seq, 0);
  assert_healthy();
  return close_server();
}
LOOP_TEST(server, half_request_then_close) { run(t_half, NULL); }

/* The client leaves while its handler runs: the request's signal aborts
 * (Node: req 'close' / res 'close' before 'finish'). */
static vow_value t_vanish_mid_handler(vow_loop *l, void *a) {
  (void)l, (void)a;
  client c = {.send = "GET /never HTTP/1.1\r\nHost: x\r\n\r\n", .close_after = 1};
  client_do(&c);
  wait_for(&W.aborted, 1);
  wait_no_connections();
  assert_healthy();
  cr_assert_eq(W.aborted, 1, "an answered request is not aborted");
  return close_server();
}
LOOP_TEST(server, client_vanishes_mid_handler) { run(t_vanish_mid_handler, NULL); }

/* The client leaves mid-stream: the writes fail, the generator is told to
 * stop (its cleanup runs) and the signal aborts. */
static vow_value t_vanish_mid_stream(vow_loop *l, void *a) {
  (void)l, (void)a;
  client c = {.send = "GET /endless HTTP/1.1\r\nHost: x\r\n\r\n", .read_some = 200000};
  client_do(&c);
  cr_assert_geq(c.total, 200000);
  wait_for(&W.cleanups, 1);
  wait_for(&W.aborted, 1);
  wait_no_connections();
  assert_healthy();
  return close_server();
}
LOOP_TEST(server, client_vanishes_mid_stream) { run(t_vanish_mid_stream, NULL); }

/* ---- closing -------------------------------------------------------------------------------- */

/* server.close() with a request in flight: it is answered (with Connection:
 * close), idle connections go at once, new ones are refused, then the promise
 * fulfils. */
static vow_value t_graceful(vow_loop *l, void *a) {
  (void)l, (void)a;
  client idle = {.send = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n", .responses = 1, .want_eof = 1};
  client busy = {.send = "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", .responses = 1, .want_eof = 1};
  vow_promise *pi = client_start(&idle);
  for (int i = 0; i < 2000 && W.seq < 1; i++) vow_await(vow_delay(loop, 2, vow_undefined()), NULL);
  vow_promise *pb = client_start(&busy);
  for (int i = 0; i < 2000 && W.seq < 2; i++) vow_await(vow_delay(loop, 2, vow_undefined()), NULL);
  cr_assert_str_eq(LOG_TEXT(), "b slow-start");
  vow_promise *closed = vow_server_close(W.srv);
  LOG("close-called");
  client late = {.send = "GET /b HTTP/1.1\r\n\r\n"};
  client_do(&late);
  cr_assert_not(late.connected, "no new connections once closing");
  cr_assert_eq(vow_await(pi, NULL), 0);
  cr_assert(idle.eof, "the idle keep-alive connection was closed");
  cr_assert_eq(vow_await(pb, NULL), 0);
  cr_assert(strstr(busy.out, "HTTP/1.1 200 OK\r\n") == busy.out, "%s", busy.out);
  cr_assert(strstr(busy.out, "Connection: close\r\n") != NULL, "%s", busy.out);
  cr_assert(strstr(busy.out, "\r\n\r\nslow") != NULL);
  cr_assert(busy.eof);
  cr_assert_eq(vow_await(closed, NULL), 0);
  LOG("closed");
  cr_assert_str_eq(LOG_TEXT(), "b slow-start close-called slow-end closed");
  return vow_undefined();
}
LOOP_TEST(server, graceful_close_with_a_request_in_flight) { run(t_graceful, NULL); }

static vow_value t_listen_errors(vow_loop *l, void *a) {
  (void)a;
  vow_server *other;
  vow_server_options o = {.port = W.port};
  cr_assert_eq(vow_server_listen(l, &o, handler, NULL, &other), UV_EADDRINUSE);
  cr_assert_null(other);
  vow_server_options bad = {.host = "not an address"};
  cr_assert_eq(vow_server_listen(l, &bad, handler, NULL, &other), VOW_EINVAL);
  vow_server_options v6 = {.host = "::1"};
  int rc = vow_server_listen(l, &v6, handler, NULL, &other);
  if (rc == 0) { /* where IPv6 loopback exists */
    cr_assert_gt(vow_server_port(other), 0);
    vow_await(vow_server_close(other), NULL);
  }
  cr_assert_eq(vow_server_listen(l, NULL, NULL, NULL, &other), VOW_EINVAL);
  return close_server();
}
LOOP_TEST(server, listen_errors) { run(t_listen_errors, NULL); }

/* vow_loop_free with connections open, a handler suspended forever, a stream
 * mid-flight and a client half-way through a request: all released. */
static void stop_run(vow_loop *l, void *arg) {
  (void)arg;
  vow__loop_fail(l, VOW_ECLOSING);
}
/* Plain threads here, not vow_work: the clients must outlive the loop. */
static client tc[3];
static uv_thread_t tc_thread[3];
static void client_thread(void *arg) {
  vow_unref(client_run(arg));
}
static vow_value t_teardown(vow_loop *l, void *a) {
  (void)a;
  tc[0] = (client){.send = "GET /never HTTP/1.1\r\nHost: x\r\n\r\n", .responses = 1};
  tc[1] = (client){.send = "GET /endless HTTP/1.1\r\nHost: x\r\n\r\n", .read_some = 1 << 30};
  tc[2] = (client){.send = "GET /never HTTP/1.1\r\nHost:", .responses = 1};
  for (int i = 0; i < 3; i++) {
    tc[i].port = W.port;
    uv_thread_create(&tc_thread[i], client_thread, &tc[i]);
  }
  for (int i = 0; i < 2000 && (W.seq < 2 || vow__server_connections(W.srv) < 3); i++)
    vow_await(vow_delay(loop, 2, vow_undefined()), NULL);
  vow_set_timeout(l, 20, stop_run, NULL);
  vow_value never;
  vow_await(vow_promise_new(l), &never);
  return never;
}
LOOP_TEST(server, loop_free_with_connections_open) {
  start_server(NULL);
  vow_promise *p = vow_async(loop, t_teardown, NULL);
  cr_assert_eq(vow_loop_run(loop), VOW_ECLOSING);
  size_t open = vow__server_connections(W.srv);
  vow_promise_unref(p);
  cr_assert_eq(vow_loop_free(loop), 0);
  loop = NULL;
  for (int i = 0; i < 3; i++) uv_thread_join(&tc_thread[i]); /* each saw its connection close */
  cr_assert_eq(open, 3);
  for (int i = 0; i < 3; i++) cr_assert(tc[i].eof);
}

/* Header lists (http.c), shared by the server and fetch: a repeated name is
 * joined with ", " in a merging list and kept line by line in a plain one; the
 * list is one allocation that stays within a small multiple of what it holds,
 * however often a peer repeats a header. */
Test(server, header_lists_join_repeats_and_stay_bounded) {
  vow__headers h = {0};
  cr_assert_eq(vow__headers_add(&h, "Accept", 6, "  text/html ", 12, 1), 0);
  cr_assert_eq(vow__headers_add(&h, "accept", 6, "text/plain", 10, 1), 0);
  cr_assert_str_eq(vow__headers_get(&h, "ACCEPT"), "text/html, text/plain");
  cr_assert_eq(h.len, 1);
  for (int i = 0; i < 3000; i++) cr_assert_eq(vow__headers_add(&h, "X-Many", 6, "b", 1, 1), 0);
  size_t joined = strlen(vow__headers_get(&h, "x-many"));
  cr_assert_eq(joined, 1 + 2999 * 3);
  cr_assert_leq(h.text_cap, 8 * (joined + 64), "text %zu bytes for %zu live", h.text_cap, joined);
  cr_assert_str_eq(vow__headers_get(&h, "Accept"), "text/html, text/plain", "earlier entries survive growth");
  vow__headers_clear(&h);
  cr_assert_eq(vow__headers_add(&h, "Set-Cookie", 10, "a=1", 3, 0), 0);
  cr_assert_eq(vow__headers_add(&h, "Set-Cookie", 10, "b=2", 3, 0), 0);
  cr_assert_eq(h.len, 2);
  cr_assert_str_eq(h.items[1].value, "b=2");
  cr_assert_null(vow__headers_get(&h, "missing"));
  vow__headers_clear(&h);
}

/* ---- SIGPIPE ------------------------------------------------------------------------------ */

/* A client that shuts its side (FIN) and is gone by the time the answer
 * comes: its kernel answers the first bytes with a reset, and the next write
 * on a socket in CLOSE_WAIT that got a reset fails with EPIPE — which, without
 * MSG_NOSIGNAL, also raises SIGPIPE, whose default action kills the process
 * (exit by signal 13, "141" in a shell). libuv writes without MSG_NOSIGNAL.
 * The server's reading is stopped here (the client pipelined more than the
 * server buffers while a request is handled), so it cannot see the FIN first.
 * Node: the same client makes res.write fail with EPIPE, and the process
 * lives on, since Node ignores SIGPIPE at startup. */
static volatile int sp_client_gone;
static int sp_port, sp_cleanups;

static void sp_client(void *arg) {
  (void)arg;
  static char junk[160 * 1024];
  size_t n = (size_t)snprintf(junk, sizeof junk, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n");
  while (n + 64 < sizeof junk) n += (size_t)snprintf(junk + n, 64, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n");
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)sp_port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
    for (size_t off = 0; off < n;) { /* as much as the buffers take, never blocking */
      ssize_t w = send(fd, junk + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w <= 0) break;
      off += (size_t)w;
    }
  }
  close(fd); /* nothing unread: a FIN */
  sp_client_gone = 1;
}

static vow_value sp_endless(vow_loop *l, vow_asyncgen *g, void *arg) {
  (void)g, (void)arg;
  vow_value sent = vow_undefined();
  for (;;) {
    vow_await(vow_delay(l, 1, vow_undefined()), NULL); /* a tick for the reset to land */
    if (vow_yield(vow_string("more"), &sent) != 0) break;
    vow_unref(sent);
  }
  sp_cleanups++;
  return sent;
}

static vow_value sp_handler(vow_loop *l, vow_request *req, void *data) {
  (void)data;
  if (strcmp(vow_request_target(req), "/hold") != 0) return vow_http_response(200, NULL, vow_string("b"));
  while (!sp_client_gone) vow_await(vow_delay(l, 1, vow_undefined()), NULL);
  return vow_http_response_stream(200, NULL, vow_asyncgen_new(l, sp_endless, NULL));
}

static vow_value sp_main(vow_loop *l, void *srv) {
  for (int round = 0; round < 3; round++) {
    sp_client_gone = 0;
    uv_thread_t t;
    uv_thread_create(&t, sp_client, NULL);
    for (int i = 0; i < 5000 && sp_cleanups <= round; i++) vow_await(vow_delay(l, 1, vow_undefined()), NULL);
    uv_thread_join(&t);
  }
  vow_await(vow_server_close(srv), NULL);
  return vow_undefined();
}

/* The server in a child process with SIGPIPE at its default: it must exit 0. */
static int sp_child(void) {
  signal(SIGPIPE, SIG_DFL);
  vow_loop *l;
  vow_server *srv;
  if (vow_loop_new(&l, NULL) != 0 || vow_server_listen(l, NULL, sp_handler, NULL, &srv) != 0) return 2;
  sp_port = vow_server_port(srv);
  vow_promise *p = vow_async(l, sp_main, srv);
  if (vow_loop_run(l) != 0 || vow_promise_state(p) != VOW_FULFILLED) return 3;
  vow_promise_unref(p);
  vow_loop_free(l);
  return sp_cleanups == 3 ? 0 : 4;
}

Test(server, a_vanished_client_never_kills_the_process) {
  fflush(NULL);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) _exit(sp_child());
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert_not(WIFSIGNALED(status), "the server died of signal %d (%s)", WTERMSIG(status),
                strsignal(WTERMSIG(status)));
  cr_assert_eq(WEXITSTATUS(status), 0, "the child failed at step %d", WEXITSTATUS(status));
}

/* vow only ignores SIGPIPE where nobody chose otherwise: a handler of the
 * program's own, or SIG_IGN, stays as it was; SIG_DFL becomes SIG_IGN. */
static void my_sigpipe(int sig) { (void)sig; }
Test(server, sigpipe_handler_of_the_program_stays) {
  vow_loop_free(loop);
  loop = NULL;
  struct sigaction mine = {.sa_handler = my_sigpipe}, now;
  sigemptyset(&mine.sa_mask);
  cr_assert_eq(sigaction(SIGPIPE, &mine, NULL), 0);
  vow_loop *l;
  cr_assert_eq(vow_loop_new(&l, NULL), 0);
  sigaction(SIGPIPE, NULL, &now);
  cr_assert_eq(now.sa_handler, my_sigpipe, "the program's handler is still installed");
  vow_loop_free(l);
  signal(SIGPIPE, SIG_DFL);
  cr_assert_eq(vow_loop_new(&l, NULL), 0);
  sigaction(SIGPIPE, NULL, &now);
  cr_assert_eq(now.sa_handler, SIG_IGN, "the default (death) became ignore");
  vow_loop_free(l);
}

/* ---- bounded buffering -------------------------------------------------------------------- */

/* A client that pipelines requests and never reads its answers: once the
 * answers back up (more than the server queues for one connection), the
 * server stops parsing, and it must then stop reading too, whatever state the
 * connection is in — otherwise the requests pile up in its memory as fast as
 * the client sends them. Node: the socket is paused once its write buffer is
 * past the high-water mark, and the kernel's buffers push back on the client. */
typedef struct flood {
  int port;
  size_t sent;
} flood;

static vow_value flood_run(void *arg) {
  flood *f = arg;
  static const char req[] = "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"; /* answered with 64 KiB */
  int n = (int)sizeof req - 1;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) return vow_undefined();
  /* Up to 4 MiB of requests, until the server stops taking them. */
  for (int off = 0; f->sent < (4u << 20);) {
    ssize_t w = send(fd, req + off, (size_t)(n - off), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      f->sent += (size_t)w;
      off = (off + (int)w) % n;
      continue;
    }
    struct pollfd p = {fd, POLLOUT, 0};
    if (w < 0 && errno == EAGAIN && poll(&p, 1, 200) == 1) continue;
    break; /* the server pushes back: it stopped reading */
  }
  /* A few answers (the server has had time to read all it would), then a
   * reset: the rest of the answers, gigabytes, are never read. */
  struct timeval guard = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof guard);
  static char sink[1 << 16];
  ssize_t got;
  for (size_t total = 0; total < (256u << 10) && (got = recv(fd, sink, sizeof sink, 0)) > 0;)
    total += (size_t)got;
  struct linger reset = {1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
  close(fd);
  return vow_undefined();
}

static vow_value t_never_reads(vow_loop *l, void *a) {
  (void)a;
  flood f = {.port = W.port};
  cr_assert_eq(vow_await(vow_work(l, flood_run, &f), NULL), 0);
  size_t peak = vow__server_input_peak(W.srv);
  cr_assert_gt(f.sent, 512 * 1024, "the client sent %zu bytes", f.sent);
  cr_assert_leq(peak, 512 * 1024, "one connection buffered %zu of the %zu request bytes sent", peak, f.sent);
  wait_no_connections();
  assert_healthy();
  return close_server();
}
LOOP_TEST(server, a_client_that_never_reads_is_not_buffered_without_bound) { run(t_never_reads, NULL); }

/* ---- out of memory while accepting ------------------------------------------------------- */

/* A connection that arrives when no memory is left for it is accepted and
 * closed at once, and the server goes on listening: had it left the
 * connection in the backlog, libuv would stop polling the listener for good. */
static int oom_client_done;
static client oom_client;
static void oom_client_thread(void *arg) {
  vow_unref(client_run(arg));
  oom_client_done = 1;
}
static vow_value t_after_oom(vow_loop *l, void *a) {
  (void)l, (void)a;
  assert_healthy();
  return close_server();
}
LOOP_TEST(server, out_of_memory_at_accept_closes_and_keeps_listening) {
  start_server(NULL);
  oom_client = (client){.port = W.port, .send = "", .want_eof = 1}; /* silent: the close is a FIN */
  uv_thread_t t;
  uv_thread_create(&t, oom_client_thread, &oom_client);
  fault_arm(1, FAULT_FROM); /* no allocation succeeds while the client connects */
  for (int i = 0; i < 5000 && !oom_client_done; i++) {
    uv_run(vow_loop_uv(loop), UV_RUN_NOWAIT);
    uv_sleep(1);
  }
  fault_disarm();
  uv_thread_join(&t);
  cr_assert(oom_client.connected && oom_client.eof, "the connection was accepted and closed");
  cr_assert_eq(oom_client.out_len, 0, "nothing could be said: %s", oom_client.out);
  vow_promise *p = vow_async(loop, t_after_oom, NULL);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED, "the next client was served");
  vow_promise_unref(p);
}

/* ---- strict request syntax ---------------------------------------------------------------- */

/* What Node 20's strict parser (llhttp) refuses, vow refuses: each request on
 * its own connection, answered with the status and then closed. Node's
 * answers (tools: a node http.createServer and these bytes, 2026-12):
 *   "Content-Length : 3" (space before the colon)  400   (RFC 9112 5.1: MUST 400;
 *   "Transfer Encoding:", "X-A\t:"                 400    else the space smuggles)
 *   a bare LF ending any line of the head          400
 *   obs-fold (a line starting with SP or HT)       400
 *   a CR not followed by LF, an empty name         400
 *   a control byte in a value                      400
 *   HTTP/1.1 without Host                          400
 *   HTTP/1.2, HTTP/3.1                             400
 * Where vow is stricter than Node, RFC 9112 decides: two Host lines get 400
 * (3.2: "MUST respond with a 400 ... more than one Host header field line";
 * Node answers 200 with the first), and HTTP/2.0 and HTTP/0.9 in a request
 * line get 505 (Node answers them 200 as 1.x); 1.2 and 3.1 get 505 too: the
 * status that says what is wrong. Accepted as by Node: HTTP/1.0 without
 * Host, an empty Host, a tab inside a value, a CRLF before the request line. */
typedef struct syntax_case {
  const char *name, *request, *status;
} syntax_case;

static const syntax_case syntax_cases[] = {
    {"space before colon", "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length : 3\r\n\r\nabc", "400"},
    {"space in a name", "GET /b HTTP/1.1\r\nHost: x\r\nTransfer Encoding: chunked\r\n\r\n", "400"},
    {"tab before colon", "GET /b HTTP/1.1\r\nHost: x\r\nX-A\t: 1\r\n\r\n", "400"},
    {"bare LF everywhere", "GET /b HTTP/1.1\nHost: x\n\n", "400"},
    {"bare LF after a header", "GET /b HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n", "400"},
    {"bare LF after the request line", "GET /b HTTP/1.1\nHost: x\r\n\r\n", "400"},
    {"bare LF ending the head", "GET /b HTTP/1.1\r\nHost: x\r\n\n", "400"},
    {"obs-fold", "GET /b HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", "400"},
    {"obs-fold with a tab", "GET /b HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\t2\r\n\r\n", "400"},
    {"a lone CR", "GET /b HTTP/1.1\r\nHost: x\rX-A: 1\r\n\r\n", "400"},
    {"an empty name", "GET /b HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n", "400"},
    {"a control byte in a value", "GET /b HTTP/1.1\r\nHost: x\r\nX-A: a\x01" "b\r\n\r\n", "400"},
    {"HTTP/1.1 without Host", "GET /b HTTP/1.1\r\n\r\n", "400"},
    {"two Host lines", "GET /b HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", "400"},
    {"two Host lines, HTTP/1.0", "GET /b HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", "400"},
    {"HTTP/1.2", "GET /b HTTP/1.2\r\nHost: x\r\n\r\n", "505"},
    {"HTTP/2.0", "GET /b HTTP/2.0\r\nHost: x\r\n\r\n", "505"},
    {"HTTP/0.9", "GET /b HTTP/0.9\r\nHost: x\r\n\r\n", "505"},
    {"HTTP/1.0 without Host", "GET /b HTTP/1.0\r\n\r\n", "200"},
    {"an empty Host", "GET /b HTTP/1.1\r\nHost:\r\n\r\n", "200"},
    {"a tab inside a value", "GET /b HTTP/1.1\r\nHost: x\r\nX-A: a\tb\r\n\r\n", "200"},
    {"a CRLF before the request line", "\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n", "200"},
};

static vow_value t_strict(vow_loop *l, void *a) {
  (void)l, (void)a;
  for (size_t i = 0; i < sizeof syntax_cases / sizeof *syntax_cases; i++) {
    const syntax_case *k = &syntax_cases[i];
    client c = {.send = k->request, .responses = 1};
    client_do(&c);
    char want[32];
    snprintf(want, sizeof want, "HTTP/1.1 %s ", k->status);
    cr_expect(strncmp(c.out, want, strlen(want)) == 0, "%s: expected %s, got: %.60s", k->name,
              k->status, c.out);
  }
  /* Byte by byte, the same verdicts: the checks hold across reads. */
  client d = {.send = "GET /b HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n", .want_eof = 1, .drip = 1};
  client_do(&d);
  assert_status_and_close(&d, "HTTP/1.1 400 Bad Request\r\n");
  cr_assert_eq(W.seq, 4, "only the four good requests reached the handler");
  assert_healthy();
  return close_server();
}
LOOP_TEST(server, request_syntax_is_strict) { run(t_strict, NULL); }

/* ---- header lists stay linear ----------------------------------------------------------- */

/* Many distinct names (a peer's 4800 tiny headers, or a response's 40 000):
 * each add and lookup finds its name in constant time, not by a scan of the
 * list. Many repeats of a few names, interleaved (each joined in a merging
 * list): the joined values grow in place, not by a copy per repeat. The work
 * counter counts names compared and bytes copied. */
Test(server, header_lists_stay_linear) {
  enum { N = 40000 };
  vow__headers h = {0};
  char name[32];
  vow__headers_work = 0;
  for (int i = 0; i < N; i++) {
    int n = snprintf(name, sizeof name, "X-Header-%d", i);
    cr_assert_eq(vow__headers_add(&h, name, (size_t)n, "v", 1, 1), 0);
  }
  for (int i = 0; i < N; i += 7) {
    snprintf(name, sizeof name, "x-HEADER-%d", i);
    cr_assert_str_eq(vow__headers_get(&h, name), "v");
  }
  cr_assert_eq(h.len, N);
  size_t bytes = h.text_len;
  cr_assert_leq(vow__headers_work, 8 * (size_t)N + 4 * bytes, "%zu units of work for %d names",
                vow__headers_work, N);
  vow__headers_clear(&h);

  vow__headers_work = 0;
  size_t joined = 0;
  for (int i = 0; i < N; i++) {
    int n = snprintf(name, sizeof name, "X-Repeat-%d", i % 3);
    cr_assert_eq(vow__headers_add(&h, name, (size_t)n, "value", 5, 1), 0);
    joined += i < 3 ? 5 : 7;
  }
  cr_assert_eq(h.len, 3);
  cr_assert_eq(strlen(vow__headers_get(&h, "x-repeat-1")), (N / 3) * 7 - 2);
  cr_assert_leq(vow__headers_work, 8 * (size_t)N + 8 * joined, "%zu units of work for %zu joined bytes",
                vow__headers_work, joined);
  vow__headers_clear(&h);
}

/* More header lines than max_headers: 431, as for too many header bytes.
 * (Node's maxHeadersCount, 2000 by default, keeps the first ones and drops
 * the rest silently; vow refuses, as it does past max_header_bytes.) */
static char many_headers[64 * 1024];
static const char *request_with_headers(int n) {
  int len = snprintf(many_headers, sizeof many_headers, "GET /b HTTP/1.1\r\nHost: x\r\n");
  for (int i = 1; i < n; i++) len += snprintf(many_headers + len, sizeof many_headers - (size_t)len, "h%d:1\r\n", i);
  snprintf(many_headers + len, sizeof many_headers - (size_t)len, "\r\n");
  return many_headers;
}
static vow_value t_header_count(vow_loop *l, void *a) {
  (void)l, (void)a;
  client ok = {.send = request_with_headers(100), .responses = 1};
  client_do(&ok);
  cr_assert(strncmp(ok.out, "HTTP/1.1 200 OK\r\n", 17) == 0, "100 headers: %.60s", ok.out);
  client over = {.send = request_with_headers(101), .want_eof = 1};
  client_do(&over);
  assert_status_and_close(&over, "HTTP/1.1 431 Request Header Fields Too Large\r\n");
  assert_healthy();
  return close_server();
}
LOOP_TEST(server, too_many_headers_get_431) {
  vow_server_options o = {.max_headers = 100};
  run(t_header_count, &o);
}
static vow_value t_header_count_default(vow_loop *l, void *a) {
  (void)l, (void)a;
  client ok = {.send = request_with_headers(2000), .responses = 1};
  client_do(&ok);
  cr_assert(strncmp(ok.out, "HTTP/1.1 200 OK\r\n", 17) == 0, "2000 headers: %.60s", ok.out);
  client over = {.send = request_with_headers(2001), .want_eof = 1};
  client_do(&over);
  assert_status_and_close(&over, "HTTP/1.1 431 Request Header Fields Too Large\r\n");
  return close_server();
}
LOOP_TEST(server, default_header_count_limit_is_2000) {
  vow_server_options o = {.max_header_bytes = 64 * 1024};
  run(t_header_count_default, &o);
}
