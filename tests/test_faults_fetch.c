/*
 * test_faults_fetch.c — allocation failure at every allocation site that a
 * scenario of fetches reaches (src/io/fetch.c and the header lists and
 * buffers of src/io/http.c that it uses).
 *
 * The scenario runs against a raw server made with libuv and the C library's
 * malloc, so that the failing allocator hits only the client: a fetch of a
 * name (curl's resolver has a socket the loop watches) while another transfer
 * is in progress, a GET, a POST with a body and a header, a followed
 * redirect, a status line with a long reason, a 1 MB body read as a stream
 * (the transfer pauses and resumes) and with text(), a body read twice, a timeout and an
 * abort in the middle of a body, an abort before the headers, a rejection
 * with a message longer than errorf's buffer, and a plain GET last. Reads
 * that fail for want of memory are tried again.
 *
 * It runs again and again with the 1st allocation failing, then the 2nd, and
 * so on (FAULT_ONCE), and then with every allocation failing from the 1st
 * on, the 2nd on... (FAULT_FROM: sustained out-of-memory). Every run must
 * end, without a crash, a hang or a leak; and one failure spoils only what
 * it hit (FAULT_ONCE):
 *   - a failure inside the resolving fetch fails neither the transfer beside
 *     it nor the GET after it (curl fails every transfer of a multi whose
 *     socket callback returned -1);
 *   - a failure before the last GET started leaves that GET working;
 *   - a text() or body that could not begin leaves the body to a second try;
 *   - text() never fulfils with an error (when the string cannot be made).
 * Under AddressSanitizer the pooled objects (promises, reactions) are
 * allocations of their own, so that build reaches the most sites.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netdb.h>
#include <netinet/in.h>
#include <unistd.h>
#include <uv.h>

#include "faults.h"
#include "log.h"
#include "vow.h"

/* ---- the raw server ------------------------------------------------------------ */

/* Answers by path, keep-alive, on the test's loop; its handles are
 * unreferenced (they never keep the loop alive) and closed by raw_close. */
typedef struct raw_server {
  uv_tcp_t tcp;
  int port;
  struct raw_conn *conns;
  int open;  /* handles not yet closed (the listener's included) */
} raw_server;

typedef struct raw_conn {
  uv_tcp_t tcp;
  raw_server *srv;
  struct raw_conn *prev, *next;
  char *in;
  size_t len, cap;
} raw_conn;

typedef struct raw_write {
  uv_write_t req;
  char *out;
} raw_write;

enum { BIG = 1 << 20 };

static void conn_closed(uv_handle_t *h) {
  raw_conn *c = h->data;
  raw_server *s = c->srv;
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->open--;
  free(c->in);
  free(c);
}

static void written(uv_write_t *req, int status) {
  (void)status;
  raw_write *w = (raw_write *)req;
  free(w->out);
  free(w);
}

static void send_bytes(raw_conn *c, char *out, size_t len) {
  raw_write *w = malloc(sizeof *w);
  w->out = out;
  uv_buf_t b = uv_buf_init(out, (unsigned)len);
  uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, written);
}

static void answer(raw_conn *c, const char *status, const char *head, const char *body, size_t body_len,
                   size_t content_length) {
  size_t cap = strlen(status) + strlen(head) + body_len + 64;
  char *out = malloc(cap);
  int n = snprintf(out, cap, "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\n\r\n", status, head, content_length);
  memcpy(out + n, body, body_len);
  send_bytes(c, out, (size_t)n + body_len);
}

/* One whole request (head and body) at c->in: answers it by its path. */
static void serve(raw_conn *c, const char *path, const char *body, size_t body_len) {
  static char big[BIG];
  if (strcmp(path, "/hello") == 0) answer(c, "200 OK", "", "hello", 5, 5);
  else if (strcmp(path, "/echo") == 0) answer(c, "200 OK", "X-Echo: yes\r\n", body, body_len, body_len);
  else if (strcmp(path, "/redirect") == 0) answer(c, "302 Found", "Location: /hello\r\n", "", 0, 0);
  else if (strcmp(path, "/reason") == 0)
    answer(c, "200 A Reason Phrase Longer Than The Small Buffer", "", "ok", 2, 2);
  else if (strcmp(path, "/big") == 0) {
    memset(big, 'b', sizeof big);
    answer(c, "200 OK", "", big, sizeof big, sizeof big);
  } else if (strcmp(path, "/stall") == 0) answer(c, "200 OK", "", "", 0, 1000); /* the body never comes */
  else answer(c, "404 Not Found", "", "no", 2, 2);
}

