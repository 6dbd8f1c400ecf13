/*
 * dns.c — dns.promises.lookup(host, {all: true}): getaddrinfo on libuv's
 * thread pool, settled on the loop.
 *
 * Invariants:
 *   - a request's memory is freed only in its libuv callback (libuv owns the
 *     uv_getaddrinfo_t until then), whatever happened to its owner meanwhile;
 *   - cb runs at most once, through vow__loop_enter, and never once the
 *     request is cancelled or the loop is being freed;
 *   - a lookup promise settles once: with the addresses, with the error, or
 *     with its signal's reason (its listener is removed when it settles).
 */
#include <string.h>

#include "core/alloc.h"
#include "core/list.h"
#include "io/dns.h"
#include "io/io.h"
#include "promise/promise.h"

struct vow__dns_req {
  uv_getaddrinfo_t req;
  vow_loop *loop;
  vow__net_state *st;    /* NULL once off the pending list */
  vow__dns_req *prev, *next;
  vow__dns_cb cb;        /* NULL once cancelled */
  vow__dns_drop_fn drop;
  void *data;
  int status;
  struct addrinfo *res;  /* between libuv's callback and the loop's entry */
};

int vow__dns_addr_text(const struct sockaddr *sa, char *buf, size_t cap) {
  if (sa->sa_family == AF_INET) {
    uv_ip4_name((const struct sockaddr_in *)sa, buf, cap);
    return 4;
  }
  if (sa->sa_family == AF_INET6) {
    uv_ip6_name((const struct sockaddr_in6 *)sa, buf, cap);
    return 6;
  }
  if (cap) buf[0] = '\0';
  return 0;
}

vow__net_state *vow__net_get(vow_loop *loop) {
  vow__io *io = vow__io_get(loop);
  if (!io) return NULL;
  if (!io->net) io->net = vow__calloc(1, sizeof *io->net);
  return io->net;
}

static void dns_unlink(vow__dns_req *r) {
  if (!r->st) return;
  VOW__LIST_UNLINK(r->st->lookups, r);
  r->st = NULL;
}

static void dns_deliver(vow_loop *loop, void *arg) {
  vow__dns_req *r = arg;
  if (r->cb) r->cb(loop, r->status, r->res, r->data);
}

static void dns_done(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
  vow__dns_req *r = req->data;
  r->status = status;
  r->res = res;
  dns_unlink(r);
  if (r->cb && !r->loop->closing) vow__loop_enter_named(r->loop, "dns", dns_deliver, r);
  uv_freeaddrinfo(res);
  vow__free(r);
}

vow__dns_req *vow__dns_start(vow_loop *loop, const char *host, int family, vow__dns_cb cb,
                             vow__dns_drop_fn drop, void *data, int *err) {
  vow__net_state *st = vow__net_get(loop);
  vow__dns_req *r = st ? vow__calloc(1, sizeof *r) : NULL;
  if (!r) {
    *err = VOW_ENOMEM;
    return NULL;
  }
  *r = (vow__dns_req){.loop = loop, .cb = cb, .drop = drop, .data = data};
  r->req.data = r;
  struct addrinfo hints = {0};
  hints.ai_family = family == 4 ? AF_INET : family == 6 ? AF_INET6 : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM; /* one entry per address, not one per socket type */
  *err = uv_getaddrinfo(&loop->uv, &r->req, dns_done, host, NULL, &hints);
  if (*err) {
    vow__free(r);
    return NULL;
  }
  r->st = st;
  VOW__LIST_PUSH(st->lookups, r);
  return r;
}

void vow__dns_cancel(vow__dns_req *r) {
  dns_unlink(r);
  r->cb = NULL;
  uv_cancel((uv_req_t *)&r->req); /* fails harmlessly once a pool thread has it */
}

/* ---- vow_dns_lookup ------------------------------------------------------------------ */

typedef struct lookup {
  vow_promise *promise;
  vow__dns_req *req;          /* NULL once done */
  vow_abort_signal *signal;   /* a reference, or NULL */
  int64_t listener;
  int pairs;
  char host[];
} lookup;

static void lookup_free(lookup *l) {
  if (l->signal) {
    vow_abort_signal_off(l->signal, l->listener);
    vow_abort_signal_unref(l->signal);
  }
  vow_promise_unref(l->promise);
  vow__free(l);
}

vow_value vow__dns_error(int code, const char *host) {
  return vow_errorf(code, "%s: getaddrinfo '%.400s': %s", vow_err_name(code), host,
                    vow_strerror(code));
}

