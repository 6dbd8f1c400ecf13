/*
 * 19 — Lines of stdin, as they arrive
 *
 * Read standard input line by line with for-await, answer each line on
 * standard output, and sum up at the end. The same program works whether
 * stdin is a terminal (type, then Ctrl-D), a pipe (`printf ... | prog`) or a
 * file (`prog < notes.txt`): vow looks at what descriptor 0 is and reads it
 * the right way. Each write is awaited, so a slow reader of our output (a
 * pager, a full pipe) slows us down instead of filling memory.
 *
 * The JavaScript this mirrors (node prints the same lines):
 *
 *   import { createInterface } from 'node:readline';
 *   let n = 0, words = 0;
 *   for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) {
 *     const w = line.split(/\s+/).filter(Boolean).length;
 *     words += w;
 *     process.stdout.write(`${++n}: ${line.toUpperCase()} (${w} words)\n`);
 *   }
 *   process.stdout.write(`${n} lines, ${words} words\n`);
 *
 *   $ printf 'the quick\r\nbrown fox\n\njumps' | node lines.mjs
 *   1: THE QUICK (2 words)
 *   2: BROWN FOX (2 words)
 *   3:  (0 words)
 *   4: JUMPS (1 words)
 *   4 lines, 5 words
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <vow.h>

/* line.toUpperCase(), and how many words it has. */
static int shout(const char *line, char *out, size_t cap) {
  int words = 0, in_word = 0;
  size_t i = 0;
  for (; line[i] && i + 1 < cap; i++) {
    out[i] = (char)toupper((unsigned char)line[i]);
    int space = isspace((unsigned char)line[i]);
    if (!space && !in_word) words++;
    in_word = !space;
  }
  out[i] = '\0';
  return words;
}

static vow_value lines_of_stdin(vow_loop *loop, void *arg) {
  (void)arg;
  vow_stream *in = vow_stdin(loop), *out = vow_stdout(loop);
  if (!in || !out) return vow_throw(vow_error(VOW_EINVAL, "stdin or stdout is not open"));
  int n = 0, words = 0;
  vow_for_await it;
  vow_for_await_gen(&it, vow_stream_lines(in, 0));
  VOW_FOR_AWAIT(&it, line) {
    char upper[1024], text[1100];
    int w = shout(vow_str(line), upper, sizeof upper);
    words += w;
    int len = snprintf(text, sizeof text, "%d: %s (%d words)\n", ++n, upper, w);
    vow_await(vow_stream_write(out, text, (size_t)len), NULL); /* backpressure */
  }
  vow_value error;
  int failed = vow_for_await_end(&it, &error) < 0;
  char total[64];
  int len = snprintf(total, sizeof total, "%d lines, %d words\n", n, words);
  vow_await(vow_stream_write(out, total, (size_t)len), NULL);
  vow_stream_unref(in);
  vow_stream_unref(out);
  return failed ? vow_throw(error) : vow_undefined();
}

int main(void) {
  return vow_run(lines_of_stdin, NULL, NULL, NULL) == 0 ? 0 : 1;
}
