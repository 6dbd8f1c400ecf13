/*
 * pending.c — the side table of a loop's pending promises, kept only when
 * asked: VOW_DUMP_ON containing "exit" (async/dump.c reports what is still
 * pending when the loop is freed, through vow__pending_each).
 *
 * Cost when not asked: one test of the promise layer's state at promise
 * creation (st->pending, NULL) and one of the promise's own flags (P_LISTED,
 * never set) when it settles or is destroyed pending.
 *
 * The table is a set of pointers, open addressing with linear probing and
 * backward-shift deletion (no tombstones), at most half full. A promise is
 * in it exactly when P_LISTED is set in its flags: added pending at
 * creation, removed when it settles or is destroyed. When the table cannot
 * grow (out of memory), the promise is simply not listed, and counted in
 * `missed`, which the report states.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "promise/promise.h"

struct vow__pending {
  vow_promise **slots;
  size_t cap; /* a power of two, or 0 */
  size_t len;
  size_t missed; /* pending promises that could not be listed */
};

static size_t slot_of(const vow__pending *t, const vow_promise *p) {
  uintptr_t h = (uintptr_t)p >> 5; /* pool objects are 32-byte aligned */
  h *= (uintptr_t)0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 16) & (t->cap - 1);
}

static void insert(vow__pending *t, vow_promise *p) {
  size_t i = slot_of(t, p);
  while (t->slots[i]) i = (i + 1) & (t->cap - 1);
  t->slots[i] = p;
  t->len++;
}

static int grow(vow__pending *t) {
  size_t cap = t->cap ? t->cap * 2 : 64;
  vow_promise **slots = vow__calloc(cap, sizeof *slots);
  if (!slots) return -1;
  vow_promise **old = t->slots;
  size_t old_cap = t->cap;
  t->slots = slots;
  t->cap = cap;
  t->len = 0;
  for (size_t i = 0; i < old_cap; i++)
    if (old[i]) insert(t, old[i]);
  vow__free(old);
  return 0;
}

/* Whether VOW_DUMP_ON has the item "exit" (async/dump.c reads the rest). */
static int exit_report_wanted(void) {
  const char *spec = getenv("VOW_DUMP_ON");
  for (const char *p = spec ? spec : ""; *p;) {
    size_t len = strcspn(p, ",");
    if (len == 4 && strncmp(p, "exit", 4) == 0) return 1;
    p += len;
    if (*p == ',') p++;
  }
  return 0;
}

vow__pending *vow__pending_new(void) {
  /* A diagnostic aid: without memory, no table and no report. */
  return exit_report_wanted() ? vow__calloc(1, sizeof(vow__pending)) : NULL;
}

void vow__pending_add(vow__pending *t, vow_promise *p) {
  if ((t->len + 1) * 2 > t->cap && grow(t) != 0) {
    t->missed++;
    return;
  }
  insert(t, p);
  P_FLAGS(p) |= P_LISTED;
}

void vow__pending_remove(vow_promise *p) {
  P_FLAGS(p) &= (uint8_t)~P_LISTED;
  vow__promise_state *st = vow__loop_ext(p->loop, VOW__EXT_PROMISE);
  vow__pending *t = st ? st->pending : NULL;
  if (!t || !t->cap) return;
  size_t i = slot_of(t, p);
  while (t->slots[i] != p) {
    if (!t->slots[i]) return; /* (not there: cannot happen while P_LISTED is honest) */
    i = (i + 1) & (t->cap - 1);
  }
  /* Backward shift: move up every later entry of the run that may sit in
   * the hole, so that no lookup meets an empty slot before its entry. */
  size_t hole = i;
  for (size_t j = (i + 1) & (t->cap - 1); t->slots[j]; j = (j + 1) & (t->cap - 1)) {
    size_t home = slot_of(t, t->slots[j]);
    /* The entry at j may move to hole if its home is not in (hole, j]. */
    int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (!stays) {
      t->slots[hole] = t->slots[j];
      hole = j;
    }
  }
  t->slots[hole] = NULL;
  t->len--;
}

size_t vow__pending_each(vow_loop *loop, void (*fn)(vow_promise *p, void *ctx), void *ctx,
                         size_t *missed) {
  vow__promise_state *st = vow__loop_ext(loop, VOW__EXT_PROMISE);
  vow__pending *t = st ? st->pending : NULL;
  if (missed) *missed = t ? t->missed : 0;
  if (!t) return 0;
  for (size_t i = 0; i < t->cap; i++)
    if (t->slots[i]) fn(t->slots[i], ctx);
  return t->len;
}

void vow__pending_free(vow_loop *loop, vow__pending *t) {
  (void)loop;
  if (!t) return;
  for (size_t i = 0; i < t->cap; i++)
    if (t->slots[i]) P_FLAGS(t->slots[i]) &= (uint8_t)~P_LISTED;
  vow__free(t->slots);
  vow__free(t);
}
