/*
 * test_context.c — async-local context (vow_context_set/get/run), checked
 * against Node's AsyncLocalStorage.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "log.h"
#include "vow.h"

static vow_loop *loop;
static const char als; /* the key: any address */

/* The virtual clock: a timer is due only when the loop has nothing else to
 * run, so "immediate before a 1 ms timeout" does not depend on the machine. */
static void setup(void) {
  log_reset();
  vow_loop_options o = {.virtual_clock = 1};
  cr_assert_eq(vow_loop_new(&loop, &o), 0);
}
static void teardown(void) {
  vow_loop_free(loop);
}
TestSuite(context, .init = setup, .fini = teardown);

#define END()            \
  do {                   \
    vow_loop_free(loop); \
    loop = NULL;         \
    TEST_LEAK_CHECK();   \
  } while (0)

static const char *store(void) {
  vow_value v = vow_context_get(loop, &als);
  return vow_kind_of(v) == VOW_STRING ? vow_str(v) : "undefined";
}

static vow_value log_then(vow_loop *l, vow_value v, void *tag) {
  (void)l, (void)v;
  LOG("%s:%s", (const char *)tag, store());
  return vow_undefined();
}
static void log_task(vow_loop *l, void *tag) {
  (void)l;
  LOG("%s:%s", (const char *)tag, store());
}

static vow_value child(vow_loop *l, void *tag) {
  (void)l;
  LOG("%s:%s", (const char *)tag, store());
  vow_await_value(vow_null(), NULL);
  LOG("%s-after-await:%s", (const char *)tag, store());
  return vow_undefined();
}

static vow_value in_run(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  vow_await_value(vow_null(), NULL);
  LOG("run:%s", store());
  return vow_undefined();
}

/*
 *   const als = new AsyncLocalStorage();
 *   async function child(tag) {
 *     log.push(`${tag}:${als.getStore()}`);
 *     await null;
 *     log.push(`${tag}-after-await:${als.getStore()}`);
 *   }
 *   async function main() {
 *     await null;
 *     log.push(`main:${als.getStore()}`);
 *     als.enterWith('A');
 *     Promise.resolve(1).then(() => log.push(`then:${als.getStore()}`));
 *     setTimeout(() => log.push(`timeout:${als.getStore()}`), 1);
 *     setImmediate(() => log.push(`immediate:${als.getStore()}`));
 *     queueMicrotask(() => log.push(`microtask:${als.getStore()}`));
 *     const c = child('child');
 *     als.enterWith('B');
 *     await c;
 *     log.push(`main-after:${als.getStore()}`);
 *     await als.run('R', async () => { await null; log.push(`run:${als.getStore()}`); });
 *     log.push(`main-after-run:${als.getStore()}`);
 *     await new Promise(r => setTimeout(r, 5));
 *   }
 *   const p = main();
 *   log.push(`caller:${als.getStore()}`);
 *   p.then(() => { log.push(`end:${als.getStore()}`); console.log(log.join(' ')); });
 *
 * node prints:
 *   caller:undefined main:undefined child:A then:A microtask:A child-after-await:A
 *   main-after:B run:R main-after-run:B immediate:A timeout:A end:undefined
 * (main awaits first: in Node the part of an async function before its first
 * await runs in its caller's context, so enterWith there would leak into the
 * caller; in vow a function's bindings never reach its caller.)
 */
static vow_value node_main(vow_loop *l, void *arg) {
  (void)arg;
  vow_await_value(vow_null(), NULL);
  LOG("main:%s", store());
  cr_assert_eq(vow_context_set(l, &als, vow_string("A")), 0);
  vow_promise *r = vow_resolved(l, vow_int(1));
  vow_promise_unref(vow_then(r, log_then, NULL, "then"));
  vow_promise_unref(r);
  vow_set_timeout(l, 1, log_task, "timeout");
  vow_set_immediate(l, log_task, "immediate");
  vow_queue_microtask(l, log_task, "microtask");
  vow_promise *c = vow_async(l, child, "child");
  cr_assert_eq(vow_context_set(l, &als, vow_string("B")), 0);
  vow_await(c, NULL);
  LOG("main-after:%s", store());
  vow_await(vow_context_run(l, &als, vow_string("R"), in_run, NULL, NULL), NULL);
  LOG("main-after-run:%s", store());
  vow_await(vow_delay(l, 5, vow_undefined()), NULL);
  return vow_undefined();
}