/* One address, as a STRING or as [address, family]. */
static vow_value address_item(const struct addrinfo *ai, int pairs) {
  char text[INET6_ADDRSTRLEN];
  int family = vow__dns_addr_text(ai->ai_addr, text, sizeof text);
  if (!pairs) return vow_string(text);
  vow_value pair = vow_array(2);
  if (vow_array_push(pair, vow_string(text)) || vow_array_push(pair, vow_int(family))) {
    vow_unref(pair);
    return vow_error_nomem();
  }
  return pair;
}

static vow_value address_list(const struct addrinfo *res, int pairs) {
  size_t n = 0;
  for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) n++;
  vow_value list = vow_array(n);
  if (vow_kind_of(list) != VOW_ARRAY) return list;
  for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    vow_value item = address_item(ai, pairs);
    if (vow_kind_of(item) == VOW_ERROR || vow_array_push(list, item) != 0) {
      vow_unref(list);
      return vow_error_nomem();
    }
  }
  return list;
}

static void lookup_done(vow_loop *loop, int status, const struct addrinfo *res, void *data) {
  (void)loop;
  lookup *l = data;
  l->req = NULL;
  if (status) {
    vow_promise_reject(l->promise, vow__dns_error(status, l->host));
  } else {
    vow_value list = address_list(res, l->pairs);
    if (vow_kind_of(list) == VOW_ERROR) vow_promise_reject(l->promise, list);
    else vow_promise_resolve(l->promise, list);
  }
  lookup_free(l);
}

static void lookup_drop(void *data) {
  lookup_free(data);
}

static void lookup_aborted(vow_loop *loop, vow_value reason, void *data) {
  (void)loop;
  lookup *l = data;
  vow__dns_cancel(l->req);
  l->req = NULL;
  vow_abort_signal_unref(l->signal); /* the listener is gone: it ran */
  l->signal = NULL;
  vow_promise_reject(l->promise, vow_ref(reason));
  lookup_free(l);
}

static vow_promise *rejected_with(vow_promise *p, vow_value reason) {
  vow_promise_reject(p, reason);
  return p;
}

vow_promise *vow_dns_lookup(vow_loop *loop, const char *host, const vow_dns_options *options) {
  if (!vow__loop_usable(loop)) return NULL;
  static const vow_dns_options defaults = {0};
  const vow_dns_options *o = options ? options : &defaults;
  vow_dns_options in_scope;
  VOW__IN_SCOPE(loop, o, in_scope);
  vow_promise *p = vow_promise_new(loop);
  if (!p) return NULL;
  if (!host || !*host) return rejected_with(p, vow_error(VOW_EINVAL, "dns lookup: no host name"));
  if (o->family != 0 && o->family != 4 && o->family != 6)
    return rejected_with(p, vow_errorf(VOW_EINVAL, "dns lookup: family must be 0, 4 or 6 (got %d)",
                                       o->family));
  if (o->signal && vow_abort_signal_aborted(o->signal))
    return rejected_with(p, vow_ref(vow_abort_signal_reason(o->signal)));
  size_t len = strlen(host);
  lookup *l = vow__malloc(sizeof *l + len + 1);
  if (!l) return rejected_with(p, vow_error_nomem());
  *l = (lookup){.promise = vow_promise_ref(p), .pairs = o->pairs};
  memcpy(l->host, host, len + 1);
  if (o->signal) {
    l->listener = vow_abort_signal_on(o->signal, lookup_aborted, l);
    if (l->listener < 0) {
      lookup_free(l);
      return rejected_with(p, vow_error_nomem());
    }
    l->signal = vow_abort_signal_ref(o->signal);
  }
  int err;
  l->req = vow__dns_start(loop, host, o->family, lookup_done, lookup_drop, l, &err);
  if (!l->req) {
    lookup_free(l);
    return rejected_with(p, err == VOW_ENOMEM ? vow_error_nomem() : vow__dns_error(err, host));
  }
  return p;
}

/* ---- loop teardown --------------------------------------------------------------------- */

void vow__net_teardown(vow_loop *loop, vow__net_state *st) {
  (void)loop;
  vow__tcp_teardown(st); /* first: its connects cancel their own lookups */
  while (st->lookups) {
    vow__dns_req *r = st->lookups;
    dns_unlink(r);
    vow__dns_drop_fn drop = r->drop;
    void *data = r->data;
    r->cb = NULL;
    r->drop = NULL;
    if (drop) drop(data); /* its memory goes in dns_done, which the loop still waits for */
  }
  vow__free(st);
}
