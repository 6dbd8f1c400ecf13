/*
 * vow-tour — the advanced-async lesson, live, in C, against real sockets.
 *
 *   vow-tour                 every section, in order
 *   vow-tour 3 6             only sections 3 and 6
 *   vow-tour --list          the section titles
 *   vow-tour --trace FILE    also record the whole run as a Chrome trace
 *   vow-tour --svg FILE      where to draw section 1's timeline (timeline.svg)
 *
 * The tour starts its own HTTP server on 127.0.0.1 (an ephemeral port) in the
 * same process and loop; every request below is a real fetch over a real
 * socket to it. Nothing leaves the machine, nothing needs configuring.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <vow.h>

#include "timeline.h"

/* ---- output ---------------------------------------------------------------------- */

static int colour;
static uint64_t t0;

static const char *paint(const char *code) { return colour ? code : ""; }

static void heading(int n, const char *title, const char *what) {
  printf("\n%s%d. %s%s\n", paint("\033[1;36m"), n, title, paint("\033[0m"));
  printf("   %s\n", what);
}

/* One result line: time since the step began, a label, a text. */
static void result(vow_loop *loop, const char *label, const char *text) {
  printf("   %s%5llu ms%s  %s%s\n", paint("\033[2m"),
         (unsigned long long)(vow_loop_now(loop) - t0), paint("\033[0m"), label, text);
}

static void begin_step(vow_loop *loop) { t0 = vow_loop_now(loop); }

/* An error's message without the "fetch http://127.0.0.1:PORT" in front:
 * "/optional-data: HTTP 404 Not Found" fits a line of 80 columns. */
static const char *short_error(vow_value err) {
  const char *m = vow_error_message(err);
  const char *p = strstr(m, "127.0.0.1:");
  if (!p) return m;
  p += strlen("127.0.0.1:");
  while (*p >= '0' && *p <= '9') p++;
  return p;
}

/* ---- the server: the lesson's endpoints ---------------------------------------------- */

static int port;
static int server_saw_cancel; /* set when /slow's client went away mid-request */

typedef struct route {
  const char *path;
  uint64_t delay_ms;
  int status;
  const char *body;
} route;

static const route routes[] = {
    {"/user", 200, 200, "Ada"},
    {"/posts", 200, 200, "2 posts"},
    {"/notifications", 60, 200, "1 new"},
    {"/notifications-down", 60, 503, "notifications are down"},
    {"/feed", 180, 200, "news"},
    {"/critical-data", 80, 200, "critical numbers"},
    {"/optional-data", 40, 404, "not here"},
    {"/fast", 30, 200, "the fast data"},
    {"/url1", 100, 200, "page one"},
    {"/url2", 100, 200, "page two"},
    {"/url3", 100, 200, "page three"},
};

static const route *find_route(const char *target) {
  for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
    if (strcmp(routes[i].path, target) == 0) return &routes[i];
  return NULL;
}

/* /slow answers after 2 s — unless its client goes away first, which the
 * request's signal reports: that is how the tour shows a cancelled fetch
 * really stopped. */
static vow_value serve_slow(vow_loop *loop, vow_request *req) {
  vow_abort_signal *gone = vow_request_signal(req);
  vow_value items[] = {vow_promise_value(vow_delay(loop, 2000, vow_undefined())),
                       vow_promise_value(vow_abort_signal_promise(gone))};
  vow_value outcome;
  if (vow_await(vow_race(loop, items, 2), &outcome) != 0) {
    server_saw_cancel = 1;
    vow_unref(outcome);
    return vow_throw(vow_error(VOW_EABORTED, "client went away"));
  }
  return vow_http_response(200, NULL, vow_string("slow data"));
}

/* /stream sends five chunks, 50 ms apart, with chunked encoding. */
static vow_value stream_chunks(vow_loop *loop, vow_asyncgen *gen, void *arg) {
  (void)gen, (void)arg;
  for (int i = 1; i <= 5; i++) {
    vow_await(vow_delay(loop, 50, vow_undefined()), NULL);
    if (vow_yield(vow_stringf("chunk %d of 5\n", i), NULL) != 0) break;
  }
  return vow_undefined();
}

static vow_value handle(vow_loop *loop, vow_request *req, void *data) {
  (void)data;
  const char *target = vow_request_target(req);
  if (strcmp(target, "/slow") == 0) return serve_slow(loop, req);
  if (strcmp(target, "/stream") == 0)
    return vow_http_response_stream(200, NULL, vow_asyncgen_new(loop, stream_chunks, NULL));
  const route *r = find_route(target);
  if (!r) return vow_http_response(404, NULL, vow_string("no such page"));
  vow_await(vow_delay(loop, r->delay_ms, vow_undefined()), NULL);
  return vow_http_response(r->status, NULL, vow_string(r->body));
}

