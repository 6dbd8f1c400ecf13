/*
 * test_faults_dump.c — out of memory in the table of pending promises that
 * VOW_DUMP_ON=exit keeps (src/promise/pending.c), on the shared driver
 * (fault_scenarios.h): the table itself and each time it grows may fail;
 * a promise that cannot be listed is counted as missed, and nothing else
 * changes.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/pool.h"
#include "fault_scenarios.h"
#include "log.h"
#include "vow.h"

/* More pending promises at once than the table's first size holds (64 slots,
 * at most half full), so that it grows; they all settle, and a dump with
 * backtraces runs meanwhile. */
#define MANY 40

static vow_value waits(vow_loop *l, void *p) {
  (void)l;
  vow_value v;
  int rc = vow_await(vow_promise_ref(p), &v);
  vow_unref(v);
  return vow_int(rc);
}

static vow_value scenario(vow_loop *loop, void *arg) {
  (void)arg;
  vow_promise *ps[MANY];
  for (int i = 0; i < MANY; i++) ps[i] = vow_promise_new(loop);
  int ok = 1;
  for (int i = 0; i < MANY; i++) ok &= ps[i] != NULL;
  vow_promise *w = ok ? vow_async(loop, waits, ps[0]) : NULL;
  FILE *devnull = fopen("/dev/null", "w");
  if (devnull) {
    ok &= vow_loop_dump_ex(loop, devnull, VOW_DUMP_BACKTRACE) >= 0;
    fclose(devnull);
  }
  for (int i = 0; i < MANY; i++)
    if (ps[i]) vow_promise_resolve(ps[i], vow_int(i));
  if (w) ok &= vow_await(w, NULL) == 0;
  for (int i = 0; i < MANY; i++) vow_promise_unref(ps[i]);
  return vow_string(ok ? "done" : "wrong");
}

static int saved_stderr = -1;

static void quiet_stderr(void) {
  setenv("VOW_DUMP_ON", "exit", 1);
  fflush(stderr);
  saved_stderr = dup(2);
  int fd = open("/dev/null", O_WRONLY);
  dup2(fd, 2);
  close(fd);
}

static void restore_stderr(void) {
  fflush(stderr);
  dup2(saved_stderr, 2);
  close(saved_stderr);
  unsetenv("VOW_DUMP_ON");
}

Test(faults_dump, pending_table) {
  static const fault_scenario s = {.name = "pending promises table", .fn = scenario,
                                   .options = {.virtual_clock = 1},
                                   .before = quiet_stderr, .after = restore_stderr};
  fault_scenario_check(&s);
}
