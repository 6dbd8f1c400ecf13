/*
 * coro.c - stackful coroutines: creation, resume and yield, the thread's
 * current coroutine, back-end dispatch and the stack-overflow reporter.
 *
 * The invariants are stated in coro.h. In short: a coroutine's object lives at
 * the top of its own stack; resume pushes it on the thread's chain of running
 * coroutines and yield pops it; the context switch itself is a few
 * instructions (switch_<arch>.S) or swapcontext (switch_ucontext.c).
 */
#define _GNU_SOURCE
#include "coro/coro.h"

#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if VOW_ASAN
#include <sanitizer/common_interface_defs.h>
#endif
#if VOW_TSAN
#include <sanitizer/tsan_interface.h>
#endif

/* Set by the build (CMakeLists.txt); the defaults describe a build without it. */
#ifndef VOW_HAVE_ASM
#define VOW_HAVE_ASM 0
#endif
#ifndef VOW_USE_ASM
#define VOW_USE_ASM VOW_HAVE_ASM
#endif
#if VOW_USE_ASM && !VOW_HAVE_ASM
#error "vow: VOW_USE_ASM without the assembly context switch"
#endif
#if !VOW_USE_ASM && !VOW_HAVE_UCONTEXT
#error "vow: no context switch for this platform (no assembly, no ucontext)"
#endif

#ifndef MAP_ANONYMOUS
#define MAP_ANONYMOUS MAP_ANON
#endif

/* Copy stacks (invariant 9). ASan and TSan keep shadow state per stack
 * address, which copying frames in and out would leave describing the wrong
 * frames; there (and with the ucontext back-end, whose context hides the
 * stack pointer) a copy-stack coroutine is a plain one on the smallest stack
 * (COPY_FALLBACK_SIZE). */
#define COPY_STACKS (VOW_HAVE_ASM && !VOW_ASAN && !VOW_TSAN)

enum { CORO_NEW, CORO_RUNNING, CORO_SUSPENDED, CORO_DONE };

struct vow_coro {
  /* The contexts. asm: a context is a stack pointer. ucontext: a ucontext_t;
   * the coroutine's own is stored in this header, its resumer's in the
   * resumer's vow__ucx_call frame. caller_* is meaningful only while the
   * coroutine runs. */
  void *sp;
  void *caller_sp;
  void *uc;
  void *caller_uc;
  vow_coro *resumer; /* who resumed it last; NULL = the thread's stack */
  vow_coro_fn fn;
  void *arg;
  void *data;
  const char *name;
  vow_stack_pool *pool;
  vow_stack stack; /* the stack this header sits on top of (copy: the shared one) */
  unsigned char backend;
  unsigned char state;
  unsigned char copy; /* a copy-stack coroutine: header on the heap, see below */
  vow_copy_stack *cs; /* copy: the pool's shared stack */
  void *saved;        /* copy: its frames while they are off the shared stack */
  size_t saved_len, saved_cap;
  size_t reserved_depth; /* copy: depth at the last vow__coro_reserve, 0: none since */
#if VOW_ASAN
  const void *caller_stack; /* the resumer's stack, as ASan told us */
  size_t caller_stack_size;
#endif
#if VOW_TSAN
  void *fiber;
  void *caller_fiber;
#endif
};

/* The innermost running coroutine of this thread (invariant 2). */
static _Thread_local vow_coro *current;

/* Copy stacks (invariant 9). One per pool, made by its first copy-stack
 * coroutine. Its occupant is the coroutine whose frames are on it now, in
 * place; every other copy-stack coroutine of the pool that has run holds its
 * frames in its `saved` buffer: the bytes from its saved stack pointer up to
 * the top, a few hundred for a shallow function. Switching into a coroutine
 * that is not the occupant first copies the occupant out (evict) and that
 * coroutine in (load); its frames come back at the same addresses, so the
 * pointers among them stay right. The copies must not run on the shared
 * stack itself: when the switch starts there (one copy-stack coroutine
 * resuming, or returning to, another), it goes through the copier, a
 * context on a small stack of its own that copies and switches on. */
