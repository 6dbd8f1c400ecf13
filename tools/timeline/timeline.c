/*
 * timeline.c — a trace as a picture.
 *
 * Spans (an async function from call to settlement, a fetch, a span of the
 * user's) are packed into lanes greedily: each goes into the first lane that
 * is free at its start, so tasks that overlap in time sit in different lanes
 * and sequential ones share a lane. Above them, a strip shows when the loop's
 * thread itself was busy (macrotasks and microtask drains).
 */
#include "timeline.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

typedef struct span {
  double start, end; /* ms */
  const char *cat;
  const char *name;
  int lane;
} span;

typedef struct busy {
  double start, dur;
} busy;

typedef struct trace {
  span *spans;
  size_t nspans;
  busy *busy;
  size_t nbusy;
  double end;
  int lanes;
} trace;

static int by_start(const void *a, const void *b) {
  const span *x = a, *y = b;
  return (x->start > y->start) - (x->start < y->start);
}

static void assign_lanes(trace *t) {
  double *lane_end = calloc(t->nspans + 1, sizeof *lane_end);
  if (!lane_end) return;
  qsort(t->spans, t->nspans, sizeof *t->spans, by_start);
  for (size_t i = 0; i < t->nspans; i++) {
    int lane = 0;
    while (lane < t->lanes && lane_end[lane] > t->spans[i].start) lane++;
    if (lane == t->lanes) t->lanes++;
    lane_end[lane] = t->spans[i].end;
    t->spans[i].lane = lane;
  }
  free(lane_end);
}

/* Pairs each span's begin with its end (by id). */
static int collect(json_t *events, trace *t) {
  size_t n = json_array_size(events), i;
  json_t *e;
  t->spans = calloc(n + 1, sizeof *t->spans);
  t->busy = calloc(n + 1, sizeof *t->busy);
  json_int_t *ids = calloc(n + 1, sizeof *ids);
  if (!t->spans || !t->busy || !ids) {
    free(ids);
    return -1;
  }
  json_array_foreach(events, i, e) {
    const char *ph = json_string_value(json_object_get(e, "ph"));
    double ts = json_number_value(json_object_get(e, "ts")) / 1000.0;
    if (!ph) continue;
    if (ts > t->end) t->end = ts;
    if (strcmp(ph, "X") == 0) {
      double dur = json_number_value(json_object_get(e, "dur")) / 1000.0;
      t->busy[t->nbusy++] = (busy){ts, dur};
      if (ts + dur > t->end) t->end = ts + dur;
    } else if (strcmp(ph, "b") == 0) {
      ids[t->nspans] = json_integer_value(json_object_get(e, "id"));
      t->spans[t->nspans++] = (span){ts, -1, json_string_value(json_object_get(e, "cat")),
                                     json_string_value(json_object_get(e, "name")), 0};
    } else if (strcmp(ph, "e") == 0) {
      json_int_t id = json_integer_value(json_object_get(e, "id"));
      for (size_t k = t->nspans; k-- > 0;)
        if (ids[k] == id && t->spans[k].end < 0) {
          t->spans[k].end = ts;
          break;
        }
    }
  }
  for (size_t k = 0; k < t->nspans; k++)
    if (t->spans[k].end < 0) t->spans[k].end = t->end; /* still running at the end */
  free(ids);
  return 0;
}

static void put_escaped(FILE *out, const char *s) {
  for (; s && *s; s++) {
    switch (*s) {
      case '&': fputs("&amp;", out); break;
      case '<': fputs("&lt;", out); break;
      case '>': fputs("&gt;", out); break;
      case '"': fputs("&quot;", out); break;
      default: fputc(*s, out);
    }
  }
}

static const char *colour_of(const char *cat, const char *name) {
  if (!cat) return "#888888";
  if (name && strncmp(name, "http handler", 12) == 0) return "#3aa676"; /* the server's side */
  if (strcmp(cat, "fetch") == 0) return "#e8833a";
  if (strcmp(cat, "async") == 0) return "#4a7fd4";
  if (strcmp(cat, "http") == 0) return "#3aa676";
  return "#9b59b6";
}

/* A tick every 1, 2 or 5 times a power of ten, about ten across. */
static double tick_step(double total) {
  double step = 1;
  while (total / step > 12) {
    if (total / (step * 2) <= 12) return step * 2;
    if (total / (step * 5) <= 12) return step * 5;
    step *= 10;
  }
  return step;
}

