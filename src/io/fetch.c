/*
 * fetch.c — WHATWG fetch on libcurl's multi-socket interface, driven by the
 * loop: curl says which sockets to watch (uv_poll handles) and when to call it
 * back (one uv_timer, or a uv_idle for "at once"); the loop tells curl when a
 * socket is ready or the timer is due. One curl multi per loop, so any number
 * of transfers share one thread and curl's connection cache; a connection's
 * socket keeps its uv_poll_t while curl keeps the connection, and finished
 * transfers leave their easy handles for the next fetches.
 *
 * A transfer and its response are one object, the vow_response. Its stages:
 *
 *   headers   the fetch promise is pending; interim (1xx) and followed (3xx)
 *             responses come and go;
 *   body      the final status line and headers have arrived: the promise has
 *             fulfilled with a POINTER value holding the response; body bytes
 *             are buffered for the reader (text or stream);
 *   over      curl is done with it (finished, failed or stopped): the easy
 *             handle is gone and its connection is cached or closed.
 *
 * Invariants:
 *   - references: one held by the multi while the transfer runs (`easy` set),
 *     one by the POINTER value, one by the body stream's generator (released
 *     by its arg_free); the promises it settles hold none (it holds them);
 *   - nothing here runs user code from inside a curl callback: callbacks only
 *     buffer bytes and settle promises, whose reactions are microtasks that run
 *     at the checkpoint after curl has returned. Stopping a transfer is never
 *     done inside curl (it is not allowed): it is deferred until curl returns;
 *   - backpressure: a body waiting for its reader holds at most HIGH_WATER
 *     bytes (plus one write of curl's); beyond that the transfer is paused and
 *     resumed when the reader has taken what was buffered;
 *   - every libuv callback enters through vow__loop_enter, so microtasks drain
 *     after each, as after any macrotask;
 *   - at loop teardown transfers are stopped and everything released; a
 *     response still referenced by a value outlives the loop as plain memory.
 */
#include <curl/curl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/list.h"
#include "async/async.h"
#include "io/io.h"
#include "promise/promise.h"
#include "promise/value.h"

enum { HIGH_WATER = 256 * 1024 };
#define DEFAULT_MAX_BODY ((size_t)64 << 20)
/* A response's head: 16 KiB as Node's fetch (undici's maxHeaderSize), 2000
 * lines as Node's maxHeadersCount; never more bytes than curl takes (it fails
 * a head beyond 300 KiB as a receive error, which would read as a reset). */
#define DEFAULT_MAX_HEADER_BYTES ((size_t)16 << 10)
#define MAX_HEADER_BYTES ((size_t)256 << 10)
#define DEFAULT_MAX_HEADERS ((size_t)2000)

enum { READER_NONE, READER_TEXT, READER_STREAM };
enum { BODY_OPEN, BODY_DONE, BODY_FAILED };

/* ---- curl_global_init, once per process ---------------------------------------- */

/* The only process-wide state in vow's I/O: curl_global_init is not
 * thread-safe, and loops of several threads may make their first fetch at once. */
static uv_once_t curl_once = UV_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void default_headers_init(void);

static int describe_fetch(vow_loop *loop, vow_promise *p, char *buf, size_t cap);

static void curl_init(void) {
  curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (curl_init_result == CURLE_OK) default_headers_init();
  vow__dump_add_describer(describe_fetch); /* once per process, like this */
}

/* ---- types ------------------------------------------------------------------------ */

typedef struct sock_ctx sock_ctx;

enum { SPARE_EASY_MAX = 64 }; /* idle easy handles a loop keeps for its next fetches */

typedef struct spare_easy {
  CURL *easy;
  int plain;              /* set up for a plain fetch (is_plain), else reset */
} spare_easy;

struct vow__fetch_state {
  vow_loop *loop;
  CURLM *multi;
  uv_timer_t *timer;      /* curl's timeout; heap, freed by its close callback */
  uv_idle_t *soon;        /* curl's 0-ms timeout (see on_curl_timer); heap, likewise */
  uv_timer_t *deadlines;  /* the earliest timeout_ms of a transfer (see on_deadlines); heap,
                           * unreferenced: a running transfer keeps the loop alive itself */
  uint64_t next_deadline; /* when it fires (loop time), 0 if stopped */
  sock_ctx **socks;       /* the sockets we watch for curl, by fd */
  size_t socks_cap;
  spare_easy spare[SPARE_EASY_MAX]; /* easy handles of finished transfers */
  int spares;
  struct curl_slist *plain_headers[2]; /* the request headers of a fetch without any:
                                        * [0] without a body, [1] with one */
  vow_response *all;      /* every response not yet freed */
  size_t active;          /* transfers in the multi */
  int in_curl;            /* inside a call into curl that may call us back */
  int doomed;             /* some transfer waits to be stopped once curl returns */
};

/* A socket curl asked us to watch. A connection's socket (one curl opened
 * through open_socket) keeps its record, and its uv_poll_t, from its opening
 * to its closing (close_socket), across the transfers that reuse the
 * connection; any other socket's record lives from curl's first interest in
 * it to CURL_POLL_REMOVE. */
struct sock_ctx {
  uv_poll_t poll;
  curl_socket_t fd;
  vow__fetch_state *st;
  int events;             /* UV_READABLE|UV_WRITABLE the poll watches, 0 if stopped */
  int wanted;             /* what curl wants; 0: the connection is idle in curl's cache */
  int owned;              /* a connection's socket: close_socket closes the record */
};

struct vow_response {
  uint32_t refs;
  vow_loop *loop;
  vow__fetch_state *st;   /* NULL once the loop's I/O is torn down */
  vow_response *prev, *next;
  CURL *easy;             /* set while the transfer is in the multi */
  int plain;              /* easy is set up as for any plain fetch (is_plain) */
  struct curl_slist *req_headers;
  char *url;              /* the request's, allocated with x (after it) */
  int redirect;
  int reject_http_errors;
  size_t max_body;
  size_t max_header_bytes, max_headers;
  size_t header_bytes, header_count; /* of the response arriving */
  int doomed;             /* to be stopped when curl returns */
  uint64_t deadline;      /* options.timeout_ms as loop time, 0: none */
  int no_socket;          /* a socket's record could not be made (out of memory) */
  uint64_t span;          /* the transfer on the trace's timeline, 0 if untraced */
  char errbuf[CURL_ERROR_SIZE];

