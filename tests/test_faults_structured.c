/*
 * test_faults_structured.c — allocation failure at every allocation site of
 * task groups, cancel scopes and the async context (async/group.c, scope.c,
 * context.c, dump.c, core/context.c, and delay.c's watch of its scope), once and under sustained
 * out-of-memory, with the driver of test_faults.c: every run must end, with
 * nothing leaked and no promise left pending without an error.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/pool.h"
#include "fault_scenarios.h"
#include "log.h"
#include "vow.h"

static void sleep_ms(vow_loop *loop, uint64_t ms) {
  vow_await(vow_delay(loop, ms, vow_undefined()), NULL);
}

/* A child: sleeps; fails when asked; cleans up in a shield when cancelled. */
static vow_value child(vow_loop *loop, void *arg) {
  intptr_t how = (intptr_t)arg;
  vow_value v;
  int rc = vow_await(vow_delay(loop, (uint64_t)(how % 100), vow_undefined()), &v);
  vow_unref(v);
  if (rc == VOW_EABORTED || rc == VOW_ETIMEDOUT) {
    vow_scope *shield;
    if (vow_shield_begin(loop, &shield) == 0) {
      sleep_ms(loop, 1);
      vow_scope_end(shield, NULL);
    }
    return vow_throw(vow_error(rc, "cancelled"));
  }
  if (how >= 100) return vow_throw(vow_error(VOW_EINVAL, "failed"));
  return vow_int(how);
}

static vow_value returns_promise(vow_loop *loop, void *arg) {
  (void)arg;
  return vow_promise_value(vow_delay(loop, 3, vow_int(7)));
}

/* ---- the async context: bindings, and what captures them ---- */

static const char key;

static vow_value log_it(vow_loop *loop, vow_value v, void *ctx) {
  (void)loop, (void)ctx;
  return vow_ref(v);
}
static void task(vow_loop *loop, void *arg) {
  (void)loop, (void)arg;
}
static vow_value inner(vow_loop *loop, void *arg) {
  (void)arg;
  vow_await(vow_delay(loop, 1, vow_undefined()), NULL);
  return vow_ref(vow_context_get(loop, &key));
}

static int context_part(vow_loop *loop) {
  int ok = vow_context_set(loop, &key, vow_string("k")) == 0;
  vow_promise *r = vow_resolved(loop, vow_int(1));
  vow_promise *t = r ? vow_then(r, log_it, NULL, NULL) : NULL;
  ok &= t != NULL;
  vow_promise_unref(r);
  ok &= vow_await(t, NULL) == 0;
  ok &= vow_set_timeout(loop, 1, task, NULL) > 0;
  vow_timer i = vow_set_interval(loop, 1, task, NULL);
  ok &= i > 0;
  vow_clear_timer(loop, i);
  ok &= vow_set_immediate(loop, task, NULL) > 0;
  ok &= vow_queue_microtask(loop, task, NULL) == 0;
  vow_value v;
  ok &= vow_await(vow_context_run(loop, &key, vow_string("r"), inner, NULL, NULL), &v) == 0 &&
        vow_kind_of(v) == VOW_STRING;
  vow_unref(v);
  return ok;
}

static vow_value scenario(vow_loop *loop, void *arg) {
  (void)arg;
  int ok = 1;
  /* A scope's deadline cuts a delay short; nested and shielding scopes. */
  vow_scope *s, *inner, *shield;
  if (vow_scope_begin(loop, &(vow_scope_options){.timeout_ms = 5}, &s) == 0) {
    if (vow_scope_begin(loop, &(vow_scope_options){.timeout_ms = 50}, &inner) == 0) {
      ok &= vow_await(vow_delay(loop, 100, vow_undefined()), NULL) == VOW_ETIMEDOUT;
      vow_scope_end(inner, NULL);
    } else ok = 0;
    if (vow_shield_begin(loop, &shield) == 0) {
      ok &= vow_await(vow_delay(loop, 1, vow_undefined()), NULL) == 0;
      vow_scope_end(shield, NULL);
    } else ok = 0;
    ok &= vow_await(vow_delay(loop, 1, vow_undefined()), NULL) == VOW_ETIMEDOUT; /* cancelled already */
    ok &= vow_scope_end(s, NULL) == VOW_ETIMEDOUT;
  } else ok = 0;

  /* A group with a limit, a failure and an aggregate. */
  vow_group *g = vow_group_new(loop, &(vow_group_options){.limit = 2, .aggregate = 1});
  if (g) {
    for (intptr_t i = 0; i < 4; i++)
      if (vow_group_spawn(g, child, (void *)(i == 1 ? 102 : 5 + i * 10), NULL) != 0) ok = 0;
    vow_value v;
    ok &= vow_group_await(g, &v) == VOW_EREJECTED && vow_kind_of(v) == VOW_AGGREGATE;
    vow_unref(v);
    vow_group_unref(g);
  } else ok = 0;

  /* A group with a deadline and a signal, inside a scope; a child that
   * returns a promise. */
  vow_abort_signal *sig = vow_abort_signal_new(loop);
  if (sig && vow_scope_begin(loop, &(vow_scope_options){.signal = sig}, &s) == 0) {
    g = vow_group_new(loop, &(vow_group_options){.timeout_ms = 20, .signal = sig});
    if (g) {
      ok &= vow_group_spawn(g, child, (void *)(intptr_t)2, NULL) == 0;
      ok &= vow_group_spawn(g, returns_promise, NULL, NULL) == 0;
      ok &= vow_group_spawn(g, child, (void *)(intptr_t)90, NULL) == 0;
      vow_value v;
      ok &= vow_group_await(g, &v) == VOW_EREJECTED && vow_error_code(v) == VOW_ETIMEDOUT;
      vow_unref(v);
      vow_group_unref(g);
    } else ok = 0;
    vow_abort(sig, vow_undefined());
    ok &= vow_await(vow_resolved(loop, vow_int(1)), NULL) == VOW_EABORTED;
    vow_scope_end(s, NULL);
  } else ok = 0;
  vow_abort_signal_unref(sig);

  /* A group released before it is awaited; one made in a cancelled scope. */
  g = vow_group_new(loop, NULL);
  if (g) {
    ok &= vow_group_spawn(g, child, (void *)(intptr_t)50, NULL) == 0;
    vow_group_unref(g);
  } else ok = 0;
  if (vow_scope_begin(loop, NULL, &s) == 0) {
    vow_scope_cancel(s, vow_undefined());
    g = vow_group_new(loop, NULL);
    if (g) {
      ok &= vow_group_spawn(g, child, NULL, NULL) == VOW_EABORTED;
      ok &= vow_group_await(g, NULL) == VOW_EREJECTED;
      vow_group_unref(g);
    } else ok = 0;
    vow_scope_end(s, NULL);
  } else ok = 0;
  sleep_ms(loop, 60);
  ok &= context_part(loop);
  return vow_string(ok ? "done" : "wrong");
}

Test(faults_structured, groups_and_scopes) {
  setenv("VOW_DUMP_ON", "SIGUSR2", 1); /* dump.c's state is made too, and fails */
  static const fault_scenario s = {.name = "groups and scopes", .fn = scenario,
                                   .options = {.virtual_clock = 1, .stack_size = 64 * 1024}};
  fault_scenario_check(&s);
}
