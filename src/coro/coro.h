/*
 * coro.h - stackful coroutines and their stack pool (internal to vow).
 *
 * This layer knows nothing of loops, promises or libuv: it only runs a function
 * on a stack of its own and switches between that stack and its resumer's.
 * src/async/async.c builds `await` on it.
 *
 * Invariants
 *
 *  1. One thread. A pool and its coroutines belong to the thread that uses them;
 *     a coroutine is always resumed on that thread. Nothing here takes a lock.
 *  2. The running coroutines of a thread form one chain: vow__coro_current() is
 *     the innermost, each running coroutine remembers the one that resumed it
 *     (NULL: the thread's own stack). Resume pushes onto the chain, yield and
 *     return pop from it. Only the innermost coroutine may yield, so control
 *     always goes back to whoever resumed it.
 *  3. A coroutine's state only moves forward through
 *        NEW -> RUNNING <-> SUSPENDED, and RUNNING -> DONE.
 *     Resuming a RUNNING or DONE coroutine, yielding one that is not current,
 *     and freeing a RUNNING one are programming errors (assert).
 *  4. fn never returns into the void: when it returns, the coroutine switches
 *     back to its resumer for good; the entry trampoline traps if that switch
 *     ever came back.
 *  5. Memory. Each coroutine owns exactly one stack from its pool:
 *        [guard page, PROT_NONE][ ... stack, grows down ... ][vow_coro header]
 *     The coroutine object (and, for the ucontext back-end, its ucontext_t)
 *     lives at the top of its own stack, so a coroutine costs no malloc. The
 *     stack size counts that header, the way a pthread stack size counts the
 *     thread descriptor. Freeing a coroutine in any state but RUNNING returns
 *     the stack to its pool; whatever was suspended on it never runs again.
 *  6. The pool keeps at most max_cached free stacks of its default size for
 *     reuse (most recently freed first); every other stack is unmapped on
 *     free. A pool is freed only after all its coroutines are.
 *  7. Floating-point control state is part of a coroutine's context. A
 *     coroutine starts with its creator's state as of vow__coro_new; a change it
 *     makes (rounding mode, exception masks) stays with it across yields, and
 *     its resumer gets its own state back at every switch. On x86-64 that is
 *     MXCSR and the x87 control word, on AArch64 FPCR; both back-ends agree.
 *  8. Stack overflow. Running into the guard page of a running coroutine of
 *     this thread prints
 *        vow: stack overflow in coroutine 'NAME' (stack of N bytes)
 *     and aborts. Other faults go to the handler that was there before. Under
 *     AddressSanitizer the reporter is not installed: ASan owns SIGSEGV and
 *     reports the overflow itself.
 *  9. Copy stacks. A copy-stack coroutine (vow__coro_new_copy) has no stack
 *     of its own: it runs on its pool's one shared stack (default size, guard
 *     page below, so invariant 8 holds for it too), and its header is on the
 *     pool's heap. While another copy-stack coroutine of the pool runs, its
 *     frames are copied out into a buffer of their exact size (the used part
 *     of the stack, from the saved stack pointer up) and copied back, at the
 *     same addresses, before it runs again. So a suspended one costs its
 *     header and its used bytes, not a page; a switch into one that is not on
 *     the shared stack costs two copies of those bytes. The rule that comes
 *     with it: nothing may use a pointer into a copy-stack coroutine's stack
 *     while it is suspended (another coroutine's frames may be there). Running
 *     out of memory while copying frames out aborts with
 *        vow: out of memory saving the stack of copy-stack coroutine 'NAME' (N bytes)
 *     because the frames can go nowhere. Under ASan or TSan, and with the
 *     ucontext back-end, copy-stack coroutines are plain ones on 16 KiB stacks.
 */
#ifndef VOW_CORO_H
#define VOW_CORO_H

#include <stddef.h>
#include <stdint.h> /* also brings the C library's identity (__GLIBC__, ...) */

