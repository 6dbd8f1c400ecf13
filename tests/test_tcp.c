/*
 * test_tcp.c — vow_tcp_connect, vow_tcp_listen and the accept iterator
 * against real sockets on loopback (127.0.0.1 and ::1; nothing else is ever
 * addressed): vow to vow, vow against plain blocking sockets, and every way a
 * connect can fail, each rejecting with a message that names what failed.
 *
 * The JavaScript these mirror (node 20):
 *   const server = net.createServer().listen(0, '127.0.0.1');
 *   const socket = net.connect(port, '127.0.0.1');   // 'connect'
 *   net.connect(1, '127.0.0.1')  // Error: connect ECONNREFUSED 127.0.0.1:1
 *   net.connect(70000)           // RangeError [ERR_SOCKET_BAD_PORT]
 *   net.connect({port, host, signal})  // AbortError once signal aborts
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "io/tcp.h"
#include "vow.h"

static vow_loop *loop;

static void setup(void) { cr_assert_eq(vow_loop_new(&loop, NULL), 0); }
static void teardown(void) { vow_loop_free(loop); }
TestSuite(tcp, .init = setup, .fini = teardown, .timeout = 30);

static const char *text(vow_value v) {
  static char buf[4096];
  vow_value_format(v, buf, sizeof buf);
  return buf;
}

/* Runs fn as an async function on the loop until nothing is left; it must
 * fulfil (it asserts inside; a rejection's reason is printed). */
static void run(vow_async_fn fn, void *arg) {
  vow_promise *p = vow_async(loop, fn, arg);
  cr_assert_not_null(p);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED, "%s", text(vow_promise_result(p)));
  vow_promise_unref(p);
}

/* await p, expecting a rejection: its reason (a new reference). */
static vow_value rejection(vow_promise *p) {
  vow_value v;
  int rc = vow_await(p, &v);
  cr_assert_eq(rc, VOW_EREJECTED, "fulfilled: %s", text(v));
  return v;
}