struct vow_copy_stack {
  vow_stack stack;       /* guard page below, like every stack */
  vow_coro *occupant;    /* whose frames are on it; NULL: nobody's */
  void **occupant_sp;    /* where the occupant's stack pointer was saved when
                            it last switched away (meaningful only then) */
  void *copier_sp;       /* the copier's context; NULL until first needed */
  vow_stack copier_stack;
  vow_coro *target;      /* for the copier: whom to load, */
  void **target_sp;      /* and where its context is */
  unsigned live;         /* copy-stack coroutines not yet freed */
};

static void overflow_reporter_arm(void);

/* ---- small helpers --------------------------------------------------------- */

static size_t round_up(size_t n, size_t align) {
  return (n + align - 1) & ~(align - 1);
}

/* Bytes at the top of a stack taken by the coroutine header (invariant 5). A
 * whole number of cache lines, so the stack below starts 64-byte aligned. */
static size_t header_size(vow_coro_backend backend) {
  size_t n = sizeof(vow_coro);
#if VOW_HAVE_UCONTEXT
  if (backend == VOW_CORO_BACKEND_UCONTEXT)
    n = round_up(n, vow__ucx_align()) + vow__ucx_size();
#else
  (void)backend;
#endif
  return round_up(n, 64);
}

/* The bytes fn's frames may use: from the guard page up to the header (for
 * a copy-stack coroutine, whose header is elsewhere, all of the stack). */
static size_t stack_room(const vow_coro *co) {
  if (co->copy)
    return co->stack.size;
  return (size_t)((const char *)co - co->stack.lo);
}

/* ---- sanitizer annotations ------------------------------------------------- *
 * ASan must be told which stack is live. Otherwise it takes the coroutine's
 * frames for the thread's, and a noreturn call there (longjmp, exit, a failed
 * assert) makes it skip or botch its unpoisoning ("False positive error
 * reports may follow"): start_switch_fiber on the old stack just before a
 * switch, finish_switch_fiber on the new one just after. The
 * fake-stack pointer (ASan's use-after-return frames) is kept in a local of the
 * frame that switches away, as the ASan documentation suggests; NULL means the
 * stack is left for good. TSan wants switch_to_fiber just before a switch. */

/* On the resumer's stack, about to switch into co. */
static void san_enter(vow_coro *co, void **fake) {
#if VOW_ASAN
  __sanitizer_start_switch_fiber(fake, co->stack.lo, stack_room(co));
#else
  (void)fake;
#endif
#if VOW_TSAN
  co->caller_fiber = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(co->fiber, 0);
#endif
  (void)co;
}

/* Back on the resumer's stack. */
static void san_entered(void *fake) {
#if VOW_ASAN
  __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#else
  (void)fake;
#endif
}

/* On co's stack, about to switch back to its resumer. */
static void san_leave(vow_coro *co, void **fake) {
#if VOW_ASAN
  __sanitizer_start_switch_fiber(fake, co->caller_stack, co->caller_stack_size);
#else
  (void)fake;
#endif
#if VOW_TSAN
  __tsan_switch_to_fiber(co->caller_fiber, 0);
#endif
  (void)co;
}

/* On co's stack, just resumed: learn the resumer's stack for the way back. */
static void san_arrived(vow_coro *co, void *fake) {
#if VOW_ASAN
  __sanitizer_finish_switch_fiber(fake, &co->caller_stack, &co->caller_stack_size);
#else
  (void)fake;
#endif
  (void)co;
}

/* ---- back-end dispatch ----------------------------------------------------- */

static void coro_main(vow_coro *co);

#if VOW_HAVE_ASM
static void asm_entry(void *co) {
  coro_main(co);
}
#endif

#if VOW_HAVE_UCONTEXT
/* makecontext passes only ints; resume set `current` before switching. */
static void ucx_entry(void) {
  coro_main(current);
}
#endif

