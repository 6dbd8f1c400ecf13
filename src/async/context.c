/*
 * context.c — async-local context: Node's AsyncLocalStorage, by key.
 *
 * A context is an immutable chain of bindings, newest first: binding a key
 * makes a new head whose parent is the context that was current, and
 * becomes current. Whatever captured the old head (a suspended async
 * function, a reaction, a timer) keeps seeing it. core/context.h carries the
 * current head along: an async function takes its context with it across
 * its awaits and starts with the one current where it was called; a
 * reaction runs in the context then() was called in; a timer or a queued
 * microtask in the context it was scheduled in.
 *
 * Lookup walks the chain: a binding per key set, usually a handful. Cheap
 * where Node's AsyncLocalStorage is not: no hook runs per promise or frame,
 * and code that binds nothing pays a NULL check.
 */
#include "core/alloc.h"
#include "core/context.h"
#include "async/async.h"

typedef struct binding {
  vow__context c;          /* first: a vow__context * is a binding * */
  vow__context *parent;    /* a reference, or NULL */
  const void *key;
  vow_value value;
  vow_loop *loop;
} binding;

/* The last reference went: free the binding and the parents it alone held,
 * iteratively (a long chain must not recurse). */
static void binding_destroy(vow__context *c) {
  while (c) {
    binding *b = (binding *)c;
    vow__context *parent = b->parent;
    vow_loop *loop = b->loop;
    vow__unref(b->value);
    vow__pool_free(&loop->pool, b, sizeof *b);
    c = parent && --parent->refs == 0 ? parent : NULL;
  }
}

int vow_context_set(vow_loop *loop, const void *key, vow_value value) {
  if (!key || !vow__loop_usable(loop)) {
    vow__unref(value);
    return !key || !loop ? VOW_EINVAL : vow__loop_on_owner(loop) ? VOW_ECLOSING : VOW_ETHREAD;
  }
  binding *b = vow__pool_alloc(&loop->pool, sizeof *b);
  if (!b) {
    vow__unref(value);
    return VOW_ENOMEM;
  }
  value.flags = 0;
  /* The loop's reference to the current context moves into the binding. */
  *b = (binding){{1, binding_destroy}, loop->context, key, value, loop};
  loop->context = &b->c;
  loop->context_used = 1; /* from now on, frames carry their contexts */
  return 0;
}

vow_value vow_context_get(vow_loop *loop, const void *key) {
  if (!loop || !vow__loop_on_owner(loop)) return vow_undefined();
  for (vow__context *c = loop->context; c; c = ((binding *)c)->parent)
    if (((binding *)c)->key == key) return ((binding *)c)->value;
  return vow_undefined();
}

vow_promise *vow_context_run(vow_loop *loop, const void *key, vow_value value, vow_async_fn fn,
                             void *arg, const vow_async_options *options) {
  if (!vow__loop_usable(loop) || !fn || !key) {
    vow__unref(value);
    if (options && options->arg_free) options->arg_free(arg);
    return NULL;
  }
  vow__context *outer = vow__context_capture(loop);
  if (vow_context_set(loop, key, value) != 0) {
    vow__context_release(outer);
    if (options && options->arg_free) options->arg_free(arg);
    return NULL;
  }
  vow_promise *p = vow_async_ex(loop, fn, arg, options);
  vow__context_release(vow__context_swap(loop, outer));
  return p;
}
