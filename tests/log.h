/*
 * log.h — a tiny ordered log for tests: callbacks append words, the test
 * compares the whole sequence with what Node prints for the same program.
 */
#ifndef VOW_TEST_LOG_H
#define VOW_TEST_LOG_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct test_log {
  char text[8192];
  size_t len;
} test_log;

static test_log g_log;

static inline void log_reset(void) {
  g_log.len = 0;
  g_log.text[0] = '\0';
}

/* Appends one word, space-separated. */
static inline void logf_(const char *fmt, ...) {
  va_list ap;
  if (g_log.len && g_log.len < sizeof g_log.text - 1) g_log.text[g_log.len++] = ' ';
  va_start(ap, fmt);
  int n = vsnprintf(g_log.text + g_log.len, sizeof g_log.text - g_log.len, fmt, ap);
  va_end(ap);
  if (n > 0) g_log.len += (size_t)n;
  if (g_log.len >= sizeof g_log.text) g_log.len = sizeof g_log.text - 1;
}

#define LOG(...) logf_(__VA_ARGS__)

/* Under LeakSanitizer, fails the current test when anything it allocated is
 * unreachable. Criterion runs each test in its own process and reports before
 * exit-time leak checks run, so tests call this from their teardown. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define TEST_LEAK_CHECK() cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "memory leaked")
#else
#define TEST_LEAK_CHECK() ((void)0)
#endif
#define LOG_TEXT() ((const char *)g_log.text)

#endif