/* Prepares co's context so that the first switch into it runs coro_main(co). */
static int context_make(vow_coro *co) {
  switch ((vow_coro_backend)co->backend) {
#if VOW_HAVE_ASM
  case VOW_CORO_BACKEND_ASM:
    co->sp = vow__ctx_make(co, asm_entry, co);
    return 0;
#endif
#if VOW_HAVE_UCONTEXT
  case VOW_CORO_BACKEND_UCONTEXT:
    co->uc = (char *)co + round_up(sizeof(vow_coro), vow__ucx_align());
    return vow__ucx_make(co->uc, co->stack.lo, stack_room(co), ucx_entry);
#endif
  default:
    return -1;
  }
}

#if VOW_HAVE_ASM
#if COPY_STACKS
/* Out of line: the plain switch stays a few instructions in its callers. */
static void copy_transfer(vow_coro *from, void **from_sp, vow_coro *to, void **to_sp)
    __attribute__((noinline));
#endif

#if COPY_STACKS
/* Copy-stack coroutines alive on this thread: while there are none, a switch
 * tests nothing else. */
static _Thread_local unsigned copy_coros;
#endif

/* Saves the running context (from: NULL for the thread's stack) in *from_sp
 * and runs the one saved in *to_sp, which is to's (NULL: the thread's) */
static inline void transfer(vow_coro *from, void **from_sp, vow_coro *to, void **to_sp) {
#if COPY_STACKS
  if (__builtin_expect(copy_coros != 0, 0) &&
      ((from != NULL && from->copy) || (to != NULL && to->copy))) {
    copy_transfer(from, from_sp, to, to_sp);
    return;
  }
#else
  (void)from, (void)to;
#endif
  vow__ctx_switch(from_sp, *to_sp);
}
#endif

/* Saves the running context as co's caller and runs co. */
static void switch_in(vow_coro *co) {
#if VOW_HAVE_ASM
  if (co->backend == VOW_CORO_BACKEND_ASM) {
    transfer(co->resumer, &co->caller_sp, co, &co->sp);
    return;
  }
#endif
#if VOW_HAVE_UCONTEXT
  vow__ucx_call(&co->caller_uc, co->uc);
#endif
}

/* Saves co's context and runs its caller. */
static void switch_out(vow_coro *co) {
#if VOW_HAVE_ASM
  if (co->backend == VOW_CORO_BACKEND_ASM) {
    transfer(co, &co->sp, co->resumer, &co->caller_sp);
    return;
  }
#endif
#if VOW_HAVE_UCONTEXT
  vow__ucx_switch(co->uc, co->caller_uc);
#endif
}

int vow__coro_backend_available(vow_coro_backend backend) {
  switch (backend) {
  case VOW_CORO_BACKEND_DEFAULT:
    return 1;
  case VOW_CORO_BACKEND_ASM:
    return VOW_HAVE_ASM;
  case VOW_CORO_BACKEND_UCONTEXT:
    return VOW_HAVE_UCONTEXT;
  }
  return 0;
}

vow_coro_backend vow__coro_default_backend(void) {
  return VOW_USE_ASM ? VOW_CORO_BACKEND_ASM : VOW_CORO_BACKEND_UCONTEXT;
}

/* ---- coroutines ------------------------------------------------------------ */

