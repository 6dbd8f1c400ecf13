/*
 * fuzz_fetch.c — libFuzzer: vow_fetch against a server that answers garbage.
 *
 * A raw libuv server accepts one connection, sends the input as its whole
 * "response", and closes. fetch must settle (fulfil or reject with a clear
 * code), the body must read or fail cleanly, and nothing may crash or leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "core/pool.h"
#include "vow.h"

typedef struct garbage_server {
  vow_loop *loop;
  uv_tcp_t listener;
  uv_tcp_t conn;
  uv_write_t write;
  uv_shutdown_t shutdown;
  uv_buf_t data;
  int accepted;
  int answered;
  int port;
  char scratch[4096];
} garbage_server;

static void on_shutdown(uv_shutdown_t *req, int status) {
  (void)req, (void)status;
}

static void on_written(uv_write_t *req, int status) {
  garbage_server *g = req->data;
  if (status == 0) uv_shutdown(&g->shutdown, (uv_stream_t *)&g->conn, on_shutdown);
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  (void)size;
  garbage_server *g = h->data;
  *buf = uv_buf_init(g->scratch, sizeof g->scratch);
}

/* Reads the request (whatever it is), answers with the input once, half-
 * closes, and closes when the client does: no reset for unread bytes. */
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  garbage_server *g = s->data;
  if (n < 0) {
    if (!uv_is_closing((uv_handle_t *)s)) uv_close((uv_handle_t *)s, NULL);
    return;
  }
  if (n > 0 && !g->answered) {
    g->answered = 1;
    g->write.data = g;
    uv_write(&g->write, s, &g->data, 1, on_written);
  }
}

static void on_connection(uv_stream_t *listener, int status) {
  garbage_server *g = listener->data;
  if (status != 0 || g->accepted) return;
  uv_tcp_init(listener->loop, &g->conn);
  g->conn.data = g;
  if (uv_accept(listener, (uv_stream_t *)&g->conn) != 0) {
    uv_close((uv_handle_t *)&g->conn, NULL);
    return;
  }
  g->accepted = 1;
  uv_read_start((uv_stream_t *)&g->conn, on_alloc, on_read);
}

static vow_value fetch_it(vow_loop *loop, void *arg) {
  garbage_server *g = arg;
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/", g->port);
  vow_fetch_options o = {.timeout_ms = 500, .max_body = 1 << 16};
  vow_value r, body;
  if (vow_await(vow_fetch(loop, url, &o), &r) == 0) {
    vow_response *res = vow_as_response(r);
    if (!res) abort(); /* a fulfilled fetch always carries a response */
    (void)vow_response_status(res);
    (void)vow_response_header(res, "content-type");
    vow_await(vow_response_text(res), &body);
    vow_unref(body);
  }
  vow_unref(r);
  uv_close((uv_handle_t *)&g->listener, NULL);
  if (g->accepted && !uv_is_closing((uv_handle_t *)&g->conn)) uv_close((uv_handle_t *)&g->conn, NULL);
  return vow_undefined();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  vow_loop *loop;
  if (vow_loop_new(&loop, NULL) != 0) return 0;
  garbage_server g;
  memset(&g, 0, sizeof g);
  g.loop = loop;
  g.data = uv_buf_init((char *)(uintptr_t)data, (unsigned)size);
  uv_tcp_init(vow_loop_uv(loop), &g.listener);
  g.listener.data = &g;
  struct sockaddr_in addr;
  uv_ip4_addr("127.0.0.1", 0, &addr);
  uv_tcp_bind(&g.listener, (const struct sockaddr *)&addr, 0);
  if (uv_listen((uv_stream_t *)&g.listener, 8, on_connection) != 0) abort();
  struct sockaddr_storage bound;
  int len = sizeof bound;
  uv_tcp_getsockname(&g.listener, (struct sockaddr *)&bound, &len);
  g.port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
  vow_promise *p = vow_async(loop, fetch_it, &g);
  if (vow_loop_run(loop) != 0) abort();
  if (vow_promise_state(p) != VOW_FULFILLED) abort(); /* fetch settled, the body ran to its end */
  vow_promise_unref(p);
  if (vow_loop_free(loop) != 0) abort();
  if (vow__pool_leaked != 0) abort();
  return 0;
}
