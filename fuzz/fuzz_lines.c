/*
 * fuzz_lines.c — libFuzzer: readline's line splitter (src/io/lines.c) against
 * a reference that splits the whole input at once, the way Node's readline
 * does (crlfDelay: Infinity): a line ends at "\n", "\r\n" or a lone "\r".
 *
 * Input: byte 0 picks the line limit (1..256), byte 1 seeds how the rest is
 * cut into pieces (1..64 bytes each); the rest is the text. However the text
 * is cut, the splitter must hand out the reference's lines, in order, and
 * refuse exactly the first line longer than the limit (VOW_ETOOBIG), with
 * every line before it handed out first.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/lines.h"
#include "vow.h"

/* The reference: the next line of text[*at, n) — 1 with [*start, *end), 0 at the end. */
static int reference_next(const uint8_t *text, size_t n, size_t *at, size_t *start, size_t *end) {
  if (*at >= n) return 0;
  size_t i = *at;
  while (i < n && text[i] != '\n' && text[i] != '\r') i++;
  *start = *at;
  *end = i;
  if (i < n && text[i] == '\r' && i + 1 < n && text[i + 1] == '\n') i++;
  *at = i < n ? i + 1 : n;
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t max = (size_t)data[0] + 1;
  uint32_t cut = data[1] * 2654435761u + 1;
  const uint8_t *text = data + 2;
  size_t n = size - 2;

  vow__lines l;
  vow__lines_init(&l, max);
  size_t ref_at = 0, fed = 0;
  int refused = 0;
  while (!refused) {
    int at_end = fed == n;
    const char *line;
    size_t len;
    int got = vow__lines_next(&l, at_end, &line, &len);
    if (got == 1) {
      size_t rs, re;
      if (!reference_next(text, n, &ref_at, &rs, &re)) abort(); /* a line the reference lacks */
      if (re - rs > max) abort();                               /* should have been refused */
      if (len != re - rs || memcmp(line, text + rs, len) != 0) abort();
      continue;
    }
    if (got == VOW_ETOOBIG) {
      /* The reference's next line must be the long one. */
      size_t rs, re;
      if (!reference_next(text, n, &ref_at, &rs, &re) || re - rs <= max) abort();
      refused = 1;
      break;
    }
    if (got != 0) abort();
    if (at_end) break;
    cut = cut * 1103515245u + 12345u;
    size_t piece = 1 + (cut >> 16) % 64;
    if (piece > n - fed) piece = n - fed;
    if (vow__lines_push(&l, (const char *)text + fed, piece) != 0) abort();
    fed += piece;
  }
  /* Everything was handed out, unless a line was refused. */
  size_t rs, re;
  if (!refused && reference_next(text, n, &ref_at, &rs, &re)) abort();
  vow__lines_free(&l);
  return 0;
}
