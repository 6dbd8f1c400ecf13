/*
 * test_faults_tcp.c — allocation failure at every allocation site of DNS and
 * TCP (tests/faults.h): a scenario that looks a name up, listens, accepts,
 * connects by name, by address and by a list of addresses, is refused, meets
 * an unknown name (one glibc rejects without asking a server), times out,
 * closes its server, and then frees its loop with a connect, a lookup, a
 * listener and an accept pending — run with the 1st allocation failing,
 * then the 2nd, and so on, once failing one allocation and once failing
 * every allocation from there on. Each run must end without a crash, a hang
 * or a leak (pooled objects are counted; ASan builds check the heap).
 */
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "faults.h"
#include "log.h"
#include "core/pool.h"
#include "io/tcp.h"
#include "vow.h"

/* Sockets the scenario needs, made with plain calls outside the failing
 * allocator: a port that refuses and one whose accept queue is full. */
static int refusing_fd, refusing;
static int silent_fds[16], nsilent, silent;

static int bound(int fd, struct sockaddr_in *a) {
  *a = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert_eq(bind(fd, (struct sockaddr *)a, sizeof *a), 0);
  socklen_t len = sizeof *a;
  getsockname(fd, (struct sockaddr *)a, &len);
  return ntohs(a->sin_port);
}

static void make_sockets(void) {
  struct sockaddr_in a;
  refusing_fd = socket(AF_INET, SOCK_STREAM, 0);
  refusing = bound(refusing_fd, &a);
  silent_fds[0] = socket(AF_INET, SOCK_STREAM, 0);
  silent = bound(silent_fds[0], &a);
  cr_assert_eq(listen(silent_fds[0], 0), 0);
  for (nsilent = 1;;) {
    cr_assert_lt(nsilent, 16);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    silent_fds[nsilent++] = fd;
    connect(fd, (struct sockaddr *)&a, sizeof a);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    if (poll(&p, 1, 300) == 0) break;
  }
}

static void close_sockets(void) {
  close(refusing_fd);
  for (int i = 0; i < nsilent; i++) close(silent_fds[i]);
}

static vow_value scenario(vow_loop *loop, void *arg) {
  (void)arg;
  vow_value v;
  vow_abort_signal *sig = vow_abort_signal_new(loop);
  vow_dns_options d = {.pairs = 1, .signal = sig};
  vow_await(vow_dns_lookup(loop, "localhost", &d), &v), vow_unref(v);

  vow_tcp_server *srv;
  int listening = vow_tcp_listen(loop, "127.0.0.1", 0, NULL, &srv) == 0;
  int port = listening ? vow_tcp_server_port(srv) : 1;
  vow_asyncgen *accepts = listening ? vow_tcp_accept_iter(srv) : NULL;
  vow_promise *next = accepts ? vow_asyncgen_next(accepts, vow_undefined()) : NULL;

  vow_tcp_connect_options o = {.signal = sig, .timeout_ms = 20000, .nodelay = 1};
  vow_promise *closed = NULL;
  int close_called = 0;
  if (vow_await(vow_tcp_connect(loop, "localhost", port, &o), &v) == 0) {
    char a[64];
    vow_tcp_local_address(vow_as_stream(v), a, sizeof a);
  } else if (listening) { /* nobody will come: closing ends the iterator */
    closed = vow_tcp_server_close(srv);
    close_called = 1;
  }
  vow_unref(v);
  if (next) {
    if (vow_await(next, &v) == 0 && !vow_iter_done(v)) {
      char a[64];
      vow_tcp_remote_address(vow_as_stream(vow_iter_value(v)), a, sizeof a);
    }
    vow_unref(v);
  }
  const char *both[] = {"::1", "127.0.0.1"};
  vow_await(vow__tcp_connect_list(loop, "localhost", both, 2, port, NULL), &v), vow_unref(v);
  vow_await(vow_tcp_connect(loop, "127.0.0.1", refusing, NULL), &v), vow_unref(v);
  vow_await(vow_dns_lookup(loop, "no..such.host", NULL), &v), vow_unref(v); /* rejected locally */
  vow_await(vow_tcp_connect(loop, "no..such.host", 80, NULL), &v), vow_unref(v);
  vow_tcp_connect_options quick = {.timeout_ms = 5};
  vow_await(vow_tcp_connect(loop, "127.0.0.1", silent, &quick), &v), vow_unref(v);
  if (listening && !close_called) closed = vow_tcp_server_close(srv);
  if (closed) vow_await(closed, NULL);
  vow_asyncgen_unref(accepts);
  vow_abort_signal_unref(sig);
  return vow_string("done");
}

static void quiet(vow_loop *l, vow_promise *p, vow_value r, void *d) {
  (void)l, (void)p, (void)r, (void)d;
}

/* What the loop's teardown must release: work still pending when it is freed. */
static void leave_pending(vow_loop *loop) {
  vow_promise_unref(vow_tcp_connect(loop, "127.0.0.1", silent, NULL));
  vow_promise_unref(vow_tcp_connect(loop, "localhost", silent, NULL));
  vow_promise_unref(vow_dns_lookup(loop, "localhost", NULL));
  vow_tcp_server *srv;
  if (vow_tcp_listen(loop, "127.0.0.1", 0, NULL, &srv) == 0) {
    vow_asyncgen *accepts = vow_tcp_accept_iter(srv);
    if (accepts) vow_promise_unref(vow_asyncgen_next(accepts, vow_undefined()));
    vow_asyncgen_unref(accepts);
  }
}

static int run_once(long n, fault_mode how) {
  fault_arm(n, how);
  vow_loop *loop;
  vow_loop_options opts = {.stack_size = 64 * 1024};
  if (vow_loop_new(&loop, &opts) == 0) {
    vow_on_unhandled_rejection(loop, quiet, NULL);
    vow_promise *p = vow_async(loop, scenario, NULL);
    vow_loop_run(loop);
    if (n == 0) cr_assert_str_eq(vow_str(vow_promise_result(p)), "done");
    vow_promise_unref(p);
    leave_pending(loop);
    cr_assert_eq(vow_loop_free(loop), 0, "the loop frees after a failure at allocation %ld", n);
  }
  fault_disarm();
  cr_assert_eq(vow__pool_leaked, 0, "pooled objects leaked after a failure at allocation %ld", n);
  return 0;
}

Test(faults_tcp, every_allocation_can_fail, .timeout = 120) {
  make_sockets();
  run_once(0, FAULT_ONCE);
  long total = fault_allocations;
  cr_assert_gt(total, 30, "the scenario makes allocations (%ld)", total);
  long failed = fault_every_site(run_once, FAULT_ONCE);
  cr_assert_geq(failed + 1, total, "every allocation site was failed once (%ld of %ld)", failed, total);
  cr_log_info("%ld allocations, each failed once", total);
  close_sockets();
  TEST_LEAK_CHECK();
}

Test(faults_tcp, sustained_out_of_memory_from_every_point, .timeout = 120) {
  make_sockets();
  run_once(0, FAULT_ONCE);
  long total = fault_allocations;
  long failed = fault_every_site(run_once, FAULT_FROM);
  cr_assert_geq(failed + 1, total, "memory ran out at every point (%ld of %ld)", failed, total);
  cr_log_info("memory ran out from each of %ld points", failed);
  close_sockets();
  TEST_LEAK_CHECK();
}
