/*
 * channel.c — a bounded async queue: the building block for pipelines.
 *
 * Invariants:
 *   - waiting receivers exist only while the buffer is empty;
 *   - waiting senders exist only while the buffer is full (for capacity 0:
 *     while no receiver waits);
 *   - once closed, no sender waits and no value enters.
 */
#include <stdlib.h>

#include "core/alloc.h"
#include "promise/promise.h"

typedef struct waiter {
  struct waiter *next;
  vow_promise *promise;
  vow_value value;       /* a waiting sender's value */
} waiter;

typedef struct waiters {
  waiter *head;
  waiter *tail;
} waiters;

struct vow_channel {
  uint32_t refs;
  int closed;
  vow_loop *loop;
  size_t capacity;
  vow_value *ring;       /* capacity slots */
  size_t head;
  size_t len;
  waiters senders;
  waiters receivers;
};

static void push_waiter(waiters *q, waiter *w) {
  w->next = NULL;
  if (q->tail) q->tail->next = w;
  else q->head = w;
  q->tail = w;
}

static waiter *pop_waiter(waiters *q) {
  waiter *w = q->head;
  if (w) {
    q->head = w->next;
    if (!q->head) q->tail = NULL;
  }
  return w;
}

vow_channel *vow_channel_new(vow_loop *loop, size_t capacity) {
  if (!vow__loop_usable(loop)) return NULL;
  vow_channel *ch = vow__calloc(1, sizeof *ch);
  if (!ch) return NULL;
  ch->ring = capacity ? vow__calloc(capacity, sizeof *ch->ring) : NULL;
  if (capacity && !ch->ring) {
    vow__free(ch);
    return NULL;
  }
  ch->refs = 1;
  ch->loop = loop;
  ch->capacity = capacity;
  return ch;
}

vow_channel *vow_channel_ref(vow_channel *ch) {
  if (ch) ch->refs++;
  return ch;
}

void vow_channel_unref(vow_channel *ch) {
  if (!ch || --ch->refs > 0) return;
  vow_channel_close(ch); /* settles anyone still waiting */
  for (size_t i = 0; i < ch->len; i++) vow_unref(ch->ring[(ch->head + i) % ch->capacity]);
  vow__free(ch->ring);
  vow__free(ch);
}

static vow_value take_buffered(vow_channel *ch) {
  vow_value v = ch->ring[ch->head];
  ch->head = (ch->head + 1) % ch->capacity;
  ch->len--;
  return v;
}

static void put_buffered(vow_channel *ch, vow_value v) {
  ch->ring[(ch->head + ch->len) % ch->capacity] = v;
  ch->len++;
}

vow_promise *vow_channel_send(vow_channel *ch, vow_value value) {
  if (!ch || !vow__loop_on_owner(ch->loop)) {
    vow_unref(value);
    return NULL;
  }
  if (ch->closed) {
    vow_unref(value);
    return vow_rejected(ch->loop, vow_error(VOW_EDONE, "send on a closed channel"));
  }
  waiter *r = pop_waiter(&ch->receivers);
  if (r) { /* a receiver is waiting: hand the value over */
    vow_promise_resolve(r->promise, vow__iter_new(0, value));
    vow_promise_unref(r->promise);
    vow__free(r);
    return vow_resolved(ch->loop, vow_undefined());
  }
  if (ch->len < ch->capacity) {
    put_buffered(ch, value);
    return vow_resolved(ch->loop, vow_undefined());
  }
  waiter *s = vow__malloc(sizeof *s);
  vow_promise *p = s ? vow_promise_new(ch->loop) : NULL;
  if (!p) {
    vow__free(s);
    vow_unref(value);
    return NULL;
  }
  *s = (waiter){NULL, vow_promise_ref(p), value};
  push_waiter(&ch->senders, s);
  return p;
}

vow_promise *vow_channel_recv(vow_channel *ch) {
  if (!ch || !vow__loop_on_owner(ch->loop)) return NULL;
  waiter *s;
  if (ch->len > 0) {
    vow_value v = take_buffered(ch);
    if ((s = pop_waiter(&ch->senders)) != NULL) { /* room now: the first sender gets in */
      put_buffered(ch, s->value);
      vow_promise_resolve(s->promise, vow_undefined());
      vow_promise_unref(s->promise);
      vow__free(s);
    }
    return vow_resolved(ch->loop, vow__iter_new(0, v));
  }
  if ((s = pop_waiter(&ch->senders)) != NULL) { /* a rendezvous */
    vow_value v = s->value;
    vow_promise_resolve(s->promise, vow_undefined());
    vow_promise_unref(s->promise);
    vow__free(s);
    return vow_resolved(ch->loop, vow__iter_new(0, v));
  }
  if (ch->closed) return vow_resolved(ch->loop, vow__iter_new(1, vow_undefined()));
  waiter *r = vow__malloc(sizeof *r);
  vow_promise *p = r ? vow_promise_new(ch->loop) : NULL;
  if (!p) {
    vow__free(r);
    return NULL;
  }
  *r = (waiter){NULL, vow_promise_ref(p), vow_undefined()};
  push_waiter(&ch->receivers, r);
  return p;
}

void vow_channel_close(vow_channel *ch) {
  if (!ch || ch->closed || !vow__loop_on_owner(ch->loop)) return;
  ch->closed = 1;
  waiter *w;
  while ((w = pop_waiter(&ch->senders)) != NULL) {
    vow_unref(w->value);
    vow_promise_reject(w->promise, vow_error(VOW_EDONE, "channel closed before the value was taken"));
    vow_promise_unref(w->promise);
    vow__free(w);
  }
  while ((w = pop_waiter(&ch->receivers)) != NULL) {
    vow_promise_resolve(w->promise, vow__iter_new(1, vow_undefined()));
    vow_promise_unref(w->promise);
    vow__free(w);
  }
}

/* for await (const v of channel): receive until done. */
static vow_value channel_values(vow_loop *loop, vow_asyncgen *gen, void *arg) {
  (void)loop, (void)gen;
  vow_channel *ch = arg;
  for (;;) {
    vow_value r;
    if (vow_await(vow_channel_recv(ch), &r) != 0) return vow_throw(r);
    if (vow_iter_done(r)) {
      vow_unref(r);
      break;
    }
    vow_value v = vow_ref(vow_iter_value(r));
    vow_unref(r);
    if (vow_yield(v, NULL) != 0) break; /* the consumer stopped */
  }
  return vow_undefined();
}

static void channel_unref_arg(void *ch) { vow_channel_unref(ch); }

vow_asyncgen *vow_channel_iter(vow_channel *ch) {
  if (!ch) return NULL;
  vow_async_options o = {.name = "channel", .arg_free = channel_unref_arg};
  return vow_asyncgen_new_ex(ch->loop, channel_values, vow_channel_ref(ch), &o);
}