/* ---- the client side: fetch, the way the lesson writes it --------------------------------- */

static char *url_of(const char *path) {
  static char url[128];
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
  return url;
}

/* fetch(path).then(r => r.text()), rejecting on HTTP errors as the lesson's
 * examples assume. An async function: its promise is of the body. */
static vow_value get_text(vow_loop *loop, void *path) {
  vow_fetch_options o = {.reject_http_errors = 1};
  vow_value response, text;
  if (vow_await(vow_fetch(loop, url_of(path), &o), &response) != 0) return vow_throw(response);
  int rc = vow_await(vow_response_text(vow_as_response(response)), &text);
  vow_unref(response);
  return rc == 0 ? text : vow_throw(text);
}

static vow_promise *fetch_text(vow_loop *loop, const char *path) {
  vow_async_options o = {.name = path};
  return vow_async_ex(loop, get_text, (void *)(uintptr_t)path, &o);
}

/* ---- 1. sequential vs parallel -------------------------------------------------------- */

static vow_value section_1(vow_loop *loop, void *arg) {
  (void)arg;
  heading(1, "Sequential vs parallel", "GET /user and /posts (200 ms each): one after the other, then together");
  vow_value user, posts;
  begin_step(loop);
  vow_await(fetch_text(loop, "/user"), &user);
  vow_await(fetch_text(loop, "/posts"), &posts);
  result(loop, "sequential: ", "both arrived (the times add up)");
  vow_unref(user), vow_unref(posts);

  begin_step(loop);
  vow_promise *u = fetch_text(loop, "/user"), *p = fetch_text(loop, "/posts");
  vow_await(u, &user);
  vow_await(p, &posts);
  result(loop, "parallel:   ", "both arrived (the times overlap)");
  vow_unref(user), vow_unref(posts);
  return vow_undefined();
}

/* ---- 2. all ---------------------------------------------------------------------------- */

static void load_page(vow_loop *loop, const char *notifications) {
  vow_value page;
  char text[200];
  begin_step(loop);
  vow_value reqs[] = {vow_promise_value(fetch_text(loop, "/user")),
                      vow_promise_value(fetch_text(loop, notifications)),
                      vow_promise_value(fetch_text(loop, "/feed"))};
  if (vow_await(vow_all(loop, reqs, 3), &page) == 0) {
    vow_value_format(page, text, sizeof text);
    result(loop, "all fulfilled: ", text);
  } else {
    result(loop, "all rejected: ", short_error(page));
  }
  vow_unref(page);
}

static vow_value section_2(vow_loop *loop, void *arg) {
  (void)arg;
  heading(2, "Promise.all", "user + notifications + feed in parallel; then with notifications down");
  load_page(loop, "/notifications");
  load_page(loop, "/notifications-down");
  return vow_undefined();
}

/* ---- 3. allSettled ------------------------------------------------------------------- */

static vow_value section_3(vow_loop *loop, void *arg) {
  (void)arg;
  heading(3, "Promise.allSettled", "/critical-data succeeds, /optional-data answers 404");
  vow_value results;
  begin_step(loop);
  vow_value reqs[] = {vow_promise_value(fetch_text(loop, "/critical-data")),
                      vow_promise_value(fetch_text(loop, "/optional-data"))};
  vow_await(vow_all_settled(loop, reqs, 2), &results);
  for (size_t i = 0; i < vow_array_len(results); i++) {
    vow_value r = vow_array_get(results, i);
    if (vow_settled_ok(r)) result(loop, "Got data: ", vow_str(vow_settled_value(r)));
    else result(loop, "Failed: ", short_error(vow_settled_value(r)));
  }
  vow_unref(results);
  return vow_undefined();
}

/* ---- 4. race ---------------------------------------------------------------------------- */

static void race_with_timeout(vow_loop *loop, const char *path) {
  vow_abort_signal *signal = vow_abort_signal_new(loop);
  vow_fetch_options o = {.reject_http_errors = 1, .signal = signal};
  vow_value v;
  begin_step(loop);
  int rc = vow_await(vow_timeout(loop, vow_fetch(loop, url_of(path), &o), 300, signal), &v);
  char label[64];
  snprintf(label, sizeof label, "%s: %s", path, rc == 0 ? "the request won (" : "the timeout won: ");
  if (rc == 0) {
    char status[32];
    snprintf(status, sizeof status, "HTTP %d)", vow_response_status(vow_as_response(v)));
    result(loop, label, status);
  } else {
    result(loop, label, short_error(v));
  }
  vow_unref(v);
  vow_abort_signal_unref(signal);
}

