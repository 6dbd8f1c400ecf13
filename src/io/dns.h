/*
 * dns.h — name resolution on the loop, for vow_dns_lookup and tcp.c (internal).
 *
 * A lookup runs getaddrinfo on libuv's thread pool. Its callback enters the
 * loop (vow__loop_enter) and hands the result to cb; the addrinfo list is
 * borrowed for the call and freed after it. A lookup cancelled before it
 * completes never calls cb: its memory goes when libuv is done with it (a
 * getaddrinfo already running on a pool thread cannot be stopped, only
 * ignored). While the loop is being freed no callback runs.
 */
#ifndef VOW_IO_DNS_H
#define VOW_IO_DNS_H

#include <uv.h>

#include "core/loop.h"

typedef struct vow__dns_req vow__dns_req;
struct vow__connect;

/* The loop's DNS and TCP state (vow__io's net field), made on first use:
 * what is pending, so that vow_loop_free can release it (vow__net_teardown,
 * tcp.c). NULL when out of memory. */
typedef struct vow__net_state {
  vow__dns_req *lookups;          /* pending lookups (dns.c) */
  struct vow__connect *connects;  /* connects in flight (tcp.c) */
  vow_tcp_server *servers;        /* listening or closing servers (tcp.c) */
} vow__net_state;

vow__net_state *vow__net_get(vow_loop *loop);
/* tcp.c's part of vow__net_teardown: connects and servers. */
void vow__tcp_teardown(vow__net_state *st);

/* status is 0 (res non-NULL, borrowed) or a negative UV_EAI_* code. */
typedef void (*vow__dns_cb)(vow_loop *loop, int status, const struct addrinfo *res, void *data);

/* Releases what the owner holds for a lookup that will never call back,
 * because the loop is being freed: it settles nothing and runs no user code. */
typedef void (*vow__dns_drop_fn)(void *data);

/* Starts resolving host for TCP: family 0 (any), 4 or 6. Returns the request,
 * or NULL with *err set (VOW_ENOMEM, or libuv's code). data is borrowed; drop
 * may be NULL. */
vow__dns_req *vow__dns_start(vow_loop *loop, const char *host, int family, vow__dns_cb cb,
                             vow__dns_drop_fn drop, void *data, int *err);
/* cb will not be called. The request must still be pending (cb not yet run). */
void vow__dns_cancel(vow__dns_req *req);
/* A failed lookup's error, as Node words it:
 *   "ENOTFOUND: getaddrinfo 'no.such.host': unknown node or service" (a new reference). */
vow_value vow__dns_error(int code, const char *host);

/* "127.0.0.1", "::1" — the text of an address (buf of INET6_ADDRSTRLEN);
 * returns 4 or 6, or 0 for a family that is neither. */
int vow__dns_addr_text(const struct sockaddr *sa, char *buf, size_t cap);

#endif
