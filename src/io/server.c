/*
 * server.c — a small HTTP/1.1 server on the loop, parsing with Node's
 * http-parser: keep-alive, pipelining, Content-Length and chunked request
 * bodies, streamed (chunked) responses with backpressure.
 *
 * A connection moves through these states:
 *
 *   IDLE       waiting for the first byte of a request (fresh: request
 *              timeout, 408; after a response: keep-alive timeout, silent close)
 *   RECEIVING  a request has begun (request timeout: 408)
 *   HANDLING   the request is complete; its handler runs as an async function
 *              and its response is written. The parser is paused: bytes that
 *              arrive meanwhile (pipelined requests) wait, unparsed, so
 *              requests are answered one at a time, in order
 *   ENDING     the last response is queued: the write side is shut down and
 *              what the client still sends is drained until it closes (so a
 *              413 or 400 is read rather than lost to a reset)
 *   CLOSED     the handles are closing; the memory goes in their close callbacks
 *
 * Invariants:
 *   - one request at a time per connection: conn->req is the request being
 *     received or handled (a reference), and it is answered before the parser
 *     goes on;
 *   - a request's handler coroutine holds a reference to the request (freed
 *     by its arg_free, whether the body returns or is dropped with the
 *     loop); req->conn is NULL
 *     once the connection is gone, and the coroutine never touches a
 *     connection across an await without looking there again;
 *   - a connection outlives its handles' close callbacks, a server outlives
 *     its connections and its listener: memory is freed only in those
 *     callbacks, so nothing that libuv may still call back is ever freed early;
 *   - every libuv callback enters through vow__loop_enter (microtasks drain
 *     after it), except after loop teardown, when callbacks only free memory;
 *   - user code (handlers, abort listeners) runs only when the connection's
 *     state is consistent: the parser's callbacks never call it, aborts come
 *     last in conn_close;
 *   - what a client can make a connection hold is bounded, in every state:
 *     unparsed input by READ_BUF (conn_flow stops reading there, and while
 *     answers are backed up past WRITE_HIGH), a request's head by
 *     max_header_bytes and max_headers, its body by max_body_bytes;
 *   - a request's head is checked byte by byte (head_scan) before the parser
 *     reads it, so nothing the strict grammar refuses is ever acted upon.
 */
#include <http_parser.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/list.h"
#include "io/io.h"
#include "promise/promise.h"
#include "promise/value.h"

enum { C_IDLE, C_RECEIVING, C_HANDLING, C_ENDING, C_CLOSED };

enum {
  BACKLOG = 1024,
  READ_BUF = 64 * 1024,
  WRITE_HIGH = 1024 * 1024,   /* queued response bytes above which no new request is parsed */
  LINGER_MS = 2000            /* how long an ending connection waits for the client to close */
};

typedef struct conn conn;

struct vow__server_state {
  vow_server *servers;
  char read_buf[READ_BUF];    /* every read lands here, then is copied where it belongs */
};

struct vow_server {
  vow_loop *loop;
  vow__server_state *st;
  vow_server *prev, *next;
  uv_tcp_t *listener;         /* NULL once its close callback ran */
  vow_http_handler handler;
  void *data;
  size_t max_header_bytes;
  size_t max_headers;
  size_t max_body_bytes;
  uint64_t request_timeout_ms;
  uint64_t keepalive_timeout_ms;
  size_t stack_size;
  int port;
  uv_tcp_t refused;           /* takes a connection there is no memory for */
  int refusing;               /* refused is closing: it is busy until then */
  int accept_waiting;         /* a connection waits until refused is free */
  conn *conns;                /* open connections */
  size_t nconns;              /* connections whose memory is not yet freed */
  size_t input_peak;          /* the most unparsed bytes a connection held (tests) */
  int closing;
  vow_promise *closed;        /* vow_server_close's promise */
  int torn;                   /* the loop is being freed */
};

struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_shutdown_t shutdown;
  int open_handles;
  vow_server *srv;
  conn *prev, *next;
  http_parser parser;
  vow__buf in;                /* received, not yet parsed: [in_off, in.len) */
  size_t in_off;
  vow_request *req;
  int state;
  int reading;
  int advancing, again;       /* conn_advance is running / must look again */
  unsigned served;            /* responses completed */
  int keep_alive;             /* for the request being handled */
  int err_status;             /* the error to answer when the parser stops */
  size_t writes;              /* writes in flight */
  vow_promise *drained;       /* a streamed response waits for its write */
  vow__buf field, value;      /* the header being parsed */
  int in_value;
  int head;                   /* head_scan's state for the message being received */
  size_t scan_at;             /* where in `in` head_scan goes on */
};

struct vow_request {
  uint32_t refs;
  conn *conn;                 /* NULL once the connection is gone */
  vow_loop *loop;
  vow_http_handler handler;
  void *data;
  const char *method;
  vow__buf url;
  vow__headers headers;
  vow__buf body;
  vow_value body_value;
  size_t header_bytes;
  size_t header_lines;
  int hosts;                  /* Host lines */
  int head;
  int http10;
  vow_abort_signal *signal;
  int gone;                   /* the client left before the response was sent */
  vow_value res;              /* the handler's answer, kept here rather than on
                                 the coroutine's stack, which a loop teardown drops */
};