static int have_ipv6_loopback(void) {
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

/* A port on 127.0.0.1 that refuses: a bound socket that never listens (the
 * kernel answers a SYN to it with a reset). Keep fd open while using it. */
static int refusing_port(int *fd) {
  *fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  getsockname(*fd, (struct sockaddr *)&a, &len);
  return ntohs(a.sin_port);
}

/* A port on 127.0.0.1 whose accept queue is full, so a SYN to it goes
 * unanswered and a connect hangs: a listener with backlog 0 that never
 * accepts, and fillers connecting until one stays pending. fds[0] is the
 * listener; close fds[0..*n) afterwards. */
static int silent_port(int *fds, int *n) {
  fds[0] = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(bind(fds[0], (struct sockaddr *)&a, sizeof a), 0);
  cr_assert_eq(listen(fds[0], 0), 0);
  socklen_t len = sizeof a;
  getsockname(fds[0], (struct sockaddr *)&a, &len);
  *n = 1;
  for (;;) {
    cr_assert_lt(*n, 16, "the accept queue never filled");
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    fds[(*n)++] = fd;
    connect(fd, (struct sockaddr *)&a, sizeof a);
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    if (poll(&pfd, 1, 300) == 0) break; /* this one waits: the queue is full */
  }
  return ntohs(a.sin_port);
}

/* ---- connect and accept ------------------------------------------------------------ */

typedef struct pair_case {
  const char *host;
} pair_case;

static vow_value connect_and_accept(vow_loop *l, void *arg) {
  const char *host = arg;
  vow_tcp_server *srv;
  cr_assert_eq(vow_tcp_listen(l, host, 0, NULL, &srv), 0);
  int port = vow_tcp_server_port(srv);
  cr_assert_gt(port, 0);
  vow_asyncgen *accepts = vow_tcp_accept_iter(srv);
  vow_promise *next = vow_asyncgen_next(accepts, vow_undefined());

  vow_value client;
  cr_assert_eq(vow_await(vow_tcp_connect(l, host, port, NULL), &client), 0, "%s", text(client));
  vow_value it;
  cr_assert_eq(vow_await(next, &it), 0, "%s", text(it));
  cr_assert(!vow_iter_done(it));
  vow_stream *served = vow_as_stream(vow_iter_value(it));
  cr_assert_not_null(served);

  /* The two ends see each other: the client's local port is the served
   * socket's remote port, and both name the address they were given. */
  char a[64], b[64];
  int client_local = vow_tcp_local_address(vow_as_stream(client), a, sizeof a);
  int served_remote = vow_tcp_remote_address(served, b, sizeof b);
  cr_assert_gt(client_local, 0);
  cr_assert_eq(client_local, served_remote);
  cr_assert_str_eq(a, b);
  cr_assert_str_eq(a, host);
  cr_assert_eq(vow_tcp_remote_address(vow_as_stream(client), a, sizeof a), port);
  cr_assert_eq(vow_tcp_set_nodelay(served, 1), 0);
  cr_assert_eq(vow_tcp_set_keepalive(served, 1, 30), 0);
  vow_unref(it);
  vow_unref(client);

  /* Closing the server ends the iterator and fulfils. */
  vow_promise *closed = vow_tcp_server_close(srv);
  cr_assert_eq(vow_await(vow_asyncgen_next(accepts, vow_undefined()), &it), 0);
  cr_assert(vow_iter_done(it));
  vow_unref(it);
  cr_assert_eq(vow_await(closed, NULL), 0);
  vow_asyncgen_unref(accepts);
  return vow_undefined();
}

Test(tcp, connect_and_accept_on_ipv4) { run(connect_and_accept, "127.0.0.1"); }

Test(tcp, connect_and_accept_on_ipv6) {
  if (!have_ipv6_loopback()) {
    cr_skip_test("this machine has no ::1");
  }
  run(connect_and_accept, "::1");
}

static vow_value connect_by_name(vow_loop *l, void *arg) {
  (void)arg;
  vow_tcp_server *srv;
  cr_assert_eq(vow_tcp_listen(l, "127.0.0.1", 0, NULL, &srv), 0);
  vow_tcp_connect_options o = {.nodelay = 1, .timeout_ms = 20000};
  vow_value client;
  cr_assert_eq(vow_await(vow_tcp_connect(l, "localhost", vow_tcp_server_port(srv), &o), &client), 0,
               "%s", text(client));
  char a[64];
  cr_assert_eq(vow_tcp_remote_address(vow_as_stream(client), a, sizeof a), vow_tcp_server_port(srv));
  cr_assert_str_eq(a, "127.0.0.1");
  vow_unref(client);
  cr_assert_eq(vow_await(vow_tcp_server_close(srv), NULL), 0);
  return vow_undefined();
}

Test(tcp, a_name_is_resolved_on_the_loop) { run(connect_by_name, NULL); }

/* ---- connects that fail ---------------------------------------------------------------- */

static vow_value failures(vow_loop *l, void *arg) {
  (void)arg;
  int fd;
  int port = refusing_port(&fd);
  vow_value e = rejection(vow_tcp_connect(l, "127.0.0.1", port, NULL));
  char want[64];
  snprintf(want, sizeof want, "ECONNREFUSED: connect 127.0.0.1:%d", port);
  cr_assert_eq(vow_error_code(e), UV_ECONNREFUSED, "%s", text(e));
  cr_assert_str_eq(vow_error_message(e), want);
  vow_unref(e);
  close(fd);

  e = rejection(vow_tcp_connect(l, "127.0.0.1", 70000, NULL));
  cr_assert_eq(vow_error_code(e), VOW_EINVAL);
  cr_assert_str_eq(vow_error_message(e), "connect '127.0.0.1': port must be 1-65535 (got 70000)");
  vow_unref(e);
  e = rejection(vow_tcp_connect(l, "127.0.0.1", 0, NULL));
  cr_assert_eq(vow_error_code(e), VOW_EINVAL);
  vow_unref(e);
  e = rejection(vow_tcp_connect(l, NULL, 80, NULL));
  cr_assert_str_eq(vow_error_message(e), "connect: no host");
  vow_unref(e);

  /* An unknown name (one glibc rejects without asking a server). */
  e = rejection(vow_tcp_connect(l, "no..such.host", 80, NULL));
  cr_assert_lt(vow_error_code(e), 0);
  cr_assert(strstr(vow_error_message(e), ": getaddrinfo 'no..such.host': "), "%s", text(e));
  vow_unref(e);
  return vow_undefined();
}

Test(tcp, refused_bad_port_no_host_unknown_host_reject_naming_what_failed) { run(failures, NULL); }

static vow_value times_out(vow_loop *l, void *arg) {
  (void)arg;
  int fds[16], n;
  int port = silent_port(fds, &n);
  vow_tcp_connect_options o = {.timeout_ms = 100};
  vow_value e = rejection(vow_tcp_connect(l, "127.0.0.1", port, &o));
  cr_assert_eq(vow_error_code(e), VOW_ETIMEDOUT, "%s", text(e));
  char want[96];
  snprintf(want, sizeof want, "ETIMEDOUT: connect '127.0.0.1' port %d: timed out after 100 ms", port);
  cr_assert_str_eq(vow_error_message(e), want);
  vow_unref(e);

  /* An abort while connecting: the signal's reason. */
  vow_abort_signal *sig = vow_abort_signal_timeout(l, 50);
  vow_tcp_connect_options a = {.signal = sig};
  e = rejection(vow_tcp_connect(l, "127.0.0.1", port, &a));
  cr_assert_str_eq(text(e), "Error(VOW_ETIMEDOUT: The operation was aborted due to timeout)");
  vow_unref(e);
  vow_abort_signal_unref(sig);

  /* Aborted before: rejected at once. */
  sig = vow_abort_signal_new(l);
  vow_abort(sig, vow_undefined());
  a.signal = sig;
  vow_promise *p = vow_tcp_connect(l, "127.0.0.1", port, &a);
  cr_assert_eq(vow_promise_state(p), VOW_REJECTED);
  e = rejection(p);
  cr_assert_eq(vow_error_code(e), VOW_EABORTED);
  vow_unref(e);
  vow_abort_signal_unref(sig);
  for (int i = 0; i < n; i++) close(fds[i]);
  return vow_undefined();
}

Test(tcp, a_connect_that_hangs_times_out_or_aborts) { run(times_out, NULL); }

/* ---- a name with several addresses (Node 20's autoSelectFamily) ------------------------ */

/* "localhost" as [::1, 127.0.0.1] where only 127.0.0.1 listens: ::1 refuses,
 * the next address connects. All failing: the last error, the first as its cause. */
static vow_value tries_each_address(vow_loop *l, void *arg) {
  (void)arg;
  vow_tcp_server *srv;
  cr_assert_eq(vow_tcp_listen(l, "127.0.0.1", 0, NULL, &srv), 0);
  int port = vow_tcp_server_port(srv);
  const char *both[] = {"::1", "127.0.0.1"};
  vow_value c;
  cr_assert_eq(vow_await(vow__tcp_connect_list(l, "localhost", both, 2, port, NULL), &c), 0, "%s", text(c));
  char a[64];
  cr_assert_eq(vow_tcp_remote_address(vow_as_stream(c), a, sizeof a), port);
  cr_assert_str_eq(a, "127.0.0.1");
  vow_unref(c);
  cr_assert_eq(vow_await(vow_tcp_server_close(srv), NULL), 0);

  int fd;
  port = refusing_port(&fd);
  const char *twice[] = {"127.0.0.1", "127.0.0.1"};
  vow_value e = rejection(vow__tcp_connect_list(l, "localhost", twice, 2, port, NULL));
  char want[64];
  snprintf(want, sizeof want, "ECONNREFUSED: connect 127.0.0.1:%d", port);
  cr_assert_str_eq(vow_error_message(e), want);
  cr_assert_str_eq(vow_error_message(vow_error_cause(e)), want);
  cr_assert(vow_is_undefined(vow_error_cause(vow_error_cause(e))));
  vow_unref(e);
  close(fd);
  return vow_undefined();
}

Test(tcp, each_address_is_tried_in_turn) {
  if (!have_ipv6_loopback()) cr_skip_test("this machine has no ::1");
  run(tries_each_address, NULL);
}

/* An address that does not answer is given up after attempt_timeout_ms for
 * the next one, when there is a next one. */
static vow_value gives_up_a_silent_address(vow_loop *l, void *arg) {
  (void)arg;
  int fds[16], n;
  int port = silent_port(fds, &n);
  vow_tcp_server *srv;
  vow_tcp_listen_options v6only = {.ipv6_only = 1};
  if (vow_tcp_listen(l, "::1", port, &v6only, &srv) != 0) {
    for (int i = 0; i < n; i++) close(fds[i]);
    cr_skip_test("::1 port %d is taken", port);
  }
  const char *both[] = {"127.0.0.1", "::1"};
  vow_tcp_connect_options o = {.attempt_timeout_ms = 50};
  vow_value c;
  cr_assert_eq(vow_await(vow__tcp_connect_list(l, "localhost", both, 2, port, &o), &c), 0, "%s", text(c));
  char a[64];
  cr_assert_eq(vow_tcp_remote_address(vow_as_stream(c), a, sizeof a), port);
  cr_assert_str_eq(a, "::1");
  vow_unref(c);
  cr_assert_eq(vow_await(vow_tcp_server_close(srv), NULL), 0);
  for (int i = 0; i < n; i++) close(fds[i]);
  return vow_undefined();
}

Test(tcp, a_silent_address_is_given_up_for_the_next) {
  if (!have_ipv6_loopback()) cr_skip_test("this machine has no ::1");
  run(gives_up_a_silent_address, NULL);
}

/* ---- listening ---------------------------------------------------------------------------- */

Test(tcp, listen_refuses_what_it_cannot_bind) {
  vow_tcp_server *srv, *other;
  cr_assert_eq(vow_tcp_listen(loop, "localhost", 0, NULL, &srv), VOW_EINVAL);
  cr_assert_null(srv);
  cr_assert_eq(vow_tcp_listen(loop, "127.0.0.1", 65536, NULL, &srv), VOW_EINVAL);
  cr_assert_eq(vow_tcp_listen(loop, "127.0.0.1", -1, NULL, &srv), VOW_EINVAL);
  cr_assert_eq(vow_tcp_listen(loop, NULL, 0, NULL, &srv), 0);
  cr_assert_eq(vow_tcp_listen(loop, "127.0.0.1", vow_tcp_server_port(srv), NULL, &other), UV_EADDRINUSE);
  cr_assert_null(other);
  vow_promise *closed = vow_tcp_server_close(srv);
  vow_promise *again = vow_tcp_server_close(srv);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(closed), VOW_FULFILLED);
  cr_assert_eq(vow_promise_state(again), VOW_FULFILLED);
  vow_promise_unref(closed);
  vow_promise_unref(again);
}

