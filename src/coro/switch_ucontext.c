/*
 * switch_ucontext.c - the portable context switch: getcontext,
 * makecontext, swapcontext.
 *
 * Works wherever the C library has them, on any architecture, at a price:
 * swapcontext saves and restores the signal mask with a system call, so a
 * switch costs hundreds of nanoseconds instead of a few. It is the fallback
 * when there is no assembly for the architecture, and the reference the
 * assembly back-end is tested against.
 *
 * The FP control state travels with the context here too: glibc saves the FP
 * environment (x87 control word and MXCSR on x86-64, FPCR and FPSR on
 * AArch64) in the ucontext_t, which is what coro.h's invariant 7 promises.
 */
#if defined(__APPLE__)
#define _XOPEN_SOURCE 700 /* Darwin's <ucontext.h> insists */
#define _DARWIN_C_SOURCE 1
#else
#define _GNU_SOURCE
#endif
#include "coro/coro.h"

#if VOW_HAVE_UCONTEXT

#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#if defined(__APPLE__) && defined(__clang__)
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
#endif

size_t vow__ucx_size(void) {
  return sizeof(ucontext_t);
}

size_t vow__ucx_align(void) {
  return _Alignof(ucontext_t);
}

int vow__ucx_make(void *uc, void *stack_lo, size_t stack_size, void (*entry)(void)) {
  ucontext_t *ctx = uc;

  memset(ctx, 0, sizeof(*ctx));
  if (getcontext(ctx) != 0) /* captures the creator's FP state and signal mask */
    return -1;
  ctx->uc_stack.ss_sp = stack_lo;
  ctx->uc_stack.ss_size = stack_size;
  ctx->uc_stack.ss_flags = 0;
  ctx->uc_link = NULL; /* entry never returns */
  makecontext(ctx, entry, 0);
#if VOW_ASAN && defined(__GLIBC__)
  /* makecontext has consumed uc_stack; glibc's swapcontext never reads it
   * again, but ASan's swapcontext interceptor does: it clears the shadow of
   * that whole stack at every switch into the context, which would wipe the
   * redzones of the frames suspended there. The fiber annotations in coro.c
   * tell ASan everything it needs. */
  memset(&ctx->uc_stack, 0, sizeof(ctx->uc_stack));
#endif
  return 0;
}

void vow__ucx_switch(void *from_uc, const void *to_uc) {
  /* Fails only for a context makecontext did not prepare: a bug, not an error
   * a caller could handle. */
  if (swapcontext(from_uc, to_uc) != 0)
    abort();
}

void vow__ucx_call(void **caller_uc, const void *to_uc) {
  /* The resumer's context needs a home only while the coroutine runs, and
   * this frame lives exactly that long: a coroutine carries one ucontext_t,
   * not two (they are 968 bytes on x86-64, 4.5 KiB on AArch64). */
  ucontext_t caller;

  /* swapcontext never writes uc_stack, and ASan's interceptor reads it when
   * the coroutine switches back here (see vow__ucx_make). */
  memset(&caller.uc_stack, 0, sizeof(caller.uc_stack));
  *caller_uc = &caller;
  vow__ucx_switch(&caller, to_uc);
}

#else /* !VOW_HAVE_UCONTEXT */

typedef int vow__no_ucontext; /* ISO C wants something in a translation unit */

#endif