static vow_value section_4(vow_loop *loop, void *arg) {
  (void)arg;
  heading(4, "Promise.race", "a 2 s endpoint, then a 30 ms one, each against a 300 ms timeout");
  server_saw_cancel = 0;
  race_with_timeout(loop, "/slow");
  vow_await(vow_delay(loop, 20, vow_undefined()), NULL); /* let the server notice */
  result(loop, "the server: ", server_saw_cancel ? "saw its client go away: the transfer was aborted"
                                                 : "did not see a disconnect (yet)");
  race_with_timeout(loop, "/fast");
  return vow_undefined();
}

/* ---- 5. async iteration ------------------------------------------------------------------ */

static const char *const pages[] = {"/url1", "/url2", "/url3"};

static vow_value log_page(vow_loop *loop, void *path) {
  vow_value text;
  if (vow_await(fetch_text(loop, path), &text) == 0) result(loop, "forEach callback got: ", vow_str(text));
  vow_unref(text);
  return vow_undefined();
}

static vow_value section_5(vow_loop *loop, void *arg) {
  (void)arg;
  heading(5, "Async iteration", "for-await over three URLs; the forEach pitfall; map + all; a stream");
  vow_value text;

  begin_step(loop);
  for (int i = 0; i < 3; i++) { /* for (const url of urls) await fetch(url) */
    vow_await(fetch_text(loop, pages[i]), &text);
    result(loop, "in turn: ", vow_str(text));
    vow_unref(text);
  }

  begin_step(loop);
  vow_promise *started[3];
  for (int i = 0; i < 3; i++) started[i] = vow_async(loop, log_page, (void *)(uintptr_t)pages[i]);
  result(loop, "forEach returned: ", "nothing has arrived yet (nothing awaited)");
  for (int i = 0; i < 3; i++) vow_await(started[i], NULL);

  begin_step(loop);
  vow_value reqs[3];
  for (int i = 0; i < 3; i++) reqs[i] = vow_promise_value(fetch_text(loop, pages[i]));
  vow_value all;
  vow_await(vow_all(loop, reqs, 3), &all);
  char joined[128];
  vow_value_format(all, joined, sizeof joined);
  result(loop, "map + all: ", joined);
  vow_unref(all);

  begin_step(loop);
  vow_value response;
  if (vow_await(vow_fetch(loop, url_of("/stream"), NULL), &response) == 0) {
    vow_for_await it;
    vow_for_await_gen(&it, vow_response_body(vow_as_response(response)));
    VOW_FOR_AWAIT(&it, chunk) {
      char line[64];
      snprintf(line, sizeof line, "%.*s", (int)vow_str_len(chunk) - 1, vow_str(chunk));
      result(loop, "streamed: ", line);
    }
    vow_for_await_end(&it, NULL);
  }
  vow_unref(response);
  return vow_undefined();
}

/* ---- 6. microtasks vs macrotasks ----------------------------------------------------------- */

static void print_two(vow_loop *loop, void *arg) {
  (void)loop, (void)arg;
  printf("   2   the timer: a macrotask, on a later turn of the loop\n");
}
static vow_value print_three(vow_loop *loop, vow_value v, void *ctx) {
  (void)loop, (void)v, (void)ctx;
  printf("   3   the promise handler: a microtask, as soon as the current code ends\n");
  return vow_undefined();
}

static vow_value section_6(vow_loop *loop, void *arg) {
  (void)arg;
  heading(6, "Microtasks vs macrotasks", "log 1; setTimeout(log 2, 0); Promise.resolve().then(log 3); log 4");
  printf("   1\n");
  vow_set_timeout(loop, 0, print_two, NULL);
  vow_promise *ready = vow_resolved(loop, vow_undefined());
  vow_promise_unref(vow_then(ready, print_three, NULL, NULL));
  vow_promise_unref(ready);
  printf("   4\n");
  return vow_undefined();
}

/* ---- main ------------------------------------------------------------------------------------- */

static const struct {
  const char *title;
  vow_async_fn run;
} sections[] = {
    {"Sequential vs parallel", section_1}, {"Promise.all", section_2},
    {"Promise.allSettled", section_3},     {"Promise.race", section_4},
    {"Async iteration", section_5},        {"Microtasks vs macrotasks", section_6},
};
enum { NSECTIONS = sizeof sections / sizeof sections[0] };

