/*
 * http.c — the glue fetch.c and server.c share: the loop's I/O slot, header
 * lists and byte buffers.
 *
 * Invariants:
 *   - the I/O slot is installed once per loop and freed only by the loop;
 *   - a header list owns its strings, in the one allocation that holds its
 *     items; names keep the case they arrived in.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "io/io.h"

/* ---- the I/O slot ------------------------------------------------------------ */

static void io_free(vow_loop *loop, void *state) {
  vow__io *io = state;
  /* Servers first: their handlers may be awaiting fetches of the same loop,
   * and neither half's teardown runs user code, so the order is only tidy. */
  if (io->server) vow__server_teardown(loop, io->server);
  if (io->fetch) vow__fetch_teardown(loop, io->fetch);
  if (io->processes) vow__process_teardown(loop, io->processes); /* before their pipes close */
  if (io->signals) vow__signal_teardown(loop, io->signals);
  vow__streams_teardown(loop, io);
  vow__free(io);
}

vow__io *vow__io_get(vow_loop *loop) {
  vow__io *io = vow__loop_ext(loop, VOW__EXT_IO);
  if (io || loop->closing) return io;
  io = vow__calloc(1, sizeof *io);
  if (!io) return NULL;
  vow__loop_set_ext(loop, VOW__EXT_IO, io, io_free, NULL);
  return io;
}

/* ---- header lists -------------------------------------------------------------- */

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static vow__header *find(const vow__headers *h, const char *name, size_t name_len) {
  for (size_t i = 0; i < h->len; i++) {
    if (strlen(h->items[i].name) == name_len && strncasecmp(h->items[i].name, name, name_len) == 0)
      return &h->items[i];
  }
  return NULL;
}

/* A list is one allocation: its items (cap of them), then its text, where
 * each header is "name\0value\0". A joined value is written anew at the end
 * and the old one left unused until the next growth, which copies only what
 * is in use: the text stays within twice the live bytes, however many times a
 * header repeats (a peer cannot make it balloon). */
enum { ITEMS_MIN = 8, TEXT_MIN = 256 };

static char *text_of(const vow__headers *h) {
  return (char *)(h->items + h->cap);
}

static size_t live_text(const vow__headers *h) {
  size_t n = 0;
  for (size_t i = 0; i < h->len; i++) n += strlen(h->items[i].name) + strlen(h->items[i].value) + 2;
  return n;
}

/* Copies s and its NUL to *at, advancing it; returns where it went. */
static char *copy_to(char **at, const char *s) {
  size_t n = strlen(s) + 1;
  char *where = *at;
  memcpy(where, s, n);
  *at += n;
  return where;
}

/* Room for one more item and extra more bytes of text. */
static int reserve(vow__headers *h, size_t extra) {
  if (h->len < h->cap && h->text_len + extra <= h->text_cap) return 0;
  size_t live = live_text(h);
  if (extra > ((size_t)-1 >> 2) - live) return VOW_ENOMEM;
  size_t cap = h->cap ? h->cap : ITEMS_MIN, text_cap = TEXT_MIN;
  if (h->len == cap) cap *= 2;
  while (text_cap < 2 * (live + extra)) text_cap *= 2;
  vow__header *items = vow__malloc(cap * sizeof *items + text_cap);
  if (!items) return VOW_ENOMEM;
  char *at = (char *)(items + cap);
  for (size_t i = 0; i < h->len; i++) {
    items[i].name = copy_to(&at, h->items[i].name);
    items[i].value = copy_to(&at, h->items[i].value);
  }
  vow__free(h->items);
  h->items = items;
  h->cap = cap;
  h->text_cap = text_cap;
  h->text_len = (size_t)(at - (char *)(items + cap));
  return 0;
}

/* Appends s (n bytes) and a NUL to the text, which has room; returns where. */
static char *put(vow__headers *h, const char *s, size_t n) {
  char *at = text_of(h) + h->text_len;
  if (n) memcpy(at, s, n);
  at[n] = '\0';
  h->text_len += n + 1;
  return at;
}

int vow__headers_add(vow__headers *h, const char *name, size_t name_len, const char *value,
                     size_t value_len, int merge) {
  while (value_len && is_blank(*value)) value++, value_len--;
  while (value_len && is_blank(value[value_len - 1])) value_len--;
  vow__header *same = merge ? find(h, name, name_len) : NULL;
  if (same) { /* "old, value" */
    size_t index = (size_t)(same - h->items), old = strlen(same->value);
    if (reserve(h, old + 2 + value_len + 1) != 0) return VOW_ENOMEM;
    same = &h->items[index];
    char *v = text_of(h) + h->text_len;
    memcpy(v, same->value, old);
    memcpy(v + old, ", ", 2);
    if (value_len) memcpy(v + old + 2, value, value_len);
    v[old + 2 + value_len] = '\0';
    h->text_len += old + 2 + value_len + 1;
    same->value = v;
    return 0;
  }
  if (reserve(h, name_len + 1 + value_len + 1) != 0) return VOW_ENOMEM;
  char *n = put(h, name, name_len);
  char *v = put(h, value, value_len);
  h->items[h->len++] = (vow__header){n, v};
  return 0;
}

const char *vow__headers_get(const vow__headers *h, const char *name) {
  if (!h || !name) return NULL;
  vow__header *hd = find(h, name, strlen(name));
  return hd ? hd->value : NULL;
}

void vow__headers_clear(vow__headers *h) {
  vow__free(h->items); /* and the text */
  *h = (vow__headers){0};
}

/* ---- byte buffers ----------------------------------------------------------------- */

int vow__buf_append(vow__buf *b, const void *bytes, size_t n) {
  if (n == 0) return 0;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + n) cap *= 2;
    char *d = vow__realloc(b->data, cap);
    if (!d) return VOW_ENOMEM;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, bytes, n);
  b->len += n;
  return 0;
}

void vow__buf_free(vow__buf *b) {
  vow__free(b->data);
  *b = (vow__buf){0};
}
