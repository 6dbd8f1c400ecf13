/*
 * test_faults_server.c — allocation failure at every allocation site the HTTP
 * server reaches (src/io/server.c and src/io/http.c), once and sustained.
 *
 * One scenario: listen; a client pipelines four requests on one connection —
 * a GET whose handler awaits a timer, a POST with a Content-Length body, a
 * chunked POST, a streamed (chunked) response — then one with
 * "Expect: 100-continue"; a second client sends a malformed request; then the
 * server is closed. The handlers ask for their request's signal and add a
 * response header, so every allocation of the server is on the path: the
 * server, its listener and the loop's I/O slot; each connection, its input,
 * the parser's URL, field, value and body buffers, the request and its header
 * list (a repeated header is joined), the request body value, the handler's coroutine, the response value
 * and its headers, each write request and response head, each chunk's size
 * line and its drain promise, the 100 Continue, the server's own error
 * answers, the close promise.
 *
 * The scenario runs again and again with the 1st allocation failing, then the
 * 2nd, and so on (tests/faults.h), and then with memory running out for good
 * from each point on. Whatever fails, each run must end: every client gets
 * an answer or a close (never waits out its guard), the loop frees, and
 * nothing leaks (pooled objects counted; ASan builds check the heap). The
 * clients are plain threads with blocking sockets: they allocate nothing
 * through vow's allocator, so only the server's allocations are counted.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "core/loop.h"
#include "faults.h"
#include "log.h"
#include "vow.h"

static vow_loop *loop;
static vow_server *srv;
static uv_async_t clients_done;
static atomic_int clients_left;

/* ---- the server's side ------------------------------------------------------------- */

static vow_value words(vow_loop *l, vow_asyncgen *g, void *arg) {
  (void)g, (void)arg;
  static const char *w[] = {"one", "two", "three"};
  for (int i = 0; i < 3; i++) {
    if (vow_await(vow_delay(l, 1, vow_undefined()), NULL) != 0) break;
    vow_value sent;
    if (vow_yield(vow_string(w[i]), &sent) != 0) return sent;
  }
  return vow_undefined();
}

static vow_value handler(vow_loop *l, vow_request *req, void *data) {
  (void)data;
  const char *t = vow_request_target(req);
  vow_request_signal(req); /* made on first use: an allocation of its own */
  if (strcmp(t, "/a") == 0) {
    vow_await(vow_delay(l, 1, vow_undefined()), NULL);
    return vow_http_response(200, NULL, vow_string("A"));
  }
  if (strcmp(t, "/stream") == 0)
    return vow_http_response_stream(200, NULL, vow_asyncgen_new(l, words, NULL));
  vow_value res = vow_http_response(200, "text/x-echo", vow_stringf("%s:%s", t, vow_str(vow_request_body(req))));
  vow_http_response_header(res, "X-Echo", "yes");
  return res;
}

/* The clients are done: close the server (or, with no memory for even that,
 * stop the run; vow_loop_free then tears the server down). */
static void finish(vow_loop *l, void *arg) {
  (void)arg;
  uv_close((uv_handle_t *)&clients_done, NULL);
  vow_promise *closed = vow_server_close(srv);
  if (closed) vow_promise_unref(closed);
  else vow__loop_fail(l, VOW_ECLOSING);
}

static void on_clients_done(uv_async_t *a) {
  vow_loop_enter(a->data, finish, NULL);
}

/* ---- the clients --------------------------------------------------------------------- */

typedef struct client {
  int port;
  int fd;               /* made and closed by the test's thread, so it can cut it */
  const char *send;
  const char *send2;    /* after the first responses: sent when they are in */
  int responses;        /* the first ones */
  int responses2;
  int want_eof;         /* then read until the server closes */
  char out[8192];
  size_t len;
  int eof;
  int hung;             /* waited out its guard: the server neither answered nor closed */
} client;

static client ca, cb;

static const char *find(const char *hay, size_t n, const char *needle) {
  size_t m = strlen(needle);
  for (size_t i = 0; n >= m && i <= n - m; i++)
    if (memcmp(hay + i, needle, m) == 0) return hay + i;
  return NULL;
}

/* Complete responses in out: Content-Length or chunked bodies, and 100 Continue. */
static int count_responses(const client *c) {
  int n = 0;
  const char *p = c->out, *end = c->out + c->len;
  for (;;) {
    const char *head_end = find(p, (size_t)(end - p), "\r\n\r\n");
    if (!head_end) return n;
    const char *body = head_end + 4;
    const char *cl = find(p, (size_t)(head_end - p), "Content-Length: ");
    if (cl) {
      size_t len = strtoul(cl + 16, NULL, 10);
      if ((size_t)(end - body) < len) return n;
      p = body + len;
    } else if (find(p, (size_t)(head_end - p), "chunked")) {
      const char *z = find(body, (size_t)(end - body), "0\r\n\r\n");
      if (!z) return n;
      p = z + 5;
    } else {
      p = body; /* 100 Continue */
    }
    n++;
  }
}

static int read_some(client *c, int fd) {
  if (c->len >= sizeof c->out - 1) return 0;
  ssize_t n = recv(fd, c->out + c->len, sizeof c->out - 1 - c->len, 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) c->hung = 1;
  if (n == 0) c->eof = 1;
  if (n <= 0) return 0;
  c->len += (size_t)n;
  c->out[c->len] = '\0';
  return 1;
}