enum { WIDTH = 960, LEFT = 24, TOP = 40, LANE_H = 22, STRIP_H = 14 };

static void draw(const trace *t, FILE *out, const char *title) {
  double total = t->end > 0 ? t->end : 1;
  double scale = (WIDTH - 2 * LEFT) / total;
  int height = TOP + STRIP_H + 10 + t->lanes * LANE_H + 40;
  fprintf(out,
          "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
          "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
          "font-family=\"sans-serif\" font-size=\"11\">\n"
          "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
          WIDTH, height);
  fputs("<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">", out);
  put_escaped(out, title ? title : "vow timeline");
  fputs("</text>\n", out);
  /* the legend */
  static const struct { const char *colour, *label; } legend[] = {
      {"#4a7fd4", "async function"}, {"#e8833a", "fetch"}, {"#3aa676", "server handler"},
      {"#444444", "loop busy"}};
  for (int i = 0; i < 4; i++) {
    int x = WIDTH - 420 + i * 105;
    fprintf(out, "<rect x=\"%d\" y=\"10\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                 "<text x=\"%d\" y=\"19\" fill=\"#555\">%s</text>\n",
            x, legend[i].colour, x + 14, legend[i].label);
  }
  /* the loop thread's busy strip */
  fprintf(out, "<text x=\"%d\" y=\"%d\" fill=\"#555\">loop thread</text>\n", LEFT, TOP - 4);
  for (size_t i = 0; i < t->nbusy; i++) {
    double w = t->busy[i].dur * scale;
    fprintf(out, "<rect x=\"%.1f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"#444\"/>\n",
            LEFT + t->busy[i].start * scale, TOP, w < 0.5 ? 0.5 : w, STRIP_H);
  }
  /* the lanes */
  int lanes_top = TOP + STRIP_H + 10;
  for (size_t i = 0; i < t->nspans; i++) {
    const span *s = &t->spans[i];
    double x = LEFT + s->start * scale, w = (s->end - s->start) * scale;
    int y = lanes_top + s->lane * LANE_H;
    fprintf(out, "<g><title>");
    put_escaped(out, s->name);
    fprintf(out, " (%.1f ms)</title><rect x=\"%.1f\" y=\"%d\" width=\"%.2f\" height=\"%d\" rx=\"3\" "
                 "fill=\"%s\" fill-opacity=\"0.85\"/>",
            s->end - s->start, x, y, w < 1 ? 1 : w, LANE_H - 4, colour_of(s->cat, s->name));
    if (w > 60) {
      fprintf(out, "<text x=\"%.1f\" y=\"%d\" fill=\"#fff\">", x + 4, y + LANE_H - 9);
      put_escaped(out, s->name);
      fprintf(out, " %.0f ms</text>", s->end - s->start);
    }
    fputs("</g>\n", out);
  }
  /* the time axis */
  int axis = lanes_top + t->lanes * LANE_H + 8;
  fprintf(out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#999\"/>\n", LEFT, axis,
          WIDTH - LEFT, axis);
  double step = tick_step(total);
  for (double ms = 0; ms <= total + 1e-9; ms += step) {
    double x = LEFT + ms * scale;
    fprintf(out, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#999\"/>"
                 "<text x=\"%.1f\" y=\"%d\" fill=\"#555\" text-anchor=\"middle\">%.0f ms</text>\n",
            x, axis, x, axis + 5, x, axis + 18, ms);
  }
  fputs("</svg>\n", out);
}

int vow_timeline_render(const char *trace_path, FILE *out, const char *title) {
  json_error_t err;
  json_t *root = json_load_file(trace_path, 0, &err);
  json_t *events = root ? json_object_get(root, "traceEvents") : NULL;
  if (!json_is_array(events)) {
    fprintf(stderr, "vow-timeline: %s: %s\n", trace_path,
            root ? "no traceEvents array" : err.text);
    json_decref(root);
    return -1;
  }
  trace t = {0};
  int rc = collect(events, &t);
  if (rc == 0) {
    assign_lanes(&t);
    draw(&t, out, title);
  } else {
    fprintf(stderr, "vow-timeline: %s: out of memory\n", trace_path);
  }
  free(t.spans);
  free(t.busy);
  json_decref(root);
  return rc;
}
