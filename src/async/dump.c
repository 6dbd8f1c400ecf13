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
 * suspended when the loop is freed; both may be given ("SIGUSR1,exit"), and
 * "backtrace" adds each suspended coroutine's C backtrace to those dumps.
 *
 * Backtraces. A suspended coroutine's stack can only be unwound from inside:
 * its registers are saved on it in the switch's own layout, which no
 * unwinder reads. So the dump resumes each suspended frame with f->capture
 * pointing at a buffer on the dump's stack; the frame's suspension point
 * (vow__frame_suspend in async.h) sees the request, takes backtrace() into
 * it, and yields straight back (vow__frame_take_backtrace). Nothing else
 * moves: no promise, no job, no outcome; the frame is as suspended as it was.
 * The unwinder stops cleanly at the bottom of a coroutine's stack: the asm
 * trampoline marks rip undefined (.cfi_undefined), as glibc's makecontext
 * start does for the ucontext back-end. Copy-stack coroutines are skipped
 * (resuming one would copy frames in and out, which may need memory), and
 * so is every frame when the dump itself runs on a copy stack.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
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

/* ---- backtraces ------------------------------------------------------------------ */

#define BACKTRACE_DEPTH 32

void vow__frame_take_backtrace(vow__frame *f) {
  do { /* run on f's own stack, at its suspension point */
    vow__backtrace *bt = f->capture;
    f->capture = NULL;
    bt->n = backtrace(bt->addrs, bt->cap);
    vow__coro_yield(f->co);
  } while (f->capture); /* a resumption without a request: the real one */
}

/* Why f's backtrace cannot be taken, or NULL when it can. */
static const char *no_backtrace(const vow__frame *f) {
  if (f == vow__frame_current() || !f->co || !vow__coro_suspended(f->co))
    return f->co && vow__coro_done(f->co) ? "it has returned" : "it is running or has not started";
  if (f->closing) return "it is closing";
  if (f->copy_stack) return "a copy-stack coroutine: its frames may be off the stack";
  vow_coro *self = vow__coro_current();
  if (self && vow__coro_is_copy(self)) return "the dump runs on a copy stack";
  return NULL;
}

static void print_address(FILE *out, int i, void *addr) {
  Dl_info info;
  if (dladdr(addr, &info) && info.dli_fname) {
    const char *file = strrchr(info.dli_fname, '/');
    file = file ? file + 1 : info.dli_fname;
    if (info.dli_sname)
      fprintf(out, "      #%d %p %s+0x%lx (%s)\n", i, addr, info.dli_sname,
              (unsigned long)((char *)addr - (char *)info.dli_saddr), file);
    else
      fprintf(out, "      #%d %p ? (%s+0x%lx)\n", i, addr, file,
              (unsigned long)((char *)addr - (char *)info.dli_fbase));
  } else {
    fprintf(out, "      #%d %p ?\n", i, addr);
  }
}

/* f's backtrace, taken by f itself, innermost first. Frame 0 (the taker) is
 * left out. */
static void dump_backtrace(FILE *out, vow__frame *f) {
  const char *why = no_backtrace(f);
  if (why) {
    fprintf(out, "      (no backtrace: %s)\n", why);
    return;
  }
  void *addrs[BACKTRACE_DEPTH];
  vow__backtrace bt = {addrs, BACKTRACE_DEPTH, 0};
  f->capture = &bt;
  vow__coro_resume(f->co);
  f->capture = NULL; /* (it cleared it; stays clear if it never got there) */
  for (int i = 1; i < bt.n; i++) print_address(out, i - 1, addrs[i]);
  if (bt.n <= 1) fputs("      (no backtrace: the unwinder found no frames)\n", out);
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
  return vow_loop_dump_ex(loop, out, 0);
}

int vow_loop_dump_ex(vow_loop *loop, FILE *out, unsigned flags) {
  if (!loop || !out || (flags & ~(unsigned)VOW_DUMP_BACKTRACE)) return VOW_EINVAL;
  if (!vow__loop_on_owner(loop)) return VOW_ETHREAD;
  vow__async_state *st = vow__loop_ext(loop, VOW__EXT_ASYNC);
  int n = 0;
  for (vow__frame *f = st ? st->frames : NULL; f; f = f->next) n++;
  uint64_t now = vow__loop_now(loop);
  fprintf(out, "vow: loop %p: %d async function%s alive\n", (void *)loop, n, n == 1 ? "" : "s");
  /* The list is newest first: print oldest first, as a call tree reads. */
  vow__frame *last = st ? st->frames : NULL;
  while (last && last->next) last = last->next;
  if (flags & VOW_DUMP_BACKTRACE) {
    /* The first backtrace() loads the unwinder (dlopen, malloc): here, on
     * the dump's stack, not on a coroutine's. */
    void *warm[2];
    (void)backtrace(warm, 2);
  }
  for (vow__frame *f = last; f; f = f->prev) {
    dump_frame(out, f, now);
    if (flags & VOW_DUMP_BACKTRACE) dump_backtrace(out, f);
  }
  fflush(out);
  return n;
}

