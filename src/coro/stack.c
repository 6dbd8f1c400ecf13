/*
 * stack.c - the stack pool: mmap'd coroutine stacks with a guard page below.
 *
 * A fresh stack costs an mmap, an mprotect and, on first touch, page faults:
 * microseconds. A cached one costs a pointer pop. So free stacks of the pool's
 * default size are kept, up to max_cached, in a LIFO list (the most recently
 * used stack is the one most likely still in cache and in the TLB). The list
 * needs no memory of its own: each free stack holds its list node at its top,
 * in memory that belonged to the stack anyway.
 *
 * Stacks of any other size are unmapped when freed: they are the exception,
 * and caching them would mean searching by size.
 */
#define _GNU_SOURCE
#include "coro/coro.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#if VOW_ASAN
#include <sanitizer/asan_interface.h>
#endif
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define VOW_VALGRIND 1
#endif
#endif
#ifndef VOW_VALGRIND
#define VOW_VALGRIND 0
#endif

#ifndef MAP_ANONYMOUS
#define MAP_ANONYMOUS MAP_ANON
#endif
#ifndef MAP_STACK /* a hint on Linux, required on OpenBSD, absent on macOS */
#define MAP_STACK 0
#endif
#ifndef MAP_NORESERVE
#define MAP_NORESERVE 0
#endif

#define DEFAULT_STACK_SIZE ((size_t)256 * 1024)
#define MIN_STACK_SIZE ((size_t)16 * 1024)

/* A free stack's list node, stored in the top bytes of that stack. */
typedef struct cached_stack {
  struct cached_stack *next;
  vow_stack stack;
} cached_stack;

struct vow_stack_pool {
  size_t page;          /* page size; also the guard size */
  size_t stack_size;    /* default usable size, a page multiple */
  cached_stack *cache;  /* free stacks of stack_size bytes, newest first */
  unsigned ncached;
  unsigned max_cached;
  unsigned live;        /* stacks acquired and not yet released */
  vow_coro_backend backend;
  vow_copy_stack *copy; /* the shared stack of copy-stack coroutines, or NULL */
  void *(*realloc_fn)(void *, size_t); /* the heap of copy-stack coroutines */
  void (*free_fn)(void *);
};

/* Rounds size up to whole pages, at least MIN_STACK_SIZE; 0 on overflow. */
static size_t stack_round(size_t size, size_t page) {
  if (size < MIN_STACK_SIZE)
    size = MIN_STACK_SIZE;
  if (size > SIZE_MAX - page)
    return 0;
  return (size + page - 1) & ~(page - 1);
}

vow_stack_pool *vow__stack_pool_new(size_t default_stack_size, unsigned max_cached,
                                    vow_coro_backend backend) {
  vow_stack_pool *pool;
  long page = sysconf(_SC_PAGESIZE);
  size_t size;

  if (backend == VOW_CORO_BACKEND_DEFAULT)
    backend = vow__coro_default_backend();
  if (!vow__coro_backend_available(backend) || page <= 0)
    return NULL;
  size = stack_round(default_stack_size ? default_stack_size : DEFAULT_STACK_SIZE,
                     (size_t)page);
  if (size == 0)
    return NULL;
  pool = calloc(1, sizeof(*pool));
  if (pool == NULL)
    return NULL;
  pool->page = (size_t)page;
  pool->stack_size = size;
  pool->max_cached = max_cached;
  pool->backend = backend;
  pool->realloc_fn = realloc;
  pool->free_fn = free;
  return pool;
}

/* Unmaps a stack and everything the tools were told about it. */
static void stack_unmap(const vow_stack *st) {
#if VOW_VALGRIND
  if (st->vg_id != 0)
    VALGRIND_STACK_DEREGISTER(st->vg_id);
#endif
  munmap(st->lo - st->guard, st->guard + st->size);
}

void vow__stack_pool_free(vow_stack_pool *pool) {
  cached_stack *node, *next;

  if (pool == NULL)
    return;
  if (pool->copy != NULL)
    vow__copy_stack_free(pool, pool->copy); /* gives its two stacks back */
  assert(pool->live == 0 && "vow__stack_pool_free: coroutines still alive");
  for (node = pool->cache; node != NULL; node = next) {
    vow_stack st = node->stack; /* the node lives on the stack being unmapped */
    next = node->next;
    stack_unmap(&st);
  }
  free(pool);
}

size_t vow__stack_pool_stack_size(const vow_stack_pool *pool) {
  return pool->stack_size;
}

vow_coro_backend vow__stack_pool_backend(const vow_stack_pool *pool) {
  return pool->backend;
}

void vow__stack_pool_set_allocator(vow_stack_pool *pool, void *(*realloc_fn)(void *, size_t),
                                   void (*free_fn)(void *)) {
  pool->realloc_fn = realloc_fn;
  pool->free_fn = free_fn;
}

void *vow__stack_pool_realloc(vow_stack_pool *pool, void *p, size_t size) {
  return pool->realloc_fn(p, size);
}

void vow__stack_pool_dealloc(vow_stack_pool *pool, void *p) {
  if (p != NULL)
    pool->free_fn(p);
}

vow_copy_stack **vow__stack_pool_copy_slot(vow_stack_pool *pool) {
  return &pool->copy;
}

unsigned vow__stack_pool_live(const vow_stack_pool *pool) {
  return pool->live;
}

unsigned vow__stack_pool_cached(const vow_stack_pool *pool) {
  return pool->ncached;
}

/* Maps guard + size bytes and makes the lowest page(s) inaccessible. */
static int stack_map(size_t size, size_t guard, vow_stack *out) {
  char *map = mmap(NULL, guard + size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
  if (map == MAP_FAILED)
    return -1;
  if (mprotect(map, guard, PROT_NONE) != 0) {
    int err = errno;
    munmap(map, guard + size);
    errno = err;
    return -1;
  }
  out->lo = map + guard;
  out->size = size;
  out->guard = guard;
  out->vg_id = 0;
#if VOW_VALGRIND
  /* Tells valgrind that moving the stack pointer here is a stack switch, not
   * a 100 MB alloca. */
  out->vg_id = VALGRIND_STACK_REGISTER(out->lo, out->lo + size);
#endif
  return 0;
}

int vow__stack_acquire(vow_stack_pool *pool, size_t size, vow_stack *out) {
  size = size ? stack_round(size, pool->page) : pool->stack_size;
  if (size == 0) {
    errno = ENOMEM;
    return -1;
  }
  if (size == pool->stack_size && pool->cache != NULL) {
    cached_stack *node = pool->cache;
    pool->cache = node->next;
    pool->ncached--;
    *out = node->stack;
  } else if (stack_map(size, pool->page, out) != 0) {
    return -1;
  }
  pool->live++;
  return 0;
}

void vow__stack_release(vow_stack_pool *pool, const vow_stack *stack) {
  vow_stack st = *stack; /* stack may point into the memory reused below */
  cached_stack *node;

  assert(pool->live > 0);
  pool->live--;
#if VOW_ASAN
  /* Frames that never returned (a suspended coroutine, the entry frame of a
   * finished one) leave their redzones poisoned; the next user of these
   * bytes must not trip over them. */
  ASAN_UNPOISON_MEMORY_REGION(st.lo, st.size);
#endif
  if (st.size != pool->stack_size || pool->ncached >= pool->max_cached) {
    stack_unmap(&st);
    return;
  }
  node = (cached_stack *)(void *)(st.lo + st.size - sizeof(cached_stack));
  node->stack = st;
  node->next = pool->cache;
  pool->cache = node;
  pool->ncached++;
}
