/*
 * dump.c — live task dumps: what every async function and generator of a
 * loop is doing, on demand, on a signal, or at the loop's end.
 *
 * The loop's list of live frames (async.c) is the source: for each frame,
 * its kind and name, its age, what it waits for, and the task group and
 * cancel scopes it runs in. What a pending promise stands for is told by
 * the layer that made it: a promise of vow_delay carries a tag (P_TAG_DELAY
 * in promise.h), and the layers above register a describer (fetch names its
 * URL) — describers are process-wide functions, registered once.
 *
 * VOW_DUMP_ON=SIGUSR1 (or any signal name libuv knows by number: SIGUSR2,
 * SIGQUIT...) makes every loop that runs async functions dump to stderr when
 * the process gets that signal; VOW_DUMP_ON=exit dumps what is still
 * suspended when the loop is freed; both may be given ("SIGUSR1,exit").
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "async/scope.h"

/* ---- describers ------------------------------------------------------------------ */

#define MAX_DESCRIBERS 8
static vow__describe_fn describers[MAX_DESCRIBERS];
static int ndescribers;

void vow__dump_add_describer(vow__describe_fn fn) {
  for (int i = 0; i < ndescribers; i++)
    if (describers[i] == fn) return;
  if (ndescribers < MAX_DESCRIBERS) describers[ndescribers++] = fn;
}

static void describe_promise(vow_loop *loop, vow_promise *p, char *buf, size_t cap) {
  for (int i = 0; i < ndescribers; i++)
    if (describers[i](loop, p, buf, cap)) return;
  if (P_TAG(p) == P_TAG_DELAY) snprintf(buf, cap, "a timer (vow_delay)");
  else snprintf(buf, cap, "a pending promise");
}

/* ---- one frame --------------------------------------------------------------------- */

static const char *group_of(const vow__frame *f) {
  for (const vow_scope *s = f->scope; s; s = s->parent)
    if (s->group) return vow__group_name(s->group);
  return NULL;
}

static int scopes_of(const vow__frame *f, int *cancelled) {
  int n = 0;
  *cancelled = 0;
  for (const vow_scope *s = f->scope; s; s = s->parent) {
    if (s->group) continue; /* a group child's root scope: shown as its group */
    n++;
    if (vow_abort_signal_aborted(s->signal)) *cancelled = 1;
  }
  return n;
}

static void dump_frame(FILE *out, const vow__frame *f, uint64_t now) {
  char what[512];
  if (f == vow__frame_current()) snprintf(what, sizeof what, "running (it called the dump)");
  else if (f->closing) snprintf(what, sizeof what, "closing (the loop is being freed)");
  else if (f->awaiting) {
    char desc[480];
    describe_promise(f->loop, f->awaiting, desc, sizeof desc);
    snprintf(what, sizeof what, "awaiting %s", desc);
  } else if (f->kind == FRAME_GENERATOR) {
    snprintf(what, sizeof what, "suspended at a yield, or resuming");
  } else {
    snprintf(what, sizeof what, "resuming (its awaited value is known: one tick)");
  }
  fprintf(out, "  %s '%s', age %llu ms: %s", f->kind == FRAME_GENERATOR ? "async generator" : "async",
          f->name ? f->name : "?", (unsigned long long)(now - f->started), what);
  const char *group = group_of(f);
  if (group) fprintf(out, "; in task group '%s'", group);
  int cancelled;
  int scopes = scopes_of(f, &cancelled);
  if (scopes) fprintf(out, "; in %d cancel scope%s%s", scopes, scopes > 1 ? "s" : "",
                      cancelled ? " (cancelled)" : "");
  fputc('\n', out);
}

int vow_loop_dump(vow_loop *loop, FILE *out) {
  if (!loop || !out) return VOW_EINVAL;
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  vow__async_state *st = vow__loop_ext(loop, VOW__EXT_ASYNC);
  int n = 0;
  for (vow__frame *f = st ? st->frames : NULL; f; f = f->next) n++;
  uint64_t now = vow__loop_now(loop);
  fprintf(out, "vow: loop %p: %d async function%s alive\n", (void *)loop, n, n == 1 ? "" : "s");
  /* The list is newest first: print oldest first, as a call tree reads. */
  vow__frame *last = st ? st->frames : NULL;
  while (last && last->next) last = last->next;
  for (vow__frame *f = last; f; f = f->prev) dump_frame(out, f, now);
  fflush(out);
  return n;
}

/* ---- VOW_DUMP_ON ---------------------------------------------------------------------- */

typedef struct dump_on {
  uv_signal_t signal;
  int armed;     /* the signal handler was started */
  int at_exit;
} dump_on;

static void dump_task(vow_loop *loop, void *arg) {
  (void)arg;
  vow_loop_dump(loop, stderr);
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)signum;
  vow__loop_enter_named(h->data, "dump", dump_task, NULL);
}

static int signal_number(const char *name, size_t len) {
  static const struct { const char *name; int num; } known[] = {
    {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {"SIGQUIT", SIGQUIT}, {"SIGHUP", SIGHUP},
    {"SIGINT", SIGINT},   {"SIGTERM", SIGTERM}, {"SIGWINCH", SIGWINCH}};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strlen(known[i].name) == len && strncmp(known[i].name, name, len) == 0) return known[i].num;
  return 0;
}

static void close_freed(uv_handle_t *h) {
  vow__free(h->data);
}

void *vow__dump_on_start(vow_loop *loop) {
  const char *spec = getenv("VOW_DUMP_ON");
  if (!spec || !*spec) return NULL;
  dump_on *d = vow__calloc(1, sizeof *d);
  if (!d) return NULL; /* a diagnostic aid: without memory, no dumps */
  for (const char *p = spec; *p;) {
    size_t len = strcspn(p, ",");
    int signum = signal_number(p, len);
    if (len == 4 && strncmp(p, "exit", 4) == 0) d->at_exit = 1;
    else if (signum && !d->armed && uv_signal_init(&loop->uv, &d->signal) == 0) {
      d->signal.data = loop;
      uv_signal_start(&d->signal, on_signal, signum);
      uv_unref((uv_handle_t *)&d->signal); /* it must not keep the loop running */
      d->armed = 1;
    } else if (!signum) {
      fprintf(stderr, "vow: VOW_DUMP_ON: unknown '%.*s' (SIGUSR1, SIGUSR2, SIGQUIT, SIGHUP, "
              "SIGINT, SIGTERM, SIGWINCH or exit)\n", (int)len, p);
    }
    p += len;
    if (*p == ',') p++;
  }
  return d;
}

void vow__dump_on_stop(vow_loop *loop, void *state) {
  dump_on *d = state;
  if (!d) return;
  if (d->at_exit && vow__loop_ext(loop, VOW__EXT_ASYNC) &&
      ((vow__async_state *)vow__loop_ext(loop, VOW__EXT_ASYNC))->frames) {
    fputs("vow: the loop is being freed with async functions still suspended:\n", stderr);
    vow_loop_dump(loop, stderr);
  }
  if (d->armed) {
    d->signal.data = d;
    uv_close((uv_handle_t *)&d->signal, close_freed);
  } else {
    vow__free(d);
  }
}