  vow_promise *promise;   /* fetch's promise, until it settles */
  vow_abort_signal *signal;
  int64_t listener;
  vow_value error;        /* why the transfer failed, once it has */

  int status;
  int final;              /* the final response's headers are complete */
  int has_location;
  char *status_text;      /* status_small, or heap if longer */
  char *final_url;        /* url (most often: not copied), or heap */
  char status_small[24];
  vow__headers headers;

  vow__buf body;          /* bytes waiting for the reader */
  size_t peak;
  int paused;
  int reader;             /* READER_* */
  int body_state;         /* BODY_* */
  vow_promise *text;      /* text()'s promise while it waits */
  vow_promise *waiter;    /* the stream, waiting for bytes */
};

static void detach(vow_response *x);
static void on_deadlines(uv_timer_t *timer);

/* ---- references -------------------------------------------------------------------- */

static vow_response *x_ref(vow_response *x) {
  x->refs++;
  return x;
}

static void drop_signal(vow_response *x) {
  if (!x->signal) return;
  if (x->listener > 0) vow_abort_signal_off(x->signal, x->listener);
  vow_abort_signal_unref(x->signal);
  x->signal = NULL;
  x->listener = 0;
}

static void x_free(vow_response *x) {
  vow__fetch_state *st = x->st;
  if (st) VOW__LIST_UNLINK(st->all, x);
  drop_signal(x);
  vow_promise_unref(x->promise);
  vow_promise_unref(x->text);
  vow_promise_unref(x->waiter);
  vow_unref(x->error);
  curl_slist_free_all(x->req_headers);
  if (x->status_text != x->status_small) vow__free(x->status_text);
  if (x->final_url != x->url) vow__free(x->final_url);
  vow__headers_clear(&x->headers);
  vow__buf_free(&x->body);
  vow__free(x);
}

static void x_unref(vow_response *x) {
  if (x && --x->refs == 0) x_free(x);
}

/* ---- errors -------------------------------------------------------------------------- */

/* Whether the request went out. If it did, a URL or a protocol curl cannot
 * handle was in the reply (HTTP/0.9, an unknown version, a redirect's
 * Location), which is the server's fault, not the caller's. */
static int request_sent(CURL *easy) {
  long bytes = 0;
  curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &bytes);
  return bytes > 0;
}

/* Which of vow's codes a curl failure is. */
static int error_code(CURL *easy, CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      return UV_EAI_NONAME;
    case CURLE_COULDNT_CONNECT: {
      long os = 0;
      curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &os);
      return os > 0 ? uv_translate_sys_error((int)os) : UV_ECONNREFUSED;
    }
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
      return UV_ECONNRESET;
    case CURLE_OPERATION_TIMEDOUT:
      return VOW_ETIMEDOUT;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_USE_SSL_FAILED:
      return VOW_ETLS;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return request_sent(easy) ? VOW_EPROTO : VOW_EINVAL;
    case CURLE_OUT_OF_MEMORY:
      return VOW_ENOMEM;
#if LIBCURL_VERSION_NUM >= 0x080600
    case CURLE_TOO_LARGE:
      return VOW_ETOOBIG;
#endif
    default:
      return VOW_EPROTO; /* too many redirects, a weird reply, HTTP/2 framing... */
  }
}

/* Records why the transfer is failing (taken); the first reason wins. */
static void set_error(vow_response *x, vow_value reason) {
  if (x->error.kind == VOW_UNDEFINED) x->error = reason;
  else vow_unref(reason);
}

/* The rejection for a curl failure: the code, the URL and curl's words. */
static vow_value curl_error(vow_response *x, CURLcode code) {
  /* curl (before 8.6's CURLE_TOO_LARGE) reports a header line longer than
   * it buffers as out of memory: while a reply's headers arrive, that is
   * what the code means. */
  if (code == CURLE_COULDNT_CONNECT && x->no_socket)
    return vow_errorf(VOW_ENOMEM, "fetch %s: out of memory for a socket", x->url);
  if (code == CURLE_OUT_OF_MEMORY && !x->final && request_sent(x->easy))
    return vow_errorf(VOW_ETOOBIG,
                      "fetch %s: a response header line is longer than %d bytes", x->url,
                      CURL_MAX_HTTP_HEADER);
  int err = error_code(x->easy, code);
  const char *what = curl_easy_strerror(code);
  if (x->errbuf[0] && strcmp(x->errbuf, what) != 0)
    return vow_errorf(err, "fetch %s: %s (%s)", x->url, what, x->errbuf);
  return vow_errorf(err, "fetch %s: %s", x->url, what);
}

/* ---- settling ---------------------------------------------------------------------------- */

static void settle(vow_promise **slot, vow_value v, int reject) {
  vow_promise *p = *slot;
  *slot = NULL;
  if (reject) vow_promise_reject(p, v);
  else vow_promise_resolve(p, v);
  vow_promise_unref(p);
}

/* The stream waits for bytes or the end: let it look again. */
static void wake(vow_response *x) {
  if (x->waiter) settle(&x->waiter, vow_undefined(), 0);
}

/* The transfer failed with reason (taken; the first failure wins): reject
 * whoever waits — the fetch promise before headers, the body's reader after. */
static void fail(vow_response *x, vow_value reason) {
  set_error(x, reason);
  if (x->promise) {
    settle(&x->promise, vow_ref(x->error), 1);
    x->body_state = BODY_FAILED;
    return;
  }
  if (x->body_state != BODY_OPEN) return;
  x->body_state = BODY_FAILED;
  if (x->text) settle(&x->text, vow_ref(x->error), 1);
  wake(x);
}

/* text()'s promise gets the whole body: a STRING, or a rejection when the
 * string cannot be made (never a fulfilment with the error). */
static void settle_text(vow_response *x) {
  vow_value text = vow_string_n(x->body.data ? x->body.data : "", x->body.len);
  settle(&x->text, text, text.kind != VOW_STRING);
  vow__buf_free(&x->body);
}

static void body_done(vow_response *x) {
  if (x->body_state != BODY_OPEN) return;
  x->body_state = BODY_DONE;
  if (x->text) settle_text(x);
  wake(x);
}

