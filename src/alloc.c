/*
 * alloc.c — the allocator hook (see vow_set_allocator in vow.h).
 */
#define _GNU_SOURCE /* madvise's MADV_HUGEPAGE (Linux) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "alloc.h"
#include "vow.h"

/* Big blocks (the microtask ring of a million jobs, all()'s array of a
 * million values) are fresh memory touched from end to end, at a page fault
 * per 4 KiB. The C library maps them on their own; asking for transparent
 * huge pages on their 2 MiB-aligned interior makes that a fault per 2 MiB.
 * Only for the C library's allocator: a user's allocator manages its memory. */
#define HUGE_PAGE ((uintptr_t)2 << 20)
#define HUGE_BLOCK_MIN ((size_t)4 << 20)

static void advise_huge_pages(void *block, size_t size) {
#ifdef MADV_HUGEPAGE
  uintptr_t lo = ((uintptr_t)block + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
  uintptr_t hi = ((uintptr_t)block + size) & ~(HUGE_PAGE - 1);
  if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE); /* advice only */
#else
  (void)block, (void)size;
#endif
}

static void *default_realloc(void *ptr, size_t size, void *ctx) {
  (void)ctx;
  if (size == 0) {
    free(ptr);
    return NULL;
  }
  void *block = realloc(ptr, size);
  if (block && size >= HUGE_BLOCK_MIN) advise_huge_pages(block, size);
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
