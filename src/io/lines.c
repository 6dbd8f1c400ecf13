/*
 * lines.c — readline's line splitter (see lines.h for its invariants).
 */
#include <string.h>

#include "core/alloc.h"
#include "io/lines.h"
#include "vow.h"

void vow__lines_init(vow__lines *l, size_t max_line) {
  *l = (vow__lines){0};
  l->max = max_line;
}

void vow__lines_free(vow__lines *l) {
  vow__free(l->buf);
  *l = (vow__lines){0};
}

/* Makes room for n more bytes: slides the unconsumed input to the front
 * first, and grows only when that is not enough. */
static int reserve(vow__lines *l, size_t n) {
  if (l->start > 0) {
    memmove(l->buf, l->buf + l->start, l->len - l->start);
    l->len -= l->start;
    l->scan -= l->start;
    l->start = 0;
  }
  if (l->len + n <= l->cap) return 0;
  size_t cap = l->cap ? l->cap : 256;
  while (cap < l->len + n) cap *= 2;
  char *b = vow__realloc(l->buf, cap);
  if (!b) return VOW_ENOMEM;
  l->buf = b;
  l->cap = cap;
  return 0;
}

int vow__lines_push(vow__lines *l, const char *data, size_t n) {
  if (n == 0) return 0;
  if (l->len + n > l->cap && reserve(l, n) != 0) return VOW_ENOMEM;
  memcpy(l->buf + l->len, data, n);
  l->len += n;
  return 0;
}

/* Hands out buf[start, end) and consumes through next. */
static int take(vow__lines *l, size_t end, size_t next, const char **line, size_t *len) {
  *line = l->buf + l->start;
  *len = end - l->start;
  l->start = l->scan = next;
  return 1;
}

int vow__lines_next(vow__lines *l, int at_end, const char **line, size_t *len) {
  if (l->skip_lf && l->start < l->len) {
    if (l->buf[l->start] == '\n') l->start++;
    if (l->scan < l->start) l->scan = l->start;
    l->skip_lf = 0;
  }
  size_t i = l->scan;
  while (i < l->len && l->buf[i] != '\n' && l->buf[i] != '\r') i++;
  l->scan = i;
  if (i - l->start > l->max) return VOW_ETOOBIG;
  if (i < l->len) {
    if (l->buf[i] == '\n') return take(l, i, i + 1, line, len);
    if (i + 1 < l->len) return take(l, i, l->buf[i + 1] == '\n' ? i + 2 : i + 1, line, len);
    l->skip_lf = 1; /* a "\r" last: the line is complete, its "\n" may follow */
    return take(l, i, i + 1, line, len);
  }
  if (at_end && l->len > l->start) return take(l, l->len, l->len, line, len);
  return 0;
}
