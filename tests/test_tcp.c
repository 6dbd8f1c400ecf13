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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "io/tcp.h"
#include "log.h"
#include "vow.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

LOOP_SUITE(tcp, NULL);

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

LOOP_TEST(tcp, connect_and_accept_on_ipv4) { run(connect_and_accept, "127.0.0.1"); }

LOOP_TEST(tcp, connect_and_accept_on_ipv6) {
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

LOOP_TEST(tcp, a_name_is_resolved_on_the_loop) { run(connect_by_name, NULL); }

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

LOOP_TEST(tcp, refused_bad_port_no_host_unknown_host_reject_naming_what_failed) { run(failures, NULL); }

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

LOOP_TEST(tcp, a_connect_that_hangs_times_out_or_aborts) { run(times_out, NULL); }

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

LOOP_TEST(tcp, each_address_is_tried_in_turn) {
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

LOOP_TEST(tcp, a_silent_address_is_given_up_for_the_next) {
  if (!have_ipv6_loopback()) cr_skip_test("this machine has no ::1");
  run(gives_up_a_silent_address, NULL);
}

/* ---- listening ---------------------------------------------------------------------------- */

LOOP_TEST(tcp, listen_refuses_what_it_cannot_bind) {
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
  vow_unref(it);
  cr_assert_null(vow_tcp_accept_iter(srv));
  vow_asyncgen_unref(first);
  cr_assert_eq(vow_await(closed, NULL), 0);
  return vow_undefined();
}

LOOP_TEST(tcp, one_accept_iterator_at_a_time) { run(one_iterator, NULL); }

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

LOOP_TEST(tcp, connections_wait_until_the_iterator_asks) { run(backlog_waits, NULL); }

/* ---- reading and writing ------------------------------------------------------------------ */

/* Reads s to its end into out (NUL-terminated, at most cap - 1 bytes kept);
 * returns what vow_for_await_end returns, the rejection in *error. */
static int read_all(vow_stream *s, char *out, size_t cap, size_t *total, vow_value *error) {
  vow_for_await it;
  size_t len = 0;
  cr_assert_eq(vow_for_await_gen(&it, vow_stream_chunks(s)), 0);
  VOW_FOR_AWAIT(&it, chunk) {
    size_t n = vow_str_len(chunk);
    if (len + n < cap) memcpy(out + len, vow_str(chunk), n);
    len += n;
  }
  if (cap) out[len < cap ? len : cap - 1] = '\0';
  if (total) *total = len;
  return vow_for_await_end(&it, error);
}

/* The echo server's side of one connection: every chunk back, then end. */
static vow_value echo_connection(vow_loop *l, void *arg) {
  (void)l;
  vow_stream *s = arg;
  vow_for_await it;
  cr_assert_eq(vow_for_await_gen(&it, vow_stream_chunks(s)), 0);
  VOW_FOR_AWAIT(&it, chunk) {
    if (vow_await(vow_stream_write_value(s, vow_ref(chunk)), NULL) != 0) break;
  }
  vow_for_await_end(&it, NULL);
  vow_await(vow_stream_end(s), NULL);
  return vow_undefined();
}

static void stream_unref_arg(void *s) { vow_stream_unref(s); }

/* vow's own echo server: each accepted connection served by its own async function. */
static vow_value echo_server(vow_loop *l, void *arg) {
  vow_tcp_server *srv = arg;
  vow_for_await it;
  cr_assert_eq(vow_for_await_gen(&it, vow_tcp_accept_iter(srv)), 0);
  VOW_FOR_AWAIT(&it, conn) {
    vow_async_options o = {.arg_free = stream_unref_arg};
    vow_promise_unref(vow_async_ex(l, echo_connection, vow_stream_ref(vow_as_stream(conn)), &o));
  }
  return vow_int(vow_for_await_end(&it, NULL));
}

typedef struct echo_case {
  const char *host;
  int port;            /* 0: start vow's echo server on host */
} echo_case;

/* Three writes, half-close, and everything comes back, then end of stream. */
static vow_value echo_round(vow_loop *l, void *arg) {
  echo_case *ec = arg;
  vow_tcp_server *srv = NULL;
  vow_promise *serving = NULL;
  int port = ec->port;
  if (!port) {
    cr_assert_eq(vow_tcp_listen(l, ec->host, 0, NULL, &srv), 0);
    port = vow_tcp_server_port(srv);
    serving = vow_async(l, echo_server, srv);
  }
  vow_value c;
  cr_assert_eq(vow_await(vow_tcp_connect(l, ec->host, port, NULL), &c), 0, "%s", text(c));
  vow_stream *s = vow_as_stream(c);
  const char *parts[] = {"hello ", "over ", "tcp\n"};
  for (int i = 0; i < 3; i++) cr_assert_eq(vow_await(vow_stream_write(s, parts[i], strlen(parts[i])), NULL), 0);
  cr_assert_eq(vow_await(vow_stream_end(s), NULL), 0);
  char got[256];
  vow_value err;
  cr_assert_eq(read_all(s, got, sizeof got, NULL, &err), 0, "%s", text(err));
  cr_assert_str_eq(got, "hello over tcp\n");
  vow_unref(c);
  if (srv) {
    cr_assert_eq(vow_await(vow_tcp_server_close(srv), NULL), 0);
    vow_value r;
    cr_assert_eq(vow_await(serving, &r), 0);
    cr_assert_eq(vow_as_int(r), 0, "the accept loop ended cleanly");
  }
  return vow_undefined();
}

LOOP_TEST(tcp, echo_vow_to_vow_on_ipv4) {
  echo_case ec = {"127.0.0.1", 0};
  run(echo_round, &ec);
}

LOOP_TEST(tcp, echo_vow_to_vow_on_ipv6) {
  if (!have_ipv6_loopback()) cr_skip_test("this machine has no ::1");
  echo_case ec = {"::1", 0};
  run(echo_round, &ec);
}

/* A python3 echo server, as a child process: it prints its port, then echoes
 * one connection until the client half-closes, then closes. */
static pid_t python_echo(int *port, int *out_fd) {
  int out[2];
  cr_assert_eq(pipe(out), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    dup2(out[1], 1);
    close(out[0]);
    close(out[1]);
    execlp("python3", "python3", "-c",
           "import socket,sys\n"
           "l=socket.socket(); l.bind(('127.0.0.1',0)); l.listen(1)\n"
           "print(l.getsockname()[1], flush=True)\n"
           "c,_=l.accept()\n"
           "while True:\n"
           "  d=c.recv(65536)\n"
           "  if not d: break\n"
           "  c.sendall(d)\n"
           "c.close()\n",
           (char *)NULL);
    _exit(127);
  }
  close(out[1]);
  char line[32] = {0};
  ssize_t n = read(out[0], line, sizeof line - 1);
  *out_fd = out[0]; /* kept open until python is done: it may still write */
  *port = n > 0 ? atoi(line) : 0;
  return pid;
}

LOOP_TEST(tcp, echo_against_a_python3_server) {
  int port, out;
  pid_t pid = python_echo(&port, &out);
  if (port <= 0) {
    close(out);
    waitpid(pid, NULL, 0);
    cr_skip_test("python3 did not start");
  }
  echo_case ec = {"127.0.0.1", port};
  run(echo_round, &ec);
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  close(out);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "python's echo server ended cleanly");
}

/* Half-close: the client ends its side; the server reads to end of stream,
 * then answers on its still-open side (net: allowHalfOpen). */
static vow_value half_close_server(vow_loop *l, void *arg) {
  (void)l;
  vow_tcp_server *srv = arg;
  vow_value it;
  vow_asyncgen *accepts = vow_tcp_accept_iter(srv);
  cr_assert_eq(vow_await(vow_asyncgen_next(accepts, vow_undefined()), &it), 0);
  vow_stream *s = vow_as_stream(vow_iter_value(it));
  char got[128];
  cr_assert_eq(read_all(s, got, sizeof got, NULL, NULL), 0);
  char answer[160];
  snprintf(answer, sizeof answer, "you said: %s", got);
  cr_assert_eq(vow_await(vow_stream_write(s, answer, strlen(answer)), NULL), 0);
  cr_assert_eq(vow_await(vow_stream_end(s), NULL), 0);
  vow_unref(it);
  vow_asyncgen_unref(accepts);
  return vow_undefined();
}

static vow_value half_close(vow_loop *l, void *arg) {
  (void)arg;
  vow_tcp_server *srv;
  cr_assert_eq(vow_tcp_listen(l, "127.0.0.1", 0, NULL, &srv), 0);
  vow_promise *serving = vow_async(l, half_close_server, srv);
  vow_value c;
  cr_assert_eq(vow_await(vow_tcp_connect(l, "127.0.0.1", vow_tcp_server_port(srv), NULL), &c), 0);
  vow_stream *s = vow_as_stream(c);
  cr_assert_eq(vow_await(vow_stream_write(s, "question", 8), NULL), 0);
  cr_assert_eq(vow_await(vow_stream_end(s), NULL), 0);
  char got[128];
  cr_assert_eq(read_all(s, got, sizeof got, NULL, NULL), 0);
  cr_assert_str_eq(got, "you said: question");
  cr_assert_eq(vow_await(serving, NULL), 0);
  vow_unref(c);
  cr_assert_eq(vow_await(vow_tcp_server_close(srv), NULL), 0);
  return vow_undefined();
}

LOOP_TEST(tcp, half_close_the_server_reads_the_end_then_answers) { run(half_close, NULL); }

/* 16 MiB through a reader that stalls: the writer awaits each 64 KiB write,
 * so while the reader sleeps the writer stops once the kernel's buffers are
 * full — it never has more than one write queued, and the bytes never pile
 * up in memory. Checked by the writer's queue and progress and by the peak
 * RSS, never by time. */
enum { BIG = 16 << 20, PIECE = 64 << 10 };

typedef struct big {
  vow_tcp_server *srv;
  size_t written;         /* bytes whose write fulfilled */
  size_t max_queue;       /* the most vow_stream_write_queue ever said */
} big;

static unsigned char pattern(size_t i) { return (unsigned char)(i * 7 + (i >> 16)); }

static vow_value big_writer(vow_loop *l, void *arg) {
  (void)l;
  big *b = arg;
  vow_value it;
  vow_asyncgen *accepts = vow_tcp_accept_iter(b->srv);
  cr_assert_eq(vow_await(vow_asyncgen_next(accepts, vow_undefined()), &it), 0);
  vow_stream *s = vow_as_stream(vow_iter_value(it));
  static unsigned char piece[PIECE];
  for (size_t off = 0; off < BIG; off += PIECE) {
    for (size_t i = 0; i < PIECE; i++) piece[i] = pattern(off + i);
    vow_promise *w = vow_stream_write(s, piece, PIECE);
    size_t q = vow_stream_write_queue(s);
    if (q > b->max_queue) b->max_queue = q;
    cr_assert_eq(vow_await(w, NULL), 0);
    b->written += PIECE;
  }
  cr_assert_eq(vow_await(vow_stream_end(s), NULL), 0);
  vow_unref(it);
  vow_asyncgen_unref(accepts);
  return vow_undefined();
}

static long peak_rss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

static vow_value big_transfer(vow_loop *l, void *arg) {
  (void)arg;
  big b = {0};
  cr_assert_eq(vow_tcp_listen(l, "127.0.0.1", 0, NULL, &b.srv), 0);
  vow_promise *writing = vow_async(l, big_writer, &b);
  vow_value c;
  cr_assert_eq(vow_await(vow_tcp_connect(l, "127.0.0.1", vow_tcp_server_port(b.srv), NULL), &c), 0);
  vow_stream *s = vow_as_stream(c);
  long rss_before = peak_rss_kib();

  /* The reader stalls until the writer has stopped making progress. */
  size_t seen = (size_t)-1;
  while (b.written != seen) {
    seen = b.written;
    cr_assert_eq(vow_await(vow_delay(l, 50, vow_undefined()), NULL), 0);
  }
  size_t stalled_at = b.written;
  cr_assert_lt(stalled_at, BIG, "the writer waited for the reader (it stopped at %zu bytes)", stalled_at);
  cr_assert_eq(vow_promise_state(writing), VOW_PENDING);
  cr_log_info("the writer stalled at %zu bytes while the reader slept", stalled_at);

  /* Now read it all, slowly at first, checking every byte. */
  vow_for_await it;
  size_t got = 0, chunks = 0;
  int intact = 1;
  cr_assert_eq(vow_for_await_gen(&it, vow_stream_chunks(s)), 0);
  VOW_FOR_AWAIT(&it, chunk) {
    const unsigned char *p = (const unsigned char *)vow_str(chunk);
    size_t n = vow_str_len(chunk);
    cr_assert_leq(n, 128 << 10, "a chunk is bounded: the high-water mark plus one read");
    for (size_t i = 0; i < n && intact; i++) intact = p[i] == pattern(got + i);
    got += n;
    if (++chunks <= 8) vow_await(vow_delay(l, 1, vow_undefined()), NULL);
  }
  cr_assert_eq(vow_for_await_end(&it, NULL), 0);
  cr_assert_eq(got, (size_t)BIG);
  cr_assert(intact, "every byte arrived in order");
  cr_assert_eq(vow_await(writing, NULL), 0);
  cr_assert_leq(b.max_queue, (size_t)PIECE, "never more than the one write awaited was queued");
  long grew = peak_rss_kib() - rss_before;
  cr_log_info("peak RSS grew %ld KiB over the 16 MiB transfer", grew);
  if (!UNDER_ASAN) /* ASan's quarantine keeps freed chunks resident */
    cr_assert_lt(grew, 8 * 1024, "16 MiB went through in bounded memory (peak RSS grew %ld KiB)", grew);
  vow_unref(c);
  cr_assert_eq(vow_await(vow_tcp_server_close(b.srv), NULL), 0);
  return vow_undefined();
}

LOOP_TEST(tcp, sixteen_mib_through_a_slow_reader_in_bounded_memory) { run(big_transfer, NULL); }

/* ---- peers that misbehave ------------------------------------------------------------------ */

/* A raw client: connects to port on 127.0.0.1 (blocking), returns the socket. */
static int raw_client(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

static void reset(int fd) {
  struct linger lg = {.l_onoff = 1, .l_linger = 0}; /* close sends RST, not FIN */
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  close(fd);
}

static vow_value reset_mid_read(vow_loop *l, void *arg) {
  (void)arg;
  vow_tcp_server *srv;
  cr_assert_eq(vow_tcp_listen(l, "127.0.0.1", 0, NULL, &srv), 0);
  int fd = raw_client(vow_tcp_server_port(srv));
  vow_asyncgen *accepts = vow_tcp_accept_iter(srv);
  vow_value it;
  cr_assert_eq(vow_await(vow_asyncgen_next(accepts, vow_undefined()), &it), 0);
  vow_stream *s = vow_as_stream(vow_iter_value(it));
  char peer[64];
  int peer_port = vow_tcp_remote_address(s, peer, sizeof peer);
  cr_assert_eq(write(fd, "partial", 7), 7);
  vow_for_await reading;
  cr_assert_eq(vow_for_await_gen(&reading, vow_stream_chunks(s)), 0);
  vow_value first;
  cr_assert_eq(vow_for_await_next(&reading, &first), 1, "the bytes sent before the reset arrive");
  cr_assert_eq(vow_str_len(first), 7);
  vow_unref(first);
  reset(fd); /* the reader is waiting for more */
  vow_value e;
  cr_assert_lt(vow_for_await_next(&reading, &e), 0, "a reset rejects the read");
  cr_assert_lt(vow_for_await_end(&reading, &e), 0);
  cr_assert_eq(vow_error_code(e), UV_ECONNRESET, "%s", text(e));
  char want[96];
  snprintf(want, sizeof want, "ECONNRESET: read tcp 127.0.0.1:%d", peer_port);
  cr_assert_str_eq(vow_error_message(e), want);
  vow_unref(e);
  vow_unref(it);
  vow_asyncgen_unref(accepts);
  cr_assert_eq(vow_await(vow_tcp_server_close(srv), NULL), 0);
  return vow_undefined();
}

LOOP_TEST(tcp, a_peer_that_resets_mid_read_rejects_the_reader) { run(reset_mid_read, NULL); }

static vow_value write_after_close(vow_loop *l, void *arg) {
  (void)arg;
  vow_tcp_server *srv;
  cr_assert_eq(vow_tcp_listen(l, "127.0.0.1", 0, NULL, &srv), 0);
  int fd = raw_client(vow_tcp_server_port(srv));
  vow_asyncgen *accepts = vow_tcp_accept_iter(srv);
  vow_value it;
  cr_assert_eq(vow_await(vow_asyncgen_next(accepts, vow_undefined()), &it), 0);
  vow_stream *s = vow_as_stream(vow_iter_value(it));
  reset(fd);
  /* Writes go on until the kernel reports the peer gone: EPIPE or ECONNRESET,
   * as a rejection, and the process lives (no SIGPIPE). */
  vow_value e = vow_undefined();
  int writes = 0;
  while (writes < 100) {
    writes++;
    if (vow_await(vow_stream_write(s, "are you there?", 14), &e) != 0) break;
    vow_await(vow_delay(l, 5, vow_undefined()), NULL);
  }
  cr_assert_lt(writes, 100, "a write rejected");
  int code = vow_error_code(e);
  cr_assert(code == UV_EPIPE || code == UV_ECONNRESET, "%s", text(e));
  cr_assert(strstr(vow_error_message(e), " tcp 127.0.0.1:"), "the message names the stream: %s", text(e));
  vow_unref(e);
  /* And a write after our own end is EPIPE at once. */
  vow_value c;
  int fd2 = raw_client(vow_tcp_server_port(srv));
  cr_assert_eq(vow_await(vow_asyncgen_next(accepts, vow_undefined()), &c), 0);
  vow_stream *s2 = vow_as_stream(vow_iter_value(c));
  vow_await(vow_stream_end(s2), NULL);
  e = rejection(vow_stream_write(s2, "x", 1));
  cr_assert_eq(vow_error_code(e), UV_EPIPE, "%s", text(e));
  vow_unref(e);
  close(fd2);
  vow_unref(c);
  vow_unref(it);
  vow_asyncgen_unref(accepts);
  cr_assert_eq(vow_await(vow_tcp_server_close(srv), NULL), 0);
  return vow_undefined();
}

LOOP_TEST(tcp, writing_to_a_peer_that_went_away_rejects_with_epipe_not_sigpipe) {
  run(write_after_close, NULL);
  struct sigaction sa;
  sigaction(SIGPIPE, NULL, &sa);
  cr_assert(sa.sa_handler == SIG_IGN || sa.sa_handler != SIG_DFL, "SIGPIPE cannot kill the process");
}

/* An abort while a read waits, and an idle timeout: the stream closes with
 * the reason, the reader rejects with it. */
static vow_value abort_and_idle(vow_loop *l, void *arg) {
  (void)arg;
  vow_tcp_server *srv;
  cr_assert_eq(vow_tcp_listen(l, "127.0.0.1", 0, NULL, &srv), 0);
  int port = vow_tcp_server_port(srv);
  vow_value a, b;
  cr_assert_eq(vow_await(vow_tcp_connect(l, "127.0.0.1", port, NULL), &a), 0);
  cr_assert_eq(vow_await(vow_tcp_connect(l, "127.0.0.1", port, NULL), &b), 0);
  vow_abort_signal *sig = vow_abort_signal_new(l);
  cr_assert_eq(vow_stream_set_signal(vow_as_stream(a), sig), 0);
  vow_asyncgen *reader = vow_stream_chunks(vow_as_stream(a));
  vow_promise *waiting = vow_asyncgen_next(reader, vow_undefined());
  cr_assert_eq(vow_await(vow_delay(l, 10, vow_undefined()), NULL), 0);
  cr_assert_eq(vow_promise_state(waiting), VOW_PENDING);
  vow_abort(sig, vow_error(VOW_EABORTED, "stop reading"));
  vow_value e = rejection(waiting);
  cr_assert_str_eq(text(e), "Error(VOW_EABORTED: stop reading)");
  vow_unref(e);
  vow_asyncgen_unref(reader);
  vow_abort_signal_unref(sig);

  cr_assert_eq(vow_stream_set_timeout(vow_as_stream(b), 30), 0);
  char got[16];
  cr_assert_lt(read_all(vow_as_stream(b), got, sizeof got, NULL, &e), 0);
  cr_assert_eq(vow_error_code(e), VOW_ETIMEDOUT, "%s", text(e));
  cr_assert(strstr(vow_error_message(e), "tcp 127.0.0.1:"), "%s", text(e));
  vow_unref(e);
  vow_unref(a);
  vow_unref(b);
  cr_assert_eq(vow_await(vow_tcp_server_close(srv), NULL), 0);
  return vow_undefined();
}

LOOP_TEST(tcp, abort_during_a_read_and_an_idle_timeout_close_the_connection) { run(abort_and_idle, NULL); }

/* Out of descriptors: accept4 fails with EMFILE, and libuv (as under Node)
 * then accepts and closes the waiting connections with the descriptor it
 * keeps in reserve, rather than spin on them. The client sees its
 * connection closed; the server is unharmed, and accepts again once
 * descriptors are back. */
static vow_value out_of_descriptors(vow_loop *l, void *arg) {
  (void)arg;
  vow_tcp_server *srv;
  cr_assert_eq(vow_tcp_listen(l, "127.0.0.1", 0, NULL, &srv), 0);
  int port = vow_tcp_server_port(srv);
  int fd = raw_client(port);
  struct rlimit old, low;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  int probe = open("/dev/null", O_RDONLY); /* the lowest free descriptor: the limit leaves none */
  cr_assert_geq(probe, 0);
  close(probe);
  low = old;
  low.rlim_cur = (rlim_t)probe;
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  vow_asyncgen *accepts = vow_tcp_accept_iter(srv);
  vow_promise *next = vow_asyncgen_next(accepts, vow_undefined());
  char byte;
  ssize_t n;
  while ((n = recv(fd, &byte, 1, MSG_DONTWAIT)) < 0 && errno == EAGAIN) /* until libuv drops it */
    cr_assert_eq(vow_await(vow_delay(l, 5, vow_undefined()), NULL), 0);
  cr_assert(n == 0 || errno == ECONNRESET, "the waiting client saw its connection closed");
  cr_assert_eq(vow_promise_state(next), VOW_PENDING, "the server goes on waiting");
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  close(fd);

  /* Descriptors are back: the same iterator accepts the next client. */
  vow_value c, it;
  cr_assert_eq(vow_await(vow_tcp_connect(l, "127.0.0.1", port, NULL), &c), 0);
  cr_assert_eq(vow_await(next, &it), 0, "%s", text(it));
  cr_assert(!vow_iter_done(it));
  char a[64];
  cr_assert_eq(vow_tcp_remote_address(vow_as_stream(vow_iter_value(it)), a, sizeof a),
               vow_tcp_local_address(vow_as_stream(c), a, sizeof a));
  vow_unref(it);
  vow_unref(c);
  vow_asyncgen_unref(accepts);
  cr_assert_eq(vow_await(vow_tcp_server_close(srv), NULL), 0);
  return vow_undefined();
}

LOOP_TEST(tcp, out_of_descriptors_the_waiting_client_is_closed_and_the_server_goes_on) {
  run(out_of_descriptors, NULL);
}

/* ---- the loop's end ------------------------------------------------------------------------------ */

LOOP_TEST(tcp, a_loop_freed_mid_connect_and_listening_releases_everything) {
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
