/*
 * pool.c — per-loop free lists (see pool.h for the design).
 */
#include "alloc.h"
#include "pool.h"

#include <assert.h>
#include <stdlib.h>

#define CHUNK_SIZE (64 * 1024)

struct vow__pool_chunk {
  vow__pool_chunk *next;
  /* Objects follow, aligned to 16 bytes. */
  _Alignas(16) char data[];
};

static size_t size_class(size_t size) {
  assert(size > 0 && size <= VOW__POOL_MAX);
  return (size - 1) / VOW__POOL_GRAIN;
}

_Thread_local uint64_t vow__pool_leaked;

void vow__pool_init(vow__pool *pool) {
  *pool = (vow__pool){0};
}

void vow__pool_destroy(vow__pool *pool) {
  vow__pool_leaked += pool->live;
  vow__pool_chunk *c = pool->chunks;
  while (c) {
    vow__pool_chunk *next = c->next;
    vow__free(c);
    c = next;
  }
  *pool = (vow__pool){0};
}

static int pool_grow(vow__pool *pool) {
  vow__pool_chunk *c = vow__malloc(CHUNK_SIZE);
  if (!c) return -1;
  c->next = pool->chunks;
  pool->chunks = c;
  pool->bump = c->data;
  pool->bump_end = (char *)c + CHUNK_SIZE;
  pool->chunk_bytes += CHUNK_SIZE;
  return 0;
}

void *vow__pool_alloc_slow(vow__pool *pool, size_t size) {
  if (VOW__POOL_USE_MALLOC) {
    void *p = vow__malloc(size);
    if (p) pool->live++;
    return p;
  }
  size_t cls = size_class(size);
  void *p = pool->free_list[cls];
  if (p) {
    pool->free_list[cls] = *(void **)p;
    pool->live++;
    return p;
  }
  size_t rounded = (cls + 1) * VOW__POOL_GRAIN;
  if ((size_t)(pool->bump_end - pool->bump) < rounded && pool_grow(pool) != 0) return NULL;
  p = pool->bump;
  pool->bump += rounded;
  pool->live++;
  return p;
}

void vow__pool_free_slow(vow__pool *pool, void *ptr, size_t size) {
  if (!ptr) return;
  assert(pool->live > 0);
  pool->live--;
  if (VOW__POOL_USE_MALLOC) {
    vow__free(ptr);
    return;
  }
  size_t cls = size_class(size);
  *(void **)ptr = pool->free_list[cls];
  pool->free_list[cls] = ptr;
}