/* ---- the response value --------------------------------------------------------------------- */

static void response_value_free(void *ptr) {
  vow_response *x = ptr;
  /* Nobody can read the body any more: stop the transfer and free its connection. */
  if (x->reader == READER_NONE) detach(x);
  x_unref(x);
}

vow_response *vow_as_response(vow_value v) {
  if (v.kind != VOW_POINTER || !v.as.obj) return NULL;
  vow__pointer *p = (vow__pointer *)v.as.obj;
  return p->destroy == response_value_free ? p->ptr : NULL;
}

/* ---- curl's callbacks: headers and body ---------------------------------------------------- */

/* "HTTP/1.1 404 Not Found": a new response begins (an interim or a redirect
 * one may come before the final one). */
static int status_line(vow_response *x, const char *line, size_t len) {
  vow__headers_clear(&x->headers);
  x->header_bytes = x->header_count = 0;
  x->has_location = 0;
  x->status = 0;
  if (x->status_text != x->status_small) vow__free(x->status_text);
  x->status_text = NULL;
  size_t i = 0;
  while (i < len && line[i] != ' ') i++;
  while (i < len && line[i] == ' ') i++;
  for (int d = 0; d < 3 && i < len && line[i] >= '0' && line[i] <= '9'; d++, i++)
    x->status = x->status * 10 + (line[i] - '0');
  while (i < len && line[i] == ' ') i++;
  size_t end = len;
  while (end > i && (line[end - 1] == '\r' || line[end - 1] == '\n' || line[end - 1] == ' ')) end--;
  x->status_text =
      end - i < sizeof x->status_small ? x->status_small : vow__malloc(end - i + 1);
  if (!x->status_text) return VOW_ENOMEM;
  memcpy(x->status_text, line + i, end - i);
  x->status_text[end - i] = '\0';
  return 0;
}

static int is_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* The blank line after a response's headers. Returns 0 to go on, or sets
 * x->error and returns -1 to stop the transfer. */
static int headers_end(vow_response *x) {
  if (x->status >= 100 && x->status < 200) return 0; /* interim: the real one follows */
  if (x->redirect == VOW_REDIRECT_FOLLOW && x->status >= 300 && x->status < 400 && x->has_location)
    return 0; /* curl follows it */
  if (x->redirect == VOW_REDIRECT_ERROR && is_redirect(x->status)) {
    set_error(x, vow_errorf(VOW_EPROTO, "fetch %s: redirect (%d) while redirect mode is \"error\"",
                            x->url, x->status));
    return -1;
  }
  x->final = 1;
  char *eff = NULL;
  curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &eff);
  x->final_url = !eff || strcmp(eff, x->url) == 0 ? x->url : vow__strdup(eff);
  if (!x->final_url) {
    set_error(x, vow_error_nomem());
    return -1;
  }
  if (x->reject_http_errors && !vow_response_ok(x)) {
    set_error(x, vow_errorf(VOW_EHTTP,
                            "fetch %s: HTTP %d %s", x->final_url, x->status, x->status_text));
    return -1;
  }
  vow_value v = vow_pointer(x_ref(x), response_value_free);
  if (v.kind != VOW_POINTER) { /* out of memory: the destructor already ran */
    set_error(x, v);
    return -1;
  }
  x->body_state = BODY_OPEN;
  settle(&x->promise, v, 0);
  return 0;
}

/* Counts a line of the response's head against the limits (a header line
 * if header). Returns 0, or sets x->error and returns -1. */
static int head_limits(vow_response *x, size_t len, int header) {
  x->header_bytes += len;
  if (x->header_bytes > x->max_header_bytes) {
    set_error(x, vow_errorf(VOW_ETOOBIG, "fetch %s: the response headers are larger than %zu bytes",
                            x->url, x->max_header_bytes));
    return -1;
  }
  if (header && ++x->header_count > x->max_headers) {
    set_error(x, vow_errorf(VOW_ETOOBIG, "fetch %s: the response has more than %zu headers", x->url,
                            x->max_headers));
    return -1;
  }
  return 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *userp) {
  vow_response *x = userp;
  size_t len = size * n;
  if (x->final) return len; /* trailers */
  if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
    if (status_line(x, data, len) != 0) {
      set_error(x, vow_error_nomem());
      return 0;
    }
    return head_limits(x, len, 0) == 0 ? len : 0;
  }
  if (len == 0 || data[0] == '\r' || data[0] == '\n') return headers_end(x) == 0 ? len : 0;
  const char *colon = memchr(data, ':', len);
  if (head_limits(x, len, colon && colon != data) != 0) return 0;
  if (!colon || colon == data) return len; /* not a header: ignored, as curl does */
  size_t name_len = (size_t)(colon - data);
  if (vow__headers_add(&x->headers, data, name_len, colon + 1, len - name_len - 1, 1) != 0) {
    set_error(x, vow_error_nomem());
    return 0;
  }
  if (name_len == 8 && strncasecmp(data, "location", 8) == 0) x->has_location = 1;
  return len;
}

static size_t on_write(char *data, size_t size, size_t n, void *userp) {
  vow_response *x = userp;
  size_t len = size * n;
  if (!x->final) return len; /* the body of an interim or redirect response */
  if (x->reader == READER_TEXT && x->body.len + len > x->max_body) {
    set_error(x, vow_errorf(VOW_ETOOBIG, "fetch %s: the body is larger than %zu bytes", x->url,
                            x->max_body));
    return 0;
  }
  if (x->reader != READER_TEXT && x->body.len && x->body.len + len > HIGH_WATER) {
    x->paused = 1; /* curl keeps these bytes and hands them over again on resume */
    return CURL_WRITEFUNC_PAUSE;
  }
  if (vow__buf_append(&x->body, data, len) != 0) {
    set_error(x, vow_error_nomem());
    return 0;
  }
  if (x->body.len > x->peak) x->peak = x->body.len;
  wake(x);
  return len;
}

/* ---- stopping and finishing transfers ----------------------------------------------------------- */

/* An easy handle out of the multi: kept for a next fetch if its transfer ran
 * to its end (curl_easy_init costs more than reusing), else freed. A plain
 * fetch's handle keeps its options but no pointer to x; any other's is reset. */
