/*
 * http.c — the glue fetch.c and server.c share: the loop's I/O slot, header
 * lists and byte buffers.
 *
 * Invariants:
 *   - the I/O slot is installed once per loop and freed only by the loop;
 *   - a header list owns its strings, in the one allocation that holds its
 *     items and their index; names keep the case they arrived in;
 *   - a header list's adds and lookups cost O(1) each, expected, whatever the
 *     names: no work grows with the square of what a peer sends.
 */
#include <stdint.h>
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
  if (io->net) vow__net_teardown(loop, io->net);
  if (io->fetch) vow__fetch_teardown(loop, io->fetch);
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

_Thread_local size_t vow__headers_work;

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* A list is one allocation: its items (cap of them), an index of 2 * cap
 * slots, then its text, where each header is "name\0value\0".
 *
 * The index maps a name (ignoring case) to its first item: open addressing,
 * linear probing, at most half full, rebuilt whenever the list grows. A slot
 * holds an item's position + 1, or 0. So an add or a lookup costs one hash and
 * a probe or two, never a scan of the list (a scan per add made a peer's 4800
 * tiny headers cost ~100 ms, and a response's 40 000 seconds). The hash is
 * seeded with the allocation's address, so a peer cannot choose names that
 * collide.
 *
 * A joined value ("old, new") grows in place while its room lasts; when it
 * does not, it moves to the end of the text with half as much room again, so
 * a header repeated n times costs O(n) bytes copied, not O(n^2), in whatever
 * order the names come. What moves leaves its old copy unused until the next
 * growth, which copies only what is in use: the text stays within a small
 * multiple of the live bytes, however many times a header repeats. */
enum { ITEMS_MIN = 8, TEXT_MIN = 256 };

static uint32_t *index_of(const vow__headers *h) {
  return (uint32_t *)(h->items + h->cap);
}

static char *text_of(const vow__headers *h) {
  return (char *)(index_of(h) + 2 * h->cap);
}

static unsigned char lower(unsigned char c) {
  return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

/* FNV-1a over the lower-cased name from a secret start, then a finalizer that
 * spreads every bit of it into the low bits the table uses. */
static size_t hash_name(const vow__headers *h, const char *name, size_t len) {
  uint64_t x = 0xcbf29ce484222325u ^ (uint64_t)(uintptr_t)h->items;
  for (size_t i = 0; i < len; i++) x = (x ^ lower((unsigned char)name[i])) * 0x100000001b3u;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdu;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53u;
  x ^= x >> 33;
  return (size_t)x;
}

/* The index slot of name: the one that holds its first item, or else the
 * empty one where it would go. The index always has an empty slot. */
static uint32_t *slot_of(const vow__headers *h, const char *name, size_t len) {
  size_t mask = 2 * h->cap - 1;
  uint32_t *index = index_of(h);
  for (size_t i = hash_name(h, name, len) & mask;; i = (i + 1) & mask) {
    vow__headers_work++;
    if (!index[i]) return &index[i];
    const vow__header *it = &h->items[index[i] - 1];
    if (it->name_len == len && strncasecmp(it->name, name, len) == 0) return &index[i];
  }
}

static vow__header *find(const vow__headers *h, const char *name, size_t len) {
  if (!h->cap) return NULL;
  uint32_t *slot = slot_of(h, name, len);
  return *slot ? &h->items[*slot - 1] : NULL;
}

/* Indexes item i, unless an earlier item has its name (a plain list keeps
 * every line; the index finds the first). */
static void index_item(vow__headers *h, size_t i) {
  uint32_t *slot = slot_of(h, h->items[i].name, h->items[i].name_len);
  if (!*slot) *slot = (uint32_t)(i + 1);
}

/* Copies n bytes and a NUL to *at, advancing it; returns where they went. */
static char *copy_to(char **at, const char *s, size_t n) {
  char *where = *at;
  memcpy(where, s, n);
  where[n] = '\0';
  *at += n + 1;
  vow__headers_work += n;
  return where;
}

/* Room for one more item and extra more bytes of text. */
static int reserve(vow__headers *h, size_t extra) {
  if (h->len < h->cap && h->text_len + extra <= h->text_cap) return 0;
  size_t live = 0;
  for (size_t i = 0; i < h->len; i++) live += h->items[i].name_len + h->items[i].value_len + 2;
  if (extra > ((size_t)-1 >> 3) - live || h->cap >= UINT32_MAX / 4) return VOW_ENOMEM;
  size_t cap = h->cap ? h->cap : ITEMS_MIN, text_cap = TEXT_MIN;
  if (h->len == cap) cap *= 2;
  while (text_cap < 2 * (live + extra)) text_cap *= 2;
  vow__header *items = vow__malloc(cap * (sizeof *items + 2 * sizeof(uint32_t)) + text_cap);
  if (!items) return VOW_ENOMEM;
  vow__headers old = *h;
  *h = (vow__headers){.items = items, .len = old.len, .cap = cap, .text_cap = text_cap};
  memset(index_of(h), 0, 2 * cap * sizeof(uint32_t));
  char *at = text_of(h);
  for (size_t i = 0; i < old.len; i++) {
    vow__header *from = &old.items[i], *to = &items[i];
    *to = *from;
    to->name = copy_to(&at, from->name, from->name_len);
    to->value = copy_to(&at, from->value, from->value_len);
    to->value_room = from->value_len + 1;
    index_item(h, i);
  }
  vow__free(old.items);
  h->text_len = (size_t)(at - text_of(h));
  return 0;
}

/* Takes n bytes of the text, which has room; returns where. */
static char *take(vow__headers *h, size_t n) {
  char *at = text_of(h) + h->text_len;
  h->text_len += n;
  return at;
}

/* Joins value to the item at index i: "old, value". */
static int join(vow__headers *h, size_t i, const char *value, size_t value_len) {
  vow__header *same = &h->items[i];
  size_t old = same->value_len, len = old + 2 + value_len;
  if (len + 1 > same->value_room) { /* move it to the end, with room to grow */
    size_t room = len + len / 2 + 16;
    if (reserve(h, room) != 0) return VOW_ENOMEM;
    same = &h->items[i];
    char *v = take(h, room);
    memcpy(v, same->value, old);
    vow__headers_work += old;
    same->value = v;
    same->value_room = room;
  }
  memcpy(same->value + old, ", ", 2);
  if (value_len) memcpy(same->value + old + 2, value, value_len);
  same->value[len] = '\0';
  same->value_len = len;
  vow__headers_work += value_len + 2;
  return 0;
}

int vow__headers_add(vow__headers *h, const char *name, size_t name_len, const char *value,
                     size_t value_len, int merge) {
  while (value_len && is_blank(*value)) value++, value_len--;
  while (value_len && is_blank(value[value_len - 1])) value_len--;
  vow__header *same = merge ? find(h, name, name_len) : NULL;
  if (same) return join(h, (size_t)(same - h->items), value, value_len);
  if (reserve(h, name_len + 1 + value_len + 1) != 0) return VOW_ENOMEM;
  char *at = take(h, name_len + 1 + value_len + 1);
  size_t i = h->len++;
  vow__header *it = &h->items[i];
  it->name = copy_to(&at, name, name_len);
  it->value = copy_to(&at, value, value_len);
  it->name_len = name_len;
  it->value_len = value_len;
  it->value_room = value_len + 1;
  index_item(h, i);
  return 0;
}

const char *vow__headers_get(const vow__headers *h, const char *name) {
  if (!h || !name) return NULL;
  vow__header *hd = find(h, name, strlen(name));
  return hd ? hd->value : NULL;
}

void vow__headers_clear(vow__headers *h) {
  vow__free(h->items); /* and the index and the text */
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
