/*
 * alloc.c — the allocator hook (see vow_set_allocator in vow.h).
 */
#define _GNU_SOURCE /* madvise's MADV_HUGEPAGE (Linux) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/alloc.h"
#include "vow.h"

/* Big blocks (the microtask ring of a million jobs, all()'s array of a
 * million values) are fresh memory touched from end to end: with the C
 * library's allocator, which maps them on their own, they are advised for
 * huge pages. A user's allocator manages its own memory and gets no advice. */
#define HUGE_BLOCK_MIN ((size_t)4 << 20)

static uintptr_t huge_align_up(uintptr_t a) {
  return (a + VOW__HUGE_PAGE - 1) & ~(uintptr_t)(VOW__HUGE_PAGE - 1);
}

void vow__advise_huge_pages(void *p, size_t size) {
#ifdef MADV_HUGEPAGE
  uintptr_t lo = huge_align_up((uintptr_t)p);
  uintptr_t hi = ((uintptr_t)p + size) & ~(uintptr_t)(VOW__HUGE_PAGE - 1);
  if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE); /* advice: may fail */
#else
  (void)p, (void)size;
#endif
}

void *vow__malloc_huge(size_t size, void **block, size_t *block_size) {
  *block_size = size + VOW__HUGE_PAGE;
  *block = vow__malloc(*block_size);
  if (!*block) return NULL;
  void *at = (void *)huge_align_up((uintptr_t)*block);
  vow__advise_huge_pages(at, size);
  return at;
}

static void *default_realloc(void *ptr, size_t size, void *ctx) {
  (void)ctx;
  if (size == 0) {
    free(ptr);
    return NULL;
  }
  void *block = realloc(ptr, size);
  if (block && size >= HUGE_BLOCK_MIN) vow__advise_huge_pages(block, size);
  return block;
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