static void easy_release(vow__fetch_state *st, vow_response *x, int finished) {
  CURL *e = x->easy;
  if (!finished || st->spares == SPARE_EASY_MAX) {
    curl_easy_cleanup(e);
    return;
  }
  if (x->plain) {
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)NULL);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, (char *)NULL);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)NULL);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)NULL);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, (void *)NULL);
  } else {
    curl_easy_reset(e);
  }
  st->spare[st->spares++] = (spare_easy){e, x->plain};
}

/* Takes the transfer out of the multi (closing its connection if it was not
 * finished) and drops the multi's reference. Inside curl it is deferred. */
static void detach_ex(vow_response *x, int finished) {
  vow__fetch_state *st = x->st;
  if (!x->easy || !st) return;
  if (st->in_curl) {
    x->doomed = 1;
    st->doomed = 1;
    return;
  }
  curl_multi_remove_handle(st->multi, x->easy);
  easy_release(st, x, finished && !x->paused);
  x->easy = NULL;
  x->paused = 0;
  st->active--;
  if (x->span) vow__trace_span_end(x->loop, x->span); /* the transfer is over */
  x->span = 0;
  drop_signal(x);
  x_unref(x);
}

static void detach(vow_response *x) {
  detach_ex(x, 0);
}

static void detach_doomed(vow__fetch_state *st) {
  if (!st->doomed || st->in_curl) return;
  st->doomed = 0;
  for (vow_response *x = st->all, *next; x; x = next) {
    x_ref(x);
    if (x->doomed) {
      x->doomed = 0;
      detach(x);
    }
    next = x->next;
    x_unref(x);
  }
}

/* curl is done with x, with code. */
static void finish(vow_response *x, CURLcode code) {
  x_ref(x);
  vow_value reason = vow_undefined();
  if (code != CURLE_OK) /* our own reason (abort, limits) comes first; curl_error needs the handle */
    reason = x->error.kind != VOW_UNDEFINED ? vow_ref(x->error) : curl_error(x, code);
  else if (!x->final)
    reason = vow_errorf(VOW_EPROTO, "fetch %s: the reply ended without a final response", x->url);
  detach_ex(x, 1);
  if (reason.kind != VOW_UNDEFINED) fail(x, reason);
  else body_done(x);
  x_unref(x);
}

static void collect_done(vow__fetch_state *st) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(st->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    char *priv = NULL;
    CURLcode code = m->data.result; /* m is gone once the handle is removed */
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
    if (priv) finish((vow_response *)priv, code);
  }
}

/* Lets curl act on fd (or on its timeout) and handles what finished. */
static void drive(vow__fetch_state *st, curl_socket_t fd, int flags) {
  int running;
  st->in_curl++;
  curl_multi_socket_action(st->multi, fd, flags, &running);
  st->in_curl--;
  collect_done(st);
  detach_doomed(st);
}

/* ---- the loop's side of multi-socket: polls, a timer and an idle ---------------------------------- */

typedef struct poll_event {
  vow__fetch_state *st;
  curl_socket_t fd;
  int flags;
} poll_event;

static void poll_task(vow_loop *loop, void *arg) {
  (void)loop;
  poll_event *ev = arg;
  drive(ev->st, ev->fd, ev->flags);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  sock_ctx *s = handle->data;
  if (status < 0) s->events = 0; /* libuv stopped the poll */
  if (!s->wanted) {
    /* An idle connection's socket, still watched (see sock_want): something
     * happened, most likely the server closed it. Stop watching; curl will
     * find out when it looks at the connection again. */
    uv_poll_stop(&s->poll);
    s->events = 0;
    return;
  }
  /* On an error (libuv reports POLLERR — a reset, say — as a status, with no
   * events) curl is told the error and also that what it waits for is ready,
   * as poll() itself reports POLLIN/POLLOUT with POLLERR: curl then reads or
   * writes, meets the error there, and on a connection it reused retries the
   * request on a new one, as curl's tool does. Given the error bit alone it
   * fails the transfer ("select/poll returned error"). */
  int flags = status < 0 ? CURL_CSELECT_ERR : 0;
  if (status < 0) events = s->wanted;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  poll_event ev = {s->st, s->fd, flags};
  vow__loop_enter(s->st->loop, poll_task, &ev);
}

static void timeout_task(vow_loop *loop, void *st) {
  (void)loop;
  drive(st, CURL_SOCKET_TIMEOUT, 0);
}

static void on_timeout(uv_timer_t *timer) {
  vow__fetch_state *st = timer->data;
  vow__loop_enter(st->loop, timeout_task, st);
}

static void on_soon(uv_idle_t *idle) {
  vow__fetch_state *st = idle->data;
  uv_idle_stop(idle);
  vow__loop_enter(st->loop, timeout_task, st);
}

static void free_handle(uv_handle_t *h) {
  vow__free(h); /* the handle is the first member of what was allocated */
}

static sock_ctx *sock_find(vow__fetch_state *st, curl_socket_t fd) {
  return fd >= 0 && (size_t)fd < st->socks_cap ? st->socks[fd] : NULL;
}

static void sock_close(vow__fetch_state *st, sock_ctx *s) {
  st->socks[s->fd] = NULL;
  uv_close((uv_handle_t *)&s->poll, free_handle); /* before the fd is closed or reused */
}

/* A record for fd, which has none. */
static sock_ctx *sock_open(vow__fetch_state *st, curl_socket_t fd) {
  if (fd < 0) return NULL;
  if ((size_t)fd >= st->socks_cap) {
    size_t cap = st->socks_cap ? st->socks_cap : 64;
    while (cap <= (size_t)fd) cap *= 2;
    sock_ctx **socks = vow__realloc(st->socks, cap * sizeof *socks);
    if (!socks) return NULL;
    memset(socks + st->socks_cap, 0, (cap - st->socks_cap) * sizeof *socks);
    st->socks = socks;
    st->socks_cap = cap;
  }
  sock_ctx *s = vow__calloc(1, sizeof *s);
  if (!s) return NULL;
  if (uv_poll_init_socket(&st->loop->uv, &s->poll, fd) != 0) {
    vow__free(s);
    return NULL;
  }
  s->poll.data = s;
  s->fd = fd;
  s->st = st;
  st->socks[fd] = s;
  return s;
}