/* A response value (vow_http_response / vow_http_response_stream). */
typedef struct http_res {
  int status;
  char *content_type;
  vow__headers headers;
  vow_value body;
  vow_asyncgen *stream;
} http_res;

static void conn_advance(conn *c);
static void conn_close(conn *c);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void conn_end(conn *c);
static void send_error(conn *c, int status);

/* libuv's buffers are not const, but vow only ever writes from them. */
static char *unconst(const char *s) {
  return (char *)(uintptr_t)s;
}

/* ---- status texts ------------------------------------------------------------------ */

static const char *status_text(int status) {
  switch (status) {
#define XX(num, name, string) case num: return #string;
    HTTP_STATUS_MAP(XX)
#undef XX
    default: return "";
  }
}

/* ---- requests ------------------------------------------------------------------------ */

static vow_request *request_new(conn *c) {
  vow_request *r = vow__calloc(1, sizeof *r);
  if (!r) return NULL;
  r->refs = 1;
  r->conn = c;
  r->loop = c->srv->loop;
  r->handler = c->srv->handler;
  r->data = c->srv->data;
  r->method = "GET";
  return r;
}

static void request_unref(vow_request *r) {
  if (!r || --r->refs > 0) return;
  vow__buf_free(&r->url);
  vow__headers_clear(&r->headers);
  vow__buf_free(&r->body);
  vow_unref(r->body_value);
  vow_unref(r->res);
  vow_abort_signal_unref(r->signal);
  vow__free(r);
}

/* The handler coroutine's arg_free: it is done with the request (its body
 * returned, or it never ran, or the loop dropped it). */
static void request_release(void *r) {
  request_unref(r);
}

const char *vow_request_method(const vow_request *req) { return req ? req->method : ""; }
const char *vow_request_target(const vow_request *req) {
  return req && req->url.data ? req->url.data : "";
}
const char *vow_request_header(const vow_request *req, const char *name) {
  return req ? vow__headers_get(&req->headers, name) : NULL;
}
vow_value vow_request_body(const vow_request *req) {
  return req ? req->body_value : vow_undefined();
}

vow_abort_signal *vow_request_signal(vow_request *req) {
  if (!req) return NULL;
  if (!req->signal) { /* made on first use: most handlers never ask */
    req->signal = vow_abort_signal_new(req->loop);
    if (req->signal && req->gone) vow_abort(req->signal, vow_undefined());
  }
  return req->signal;
}

/* ---- response values ------------------------------------------------------------------ */

static void http_res_free(void *ptr) {
  http_res *h = ptr;
  vow__free(h->content_type);
  vow__headers_clear(&h->headers);
  vow_unref(h->body);
  vow_asyncgen_unref(h->stream);
  vow__free(h);
}

static http_res *as_http_res(vow_value v) {
  if (v.kind != VOW_POINTER || !v.as.obj) return NULL;
  vow__pointer *p = (vow__pointer *)v.as.obj;
  return p->destroy == http_res_free ? p->ptr : NULL;
}

static vow_value http_res_new(int status, const char *content_type, vow_value body,
                              vow_asyncgen *stream) {
  if (status < 100 || status > 999 || (body.kind != VOW_STRING && body.kind != VOW_UNDEFINED)) {
    vow_unref(body);
    vow_asyncgen_unref(stream);
    return vow_error(status < 100 || status > 999 ? VOW_ERANGE : VOW_ETYPE,
                     "vow_http_response: a status of 100-999 and a STRING body");
  }
  http_res *h = vow__calloc(1, sizeof *h);
  const char *ct = content_type ? content_type : "text/plain; charset=utf-8";
  if (h) h->content_type = strpbrk(ct, "\r\n") ? NULL : vow__strdup(ct);
  if (!h || !h->content_type) {
    vow__free(h);
    vow_unref(body);
    vow_asyncgen_unref(stream);
    return h ? vow_error(VOW_EINVAL, "vow_http_response: a line break in the content type")
             : vow_error_nomem();
  }
  h->status = status;
  h->body = body;
  h->stream = stream;
  return vow_pointer(h, http_res_free);
}

vow_value vow_http_response(int status, const char *content_type, vow_value body) {
  return http_res_new(status, content_type, body, NULL);
}

vow_value vow_http_response_stream(int status, const char *content_type, vow_asyncgen *chunks) {
  if (!chunks) return vow_error(VOW_EINVAL, "vow_http_response_stream: no generator");
  return http_res_new(status, content_type, vow_undefined(), chunks);
}

int vow_http_response_header(vow_value response, const char *name, const char *value) {
  http_res *h = as_http_res(response);
  if (!h || !name || !value || !*name || strpbrk(name, ":\r\n \t") || strpbrk(value, "\r\n"))
    return VOW_EINVAL;
  return vow__headers_add(&h->headers, name, strlen(name), value, strlen(value), 0);
}

/* ---- writing ---------------------------------------------------------------------------- */

typedef struct wreq {
  uv_write_t req;
  conn *c;
  char *mem;        /* owned bytes to free */
  vow_value hold;   /* a STRING whose bytes are written, kept alive */
  int notify;       /* settle c->drained when done */
} wreq;

typedef struct write_event {
  conn *c;
  int status;
  int notify;
} write_event;

