/*
 * tcp.c — net.connect and net.createServer as promises: connections are
 * vow_streams over uv_tcp_t (io/stream.h); a server hands them out through
 * an async generator.
 *
 * A connect moves through: RESOLVING (a lookup, unless the host is a numeric
 * address), then one ATTEMPT per address in turn, until one connects or all
 * failed. Invariants:
 *   - the connect's promise settles once (c->settled); whatever settles it
 *     (success, the last failure, the timeout, the signal, the loop's end)
 *     first stops what is pending: the lookup is cancelled, the timers
 *     cleared, the attempt's stream released (which closes its handle);
 *   - c->req belongs to libuv while c->connecting: the connect's memory goes
 *     only once it is settled and libuv has called back, and a new attempt
 *     starts only after the previous one's callback (c->req is reused);
 *   - the stream of an attempt is the connect's own reference until the
 *     promise fulfils with it.
 *
 * A server lives while its listening handle is open or an iterator holds it
 * (refs). libuv hands over one pending connection at a time and stops
 * accepting until uv_accept takes it (srv->ready): connections are taken
 * only when the iterator asks, so the rest wait in the kernel's backlog.
 * Every libuv callback enters through vow__loop_enter, except after the
 * loop's teardown, when callbacks only free memory.
 */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/list.h"
#include "io/dns.h"
#include "io/io.h"
#include "io/stream.h"
#include "io/tcp.h"
#include "promise/promise.h"

enum { DEFAULT_BACKLOG = 511, DEFAULT_ATTEMPT_MS = 250 };

/* "127.0.0.1:80", "[::1]:80" */
static void endpoint_text(const struct sockaddr *sa, char *buf, size_t cap) {
  char ip[INET6_ADDRSTRLEN];
  int family = vow__dns_addr_text(sa, ip, sizeof ip);
  int port = family == 6 ? ntohs(((const struct sockaddr_in6 *)sa)->sin6_port)
                         : ntohs(((const struct sockaddr_in *)sa)->sin_port);
  snprintf(buf, cap, family == 6 ? "[%s]:%d" : "%s:%d", ip, port);
}

/* Names a connection in its errors: "ECONNRESET: read tcp 127.0.0.1:6379". */
static void name_stream(vow_stream *s, const struct sockaddr *peer) {
  char where[INET6_ADDRSTRLEN + 16], name[INET6_ADDRSTRLEN + 24];
  endpoint_text(peer, where, sizeof where);
  snprintf(name, sizeof name, "tcp %s", where);
  vow__stream_set_name(s, name);
}

/* A numeric address and port as a sockaddr; 0, or VOW_EINVAL for text that is
 * not an IPv4 or IPv6 address. */
static int parse_address(const char *host, int port, struct sockaddr_storage *out) {
  memset(out, 0, sizeof *out);
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0) return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0) return 0;
  return VOW_EINVAL;
}

/* ===================================================================== *
 * connect
 * ===================================================================== */

typedef struct vow__connect vow__connect;
struct vow__connect {
  vow_loop *loop;
  vow__net_state *st;          /* NULL once off the list (settled) */
  vow__connect *prev, *next;
  vow_promise *promise;        /* a reference, until settled */
  vow__dns_req *dns;           /* the pending lookup, or NULL */
  struct sockaddr_storage *addrs;
  size_t naddrs;
  size_t tried;                /* addresses attempted so far */
  vow_stream *s;               /* the attempt's stream (a reference), or NULL */
  uv_connect_t req;
  int connecting;              /* libuv has c->req */
  int given_up;                /* the attempt was abandoned: its callback moves on */
  int settled;
  vow_timer timer;             /* the whole connect's timeout, or 0 */
  vow_timer attempt_timer;     /* this attempt's, or 0 */
  uint64_t timeout_ms;
  uint64_t attempt_timeout_ms;
  vow_abort_signal *signal;    /* a reference, or NULL */
  int64_t listener;
  vow_value error;             /* the latest attempt's failure (undefined: none yet) */
  int port;
  int family;
  int nodelay;
  char host[];
};