vow_coro *vow__coro_new(vow_stack_pool *pool, size_t stack_size, vow_coro_fn fn,
                        void *arg, const char *name) {
  vow_coro_backend backend = vow__stack_pool_backend(pool);
  size_t header = header_size(backend);
  vow_stack stack;
  vow_coro *co;

  assert(fn != NULL);
  overflow_reporter_arm();
  if (vow__stack_acquire(pool, stack_size, &stack) != 0)
    return NULL;
  co = (vow_coro *)(void *)(stack.lo + stack.size - header);
  /* Field by field, not a memset or a compound literal: GCC zeroes a
   * header of this size with `rep stos`, whose start-up alone cost more than
   * the rest of this function (perf annotate of an async call). The
   * ucontext back-end's context below the object needs no zeroing:
   * vow__ucx_make fills it. */
  co->sp = NULL;
  co->caller_sp = NULL;
  co->uc = NULL;
  co->caller_uc = NULL;
  co->resumer = NULL;
  co->fn = fn;
  co->arg = arg;
  co->data = NULL;
  co->name = name;
  co->pool = pool;
  co->stack = stack;
  co->backend = (unsigned char)backend;
  co->state = CORO_NEW;
  co->copy = 0;
  co->cs = NULL;
  co->saved = NULL;
  co->saved_len = co->saved_cap = 0;
  co->reserved_depth = 0;
#if VOW_ASAN
  co->caller_stack = NULL;
  co->caller_stack_size = 0;
#endif
#if VOW_TSAN
  co->caller_fiber = NULL;
#endif
  if (context_make(co) != 0) {
    vow__stack_release(pool, &stack);
    return NULL;
  }
#if VOW_TSAN
  co->fiber = __tsan_create_fiber(0);
#endif
  return co;
}

/* ---- copy stacks (invariant 9) ---------------------------------------------- */

#define COPY_FALLBACK_SIZE ((size_t)16 * 1024)

static void copy_free(vow_coro *co);

#if COPY_STACKS

#define COPIER_STACK_SIZE ((size_t)16 * 1024)

/* vow__coro_reserve makes room for the frames as deep as its caller's plus
 * reserve_slack: what the path from there down to the switch (yield,
 * transfer, the switch's 64 bytes) adds. That depends on the build's
 * inlining, so it is learnt: an eviction that finds less room than it needs
 * raises it (up to MAX_RESERVE_SLACK; deeper than that is not the switch
 * path but a function that suspended without reserving). */
#define MAX_RESERVE_SLACK ((size_t)2048)
static _Thread_local size_t reserve_slack = 128;

static char *copy_top(const vow_copy_stack *cs) {
  return cs->stack.lo + cs->stack.size;
}

/* Out of memory with a coroutine's frames on a stack that another one needs:
 * they can go nowhere, and dropping them would be silent corruption. */
static void copy_save_failed(const vow_coro *co, size_t len);

/* Copies the occupant's frames, from its saved stack pointer up, into its
 * buffer; the stack is nobody's afterwards. */
static void copy_evict(vow_copy_stack *cs) {
  vow_coro *o = cs->occupant;
  char *sp;
  size_t len;

  if (o == NULL)
    return;
  sp = *cs->occupant_sp;
  len = (size_t)(copy_top(cs) - sp);
  if (len > o->saved_cap) {
    /* The reserve underestimated what the switch path below it adds (it
     * depends on the build's inlining): learn, so that the next ones do not. */
    if (o->reserved_depth != 0 && len > o->reserved_depth &&
        len - o->reserved_depth < MAX_RESERVE_SLACK && len - o->reserved_depth + 16 > reserve_slack)
      reserve_slack = round_up(len - o->reserved_depth + 16, 16);
    size_t cap = round_up(len, 16);
    void *buf = vow__stack_pool_realloc(o->pool, o->saved, cap);
    if (buf == NULL)
      copy_save_failed(o, len);
    o->saved = buf;
    o->saved_cap = cap;
  }
  memcpy(o->saved, sp, len);
  o->saved_len = len;
  o->reserved_depth = 0;
  cs->occupant = NULL;
}

/* Puts co's frames back where they were. */
static void copy_load(vow_copy_stack *cs, vow_coro *co) {
  memcpy(copy_top(cs) - co->saved_len, co->saved, co->saved_len);
  cs->occupant = co;
}

/* The copier: switched to by a context on the shared stack that wants to run
 * a copy-stack coroutine not on it (cs->target, whose context is in
 * *cs->target_sp). That context has saved itself, so its frames can be copied
 * out now, from here, off the shared stack. Never returns. */