/* ---- build configuration ------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define VOW_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VOW_ASAN 1
#endif
#endif
#ifndef VOW_ASAN
#define VOW_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
#define VOW_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VOW_TSAN 1
#endif
#endif
#ifndef VOW_TSAN
#define VOW_TSAN 0
#endif

/* getcontext and friends: in glibc and the BSDs, not in musl or bionic. */
#ifndef VOW_HAVE_UCONTEXT
#if defined(__linux__) && !defined(__GLIBC__)
#define VOW_HAVE_UCONTEXT 0
#else
#define VOW_HAVE_UCONTEXT 1
#endif
#endif

/* ---- coroutines ----------------------------------------------------------- */

typedef struct vow_coro vow_coro;
typedef struct vow_stack_pool vow_stack_pool;
typedef struct vow_copy_stack vow_copy_stack;
typedef void (*vow_coro_fn)(vow_coro *co, void *arg);

typedef enum {
  VOW_CORO_BACKEND_DEFAULT = 0, /* the one the build chose (VOW_CONTEXT) */
  VOW_CORO_BACKEND_ASM,         /* switch_<arch>.S */
  VOW_CORO_BACKEND_UCONTEXT     /* switch_ucontext.c */
} vow_coro_backend;

/* A pool of stacks for one thread's coroutines. default_stack_size 0 means
 * 256 KiB (rounded up to pages, at least 16 KiB; a guard page is added below).
 * max_cached stacks are kept for reuse. Returns NULL on allocation failure, or
 * when the backend is not compiled in. */
vow_stack_pool *vow__stack_pool_new(size_t default_stack_size, unsigned max_cached,
                                    vow_coro_backend backend);
/* All coroutines of the pool must be freed first. */
void vow__stack_pool_free(vow_stack_pool *pool);
size_t vow__stack_pool_stack_size(const vow_stack_pool *pool);
/* The back-end every coroutine of this pool uses (never DEFAULT). */
vow_coro_backend vow__stack_pool_backend(const vow_stack_pool *pool);
/* Where copy-stack coroutines' headers and saved frames come from: realloc
 * and free unless set (the async layer sets vow's allocator). */
void vow__stack_pool_set_allocator(vow_stack_pool *pool, void *(*realloc_fn)(void *, size_t),
                                   void (*free_fn)(void *));
void *vow__stack_pool_realloc(vow_stack_pool *pool, void *p, size_t size);
void vow__stack_pool_dealloc(vow_stack_pool *pool, void *p);
/* The pool's shared stack (coro.c makes it; freed with the pool). */
vow_copy_stack **vow__stack_pool_copy_slot(vow_stack_pool *pool);
void vow__copy_stack_free(vow_stack_pool *pool, vow_copy_stack *cs);
/* Stacks handed out and not yet returned; free stacks kept for reuse. */
unsigned vow__stack_pool_live(const vow_stack_pool *pool);
unsigned vow__stack_pool_cached(const vow_stack_pool *pool);

/* A coroutine that will run fn(co, arg) on its own stack when first resumed.
 * stack_size 0 = the pool's default. name is borrowed (must outlive the
 * coroutine), used in the stack-overflow report. Returns NULL on allocation
 * failure (mmap/mprotect failing). */
vow_coro *vow__coro_new(vow_stack_pool *pool, size_t stack_size, vow_coro_fn fn,
                        void *arg, const char *name);
/* A copy-stack coroutine (invariant 9) that will run fn(co, arg); as
 * vow__coro_new otherwise. Returns NULL when out of memory. */
vow_coro *vow__coro_new_copy(vow_stack_pool *pool, vow_coro_fn fn, void *arg, const char *name);
/* From inside co, before it suspends or resumes another coroutine: makes
 * co's buffer big enough for its frames as they are now, so that copying
 * them out later needs no memory (when it would, and there is none, vow
 * aborts: invariant 9). 0, or -1 when out of memory (nothing changed). A
 * no-op for coroutines that do not copy, and for NULL. */
int vow__coro_reserve(vow_coro *co);
/* 1 if co was made by vow__coro_new_copy and really copies (see invariant 9). */
int vow__coro_is_copy(const vow_coro *co);
/* Bytes of co's frames held off the shared stack (0 for other coroutines). */
size_t vow__coro_saved_bytes(const vow_coro *co);
/* 1 if this build copies stacks (the asm back-end, no ASan or TSan). */
int vow__coro_copy_stacks(void);