static void connect_unlink(vow__connect *c) {
  if (!c->st) return;
  VOW__LIST_UNLINK(c->st->connects, c);
  c->st = NULL;
}

static void connect_maybe_free(vow__connect *c) {
  if (!c->settled || c->connecting) return;
  vow__free(c->addrs);
  vow__free(c);
}

/* Stops everything pending and releases what c holds, except c->req (libuv's
 * while connecting) and the promise, which the caller settles. */
static void connect_stop(vow__connect *c) {
  c->settled = 1;
  connect_unlink(c);
  if (c->dns) vow__dns_cancel(c->dns);
  c->dns = NULL;
  if (c->timer) vow_clear_timer(c->loop, c->timer);
  if (c->attempt_timer) vow_clear_timer(c->loop, c->attempt_timer);
  c->timer = c->attempt_timer = 0;
  if (c->signal) {
    vow_abort_signal_off(c->signal, c->listener);
    vow_abort_signal_unref(c->signal);
    c->signal = NULL;
  }
  vow_stream_unref(c->s); /* closes the half-made socket; its callback says ECANCELED */
  c->s = NULL;
  vow_unref(c->error);
  c->error = vow_undefined();
}

/* Settles the promise: with value (taken) when ok, else rejected with it. */
static void connect_settle(vow__connect *c, vow_value value, int ok) {
  if (c->settled) {
    vow_unref(value);
    return;
  }
  vow_promise *p = c->promise;
  c->promise = NULL;
  connect_stop(c);
  if (ok) vow_promise_resolve(p, value);
  else vow_promise_reject(p, value);
  vow_promise_unref(p);
  connect_maybe_free(c);
}

/* An attempt failed with code: its error becomes the latest, with the one
 * before as its cause. */
static void attempt_failed(vow__connect *c, int code, const struct sockaddr *sa) {
  char where[INET6_ADDRSTRLEN + 16];
  endpoint_text(sa, where, sizeof where);
  char msg[600];
  if (code == VOW_ETIMEDOUT)
    snprintf(msg, sizeof msg, "ETIMEDOUT: connect %s (no answer in %llu ms; trying the next address)",
             where, (unsigned long long)c->attempt_timeout_ms);
  else snprintf(msg, sizeof msg, "%s: connect %s", vow_err_name(code), where);
  c->error = vow_error_with_cause(code, msg, c->error);
}

static void attempt_next(vow__connect *c);

static void attempt_timed_out(vow_loop *loop, void *arg) {
  (void)loop;
  vow__connect *c = arg;
  c->attempt_timer = 0;
  c->given_up = 1;
  vow_stream_unref(c->s); /* libuv calls back with ECANCELED; the next attempt starts there */
  c->s = NULL;
}

typedef struct connect_result {
  vow__connect *c;
  int status;
} connect_result;

static void connect_result_task(vow_loop *loop, void *arg) {
  (void)loop;
  connect_result *r = arg;
  vow__connect *c = r->c;
  int status = r->status;
  const struct sockaddr *sa = (const struct sockaddr *)&c->addrs[c->tried - 1];
  if (c->attempt_timer) vow_clear_timer(c->loop, c->attempt_timer);
  c->attempt_timer = 0;
  if (status == 0 && !c->given_up) {
    vow_stream *s = c->s;
    c->s = NULL;
    vow__uv_stream *h = vow__stream_handle(s);
    if (c->nodelay && h) uv_tcp_nodelay(&h->tcp, 1);
    name_stream(s, sa);
    connect_settle(c, vow__stream_value(s), 1);
    return;
  }
  attempt_failed(c, c->given_up ? VOW_ETIMEDOUT : status, sa);
  c->given_up = 0;
  vow_stream_unref(c->s);
  c->s = NULL;
  attempt_next(c);
}

static void on_connect(uv_connect_t *req, int status) {
  vow__connect *c = req->data;
  c->connecting = 0;
  if (c->settled) { /* aborted, timed out or torn down: only the memory is left */
    connect_maybe_free(c);
    return;
  }
  connect_result r = {c, status};
  vow__loop_enter(c->loop, connect_result_task, &r);
}

