/*
 * value.h — the layout of reference-counted values (internal).
 *
 * Every heap kind starts with a vow_object header. refs counts owners;
 * VOW__IMMORTAL marks static objects that are never freed. Counts are plain
 * integers: a value belongs to one thread at a time.
 */
#ifndef VOW_VALUE_H
#define VOW_VALUE_H

#include "vow.h"

#define VOW__IMMORTAL UINT32_MAX

struct vow_object {
  uint32_t refs;
  uint8_t kind;    /* a vow_kind */
  uint8_t bits[3]; /* free for the kind's own use (promises keep state here) */
};

typedef struct vow__string {
  vow_object h;
  uint32_t len;
  char data[];     /* len bytes and a NUL */
} vow__string;

typedef struct vow__array {  /* ARRAY and AGGREGATE */
  vow_object h;
  uint32_t len;
  uint32_t cap;
  vow_value *items;
} vow__array;

typedef struct vow__error {
  vow_object h;
  int code;
  vow_value message; /* a STRING */
  vow_value cause;
} vow__error;

typedef struct vow__settled { /* SETTLED and ITER */
  vow_object h;     /* bits[0]: SETTLED 1 fulfilled, 0 rejected; ITER 1 done */
  vow_value value;
} vow__settled;

typedef struct vow__pointer {
  vow_object h;
  void *ptr;
  void (*destroy)(void *);
} vow__pointer;

static inline int vow__is_heap(vow_value v) {
  return v.kind >= VOW_STRING && v.as.obj != NULL;
}

/* vow_ref and vow_unref for vow's own hot paths: the same code, inline, so
 * that a promise job that passes a number along pays no call for it. */
void vow__object_free(vow_value v); /* the last reference went */
static inline vow_value vow__ref(vow_value v) {
  if (vow__is_heap(v) && v.as.obj->refs != VOW__IMMORTAL) v.as.obj->refs++;
  return v;
}
static inline void vow__unref(vow_value v) {
  if (!vow__is_heap(v) || v.as.obj->refs == VOW__IMMORTAL) return;
  if (--v.as.obj->refs == 0) vow__object_free(v);
}

/* Values built by the promise layer. */
vow_value vow__settled_new(int fulfilled, vow_value value /* taken */);
vow_value vow__aggregate_new(vow_value errors /* an ARRAY, taken */);
vow_value vow__iter_new(int done, vow_value value /* taken */);

/* Implemented by promise.c: frees a promise whose last reference went. */
void vow__promise_destroy(vow_promise *p);

#endif
