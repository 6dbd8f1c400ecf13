/*
 * fault_scenarios.h — the driver every fault-injection test shares: a
 * scenario is an async function run on a fresh loop with the failing
 * allocator armed (faults.h), and fault_scenario_check() runs it once with
 * nothing failing, then with each allocation failing in turn (FAULT_ONCE),
 * then with memory running out for good from each point on (FAULT_FROM).
 *
 * Rules each run is held to, whatever failed:
 *   - it ends: vow_loop_run returns (a hang is a failed test, by timeout);
 *   - it does not end with its scenario pending and no error (a lost wakeup);
 *   - the loop frees, and nothing leaks: no block from the hook and no pooled
 *     object outlives it (ASan builds also check the C heap).
 * With nothing failing, the scenario must fulfil with the string "done".
 */
#ifndef VOW_TEST_FAULT_SCENARIOS_H
#define VOW_TEST_FAULT_SCENARIOS_H

#include <criterion/criterion.h>

#include "faults.h"
#include "log.h"
#include "vow.h"

typedef struct fault_scenario {
  const char *name;
  vow_async_fn fn;           /* fulfils with "done" when nothing failed */
  vow_loop_options options;
  void (*before)(void);      /* each run, before the loop is made (NULL: none) */
  void (*after)(void);       /* each run, after it is freed (NULL: none) */
} fault_scenario;

static const fault_scenario *fault_current;

static void fault_quiet(vow_loop *l, vow_promise *p, vow_value r, void *d) {
  (void)l, (void)p, (void)r, (void)d;
}

/* One run of fault_current with allocation n failing (0: none). */
static int fault_scenario_once(long n, fault_mode how) {
  const fault_scenario *s = fault_current;
  const char *mode = how == FAULT_FROM ? "and on" : "once";
  if (s->before) s->before();
  fault_arm(n, how);
  vow_loop *loop;
  vow_loop_options opts = s->options;
  if (vow_loop_new(&loop, &opts) == 0) {
    vow_on_unhandled_rejection(loop, fault_quiet, NULL);
    vow_promise *p = vow_async(loop, s->fn, NULL);
    int rc = vow_loop_run(loop);
    if (n == 0)
      cr_assert_str_eq(vow_str(vow_promise_result(p)), "done", "%s: %s", s->name,
                       vow_str(vow_promise_result(p)));
    cr_assert(!p || rc != 0 || vow_promise_state(p) != VOW_PENDING,
              "%s: the run ended with its promise pending (allocation %ld failed, %s)", s->name, n,
              mode);
    vow_promise_unref(p);
    cr_assert_eq(vow_loop_free(loop), 0, "%s: the loop frees after a failure at allocation %ld",
                 s->name, n);
  }
  long live = fault_live;
  fault_disarm();
  if (s->after) s->after();
  cr_assert_eq(live, 0, "%s: %ld blocks leaked after a failure at allocation %ld (%s)", s->name,
               live, n, mode);
  cr_assert_eq(vow__pool_leaked, 0, "%s: pooled objects leaked after a failure at allocation %ld",
               s->name, n);
  return 0;
}

/* The whole check; returns how many allocations the scenario makes. */
static long fault_scenario_check(const fault_scenario *s) {
  fault_current = s;
  fault_scenario_once(0, FAULT_ONCE);
  long total = fault_allocations;
  cr_assert_gt(total, 0, "%s makes allocations", s->name);
  long failed = fault_every_site(fault_scenario_once, FAULT_ONCE);
  cr_assert_geq(failed + 1, total, "%s: every allocation was failed once (%ld of %ld)", s->name,
                failed, total);
  failed = fault_every_site(fault_scenario_once, FAULT_FROM);
  cr_assert_geq(failed + 1, total, "%s: memory ran out at every point (%ld of %ld)", s->name,
                failed, total);
  TEST_LEAK_CHECK();
  return total;
}

#endif