static vow_value one_iterator(vow_loop *l, void *arg) {
  (void)arg;
  vow_tcp_server *srv;
  cr_assert_eq(vow_tcp_listen(l, "127.0.0.1", 0, NULL, &srv), 0);
  vow_asyncgen *first = vow_tcp_accept_iter(srv), *second = vow_tcp_accept_iter(srv);
  vow_promise *waiting = vow_asyncgen_next(first, vow_undefined());
  vow_value e = rejection(vow_asyncgen_next(second, vow_undefined()));
  cr_assert_eq(vow_error_code(e), VOW_EBUSY, "%s", text(e));
  vow_unref(e);
  vow_asyncgen_unref(second);
  vow_promise *closed = vow_tcp_server_close(srv);
  vow_value it;
  cr_assert_eq(vow_await(waiting, &it), 0);
  cr_assert(vow_iter_done(it));
  cr_assert_null(vow_tcp_accept_iter(srv));
  vow_asyncgen_unref(first);
  cr_assert_eq(vow_await(closed, NULL), 0);
  return vow_undefined();
}

Test(tcp, one_accept_iterator_at_a_time) { run(one_iterator, NULL); }

/* Connections wait in the backlog until the iterator asks; each next() takes one. */
static vow_value backlog_waits(vow_loop *l, void *arg) {
  (void)arg;
  vow_tcp_server *srv;
  cr_assert_eq(vow_tcp_listen(l, "127.0.0.1", 0, NULL, &srv), 0);
  int port = vow_tcp_server_port(srv);
  vow_value c[3];
  for (int i = 0; i < 3; i++) /* the kernel completes the handshakes; nobody accepts yet */
    cr_assert_eq(vow_await(vow_tcp_connect(l, "127.0.0.1", port, NULL), &c[i]), 0);
  vow_asyncgen *accepts = vow_tcp_accept_iter(srv);
  for (int i = 0; i < 3; i++) {
    vow_value it;
    cr_assert_eq(vow_await(vow_asyncgen_next(accepts, vow_undefined()), &it), 0, "%s", text(it));
    char a[64];
    int remote = vow_tcp_remote_address(vow_as_stream(vow_iter_value(it)), a, sizeof a);
    cr_assert_eq(remote, vow_tcp_local_address(vow_as_stream(c[i]), a, sizeof a), "in arrival order");
    vow_unref(it);
  }
  for (int i = 0; i < 3; i++) vow_unref(c[i]);
  vow_asyncgen_unref(accepts); /* suspended at its yield: dropped */
  cr_assert_eq(vow_await(vow_tcp_server_close(srv), NULL), 0);
  return vow_undefined();
}