static void written_task(vow_loop *loop, void *arg) {
  (void)loop;
  write_event *ev = arg;
  conn *c = ev->c;
  if (ev->status < 0 && c->state != C_CLOSED) conn_close(c);
  if (ev->notify && c->drained) {
    vow_promise *p = c->drained;
    c->drained = NULL;
    vow_promise_resolve(p, vow_int(ev->status));
    vow_promise_unref(p);
  }
  if (c->state < C_ENDING) conn_advance(c); /* a full write queue may have held it back */
}

static void on_written(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  conn *c = w->c;
  int notify = w->notify;
  vow__free(w->mem);
  vow_unref(w->hold);
  vow__free(w);
  c->writes--;
  if (c->srv->torn) return;
  write_event ev = {c, status, notify};
  vow__loop_enter(c->srv->loop, written_task, &ev);
}

/* Queues bufs; mem (freed) and hold (released) when written. */
static int conn_write(conn *c, uv_buf_t *bufs, unsigned n, char *mem, vow_value hold, int notify) {
  wreq *w = c->state < C_CLOSED ? vow__malloc(sizeof *w) : NULL;
  int err = w ? 0 : (c->state < C_CLOSED ? VOW_ENOMEM : UV_ECANCELED);
  if (w) {
    *w = (wreq){.c = c, .mem = mem, .hold = hold, .notify = notify};
    err = uv_write(&w->req, (uv_stream_t *)&c->tcp, bufs, n, on_written);
  }
  if (err) {
    vow__free(mem);
    vow_unref(hold);
    vow__free(w);
    return err;
  }
  c->writes++;
  return 0;
}

static int append_str(vow__buf *b, const char *s) {
  return vow__buf_append(b, s, strlen(s));
}

/* The status line and headers. framing: "Content-Length: N\r\n" or
 * "Transfer-Encoding: chunked\r\n" or "" (HTTP/1.0 stream: the close ends it). */
static char *build_head(conn *c, int status, const char *content_type, const vow__headers *extra,
                        const char *framing, size_t *len) {
  vow__buf b = {0};
  char line[128];
  snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\nContent-Type: ", status, status_text(status));
  int err = append_str(&b, line);
  err = err ? err : append_str(&b, content_type);
  err = err ? err : append_str(&b, "\r\n");
  for (size_t i = 0; extra && i < extra->len && !err; i++) {
    const char *name = extra->items[i].name;
    /* vow frames the message itself. */
    if (!strcasecmp(name, "content-length") || !strcasecmp(name, "transfer-encoding") ||
        !strcasecmp(name, "connection") || !strcasecmp(name, "keep-alive"))
      continue;
    err = append_str(&b, name);
    err = err ? err : append_str(&b, ": ");
    err = err ? err : append_str(&b, extra->items[i].value);
    err = err ? err : append_str(&b, "\r\n");
  }
  if (c->keep_alive)
    snprintf(line, sizeof line, "Connection: keep-alive\r\nKeep-Alive: timeout=%llu\r\n\r\n",
             (unsigned long long)((c->srv->keepalive_timeout_ms + 999) / 1000));
  else
    snprintf(line, sizeof line, "Connection: close\r\n\r\n");
  err = err ? err : append_str(&b, framing);
  err = err ? err : append_str(&b, line);
  if (err) {
    vow__buf_free(&b);
    return NULL;
  }
  *len = b.len;
  return b.data;
}

/* A whole response: head and body in one write. */
static int write_whole(conn *c, int status, const char *content_type, const vow__headers *extra,
                       vow_value body, int head_only) {
  char framing[64];
  size_t blen = body.kind == VOW_STRING ? vow_str_len(body) : 0;
  snprintf(framing, sizeof framing, "Content-Length: %zu\r\n", blen);
  size_t hlen;
  char *head = build_head(c, status, content_type, extra, framing, &hlen);
  if (!head) return VOW_ENOMEM;
  uv_buf_t bufs[2] = {uv_buf_init(head, (unsigned)hlen), uv_buf_init(unconst(vow_str(body)), (unsigned)blen)};
  int send_body = blen && !head_only;
  return conn_write(c, bufs, send_body ? 2 : 1, head, send_body ? vow_ref(body) : vow_undefined(), 0);
}

/* The server's own answers: 400, 408, 413, 431, 500... and the connection ends. */
static void send_error(conn *c, int status) {
  if (c->state >= C_ENDING) return;
  if (c->req && c->state == C_RECEIVING) { /* never handed to a handler */
    vow_request *r = c->req;
    c->req = NULL;
    r->conn = NULL;
    request_unref(r);
  }
  c->keep_alive = 0;
  vow_value body = vow_stringf("%d %s\n", status, status_text(status));
  write_whole(c, status, "text/plain; charset=utf-8", NULL, body, 0);
  vow_unref(body);
  conn_end(c);
}

/* ---- connections: lifecycle ------------------------------------------------------------- */

static void server_maybe_free(vow_server *srv);

static void conn_handle_closed(uv_handle_t *h) {
  conn *c = h->data;
  if (--c->open_handles > 0) return;
  vow_server *srv = c->srv;
  vow__buf_free(&c->in);
  vow__buf_free(&c->field);
  vow__buf_free(&c->value);
  vow__free(c);
  srv->nconns--;
  server_maybe_free(srv);
}

static void timer_start(conn *c, uint64_t ms);

/* Hard close: the client is gone (or must go). The request in flight, if any,
 * learns it through its signal — last, once the connection is consistent. */
