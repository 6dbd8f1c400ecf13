/*
 * vow-tour — the advanced-async lesson, live, in C.
 *
 *   vow-tour            every section, in order
 *   vow-tour 3 6        only sections 3 and 6
 *   vow-tour --list     the section titles
 *
 * Each section prints a heading, one line on what it does, and its results.
 * The "requests" here are timers that answer after a set delay, standing in
 * for the HTTP calls of the lesson.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vow.h>

static int colour;
static uint64_t t0;

static void heading(int n, const char *title, const char *what) {
  printf("\n%s%d. %s%s\n", colour ? "\033[1;36m" : "", n, title, colour ? "\033[0m" : "");
  printf("   %s\n", what);
}

/* One result line: the time since the section's step began, a label, a text. */
static void result(vow_loop *loop, const char *label, const char *text) {
  printf("   %s%5llu ms%s  %s%s\n", colour ? "\033[2m" : "",
         (unsigned long long)(vow_loop_now(loop) - t0), colour ? "\033[0m" : "", label, text);
}

/* A stand-in request: fulfilled with `what` (or rejected) after ms. */
static vow_promise *request(vow_loop *loop, const char *what, uint64_t ms) {
  return vow_delay(loop, ms, vow_string(what));
}
static vow_promise *failing_request(vow_loop *loop, const char *why, uint64_t ms) {
  return vow_delay_reject(loop, ms, vow_error(VOW_EINVAL, why));
}

/* ---- 1. sequential vs parallel ---------------------------------------------- */

static vow_value section_1(vow_loop *loop, void *arg) {
  (void)arg;
  heading(1, "Sequential vs parallel",
          "two 200 ms requests, awaited one by one, then started together");
  vow_value user, posts;
  t0 = vow_loop_now(loop);
  vow_await(request(loop, "user", 200), &user);
  vow_await(request(loop, "posts", 200), &posts);
  result(loop, "sequential: ", "both done (the times add up)");
  vow_unref(user), vow_unref(posts);

  t0 = vow_loop_now(loop);
  vow_promise *u = request(loop, "user", 200), *p = request(loop, "posts", 200);
  vow_await(u, &user);
  vow_await(p, &posts);
  result(loop, "parallel:   ", "both done (the times overlap)");
  vow_unref(user), vow_unref(posts);
  return vow_undefined();
}

/* ---- 2. all ------------------------------------------------------------------ */

static void show_all(vow_loop *loop, vow_value *reqs) {
  vow_value v;
  char text[160];
  t0 = vow_loop_now(loop);
  if (vow_await(vow_all(loop, reqs, 3), &v) == 0) {
    vow_value_format(v, text, sizeof text);
    result(loop, "all fulfilled: ", text);
  } else {
    result(loop, "all rejected at once: ", vow_error_message(v));
  }
  vow_unref(v);
}

static vow_value section_2(vow_loop *loop, void *arg) {
  (void)arg;
  heading(2, "Promise.all", "user + notifications + feed in parallel; then one of them fails");
  show_all(loop, VOW_VALUES(vow_promise_value(request(loop, "user", 120)),
                            vow_promise_value(request(loop, "notifications", 60)),
                            vow_promise_value(request(loop, "feed", 180))));
  show_all(loop, VOW_VALUES(vow_promise_value(request(loop, "user", 120)),
                            vow_promise_value(failing_request(loop, "notifications are down", 60)),
                            vow_promise_value(request(loop, "feed", 180))));
  return vow_undefined();
}

/* ---- 3. allSettled ------------------------------------------------------------ */

static vow_value section_3(vow_loop *loop, void *arg) {
  (void)arg;
  heading(3, "Promise.allSettled", "/critical-data succeeds, /optional-data answers 404");
  vow_value results;
  t0 = vow_loop_now(loop);
  vow_await(vow_all_settled(loop, VOW_VALUES(
      vow_promise_value(request(loop, "critical data", 80)),
      vow_promise_value(failing_request(loop, "/optional-data: 404 Not Found", 40))), 2),
      &results);
  for (size_t i = 0; i < vow_array_len(results); i++) {
    vow_value r = vow_array_get(results, i);
    if (vow_settled_ok(r)) result(loop, "Got data: ", vow_str(vow_settled_value(r)));
    else result(loop, "Failed: ", vow_error_message(vow_settled_value(r)));
  }
  vow_unref(results);
  return vow_undefined();
}

/* ---- 4. race ---------------------------------------------------------------------- */

static void race_against_timeout(vow_loop *loop, uint64_t ms) {
  vow_value v;
  t0 = vow_loop_now(loop);
  int rc = vow_await(vow_race(loop, VOW_VALUES(
      vow_promise_value(request(loop, "the data", ms)),
      vow_promise_value(vow_delay_reject(loop, 100, vow_error(VOW_ETIMEDOUT, "Timeout!")))), 2),
      &v);
  result(loop, rc == 0 ? "the request won: " : "the timeout won: ",
         rc == 0 ? vow_str(v) : vow_error_message(v));
  vow_unref(v);
}