/* CURLOPT_OPENSOCKETFUNCTION: a connection's socket. Its record is made now
 * and kept until close_socket, so that the transfers reusing the connection
 * find its poll already set up. */
static curl_socket_t open_socket(void *userp, curlsocktype purpose, struct curl_sockaddr *addr) {
  (void)purpose;
  vow_response *x = userp; /* the transfer that needs the connection */
  vow__fetch_state *st = x->st;
  curl_socket_t fd = socket(addr->family, addr->socktype, addr->protocol);
  if (fd == CURL_SOCKET_BAD) return fd;
  sock_ctx *s = sock_find(st, fd);
  if (s) sock_close(st, s); /* a stale record: its fd was closed behind our back */
  s = sock_open(st, fd);
  if (!s) {
    close(fd);
    x->no_socket = 1; /* curl reports a failure to connect: say why */
    return CURL_SOCKET_BAD;
  }
  s->owned = 1;
  return fd;
}

/* CURLOPT_CLOSESOCKETFUNCTION: curl closes a connection's socket. */
static int close_socket(void *userp, curl_socket_t fd) {
  vow__fetch_state *st = userp;
  sock_ctx *s = sock_find(st, fd);
  if (s) sock_close(st, s);
  return close(fd);
}

/* Watches what curl wants (events, 0 for nothing). An idle connection's
 * socket stays watched for what it was, unreferenced so that it does not keep
 * the loop alive: the next transfer on it most often wants the same, and
 * stopping and restarting a uv_poll_t costs three epoll_ctl calls. */
static void sock_want(sock_ctx *s, int events) {
  s->wanted = events;
  if (!events && s->owned) {
    uv_unref((uv_handle_t *)&s->poll);
    return;
  }
  uv_ref((uv_handle_t *)&s->poll);
  if (events == s->events) return;
  s->events = events;
  if (events) uv_poll_start(&s->poll, events, on_poll);
  else uv_poll_stop(&s->poll);
}

/* CURLMOPT_SOCKETFUNCTION: what curl wants to know about fd. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  (void)socketp;
  vow__fetch_state *st = userp;
  sock_ctx *s = sock_find(st, fd);
  if (what == CURL_POLL_REMOVE) {
    if (s && s->owned) sock_want(s, 0);
    else if (s) sock_close(st, s); /* not a connection's (a resolver's, say): it may close unseen */
    return 0;
  }
  if (!s && !(s = sock_open(st, fd))) {
    /* Not -1: that marks the whole multi dead, failing every transfer of
     * the loop from then on. Only this one fails, stopped once curl returns. */
    char *priv = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
    vow_response *x = (vow_response *)priv;
    if (x) {
      fail(x, vow_error_nomem());
      x->doomed = st->doomed = 1;
    }
    return 0;
  }
  int events = 0;
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  sock_want(s, events);
  return 0;
}

/* CURLMOPT_TIMERFUNCTION: call curl back in ms (-1: never). 0 ms is the
 * common case (every new transfer asks for it): it is an idle handle, not a
 * 0-ms timer, which libuv (before 1.48) would run again and again within one
 * turn, never polling the sockets; the idle runs once a turn, and the turn's
 * poll does not block while it is pending. */
static int on_curl_timer(CURLM *multi, long ms, void *userp) {
  (void)multi;
  vow__fetch_state *st = userp;
  if (ms == 0) {
    uv_timer_stop(st->timer);
    uv_idle_start(st->soon, on_soon);
    return 0;
  }
  uv_idle_stop(st->soon);
  if (ms < 0) uv_timer_stop(st->timer);
  else uv_timer_start(st->timer, on_timeout, (uint64_t)ms, 0);
  return 0;
}

/* ---- timeout_ms, enforced by the loop ------------------------------------------------------------ */

/* When called for a timeout, curl (7.x) runs the timers due within its
 * TIMEOUT_INACCURACY (3 ms) but checks a transfer's CURLOPT_TIMEOUT_MS
 * against the exact time: a transfer whose deadline is less than 3 ms away
 * then loses it, and one whose server stalls never ends. So the loop keeps the
 * deadlines too, on one timer for the earliest: when a transfer's is
 * reached it fails with VOW_ETIMEDOUT, whoever comes first. */
static void arm_deadline(vow__fetch_state *st, uint64_t due) {
  if (st->next_deadline && st->next_deadline <= due) return;
  uint64_t now = uv_now(&st->loop->uv);
  st->next_deadline = due;
  uv_timer_start(st->deadlines, on_deadlines, due > now ? due - now : 0, 0);
}

static void deadlines_task(vow_loop *loop, void *arg) {
  vow__fetch_state *st = arg;
  uint64_t now = uv_now(&loop->uv);
  st->next_deadline = 0;
  for (vow_response *x = st->all, *next; x; x = next) {
    x_ref(x);
    if (x->easy && x->deadline && x->deadline <= now) {
      x->deadline = 0;
      fail(x, vow_errorf(VOW_ETIMEDOUT, "fetch %s: timed out", x->url));
      detach(x);
    } else if (x->easy && x->deadline) {
      arm_deadline(st, x->deadline);
    }
    next = x->next;
    x_unref(x);
  }
}

static void on_deadlines(uv_timer_t *timer) {
  vow__fetch_state *st = timer->data;
  vow__loop_enter(st->loop, deadlines_task, st);
}

/* ---- per-loop state ------------------------------------------------------------------------------------ */

/* The headers a request gets unless its caller gives its own: no "Expect:
 * 100-continue" wait for large bodies (fetch never sends it), no form content
 * type that the caller did not ask for ("Name:" tells curl to leave a header
 * out), and the User-Agent and Accept-Encoding that CURLOPT_USERAGENT and
 * CURLOPT_ACCEPT_ENCODING "" would add — given here because curl formats
 * those afresh for every request with its slow printf (a tenth of a small
 * request's instructions), and a header of the list overrides them.
 * The first BODY_ONLY_HEADERS concern only a request with a body (curl adds
 * Expect and the form type only to a POST or an upload): a request without
 * one leaves them out, as curl scans the whole list a score of times per
 * request. */