static size_t content_length(const char *head, size_t len) {
  for (size_t i = 0; i + 16 < len; i++)
    if (strncasecmp(head + i, "\r\ncontent-length:", 17) == 0) return strtoul(head + i + 17, NULL, 10);
  return 0;
}

static void on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *b) {
  (void)b;
  raw_conn *c = stream->data;
  if (n < 0) {
    if (!uv_is_closing((uv_handle_t *)stream)) uv_close((uv_handle_t *)stream, conn_closed);
    return;
  }
  c->len += (size_t)n;
  for (;;) {
    char *end = NULL;
    for (size_t i = 0; i + 4 <= c->len && !end; i++)
      if (memcmp(c->in + i, "\r\n\r\n", 4) == 0) end = c->in + i + 4;
    if (!end) return;
    size_t head = (size_t)(end - c->in), body = content_length(c->in, head);
    if (c->len < head + body) return;
    char path[1024] = "";
    sscanf(c->in, "%*s %1023s", path);
    serve(c, path, end, body);
    memmove(c->in, c->in + head + body, c->len - head - body);
    c->len -= head + body;
  }
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  (void)hint;
  raw_conn *c = h->data;
  if (c->cap - c->len < 64 * 1024) {
    c->cap = c->cap * 2 + 64 * 1024;
    c->in = realloc(c->in, c->cap);
  }
  *b = uv_buf_init(c->in + c->len, (unsigned)(c->cap - c->len));
}

static void on_connection(uv_stream_t *listener, int status) {
  raw_server *s = listener->data;
  if (status < 0) return;
  raw_conn *c = calloc(1, sizeof *c);
  c->srv = s;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->open++;
  uv_tcp_init(listener->loop, &c->tcp);
  c->tcp.data = c;
  uv_unref((uv_handle_t *)&c->tcp);
  if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
    return;
  }
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void listener_closed(uv_handle_t *h) { ((raw_server *)h->data)->open--; }

static void raw_listen(raw_server *s, uv_loop_t *uv) {
  memset(s, 0, sizeof *s);
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  cr_assert_eq(uv_tcp_init(uv, &s->tcp), 0);
  s->tcp.data = s;
  s->open = 1;
  cr_assert_eq(uv_tcp_bind(&s->tcp, (const struct sockaddr *)&a, 0), 0);
  cr_assert_eq(uv_listen((uv_stream_t *)&s->tcp, 128, on_connection), 0);
  uv_unref((uv_handle_t *)&s->tcp);
  struct sockaddr_storage b;
  int len = sizeof b;
  uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&b, &len);
  s->port = ntohs(((struct sockaddr_in *)&b)->sin_port);
}

