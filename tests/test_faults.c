/*
 * test_faults.c — allocation failure at every allocation site of a scenario.
 *
 * The scenario below touches most of vow: timers, promises, then/catch/
 * finally, the combinators, async functions, async generators and for-await,
 * channels, the concurrency-limited map, abort signals, vow_timeout. It is run
 * again and again with an allocator that fails the 1st allocation, then the
 * 2nd, and so on until a run sees no failure. Every run must end — with a
 * result, a rejection or an error code — without a crash, and with nothing
 * leaked (pooled objects are counted; ASan builds also check the heap).
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "faults.h"
#include "log.h"
#include "vow.h"

static vow_value upper(vow_loop *l, vow_value v, void *ctx) {
  (void)l, (void)ctx;
  return vow_stringf("%s!", vow_str(v));
}
static vow_value ignore(vow_loop *l, vow_value v, void *ctx) {
  (void)l, (void)v, (void)ctx;
  return vow_undefined();
}
static vow_value nothing(vow_loop *l, void *ctx) {
  (void)l, (void)ctx;
  return vow_undefined();
}
static vow_value numbers(vow_loop *l, vow_asyncgen *g, void *arg) {
  (void)g, (void)arg;
  for (int i = 0; i < 3; i++) {
    if (vow_await(vow_delay(l, 1, vow_undefined()), NULL) != 0) break;
    if (vow_yield(vow_int(i), NULL) != 0) break;
  }
  return vow_undefined();
}
static vow_promise *double_it(vow_loop *l, vow_value item, size_t i, vow_abort_signal *s, void *c) {
  (void)i, (void)s, (void)c;
  return vow_delay(l, 1, vow_int(vow_as_int(item) * 2));
}
static void channel_unref_arg(void *ch) { vow_channel_unref(ch); }
static vow_value producer(vow_loop *l, void *ch) {
  (void)l;
  for (int i = 0; i < 3; i++) vow_await(vow_channel_send(ch, vow_int(i)), NULL);
  vow_channel_close(ch);
  return vow_undefined();
}

static vow_value scenario(vow_loop *loop, void *arg) {
  (void)arg;
  vow_value v;
  /* then, finally, catch */
  vow_promise *a = vow_delay(loop, 2, vow_string("a"));
  vow_promise *b = vow_then(a, upper, NULL, NULL);
  vow_promise *c = vow_finally(b, nothing, NULL);
  vow_promise *x = vow_rejected(loop, vow_string("x"));
  vow_promise_unref(vow_catch(x, ignore, NULL));
  vow_promise_unref(x);
  /* combinators */
  vow_value items[] = {vow_promise_value(vow_promise_ref(c)), vow_int(3), vow_string("s")};
  if (vow_await(vow_all(loop, items, 3), &v) == 0) vow_unref(v); else vow_unref(v);
  vow_value settled[] = {vow_promise_value(vow_rejected(loop, vow_int(1))), vow_int(2)};
  vow_await(vow_all_settled(loop, settled, 2), &v), vow_unref(v);
  vow_value anys[] = {vow_promise_value(vow_rejected(loop, vow_int(1))), vow_promise_value(vow_delay(loop, 1, vow_int(5)))};
  vow_await(vow_any(loop, anys, 2), &v), vow_unref(v);
  vow_value races[] = {vow_promise_value(vow_delay(loop, 3, vow_int(1))), vow_promise_value(vow_delay(loop, 1, vow_int(2)))};
  vow_await(vow_race(loop, races, 2), &v), vow_unref(v);
  /* for await over a generator and over an array */
  vow_for_await it;
  if (vow_for_await_gen(&it, vow_asyncgen_new(loop, numbers, NULL)) == 0) {
    VOW_FOR_AWAIT(&it, x) (void)x;
    vow_for_await_end(&it, NULL);
  }
  vow_value arr[] = {vow_int(1), vow_promise_value(vow_delay(loop, 1, vow_int(2)))};
  if (vow_for_await_array(&it, loop, arr, 2) == 0) {
    VOW_FOR_AWAIT(&it, x) (void)x;
    vow_for_await_end(&it, NULL);
  }
  /* a channel, a map, a timeout that aborts */
  vow_channel *ch = vow_channel_new(loop, 1);
  if (ch) {
    vow_async_options po = {.arg_free = channel_unref_arg}; /* the producer's own reference */
    vow_promise_unref(vow_async_ex(loop, producer, vow_channel_ref(ch), &po));
    vow_for_await_gen(&it, vow_channel_iter(ch));
    VOW_FOR_AWAIT(&it, x) (void)x;
    vow_for_await_end(&it, NULL);
    vow_channel_unref(ch);
  }
  vow_value mapped[] = {vow_int(1), vow_int(2), vow_int(3)};
  vow_map_options o = {.concurrency = 2};
  vow_await(vow_map(loop, mapped, 3, double_it, NULL, &o), &v), vow_unref(v);
  vow_abort_signal *s = vow_abort_signal_new(loop);
  vow_await(vow_timeout(loop, vow_delay(loop, 50, vow_undefined()), 5, s), &v), vow_unref(v);
  vow_abort_signal_unref(s);
  vow_promise_unref(a), vow_promise_unref(b), vow_promise_unref(c);
  return vow_string("done");
}