/* Starts the next attempt, or rejects with the latest error when none is left. */
static void attempt_next(vow__connect *c) {
  while (c->tried < c->naddrs) {
    const struct sockaddr *sa = (const struct sockaddr *)&c->addrs[c->tried++];
    vow__uv_stream *h;
    vow_stream *s = vow__stream_alloc(c->loop, &h);
    if (!s) {
      connect_settle(c, vow_error_nomem(), 0);
      return;
    }
    int err = uv_tcp_init(&c->loop->uv, &h->tcp);
    if (err) {
      vow__stream_discard(s);
      attempt_failed(c, err, sa);
      continue;
    }
    vow__stream_opened(s);
    c->req.data = c;
    err = uv_tcp_connect(&c->req, &h->tcp, sa, on_connect);
    if (err) { /* EADDRNOTAVAIL, ENETUNREACH: an address this machine cannot reach */
      vow_stream_unref(s);
      attempt_failed(c, err, sa);
      continue;
    }
    c->s = s;
    c->connecting = 1;
    if (c->tried < c->naddrs) {
      c->attempt_timer = vow_set_timeout(c->loop, c->attempt_timeout_ms, attempt_timed_out, c);
      if (c->attempt_timer < 0) c->attempt_timer = 0; /* out of memory: wait for this one */
    }
    return;
  }
  vow_value e = c->error;
  c->error = vow_undefined();
  if (vow_is_undefined(e)) e = vow_errorf(UV_EAI_NONAME,
                                          "EAI_NONAME: connect '%s': no address", c->host);
  connect_settle(c, e, 0);
}

static void connect_resolved(vow_loop *loop, int status, const struct addrinfo *res, void *data) {
  (void)loop;
  vow__connect *c = data;
  c->dns = NULL;
  if (status) {
    connect_settle(c, vow__dns_error(status, c->host), 0);
    return;
  }
  size_t n = 0;
  for (const struct addrinfo *ai = res; ai; ai = ai->ai_next)
    if (ai->ai_family == AF_INET || ai->ai_family == AF_INET6) n++;
  c->addrs = n ? vow__calloc(n, sizeof *c->addrs) : NULL;
  if (n && !c->addrs) {
    connect_settle(c, vow_error_nomem(), 0);
    return;
  }
  for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    struct sockaddr_storage *a = &c->addrs[c->naddrs++];
    memcpy(a, ai->ai_addr, ai->ai_addrlen);
    if (a->ss_family == AF_INET) ((struct sockaddr_in *)a)->sin_port = htons((uint16_t)c->port);
    else ((struct sockaddr_in6 *)a)->sin6_port = htons((uint16_t)c->port);
  }
  attempt_next(c);
}

static void connect_timed_out(vow_loop *loop, void *arg) {
  (void)loop;
  vow__connect *c = arg;
  c->timer = 0;
  connect_settle(c, vow_errorf(VOW_ETIMEDOUT,
                               "ETIMEDOUT: connect '%.400s' port %d: timed out after %llu ms",
                               c->host, c->port, (unsigned long long)c->timeout_ms), 0);
}

static void connect_aborted(vow_loop *loop, vow_value reason, void *data) {
  (void)loop;
  vow__connect *c = data;
  vow_abort_signal_unref(c->signal); /* its listener ran: nothing to remove */
  c->signal = NULL;
  connect_settle(c, vow_ref(reason), 0);
}

/* The loop is being freed while resolving: c->dns is dropped with it. */
static void connect_dns_dropped(void *data) {
  vow__connect *c = data;
  c->dns = NULL;
}

static vow__connect *connect_new(vow_loop *loop, vow__net_state *st, vow_promise *p,
                                 const char *host, int port, const vow_tcp_connect_options *o) {
  size_t len = strlen(host);
  vow__connect *c = vow__calloc(1, sizeof *c + len + 1);
  if (!c) return NULL;
  c->loop = loop;
  c->promise = vow_promise_ref(p);
  c->port = port;
  c->family = o->family;
  c->nodelay = o->nodelay;
  c->timeout_ms = o->timeout_ms;
  c->attempt_timeout_ms = o->attempt_timeout_ms ? o->attempt_timeout_ms : DEFAULT_ATTEMPT_MS;
  c->error = vow_undefined();
  memcpy(c->host, host, len + 1);
  c->st = st;
  VOW__LIST_PUSH(st->connects, c);
  return c;
}