Test(tcp, connections_wait_until_the_iterator_asks) { run(backlog_waits, NULL); }

/* ---- the loop's end ------------------------------------------------------------------------------ */

Test(tcp, a_loop_freed_mid_connect_and_listening_releases_everything) {
  int fds[16], n;
  int port = silent_port(fds, &n);
  vow_abort_signal *sig = vow_abort_signal_new(loop);
  vow_tcp_connect_options o = {.signal = sig, .timeout_ms = 60000};
  vow_promise *hanging = vow_tcp_connect(loop, "127.0.0.1", port, &o);
  vow_promise *resolving = vow_tcp_connect(loop, "localhost", port, &o);
  vow_tcp_server *srv;
  cr_assert_eq(vow_tcp_listen(loop, "::1", 0, NULL, &srv) == 0 ||
                   vow_tcp_listen(loop, "127.0.0.1", 0, NULL, &srv) == 0, 1);
  vow_asyncgen *accepts = vow_tcp_accept_iter(srv);
  vow_promise *next = vow_asyncgen_next(accepts, vow_undefined());
  cr_assert_eq(vow_promise_state(hanging), VOW_PENDING);
  vow_promise_unref(hanging);
  vow_promise_unref(resolving);
  vow_promise_unref(next);
  vow_asyncgen_unref(accepts);
  vow_abort_signal_unref(sig);
  vow_loop_free(loop);  /* nothing settles; ASan's leak check says all went */
  loop = NULL;
  cr_assert_eq(vow_loop_new(&loop, NULL), 0);
  for (int i = 0; i < n; i++) close(fds[i]);
}