static void conn_close(conn *c) {
  if (c->state == C_CLOSED) return;
  c->state = C_CLOSED;
  vow_server *srv = c->srv;
  VOW__LIST_UNLINK(srv->conns, c);
  uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
  uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
  if (c->drained) {
    vow_promise *p = c->drained;
    c->drained = NULL;
    vow_promise_resolve(p, vow_int(UV_ECANCELED));
    vow_promise_unref(p);
  }
  vow_request *r = c->req;
  c->req = NULL;
  if (!r) return;
  r->conn = NULL;
  r->gone = 1;
  if (r->signal && !srv->torn) vow_abort(r->signal, vow_undefined());
  request_unref(r);
}

static void shutdown_task(vow_loop *loop, void *arg) {
  (void)loop;
  conn *c = arg;
  if (c->state == C_ENDING) conn_close(c); /* the shutdown failed: nothing more to say */
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  conn *c = req->data;
  if (status == 0 || c->srv->torn) return; /* done: now drain until the client closes */
  vow__loop_enter(c->srv->loop, shutdown_task, c);
}

/* Graceful end: what is queued is written, then the write side is shut down
 * and the client's remaining bytes are drained until it closes. */
static void conn_end(conn *c) {
  if (c->state >= C_ENDING) return;
  c->state = C_ENDING;
  timer_start(c, LINGER_MS);
  if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
  c->shutdown.data = c;
  if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0) conn_close(c);
}

/* ---- timers ----------------------------------------------------------------------------- */

static void timer_task(vow_loop *loop, void *arg) {
  (void)loop;
  conn *c = arg;
  switch (c->state) {
    case C_IDLE:
      if (c->served) conn_close(c); /* keep-alive expired */
      else send_error(c, 408);       /* connected and never sent a request */
      break;
    case C_RECEIVING:
      send_error(c, 408);
      break;
    case C_ENDING:
      conn_close(c); /* the client neither read nor closed */
      break;
    default:
      break;
  }
}

static void on_timer(uv_timer_t *t) {
  conn *c = t->data;
  vow__loop_enter(c->srv->loop, timer_task, c);
}