Test(context, inherited_like_async_local_storage) {
  vow_promise *p = vow_async(loop, node_main, NULL);
  LOG("caller:%s", store());
  vow_promise_unref(vow_then(p, log_then, NULL, "end"));
  vow_promise_unref(p);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(g_log.text,
                   "caller:undefined main:undefined child:A then:A microtask:A child-after-await:A "
                   "main-after:B run:R main-after-run:B immediate:A timeout:A end:undefined");
  END();
}

/* Intervals keep their context on every run; a cleared timer releases it;
 * a binding made in a callback outside async functions ends with it. */
static int ticks;
static vow_timer interval_id;
static void tick(vow_loop *l, void *arg) {
  (void)arg;
  LOG("tick:%s", store());
  if (++ticks == 2) vow_clear_timer(l, interval_id);
}
static void binds(vow_loop *l, void *arg) {
  (void)arg;
  vow_context_set(l, &als, vow_string("callback"));
  LOG("in:%s", store());
}
static void after(vow_loop *l, void *arg) {
  (void)l, (void)arg;
  LOG("after:%s", store());
}

static vow_value timers_main(vow_loop *l, void *arg) {
  (void)arg;
  vow_context_set(l, &als, vow_string("I"));
  interval_id = vow_set_interval(l, 1, tick, NULL);
  vow_timer never = vow_set_timeout(l, 1, log_task, "never");
  cr_assert_eq(vow_clear_timer(l, never), 1);
  vow_timer imm = vow_set_immediate(l, log_task, "never");
  cr_assert_eq(vow_clear_timer(l, imm), 1);
  return vow_undefined();
}

Test(context, timers_keep_and_release_their_context) {
  ticks = 0;
  vow_promise_unref(vow_async(loop, timers_main, NULL));
  vow_set_timeout(loop, 10, binds, NULL);
  vow_set_timeout(loop, 20, after, NULL);
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(g_log.text, "tick:I tick:I in:callback after:undefined");
  END();
}

/* Group children inherit the spawner's context; the values are released with
 * the last binding that holds them (LeakSanitizer, in ASan builds). */
static vow_value in_group(vow_loop *l, void *tag) {
  vow_await(vow_delay(l, 1, vow_undefined()), NULL);
  LOG("%s:%s", (const char *)tag, store());
  return vow_undefined();
}

static vow_value group_main(vow_loop *l, void *arg) {
  (void)arg;
  vow_context_set(l, &als, vow_string("req-42"));
  vow_group *g = vow_group_new(l, NULL);
  vow_group_spawn(g, in_group, "a", NULL);
  vow_group_spawn(g, in_group, "b", NULL);
  vow_group_await(g, NULL);
  vow_group_unref(g);
  return vow_undefined();
}

Test(context, group_children_inherit) {
  vow_promise_unref(vow_async(loop, group_main, NULL));
  cr_assert_eq(vow_loop_run(loop), 0);
  cr_assert_str_eq(g_log.text, "a:req-42 b:req-42");
  END();
}

Test(context, misuse_is_refused) {
  cr_assert_eq(vow_context_set(NULL, &als, vow_string("x")), VOW_EINVAL);
  cr_assert_eq(vow_context_set(loop, NULL, vow_string("x")), VOW_EINVAL);
  cr_assert(vow_is_undefined(vow_context_get(NULL, &als)));
  cr_assert_null(vow_context_run(loop, &als, vow_string("x"), NULL, NULL, NULL));
  /* At the top level a binding lasts for the loop's life. */
  cr_assert_eq(vow_context_set(loop, &als, vow_string("top")), 0);
  cr_assert_str_eq(store(), "top");
  END();
}
