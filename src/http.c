/*
 * http.c — the glue fetch.c and server.c share: the loop's I/O slot, header
 * lists and byte buffers.
 *
 * Invariants:
 *   - the I/O slot is installed once per loop and freed only by the loop;
 *   - a header list owns its strings; names keep the case they arrived in.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "io.h"

/* ---- the I/O slot ------------------------------------------------------------ */

static void io_free(vow_loop *loop, void *state) {
  vow__io *io = state;
  /* Servers first: their handlers may be awaiting fetches of the same loop,
   * and neither half's teardown runs user code, so the order is only tidy. */
  if (io->server) vow__server_teardown(loop, io->server);
  if (io->fetch) vow__fetch_teardown(loop, io->fetch);
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

static char *copy_n(const char *s, size_t n) {
  char *c = vow__malloc(n + 1);
  if (!c) return NULL;
  if (n) memcpy(c, s, n);
  c[n] = '\0';
  return c;
}

static vow__header *find(const vow__headers *h, const char *name, size_t name_len) {
  for (size_t i = 0; i < h->len; i++) {
    if (strlen(h->items[i].name) == name_len && strncasecmp(h->items[i].name, name, name_len) == 0)
      return &h->items[i];
  }
  return NULL;
}

/* Appends ", value" to an existing header. */
static int join(vow__header *hd, const char *value, size_t value_len) {
  size_t old = strlen(hd->value);
  char *v = vow__realloc(hd->value, old + 2 + value_len + 1);
  if (!v) return VOW_ENOMEM;
  memcpy(v + old, ", ", 2);
  memcpy(v + old + 2, value, value_len);
  v[old + 2 + value_len] = '\0';
  hd->value = v;
  return 0;
}

int vow__headers_add(vow__headers *h, const char *name, size_t name_len, const char *value,
                     size_t value_len, int merge) {
  while (value_len && is_blank(*value)) value++, value_len--;
  while (value_len && is_blank(value[value_len - 1])) value_len--;
  vow__header *same = merge ? find(h, name, name_len) : NULL;
  if (same) return join(same, value, value_len);
  if (h->len == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 8;
    vow__header *items = vow__realloc(h->items, cap * sizeof *items);
    if (!items) return VOW_ENOMEM;
    h->items = items;
    h->cap = cap;
  }
  char *n = copy_n(name, name_len), *v = copy_n(value, value_len);
  if (!n || !v) {
    vow__free(n);
    vow__free(v);
    return VOW_ENOMEM;
  }
  h->items[h->len++] = (vow__header){n, v};
  return 0;
}

const char *vow__headers_get(const vow__headers *h, const char *name) {
  if (!h || !name) return NULL;
  vow__header *hd = find(h, name, strlen(name));
  return hd ? hd->value : NULL;
}

void vow__headers_clear(vow__headers *h) {
  for (size_t i = 0; i < h->len; i++) {
    vow__free(h->items[i].name);
    vow__free(h->items[i].value);
  }
  vow__free(h->items);
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
