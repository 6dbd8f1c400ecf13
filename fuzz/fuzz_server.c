/*
 * fuzz_server.c — libFuzzer: arbitrary bytes sent to vow's HTTP server.
 *
 * Each input is written to a fresh connection (then the client half-closes);
 * the loop runs until the server has answered and closed, or gave up. The
 * server must never crash, hang or leak, whatever it receives: ASan checks
 * memory, and the loop must end on its own (the request timeout is short).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/pool.h"
#include "vow.h"

typedef struct client {
  vow_loop *loop;
  uv_tcp_t tcp;
  vow_promise *done;   /* resolved when the server has closed the connection */
  uv_connect_t connect;
  uv_write_t write;
  uv_shutdown_t shutdown;
  uv_buf_t data;
  char scratch[4096];
} client;

static vow_value handler(vow_loop *loop, vow_request *req, void *data) {
  (void)data;
  if (strcmp(vow_request_target(req), "/slow") == 0)
    vow_await(vow_delay(loop, 5, vow_undefined()), NULL);
  return vow_http_response(200, NULL, vow_string(vow_request_method(req)));
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  (void)size;
  client *c = h->data;
  *buf = uv_buf_init(c->scratch, sizeof c->scratch);
}

static void finish(vow_loop *loop, void *arg) {
  (void)loop;
  client *c = arg;
  vow_promise_resolve(c->done, vow_undefined());
  if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, NULL);
}

/* A raw libuv callback settling a promise goes through vow_loop_enter, so
 * that the microtasks it queues run now, as after any macrotask. */
static void client_done(client *c) {
  vow_loop_enter(c->loop, finish, c);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  if (n < 0) client_done(s->data); /* the server closed: done */
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)req, (void)status;
}

static void on_written(uv_write_t *req, int status) {
  client *c = req->data;
  if (status == 0) uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown);
}

static void on_connect(uv_connect_t *req, int status) {
  client *c = req->data;
  if (status != 0) {
    client_done(c);
    return;
  }
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  c->write.data = c;
  uv_write(&c->write, (uv_stream_t *)&c->tcp, &c->data, 1, on_written);
}

typedef struct session {
  vow_server *server;
  client *c;
} session;

/* Closes the server once the connection is over, or after a while (a
 * request that keeps the server waiting past its timeouts). */
static vow_value close_when_done(vow_loop *loop, void *arg) {
  session *s = arg;
  vow_await(vow_timeout(loop, vow_promise_ref(s->c->done), 300, NULL), NULL);
  vow_await(vow_server_close(s->server), NULL);
  return vow_undefined();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  vow_loop *loop;
  if (vow_loop_new(&loop, NULL) != 0) return 0;
  vow_server_options o = {.request_timeout_ms = 50, .keepalive_timeout_ms = 20,
                          .max_header_bytes = 2048, .max_body_bytes = 4096};
  vow_server *server;
  if (vow_server_listen(loop, &o, handler, NULL, &server) != 0) abort();
  client c;
  memset(&c, 0, sizeof c);
  c.loop = loop;
  c.data = uv_buf_init((char *)(uintptr_t)data, (unsigned)size);
  uv_tcp_init(vow_loop_uv(loop), &c.tcp);
  c.tcp.data = &c; /* after init, which may reset it */
  c.connect.data = &c;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", vow_server_port(server), &addr);
  uv_tcp_connect(&c.connect, &c.tcp, (const struct sockaddr *)&addr, on_connect);
  c.done = vow_promise_new(loop);
  session sess = {server, &c};
  vow_promise_unref(vow_async(loop, close_when_done, &sess));
  if (vow_loop_run(loop) != 0) abort();
  if (!uv_is_closing((uv_handle_t *)&c.tcp)) uv_close((uv_handle_t *)&c.tcp, NULL);
  uv_run(vow_loop_uv(loop), UV_RUN_NOWAIT);
  vow_promise_unref(c.done);
  if (vow_loop_free(loop) != 0) abort();
  if (vow__pool_leaked != 0) abort();
  return 0;
}