static void quiet(vow_loop *l, vow_promise *p, vow_value r, void *d) {
  (void)l, (void)p, (void)r, (void)d;
}

/* One run with the given failure point (0: none); any outcome is fine, ending
 * with nothing leaked is what matters. */
static int run_once(long n, fault_mode how) {
  fault_arm(n, how);
  vow_loop *loop;
  vow_loop_options opts = {.virtual_clock = 1, .stack_size = 64 * 1024};
  if (vow_loop_new(&loop, &opts) == 0) {
    vow_on_unhandled_rejection(loop, quiet, NULL);
    vow_promise *p = vow_async(loop, scenario, NULL);
    vow_loop_run(loop);
    if (n == 0) cr_assert_str_eq(vow_str(vow_promise_result(p)), "done");
    vow_promise_unref(p);
    cr_assert_eq(vow_loop_free(loop), 0, "the loop frees after a failure at allocation %ld", n);
  }
  fault_disarm();
  cr_assert_eq(vow__pool_leaked, 0, "pooled objects leaked after a failure at allocation %ld", n);
  return 0;
}

Test(faults, every_allocation_can_fail) {
  run_once(0, FAULT_ONCE); /* the scenario works at all */
  long total = fault_allocations;
  cr_assert_gt(total, 50, "the scenario makes allocations (%ld)", total);
  long failed = fault_every_site(run_once, FAULT_ONCE);
  cr_assert_geq(failed + 1, total, "every allocation site was failed once (%ld of %ld)", failed, total);
  TEST_LEAK_CHECK();
}

/* Sustained out-of-memory: from allocation n on, nothing can be had. */
Test(faults, sustained_out_of_memory_from_every_point) {
  run_once(0, FAULT_ONCE);
  long total = fault_allocations;
  long failed = fault_every_site(run_once, FAULT_FROM);
  cr_assert_geq(failed + 1, total, "memory ran out at every point (%ld of %ld)", failed, total);
  TEST_LEAK_CHECK();
}

/* ---- every allocation goes through the hook ---- */

/* An allocator that puts a tag before each block: freeing anything that did
 * not come from it (memory from strdup, or from libcurl) would be caught. */
typedef struct tag {
  uint64_t magic;
  uint64_t size;
} tag;
#define TAG_MAGIC 0x766f77616c6c6f63ull
static long live_blocks;

static void *tagging_realloc(void *ptr, size_t size, void *ctx) {
  (void)ctx;
  tag *t = ptr ? (tag *)ptr - 1 : NULL;
  if (t && t->magic != TAG_MAGIC) abort(); /* not ours: a mismatched free */
  if (size == 0) {
    t->magic = 0;
    free(t);
    live_blocks--;
    return NULL;
  }
  tag *n = realloc(t, sizeof *n + size);
  if (!n) return NULL;
  if (!t) live_blocks++;
  n->magic = TAG_MAGIC;
  n->size = size;
  return n + 1;
}

static vow_value echo(vow_loop *l, vow_request *req, void *data) {
  (void)l, (void)data;
  vow_value r = vow_http_response(200, "text/plain", vow_stringf("%s %s", vow_request_method(req),
                                                                 vow_request_target(req)));
  vow_http_response_header(r, "X-Echo", "yes");
  return r;
}

static vow_value round_trip(vow_loop *loop, void *server) {
  char url[64];
  snprintf(url, sizeof url, "http://127.0.0.1:%d/hello?x=1", vow_server_port(server));
  vow_value res, text;
  cr_assert_eq(vow_await(vow_fetch(loop, url, NULL), &res), 0);
  cr_assert_str_eq(vow_response_header(vow_as_response(res), "x-echo"), "yes");
  cr_assert_eq(vow_await(vow_response_text(vow_as_response(res)), &text), 0);
  cr_assert_str_eq(vow_str(text), "GET /hello?x=1");
  vow_unref(text);
  vow_unref(res);
  vow_await(vow_server_close(server), NULL);
  return vow_undefined();
}

Test(faults, fetch_and_server_allocate_through_the_hook) {
  live_blocks = 0;
  vow_allocator a = {tagging_realloc, NULL};
  cr_assert_eq(vow_set_allocator(&a), 0);
  vow_loop *loop;
  cr_assert_eq(vow_loop_new(&loop, NULL), 0);
  vow_server *server;
  cr_assert_eq(vow_server_listen(loop, NULL, echo, NULL, &server), 0);
  vow_promise *p = vow_async(loop, round_trip, server);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_eq(vow_promise_state(p), VOW_FULFILLED);
  vow_promise_unref(p);
  cr_assert_eq(vow_loop_free(loop), 0);
  vow_set_allocator(NULL);
  cr_assert_eq(live_blocks, 0, "%ld blocks from the hook were never given back", live_blocks);
}
