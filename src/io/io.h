/*
 * io.h — what fetch.c and server.c share (internal): the loop's I/O
 * extension slot and HTTP header lists.
 *
 * The slot VOW__EXT_IO holds one vow__io, made on first use. Each half keeps
 * its own state in it and tears it down at vow_loop_free:
 *
 *   - the teardown runs while the promise layer is still alive (the loop frees
 *     its slots newest first, and I/O sits above promises and async), so it may
 *     release promises, signals and values, but it settles nothing and runs no
 *     user code;
 *   - libuv handles closed there get their close callbacks later, in the loop's
 *     last turn, after every slot is gone: those callbacks only free memory.
 */
#ifndef VOW_IO_H
#define VOW_IO_H

#include <stddef.h>

#include "core/loop.h"

typedef struct vow__fetch_state vow__fetch_state;
typedef struct vow__server_state vow__server_state;
typedef struct vow__net_state vow__net_state;

typedef struct vow__io {
  vow__fetch_state *fetch;    /* fetch.c, made by the first fetch */
  vow__server_state *server;  /* server.c, made by the first listen */
  vow_stream *streams;        /* stream.c: the open streams, for the teardown */
  vow_stream *stdio[3];       /* stdio.c: stdin, stdout, stderr once made (weak) */
  char *read_scratch;         /* stream.c: what libuv reads into, shared */
  vow__net_state *net;        /* dns.c and tcp.c (io/dns.h), made by the first lookup or listen */
  struct vow_process *processes; /* process.c: children running or with an exec unsettled */
  struct vow__signal_state *signals; /* signal.c, made by the first watch */
} vow__io;

/* The loop's I/O state, made on first use; NULL when out of memory. */
vow__io *vow__io_get(vow_loop *loop);

/* Each half's teardown, called by the slot's destructor (http.c). */
void vow__fetch_teardown(vow_loop *loop, vow__fetch_state *st);
void vow__server_teardown(vow_loop *loop, vow__server_state *st);
void vow__process_teardown(vow_loop *loop, struct vow_process *list); /* kills, reaps */
/* Tests: spawn with uv_spawn from now on, as where the kernel gives no pidfd. */
void vow__process_use_uv_spawn(void);
void vow__signal_teardown(vow_loop *loop, struct vow__signal_state *st);
const char *vow__signal_name(int signum); /* "SIGTERM"; "signal 40" (a static buffer) */
void vow__streams_teardown(vow_loop *loop, vow__io *io);
void vow__net_teardown(vow_loop *loop, vow__net_state *st);

/* ---- cancel scopes ------------------------------------------------------------
 *
 * An I/O call given no signal of its own stops with the cancel scope it was
 * started in (vow_scope_signal_current; vow.h section 16), as fetch does:
 * points o, a const pointer to options with a .signal, at copy, a copy that
 * carries the scope's signal. Outside a scope nothing changes. */
#define VOW__IN_SCOPE(loop, o, copy)                                                  \
  do {                                                                                \
    vow_abort_signal *scope_signal_ = (o)->signal ? NULL : vow_scope_signal_current(loop); \
    if (scope_signal_) {                                                              \
      (copy) = *(o);                                                                  \
      (copy).signal = scope_signal_;                                                  \
      (o) = &(copy);                                                                  \
    }                                                                                 \
  } while (0)

/* ---- header lists (http.c) --------------------------------------------------
 *
 * An ordered list of name/value pairs, owned (NUL-terminated copies, kept
 * with the items in one allocation: a pointer into a list is good until the
 * list's next add or clear).
 * Lookups ignore the case of names; a hash index makes each add and lookup
 * O(1) expected, whatever names a peer sends. A merging list joins a repeated name's
 * values with ", " (what fetch's Headers.get and Node's req.headers give);
 * a plain list keeps every line (a response may send Set-Cookie twice). */
typedef struct vow__header {
  char *name;
  char *value;
  size_t name_len;
  size_t value_len;
  size_t value_room;      /* bytes value may fill in place, its NUL included */
} vow__header;

typedef struct vow__headers {
  vow__header *items;     /* cap items, an index of 2 * cap slots, text_cap bytes of text */
  size_t len;
  size_t cap;
  size_t text_len;
  size_t text_cap;
} vow__headers;

/* Adds name: value (copied; value trimmed of surrounding blanks). Returns 0
 * or VOW_ENOMEM. */
int vow__headers_add(vow__headers *h, const char *name, size_t name_len, const char *value,
                     size_t value_len, int merge);
/* The value of name (case-insensitive), or NULL. Borrowed from h. */
const char *vow__headers_get(const vow__headers *h, const char *name);
void vow__headers_clear(vow__headers *h);

/* ---- a growable byte buffer (http.c) --------------------------------------- */
typedef struct vow__buf {
  char *data;
  size_t len;
  size_t cap;
} vow__buf;

/* Appends n bytes; returns 0 or VOW_ENOMEM (the buffer is then unchanged). */
int vow__buf_append(vow__buf *b, const void *bytes, size_t n);
void vow__buf_free(vow__buf *b);

/* ---- inspection, for the tests ---------------------------------------------- */

/* The work this thread's header lists did: names compared and bytes copied
 * (by adds, lookups and growth). The tests check it stays linear in what the
 * lists hold, whatever a peer sends. */
extern _Thread_local size_t vow__headers_work;

/* The most body bytes a response ever held buffered, waiting for its reader:
 * what backpressure bounds. */
size_t vow__response_buffered_peak(const vow_response *r);
/* Transfers in the loop's curl multi right now; connections the loop's
 * servers hold open right now. */
size_t vow__fetch_active(vow_loop *loop);
size_t vow__server_connections(const vow_server *server);
/* The most received, not yet parsed bytes one of the server's connections
 * ever held: what its read flow control bounds. */
size_t vow__server_input_peak(const vow_server *server);

#endif /* VOW_IO_H */