static void timer_start(conn *c, uint64_t ms) {
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

/* ---- parsing ------------------------------------------------------------------------------- */

static int header_bytes(conn *c, size_t n) {
  c->req->header_bytes += n;
  if (c->req->header_bytes <= c->srv->max_header_bytes) return 0;
  c->err_status = 431;
  return -1;
}

static int commit_header(conn *c) {
  int err = 0;
  if (c->field.len) {
    if (++c->req->header_lines > c->srv->max_headers) {
      c->err_status = 431; /* as for too many bytes: a bound on the work per request */
      return -1;
    }
    if (c->field.len == 4 && strncasecmp(c->field.data, "host", 4) == 0) c->req->hosts++;
    err = vow__headers_add(&c->req->headers, c->field.data, c->field.len,
                           c->value.data ? c->value.data : "", c->value.len, 1);
  }
  c->field.len = c->value.len = 0;
  c->in_value = 0;
  if (err) c->err_status = 500;
  return err ? -1 : 0;
}

static int on_message_begin(http_parser *p) {
  conn *c = p->data;
  c->req = request_new(c);
  if (!c->req) {
    c->err_status = 503;
    return -1;
  }
  c->state = C_RECEIVING;
  c->field.len = c->value.len = 0;
  c->in_value = 0;
  timer_start(c, c->srv->request_timeout_ms);
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  conn *c = p->data;
  if (header_bytes(c, len)) return -1;
  return vow__buf_append(&c->req->url, at, len) ? (c->err_status = 500, -1) : 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  conn *c = p->data;
  if (header_bytes(c, len)) return -1;
  if (c->in_value && commit_header(c)) return -1;
  return vow__buf_append(&c->field, at, len) ? (c->err_status = 500, -1) : 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  conn *c = p->data;
  if (header_bytes(c, len)) return -1;
  c->in_value = 1;
  return vow__buf_append(&c->value, at, len) ? (c->err_status = 500, -1) : 0;
}

static int on_headers_complete(http_parser *p) {
  conn *c = p->data;
  vow_request *r = c->req;
  if (commit_header(c)) return -1;
  if (vow__buf_append(&r->url, "", 1)) { /* NUL-terminated, not counted */
    c->err_status = 500;
    return -1;
  }
  r->url.len--;
  r->method = http_method_str((enum http_method)p->method);
  r->head = p->method == HTTP_HEAD;
  r->http10 = p->http_major == 1 && p->http_minor == 0;
  if (p->http_major != 1 || p->http_minor > 1) {
    c->err_status = 505;
    return -1;
  }
  if (r->hosts > 1 || (!r->http10 && r->hosts == 0)) { /* RFC 9112 3.2: 400 */
    c->err_status = 400;
    return -1;
  }
  if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->srv->max_body_bytes) {
    c->err_status = 413; /* refused before a byte of it is read */
    return -1;
  }
  const char *expect = vow__headers_get(&r->headers, "expect");
  if (expect && strcasecmp(expect, "100-continue") == 0 && !r->http10) {
    /* The client waits for leave to send its body: give it, as Node does. */
    uv_buf_t go = uv_buf_init(unconst("HTTP/1.1 100 Continue\r\n\r\n"), 25);
    if (conn_write(c, &go, 1, NULL, vow_undefined(), 0) != 0) {
      c->err_status = 500; /* unsaid, the client would wait for it */
      return -1;
    }
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  conn *c = p->data;
  if (c->req->body.len + len > c->srv->max_body_bytes) {
    c->err_status = 413;
    return -1;
  }
  return vow__buf_append(&c->req->body, at, len) ? (c->err_status = 500, -1) : 0;
}

static int on_message_complete(http_parser *p) {
  conn *c = p->data;
  vow_request *r = c->req;
  r->body_value = vow_string_n(r->body.data ? r->body.data : "", r->body.len);
  vow__buf_free(&r->body);
  c->keep_alive = http_should_keep_alive(p) && !p->upgrade;
  c->state = C_HANDLING;
  uv_timer_stop(&c->timer);
  http_parser_pause(p, 1); /* the next request waits for this one's response */
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- handling a request --------------------------------------------------------------------- */

/* Writes chunk (taken) and waits until it is written. Returns 0, or < 0 when
 * the connection is gone. Nothing is owned across the await but what the
 * write request and the connection hold. */
static int write_chunk(vow_request *r, vow_value chunk, int chunked) {
  conn *c = r->conn;
  char *size = vow__malloc(24);
  if (!size) {
    vow_unref(chunk);
    return VOW_ENOMEM;
  }
  int n = chunked ? snprintf(size, 24, "%zx\r\n", vow_str_len(chunk)) : 0;
  uv_buf_t bufs[3] = {uv_buf_init(size, (unsigned)n),
                      uv_buf_init(unconst(vow_str(chunk)), (unsigned)vow_str_len(chunk)),
                      uv_buf_init(unconst("\r\n"), chunked ? 2 : 0)};
  vow_promise *drained = vow_promise_new(r->loop);
  if (!drained) {
    vow__free(size);
    vow_unref(chunk);
    return VOW_ENOMEM;
  }
  int err = conn_write(c, bufs, 3, size, chunk, 1);
  if (err) {
    vow_promise_unref(drained);
    return err;
  }
  c->drained = vow_promise_ref(drained);
  vow_value status;
  vow_await(drained, &status); /* backpressure: the next chunk waits for this write */
  int rc = (int)vow_as_int(status);
  vow_unref(status);
  return r->conn ? rc : UV_ECANCELED;
}

/* The body of a streamed response, chunk by chunk. Returns 0 when it was
 * sent whole; otherwise the connection must be cut (the body is incomplete). */
static int send_stream(vow_request *r, vow_asyncgen *gen, int chunked) {
  for (;;) {
    vow_value it;
    if (vow_await(vow_asyncgen_next(gen, vow_undefined()), &it) != 0) {
      vow_unref(it); /* the generator threw: the headers are out, so cut */
      return VOW_EREJECTED;
    }
    int done = vow_iter_done(it);
    vow_value chunk = vow_ref(vow_iter_value(it));
    vow_unref(it);
    if (done) {
      vow_unref(chunk);
      return 0;
    }
    int err = r->conn ? 0 : UV_ECANCELED;
    if (!err && chunk.kind != VOW_STRING) err = VOW_ETYPE;
    if (!err && vow_str_len(chunk)) err = write_chunk(r, chunk, chunked); /* "0" would end it */
    else vow_unref(chunk);
    if (err) { /* let the generator clean up, as a for-await's break does */
      vow_value ignored;
      vow_await(vow_asyncgen_return(gen, vow_undefined()), &ignored);
      vow_unref(ignored);
      return err;
    }
  }
}

static void respond_stream(vow_request *r, http_res *h) {
  conn *c = r->conn;
  int chunked = !r->http10;
  if (!chunked) c->keep_alive = 0; /* HTTP/1.0: the end of the body is the close */
  size_t hlen;
  char *head = build_head(c, h->status, h->content_type, &h->headers,
                          chunked ? "Transfer-Encoding: chunked\r\n" : "", &hlen);
  uv_buf_t buf = uv_buf_init(head, (unsigned)hlen);
  if (!head || conn_write(c, &buf, 1, head, vow_undefined(), 0) != 0) {
    conn_close(c);
    return;
  }
  if (r->head) return;
  int err = send_stream(r, h->stream, chunked);
  if (!r->conn) return;
  if (err) {
    conn_close(r->conn);
    return;
  }
  if (chunked) {
    buf = uv_buf_init(unconst("0\r\n\r\n"), 5);
    if (conn_write(r->conn, &buf, 1, NULL, vow_undefined(), 0) != 0) conn_close(r->conn);
  }
}

/* The response is queued: the connection goes on with the next request or ends. */
static void response_done(vow_request *r) {
  conn *c = r->conn;
  if (!c) return;
  r->conn = NULL;
  c->req = NULL;
  request_unref(r); /* the connection's reference */
  if (c->state != C_HANDLING) return;
  c->served++;
  if (!c->keep_alive || c->srv->closing) {
    conn_end(c);
    return;
  }
  c->state = C_IDLE;
  http_parser_pause(&c->parser, 0);
  timer_start(c, c->srv->keepalive_timeout_ms);
  conn_advance(c);
}

static void respond(vow_request *r, vow_value res, int thrown) {
  conn *c = r->conn;
  http_res *h = thrown ? NULL : as_http_res(res);
  if (c->srv->closing) c->keep_alive = 0;
  int err;
  if (!h) {
    vow_value body = vow_string("500 Internal Server Error\n");
    err = write_whole(c, 500, "text/plain; charset=utf-8", NULL, body, r->head);
    vow_unref(body);
  } else if (h->stream) {
    respond_stream(r, h);
    err = 0;
  } else {
    err = write_whole(c, h->status, h->content_type, &h->headers, h->body, r->head);
  }
  if (err && r->conn) conn_close(r->conn);
}

/* The handler's coroutine: run it, await its answer, send it. */
static vow_value request_main(vow_loop *loop, void *arg) {
  vow_request *r = arg;
  r->res = r->handler(loop, r, r->data);
  int thrown = (r->res.flags & VOW__THROWN) != 0;
  r->res.flags = 0;
  if (!thrown && r->res.kind == VOW_PROMISE) {
    vow_value p = r->res;
    r->res = vow_undefined();
    thrown = vow_await_value(p, &r->res) != 0;
  }
  if (r->conn) respond(r, r->res, thrown);
  vow_unref(r->res);
  r->res = vow_undefined();
  response_done(r);
  return vow_undefined(); /* request_release drops the coroutine's reference */
}

static vow_value swallow(vow_loop *loop, vow_value v, void *ctx) {
  (void)loop, (void)v, (void)ctx;
  return vow_undefined();
}

static void dispatch(conn *c) {
  vow_request *r = c->req;
  r->refs++; /* the coroutine's, released by request_release */
  vow_async_options o = {.stack_size = c->srv->stack_size, .name = "http handler", .arg_free = request_release};
  vow_promise *p = vow_async_ex(c->srv->loop, request_main, r, &o);
  if (!p || vow_promise_state(p) == VOW_REJECTED) { /* no coroutine: the body never ran */
    /* request_release already dropped the coroutine's reference (arg_free
     * runs whenever the body will never run, NULL or rejected). */
    if (p) vow_promise_unref(vow_catch(p, swallow, NULL));
    c->state = C_RECEIVING; /* so send_error releases the connection's */
    send_error(c, 503);
  }
  vow_promise_unref(p);
}

/* ---- reading ------------------------------------------------------------------------------------ */

static void parse_failed(conn *c) {
  enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
  int status = c->err_status ? c->err_status : e == HPE_HEADER_OVERFLOW ? 431 : 400;
  send_error(c, status);
}

/* The syntax of a request's head, checked on the raw bytes before the parser
 * sees them: http-parser, as Debian builds it (HTTP_PARSER_STRICT=0), lets
 * through what RFC 9112 and Node's llhttp refuse, and some of it smuggles —
 * "Content-Length : 3" frames the body yet is stored under another name. A
 * head is refused (400) for whitespace or any non-token byte in a field name
 * (5.1), an empty name, a line that starts with whitespace (obs-fold, 5.2), a
 * bare LF or a lone CR (2.2), a control byte in a value (5.5). CRLFs before
 * the request line are skipped, as the parser and Node do (2.2). The state
 * lives in the connection, so a head may come in any number of reads; it
 * stops at the empty line, and restarts when the next message begins. */
enum { HS_START, HS_START_CR, HS_REQUEST_LINE, HS_REQUEST_LINE_CR, HS_LINE, HS_NAME, HS_VALUE,
       HS_VALUE_CR, HS_END_CR, HS_DONE, HS_BAD };

static int is_tchar(unsigned char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int head_step(int st, unsigned char ch) {
  switch (st) {
    case HS_START: return ch == '\r' ? HS_START_CR : ch == '\n' ? HS_BAD : HS_REQUEST_LINE;
    case HS_START_CR: return ch == '\n' ? HS_START : HS_BAD;
    case HS_REQUEST_LINE: return ch == '\r' ? HS_REQUEST_LINE_CR : ch == '\n' ? HS_BAD : st;
    case HS_REQUEST_LINE_CR:
    case HS_VALUE_CR: return ch == '\n' ? HS_LINE : HS_BAD;
    case HS_LINE: return ch == '\r' ? HS_END_CR : is_tchar(ch) ? HS_NAME : HS_BAD;
    case HS_NAME: return ch == ':' ? HS_VALUE : is_tchar(ch) ? HS_NAME : HS_BAD;
    case HS_VALUE:
      if (ch == '\r') return HS_VALUE_CR;
      return (ch < 0x20 && ch != '\t') || ch == 0x7f ? HS_BAD : st;
    case HS_END_CR: return ch == '\n' ? HS_DONE : HS_BAD;
    default: return st;
  }
}

/* Scans what arrived of the current head; 0, or -1 if it is malformed. */
static int head_scan(conn *c) {
  while (c->head != HS_DONE && c->head != HS_BAD && c->scan_at < c->in.len)
    c->head = head_step(c->head, (unsigned char)c->in.data[c->scan_at++]);
  return c->head == HS_BAD ? -1 : 0;
}

/* Read flow control, the one place that starts and stops reading. A
 * connection reads while what waits unparsed is under READ_BUF and its
 * responses are not backed up (past WRITE_HIGH no request is parsed, so what
 * arrives would only pile up), in every state: a client that pipelines and
 * never reads is held back by the kernel's buffers, not by vow's memory. An
 * ending connection always reads: it discards what comes. Every event that
 * can change the answer (a read, a write done, a request parsed or answered)
 * ends in conn_advance, which asks here. */
static void conn_flow(conn *c) {
  if (c->state == C_CLOSED) return;
  int want = c->state == C_ENDING ||
             (c->in.len - c->in_off < READ_BUF &&
              uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) <= WRITE_HIGH);
  if (want && !c->reading) {
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
  } else if (!want && c->reading) {
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
  }
}

/* Parses what is buffered, one request at a time, until a request is being
 * handled, the input runs out or the connection ends. Re-entrant calls (a
 * handler that answers at once) just ask the running one to look again. */
static void conn_advance(conn *c) {
  if (c->advancing) {
    c->again = 1;
    return;
  }
  c->advancing = 1;
  do {
    c->again = 0;
    if (c->state != C_IDLE && c->state != C_RECEIVING) break;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > WRITE_HIGH) break;
    size_t avail = c->in.len - c->in_off;
    if (!avail) break;
    if (c->scan_at < c->in_off) c->scan_at = c->in_off;
    if (head_scan(c) != 0) {
      send_error(c, 400);
      break;
    }
    size_t n = http_parser_execute(&c->parser, &settings, c->in.data + c->in_off, avail);
    c->in_off += n;
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED) { /* a request is complete: the next head starts here */
      c->head = HS_START;
      c->scan_at = c->in_off;
      dispatch(c);
      c->again = 1;
    } else if (e != HPE_OK) {
      parse_failed(c);
    }
  } while (c->again);
  c->advancing = 0;
  if (c->in_off == c->in.len) c->in_off = c->in.len = c->scan_at = 0;
  conn_flow(c);
}