static void raw_close(raw_server *s) {
  uv_close((uv_handle_t *)&s->tcp, listener_closed);
  for (raw_conn *c = s->conns; c; c = c->next)
    if (!uv_is_closing((uv_handle_t *)&c->tcp)) uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

/* ---- the scenario ------------------------------------------------------------------ */

typedef struct world {
  raw_server srv;
  long window[2];   /* allocations made before and after the resolving fetch */
  int after_ok;     /* the GET after it fulfilled, with "hello" */
  int bystander_ok; /* the transfer beside it ended by its abort, not otherwise */
  long last_start;  /* allocations made when the last GET started */
  int last_ok;      /* it fulfilled, with "hello" */
  int reached_last;
} world;

static const char *url_of(world *w, const char *path) {
  static char buf[4][1024];
  static int i;
  char *b = buf[i++ % 4];
  snprintf(b, sizeof buf[0], "http://127.0.0.1:%d%s", w->srv.port, path);
  return b;
}

/* await fetch(u, o): the response value, or undefined (the rejection dropped). */
static vow_value try_fetch(vow_loop *l, const char *u, const vow_fetch_options *o) {
  vow_value v;
  if (vow_await(vow_fetch(l, u, o), &v) == 0 && vow_as_response(v)) return v;
  vow_unref(v);
  return vow_undefined();
}

/* A read that failed for want of memory leaves the body to the next one: a
 * second try must not be refused as "already read". */
static int reread_refused;
/* text() fulfils with a STRING or rejects: never fulfils with an error. */
static int text_not_string;

/* await res.text(); 1 when it gave want. Releases res. */
static int read_text(vow_value res, const char *want) {
  vow_response *r = vow_as_response(res);
  int ok = 0;
  if (r) {
    vow_promise *p = vow_response_text(r);
    int retried = !p;
    if (!p) p = vow_response_text(r);
    vow_value t;
    int rc = vow_await(p, &t);
    ok = rc == 0 && want && strcmp(vow_str(t), want) == 0;
    if (rc == 0 && t.kind != VOW_STRING) text_not_string++;
    if (retried && vow_error_code(t) == VOW_EINVAL) reread_refused++;
    vow_unref(t);
  }
  vow_unref(res);
  return ok;
}

/* for await (const chunk of res.body): the bytes it gave. Releases res. */
static size_t read_stream(vow_value res) {
  vow_response *r = vow_as_response(res);
  size_t n = 0;
  vow_asyncgen *g = r ? vow_response_body(r) : NULL;
  int retried = r && !g;
  if (retried) g = vow_response_body(r);
  vow_for_await it;
  if (g && vow_for_await_gen(&it, g) == 0) {
    VOW_FOR_AWAIT(&it, chunk) n += vow_str_len(chunk);
    vow_value e = vow_undefined();
    if (vow_for_await_end(&it, &e) != 0 && retried && vow_error_code(e) == VOW_EINVAL) reread_refused++;
    vow_unref(e);
  }
  vow_unref(res);
  return n;
}

static const char *const x_test[] = {"X-Test: 1", NULL};

/* A name of this machine that resolves to 127.0.0.1 through the system's
 * resolver (/etc/hosts): its host name most often. curl answers "localhost"
 * itself, without its resolver, so that is only the fallback. */
static char local_name[256] = "localhost";
static void find_local_name(void) {
  char name[256];
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
  if (gethostname(name, sizeof name) != 0 || getaddrinfo(name, NULL, &hints, &res) != 0) return;
  for (struct addrinfo *a = res; a; a = a->ai_next)
    if (ntohl(((struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr) == INADDR_LOOPBACK) {
      snprintf(local_name, sizeof local_name, "%s", name);
      break;
    }
  freeaddrinfo(res);
}

static vow_value scenario(vow_loop *l, void *arg) {
  world *w = arg;
  /* A transfer in progress (its body never comes) while a name is resolved:
   * curl's resolver thread has a socket of its own, which the loop watches,
   * with a record that may fail to be made; then a GET while that transfer
   * still runs. A failure inside the resolving fetch may fail it, but neither
   * the transfer beside it nor the GET after it. */
  vow_abort_signal *s0 = vow_abort_signal_new(l);
  vow_value why = vow_string("bystander");
  vow_fetch_options o0 = {.signal = s0};
  vow_value bystander = s0 && why.kind == VOW_STRING ? try_fetch(l, url_of(w, "/stall"), &o0) : vow_undefined();
  vow_promise *bystander_text = vow_as_response(bystander) ? vow_response_text(vow_as_response(bystander)) : NULL;
  char by_name[320];
  snprintf(by_name, sizeof by_name, "http://%s:%d/hello", local_name, w->srv.port);
  w->window[0] = fault_allocations;
  read_text(try_fetch(l, by_name, NULL), "hello");
  w->window[1] = fault_allocations;
  w->after_ok = read_text(try_fetch(l, url_of(w, "/hello"), NULL), "hello");
  if (bystander_text) {
    vow_abort(s0, vow_ref(why));
    vow_value t;
    w->bystander_ok = vow_await(bystander_text, &t) != 0 && t.kind == VOW_STRING && strcmp(vow_str(t), "bystander") == 0;
    vow_unref(t);
  }
  vow_unref(bystander);
  vow_unref(why);
  vow_abort_signal_unref(s0);
  vow_fetch_options post = {.method = "POST", .headers = x_test, .body = "payload", .body_len = 7};
  read_text(try_fetch(l, url_of(w, "/echo"), &post), "payload");
  read_text(try_fetch(l, url_of(w, "/redirect"), NULL), "hello");
  read_text(try_fetch(l, url_of(w, "/reason"), NULL), "ok");
  read_stream(try_fetch(l, url_of(w, "/big"), NULL));
  read_text(try_fetch(l, url_of(w, "/big"), NULL), NULL); /* text() waits for the end */
  /* a body read twice: the second read is refused */
  vow_value res = try_fetch(l, url_of(w, "/hello"), NULL);
  if (vow_as_response(res)) {
    vow_value t;
    vow_await(vow_response_text(vow_as_response(res)), &t), vow_unref(t);
    vow_await(vow_response_text(vow_as_response(res)), &t), vow_unref(t);
    vow_asyncgen_unref(vow_response_body(vow_as_response(res)));
  }
  vow_unref(res);
  /* a timeout in the middle of the body (or before the headers: either) */
  vow_fetch_options quick = {.timeout_ms = 5};
  read_text(try_fetch(l, url_of(w, "/stall"), &quick), NULL);
  /* an abort in the middle of the body, and one before the headers (without
   * a signal, for want of memory, /stall would never end: skipped) */
  vow_abort_signal *s = vow_abort_signal_new(l);
  vow_fetch_options abortable = {.signal = s};
  res = s ? try_fetch(l, url_of(w, "/stall"), &abortable) : vow_undefined();
  if (vow_as_response(res)) {
    vow_promise *text = vow_response_text(vow_as_response(res));
    vow_abort(s, vow_undefined());
    vow_value t;
    vow_await(text, &t), vow_unref(t);
  }
  vow_unref(res);
  vow_abort_signal_unref(s);
  s = vow_abort_signal_new(l);
  abortable.signal = s;
  if (s) {
    vow_promise *early = vow_fetch(l, url_of(w, "/stall"), &abortable);
    vow_abort(s, vow_undefined());
    vow_await(early, &res), vow_unref(res);
    vow_abort_signal_unref(s);
  }
  /* a rejection whose message is longer than errorf's buffer */
  char long_path[700];
  memset(long_path, 'p', sizeof long_path - 1);
  long_path[0] = '/';
  long_path[sizeof long_path - 1] = '\0';
  vow_fetch_options strict = {.reject_http_errors = 1};
  read_text(try_fetch(l, url_of(w, long_path), &strict), NULL);
  /* and a plain GET, last */
  w->reached_last = 1;
  w->last_start = fault_allocations;
  w->last_ok = read_text(try_fetch(l, url_of(w, "/hello"), NULL), "hello");
  return vow_undefined();
}

static void quiet(vow_loop *l, vow_promise *p, vow_value r, void *d) {
  (void)l, (void)p, (void)r, (void)d;
}

static int run_once(long armed, fault_mode how) {
  fault_arm(armed, how);
  long n = armed; /* the allocation that failed first: known after the run when by stack */
  vow_loop *loop;
  world w = {.last_start = -1, .window = {-1, -1}};
  reread_refused = text_not_string = 0;
  if (vow_loop_new(&loop, NULL) == 0) {
    vow_on_unhandled_rejection(loop, quiet, NULL);
    raw_listen(&w.srv, vow_loop_uv(loop));
    vow_promise_unref(vow_async(loop, scenario, &w));
    /* A promise job or rejection record that cannot be had stops the whole
     * run (VOW_ENOMEM): the checks below are for failures that do not. */
    int stopped = vow_loop_run(loop) != 0;
    if (armed < 0) n = fault_hit_at; /* 0: the stack was not reached this time */
    raw_close(&w.srv);
    vow_loop_run(loop); /* the server's handles close */
    cr_assert_eq(w.srv.open, 0, "the raw server closed");
    if (n == 0) cr_assert(w.last_ok && w.after_ok && w.bystander_ok, "the scenario works without failures");
    cr_assert_eq(text_not_string, 0, "after a failure at allocation %ld, text() fulfilled with an error", n);
    if (how == FAULT_ONCE && !stopped)
      cr_assert_eq(reread_refused, 0, "after a failure at allocation %ld, a body was lost to a read that never began", n);
    if (how == FAULT_ONCE && !stopped && n > w.window[0] && n <= w.window[1]) {
      cr_assert(w.after_ok, "a failure at allocation %ld, in a fetch, spoiled the next one", n);
      cr_assert(w.bystander_ok, "a failure at allocation %ld, in a fetch, failed the transfer beside it", n);
    }
    if (how == FAULT_ONCE && !stopped && w.reached_last && n <= w.last_start)
      cr_assert(w.last_ok, "a failure at allocation %ld (of %ld before the last GET) spoiled the last GET", n,
                w.last_start);
    cr_assert_eq(vow_loop_free(loop), 0, "the loop frees after a failure at allocation %ld", n);
  }
  fault_disarm();
  cr_assert_eq(vow__pool_leaked, 0, "pooled objects leaked after a failure at allocation %ld", n);
  return 0;
}

TestSuite(faults_fetch, .timeout = 120);

Test(faults_fetch, every_allocation_of_a_fetch_scenario_can_fail) {
  find_local_name();
  run_once(0, FAULT_ONCE);
  long total = fault_allocations;
  cr_assert_gt(total, 60, "the scenario makes allocations (%ld)", total);
  long failed = fault_every_site(run_once, FAULT_ONCE);
  cr_log_info("fetch scenario: %ld allocations, each failed in turn (%ld runs)", total, failed);
  cr_assert_geq(failed + 1, total, "every allocation was failed once (%ld of %ld)", failed, total);
  TEST_LEAK_CHECK();
}

Test(faults_fetch, sustained_out_of_memory_from_every_point_of_a_fetch_scenario) {
  find_local_name();
  run_once(0, FAULT_ONCE);
  long total = fault_allocations;
  long failed = fault_every_site(run_once, FAULT_FROM);
  cr_log_info("fetch scenario: out of memory from each of %ld points (%ld runs)", total, failed);
  cr_assert_geq(failed + 1, total, "memory ran out at every point (%ld of %ld)", failed, total);
  TEST_LEAK_CHECK();
}
/* ---- timeout_ms is never lost ---------------------------------------------------- */

/* Not a fault: a bug this scenario found. Called for a timeout, curl (7.x)
 * runs the timers due within 3 ms (its TIMEOUT_INACCURACY), but checks a
 * transfer's CURLOPT_TIMEOUT_MS against the exact time, and drops the
 * deadline of one that is not yet late: a fetch of a body that never comes then hung, about
 * once in a few hundred here. Between keep-alive fetches of other bodies:
 *   for (i = 0; i < 300; i++) {
 *     await (await fetch('/hello')).text(); await (await fetch('/big')).text()
 *     try { await (await fetch('/stall', {signal: AbortSignal.timeout(5)})).text() }
 *     catch (e) { e.name === 'TimeoutError' }   // every time
 *   } */
static int timeouts_seen;
static vow_value many_timeouts(vow_loop *l, void *arg) {
  world *w = arg;
  vow_fetch_options quick = {.timeout_ms = 5};
  for (int i = 0; i < 300; i++) {
    cr_assert(read_text(try_fetch(l, url_of(w, "/hello"), NULL), "hello"));
    read_text(try_fetch(l, url_of(w, "/big"), NULL), NULL);
    vow_value v, t;
    int code;
    if (vow_await(vow_fetch(l, url_of(w, "/stall"), &quick), &v) != 0) {
      code = vow_error_code(v);
    } else {
      cr_assert_neq(vow_await(vow_response_text(vow_as_response(v)), &t), 0, "the body never ends");
      code = vow_error_code(t);
      vow_unref(t);
    }
    vow_unref(v);
    cr_assert_eq(code, VOW_ETIMEDOUT, "fetch %d: %s", i, vow_err_name(code));
    timeouts_seen++;
  }
  return vow_undefined();
}

Test(faults_fetch, timeouts_are_never_lost, .timeout = 60) {
  vow_loop *loop;
  world w = {.last_start = -1};
  cr_assert_eq(vow_loop_new(&loop, NULL), 0);
  raw_listen(&w.srv, vow_loop_uv(loop));
  vow_promise *p = vow_async(loop, many_timeouts, &w);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED);
  vow_promise_unref(p);
  cr_assert_eq(timeouts_seen, 300);
  raw_close(&w.srv);
  vow_loop_run(loop);
  cr_assert_eq(vow_loop_free(loop), 0);
  TEST_LEAK_CHECK();
}
