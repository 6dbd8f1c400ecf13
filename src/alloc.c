/*
 * alloc.c — the allocator hook (see vow_set_allocator in vow.h).
 */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "vow.h"

static void *default_realloc(void *ptr, size_t size, void *ctx) {
  (void)ctx;
  if (size == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, size);
}

static vow_allocator current = {default_realloc, NULL};

int vow_set_allocator(const vow_allocator *allocator) {
  if (allocator && !allocator->realloc) return VOW_EINVAL;
  current = allocator ? *allocator : (vow_allocator){default_realloc, NULL};
  return 0;
}

void *vow__malloc(size_t size) {
  return current.realloc(NULL, size ? size : 1, current.ctx);
}

void *vow__calloc(size_t count, size_t size) {
  if (size && count > (size_t)-1 / size) return NULL;
  size_t n = count * size;
  void *p = vow__malloc(n);
  if (p) memset(p, 0, n ? n : 1);
  return p;
}

void *vow__realloc(void *ptr, size_t size) {
  return current.realloc(ptr, size ? size : 1, current.ctx);
}

void vow__free(void *ptr) {
  if (ptr) current.realloc(ptr, 0, current.ctx);
}

char *vow__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *c = vow__malloc(n);
  if (c) memcpy(c, s, n);
  return c;
}