typedef struct read_event {
  conn *c;
  ssize_t nread;
  const char *data;
} read_event;

static void read_task(vow_loop *loop, void *arg) {
  (void)loop;
  read_event *ev = arg;
  conn *c = ev->c;
  if (c->state == C_CLOSED) return;
  if (ev->nread < 0) { /* end of stream or error: the client is gone */
    conn_close(c);
    return;
  }
  if (c->state == C_ENDING) return; /* draining */
  if (c->in_off) { /* what was parsed goes: the buffer holds only what waits */
    memmove(c->in.data, c->in.data + c->in_off, c->in.len - c->in_off);
    c->in.len -= c->in_off;
    c->scan_at = c->scan_at > c->in_off ? c->scan_at - c->in_off : 0;
    c->in_off = 0;
  }
  if (vow__buf_append(&c->in, ev->data, (size_t)ev->nread) != 0) {
    conn_close(c);
    return;
  }
  if (c->in.len > c->srv->input_peak) c->srv->input_peak = c->in.len;
  conn_advance(c); /* and conn_flow: reading stops if this is enough for now */
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  conn *c = h->data;
  *buf = uv_buf_init(c->srv->st->read_buf, READ_BUF);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  if (nread == 0) return; /* EAGAIN */
  conn *c = s->data;
  read_event ev = {c, nread, buf->base};
  vow__loop_enter(c->srv->loop, read_task, &ev);
}

