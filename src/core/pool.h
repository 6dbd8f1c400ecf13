/*
 * pool.h — per-loop free lists for the small objects of the hot paths
 * (promises, reactions, jobs). One loop, one thread: no locks.
 *
 * Objects are grouped in 16-byte size classes up to VOW__POOL_MAX bytes and
 * carved from chunks of growing size (pool.c). A freed object goes on its class's free list and
 * is handed out again first, so a steady-state then-chain never calls malloc.
 * Chunks are returned to the system only when the pool is destroyed.
 *
 * Under AddressSanitizer every object is a plain malloc, so that use after
 * free and leaks of pooled objects are caught rather than hidden. So a call
 * of vow__pool_alloc fails on its own only in ASan builds (elsewhere, only
 * when it takes a chunk); the lines marked "fault site: ASan only" / "not
 * ASan" here and in pool.c tell tools/coverage/fault_sites.sh which builds
 * can fail them.
 */
#ifndef VOW_POOL_H
#define VOW_POOL_H

#include <stddef.h>
#include <stdint.h>

#define VOW__POOL_GRAIN 16
#define VOW__POOL_MAX 256
#define VOW__POOL_CLASSES (VOW__POOL_MAX / VOW__POOL_GRAIN)

typedef struct vow__pool_chunk vow__pool_chunk;

typedef struct vow__pool {
  void *free_list[VOW__POOL_CLASSES];
  vow__pool_chunk *chunks;
  char *bump;          /* next unused byte of the newest chunk */
  char *bump_end;
  uint64_t live;       /* objects handed out and not yet returned */
  uint64_t live_bytes; /* ... and their bytes, rounded to their classes */
  uint64_t chunk_bytes; /* usable bytes of all chunks */
  uint64_t block_bytes; /* bytes asked of the allocator for them (with slack) */
  int huge_pages;       /* big chunks ask for transparent huge pages */
} vow__pool;

/* Objects still live when a pool of this thread was destroyed: leaks of the
 * layers above (the tests assert it stays 0). */
extern _Thread_local uint64_t vow__pool_leaked;

/* huge_pages: whether chunks of 4 MiB and more ask for huge pages. */
void vow__pool_init(vow__pool *pool, int huge_pages);
/* Frees every chunk. Objects still live are released with them. */
void vow__pool_destroy(vow__pool *pool);
/* The slow paths of the two inline functions below (pool.c): taking a new
 * chunk, or plain malloc/free under AddressSanitizer. */
void *vow__pool_alloc_slow(vow__pool *pool, size_t size);
void vow__pool_free_slow(vow__pool *pool, void *ptr, size_t size);

#if defined(__SANITIZE_ADDRESS__)
#define VOW__POOL_USE_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VOW__POOL_USE_MALLOC 1
#endif
#endif
#ifndef VOW__POOL_USE_MALLOC
#define VOW__POOL_USE_MALLOC 0
#endif

/* size must be 1..VOW__POOL_MAX (a constant at every call site, so the class
 * is computed at compile time). Returns NULL when out of memory. Inline: the
 * common cases are popping a free list or bumping a pointer, a few
 * instructions; only a new chunk takes the call. */
static inline void *vow__pool_alloc(vow__pool *pool, size_t size) {
  if (!VOW__POOL_USE_MALLOC) {
    size_t cls = (size - 1) / VOW__POOL_GRAIN;
    size_t rounded = (cls + 1) * VOW__POOL_GRAIN;
    void *p = pool->free_list[cls];
    if (__builtin_expect(p != NULL, 1)) {
      pool->free_list[cls] = *(void **)p;
    } else if ((size_t)(pool->bump_end - pool->bump) >= rounded) {
      p = pool->bump;
      pool->bump += rounded;
    } else {
      return vow__pool_alloc_slow(pool, size); /* fault site: not ASan */
    }
    pool->live++;
    pool->live_bytes += rounded;
    return p;
  }
  return vow__pool_alloc_slow(pool, size); /* fault site: ASan only */
}

/* size must equal the size given to vow__pool_alloc. ptr may be NULL. */
static inline void vow__pool_free(vow__pool *pool, void *ptr, size_t size) {
  if (!VOW__POOL_USE_MALLOC && ptr) {
    size_t cls = (size - 1) / VOW__POOL_GRAIN;
    pool->live--;
    pool->live_bytes -= (cls + 1) * VOW__POOL_GRAIN;
    *(void **)ptr = pool->free_list[cls];
    pool->free_list[cls] = ptr;
    return;
  }
  vow__pool_free_slow(pool, ptr, size);
}

#endif /* VOW_POOL_H */
