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
/* Also, always: no pooled object (promise, reaction, job) outlived its loop. */
#include "core/pool.h"
#define POOL_LEAK_CHECK() \
  cr_assert_eq(vow__pool_leaked, 0, "%llu pooled objects outlived their loop", \
               (unsigned long long)vow__pool_leaked)
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define TEST_LEAK_CHECK() \
  do { POOL_LEAK_CHECK(); cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "memory leaked"); } while (0)
#else
#define TEST_LEAK_CHECK() POOL_LEAK_CHECK()
#endif
#define LOG_TEXT() ((const char *)g_log.text)

/* A suite whose every test gets a fresh loop (made with the given options,
 * which may be NULL) and an empty log. LOOP_TEST frees the loop; the suite's
 * teardown frees it only when a test stopped early. */
#define LOOP_SUITE(suite, options)                        \
  static vow_loop *loop;                                  \
  static void suite##_setup(void) {                       \
    log_reset();                                          \
    cr_assert_eq(vow_loop_new(&loop, (options)), 0);      \
  }                                                       \
  static void suite##_teardown(void) { vow_loop_free(loop); } \
  TestSuite(suite, .init = suite##_setup, .fini = suite##_teardown)

/* A test on the suite's loop: runs the body, then frees the loop and checks
 * for leaks inside the test itself (Criterion does not fail a test for an
 * assertion in its .fini). The file defines `static vow_loop *loop;`. */
#define LOOP_TEST(suite, name)            \
  static void name##_body(void);          \
  Test(suite, name) {                     \
    name##_body();                        \
    cr_assert_eq(vow_loop_free(loop), 0); \
    loop = NULL;                          \
    TEST_LEAK_CHECK();                    \
  }                                       \
  static void name##_body(void)

#endif