enum { DEFAULT_HEADERS = 4, BODY_ONLY_HEADERS = 2 };
static const char *const default_names[DEFAULT_HEADERS] = {"Expect", "Content-Type", "User-Agent",
                                                           "Accept-Encoding"};
static char default_lines[DEFAULT_HEADERS][64]; /* "Name: value", by curl_init */

/* What CURLOPT_ACCEPT_ENCODING "" announces: every encoding curl decodes. */
static void default_headers_init(void) {
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  int z = (v->features & CURL_VERSION_LIBZ) != 0, br = (v->features & CURL_VERSION_BROTLI) != 0;
#ifdef CURL_VERSION_ZSTD
  int zstd = (v->features & CURL_VERSION_ZSTD) != 0;
#else
  int zstd = 0;
#endif
  char enc[40];
  snprintf(enc, sizeof enc, "%s%s%s%s%s", z ? "deflate, gzip" : "", z && (br || zstd) ? ", " : "",
           br ? "br" : "", br && zstd ? ", " : "", zstd ? "zstd" : "");
  snprintf(default_lines[0], sizeof default_lines[0], "Expect:");
  snprintf(default_lines[1], sizeof default_lines[1], "Content-Type:");
  snprintf(default_lines[2], sizeof default_lines[2], "User-Agent: vow");
  snprintf(default_lines[3], sizeof default_lines[3], "Accept-Encoding: %s",
           enc[0] ? enc : "identity");
}

static int has_header(const char *const *headers, const char *name) {
  size_t n = strlen(name);
  for (; headers && *headers; headers++)
    if (strncasecmp(*headers, name, n) == 0 && (*headers)[n] == ':') return 1;
  return 0;
}

/* Appends to list the default headers that given (the caller's) lacks; those
 * of a request with a body too if body. */
static int append_defaults(struct curl_slist **list, const char *const *given, int body) {
  for (size_t i = body ? 0 : BODY_ONLY_HEADERS; i < DEFAULT_HEADERS; i++) {
    if (has_header(given, default_names[i])) continue;
    struct curl_slist *l = curl_slist_append(*list, default_lines[i]);
    if (!l) return VOW_ENOMEM;
    *list = l;
  }
  return 0;
}

/* The request headers of every fetch that gives none (with a body or
 * without), made once per loop. */
static struct curl_slist *plain_headers(int body) {
  struct curl_slist *list = NULL;
  if (append_defaults(&list, NULL, body) == 0) return list;
  curl_slist_free_all(list);
  return NULL;
}

/* Whether the request sends a body (curl's POST machinery: see set_method). */
static int has_body(const char *method, const vow_fetch_options *o) {
  return o->body || strcasecmp(method, "POST") == 0;
}

static vow__fetch_state *fetch_state_get(vow_loop *loop) {
  vow__io *io = vow__io_get(loop);
  if (!io) return NULL;
  if (io->fetch) return io->fetch;
  uv_once(&curl_once, curl_init);
  if (curl_init_result != CURLE_OK) return NULL;
  vow__fetch_state *st = vow__calloc(1, sizeof *st);
  uv_timer_t *timer = vow__malloc(sizeof *timer);
  uv_idle_t *soon = vow__malloc(sizeof *soon);
  uv_timer_t *deadlines = vow__malloc(sizeof *deadlines);
  struct curl_slist *headers = st && timer && soon && deadlines ? plain_headers(0) : NULL;
  struct curl_slist *body_headers = headers ? plain_headers(1) : NULL;
  CURLM *multi = body_headers ? curl_multi_init() : NULL;
  if (!multi) {
    curl_slist_free_all(headers);
    curl_slist_free_all(body_headers);
    vow__free(st);
    vow__free(timer);
    vow__free(soon);
    vow__free(deadlines);
    return NULL;
  }
  uv_timer_init(&loop->uv, timer);
  timer->data = st;
  uv_idle_init(&loop->uv, soon);
  soon->data = st;
  uv_timer_init(&loop->uv, deadlines);
  uv_unref((uv_handle_t *)deadlines);
  deadlines->data = st;
  st->deadlines = deadlines;
  st->loop = loop;
  st->multi = multi;
  st->timer = timer;
  st->soon = soon;
  st->plain_headers[0] = headers;
  st->plain_headers[1] = body_headers;
  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, st);
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(multi, CURLMOPT_TIMERDATA, st);
  io->fetch = st;
  return st;
}

void vow__fetch_teardown(vow_loop *loop, vow__fetch_state *st) {
  (void)loop;
  /* Stop every transfer and let go of what each holds; responses the caller
   * still references stay as plain memory, detached from the loop. */
  while (st->all) {
    vow_response *x = x_ref(st->all);
    if (x->easy) {
      curl_multi_remove_handle(st->multi, x->easy);
      curl_easy_cleanup(x->easy);
      x->easy = NULL;
      st->active--;
      x->refs--; /* the multi's */
    }
    drop_signal(x);
    vow_promise_unref(x->promise);
    vow_promise_unref(x->text);
    vow_promise_unref(x->waiter);
    x->promise = x->text = x->waiter = NULL;
    VOW__LIST_UNLINK(st->all, x);
    x->st = NULL;
    x_unref(x);
  }
  /* Closes cached connections, through close_socket: their records go. */
  curl_multi_cleanup(st->multi);
  while (st->spares) curl_easy_cleanup(st->spare[--st->spares].easy);
  for (size_t fd = 0; fd < st->socks_cap; fd++)
    if (st->socks[fd]) sock_close(st, st->socks[fd]);
  vow__free(st->socks);
  curl_slist_free_all(st->plain_headers[0]);
  curl_slist_free_all(st->plain_headers[1]);
  uv_close((uv_handle_t *)st->timer, free_handle);
  uv_close((uv_handle_t *)st->soon, free_handle);
  uv_close((uv_handle_t *)st->deadlines, free_handle);
  vow__free(st);
}

size_t vow__fetch_active(vow_loop *loop) {
  vow__io *io = loop ? vow__loop_ext(loop, VOW__EXT_IO) : NULL;
  return io && io->fetch ? io->fetch->active : 0;
}

size_t vow__response_buffered_peak(const vow_response *r) {
  return r ? r->peak : 0;
}

/* ---- starting a transfer ---------------------------------------------------------------------------------- */