/* ---- VOW_DUMP_ON ---------------------------------------------------------------------- */

typedef struct dump_on {
  uv_signal_t signal;
  int armed;     /* the signal handler was started */
  int at_exit;
  unsigned flags; /* for vow_loop_dump_ex: "backtrace" */
} dump_on;

static void dump_task(vow_loop *loop, void *arg) {
  vow_loop_dump_ex(loop, stderr, ((dump_on *)arg)->flags);
}

static void on_signal(uv_signal_t *h, int signum) {
  (void)signum;
  vow__async_state *st = vow__loop_ext(h->data, VOW__EXT_ASYNC);
  vow__loop_enter_named(h->data, "dump", dump_task, st->dump_on);
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
    else if (len == 9 && strncmp(p, "backtrace", 9) == 0) d->flags |= VOW_DUMP_BACKTRACE;
    else if (signum && !d->armed && uv_signal_init(&loop->uv, &d->signal) == 0) {
      d->signal.data = loop;
      uv_signal_start(&d->signal, on_signal, signum);
      uv_unref((uv_handle_t *)&d->signal); /* it must not keep the loop running */
      d->armed = 1;
    } else if (!signum) {
      fprintf(stderr, "vow: VOW_DUMP_ON: unknown '%.*s' (SIGUSR1, SIGUSR2, SIGQUIT, SIGHUP, "
              "SIGINT, SIGTERM, SIGWINCH, exit or backtrace)\n", (int)len, p);
    }
    p += len;
    if (*p == ',') p++;
  }
  return d;
}

/* ---- promises still pending at the loop's end ------------------------------------------ */

typedef struct pending_report {
  FILE *out;
  vow_loop *loop;
  vow__frame *frames;
  size_t n;
} pending_report;

static void count_pending(vow_promise *p, void *ctx) {
  (void)p;
  ((pending_report *)ctx)->n++;
}

static void print_pending(vow_promise *p, void *ctx) {
  pending_report *r = ctx;
  char desc[480];
  describe_promise(r->loop, p, desc, sizeof desc);
  fprintf(r->out, "  promise %p: %s", (void *)p, desc);
  const char *sep = ", awaited by";
  for (vow__frame *f = r->frames; f; f = f->next)
    if (f->awaiting == p) {
      fprintf(r->out, "%s %s '%s'", sep, f->kind == FRAME_GENERATOR ? "async generator" : "async",
              f->name ? f->name : "?");
      sep = ",";
    }
  fputc('\n', r->out);
}

/* The promise layer lists the pending promises (pending.c) when VOW_DUMP_ON
 * has "exit"; here they are told with what they stand for, and who awaits. */
static void report_pending(vow_loop *loop, FILE *out) {
  vow__async_state *st = vow__loop_ext(loop, VOW__EXT_ASYNC);
  pending_report r = {out, loop, st ? st->frames : NULL, 0};
  size_t missed;
  vow__pending_each(loop, count_pending, &r, &missed);
  if (!r.n && !missed) return;
  fprintf(out, "vow: the loop is being freed with %zu promise%s still pending:\n", r.n + missed,
          r.n + missed == 1 ? "" : "s");
  vow__pending_each(loop, print_pending, &r, NULL);
  if (missed) fprintf(out, "  and %zu not listed (out of memory)\n", missed);
  fflush(out);
}

void vow__dump_at_exit(vow_loop *loop, void *state) {
  dump_on *d = state;
  if (!d || !d->at_exit) return;
  report_pending(loop, stderr);
  if (vow__loop_ext(loop, VOW__EXT_ASYNC) &&
      ((vow__async_state *)vow__loop_ext(loop, VOW__EXT_ASYNC))->frames) {
    fputs("vow: the loop is being freed with async functions still suspended:\n", stderr);
    vow_loop_dump_ex(loop, stderr, d->flags);
  }
}

void vow__dump_on_stop(vow_loop *loop, void *state) {
  (void)loop;
  dump_on *d = state;
  if (!d) return;
  if (d->armed) {
    d->signal.data = d;
    uv_close((uv_handle_t *)&d->signal, close_freed);
  } else {
    vow__free(d);
  }
}
