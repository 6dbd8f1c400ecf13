/*
 * print.c — the scenario's log: lines "L" and "L P(V)", kept in memory until
 * the run ends (as the oracle buffers them), so that a run that goes wrong
 * prints nothing.
 *
 * P is vow_value_format's notation, which is FORMAT.md's for the values a
 * scenario can make: undefined, integers, strings (escaped as JSON.stringify
 * does), arrays, allSettled records and AggregateError. The oracle refuses to
 * print anything else (a promise, an Error such as the TypeError of a promise
 * resolved with itself); so does this file.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

/* vow_value_format prints "..." below this nesting depth (it guards against
 * arrays holding themselves); a deeper value cannot be printed faithfully. */
#define FORMAT_MAX_DEPTH 64

char *sc_strdupf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  char *s = malloc((size_t)n + 1);
  if (!s) return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

/* Why FORMAT has no printing for v (a phrase for the error message), or NULL
 * when it has. */
static char *unprintable(vow_value v, int depth) {
  if (depth > FORMAT_MAX_DEPTH) return sc_strdupf("a value nested more than %d deep", FORMAT_MAX_DEPTH);
  switch (vow_kind_of(v)) {
    case VOW_UNDEFINED:
    case VOW_INT:
    case VOW_STRING:
      return NULL;
    case VOW_ARRAY:
    case VOW_AGGREGATE:
      for (size_t i = 0, n = vow_array_len(v); i < n; i++) {
        char *why = unprintable(vow_array_get(v, i), depth + 1);
        if (why) return why;
      }
      return NULL;
    case VOW_SETTLED:
      return unprintable(vow_settled_value(v), depth + 1);
    case VOW_PROMISE:
      return sc_strdupf("a promise object");
    case VOW_ERROR:
      return sc_strdupf("an error (%s: %s)", vow_err_name(vow_error_code(v)), vow_error_message(v));
    default: {
      char text[64];
      vow_value_format(v, text, sizeof text);
      return sc_strdupf("%s", text);
    }
  }
}

static int grow(sc_log *log, size_t more, char **error) {
  if (more > SC_MAX_OUTPUT - log->len) {
    *error = sc_strdupf("the scenario prints more than %zu bytes", SC_MAX_OUTPUT);
    return -1;
  }
  if (log->len + more <= log->cap) return 0;
  size_t cap = log->cap ? log->cap : 4096;
  while (cap < log->len + more) cap *= 2;
  char *buf = realloc(log->buf, cap);
  if (!buf) {
    *error = sc_strdupf("out of memory");
    return -1;
  }
  log->buf = buf;
  log->cap = cap;
  return 0;
}

static int append(sc_log *log, const char *s, size_t len, char **error) {
  if (len == 0) return 0; /* an empty label: buf may still be NULL */
  if (grow(log, len, error) != 0) return -1;
  memcpy(log->buf + log->len, s, len);
  log->len += len;
  return 0;
}

static int count_line(sc_log *log, char **error) {
  if (++log->lines > SC_MAX_LINES) {
    *error = sc_strdupf("more than %d log lines", SC_MAX_LINES);
    return -1;
  }
  return 0;
}

int sc_log_line(sc_log *log, sc_text label, char **error) {
  if (count_line(log, error) != 0) return -1;
  return append(log, label.s, label.len, error) || append(log, "\n", 1, error) ? -1 : 0;
}

int sc_log_value(sc_log *log, sc_text label, vow_value v, char **error) {
  char *why = unprintable(v, 0);
  if (why) {
    *error = sc_strdupf("the scenario prints %s, which FORMAT gives no printing for", why);
    free(why);
    return -1;
  }
  if (count_line(log, error) != 0) return -1;
  if (append(log, label.s, label.len, error) != 0 || append(log, " ", 1, error) != 0) return -1;
  size_t n = vow_value_format(v, NULL, 0);
  if (grow(log, n + 1, error) != 0) return -1;
  vow_value_format(v, log->buf + log->len, n + 1); /* its NUL becomes the line's end */
  log->len += n;
  log->buf[log->len++] = '\n';
  return 0;
}

void sc_log_free(sc_log *log) {
  free(log->buf);
  *log = (sc_log){0};
}