/* The timeout and the signal; 0 or VOW_ENOMEM. */
static int connect_arm(vow__connect *c, const vow_tcp_connect_options *o) {
  if (o->timeout_ms) {
    c->timer = vow_set_timeout(c->loop, o->timeout_ms, connect_timed_out, c);
    if (c->timer < 0) {
      c->timer = 0;
      return VOW_ENOMEM;
    }
  }
  if (o->signal) {
    c->listener = vow_abort_signal_on(o->signal, connect_aborted, c);
    if (c->listener < 0) return VOW_ENOMEM;
    c->signal = vow_abort_signal_ref(o->signal);
  }
  return 0;
}

/* The checks both entries make; a rejection value, or undefined when fine. */
static vow_value connect_check(const char *host, int port, const vow_tcp_connect_options *o) {
  if (!host || !*host) return vow_error(VOW_EINVAL, "connect: no host");
  if (port < 1 || port > 65535)
    return vow_errorf(VOW_EINVAL, "connect '%.400s': port must be 1-65535 (got %d)", host, port);
  if (o->family != 0 && o->family != 4 && o->family != 6)
    return vow_errorf(VOW_EINVAL,
                      "connect '%.400s': family must be 0, 4 or 6 (got %d)", host, o->family);
  if (o->signal && vow_abort_signal_aborted(o->signal)) return vow_ref(vow_abort_signal_reason(o->signal));
  return vow_undefined();
}

/* A connect, armed, for p; NULL when p was rejected. */
static vow__connect *connect_begin(vow_loop *loop, vow_promise *p, const char *host, int port,
                                   const vow_tcp_connect_options *o) {
  vow_value bad = connect_check(host, port, o);
  if (!vow_is_undefined(bad)) {
    vow_promise_reject(p, bad);
    return NULL;
  }
  vow__net_state *st = vow__net_get(loop);
  vow__connect *c = st ? connect_new(loop, st, p, host, port, o) : NULL;
  if (!c) {
    vow_promise_reject(p, vow_error_nomem());
    return NULL;
  }
  if (connect_arm(c, o) != 0) {
    connect_settle(c, vow_error_nomem(), 0);
    return NULL;
  }
  return c;
}

vow_promise *vow_tcp_connect(vow_loop *loop, const char *host, int port,
                             const vow_tcp_connect_options *options) {
  if (!vow__loop_usable(loop)) return NULL;
  static const vow_tcp_connect_options defaults = {0};
  const vow_tcp_connect_options *o = options ? options : &defaults;
  vow_tcp_connect_options in_scope;
  VOW__IN_SCOPE(loop, o, in_scope);
  vow_promise *p = vow_promise_new(loop);
  if (!p) return NULL;
  vow__connect *c = connect_begin(loop, p, host, port, o);
  if (!c) return p;
  struct sockaddr_storage numeric;
  if (parse_address(host, port, &numeric) == 0) { /* no lookup for an address */
    c->addrs = vow__malloc(sizeof *c->addrs);
    if (!c->addrs) {
      connect_settle(c, vow_error_nomem(), 0);
      return p;
    }
    c->addrs[0] = numeric;
    c->naddrs = 1;
    attempt_next(c);
    return p;
  }
  int err;
  c->dns = vow__dns_start(loop, host, o->family, connect_resolved, connect_dns_dropped, c, &err);
  if (!c->dns)
    connect_settle(c, err == VOW_ENOMEM ? vow_error_nomem() : vow__dns_error(err, host), 0);
  return p;
}