static vow_value section_4(vow_loop *loop, void *arg) {
  (void)arg;
  heading(4, "Promise.race", "a 300 ms request, then a 30 ms one, each against a 100 ms timeout");
  race_against_timeout(loop, 300);
  race_against_timeout(loop, 30);
  return vow_undefined();
}

/* ---- 5. async iteration ----------------------------------------------------------- */

static vow_value urls_gen(vow_loop *loop, vow_asyncgen *gen, void *arg) {
  (void)gen, (void)arg;
  static const char *urls[] = {"/url1", "/url2", "/url3"};
  for (int i = 0; i < 3; i++) {
    vow_value r;
    if (vow_await(request(loop, urls[i], 100), &r) != 0) return vow_throw(r);
    if (vow_yield(r, NULL) != 0) break;
  }
  return vow_undefined();
}

static vow_value section_5(vow_loop *loop, void *arg) {
  (void)arg;
  heading(5, "Async iteration", "for await over three 100 ms requests, then all of them at once");
  vow_for_await it;
  t0 = vow_loop_now(loop);
  vow_for_await_gen(&it, vow_asyncgen_new(loop, urls_gen, NULL));
  VOW_FOR_AWAIT(&it, response) result(loop, "for await: ", vow_str(response));
  vow_for_await_end(&it, NULL);

  vow_value all;
  t0 = vow_loop_now(loop);
  vow_await(vow_all(loop, VOW_VALUES(vow_promise_value(request(loop, "/url1", 100)),
                                     vow_promise_value(request(loop, "/url2", 100)),
                                     vow_promise_value(request(loop, "/url3", 100))), 3),
            &all);
  char text[128];
  vow_value_format(all, text, sizeof text);
  result(loop, "map + all: ", text);
  vow_unref(all);
  return vow_undefined();
}

/* ---- 6. microtasks vs macrotasks ---------------------------------------------------- */

static void print_two(vow_loop *loop, void *arg) {
  (void)loop, (void)arg;
  printf("2   (the timer: a macrotask, on the next turn of the loop)\n");
}
static vow_value print_three(vow_loop *loop, vow_value v, void *ctx) {
  (void)loop, (void)v, (void)ctx;
  printf("3   (the promise handler: a microtask, as soon as the current code ends)\n");
  return vow_undefined();
}

static vow_value section_6(vow_loop *loop, void *arg) {
  (void)arg;
  heading(6, "Microtasks vs macrotasks",
          "log 1; setTimeout(log 2, 0); Promise.resolve().then(log 3); log 4");
  printf("1\n");
  vow_set_timeout(loop, 0, print_two, NULL);
  vow_promise *ready = vow_resolved(loop, vow_undefined());
  vow_promise_unref(vow_then(ready, print_three, NULL, NULL));
  vow_promise_unref(ready);
  printf("4\n");
  return vow_undefined();
}

/* ---- main ---------------------------------------------------------------------------- */

static const struct {
  const char *title;
  vow_async_fn run;
} sections[] = {
    {"Sequential vs parallel", section_1}, {"Promise.all", section_2},
    {"Promise.allSettled", section_3},     {"Promise.race", section_4},
    {"Async iteration", section_5},        {"Microtasks vs macrotasks", section_6},
};
enum { NSECTIONS = sizeof sections / sizeof sections[0] };

static int run_section(vow_loop *loop, int n) {
  vow_promise_unref(vow_async(loop, sections[n - 1].run, NULL));
  return vow_loop_run(loop);
}

int main(int argc, char **argv) {
  colour = isatty(STDOUT_FILENO);
  if (argc == 2 && strcmp(argv[1], "--list") == 0) {
    for (int i = 0; i < NSECTIONS; i++) printf("%d. %s\n", i + 1, sections[i].title);
    return 0;
  }
  int chosen[NSECTIONS], count = 0;
  for (int i = 1; i < argc; i++) {
    char *end;
    long n = strtol(argv[i], &end, 10);
    if (*end || n < 1 || n > NSECTIONS || count == NSECTIONS) {
      fprintf(stderr, "vow-tour: no section '%s' (sections are 1 to %d; see --list)\n", argv[i],
              NSECTIONS);
      return 2;
    }
    chosen[count++] = (int)n;
  }
  if (count == 0)
    for (int i = 0; i < NSECTIONS; i++) chosen[count++] = i + 1;

  printf("vow: JavaScript's async patterns, in C — the advanced-async lesson, live\n");
  vow_loop *loop;
  int err = vow_loop_new(&loop, NULL);
  for (int i = 0; i < count && err == 0; i++) err = run_section(loop, chosen[i]);
  vow_loop_free(loop);
  if (err) fprintf(stderr, "vow-tour: %s\n", vow_strerror(err));
  return err ? 1 : 0;
}