/* ---- accepting ------------------------------------------------------------------------------------ */

static void accept_task(vow_loop *loop, void *arg);

static void refused_closed(uv_handle_t *h) {
  vow_server *srv = h->data;
  srv->refusing = 0;
  if (srv->accept_waiting && !srv->closing) {
    srv->accept_waiting = 0;
    vow__loop_enter(srv->loop, accept_task, srv);
  }
  server_maybe_free(srv);
}

/* No memory for a connection: it is accepted into the server's own spare
 * handle and closed at once (the client sees the close). Left in the backlog
 * instead, it would make libuv stop polling the listener until a uv_accept
 * that never comes. The spare is busy until its close callback; a connection
 * that comes meanwhile waits for it, with the listener paused by libuv. */
static void refuse(vow_server *srv) {
  if (srv->refusing) {
    srv->accept_waiting = 1;
    return;
  }
  uv_tcp_init(&srv->loop->uv, &srv->refused);
  srv->refused.data = srv;
  srv->refusing = 1;
  uv_accept((uv_stream_t *)srv->listener, (uv_stream_t *)&srv->refused);
  uv_close((uv_handle_t *)&srv->refused, refused_closed);
}

static void accept_task(vow_loop *loop, void *arg) {
  vow_server *srv = arg;
  if (srv->closing) return;
  conn *c = vow__calloc(1, sizeof *c);
  if (!c) {
    refuse(srv);
    return;
  }
  uv_tcp_init(&loop->uv, &c->tcp);
  uv_timer_init(&loop->uv, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->open_handles = 2;
  c->srv = srv;
  srv->nconns++;
  VOW__LIST_PUSH(srv->conns, c);
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  if (uv_accept((uv_stream_t *)srv->listener, (uv_stream_t *)&c->tcp) != 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    conn_close(c);
    return;
  }
  c->reading = 1;
  uv_tcp_nodelay(&c->tcp, 1);
  timer_start(c, srv->request_timeout_ms);
}

static void on_connection(uv_stream_t *listener, int status) {
  vow_server *srv = listener->data;
  if (status < 0 || srv->closing) return;
  vow__loop_enter(srv->loop, accept_task, srv);
}

/* ---- the server ------------------------------------------------------------------------------------- */

static void server_finish_task(vow_loop *loop, void *arg) {
  (void)loop;
  vow_server *srv = arg;
  vow_promise *p = srv->closed;
  srv->closed = NULL;
  if (srv->st) VOW__LIST_UNLINK(srv->st->servers, srv);
  vow__free(srv);
  vow_promise_resolve(p, vow_undefined());
  vow_promise_unref(p);
}

/* Frees the server once closing, its listener closed and its connections gone. */
static void server_maybe_free(vow_server *srv) {
  if (!srv->closing || srv->listener || srv->nconns || srv->refusing) return;
  if (srv->torn) vow__free(srv); /* the loop is going: nothing to settle */
  else vow__loop_enter(srv->loop, server_finish_task, srv);
}

static void listener_closed(uv_handle_t *h) {
  vow_server *srv = h->data;
  vow__free(h);
  srv->listener = NULL;
  server_maybe_free(srv);
}

vow_promise *vow_server_close(vow_server *srv) {
  if (!srv || srv->torn || !vow__loop_on_owner(srv->loop)) return NULL;
  if (srv->closing) return vow_promise_ref(srv->closed);
  vow_promise *p = vow_promise_new(srv->loop);
  if (!p) return NULL;
  srv->closed = vow_promise_ref(p);
  srv->closing = 1;
  uv_close((uv_handle_t *)srv->listener, listener_closed);
  for (conn *c = srv->conns, *next; c; c = next) {
    next = c->next;
    if (c->state == C_IDLE) conn_close(c); /* idle: nothing to finish */
  }
  return p;
}

int vow_server_port(const vow_server *srv) { return srv ? srv->port : VOW_EINVAL; }

size_t vow__server_input_peak(const vow_server *srv) { return srv ? srv->input_peak : 0; }

size_t vow__server_connections(const vow_server *srv) {
  size_t n = 0;
  for (conn *c = srv ? srv->conns : NULL; c; c = c->next) n++;
  return n;
}

static vow__server_state *server_state_get(vow_loop *loop) {
  vow__io *io = vow__io_get(loop);
  if (!io) return NULL;
  if (!io->server) io->server = vow__calloc(1, sizeof *io->server);
  return io->server;
}

static int bind_listen(vow_server *srv, const char *host, int port) {
  struct sockaddr_storage addr;
  int err = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
  if (err) err = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
  if (err) return VOW_EINVAL;
  err = uv_tcp_bind(srv->listener, (const struct sockaddr *)&addr, 0);
  if (!err) err = uv_listen((uv_stream_t *)srv->listener, BACKLOG, on_connection);
  if (err) return err;
  struct sockaddr_storage bound;
  int len = sizeof bound;
  err = uv_tcp_getsockname(srv->listener, (struct sockaddr *)&bound, &len);
  if (err) return err;
  srv->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&bound)->sin_port);
  return 0;
}