vow_promise *vow__tcp_connect_list(vow_loop *loop, const char *label, const char *const *addresses,
                                   size_t n, int port, const vow_tcp_connect_options *options) {
  if (!vow__loop_usable(loop)) return NULL;
  static const vow_tcp_connect_options defaults = {0};
  const vow_tcp_connect_options *o = options ? options : &defaults;
  vow_tcp_connect_options in_scope;
  VOW__IN_SCOPE(loop, o, in_scope);
  vow_promise *p = vow_promise_new(loop);
  if (!p) return NULL;
  vow__connect *c = connect_begin(loop, p, label, port, o);
  if (!c) return p;
  c->addrs = vow__calloc(n ? n : 1, sizeof *c->addrs);
  if (!c->addrs) {
    connect_settle(c, vow_error_nomem(), 0);
    return p;
  }
  for (size_t i = 0; i < n; i++)
    if (parse_address(addresses[i], port, &c->addrs[c->naddrs]) == 0) c->naddrs++;
  attempt_next(c);
  return p;
}

/* ===================================================================== *
 * the server
 * ===================================================================== */

struct vow_tcp_server {
  vow_loop *loop;
  vow__net_state *st;          /* NULL once off the list */
  vow_tcp_server *prev, *next;
  uv_tcp_t listener;
  int refs;                    /* the open listener, and each iterator */
  int port;
  int listening;               /* the handle is open (until its close callback) */
  int closing;
  int torn;                    /* the loop is being freed: settle nothing */
  int ready;                   /* libuv holds a connection for uv_accept */
  int accept_error;            /* accepting failed: the iterator throws it */
  int iterating;               /* an iterator's body is running */
  vow_promise *waiter;         /* what the iterator awaits: a connection or the close */
  vow_promise *closed;         /* vow_tcp_server_close's promise */
};

static void server_unlink(vow_tcp_server *srv) {
  if (!srv->st) return;
  VOW__LIST_UNLINK(srv->st->servers, srv);
  srv->st = NULL;
}

static void server_unref(vow_tcp_server *srv) {
  if (--srv->refs == 0) vow__free(srv);
}

/* Resumes the iterator, if it waits. */
static void server_wake(vow_tcp_server *srv) {
  vow_promise *w = srv->waiter;
  srv->waiter = NULL;
  if (!w) return;
  vow_promise_resolve(w, vow_undefined());
  vow_promise_unref(w);
}

static void connection_task(vow_loop *loop, void *arg) {
  (void)loop;
  server_wake(arg);
}

static void on_connection(uv_stream_t *listener, int status) {
  vow_tcp_server *srv = listener->data;
  if (srv->closing) return;
  if (status < 0) srv->accept_error = status;
  else srv->ready = 1;
  vow__loop_enter(srv->loop, connection_task, srv);
}

static void server_closed_task(vow_loop *loop, void *arg) {
  (void)loop;
  vow_tcp_server *srv = arg;
  vow_promise *p = srv->closed;
  srv->closed = NULL;
  server_unref(srv);
  vow_promise_resolve(p, vow_undefined());
  vow_promise_unref(p);
}

static void listener_closed(uv_handle_t *h) {
  vow_tcp_server *srv = h->data;
  srv->listening = 0;
  server_unlink(srv);
  if (srv->torn || !srv->closed) server_unref(srv);
  else vow__loop_enter(srv->loop, server_closed_task, srv);
}

static void server_close_handle(vow_tcp_server *srv) {
  srv->closing = 1;
  uv_close((uv_handle_t *)&srv->listener, listener_closed);
}

vow_promise *vow_tcp_server_close(vow_tcp_server *srv) {
  if (!srv || srv->torn || !vow__loop_on_owner(srv->loop)) return NULL;
  if (srv->closing) return srv->closed ? vow_promise_ref(srv->closed) : vow_resolved(srv->loop, vow_undefined());
  vow_promise *p = vow_promise_new(srv->loop); /* out of memory: it closes all the same */
  srv->closed = vow_promise_ref(p);
  server_close_handle(srv);
  server_wake(srv); /* the iterator sees closing: done */
  return p;
}

int vow_tcp_server_port(const vow_tcp_server *srv) { return srv ? srv->port : VOW_EINVAL; }

static int bind_listen(vow_tcp_server *srv, const char *host, int port, const vow_tcp_listen_options *o) {
  struct sockaddr_storage addr;
  if (parse_address(host, port, &addr) != 0) return VOW_EINVAL;
  unsigned flags = o->ipv6_only && addr.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0;
  int err = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&addr, flags);
  if (!err) err = uv_listen((uv_stream_t *)&srv->listener, o->backlog > 0 ? o->backlog : DEFAULT_BACKLOG,
                            on_connection);
  if (err) return err;
  struct sockaddr_storage bound;
  int len = sizeof bound;
  err = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &len);
  if (err) return err;
  srv->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&bound)->sin_port);
  return 0;
}

