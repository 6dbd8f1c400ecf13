/*
 * print.c — the scenario's log: lines "L" and "L P(V)", kept in memory until
 * the run ends (as the oracle buffers them), so that a run that goes wrong
 * prints nothing.
 *
 * P is FORMAT.md's notation for the values a scenario can make: undefined,
 * integers and strings as vow_value_format writes them (strings escaped as
 * JSON.stringify does), arrays, allSettled records, AggregateError, and (since
 * FORMAT 1.1) promises as promise:NAME, the name coming from the run
 * (sc_log.promise_name). The oracle refuses to print anything else (an Error
 * such as the TypeError of a promise resolved with itself, a promise bound to
 * no name); so does this file.
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

/* Refuses the value being printed: *error says what it was. */
static int refuse(char **error, const char *what) {
  *error = sc_strdupf("the scenario prints %s, which FORMAT gives no printing for", what);
  return -1;
}

static int put_str(sc_log *log, const char *s, char **error) {
  return append(log, s, strlen(s), error);
}

/* A leaf (undefined, an integer, a string) in vow_value_format's notation,
 * which is FORMAT's for these (strings escaped as JSON.stringify does). */
static int put_leaf(sc_log *log, vow_value v, char **error) {
  size_t n = vow_value_format(v, NULL, 0);
  if (grow(log, n + 1, error) != 0) return -1;
  vow_value_format(v, log->buf + log->len, n + 1); /* its NUL is overwritten next */
  log->len += n;
  return 0;
}

static int put_value(sc_log *log, vow_value v, int depth, char **error);

/* OPEN P(item),P(item)... "]": arrays and AggregateError's list. */
static int put_list(sc_log *log, const char *open, vow_value v, int depth, char **error) {
  if (put_str(log, open, error) != 0) return -1;
  for (size_t i = 0, n = vow_array_len(v); i < n; i++) {
    if ((i > 0 && put_str(log, ",", error) != 0) || put_value(log, vow_array_get(v, i), depth + 1, error) != 0) {
      return -1;
    }
  }
  return put_str(log, "]", error);
}

/* P(v), appended to the log; or -1 with *error (the log may hold part of it). */
static int put_value(sc_log *log, vow_value v, int depth, char **error) {
  if (depth > FORMAT_MAX_DEPTH) {
    char what[64];
    snprintf(what, sizeof what, "a value nested more than %d deep", FORMAT_MAX_DEPTH);
    return refuse(error, what);
  }
  switch (vow_kind_of(v)) {
    case VOW_UNDEFINED:
    case VOW_INT:
    case VOW_STRING:
      return put_leaf(log, v, error);
    case VOW_ARRAY:
      return put_list(log, "[", v, depth, error);
    case VOW_AGGREGATE:
      return put_list(log, "AggregateError[", v, depth, error);
    case VOW_SETTLED:
      if (put_str(log, vow_settled_ok(v) ? "{fulfilled:" : "{rejected:", error) != 0 ||
          put_value(log, vow_settled_value(v), depth + 1, error) != 0) {
        return -1;
      }
      return put_str(log, "}", error);
    case VOW_PROMISE:
    case VOW_POINTER: { /* a promise, or the run's stand-in for one (run.c) */
      const char *name = log->promise_name ? log->promise_name(log->promise_name_ctx, v) : NULL;
      if (name) return put_str(log, "promise:", error) || put_str(log, name, error) ? -1 : 0;
      if (vow_kind_of(v) == VOW_PROMISE) return refuse(error, "a promise bound to no name");
      break;
    }
    case VOW_ERROR: {
      char *what = sc_strdupf("an error (%s: %s)", vow_err_name(vow_error_code(v)), vow_error_message(v));
      int rc = what ? refuse(error, what) : -1;
      free(what);
      return rc;
    }
    default:
      break;
  }
  char text[64];
  vow_value_format(v, text, sizeof text);
  return refuse(error, text);
}

int sc_log_value(sc_log *log, sc_text label, vow_value v, char **error) {
  size_t len = log->len;
  if (append(log, label.s, label.len, error) != 0 || append(log, " ", 1, error) != 0 ||
      put_value(log, v, 0, error) != 0 || append(log, "\n", 1, error) != 0) {
    log->len = len; /* the run stops, and prints nothing: the partial line goes too */
    return -1;
  }
  return count_line(log, error); /* after P(v), as log(L + " " + P(v)) counts it */
}

void sc_log_free(sc_log *log) {
  free(log->buf);
  *log = (sc_log){0};
}
