/*
 * test_trace.c — the timeline: what the loop ran, as Chrome trace-event JSON.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "vow.h"

static vow_loop *loop;
static char path[64];

static void setup(void) {
  snprintf(path, sizeof path, "/tmp/vow-trace-%d.json", (int)getpid());
  cr_assert_eq(vow_loop_new(&loop, NULL), 0);
}
static void teardown(void) {
  vow_loop_free(loop);
  unlink(path);
}
TestSuite(trace, .init = setup, .fini = teardown);

static void tick(vow_loop *l, void *arg) {
  (void)l, (void)arg;
}
static vow_value body(vow_loop *l, void *arg) {
  (void)arg;
  vow_await(vow_delay(l, 2, vow_undefined()), NULL);
  vow_await(vow_delay(l, 2, vow_undefined()), NULL);
  return vow_undefined();
}

/* Counts events by (ph, cat, name) and checks the file's structure: every
 * event has the fields viewers need, and every span that begins ends. */
static int count(json_t *events, const char *ph, const char *cat, const char *name) {
  size_t i;
  json_t *e;
  int n = 0;
  json_array_foreach(events, i, e) {
    if (strcmp(json_string_value(json_object_get(e, "ph")), ph) != 0) continue;
    if (cat && strcmp(json_string_value(json_object_get(e, "cat")), cat) != 0) continue;
    if (name && strcmp(json_string_value(json_object_get(e, "name")), name) != 0) continue;
    n++;
  }
  return n;
}

static json_t *load_valid(const char *file) {
  json_error_t err;
  json_t *root = json_load_file(file, 0, &err);
  cr_assert_not_null(root, "trace is not JSON: %s (line %d)", err.text, err.line);
  json_t *events = json_object_get(root, "traceEvents");
  cr_assert(json_is_array(events));
  size_t i;
  json_t *e;
  json_array_foreach(events, i, e) {
    const char *ph = json_string_value(json_object_get(e, "ph"));
    cr_assert_not_null(ph);
    cr_assert(json_is_string(json_object_get(e, "name")));
    cr_assert(json_is_integer(json_object_get(e, "pid")) && json_is_integer(json_object_get(e, "tid")));
    if (strcmp(ph, "M") == 0) continue;
    cr_assert(json_is_number(json_object_get(e, "ts")));
    double ts = json_number_value(json_object_get(e, "ts"));
    if (strcmp(ph, "X") == 0) cr_assert_geq(json_number_value(json_object_get(e, "dur")), 0);
    if (strcmp(ph, "b") == 0 || strcmp(ph, "e") == 0) cr_assert(json_is_integer(json_object_get(e, "id")));
    cr_assert_geq(ts, 0);
  }
  cr_assert_eq(count(events, "b", NULL, NULL), count(events, "e", NULL, NULL), "every span ends");
  return root;
}

LOOP_TEST(trace, records_macrotasks_microtasks_and_coroutines) {
  cr_assert_eq(vow_trace_start(loop, path), 0);
  cr_assert_eq(vow_trace_start(loop, path), VOW_EBUSY);
  vow_set_timeout(loop, 1, tick, NULL);
  vow_set_immediate(loop, tick, NULL);
  vow_async_options o = {.name = "worker"};
  vow_promise_unref(vow_async_ex(loop, body, NULL, &o));
  uint64_t span = vow_trace_begin(loop, "mine", "a span of my own");
  cr_assert_gt(span, 0);
  cr_assert_eq(vow_loop_run(loop), 0);
  vow_trace_end(loop, span);
  cr_assert_eq(vow_trace_stop(loop), 0);
  cr_assert_eq(vow_trace_stop(loop), VOW_EINVAL);

  json_t *root = load_valid(path);
  json_t *events = json_object_get(root, "traceEvents");
  cr_assert_geq(count(events, "X", "macrotask", "timeout"), 3);
  cr_assert_eq(count(events, "X", "macrotask", "immediate"), 1);
  cr_assert_geq(count(events, "X", "loop", "microtasks"), 2);
  cr_assert_eq(count(events, "X", "coroutine", "worker"), 3, "run, then two resumptions");
  cr_assert_eq(count(events, "b", "async", "worker"), 1);
  cr_assert_eq(count(events, "b", "mine", "a span of my own"), 1);
  json_decref(root);
}

LOOP_TEST(trace, off_records_nothing) {
  cr_assert_eq(vow_trace_begin(loop, "x", "y"), 0);
  vow_trace_end(loop, 0);
  cr_assert_eq(vow_trace_stop(loop), VOW_EINVAL);
  cr_assert_eq(access(path, F_OK), -1);
}

/* VOW_TRACE=FILE traces a loop from its creation; the file is written when
 * the loop is freed. */
LOOP_TEST(trace, environment_variable_traces_any_program) {
  setenv("VOW_TRACE", path, 1);
  vow_loop *traced;
  cr_assert_eq(vow_loop_new(&traced, NULL), 0);
  unsetenv("VOW_TRACE");
  vow_set_timeout(traced, 1, tick, NULL);
  cr_assert_eq(vow_loop_run(traced), 0);
  cr_assert_eq(vow_loop_free(traced), 0);
  json_t *root = load_valid(path);
  cr_assert_eq(count(json_object_get(root, "traceEvents"), "X", "macrotask", "timeout"), 1);
  json_decref(root);
}
