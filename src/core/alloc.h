/*
 * alloc.h — every allocation vow makes goes through these, so that a program
 * can supply its own allocator and tests can make the Nth allocation fail.
 * (Coroutine stacks are mmap'd and do not come through here.)
 */
#ifndef VOW_ALLOC_H
#define VOW_ALLOC_H

#include <stddef.h>

void *vow__malloc(size_t size);
void *vow__calloc(size_t count, size_t size);
void *vow__realloc(void *ptr, size_t size);
void vow__free(void *ptr);
char *vow__strdup(const char *s);

/* Transparent huge pages (Linux; elsewhere the advice is a no-op). Fresh
 * memory costs a page fault per 4 KiB the first time it is touched; memory
 * advised for huge pages, one per 2 MiB. */
#define VOW__HUGE_PAGE ((size_t)2 << 20)
/* size bytes at a huge-page boundary, advised for huge pages: the block is
 * over-allocated by VOW__HUGE_PAGE (slack never touched: address space, not
 * memory). *block gets what to vow__free, *block_size its size. NULL when out
 * of memory. */
void *vow__malloc_huge(size_t size, void **block, size_t *block_size);
/* Advises the huge-page-aligned part of [p, p + size) for huge pages. */
void vow__advise_huge_pages(void *p, size_t size);

#endif