/* Request headers as curl takes them (x->req_headers; none if the caller
 * gives none: the loop's plain list serves). Returns VOW_ETYPE for a malformed
 * one (no colon, or a line break: header injection), VOW_ENOMEM. */
static int build_headers(vow_response *x, const char *method, const vow_fetch_options *o) {
  for (const char *const *h = o->headers; h && *h; h++) {
    const char *colon = strchr(*h, ':');
    if (!colon || colon == *h || strpbrk(*h, "\r\n")) return VOW_ETYPE;
    struct curl_slist *l = curl_slist_append(x->req_headers, *h);
    if (!l) return VOW_ENOMEM;
    x->req_headers = l;
  }
  return x->req_headers ? append_defaults(&x->req_headers, o->headers, has_body(method, o)) : 0;
}

static void set_method(CURL *e, const char *method, const vow_fetch_options *o) {
  if (strcasecmp(method, "HEAD") == 0) curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  else if (strcasecmp(method, "POST") == 0) curl_easy_setopt(e, CURLOPT_POST, 1L);
  else if (strcasecmp(method, "GET") != 0) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
  if (has_body(method, o)) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(o->body ? o->body_len : 0));
    curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, o->body ? (const char *)o->body : "");
  }
}

/* What the transfer's callbacks and errors point at: x. */
static void easy_bind(CURL *e, vow_response *x) {
  curl_easy_setopt(e, CURLOPT_URL, x->url);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
}

/* Every option, on a handle fresh or reset. */
static void easy_configure(CURL *e, vow_response *x, const char *method, const vow_fetch_options *o) {
  vow__fetch_state *st = x->st;
  easy_bind(e, x);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, st);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER,
                   x->req_headers ? x->req_headers : st->plain_headers[has_body(method, o)]);
  /* Decodes what the server encoded (the header is default_lines' or the caller's). */
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  if (o->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file); /* curl copies it */
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  if (x->redirect == VOW_REDIRECT_FOLLOW) {
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 20L); /* fetch's limit */
  }
  if (o->timeout_ms)
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, o->timeout_ms > LONG_MAX ? LONG_MAX : (long)o->timeout_ms);
  set_method(e, method, o);
}

/* A plain fetch (GET, default options, no headers of its own) sets nothing
 * that differs from another plain fetch's: its handle can serve the next one
 * as it is, with only easy_bind, as curl's own examples reuse a handle. */
static int is_plain(const vow_response *x, const char *method, const vow_fetch_options *o) {
  return !x->req_headers && !o->body && !o->ca_file && !o->timeout_ms &&
         x->redirect == VOW_REDIRECT_FOLLOW && strcasecmp(method, "GET") == 0;
}

static int setup(vow_response *x, const char *method, const vow_fetch_options *o) {
  int err = build_headers(x, method, o);
  if (err) return err;
  vow__fetch_state *st = x->st;
  x->plain = is_plain(x, method, o);
  if (st->spares) {
    spare_easy sp = st->spare[--st->spares];
    x->easy = sp.easy;
    if (sp.plain && x->plain) {
      easy_bind(x->easy, x);
      return 0;
    }
    if (sp.plain) curl_easy_reset(x->easy);
  } else if (!(x->easy = curl_easy_init())) {
    return VOW_ENOMEM;
  }
  easy_configure(x->easy, x, method, o);
  return 0;
}

static void on_abort(vow_loop *loop, vow_value reason, void *data) {
  (void)loop;
  vow_response *x = data;
  x->listener = 0; /* it ran: the signal drops it */
  x_ref(x);
  fail(x, vow_ref(reason));
  detach(x);
  x_unref(x);
}

/* vow_loop_dump: an async function awaiting a fetch's promise is shown
 * awaiting that URL. */
static int describe_fetch(vow_loop *loop, vow_promise *p, char *buf, size_t cap) {
  vow__io *io = vow__loop_ext(loop, VOW__EXT_IO);
  vow__fetch_state *st = io ? io->fetch : NULL;
  for (vow_response *x = st ? st->all : NULL; x; x = x->next) {
    if (x->promise == p) {
      snprintf(buf, cap, "fetch %s", x->url);
      return 1;
    }
  }
  return 0;
}

static vow_promise *rejected_now(vow_promise *p, vow_value reason) {
  vow_promise_reject(p, reason);
  return p;
}

vow_promise *vow_fetch(vow_loop *loop, const char *url, const vow_fetch_options *options) {
  static const vow_fetch_options defaults = {0};
  const vow_fetch_options *o = options ? options : &defaults;
  vow_fetch_options in_scope;
  VOW__IN_SCOPE(loop, o, in_scope);
  vow_promise *p = vow_promise_new(loop); /* checks the loop and the thread */
  if (!p) return NULL;
  if (!url) return rejected_now(p, vow_error(VOW_EINVAL, "fetch: no URL"));
  vow_abort_signal *signal = o->signal;
  if (signal && vow_abort_signal_aborted(signal))
    return rejected_now(p, vow_ref(vow_abort_signal_reason(signal)));
  const char *method = o->method ? o->method : "GET";
  if (o->body && (strcasecmp(method, "GET") == 0 || strcasecmp(method, "HEAD") == 0))
    return rejected_now(p, vow_errorf(VOW_ETYPE,
                                      "fetch %s: a %s request cannot have a body", url, method));
  if (o->redirect < VOW_REDIRECT_FOLLOW || o->redirect > VOW_REDIRECT_MANUAL)
    return rejected_now(p, vow_errorf(VOW_EINVAL,
                                      "fetch %s: unknown redirect mode %d", url, o->redirect));
  vow__fetch_state *st = fetch_state_get(loop);
  size_t url_size = strlen(url) + 1;
  vow_response *x = st ? vow__calloc(1, sizeof *x + url_size) : NULL;
  if (!x) return rejected_now(p, vow_error(VOW_ENOMEM, "fetch: cannot start a transfer"));
  x->url = memcpy((char *)(x + 1), url, url_size);
  x->refs = 1;
  x->loop = loop;
  x->st = st;
  VOW__LIST_PUSH(st->all, x);
  x->redirect = o->redirect;
  x->reject_http_errors = o->reject_http_errors;
  x->max_body = o->max_body ? o->max_body : DEFAULT_MAX_BODY;
  x->max_header_bytes = !o->max_header_bytes ? DEFAULT_MAX_HEADER_BYTES
                        : o->max_header_bytes > MAX_HEADER_BYTES ? MAX_HEADER_BYTES
                                                                  : o->max_header_bytes;
  x->max_headers = o->max_headers ? o->max_headers : DEFAULT_MAX_HEADERS;
  int err = setup(x, method, o);
  if (err == 0 && curl_multi_add_handle(st->multi, x->easy) != CURLM_OK) err = VOW_ENOMEM;
  if (err) {
    if (x->easy) curl_easy_cleanup(x->easy);
    x->easy = NULL;
    x_unref(x);
    return rejected_now(p, vow_errorf(err, "fetch %s: %s", url, vow_strerror(err)));
  }
  st->active++;
  if (o->timeout_ms) {
    x->deadline = uv_now(&loop->uv) + (o->timeout_ms < UINT64_MAX / 2 ? o->timeout_ms : UINT64_MAX / 2);
    arm_deadline(st, x->deadline);
  }
  if (loop->trace) x->span = vow__trace_span_begin(loop, "fetch", x->url);
  x->promise = vow_promise_ref(p);
  if (signal) {
    x->signal = vow_abort_signal_ref(signal);
    int64_t id = vow_abort_signal_on(x->signal, on_abort, x);
    if (id < 0) {
      fail(x, vow_error_nomem());
      detach(x);
      return p;
    }
    x->listener = id;
  }
  return p;
}

