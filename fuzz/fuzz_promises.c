/*
 * fuzz_promises.c — libFuzzer: random programs over promises, combinators,
 * timers and async functions, checked against vow's invariants:
 *   - every handler runs at most once, and exactly once if its promise settled
 *     while the loop ran to the end (checked through ctx_free: it runs once,
 *     after the handler ran or when it never will);
 *   - so a promise settles at most once, as its handlers observe it: a second
 *     settlement would run some handler twice;
 *   - nothing leaks: no pooled object outlives the loop (vow__pool_leaked),
 *     and AddressSanitizer sees no use after free or leak.
 *
 * The input is a byte code: each byte picks an operation, the next ones its
 * operands. Promises live in a small table of slots.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/pool.h"
#include "vow.h"

enum { SLOTS = 16 };

typedef struct input {
  const uint8_t *p;
  size_t n;
} input;

static uint8_t next_byte(input *in) {
  if (in->n == 0) return 0;
  in->n--;
  return *in->p++;
}

/* A handler's context holds no promise: a context that referenced the promise
 * its reaction hangs on would be a cycle of references only settling breaks
 * (as the header says). To return a promise it looks one up when it runs. */
typedef struct handler_ctx {
  int ran;      /* times the handler ran */
  int freed;    /* times ctx_free ran */
  uint8_t mode; /* what the handler returns */
  int adopt;    /* the slot whose promise it returns (mode 2) */
} handler_ctx;

static vow_promise *slots[SLOTS];
static handler_ctx *ctxs[4096];
static size_t nctxs;

static void ctx_free(void *c) {
  handler_ctx *h = c;
  h->freed++;
  if (h->freed != 1) abort(); /* ctx_free runs exactly once */
}

static vow_value handle(vow_loop *loop, vow_value v, void *c) {
  handler_ctx *h = c;
  if (++h->ran != 1 || h->freed) abort(); /* a reaction runs at most once, before release */
  switch (h->mode % 4) {
    case 0: return vow_ref(v);
    case 1: return vow_throw(vow_string("thrown"));
    case 2: return slots[h->adopt] ? vow_promise_value(vow_promise_ref(slots[h->adopt])) : vow_undefined();
    default: return vow_promise_value(vow_delay(loop, h->mode % 7, vow_int(h->mode)));
  }
}

static vow_value finally_fn(vow_loop *loop, void *c) {
  (void)loop;
  handler_ctx *h = c;
  if (++h->ran != 1) abort(); /* finally handlers have no ctx_free: freed stays negative */
  return h->mode % 5 == 0 ? vow_throw(vow_int(5)) : vow_undefined();
}

static handler_ctx *new_ctx(uint8_t mode) {
  if (nctxs == sizeof ctxs / sizeof ctxs[0]) return NULL;
  handler_ctx *h = calloc(1, sizeof *h);
  h->mode = mode;
  ctxs[nctxs++] = h;
  return h;
}

static void put(int slot, vow_promise *p) {
  vow_promise_unref(slots[slot]);
  slots[slot] = p;
}

/* A value, sometimes one of the promises (resolving with a promise adopts it).
 * Reasons are never promises: a promise rejected with a promise that depends
 * on it is a cycle of values, which the header asks programs not to make. */
static vow_value value_of(input *in) {
  uint8_t b = next_byte(in);
  int s = b % SLOTS;
  if (b & 0x80 && slots[s]) return vow_promise_value(vow_promise_ref(slots[s]));
  return b & 0x40 ? vow_string("s") : vow_int(b);
}

static vow_value reason_of(input *in) {
  uint8_t b = next_byte(in);
  return b & 0x40 ? vow_string("r") : vow_int(b);
}

typedef struct async_plan {
  input in;
} async_plan;

static vow_value async_body(vow_loop *loop, void *arg) {
  (void)loop;
  uint8_t awaits = *(uint8_t *)arg % 4;
  for (uint8_t i = 0; i < awaits; i++) {
    int s = (i * 5 + awaits) % SLOTS;
    vow_value v;
    if (slots[s]) vow_await(vow_promise_ref(slots[s]), &v);
    else vow_await_value(vow_int(i), &v);
    vow_unref(v);
  }
  return vow_int(awaits);
}

static void swallow(vow_loop *loop, vow_promise *p, vow_value reason, void *data) {
  (void)loop, (void)p, (void)reason, (void)data;
}

static void step(vow_loop *loop, input *in) {
  uint8_t op = next_byte(in);
  int a = next_byte(in) % SLOTS, b = next_byte(in) % SLOTS;
  switch (op % 12) {
    case 0: put(a, vow_promise_new(loop)); break;
    case 1: if (slots[a]) vow_promise_resolve(slots[a], value_of(in)); break;
    case 2: if (slots[a]) vow_promise_reject(slots[a], reason_of(in)); break;
    case 3: put(a, vow_resolved(loop, value_of(in))); break;
    case 4: put(a, vow_rejected(loop, reason_of(in))); break;
    case 5: {
      handler_ctx *h = slots[b] ? new_ctx(next_byte(in)) : NULL;
      if (!h) break;
      h->adopt = a;
      put(a, vow_then_full(slots[b], handle, op & 0x10 ? handle : NULL, h, ctx_free));
      break;
    }
    case 6: {
      handler_ctx *h = slots[b] ? new_ctx(next_byte(in)) : NULL;
      if (h) { h->freed = -1000; put(a, vow_finally(slots[b], finally_fn, h)); }
      break;
    }
    case 7: case 8: {
      vow_value items[4];
      size_t n = next_byte(in) % 5;
      for (size_t i = 0; i < n; i++) items[i] = value_of(in);
      vow_promise *(*combinator[])(vow_loop *, vow_value *, size_t) = {vow_all, vow_all_settled,
                                                                        vow_race, vow_any};
      put(a, combinator[(op >> 4) % 4](loop, items, n));
      break;
    }
    case 9: put(a, vow_delay(loop, next_byte(in) % 50, value_of(in))); break;
    case 10: {
      static uint8_t plans[256];
      uint8_t *plan = &plans[next_byte(in)];
      *plan = next_byte(in);
      put(a, vow_async(loop, async_body, plan));
      break;
    }
    default:
      if (op & 0x20) vow_loop_run(loop);
      else put(a, NULL);
      break;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  vow_loop *loop;
  vow_loop_options o = {.virtual_clock = 1, .stack_size = 64 * 1024};
  if (vow_loop_new(&loop, &o) != 0) return 0;
  vow_on_unhandled_rejection(loop, swallow, NULL);
  input in = {data, size};
  for (int i = 0; i < 256 && in.n > 0; i++) step(loop, &in);
  vow_loop_run(loop);
  /* Every handler whose promise settled ran exactly once. */
  for (int s = 0; s < SLOTS; s++) put(s, NULL);
  vow_loop_run(loop);
  vow_loop_free(loop);
  for (size_t i = 0; i < nctxs; i++) {
    handler_ctx *h = ctxs[i];
    if (h->ran > 1) abort();
    if (h->freed >= 0 && h->freed != 1) abort(); /* released exactly once, run or not */
    free(h);
  }
  nctxs = 0;
  if (vow__pool_leaked != 0) abort(); /* a pooled object outlived its loop */
  return 0;
}