static void copier_main(void *arg) {
  vow_copy_stack *cs = arg;

  for (;;) {
    copy_evict(cs);
    copy_load(cs, cs->target);
    vow__ctx_switch(&cs->copier_sp, *cs->target_sp);
  }
}

/* transfer() when either side is a copy-stack coroutine. */
static void copy_transfer(vow_coro *from, void **from_sp, vow_coro *to, void **to_sp) {
  vow_copy_stack *on = from != NULL && from->copy ? from->cs : NULL; /* what we run on */
  vow_copy_stack *cs = to != NULL && to->copy ? to->cs : NULL;

  if (on != NULL)
    on->occupant_sp = from_sp; /* from is the occupant (or finished: none) */
  if (cs != NULL && cs->occupant != to) {
    if (cs == on) {
      cs->target = to;
      cs->target_sp = to_sp;
      vow__ctx_switch(from_sp, cs->copier_sp);
      return;
    }
    copy_evict(cs);
    copy_load(cs, to);
  }
  vow__ctx_switch(from_sp, *to_sp);
}

/* The pool's shared stack and its copier, made on first use. */
static vow_copy_stack *copy_stack_get(vow_stack_pool *pool) {
  vow_copy_stack **slot = vow__stack_pool_copy_slot(pool);
  vow_copy_stack *cs = *slot;

  if (cs != NULL)
    return cs;
  cs = vow__stack_pool_realloc(pool, NULL, sizeof(*cs));
  if (cs == NULL)
    return NULL;
  memset(cs, 0, sizeof(*cs));
  if (vow__stack_acquire(pool, 0, &cs->stack) != 0) {
    vow__stack_pool_dealloc(pool, cs);
    return NULL;
  }
  if (vow__stack_acquire(pool, COPIER_STACK_SIZE, &cs->copier_stack) != 0) {
    vow__stack_release(pool, &cs->stack);
    vow__stack_pool_dealloc(pool, cs);
    return NULL;
  }
  cs->copier_sp = vow__ctx_make(cs->copier_stack.lo + cs->copier_stack.size, copier_main, cs);
  *slot = cs;
  return cs;
}

static vow_coro *copy_new(vow_stack_pool *pool, vow_coro_fn fn, void *arg, const char *name) {
  vow_copy_stack *cs = copy_stack_get(pool);
  unsigned char frame[128] __attribute__((aligned(16)));
  vow_coro *co;
  char *sp;

  if (cs == NULL)
    return NULL;
  co = vow__stack_pool_realloc(pool, NULL, sizeof(*co));
  if (co == NULL)
    return NULL;
  memset(co, 0, sizeof(*co));
  co->saved_cap = 80; /* the first frame; vow__coro_reserve grows it */
  co->saved = vow__stack_pool_realloc(pool, NULL, co->saved_cap);
  if (co->saved == NULL) {
    vow__stack_pool_dealloc(pool, co);
    return NULL;
  }
  co->fn = fn;
  co->arg = arg;
  co->name = name;
  co->pool = pool;
  co->stack = cs->stack;
  co->backend = VOW_CORO_BACKEND_ASM;
  co->state = CORO_NEW;
  co->copy = 1;
  co->cs = cs;
  /* The first frame is built here, off the stack, and loaded like saved
   * frames: it holds no pointer into itself, so it may move. */
  sp = vow__ctx_make(frame + sizeof(frame), asm_entry, co);
  co->saved_len = (size_t)((char *)frame + sizeof(frame) - sp);
  memcpy(co->saved, sp, co->saved_len);
  co->sp = copy_top(cs) - co->saved_len;
  cs->live++;
  copy_coros++;
  return co;
}

static void copy_free(vow_coro *co) {
  vow_copy_stack *cs = co->cs;

  if (cs->occupant == co)
    cs->occupant = NULL;
  cs->live--;
  copy_coros--;
  vow__stack_pool_dealloc(co->pool, co->saved);
  vow__stack_pool_dealloc(co->pool, co);
}