/* Switch into co (from the thread's own stack or from another coroutine) until
 * it yields or fn returns. Nested resumes form a chain: yield returns to whoever
 * resumed. Resuming a finished or currently running coroutine is a programming
 * error: assert. */
void vow__coro_resume(vow_coro *co);
/* From inside co (co must be the current coroutine): switch back to its resumer. */
void vow__coro_yield(vow_coro *co);
vow_coro *vow__coro_current(void);      /* thread-local; NULL on the thread's own stack */
int vow__coro_done(const vow_coro *co); /* fn has returned */
int vow__coro_suspended(const vow_coro *co); /* it yielded and may be resumed */
void *vow__coro_arg(const vow_coro *co);
const char *vow__coro_name(const vow_coro *co);
/* Returns the stack to the pool. Allowed on a finished coroutine, on one never
 * resumed, and on a suspended one (its stack is simply dropped: nothing on it
 * runs). Never on the running one. */
void vow__coro_free(vow_coro *co);

/* One pointer of the caller's, e.g. the async layer's frame; NULL initially. */
void vow__coro_set_data(vow_coro *co, void *data);
void *vow__coro_get_data(const vow_coro *co);

/* 1 if this build has the back-end; DEFAULT is always available. */
int vow__coro_backend_available(vow_coro_backend backend);
/* The back-end DEFAULT stands for in this build. */
vow_coro_backend vow__coro_default_backend(void);
/* 1 if a stack overflow on this thread is reported (see invariant 8): the
 * reporter is installed by the first vow__coro_new on a thread, and never
 * under AddressSanitizer. */
int vow__coro_overflow_reporting(void);

/* ---- stacks (stack.c; used by coro.c) ------------------------------------- */

/* One mapping: guard page(s) at [lo - guard, lo), the stack at [lo, lo + size). */
typedef struct vow_stack {
  char *lo;         /* lowest usable byte; the stack grows down towards it */
  size_t size;      /* usable bytes, a multiple of the page size */
  size_t guard;     /* bytes of PROT_NONE below lo */
  unsigned vg_id;   /* valgrind's stack id, 0 when not under valgrind */
} vow_stack;

/* A stack of at least size bytes (0 = the pool's default), from the cache when
 * one of the right size is there. Returns 0, or -1 when mmap or mprotect fail. */
int vow__stack_acquire(vow_stack_pool *pool, size_t size, vow_stack *out);
/* Gives the stack back: cached for reuse, or unmapped. */
void vow__stack_release(vow_stack_pool *pool, const vow_stack *stack);

/* ---- context switch back-ends (used by coro.c only) ----------------------- */

/* Assembly (switch_<arch>.S). vow__ctx_switch saves the callee-saved
 * registers and FP control state on the current stack, stores the stack pointer
 * in *from_sp, then loads to_sp and restores what is saved there: it returns on
 * the other stack. vow__ctx_make builds, below stack_top, a frame that the first
 * switch to the returned stack pointer turns into a call entry(arg); entry must
 * never return. */
void vow__ctx_switch(void **from_sp, void *to_sp);
void *vow__ctx_make(void *stack_top, void (*entry)(void *), void *arg);

/* ucontext (switch_ucontext.c). Contexts are ucontext_t, passed as void *
 * so that this header needs no <ucontext.h>. */
size_t vow__ucx_size(void);
size_t vow__ucx_align(void);
/* Prepares uc so that switching to it calls entry() on [stack_lo, +size).
 * Returns 0, or -1 if getcontext fails. */
int vow__ucx_make(void *uc, void *stack_lo, size_t stack_size, void (*entry)(void));
/* Saves the running context in from_uc and runs to_uc. */
void vow__ucx_switch(void *from_uc, const void *to_uc);
/* Runs to_uc with the running context saved in a ucontext_t of this call's
 * frame; *caller_uc points to it until to_uc switches back there. */
void vow__ucx_call(void **caller_uc, const void *to_uc);

#endif /* VOW_CORO_H */
