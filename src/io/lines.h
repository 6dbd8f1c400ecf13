/*
 * lines.h — readline's line splitter (internal), apart from any stream so
 * that it can be tested and fuzzed on its own.
 *
 * Bytes go in as they arrive, in pieces of any size; complete lines come out.
 * A line ends at "\n", "\r\n" or a lone "\r", as in Node's readline (with
 * crlfDelay: Infinity): a "\r\n" split across two pieces is still one ending,
 * and a line ended by "\r" is handed out at once, without waiting to see
 * whether a "\n" follows (skip_lf remembers to drop it). Invariants:
 *   - buf[start, len) is the unconsumed input; buf[start, scan) holds no line
 *     ending, so each byte is examined once however the input was split;
 *   - the unconsumed input never holds more than max bytes without an
 *     ending: a longer line is refused (VOW_ETOOBIG) instead of buffered.
 */
#ifndef VOW_IO_LINES_H
#define VOW_IO_LINES_H

#include <stddef.h>

typedef struct vow__lines {
  char *buf;
  size_t start, scan, len, cap;
  size_t max;  /* the longest line accepted, in bytes, without its ending */
  int skip_lf; /* the last line ended with "\r": a "\n" next is part of it */
} vow__lines;

void vow__lines_init(vow__lines *l, size_t max_line);
void vow__lines_free(vow__lines *l);

/* Appends n bytes. Returns 0, or VOW_ENOMEM (nothing appended). */
int vow__lines_push(vow__lines *l, const char *data, size_t n);

/* The next complete line: returns 1 with *line (borrowed until the next push
 * or next call) and *len, 0 when no line is complete yet, VOW_ETOOBIG when
 * the line being gathered is longer than max. With at_end set (the input is
 * over), what is left is a line too, if not empty. */
int vow__lines_next(vow__lines *l, int at_end, const char **line, size_t *len);

#endif