void vow__copy_stack_free(vow_stack_pool *pool, vow_copy_stack *cs) {
  assert(cs->live == 0 && "vow__stack_pool_free: copy-stack coroutines still alive");
  vow__stack_release(pool, &cs->copier_stack);
  vow__stack_release(pool, &cs->stack);
  vow__stack_pool_dealloc(pool, cs);
}

#else /* !COPY_STACKS */

static void copy_free(vow_coro *co) {
  (void)co;
}

void vow__copy_stack_free(vow_stack_pool *pool, vow_copy_stack *cs) {
  (void)pool, (void)cs;
}

#endif

vow_coro *vow__coro_new_copy(vow_stack_pool *pool, vow_coro_fn fn, void *arg, const char *name) {
  assert(fn != NULL);
#if COPY_STACKS
  if (vow__stack_pool_backend(pool) == VOW_CORO_BACKEND_ASM) {
    overflow_reporter_arm();
    return copy_new(pool, fn, arg, name);
  }
#endif
  return vow__coro_new(pool, COPY_FALLBACK_SIZE, fn, arg, name);
}

#if COPY_STACKS
/* Out of line: __builtin_frame_address would give its callers a frame
 * pointer (and the await path a few instructions more) if inlined. */
static int copy_reserve(vow_coro *co) __attribute__((noinline));
static int copy_reserve(vow_coro *co) {
  const char *here = __builtin_frame_address(0);
  size_t depth = (size_t)(copy_top(co->cs) - here);
  size_t need = depth + reserve_slack;
  void *buf;

  co->reserved_depth = depth;
  if (need <= co->saved_cap)
    return 0;
  need = round_up(need, 16); /* malloc's granularity: a suspended function's memory is this */
  buf = vow__stack_pool_realloc(co->pool, co->saved, need);
  if (buf == NULL)
    return -1;
  co->saved = buf;
  co->saved_cap = need;
  return 0;
}
#endif

int vow__coro_reserve(vow_coro *co) {
#if COPY_STACKS
  if (co != NULL && co->copy)
    return copy_reserve(co);
#else
  (void)co;
#endif
  return 0;
}

int vow__coro_is_copy(const vow_coro *co) {
  return co->copy;
}

size_t vow__coro_saved_bytes(const vow_coro *co) {
  return co->copy ? co->saved_len : 0;
}

int vow__coro_copy_stacks(void) {
  return COPY_STACKS;
}

void vow__coro_resume(vow_coro *co) {
  vow_coro *self = current; /* the resumer: a coroutine, or NULL */
  void *fake = NULL;

  assert(co != NULL);
  assert((co->state == CORO_NEW || co->state == CORO_SUSPENDED) &&
         "vow__coro_resume: the coroutine is running or has finished");
  co->resumer = self;
  co->state = CORO_RUNNING;
  /* co is current from before the switch in until after the switch back, so
   * that a fault anywhere on its stack, even in the switch itself, finds it
   * on the chain (the ucontext entry also reads it). */
  current = co;
  san_enter(co, &fake);
  switch_in(co);
  current = self; /* co yielded or finished */
  san_entered(fake);
}

/* Switches back to co's resumer, which makes itself current again. fake is
 * NULL when co leaves for good. Returns when co is resumed. */
static void leave(vow_coro *co, void **fake) {
  san_leave(co, fake);
  switch_out(co);
}

void vow__coro_yield(vow_coro *co) {
  void *fake = NULL;

  assert(co != NULL && co == current && co->state == CORO_RUNNING &&
         "vow__coro_yield: only the current coroutine may yield");
  co->state = CORO_SUSPENDED;
  leave(co, &fake);
  san_arrived(co, fake);
}

/* Where every coroutine starts, on its own stack (invariant 4). */
static void coro_main(vow_coro *co) {
  san_arrived(co, NULL);
  co->fn(co, co->arg);
  co->state = CORO_DONE;
  if (co->copy)
    co->cs->occupant = NULL; /* nothing on the shared stack is worth saving now */
  leave(co, NULL);
  /* Only a resume of a finished coroutine lands here, which the assert in
   * vow__coro_resume catches; without asserts, die rather than run on. */
  abort();
}