static void listener_discarded(uv_handle_t *h) {
  vow__free(h->data);
}

int vow_tcp_listen(vow_loop *loop, const char *host, int port, const vow_tcp_listen_options *options,
                   vow_tcp_server **out) {
  if (!out) return VOW_EINVAL;
  *out = NULL;
  if (!loop) return VOW_EINVAL;
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  if (loop->closing) return VOW_ECLOSING;
  if (port < 0 || port > 65535) return VOW_EINVAL;
  static const vow_tcp_listen_options defaults = {0};
  const vow_tcp_listen_options *o = options ? options : &defaults;
  vow__net_state *st = vow__net_get(loop);
  vow_tcp_server *srv = st ? vow__calloc(1, sizeof *srv) : NULL;
  if (!srv) return VOW_ENOMEM;
  srv->loop = loop;
  srv->refs = 1;
  int err = uv_tcp_init(&loop->uv, &srv->listener);
  if (err) {
    vow__free(srv);
    return err;
  }
  srv->listener.data = srv;
  err = bind_listen(srv, host ? host : "127.0.0.1", port, o);
  if (err) {
    uv_close((uv_handle_t *)&srv->listener, listener_discarded);
    return err;
  }
  srv->listening = 1;
  srv->st = st;
  VOW__LIST_PUSH(st->servers, srv);
  *out = srv;
  return 0;
}

/* ---- accepting, as an async generator ----------------------------------------------- */

typedef struct accept_iter {
  vow_tcp_server *srv;         /* a reference */
  int active;                  /* this iterator's body holds srv->iterating */
} accept_iter;

static void accept_iter_free(void *arg) {
  accept_iter *it = arg;
  vow_tcp_server *srv = it->srv;
  if (it->active) {
    srv->iterating = 0;
    vow_promise_unref(srv->waiter); /* a body dropped while it waited */
    srv->waiter = NULL;
  }
  server_unref(srv);
  vow__free(it);
}

/* The waiting connection, as a stream value (or an error). */
static vow_value accept_one(vow_tcp_server *srv) {
  vow__uv_stream *h;
  vow_stream *s = vow__stream_alloc(srv->loop, &h);
  if (!s) return vow_error_nomem();
  int err = uv_tcp_init(&srv->loop->uv, &h->tcp);
  if (err) {
    vow__stream_discard(s);
    return vow_errorf(err, "%s: accept", vow_err_name(err));
  }
  vow__stream_opened(s);
  srv->ready = 0;
  err = uv_accept((uv_stream_t *)&srv->listener, &h->stream);
  if (err) {
    vow_stream_unref(s);
    return vow_errorf(err, "%s: accept", vow_err_name(err));
  }
  struct sockaddr_storage peer;
  int len = sizeof peer;
  if (uv_tcp_getpeername(&h->tcp, (struct sockaddr *)&peer, &len) == 0) name_stream(s, (struct sockaddr *)&peer);
  return vow__stream_value(s);
}

/* Waits for something to happen to the server; 0 or an error value's code. */
static int accept_wait(vow_tcp_server *srv, vow_value *error) {
  srv->waiter = vow_promise_new(srv->loop);
  if (!srv->waiter) {
    *error = vow_error_nomem();
    return VOW_ENOMEM;
  }
  vow_value r;
  int rc = vow_await(vow_promise_ref(srv->waiter), &r);
  if (srv->waiter) { /* not woken: the loop's end resumed the await (VOW_ECLOSING) */
    vow_promise_unref(srv->waiter);
    srv->waiter = NULL;
  }
  if (rc != 0) {
    *error = r;
    return vow_error_code(r) ? vow_error_code(r) : VOW_EREJECTED;
  }
  vow_unref(r);
  return 0;
}

