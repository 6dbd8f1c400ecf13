/*
 * pool.c — per-loop free lists (see pool.h for the design).
 */
#include "core/alloc.h"
#include "core/pool.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>

/* Chunks grow with the pool: the first two are 64 KiB, then each is as big
 * as the pool so far, up to 8 MiB. A small program keeps a small pool; one
 * with millions of live promises asks the allocator a few dozen times. */
#define CHUNK_MIN (64 * 1024)
#define CHUNK_MAX (8 * 1024 * 1024)

/* Fresh memory costs a page fault per 4 KiB the first time it is touched
 * (about 4 us in a VM: more than the work a then step does on it). Chunks of
 * the big sizes ask for transparent huge pages, one fault per 2 MiB; where
 * THP is off or unsupported the advice is ignored. */
#define HUGE_CHUNK_MIN (4 * 1024 * 1024)

struct vow__pool_chunk {
  vow__pool_chunk *next;
  void *block;         /* what vow__malloc returned (the chunk may be inside) */
  /* Objects follow, aligned to 16 bytes. */
  _Alignas(16) char data[];
};

static size_t size_class(size_t size) {
  assert(size > 0 && size <= VOW__POOL_MAX);
  return (size - 1) / VOW__POOL_GRAIN;
}

_Thread_local uint64_t vow__pool_leaked;

void vow__pool_init(vow__pool *pool, int huge_pages) {
  *pool = (vow__pool){0};
  pool->huge_pages = huge_pages;
}

void vow__pool_destroy(vow__pool *pool) {
  vow__pool_leaked += pool->live;
  vow__pool_chunk *c = pool->chunks;
  while (c) {
    vow__pool_chunk *next = c->next;
    vow__free(c->block);
    c = next;
  }
  *pool = (vow__pool){0};
}

/* A chunk of size bytes; a big one at a huge-page boundary, advised for huge
 * pages. *block_size: what it took from the allocator. */
static vow__pool_chunk *chunk_new(size_t size, int huge_pages, size_t *block_size) {
  if (huge_pages && size >= HUGE_CHUNK_MIN) {
    void *block;
    vow__pool_chunk *c = vow__malloc_huge(size, &block, block_size); /* fault site: not ASan */
    if (c) c->block = block;
    return c;
  }
  *block_size = size;
  vow__pool_chunk *c = vow__malloc(size); /* fault site: not ASan */
  if (c) c->block = c;
  return c;
}

static int pool_grow(vow__pool *pool) {
  size_t size = pool->chunk_bytes < CHUNK_MIN   ? CHUNK_MIN
                : pool->chunk_bytes > CHUNK_MAX ? CHUNK_MAX
                                                : (size_t)pool->chunk_bytes;
  size_t block_size;
  vow__pool_chunk *c = chunk_new(size, pool->huge_pages, &block_size);
  if (!c) return -1;
  c->next = pool->chunks;
  pool->chunks = c;
  pool->bump = c->data;
  pool->bump_end = (char *)c + size;
  pool->chunk_bytes += size;
  pool->block_bytes += block_size;
  return 0;
}

/* What the inline paths leave: under ASan every object is a malloc; else
 * the free list was empty and the newest chunk too short, so a new chunk is
 * taken (the rest of the old one is abandoned). */
void *vow__pool_alloc_slow(vow__pool *pool, size_t size) {
  size_t rounded = (size_class(size) + 1) * VOW__POOL_GRAIN;
  void *p;
  if (VOW__POOL_USE_MALLOC) {
    if (!(p = vow__malloc(size))) return NULL; /* fault site: ASan only */
  } else {
    if (pool_grow(pool) != 0) return NULL;
    p = pool->bump;
    pool->bump += rounded;
  }
  pool->live++;
  pool->live_bytes += rounded;
  return p;
}

/* Under ASan (the inline path takes every object otherwise; ptr may be NULL). */
void vow__pool_free_slow(vow__pool *pool, void *ptr, size_t size) {
  if (!ptr) return;
  assert(VOW__POOL_USE_MALLOC && pool->live > 0);
  pool->live--;
  pool->live_bytes -= (size_class(size) + 1) * VOW__POOL_GRAIN;
  vow__free(ptr);
}