static void client_run(void *arg) {
  client *c = arg;
  int fd = c->fd;
  struct timeval guard = {5, 0}; /* a hang guard, never a timing claim */
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &guard, sizeof guard);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
    send(fd, c->send, strlen(c->send), MSG_NOSIGNAL);
    while (count_responses(c) < c->responses && read_some(c, fd)) {}
    if (c->send2 && !c->eof && !c->hung) {
      send(fd, c->send2, strlen(c->send2), MSG_NOSIGNAL);
      while (count_responses(c) < c->responses + c->responses2 && read_some(c, fd)) {}
    }
    while (c->want_eof && read_some(c, fd)) {}
  }
  shutdown(fd, SHUT_RDWR); /* done: the server sees the client leave */
  if (atomic_fetch_sub(&clients_left, 1) == 1) uv_async_send(&clients_done);
}

/* ---- one run ----------------------------------------------------------------------------- */

static int run_once(long n, fault_mode how) {
  fault_arm(n, how);
  if (vow_loop_new(&loop, NULL) != 0) {
    fault_disarm();
    return 0;
  }
  srv = NULL;
  /* Timeouts longer than the clients' guard: a client the server forgot is
   * caught waiting, rather than let go by a timer. */
  vow_server_options o = {.request_timeout_ms = 60000, .keepalive_timeout_ms = 60000};
  if (vow_server_listen(loop, &o, handler, NULL, &srv) == 0) {
    uv_async_init(vow_loop_uv(loop), &clients_done, on_clients_done);
    clients_done.data = loop;
    atomic_store(&clients_left, 2);
    int port = vow_server_port(srv);
    ca = (client){.port = port,
                  .send = "GET /a HTTP/1.1\r\nHost: x\r\nAccept: a\r\naccept: b\r\n\r\n"
                          "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                          "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                          "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
                  .responses = 4,
                  .send2 = "POST /d HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                           "Content-Length: 4\r\n\r\nbody",
                  .responses2 = 2};
    cb = (client){.port = port, .send = "GET /e HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", .want_eof = 1};
    ca.fd = socket(AF_INET, SOCK_STREAM, 0);
    cb.fd = socket(AF_INET, SOCK_STREAM, 0);
    uv_thread_t ta, tb;
    uv_thread_create(&ta, client_run, &ca);
    uv_thread_create(&tb, client_run, &cb);
    int rc = vow_loop_run(loop);
    /* VOW_ENOMEM: the loop itself stopped, for want of room for a job
     * (section 2); nobody will answer now, so the clients are cut loose. */
    cr_assert(rc == 0 || rc == VOW_ECLOSING || rc == VOW_ENOMEM, "the run ended with %s at allocation %ld",
              vow_err_name(rc), n);
    if (rc == VOW_ENOMEM) {
      shutdown(ca.fd, SHUT_RDWR);
      shutdown(cb.fd, SHUT_RDWR);
    }
    uv_thread_join(&ta);
    uv_thread_join(&tb);
    close(ca.fd);
    close(cb.fd);
    if (!uv_is_closing((uv_handle_t *)&clients_done)) uv_close((uv_handle_t *)&clients_done, NULL);
    cr_assert_not(ca.hung || cb.hung, "a client was left waiting after a failure at allocation %ld: %s",
                  n, ca.hung ? ca.out : cb.out);
    if (n == 0) { /* nothing failed: everything was answered */
      cr_assert_eq(count_responses(&ca), 6, "%s", ca.out);
      cr_assert(find(ca.out, ca.len, "\r\n\r\nA") && find(ca.out, ca.len, "/b:hello") &&
                    find(ca.out, ca.len, "/c:abcde") && find(ca.out, ca.len, "\r\n5\r\nthree\r\n0\r\n\r\n") &&
                    find(ca.out, ca.len, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK") &&
                    find(ca.out, ca.len, "X-Echo: yes\r\n") && find(ca.out, ca.len, "\r\n\r\n/d:body"),
                "%s", ca.out);
      cr_assert(strncmp(cb.out, "HTTP/1.1 400 Bad Request\r\n", 26) == 0 && cb.eof, "%s", cb.out);
    }
  }
  cr_assert_eq(vow_loop_free(loop), 0, "the loop frees after a failure at allocation %ld", n);
  loop = NULL;
  fault_disarm();
  cr_assert_eq(vow__pool_leaked, 0, "pooled objects leaked after a failure at allocation %ld", n);
  return 0;
}

Test(faults_server, every_allocation_can_fail) {
  run_once(0, FAULT_ONCE); /* the scenario works at all */
  long total = fault_allocations;
  cr_assert_gt(total, 40, "the scenario makes allocations (%ld)", total);
  long failed = fault_every_site(run_once, FAULT_ONCE);
  cr_assert_geq(failed + 1, total, "every allocation was failed once (%ld of %ld)", failed, total);
  TEST_LEAK_CHECK();
}

/* Sustained out-of-memory: from allocation n on, nothing can be had. */
Test(faults_server, sustained_out_of_memory_from_every_point) {
  run_once(0, FAULT_ONCE);
  long total = fault_allocations;
  long failed = fault_every_site(run_once, FAULT_FROM);
  cr_assert_geq(failed + 1, total, "memory ran out at every point (%ld of %ld)", failed, total);
  TEST_LEAK_CHECK();
}