vow_coro *vow__coro_current(void) {
  return current;
}

int vow__coro_done(const vow_coro *co) {
  return co->state == CORO_DONE;
}

int vow__coro_suspended(const vow_coro *co) {
  return co->state == CORO_SUSPENDED;
}

void *vow__coro_arg(const vow_coro *co) {
  return co->arg;
}

const char *vow__coro_name(const vow_coro *co) {
  return co->name;
}

void vow__coro_set_data(vow_coro *co, void *data) {
  co->data = data;
}

void *vow__coro_get_data(const vow_coro *co) {
  return co->data;
}

void vow__coro_free(vow_coro *co) {
  vow_stack stack;

  if (co == NULL)
    return;
  assert(co->state != CORO_RUNNING && "vow__coro_free: the coroutine is running");
#if VOW_TSAN
  __tsan_destroy_fiber(co->fiber);
#endif
  if (co->copy) {
    copy_free(co);
    return;
  }
  stack = co->stack; /* co lives on that stack */
  vow__stack_release(co->pool, &stack);
}

/* ---- stack-overflow reporter ----------------------------------------------- *
 * A coroutine that runs off its stack hits the guard page and takes SIGSEGV
 * (SIGBUS on some systems) on a stack that has no room left, so the handler
 * runs on an alternate signal stack. The handler is process-wide and
 * installed once; the alternate stack is per thread, set up by the first
 * vow__coro_new on the thread and unmapped when the thread exits. A thread
 * that already has an alternate stack keeps it, and we use it too. */

#if !VOW_ASAN

#define ALTSTACK_SIZE ((size_t)64 * 1024)

static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static int handler_installed;
static pthread_key_t altstack_key; /* this thread's alternate stack, if ours */
static struct sigaction old_segv, old_bus;
static _Thread_local int thread_armed;

/* A message assembled without stdio: only async-signal-safe code here. */
typedef struct {
  char text[512];
  size_t len;
} report;

static void report_add(report *r, const char *s, size_t n) {
  if (n > sizeof(r->text) - r->len)
    n = sizeof(r->text) - r->len;
  memcpy(r->text + r->len, s, n);
  r->len += n;
}

static void report_str(report *r, const char *s) {
  report_add(r, s, strlen(s));
}

static void report_size(report *r, size_t n) {
  char digits[24];
  size_t i = sizeof(digits);

  do {
    digits[--i] = (char)('0' + n % 10);
    n /= 10;
  } while (n != 0);
  report_add(r, digits + i, sizeof(digits) - i);
}

static void write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w <= 0)
      return; /* EINTR cannot happen with signals blocked; give up otherwise */
    p += w;
    n -= (size_t)w;
  }
}

static void report_overflow(const vow_coro *co) {
  report r;
  size_t name_len = co->name != NULL ? strlen(co->name) : 0;

  r.len = 0;
  report_str(&r, "vow: stack overflow in coroutine '");
  /* Leave room for the rest of the line, whatever the name. */
  report_add(&r, co->name != NULL ? co->name : "", name_len < 400 ? name_len : 400);
  report_str(&r, "' (stack of ");
  report_size(&r, co->stack.size);
  report_str(&r, " bytes)\n");
  write_all(STDERR_FILENO, r.text, r.len);
  abort();
}

#if COPY_STACKS
static void copy_save_failed(const vow_coro *co, size_t len) {
  report r;
  size_t name_len = co->name != NULL ? strlen(co->name) : 0;

  r.len = 0;
  report_str(&r, "vow: out of memory saving the stack of copy-stack coroutine '");
  report_add(&r, co->name != NULL ? co->name : "", name_len < 400 ? name_len : 400);
  report_str(&r, "' (");
  report_size(&r, len);
  report_str(&r, " bytes)\n");
  write_all(STDERR_FILENO, r.text, r.len);
  abort();
}
#endif

