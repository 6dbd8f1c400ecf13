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

#endif