/* ---- reading the response ----------------------------------------------------------------------------------- */

int vow_response_status(const vow_response *r) { return r ? r->status : 0; }
int vow_response_ok(const vow_response *r) { return r && r->status >= 200 && r->status <= 299; }
const char *vow_response_status_text(const vow_response *r) {
  return r && r->status_text ? r->status_text : "";
}
const char *vow_response_url(const vow_response *r) {
  return r && r->final_url ? r->final_url : "";
}
const char *vow_response_header(const vow_response *r, const char *name) {
  return r ? vow__headers_get(&r->headers, name) : NULL;
}

/* The reader took the buffered bytes: let a paused transfer go on. curl may
 * hand over the bytes it kept at once, from inside curl_easy_pause. */
static void resume(vow_response *x) {
  if (!x->paused || !x->easy || !x->st) return;
  x->paused = 0;
  x->st->in_curl++;
  curl_easy_pause(x->easy, CURLPAUSE_CONT);
  x->st->in_curl--;
  detach_doomed(x->st);
}

static int usable(const vow_response *r) {
  return r && r->st && vow__loop_usable(r->loop);
}

vow_promise *vow_response_text(vow_response *r) {
  if (!usable(r)) return NULL;
  if (r->reader != READER_NONE)
    return vow_rejected(r->loop, vow_errorf(VOW_EINVAL,
                                            "fetch %s: the body was already read", r->url));
  vow_promise *p = vow_promise_new(r->loop);
  if (!p) return NULL; /* the body is left to a later reader */
  r->reader = READER_TEXT;
  r->text = vow_promise_ref(p);
  if (r->body.len > r->max_body) {
    fail(r, vow_errorf(VOW_ETOOBIG,
                       "fetch %s: the body is larger than %zu bytes", r->url, r->max_body));
    detach(r);
  } else if (r->body_state == BODY_FAILED) {
    settle(&r->text, vow_ref(r->error), 1);
  } else if (r->body_state == BODY_DONE) {
    settle_text(r);
  } else {
    resume(r);
  }
  return p;
}

/* response.body: yields what is buffered, waits for more, ends with the body. */
static vow_value body_stream(vow_loop *loop, vow_asyncgen *gen, void *arg) {
  (void)gen;
  vow_response *x = arg;
  vow_value result = vow_undefined();
  for (;;) {
    if (x->body.len) {
      vow_value chunk = vow_string_n(x->body.data, x->body.len);
      x->body.len = 0;
      resume(x);
      vow_value sent;
      int rc = chunk.kind == VOW_STRING ? vow_yield(chunk, &sent) : VOW_EREJECTED;
      if (rc == VOW_EREJECTED && chunk.kind != VOW_STRING) sent = chunk;
      if (rc == 0) {
        vow_unref(sent);
        continue;
      }
      /* The consumer stopped early (return or throw): so does the transfer. */
      detach(x);
      x->body_state = BODY_FAILED;
      result = rc == VOW_EDONE ? sent : vow_throw(sent);
      break;
    }
    if (x->body_state == BODY_DONE) break;
    if (x->body_state == BODY_FAILED) {
      result = vow_throw(vow_ref(x->error));
      break;
    }
    x->waiter = vow_promise_new(loop);
    if (!x->waiter) {
      result = vow_throw(vow_error_nomem());
      break;
    }
    vow_value why;
    if (vow_await(vow_promise_ref(x->waiter), &why) != 0) { /* could not wait: out of memory */
      result = vow_throw(why);
      break;
    }
  }
  vow__buf_free(&x->body);
  return result;
}

/* The stream's arg_free: its generator is gone. If the body was not read to
 * the end, nobody can read it any more: stop the transfer. */
static void stream_released(void *arg) {
  vow_response *x = arg;
  if (x->reader == READER_STREAM) detach(x); /* else the generator was never made */
  x_unref(x);
}

/* A second read. It borrows nothing: the response may be gone when it runs. */
static vow_value body_used(vow_loop *loop, vow_asyncgen *gen, void *arg) {
  (void)loop, (void)gen, (void)arg;
  return vow_throw(vow_error(VOW_EINVAL, "fetch: the body was already read"));
}

vow_asyncgen *vow_response_body(vow_response *r) {
  if (!usable(r)) return NULL;
  static const vow_async_options used = {.name = "response body (used)"};
  if (r->reader != READER_NONE) return vow_asyncgen_new_ex(r->loop, body_used, NULL, &used);
  static const vow_async_options opts = {.name = "response body", .arg_free = stream_released};
  /* Out of memory, the generator's arg_free has already dropped its
   * reference, and left the body to a later reader (r->reader is unset). */
  vow_asyncgen *g = vow_asyncgen_new_ex(r->loop, body_stream, x_ref(r), &opts);
  if (!g) return NULL;
  r->reader = READER_STREAM;
  return g;
}