/* Not ours: do what would have happened without us. */
static void chain(int sig, siginfo_t *info, void *uctx) {
  const struct sigaction *old = sig == SIGBUS ? &old_bus : &old_segv;

  if (old->sa_flags & SA_SIGINFO) {
    if (old->sa_sigaction != NULL)
      old->sa_sigaction(sig, info, uctx);
    return;
  }
  if (old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
    old->sa_handler(sig);
    return;
  }
  /* The default action: restore it and return. A real fault happens again
   * and now kills the process with the right signal (and core); a signal
   * someone sent has to be sent again. */
  sigaction(sig, old, NULL);
  if (info->si_code <= 0)
    raise(sig);
}

static void on_fault(int sig, siginfo_t *info, void *uctx) {
  uintptr_t addr = (uintptr_t)info->si_addr;
  const vow_coro *co;

  /* Only a running coroutine can overflow: walk this thread's chain. */
  for (co = current; co != NULL; co = co->resumer) {
    uintptr_t lo = (uintptr_t)co->stack.lo;
    if (addr < lo && addr >= lo - co->stack.guard)
      report_overflow(co);
  }
  chain(sig, info, uctx);
}

/* 64 KiB, or more where the kernel's signal frames are huge (MINSIGSTKSZ is
 * a sysconf call in recent glibc: CPUs with big vector state need more). */
static size_t altstack_size(void) {
  long min = (long)MINSIGSTKSZ;

  if (min > 0 && (size_t)min * 4 > ALTSTACK_SIZE)
    return (size_t)min * 4;
  return ALTSTACK_SIZE;
}

/* Thread exit: the alternate stack must not outlive its thread. */
static void altstack_free(void *mem) {
  stack_t ss;

  if (sigaltstack(NULL, &ss) == 0 && ss.ss_sp == mem && !(ss.ss_flags & SS_DISABLE)) {
    memset(&ss, 0, sizeof(ss));
    ss.ss_flags = SS_DISABLE;
    if (sigaltstack(&ss, NULL) != 0)
      return; /* still in use: better leak than unmap it */
  }
  munmap(mem, altstack_size());
}

static void install_handler(void) {
  struct sigaction sa;

  if (pthread_key_create(&altstack_key, altstack_free) != 0)
    return;
  if (sigaction(SIGSEGV, NULL, &old_segv) != 0 || sigaction(SIGBUS, NULL, &old_bus) != 0)
    return;
  memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSEGV, &sa, NULL) != 0)
    return;
  if (sigaction(SIGBUS, &sa, NULL) != 0) {
    sigaction(SIGSEGV, &old_segv, NULL);
    return;
  }
  handler_installed = 1;
}

/* Gives this thread an alternate signal stack unless it has one. */
static int altstack_setup(void) {
  size_t size = altstack_size();
  stack_t ss;
  void *mem;

  if (sigaltstack(NULL, &ss) != 0)
    return -1;
  if (!(ss.ss_flags & SS_DISABLE))
    return 0;
  mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED)
    return -1;
  memset(&ss, 0, sizeof(ss));
  ss.ss_sp = mem;
  ss.ss_size = size;
  if (sigaltstack(&ss, NULL) != 0 || pthread_setspecific(altstack_key, mem) != 0) {
    altstack_free(mem);
    return -1;
  }
  return 0;
}

/* Cheap after the first call on a thread: one thread-local test. A failure
 * leaves overflows unreported (the guard page still stops them) and is
 * retried by the next vow__coro_new. */
static void overflow_reporter_arm(void) {
  if (thread_armed)
    return;
  pthread_once(&handler_once, install_handler);
  if (handler_installed && altstack_setup() == 0)
    thread_armed = 1;
}

int vow__coro_overflow_reporting(void) {
  return thread_armed;
}

#else /* VOW_ASAN: ASan owns SIGSEGV and reports stack overflows itself. */

static void overflow_reporter_arm(void) {
}

int vow__coro_overflow_reporting(void) {
  return 0;
}

#endif
