/*
 * trace.c — a timeline of what the loop ran, in Chrome's trace-event format.
 *
 * Events are kept in memory (an array that doubles) and written as JSON when
 * tracing stops. Two shapes:
 *   - complete events ("ph":"X"): a macrotask or a microtask drain on the
 *     loop's thread, with its start and duration;
 *   - async spans ("ph":"b"/"e", with an id): things that overlap in time,
 *     such as an async function from call to settlement or a fetch. Trace
 *     viewers draw each span id on its own track: one lane per task.
 * Timestamps are nanoseconds from uv_hrtime, written as microseconds.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/loop.h"

typedef struct event {
  char ph;
  const char *cat;
  const char *name;
  char *owned_cat;   /* what cat or name point to, when they are copies */
  char *owned_name;
  uint64_t ts;   /* ns */
  uint64_t dur;  /* ns, for X */
  uint64_t id;   /* for b / e */
} event;

struct vow__trace {
  char *path;
  event *events;
  size_t len;
  size_t cap;
  uint64_t next_span;
  int failed; /* out of memory: stop recording, say so when writing */
};

uint64_t vow__trace_clock(void) {
  return uv_hrtime();
}

static event *push(vow__trace *t) {
  if (t->failed) return NULL;
  if (t->len == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 1024;
    event *e = vow__realloc(t->events, cap * sizeof *e);
    if (!e) {
      t->failed = 1;
      return NULL;
    }
    t->events = e;
    t->cap = cap;
  }
  return &t->events[t->len++];
}

/* Callers test loop->trace before the work they time; the work itself may
 * have stopped the trace, hence the second test here. */
void vow__trace_complete(vow_loop *loop, const char *cat, const char *name, uint64_t start_ns) {
  if (!loop->trace) return;
  event *e = push(loop->trace);
  if (e) *e = (event){'X', cat, name, NULL, NULL, start_ns, vow__trace_clock() - start_ns, 0};
}

static char *copy(const char *s) {
  size_t n = strlen(s ? s : "") + 1;
  char *c = vow__malloc(n);
  if (c) memcpy(c, s ? s : "", n);
  return c;
}

static uint64_t span_begin(vow_loop *loop, const char *cat, int own_cat, const char *name) {
  vow__trace *t = loop->trace;
  char *owned_name = copy(name);
  char *owned_cat = own_cat ? copy(cat) : NULL;
  event *e = owned_name && (owned_cat || !own_cat) ? push(t) : NULL;
  if (!e) {
    vow__free(owned_name);
    vow__free(owned_cat);
    return 0;
  }
  uint64_t id = ++t->next_span;
  *e = (event){'b', own_cat ? owned_cat : cat, owned_name, owned_cat, owned_name,
               vow__trace_clock(), 0, id};
  return id;
}

uint64_t vow__trace_span_begin(vow_loop *loop, const char *cat, const char *name) {
  return span_begin(loop, cat, 0, name);
}

void vow__trace_span_end(vow_loop *loop, uint64_t span) {
  if (!span || !loop->trace) return;
  event *e = push(loop->trace);
  if (e) *e = (event){'e', "", "", NULL, NULL, vow__trace_clock(), 0, span};
}

/* ---- writing ------------------------------------------------------------------ */

static void write_json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

/* An end event carries its begin's category and name, as viewers expect. */
static const event *begin_of(const vow__trace *t, size_t end_index) {
  for (size_t i = end_index; i-- > 0;)
    if (t->events[i].ph == 'b' && t->events[i].id == t->events[end_index].id) return &t->events[i];
  return NULL;
}

static int write_file(const vow__trace *t) {
  FILE *f = fopen(t->path, "w");
  if (!f) return VOW_EINVAL;
  uint64_t t0 = t->len ? t->events[0].ts : 0;
  fputs("{\"displayTimeUnit\":\"ms\",\"traceEvents\":[\n", f);
  fputs("{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":1,\"tid\":1,\"args\":{\"name\":\"vow loop\"}}", f);
  for (size_t i = 0; i < t->len; i++) {
    const event *e = &t->events[i];
    const event *named = e->ph == 'e' ? begin_of(t, i) : e;
    if (!named) continue;
    fprintf(f, ",\n{\"ph\":\"%c\",\"pid\":1,\"tid\":1,\"ts\":%.3f,\"cat\":", e->ph,
            (double)(e->ts - t0) / 1000.0);
    write_json_string(f, named->cat);
    fputs(",\"name\":", f);
    write_json_string(f, named->name);
    if (e->ph == 'X') fprintf(f, ",\"dur\":%.3f", (double)e->dur / 1000.0);
    else fprintf(f, ",\"id\":%llu", (unsigned long long)e->id);
    fputc('}', f);
  }
  fputs("\n]}\n", f);
  int err = ferror(f) ? VOW_EINVAL : 0;
  if (fclose(f) != 0) err = VOW_EINVAL;
  return err;
}

static void trace_release(vow__trace *t) {
  for (size_t i = 0; i < t->len; i++) {
    vow__free(t->events[i].owned_name);
    vow__free(t->events[i].owned_cat);
  }
  vow__free(t->events);
  vow__free(t->path);
  vow__free(t);
}

/* ---- public API ------------------------------------------------------------------ */

int vow_trace_start(vow_loop *loop, const char *path) {
  if (!loop || !path) return VOW_EINVAL;
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  if (loop->trace) return VOW_EBUSY;
  vow__trace *t = vow__calloc(1, sizeof *t);
  if (!t || !(t->path = copy(path))) {
    vow__free(t);
    return VOW_ENOMEM;
  }
  loop->trace = t;
  return 0;
}

int vow_trace_stop(vow_loop *loop) {
  if (!loop) return VOW_EINVAL;
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  vow__trace *t = loop->trace;
  if (!t) return VOW_EINVAL;
  loop->trace = NULL;
  int err = write_file(t);
  if (!err && t->failed) err = VOW_ENOMEM;
  trace_release(t);
  return err;
}

uint64_t vow_trace_begin(vow_loop *loop, const char *category, const char *name) {
  if (!loop || !loop->trace || !vow__loop_on_owner(loop)) return 0;
  return span_begin(loop, category ? category : "user", 1, name);
}

void vow_trace_end(vow_loop *loop, uint64_t span) {
  if (loop && loop->trace && vow__loop_on_owner(loop)) vow__trace_span_end(loop, span);
}

void vow__trace_free(vow_loop *loop) {
  if (loop->trace) vow_trace_stop(loop);
}

void vow__trace_from_env(vow_loop *loop) {
  static atomic_uint loops_traced;
  const char *path = getenv("VOW_TRACE");
  if (!path || !*path) return;
  unsigned n = atomic_fetch_add(&loops_traced, 1) + 1;
  if (n == 1) {
    vow_trace_start(loop, path);
    return;
  }
  size_t len = strlen(path) + 16;
  char *numbered = vow__malloc(len);
  if (!numbered) return;
  snprintf(numbered, len, "%s.%u", path, n);
  vow_trace_start(loop, numbered);
  vow__free(numbered);
}