static void free_listener(uv_handle_t *h) {
  vow__free(h);
}

int vow_server_listen(vow_loop *loop, const vow_server_options *options, vow_http_handler handler,
                      void *data, vow_server **out) {
  if (!out) return VOW_EINVAL;
  *out = NULL;
  if (!loop || !handler) return VOW_EINVAL;
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  if (loop->closing) return VOW_ECLOSING;
  static const vow_server_options defaults = {0};
  const vow_server_options *o = options ? options : &defaults;
  if (o->port < 0 || o->port > 65535) return VOW_EINVAL;
  vow__server_state *st = server_state_get(loop);
  vow_server *srv = st ? vow__calloc(1, sizeof *srv) : NULL;
  uv_tcp_t *listener = srv ? vow__malloc(sizeof *listener) : NULL;
  if (!listener) {
    vow__free(srv);
    return VOW_ENOMEM;
  }
  *srv = (vow_server){
      .loop = loop,
      .st = st,
      .listener = listener,
      .handler = handler,
      .data = data,
      .max_header_bytes = o->max_header_bytes ? o->max_header_bytes : 16 * 1024,
      .max_headers = o->max_headers ? o->max_headers : 2000,
      .max_body_bytes = o->max_body_bytes ? o->max_body_bytes : 1024 * 1024,
      .request_timeout_ms = o->request_timeout_ms ? o->request_timeout_ms : 10000,
      .keepalive_timeout_ms = o->keepalive_timeout_ms ? o->keepalive_timeout_ms : 5000,
      .stack_size = o->stack_size,
  };
  uv_tcp_init(&loop->uv, listener);
  listener->data = srv;
  int err = bind_listen(srv, o->host ? o->host : "127.0.0.1", o->port);
  if (err) {
    uv_close((uv_handle_t *)listener, free_listener);
    vow__free(srv);
    return err;
  }
  VOW__LIST_PUSH(st->servers, srv);
  *out = srv;
  return 0;
}

/* ---- loop teardown ------------------------------------------------------------------------------------ */

void vow__server_teardown(vow_loop *loop, vow__server_state *st) {
  (void)loop;
  /* Handler coroutines still suspended are dropped later, by the async layer,
   * which releases their requests (request_release). */
  while (st->servers) {
    vow_server *srv = st->servers;
    VOW__LIST_UNLINK(st->servers, srv);
    srv->st = NULL;
    srv->torn = 1;
    vow_promise_unref(srv->closed);
    srv->closed = NULL;
    while (srv->conns) {
      conn *c = srv->conns;
      vow_promise_unref(c->drained);
      c->drained = NULL;
      conn_close(c); /* torn: no abort runs */
    }
    if (!srv->closing) {
      srv->closing = 1;
      uv_close((uv_handle_t *)srv->listener, listener_closed);
    }
  }
  vow__free(st);
}