static vow_value accept_body(vow_loop *loop, vow_asyncgen *gen, void *arg) {
  (void)loop, (void)gen;
  accept_iter *it = arg;
  vow_tcp_server *srv = it->srv;
  if (srv->iterating) return vow_throw(vow_error(VOW_EBUSY, "accept: the server already has an iterator"));
  srv->iterating = it->active = 1;
  vow_value result = vow_undefined();
  for (;;) {
    vow_value error;
    if (srv->closing) break;
    if (srv->accept_error) {
      int code = srv->accept_error;
      srv->accept_error = 0;
      result = vow_throw(vow_errorf(code, "%s: accept", vow_err_name(code)));
      break;
    }
    if (!srv->ready) {
      if (accept_wait(srv, &error) != 0) {
        result = vow_throw(error);
        break;
      }
      continue;
    }
    vow_value conn = accept_one(srv);
    if (vow_kind_of(conn) == VOW_ERROR) {
      result = vow_throw(conn);
      break;
    }
    if (vow_yield(conn, NULL) != 0) break; /* return() or throw(): the consumer stopped */
  }
  srv->iterating = it->active = 0;
  return result;
}

vow_asyncgen *vow_tcp_accept_iter(vow_tcp_server *srv) {
  if (!srv || srv->closing || !vow__loop_usable(srv->loop)) return NULL;
  accept_iter *it = vow__calloc(1, sizeof *it);
  if (!it) return NULL;
  it->srv = srv;
  srv->refs++;
  vow_async_options ao = {.name = "tcp accept", .arg_free = accept_iter_free};
  return vow_asyncgen_new_ex(srv->loop, accept_body, it, &ao); /* NULL: arg_free has run */
}

/* ===================================================================== *
 * a TCP stream's settings and addresses
 * ===================================================================== */

static uv_tcp_t *tcp_of(vow_stream *s) {
  vow__uv_stream *h = s ? vow__stream_handle(s) : NULL;
  return h && h->handle.type == UV_TCP ? &h->tcp : NULL;
}

int vow_tcp_set_nodelay(vow_stream *s, int on) {
  uv_tcp_t *t = tcp_of(s);
  return t ? uv_tcp_nodelay(t, on != 0) : VOW_EINVAL;
}

int vow_tcp_set_keepalive(vow_stream *s, int on, unsigned delay_s) {
  uv_tcp_t *t = tcp_of(s);
  return t ? uv_tcp_keepalive(t, on != 0, delay_s) : VOW_EINVAL;
}

static int address_of(vow_stream *s, int remote, char *buf, size_t cap) {
  uv_tcp_t *t = tcp_of(s);
  if (!t || !buf || !cap) return VOW_EINVAL;
  struct sockaddr_storage a;
  int len = sizeof a;
  int err = remote ? uv_tcp_getpeername(t, (struct sockaddr *)&a, &len)
                   : uv_tcp_getsockname(t, (struct sockaddr *)&a, &len);
  if (err) return err;
  int family = vow__dns_addr_text((struct sockaddr *)&a, buf, cap);
  if (family == 6) return ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
  if (family == 4) return ntohs(((struct sockaddr_in *)&a)->sin_port);
  return VOW_EINVAL;
}

int vow_tcp_remote_address(vow_stream *s, char *buf, size_t cap) { return address_of(s, 1, buf, cap); }
int vow_tcp_local_address(vow_stream *s, char *buf, size_t cap) { return address_of(s, 0, buf, cap); }

/* ===================================================================== *
 * loop teardown
 * ===================================================================== */

/* Settles nothing: the promise layer only releases. Attempts in flight get
 * their callbacks in the loop's last turn, which only free memory. */
void vow__tcp_teardown(vow__net_state *st) {
  while (st->connects) {
    vow__connect *c = st->connects;
    vow_promise *p = c->promise;
    c->promise = NULL;
    connect_stop(c);
    vow_promise_unref(p);
    connect_maybe_free(c);
  }
  while (st->servers) {
    vow_tcp_server *srv = st->servers;
    server_unlink(srv);
    srv->torn = 1;
    vow_promise_unref(srv->closed);
    srv->closed = NULL;
    if (!srv->closing) server_close_handle(srv);
  }
}
