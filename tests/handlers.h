/*
 * handlers.h — promise handlers the ordering tests build with: each logs its
 * label (and the value it received) and returns undefined, like
 * `v => log(label + ' ' + v)` in the JavaScript the tests quote.
 */
#ifndef VOW_TEST_HANDLERS_H
#define VOW_TEST_HANDLERS_H

#include "log.h"
#include "vow.h"

static inline vow_value say(vow_loop *l, vow_value v, void *label) {
  (void)l, (void)v;
  LOG("%s", (const char *)label);
  return vow_undefined();
}

static inline vow_value say_value(vow_loop *l, vow_value v, void *label) {
  (void)l;
  char buf[256];
  vow_value_format(v, buf, sizeof buf);
  LOG("%s %s", (const char *)label, buf);
  return vow_undefined();
}

#endif