typedef struct args {
  int chosen[NSECTIONS];
  int count;
  const char *trace;
  const char *svg;
} args;

static int parse_args(int argc, char **argv, args *a) {
  *a = (args){.svg = "timeline.svg"};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--list") == 0) {
      for (int k = 0; k < NSECTIONS; k++) printf("%d. %s\n", k + 1, sections[k].title);
      exit(0);
    }
    if ((strcmp(argv[i], "--trace") == 0 || strcmp(argv[i], "--svg") == 0) && i + 1 < argc) {
      if (argv[i][2] == 't') a->trace = argv[++i];
      else a->svg = argv[++i];
      continue;
    }
    char *end;
    long n = strtol(argv[i], &end, 10);
    if (*end || n < 1 || n > NSECTIONS || a->count == NSECTIONS) {
      fprintf(stderr, "vow-tour: no section '%s' (sections are 1 to %d; see --list)\n", argv[i],
              NSECTIONS);
      return 2;
    }
    a->chosen[a->count++] = (int)n;
  }
  if (a->count == 0)
    for (int k = 0; k < NSECTIONS; k++) a->chosen[a->count++] = k + 1;
  return 0;
}

typedef struct tour {
  args a;
  vow_server *server;
} tour;

/* Section 1 is traced on its own (unless the whole tour is) and drawn. */
static int run_section(vow_loop *loop, int n, const args *a) {
  char trace_path[64];
  int own_trace = n == 1 && !a->trace && a->svg;
  if (own_trace) {
    snprintf(trace_path, sizeof trace_path, "/tmp/vow-tour-%d.json", (int)getpid());
    vow_trace_start(loop, trace_path);
  }
  vow_value failure;
  int err = vow_await(vow_async(loop, sections[n - 1].run, NULL), &failure);
  if (err) printf("   the section failed: %s\n", vow_error_message(failure));
  vow_unref(failure);
  if (own_trace && vow_trace_stop(loop) == 0) {
    FILE *svg = fopen(a->svg, "w");
    if (svg && vow_timeline_render(trace_path, svg, "vow-tour, section 1: sequential, then parallel") == 0)
      printf("   (the timeline of this section is drawn in %s)\n", a->svg);
    if (svg) fclose(svg);
    unlink(trace_path);
  }
  return err;
}

/* The whole tour is one async function: the sections in turn, then the
 * server's graceful close, after which the loop has nothing left and ends. */
static vow_value run_tour(vow_loop *loop, void *arg) {
  tour *t = arg;
  int failed = 0;
  for (int i = 0; i < t->a.count; i++) failed |= run_section(loop, t->a.chosen[i], &t->a) != 0;
  vow_await(vow_server_close(t->server), NULL);
  return failed ? vow_throw(vow_error(VOW_EINVAL, "a section failed")) : vow_undefined();
}

int main(int argc, char **argv) {
  tour t = {0};
  int rc = parse_args(argc, argv, &t.a);
  if (rc) return rc;
  colour = isatty(STDOUT_FILENO);

  vow_loop *loop;
  int err = vow_loop_new(&loop, NULL);
  if (err) {
    fprintf(stderr, "vow-tour: %s\n", vow_strerror(err));
    return 1;
  }
  if (t.a.trace) vow_trace_start(loop, t.a.trace);
  err = vow_server_listen(loop, NULL, handle, NULL, &t.server);
  vow_promise *done = NULL;
  if (err == 0) {
    port = vow_server_port(t.server);
    printf("vow: JavaScript's async patterns, in C — the advanced-async lesson, live\n");
    printf("(a server for the lesson's endpoints is listening on 127.0.0.1:%d)\n", port);
    done = vow_async(loop, run_tour, &t);
    err = vow_loop_run(loop);
    if (!err && vow_promise_state(done) != VOW_FULFILLED) err = VOW_EINVAL;
    vow_promise_unref(done);
  }
  if (t.a.trace && vow_trace_stop(loop) == 0 && t.a.svg) { /* the whole run, drawn */
    FILE *svg = fopen(t.a.svg, "w");
    if (svg) {
      vow_timeline_render(t.a.trace, svg, "vow-tour");
      fclose(svg);
    }
  }
  vow_loop_free(loop);
  if (err) fprintf(stderr, "vow-tour: %s\n", vow_strerror(err));
  return err ? 1 : 0;
}
