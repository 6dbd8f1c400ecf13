/*
 * vow.h — JavaScript's async model, in C.
 *
 * This header is the manual. Read it top to bottom:
 *
 *   1. Errors         negative codes and vow_strerror
 *   2. The loop       vow_loop_new / vow_loop_run / vow_loop_free
 *   3. Microtasks     vow_queue_microtask — always before the next macrotask
 *   4. Values         the 16-byte tagged value a promise settles with
 *   5. Promises       then / catch / finally, resolve, reject, adoption
 *   6. Combinators    all, allSettled, race, any
 *   7. Rejections     unhandled-rejection tracking and its hook
 *   8. async/await    async functions on stackful coroutines
 *   9. Iteration      async generators and for-await
 *  10. Timers         setTimeout, setInterval, setImmediate and their clears
 *  11. Cancellation   AbortController / AbortSignal, and timeouts that abort
 *  12. I/O            streams, files, processes, signals, stdin/stdout, TCP,
 *                     DNS, fetch over libcurl, and a small HTTP server
 *  13. Tracing        a Chrome trace-event timeline of what the loop ran
 *  14. Threads        CPU work on the thread pool; posting from other threads
 *  15. Beyond JS      concurrency-limited map, retry, channels, cancelling race
 *  16. Structure      task groups, cancel scopes, async context, task dumps
 *
 * Conventions, as in libuv:
 *   - Functions that can fail return an int: 0 (or a non-negative result) on success,
 *     a negative VOW_E* or UV_E* code on failure. vow_strerror() names it.
 *   - Every object belongs to one loop, and one loop belongs to the thread that made
 *     it. Calls from another thread are refused with VOW_ETHREAD.
 *   - Ownership is stated for every argument and result. "Takes" means the callee
 *     consumes the caller's reference; "borrows" means it does not; "returns a new
 *     reference" means the caller must release it.
 *
 * The ordering of everything here is the ordering of Node.js 20: when in doubt,
 * the JavaScript in the comments is the specification.
 */
#ifndef VOW_H
#define VOW_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VOW_VERSION_MAJOR 0
#define VOW_VERSION_MINOR 1
#define VOW_VERSION_PATCH 0

/* ===================================================================== *
 * 1. Errors
 * ===================================================================== */

/* vow's own codes live below -5000 so they never collide with libuv's UV_E*
 * codes (negated errno values and libuv's -3000 range), which vow passes through. */
#define VOW_ERRNO_MAP(X)                                                        \
  X(EINVAL,    -5001, "invalid argument")                                       \
  X(ENOMEM,    -5002, "out of memory")                                          \
  X(ETHREAD,   -5003, "called from a thread that does not own the loop")        \
  X(EBUSY,     -5004, "the loop is already running (vow_loop_run is not reentrant)") \
  X(EUNHANDLED,-5005, "a promise was rejected and no handler was attached")     \
  X(EREJECTED, -5006, "the awaited promise was rejected")                       \
  X(ENOTASYNC, -5007, "await used outside an async function")                   \
  X(ETYPE,     -5008, "type error")                                             \
  X(EAGGREGATE,-5009, "all promises were rejected")                             \
  X(ETIMEDOUT, -5010, "operation timed out")                                    \
  X(EABORTED,  -5011, "operation was aborted")                                  \
  X(ECLOSING,  -5012, "the loop is being freed")                                \
  X(ERANGE,    -5013, "value out of range")                                     \
  X(EDONE,     -5014, "the iterator is finished")                             \
  X(EHTTP,     -5015, "the server answered with an HTTP error status")          \
  X(ETOOBIG,   -5016, "the body is larger than the limit")                      \
  X(ETLS,      -5017, "TLS handshake or certificate failure")                   \
  X(EPROTO,    -5018, "malformed or unexpected HTTP message")                   \
  X(EEXIT,     -5019, "the child process failed: a non-zero exit, or killed by a signal")

enum {
#define VOW__ERRNO_ENUM(name, code, text) VOW_##name = (code),
  VOW_ERRNO_MAP(VOW__ERRNO_ENUM)
#undef VOW__ERRNO_ENUM
  VOW_OK = 0
};

/* A static, human-readable description of a vow or libuv error code. Never NULL. */
const char *vow_strerror(int err);
/* The symbolic name of an error code ("VOW_ETHREAD", "ECONNREFUSED"). Never NULL. */
const char *vow_err_name(int err);

/* Memory. Every allocation vow makes (except coroutine stacks, which are
 * mapped pages) goes through one function, Lua-style: realloc(ptr, size, ctx)
 * allocates when ptr is NULL, frees when size is 0, and returns NULL on
 * failure — which vow turns into VOW_ENOMEM errors and rejected promises,
 * never a crash. Install it before the first loop exists; NULL restores the
 * C library's. Not thread-safe: call it once, early.
 * With the C library's allocator, blocks of 4 MiB and more (a deep microtask
 * queue, all() over a million promises) are advised to use transparent huge
 * pages (Linux: madvise MADV_HUGEPAGE), one page fault per 2 MiB instead of
 * 512; a custom allocator manages its own memory and gets no advice. */
typedef struct vow_allocator {
  void *(*realloc)(void *ptr, size_t size, void *ctx);
  void *ctx;
} vow_allocator;
int vow_set_allocator(const vow_allocator *allocator);

/* ===================================================================== *
 * 2. The loop
 * ===================================================================== *
 *
 * A vow_loop is a libuv loop plus the queues JavaScript needs. Its model is
 * Node's, step for step:
 *
 *   - The code that runs before vow_loop_run() is the first macrotask. When it
 *     hands control to the loop, the microtasks it queued run first.
 *   - Then libuv's phases turn: timers (vow_set_timeout/interval), I/O, then
 *     immediates (vow_set_immediate).
 *   - Every callback that enters user code from libuv runs through one entry
 *     point, which runs the callback and then performs a microtask checkpoint:
 *     the microtask queue is drained (including microtasks queued while draining),
 *     then unhandled rejections are reported. So microtasks always run before the
 *     next macrotask, even between two timers that fire in the same turn.
 *
 * Lifecycle: vow_loop_new -> (schedule work) -> vow_loop_run -> vow_loop_free.
 * vow_loop_run may be called again after it returns, to run newly scheduled work.
 *
 * SIGPIPE: a write to a socket whose peer has gone raises SIGPIPE, whose
 * default action kills the process, and libuv writes without MSG_NOSIGNAL.
 * So vow_loop_new, like Node at startup, sets SIGPIPE to SIG_IGN when its
 * disposition is the default (SIG_DFL); such writes then fail with EPIPE,
 * which the server and fetch treat as a peer that left. A handler the program
 * installed, or its own SIG_IGN, is left as it is (before or after
 * vow_loop_new, the program's choice wins; a handler must then not exit on
 * it). The disposition is process-wide and stays after vow_loop_free.
 */
typedef struct vow_loop vow_loop;

/* Misuse has defined outcomes, never a crash:
 *   - vow_loop_run or vow_loop_free from inside the loop's own callbacks or
 *     async functions: refused with VOW_EBUSY, the outer run goes on;
 *   - a call on a loop, or on its promises, from a thread that does not own it:
 *     refused with VOW_ETHREAD (NULL where an object is returned), nothing
 *     changes — the threadsafe calls of section 14 are the exceptions;
 *   - a promise of another loop given to adoption, await or a combinator: a
 *     rejection with VOW_EINVAL;
 *   - freeing a loop with work pending: see vow_loop_free;
 *   - an async function overflowing its stack: vow prints which one and
 *     aborts (section 8). */

/* Per-loop settings; zero-initialise and set what you need. */
typedef struct vow_loop_options {
  /* Default stack size for async functions' coroutines, in bytes; 0 means
   * 256 KiB. Each stack also gets one guard page. */
  size_t stack_size;
  /* A virtual clock, for testing async code (like node:test's mock timers or
   * tokio's paused time): timers never sleep. Whenever no timer is due and no
   * immediate is waiting, the clock jumps to the next timer's due time, so
   * timers fire in exactly the order and at the loop times they would have,
   * and a test of a 30-second timeout takes microseconds. I/O still happens
   * in real time: the clock jumps while it is in flight. */
  int virtual_clock;
  /* Promises, reactions and jobs come from a per-loop pool whose chunks grow
   * with it, and timers from a slab. Pool chunks of 4 MiB and more, and the
   * slab past 32 768 timers, are advised to use transparent huge pages
   * (Linux), which makes a program that holds millions of promises or timers
   * fault in its memory 512 times less often. Set to 1 to keep 4 KiB pages:
   * where a huge page is slow to supply (a fault can then take milliseconds,
   * as seen in some VMs), small pages give steadier latency. */
  int no_huge_pages;
} vow_loop_options;

/* Creates a loop owned by the calling thread. options may be NULL (defaults).
 * On success *out receives the loop (free it with vow_loop_free) and 0 is
 * returned; on failure a negative code, and *out is NULL. */
int vow_loop_new(vow_loop **out, const vow_loop_options *options);

/* Runs the loop until nothing is pending (no timers, immediates, I/O or
 * microtasks), then returns 0. Returns early with a negative code when the
 * run is stopped by an error: VOW_EUNHANDLED when a rejection went unhandled
 * under the default policy (section 7), VOW_ENOMEM when a promise job could
 * not be queued for want of memory. An error of that kind that happened
 * between runs (in the caller's code before this call) is returned at once,
 * by this run. VOW_EBUSY when called from a callback
 * of the same loop; VOW_ETHREAD from a thread that does not own it. */
int vow_loop_run(vow_loop *loop);

/* Frees the loop and everything still pending on it: queued microtasks and
 * timers are dropped without running, and internal references are released.
 * Async functions and generators still suspended are resumed one last time,
 * so that they can release what they hold: their vow_await (or vow_yield)
 * returns VOW_ECLOSING, and so does every later one, at once — a body must
 * treat a failed await as the end of its work, as any error. Arguments that the caller passed to dropped
 * callbacks are not touched: they remain the caller's. Must not be called from
 * inside the loop's own callbacks (VOW_EBUSY) or from another thread
 * (VOW_ETHREAD); NULL is a no-op returning 0. */
int vow_loop_free(vow_loop *loop);

/* The loop's libuv loop, for adding libuv handles of your own. Borrowed: valid
 * until vow_loop_free. Callbacks you register directly with libuv should call
 * vow_loop_enter so that microtasks drain after them, as vow's own do. */
struct uv_loop_s *vow_loop_uv(vow_loop *loop);

/* The loop's clock in milliseconds: libuv's cached "now", updated once per
 * loop turn (or the virtual clock's time). */
uint64_t vow_loop_now(const vow_loop *loop);

/* Non-zero while the calling code runs inside this loop's vow_loop_run. */
int vow_loop_alive(const vow_loop *loop);

/* A unit of work: a function and its argument. The argument is borrowed by
 * whoever schedules the task; vow never frees it. */
typedef void (*vow_task_fn)(vow_loop *loop, void *arg);

/* Runs fn(loop, arg) as a macrotask entered from outside vow (your own libuv
 * callback), then performs the microtask checkpoint. */
void vow_loop_enter(vow_loop *loop, vow_task_fn fn, void *arg);

/* ===================================================================== *
 * 3. Microtasks
 * ===================================================================== */

/* queueMicrotask(fn): fn(loop, arg) runs at the next checkpoint, after the
 * current macrotask (or microtask) and before any timer, immediate or I/O.
 * A microtask queued by a microtask runs in the same drain. The queue is a
 * growable ring: once warm it never allocates. Returns 0, VOW_ENOMEM, VOW_EINVAL
 * (NULL fn) or VOW_ETHREAD. */
int vow_queue_microtask(vow_loop *loop, vow_task_fn fn, void *arg);

/* ===================================================================== *
 * 4. Values
 * ===================================================================== *
 *
 * A promise settles with a vow_value: 16 bytes, passed by value, like a
 * JavaScript value. Small kinds (undefined, null, booleans, integers,
 * doubles) are stored inline; the others point to a reference-counted object.
 *
 * Ownership rule for every function in vow: a vow_value you receive as a
 * function result is a new reference (release it with vow_unref when done);
 * a value you pass is either taken (its reference moves into the callee) or
 * borrowed (the callee takes its own reference if it keeps it), as each
 * function says. Handlers borrow their argument and their return value moves
 * into the promise they settle. Reference counts are not atomic: a value
 * belongs to one loop's thread at a time.
 *
 * Constructors never fail loudly: when memory runs out they return the
 * static error value vow_error_nomem() (code VOW_ENOMEM), so an allocation
 * failure surfaces as a rejection rather than a crash.
 */
typedef enum vow_kind {
  VOW_UNDEFINED = 0,
  VOW_NULL,
  VOW_BOOL,
  VOW_INT,        /* int64_t */
  VOW_DOUBLE,
  VOW_STRING,     /* immutable UTF-8 bytes, with a length */
  VOW_ARRAY,      /* the result of all / allSettled */
  VOW_ERROR,      /* code, message, optional cause */
  VOW_SETTLED,    /* an allSettled record: {status, value | reason} */
  VOW_AGGREGATE,  /* the rejection of any: the reasons, in input order */
  VOW_PROMISE,    /* a vow_promise */
  VOW_POINTER,    /* your pointer, with the destructor to run at the last release */
  VOW_ITER        /* an iterator result: {value, done}, what a generator's next() gives */
} vow_kind;

typedef struct vow_promise vow_promise;
typedef struct vow_object vow_object; /* the reference-counted part of a value */

typedef struct vow_value {
  uint8_t kind;   /* a vow_kind */
  uint8_t flags;  /* internal: VOW__THROWN marks a handler's thrown value */
  uint16_t reserved;
  uint32_t reserved2;
  union {
    int64_t i;
    double d;
    vow_object *obj;
    vow_promise *promise;
  } as;
} vow_value;

#define VOW__THROWN 1u
#define VOW__AWAITED 2u

/* Inline kinds: no allocation, nothing to release. */
static inline vow_value vow_undefined(void) { vow_value v = {0}; return v; }
static inline vow_value vow_null(void) { vow_value v = {0}; v.kind = VOW_NULL; return v; }
static inline vow_value vow_bool(int b) {
  vow_value v = {0}; v.kind = VOW_BOOL; v.as.i = b != 0; return v;
}
static inline vow_value vow_int(int64_t i) {
  vow_value v = {0}; v.kind = VOW_INT; v.as.i = i; return v;
}
static inline vow_value vow_double(double d) {
  vow_value v = {0}; v.kind = VOW_DOUBLE; v.as.d = d; return v;
}

/* Heap kinds: each returns a new reference. */
vow_value vow_string(const char *s);                 /* copies a NUL-terminated string */
vow_value vow_string_n(const char *s, size_t len);   /* copies len bytes (may hold NULs) */
vow_value vow_stringf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
/* An error: code is a VOW_E... or UV_E... code, or your own; message is copied.
 * cause is taken (vow_undefined() for none). */
vow_value vow_error(int code, const char *message);
vow_value vow_error_with_cause(int code, const char *message, vow_value cause);
/* An error whose message is printf's output, of any length:
 *   vow_errorf(UV_ENOENT, "ENOENT: open '%s'", path)
 * Out of memory it is vow_error_nomem(), and a format printf cannot print
 * (EILSEQ) a VOW_EINVAL error, whatever code was asked for. vow_stringf
 * returns the same two errors instead of a string. */
vow_value vow_errorf(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* An empty array with room for capacity items (it grows as needed). */
vow_value vow_array(size_t capacity);
/* Appends item (taken). Returns 0, VOW_EINVAL (not an array) or VOW_ENOMEM
 * (item is then released). */
int vow_array_push(vow_value array, vow_value item);
/* Wraps ptr; destroy(ptr) runs when the last reference goes (NULL: none). */
vow_value vow_pointer(void *ptr, void (*destroy)(void *ptr));
/* A value holding promise p. Takes the caller's reference to p. */
vow_value vow_promise_value(vow_promise *p);
/* The static "out of memory" error. Never needs releasing (doing so is harmless). */
vow_value vow_error_nomem(void);

/* References. vow_ref returns v with one more reference (for chaining);
 * vow_unref releases one; both accept any kind. */
vow_value vow_ref(vow_value v);
void vow_unref(vow_value v);

/* Reading values. The accessors borrow v and return borrowed data (valid
 * while v is alive). Each returns a neutral result for the wrong kind
 * (0, 0.0, NULL, "" or vow_undefined()). */
static inline vow_kind vow_kind_of(vow_value v) { return (vow_kind)v.kind; }
static inline int vow_is_undefined(vow_value v) { return v.kind == VOW_UNDEFINED; }
int64_t vow_as_int(vow_value v);          /* INT, BOOL; DOUBLE truncated */
double vow_as_double(vow_value v);        /* DOUBLE, INT */
const char *vow_str(vow_value v);         /* STRING: its bytes, NUL-terminated */
size_t vow_str_len(vow_value v);
size_t vow_array_len(vow_value v);        /* ARRAY, AGGREGATE (its reasons) */
vow_value vow_array_get(vow_value v, size_t i); /* borrowed; undefined out of range */
int vow_error_code(vow_value v);          /* ERROR; VOW_EAGGREGATE for AGGREGATE */
const char *vow_error_message(vow_value v);
vow_value vow_error_cause(vow_value v);   /* borrowed */
int vow_settled_ok(vow_value v);          /* SETTLED: 1 fulfilled, 0 rejected */
vow_value vow_settled_value(vow_value v); /* borrowed: the value or the reason */
vow_promise *vow_as_promise(vow_value v); /* borrowed; NULL if not a promise */
int vow_iter_done(vow_value v);           /* ITER: 1 when the iterator is finished */
vow_value vow_iter_value(vow_value v);    /* ITER: borrowed */
void *vow_as_pointer(vow_value v);

/* Writes v as text into buf (always NUL-terminated when cap > 0) and returns
 * the length it needed, like snprintf. The notation is the conformance
 * format's: undefined, 42, "text", [1,2], {fulfilled:1}, {rejected:"x"},
 * AggregateError["a","b"], Error(code: message), <promise>, <pointer>. */
size_t vow_value_format(vow_value v, char *buf, size_t cap);
/* The same, to a stream. Returns what fprintf returns. */
int vow_value_print(FILE *out, vow_value v);

/* ===================================================================== *
 * 5. Promises
 * ===================================================================== *
 *
 * A vow_promise is an ECMAScript promise: pending, then fulfilled with a
 * value or rejected with a reason, once. Resolution follows the spec's
 * procedure to the tick, so every mix of the calls below prints in the same
 * order as Node.js 20:
 *
 *   - resolving with another promise adopts it, through a job that subscribes
 *     to it: two extra microtask ticks, as in V8 (also when a handler returns
 *     a promise);
 *   - handlers always run from the microtask queue, never synchronously, even
 *     on a promise that is already settled;
 *   - finally() runs its handler and passes the original outcome through,
 *     at V8's cost (its handler's result is awaited).
 *
 * References. A vow_promise * is reference-counted. Every function that
 * returns one returns a new reference: release it with vow_promise_unref when
 * you no longer need it. Dropping the last reference to a pending promise is
 * fine: whatever would have settled it (a timer, a handler) holds its own
 * reference, and when nothing does, its handlers are released unrun.
 * Functions that take a promise as an argument borrow it unless they say
 * "takes". All of them accept NULL (what vow returns when memory runs out or
 * the thread is wrong) and propagate it, so a chain needs one check at the end.
 *
 * Cycles. Counting references cannot free a cycle: a handler's ctx, or a
 * value, that holds a reference to a promise which (directly or through
 * others) holds it back stays alive until the loop is freed, or forever if
 * the cycle outlives the loop. vow breaks the cycles it makes itself (a
 * promise adopting one that adopts it back; a promise rejected with itself);
 * keep your contexts and values from referring back to the promises they
 * are attached to.
 *
 * Memory. Promises and reactions come from per-loop free lists: a pending
 * promise is 32 bytes, each handler attached to it (a reaction) 48 bytes more
 * (64 with a ctx_free),
 * and a then-chain in its steady state calls malloc not at all.
 */

/* A handler: receives the settled value (or reason), borrowed, and returns
 * the value for the derived promise, which takes it. To reject the derived
 * promise instead, return vow_throw(reason); to adopt another promise, return
 * vow_promise_value(promise). */
typedef vow_value (*vow_handler)(vow_loop *loop, vow_value arg, void *ctx);

/* A finally handler: receives nothing (as in JavaScript). Its result is
 * ignored unless it is a rejection (vow_throw) or a promise, which is awaited
 * and whose rejection replaces the original outcome. */
typedef vow_value (*vow_finally_fn)(vow_loop *loop, void *ctx);

/* `throw reason` from a handler or an async function: marks reason (taken) so
 * that the promise it settles is rejected with it. */
static inline vow_value vow_throw(vow_value reason) {
  reason.flags |= VOW__THROWN;
  return reason;
}

typedef enum vow_state { VOW_PENDING = 0, VOW_FULFILLED, VOW_REJECTED } vow_state;

/* new Promise((resolve, reject) => ...): a pending promise whose resolving
 * functions are vow_promise_resolve/vow_promise_reject below. Returns a new
 * reference, or NULL (out of memory, wrong thread, NULL loop). */
vow_promise *vow_promise_new(vow_loop *loop);

/* resolve(value): value is taken. A plain value fulfils p; a promise value is
 * adopted (p follows it); p itself rejects p with a VOW_ETYPE error ("chaining
 * cycle"). Only the first call of resolve or reject counts: later ones are
 * no-ops that release their argument. Returns 1 when this call resolved p,
 * 0 when p was already resolved, VOW_EINVAL for NULL, VOW_ETHREAD. */
int vow_promise_resolve(vow_promise *p, vow_value value);
/* reject(reason): reason is taken. Same rules as resolve. */
int vow_promise_reject(vow_promise *p, vow_value reason);

/* Promise.resolve(value): value is taken. A promise value is returned as is
 * (the same promise, its reference moved to you); anything else gives a new
 * fulfilled promise. */
vow_promise *vow_resolved(vow_loop *loop, vow_value value);
/* Promise.reject(reason): a new promise rejected with reason (taken). */
vow_promise *vow_rejected(vow_loop *loop, vow_value reason);

/* p.then(on_ok, on_err): either handler may be NULL (pass the outcome
 * through). ctx is given to the handler that runs. Returns the derived
 * promise (a new reference). p is borrowed. */
vow_promise *vow_then(vow_promise *p, vow_handler on_ok, vow_handler on_err, void *ctx);
/* The same, and ctx_free(ctx) runs once, after the handler ran or when it will
 * never run (its promise was released pending, or the loop was freed). */
vow_promise *vow_then_full(vow_promise *p, vow_handler on_ok, vow_handler on_err, void *ctx,
                           void (*ctx_free)(void *ctx));
/* p.catch(on_err), that is p.then(NULL, on_err). */
vow_promise *vow_catch(vow_promise *p, vow_handler on_err, void *ctx);
/* p.finally(fn). */
vow_promise *vow_finally(vow_promise *p, vow_finally_fn fn, void *ctx);

vow_promise *vow_promise_ref(vow_promise *p);  /* returns p; NULL-safe */
void vow_promise_unref(vow_promise *p);         /* NULL-safe */

/* Inspection, for tests and tools (JavaScript cannot do this). */
vow_state vow_promise_state(const vow_promise *p);
/* The value or reason once settled (borrowed); undefined while pending. */
vow_value vow_promise_result(const vow_promise *p);
vow_loop *vow_promise_loop(const vow_promise *p);

/* ===================================================================== *
 * 6. Combinators
 * ===================================================================== *
 *
 * Each takes an array of n values (promises or plain values; a plain value
 * counts as an already-fulfilled promise). The n values are taken: their
 * references move into the combinator. Each returns a new promise reference,
 * or NULL when out of memory or when items is NULL and n is not 0 (the values
 * are then released).
 */

/* Promise.all: fulfils with an ARRAY of the values in input order once all
 * fulfil; rejects with the first rejection (fail fast). Empty: fulfils with []. */
vow_promise *vow_all(vow_loop *loop, vow_value *items, size_t n);
/* Promise.allSettled: fulfils, once all have settled, with an ARRAY of SETTLED
 * records in input order. Never rejects. Empty: fulfils with []. */
vow_promise *vow_all_settled(vow_loop *loop, vow_value *items, size_t n);
/* Promise.race: settles like the first input to settle. Empty: stays pending
 * forever, as in JavaScript. */
vow_promise *vow_race(vow_loop *loop, vow_value *items, size_t n);
/* Promise.any: fulfils with the first fulfilment; when all reject, rejects
 * with an AGGREGATE of the reasons in input order. Empty: rejects at once
 * with an empty AGGREGATE. */
vow_promise *vow_any(vow_loop *loop, vow_value *items, size_t n);

/* Array literals for the calls above:
 *   vow_all(loop, VOW_VALUES(vow_promise_value(a), vow_int(2)), 2)  */
#define VOW_VALUES(...) ((vow_value[]){__VA_ARGS__})
#define VOW_COUNT(...) (sizeof(VOW_VALUES(__VA_ARGS__)) / sizeof(vow_value))

/* The same four over an array of promises that stays the caller's: each
 * promise gets a reference of its own, and the array and the caller's
 * references are untouched. This is the fan-out form: keep the promises you
 * will settle and gather the very same array, with no array of values beside
 * it (8 bytes per input instead of 16 more). A NULL entry counts as an input
 * rejected with VOW_EINVAL. Returns a new reference, or NULL when out of
 * memory or when ps is NULL and n is not 0.
 *   vow_promise *ps[3] = {a, b, c};
 *   vow_promise *each = vow_all_promises(loop, ps, 3);  // a, b, c still ours */
vow_promise *vow_all_promises(vow_loop *loop, vow_promise *const *ps, size_t n);
vow_promise *vow_all_settled_promises(vow_loop *loop, vow_promise *const *ps, size_t n);
vow_promise *vow_race_promises(vow_loop *loop, vow_promise *const *ps, size_t n);
vow_promise *vow_any_promises(vow_loop *loop, vow_promise *const *ps, size_t n);

/* ===================================================================== *
 * 7. Unhandled rejections
 * ===================================================================== *
 *
 * A promise rejected while no handler is attached is remembered. At the end of
 * each microtask checkpoint (when the queue has drained), those still without
 * a handler are reported, in the order they were rejected — as Node.js emits
 * 'unhandledRejection'. A rejection handled later in the same drain is not
 * reported.
 *
 * The default report writes "vow: unhandled rejection: REASON" to stderr and
 * stops the run: vow_loop_run returns VOW_EUNHANDLED (as Node 20 exits with an
 * error). A hook replaces that policy; the run then goes on.
 */

/* The promise and its reason are borrowed for the duration of the call. */
typedef void (*vow_rejection_fn)(vow_loop *loop, vow_promise *p, vow_value reason, void *data);

/* Installs fn (NULL restores the default). Returns 0, VOW_EINVAL, VOW_ETHREAD. */
int vow_on_unhandled_rejection(vow_loop *loop, vow_rejection_fn fn, void *data);

/* ===================================================================== *
 * 8. async/await
 * ===================================================================== *
 *
 * An async function is a plain C function run on a coroutine: a stack of its
 * own, taken from a per-loop pool. vow_async calls it at once and it runs
 * synchronously up to its first vow_await — as in JavaScript — and then
 * vow_async returns its promise. vow_await suspends the function; a microtask
 * resumes it when the awaited promise settles, so the rest of the program
 * goes on meanwhile.
 *
 *   Sequential: each await finishes before the next request starts.
 *     vow_await(fetch_user(loop), &user);
 *     vow_await(fetch_posts(loop), &posts);
 *   Parallel: start both, then await each.
 *     vow_promise *u = fetch_user(loop), *p = fetch_posts(loop);
 *     vow_await(u, &user);
 *     vow_await(p, &posts);
 *
 * Ticks match V8: awaiting a promise or a value costs one microtask tick once
 * it is settled; returning a promise from an async function adopts it (its
 * caller's then runs three ticks after the promise settles).
 *
 * Each suspended async function costs its stack (stack_size, default 256 KiB
 * of address space, of which only the touched pages use memory) plus a guard
 * page. Overflowing the stack hits the guard page and vow aborts with a message
 * naming the function, rather than corrupting memory.
 */

/* The body of an async function. Its result settles the function's promise:
 * a value fulfils it, vow_promise_value(p) adopts p, vow_throw(reason)
 * rejects it. The result moves into the promise. */
typedef vow_value (*vow_async_fn)(vow_loop *loop, void *arg);

typedef struct vow_async_options {
  size_t stack_size;  /* 0: the loop's default (vow_loop_options.stack_size) */
  const char *name;   /* for stack-overflow reports and traces; borrowed, must
                         outlive the call; NULL: "async" */
  void (*arg_free)(void *arg); /* if set, called once vow is done with arg:
                         after the body returned, or when the body will never
                         run (the call failed, its coroutine could not be made,
                         or a generator was released before or during its run) */
  /* Small-memory mode, for async functions that are many and shallow (a
   * server's 100 k connections): 1 runs the function on the loop's one shared
   * stack, and while it is suspended only the part of that stack it used is
   * kept, copied out (libaco's copy stacks). A suspended function then costs
   * about 730 bytes of memory in all, frame and promise included (a plain one
   * costs a 4 KiB page at least); resuming one costs two copies of its used
   * bytes on top of the context switch (BENCHMARKS.md, issue 15, has both).
   * stack_size is ignored: the shared stack has the loop's default size and a
   * guard page, and overflowing it aborts with the usual message. The rule
   * that comes with it (libaco's): no one but the function itself may use a
   * pointer into its stack, because while another copy-stack function runs,
   * that one's frames are where this one's were. So the arg of an async
   * function it starts, and anything it lends out, must live on the heap or
   * in static memory, not in its locals (arg_free helps). vow's own awaits
   * and results never point into a stack. Under ASan or TSan, and with the
   * ucontext back-end, the function gets a plain 16 KiB stack instead.
   * Async functions only: generators ignore it. */
  int copy_stack;
} vow_async_options;

/* (async () => fn(arg))(): runs fn now on a new coroutine, until it first
 * awaits or returns, and returns its promise (a new reference). arg is
 * borrowed. Returns NULL only when no promise can be made (out of memory,
 * wrong thread); when only the coroutine cannot be made, the promise is
 * returned rejected with VOW_ENOMEM. options may be NULL. */
vow_promise *vow_async(vow_loop *loop, vow_async_fn fn, void *arg);
vow_promise *vow_async_ex(vow_loop *loop, vow_async_fn fn, void *arg,
                          const vow_async_options *options);

/* const v = await p — only inside an async function (or async generator).
 * Takes p (NULL is allowed: it means "out of memory" and gives VOW_ENOMEM).
 * Suspends until p settles, then stores its value or reason in *out (a new
 * reference, which you release) and returns 0 when p fulfilled, VOW_EREJECTED
 * when it rejected — the `catch` of a try/catch. Outside an async function it
 * returns VOW_ENOTASYNC with *out an error, after releasing p; it never
 * blocks the thread. A promise of another loop gives VOW_EINVAL. While the
 * loop is being freed it returns VOW_ECLOSING (see vow_loop_free). */
int vow_await(vow_promise *p, vow_value *out);
/* await value: a plain value (taken) or a promise value, as JavaScript's await
 * accepts either. */
int vow_await_value(vow_value value, vow_value *out);

/* The loop of the running async function, or NULL outside one. */
vow_loop *vow_current_loop(void);

/* asyncio.run(main()): makes a loop, runs fn(loop, arg) as an async function,
 * runs the loop until nothing is left, frees it. Returns 0 when fn's promise
 * fulfilled, VOW_EREJECTED when it rejected (the reason is printed to stderr),
 * or the loop's error (VOW_EUNHANDLED...). result (may be NULL) receives the
 * value or reason — a new reference, valid after the loop is gone only for
 * values that hold no promise. options may be NULL. */
int vow_run(vow_async_fn fn, void *arg, const vow_loop_options *options, vow_value *result);

/* ===================================================================== *
 * 9. Iteration: async generators and for-await
 * ===================================================================== *
 *
 * An async generator is a body that produces values one at a time and may
 * await between them: JavaScript's `async function*`. Its consumer asks for
 * values with next() — each call returns a promise of an ITER value
 * {value, done} — or, inside an async function, loops with for-await:
 *
 *   static vow_value numbers(vow_loop *loop, vow_asyncgen *gen, void *arg) {
 *     for (int i = 0; i < 3; i++) {
 *       vow_await(vow_delay(loop, 100, vow_undefined()), NULL);
 *       if (vow_yield(vow_int(i), NULL) != 0) break;   // consumer stopped
 *     }
 *     return vow_undefined();
 *   }
 *   ...inside an async function:
 *   vow_for_await it;
 *   vow_for_await_gen(&it, vow_asyncgen_new(loop, numbers, NULL));
 *   VOW_FOR_AWAIT(&it, v) printf("%lld\n", (long long)vow_as_int(v));
 *   if (vow_for_await_end(&it, &err) < 0) ... the loop ended with a rejection
 *
 * The request queue and its tick costs are the spec's (AsyncGeneratorEnqueue,
 * AsyncGeneratorYield, AsyncGeneratorDrainQueue): yield awaits its operand, a
 * next() called while the body runs is queued, and return() reaches a body
 * suspended at a yield as a return request.
 */
typedef struct vow_asyncgen vow_asyncgen;

/* The body. Returns the generator's final value like `return value;` (which
 * awaits value), or vow_throw(reason). Returning vow_undefined() counts as
 * falling off the end (JavaScript's bare `return;`, which awaits nothing). */
typedef vow_value (*vow_asyncgen_fn)(vow_loop *loop, vow_asyncgen *gen, void *arg);

/* `return await value` done by the body itself — say inside its own error
 * handling, where JavaScript's `try { return p } catch` catches p's rejection:
 * the body awaits value, and returns vow_return_awaited(result) so that the
 * generator completes with it as is, not awaiting it once more. Takes value. */
static inline vow_value vow_return_awaited(vow_value value) {
  value.flags |= VOW__AWAITED;
  return value;
}

/* Calls `async function*`: a generator suspended at its start (the body does
 * not run until the first next()). Returns a new reference, or NULL (out of
 * memory, wrong thread, NULL fn). arg is borrowed. options may be NULL. */
vow_asyncgen *vow_asyncgen_new(vow_loop *loop, vow_asyncgen_fn fn, void *arg);
vow_asyncgen *vow_asyncgen_new_ex(vow_loop *loop, vow_asyncgen_fn fn, void *arg,
                                  const vow_async_options *options);
vow_asyncgen *vow_asyncgen_ref(vow_asyncgen *gen);
/* Releasing the last reference to a generator suspended at a yield drops its
 * stack (the body never resumes); release it after return() if its body holds
 * resources to clean up. */
void vow_asyncgen_unref(vow_asyncgen *gen);

/* gen.next(value), gen.return(value), gen.throw(reason): value is taken; each
 * returns a new promise reference of an ITER value (or NULL when out of
 * memory). A body that is suspended resumes synchronously, inside the call. */
vow_promise *vow_asyncgen_next(vow_asyncgen *gen, vow_value value);
vow_promise *vow_asyncgen_return(vow_asyncgen *gen, vow_value value);
vow_promise *vow_asyncgen_throw(vow_asyncgen *gen, vow_value reason);

/* `sent = yield value` — only inside a generator's body. value (taken) is
 * awaited first, as JavaScript's yield does. Returns, with *sent (a new
 * reference; sent may be NULL to drop it):
 *   0              resumed by next(v): *sent is v;
 *   VOW_EREJECTED  resumed by throw(e), or value was a rejected promise:
 *                  *sent is the reason — handle it or return vow_throw(it);
 *   VOW_EDONE      resumed by return(v): *sent is v (awaited). The body should
 *                  clean up and return (its result is then not awaited again);
 *   VOW_ENOTASYNC  not inside a generator body. */
int vow_yield(vow_value value, vow_value *sent);

/* for await (const v of source): a cursor used inside an async function. */
typedef struct vow_for_await {
  vow_loop *loop;
  vow_asyncgen *gen;     /* the generator, for a generator source */
  vow_value *items;      /* the values, for an array source (owned copy) */
  size_t count;
  size_t next;
  int status;            /* 0 while iterating; then 0, or the error */
  int finished;
  vow_value error;       /* the rejection that ended the loop */
  vow_value held;        /* VOW_FOR_AWAIT's value of the current pass */
} vow_for_await;

/* Prepares a loop over a generator (taken) or over n values (taken: promises
 * or plain values, awaited in order, like for-await over an array). Return 0
 * or VOW_ENOMEM / VOW_EINVAL (the sources are then released). */
int vow_for_await_gen(vow_for_await *it, vow_asyncgen *gen);
int vow_for_await_array(vow_for_await *it, vow_loop *loop, vow_value *items, size_t n);
/* Awaits the next value: returns 1 with *value (a new reference), 0 when the
 * source is exhausted, or a negative code when it rejected (the reason is in
 * it->error; the loop is over). Must run inside an async function. */
int vow_for_await_next(vow_for_await *it, vow_value *value);
/* Ends the loop and releases the cursor. A loop left early (break) closes its
 * generator first, awaiting gen.return() — so the generator's cleanup runs, as
 * JavaScript's for-await does. Returns it->status; *error (may be NULL)
 * receives the rejection that ended the loop, if any (a new reference). */
int vow_for_await_end(vow_for_await *it, vow_value *error);

/* What VOW_FOR_AWAIT calls: vow_for_await_next, except that the cursor holds
 * the value (borrowed by the caller) until the next step or the end. */
int vow_for_await_step(vow_for_await *it, vow_value *value);

/* The loop itself: v is a fresh variable for each value, borrowed from the
 * cursor: released for you when the next pass begins, or — if the loop was
 * left with break — by vow_for_await_end, which you call afterwards in every
 * case. vow_ref it to keep it longer. */
#define VOW_FOR_AWAIT(it, v) \
  for (vow_value v = vow_undefined(); vow_for_await_step((it), &v) > 0;)



/* ===================================================================== *
 * 10. Timers
 * ===================================================================== *
 *
 * setTimeout, setInterval and setImmediate, with Node's rules:
 *   - a delay below 1 ms means 1 ms (so 0 behaves as 1, as in Node);
 *   - timers fire by due time; timers due at the same time fire in creation
 *     order (exactly: vow keeps Node's per-duration lists, so orders match);
 *   - microtasks drain after every single timer and immediate callback;
 *   - immediates run after the I/O phase; an immediate scheduled by an
 *     immediate runs in the next loop turn, not the current one.
 *
 * Timers are kept in vow's own structure, driven by one libuv timer: scheduling
 * is O(1) (append to the list of its duration) and clearing is O(1).
 *
 * A vow_timer is a positive id. Ids are never reused while a timer is pending,
 * and clearing an id that already fired or was cleared is a harmless no-op, so
 * ids can be stored and cleared without bookkeeping (like clearTimeout).
 */
typedef int64_t vow_timer;

/* The largest delay, as in Node (2^31 - 1 ms, about 24.8 days). */
#define VOW_TIMEOUT_MAX 2147483647ULL

/* setTimeout(fn, ms): fn(loop, arg) runs once, ms milliseconds from the loop's
 * current time. Returns the timer's id (> 0), or VOW_EINVAL (NULL fn, or ms
 * above VOW_TIMEOUT_MAX), VOW_ENOMEM, VOW_ETHREAD. arg is borrowed. */
vow_timer vow_set_timeout(vow_loop *loop, uint64_t ms, vow_task_fn fn, void *arg);

/* setInterval(fn, ms): fn runs every ms milliseconds until cleared. Each next
 * run is scheduled from the loop time at which the previous one began. */
vow_timer vow_set_interval(vow_loop *loop, uint64_t ms, vow_task_fn fn, void *arg);

/* setImmediate(fn): fn runs in the loop's check phase, after I/O. */
vow_timer vow_set_immediate(vow_loop *loop, vow_task_fn fn, void *arg);

/* clearTimeout / clearInterval / clearImmediate (one function serves all three).
 * Returns 1 when a pending timer was cancelled, 0 when the id is not pending
 * (fired, cleared before, or never issued — all harmless), VOW_ETHREAD from
 * another thread. Safe to call from inside the timer's own callback; an
 * interval cleared there does not run again. */
int vow_clear_timer(vow_loop *loop, vow_timer id);

/* Spelled the JavaScript way, for readers coming from there. */
#define vow_clear_timeout(loop, id)   vow_clear_timer((loop), (id))
#define vow_clear_interval(loop, id)  vow_clear_timer((loop), (id))
#define vow_clear_immediate(loop, id) vow_clear_timer((loop), (id))

/* Timers as promises, like Node's require('timers/promises').setTimeout:
 * a promise fulfilled with value (taken) after ms milliseconds, or rejected
 * with reason (taken) — the other half of the timeout pattern:
 *   vow_race(loop, VOW_VALUES(work, vow_promise_value(
 *            vow_delay_reject(loop, 5000, vow_error(VOW_ETIMEDOUT, "Timeout!")))), 2)
 * A delay above VOW_TIMEOUT_MAX gives a promise rejected with VOW_EINVAL.
 * Returns a new reference, or NULL (out of memory, wrong thread). */
vow_promise *vow_delay(vow_loop *loop, uint64_t ms, vow_value value);
vow_promise *vow_delay_reject(vow_loop *loop, uint64_t ms, vow_value reason);

/* timer.unref() / timer.ref(): an unreferenced timer does not keep
 * vow_loop_run from returning. Return 0, or 0 with no effect for an id that is
 * not pending. */
int vow_timer_unref(vow_loop *loop, vow_timer id);
int vow_timer_ref(vow_loop *loop, vow_timer id);

/* ===================================================================== *
 * 11. Cancellation
 * ===================================================================== *
 *
 * JavaScript's AbortController and AbortSignal, as one object: whoever
 * creates a signal holds the right to abort it (the controller's side) and
 * hands it to the work that should stop (the signal's side). Aborting runs
 * the signal's listeners once, in the order they were added, synchronously
 * — as AbortController.abort() dispatches its 'abort' event.
 *
 * Beyond JavaScript: vow_timeout gives up on work after a delay *and* aborts
 * it, where Promise.race merely stops listening to the loser.
 */
typedef struct vow_abort_signal vow_abort_signal;

/* new AbortController(): a signal not yet aborted (a new reference). NULL
 * when out of memory or on the wrong thread. */
vow_abort_signal *vow_abort_signal_new(vow_loop *loop);
vow_abort_signal *vow_abort_signal_ref(vow_abort_signal *signal); /* NULL-safe */
void vow_abort_signal_unref(vow_abort_signal *signal);             /* NULL-safe */

/* controller.abort(reason): reason is taken; vow_undefined() means an error
 * VOW_EABORTED "This operation was aborted" (JavaScript's AbortError). A
 * signal aborts once: later calls release their reason and return 0. Returns
 * 1 when this call aborted it. */
int vow_abort(vow_abort_signal *signal, vow_value reason);

/* signal.aborted and signal.reason (borrowed; undefined until aborted). */
int vow_abort_signal_aborted(const vow_abort_signal *signal);
vow_value vow_abort_signal_reason(const vow_abort_signal *signal);

/* signal.addEventListener('abort', fn): fn(loop, reason, data) runs when the
 * signal aborts (reason borrowed). Returns a listener id (> 0) for
 * vow_abort_signal_off, or VOW_ENOMEM. On a signal already aborted the
 * listener never runs (as in JavaScript); check vow_abort_signal_aborted first. */
typedef void (*vow_abort_fn)(vow_loop *loop, vow_value reason, void *data);
int64_t vow_abort_signal_on(vow_abort_signal *signal, vow_abort_fn fn, void *data);
/* Removes a listener; 1 if it was there, 0 if not (ran, removed, unknown). */
int vow_abort_signal_off(vow_abort_signal *signal, int64_t id);

/* AbortSignal.timeout(ms): a new signal that aborts itself after ms with an
 * error VOW_ETIMEDOUT "The operation was aborted due to timeout". Its timer
 * does not keep the loop alive (as in Node). */
vow_abort_signal *vow_abort_signal_timeout(vow_loop *loop, uint64_t ms);
/* AbortSignal.any([...]): a new signal that aborts, with the same reason, as
 * soon as any of the n signals (borrowed) does — at once if one already has. */
vow_abort_signal *vow_abort_signal_any(vow_loop *loop, vow_abort_signal *const *signals, size_t n);

/* A promise that rejects with the signal's reason when it aborts (already
 * rejected if it has), and never fulfils: something to race against. A new
 * reference. */
vow_promise *vow_abort_signal_promise(vow_abort_signal *signal);

/* The timeout pattern, done right: settles like work (taken) if it settles
 * within ms; otherwise rejects with an error VOW_ETIMEDOUT "Timeout!" and, when
 * work_signal (borrowed, may be NULL) is given, aborts it with that error so
 * the abandoned work stops. The timer is cleared when work wins. A new
 * reference, or NULL when out of memory. */
vow_promise *vow_timeout(vow_loop *loop, vow_promise *work, uint64_t ms,
                         vow_abort_signal *work_signal);

/* ===================================================================== *
 * 12. I/O
 * ===================================================================== *
 *
 * Everything a program reads or writes, as promises and async iterators, so
 * that no caller drops back to libuv's callbacks: byte streams first (pipes,
 * sockets, TTYs and files share them), then files, processes, signals,
 * stdin/stdout, TCP and DNS, then fetch and the HTTP server. Errors are
 * libuv's codes (UV_ENOENT, UV_ECONNREFUSED...) in ERROR values whose message
 * names what failed ("ENOENT: open 'x.txt'"); calls that take an AbortSignal
 * reject with the signal's reason when it aborts, and stop what they started.
 */

/* ---- streams ----------------------------------------------------------------
 *
 * A vow_stream is one byte stream: a pipe, a TCP connection, a TTY or a file,
 * behind one interface (Node's Readable and Writable, reduced to what async
 * code needs). The readable side is an async iterator; the writable side is
 * one promise per write.
 *
 *   - Reading is pulled: the stream reads from the kernel only while its
 *     reader waits for a chunk (or while less than one high-water mark,
 *     64 KiB, is buffered), so a slow consumer slows the producer down — the
 *     kernel's buffers fill and the peer blocks — instead of memory growing.
 *   - Chunks are STRING values of bytes (binary-safe: vow_str_len is the
 *     length), in arrival order; the iterator is done at end of stream and
 *     rejects with the error when reading fails.
 *   - Writes are copied and queued in order; each promise fulfils once its
 *     bytes were handed to the kernel (or the file), and rejects with the
 *     error (UV_EPIPE, UV_ECONNRESET, UV_ENOSPC, UV_EFBIG...). Awaiting each
 *     write is the backpressure; vow_stream_write_queue tells what is waiting.
 *   - A stream is reference counted and may be shared; closing it (or
 *     dropping its last reference) stops everything: a waiting reader ends
 *     (done), queued writes reject with UV_ECANCELED.
 */
typedef struct vow_stream vow_stream;

vow_stream *vow_stream_ref(vow_stream *s);  /* returns s; NULL-safe */
void vow_stream_unref(vow_stream *s);       /* NULL-safe; the last reference closes it */

/* The stream inside a POINTER value that an I/O call fulfilled with (a TCP
 * connection, an accepted client): borrowed from the value, or NULL. */
vow_stream *vow_as_stream(vow_value value);

/* Its chunks, as an async generator (a new reference) for VOW_FOR_AWAIT. One
 * reader at a time: a second iterator made while the first is unfinished
 * rejects its first next() with VOW_EBUSY. Leaving the loop early (break, or
 * releasing the generator) leaves the rest of the stream unread, for a later
 * reader. NULL only when out of memory. */
vow_asyncgen *vow_stream_chunks(vow_stream *s);

/* Its lines (readline): each line yielded as a STRING without its ending,
 * which is "\n", "\r\n" or a lone "\r" as in Node's readline; a last line
 * without an ending is yielded at the end. A line longer than max_line bytes
 * (0: 64 KiB) rejects with VOW_ETOOBIG rather than buffering without bound.
 * The same one-reader rule as vow_stream_chunks; bytes read past the line
 * where the loop stopped are dropped with the generator. */
vow_asyncgen *vow_stream_lines(vow_stream *s, size_t max_line);

/* Writes len bytes (copied). Returns a new promise reference, fulfilled with
 * undefined once written; NULL only when out of memory. Writing after
 * vow_stream_end or vow_stream_close rejects with UV_EPIPE. */
vow_promise *vow_stream_write(vow_stream *s, const void *data, size_t len);
/* The same with a STRING value (taken), sent without a copy. */
vow_promise *vow_stream_write_value(vow_stream *s, vow_value chunk);
/* Bytes queued and not yet handed to the kernel. */
size_t vow_stream_write_queue(const vow_stream *s);

/* Half-close (socket.end()): once the queued writes are out, the writing side
 * is shut down, so the peer reads end of stream; reading goes on. The promise
 * (a new reference) fulfils when the shutdown is done; out of memory the end
 * still happens, and NULL is returned. On a pipe, which has one direction,
 * the end closes the stream. */
vow_promise *vow_stream_end(vow_stream *s);

/* Closes both sides now (socket.destroy()). The promise (a new reference)
 * fulfils once the underlying handle is closed. Closing twice is harmless.
 * Out of memory the stream still closes, and NULL is returned. */
vow_promise *vow_stream_close(vow_stream *s);

/* Bounds on a stream's life. An idle timeout (socket.setTimeout, but closing):
 * when no byte is read or written for ms milliseconds, the stream closes
 * with VOW_ETIMEDOUT — a waiting reader and queued writes reject with it.
 * 0 turns it off. A signal (borrowed; a reference is kept): when it aborts,
 * the stream closes with the signal's reason. Return 0 or a negative code. */
int vow_stream_set_timeout(vow_stream *s, uint64_t ms);
int vow_stream_set_signal(vow_stream *s, vow_abort_signal *signal);

/* ---- files ------------------------------------------------------------------
 *
 * Node's fs/promises, in vow's style. Every call runs its system calls on
 * libuv's thread pool — all of one call's calls in one pool job (readFile's
 * open, fstat, read and close are one trip to the pool, not four) — and
 * settles its promise on the loop's thread. Paths are copied; options are
 * read during the call (a signal in them is kept with a reference).
 *
 * Errors reject with an ERROR value whose code is libuv's (UV_ENOENT,
 * UV_EACCES, UV_EISDIR, UV_ENOSPC, UV_EFBIG...) and whose message is the one
 * Node makes from the same libuv error — "CODE: description, syscall 'path'",
 * to the byte — with the path added where Node leaves it out (read, write):
 *   "ENOENT: no such file or directory, open 'x.txt'"
 *   "EISDIR: illegal operation on a directory, read 'dir'"
 *   "ENOENT: no such file or directory, rename 'a' -> 'b'"
 * (rm of a directory without recursive says "EISDIR: illegal operation on a
 * directory, rm 'dir'" where Node has its own ERR_FS_EISDIR wording.)
 * A NULL path (or data) rejects with VOW_EINVAL. Each call returns a new
 * promise reference; NULL only when out of memory or on the wrong thread.
 *
 * Cancellation: where options take a signal, an abort rejects the promise
 * with the signal's reason. Work still queued for the pool is taken off the
 * queue; work already running stops at its next chunk (1 MiB) and the
 * promise settles once the pool thread has let go. An aborted write may have
 * written part of its data — an atomic one never has: its target is either
 * untouched or wholly replaced.
 *
 * A call cannot be stopped inside a system call: vow_loop_free waits for
 * those still on the pool (so a read of a FIFO that never gets a writer
 * keeps it waiting, as it keeps a pool thread in Node).
 *
 * Writes and disk limits: a full disk rejects with UV_ENOSPC. A process
 * limited by RLIMIT_FSIZE (`ulimit -f`) gets SIGXFSZ, which kills it, unless
 * it ignores that signal (signal(SIGXFSZ, SIG_IGN)): the write then rejects
 * with UV_EFBIG. vow does not change signal dispositions for you.
 */

/* fs.readFile(path): the whole file, as a STRING of bytes (binary-safe:
 * vow_str_len is its length). A file whose size is unknown in advance (a
 * pipe, /proc) is read until its end. */
typedef struct vow_fs_read_options {
  vow_abort_signal *signal;  /* NULL: the current cancel scope's, if any */
  size_t max_size;           /* bigger files reject with VOW_ETOOBIG; 0: the
                                most a STRING holds, 4 GiB - 2 */
} vow_fs_read_options;
vow_promise *vow_fs_read_file(vow_loop *loop, const char *path, const vow_fs_read_options *options);

/* fs.writeFile(path, data) and, with append, fs.appendFile. Fulfils with
 * undefined once every byte is written. */
typedef struct vow_fs_write_options {
  vow_abort_signal *signal;  /* NULL: the current cancel scope's, if any */
  int append;                /* add to the end instead of replacing */
  int exclusive;             /* fail with UV_EEXIST if the file exists ('wx') */
  int atomic;                /* write a temporary file beside path, fsync it,
                                then rename it over path: readers see the old
                                contents or the new, never a part, even after a
                                crash. The new file gets `mode` (the old one's
                                is not kept), and a symbolic link at path is
                                replaced, not written through. On failure the
                                temporary is removed. Not with append or
                                exclusive (VOW_EINVAL) */
  int fsync;                 /* fsync before fulfilling (atomic always does) */
  unsigned mode;             /* of a new file, before the umask; 0: 0666 */
} vow_fs_write_options;
/* data (len bytes) is copied. */
vow_promise *vow_fs_write_file(vow_loop *loop, const char *path, const void *data, size_t len,
                               const vow_fs_write_options *options);
/* The same with a STRING value (taken), written without a copy. */
vow_promise *vow_fs_write_file_value(vow_loop *loop, const char *path, vow_value data,
                                     const vow_fs_write_options *options);

/* What a path is (stats.isFile(), isDirectory()...). */
typedef enum vow_file_type {
  VOW_FILE_UNKNOWN = 0,
  VOW_FILE_REGULAR,
  VOW_FILE_DIRECTORY,
  VOW_FILE_SYMLINK,
  VOW_FILE_FIFO,
  VOW_FILE_SOCKET,
  VOW_FILE_CHAR_DEVICE,
  VOW_FILE_BLOCK_DEVICE
} vow_file_type;

/* fs.Stats. Times are nanoseconds since the epoch (Node's mtimeMs is
 * mtime_ns / 1e6). */
typedef struct vow_stat {
  vow_file_type type;
  uint32_t mode;        /* st_mode: the type and permission bits */
  uint64_t size;        /* bytes */
  uint64_t dev, ino, nlink, uid, gid, blocks;
  int64_t atime_ns, mtime_ns, ctime_ns;
} vow_stat;

/* fs.stat(path) and fs.lstat(path) (which describes a symbolic link itself,
 * not what it points to): a POINTER value read with vow_as_stat. */
vow_promise *vow_fs_stat(vow_loop *loop, const char *path);
vow_promise *vow_fs_lstat(vow_loop *loop, const char *path);
/* The stat inside such a value (borrowed from it), or NULL. */
const vow_stat *vow_as_stat(vow_value value);

/* A directory entry (fs.Dirent): its name, and its type as the directory
 * knows it (a symbolic link is VOW_FILE_SYMLINK, not followed). */
typedef struct vow_dirent {
  const char *name;
  vow_file_type type;
} vow_dirent;

/* fs.opendir(path) as an async iterator: an async generator (a new
 * reference, for VOW_FOR_AWAIT) that yields each entry of the directory as
 * a POINTER value read with vow_as_dirent, in the directory's own order
 * (not sorted), without "." and "..". Entries are read in batches of 64 on
 * the pool, so a huge directory is never held in memory at once. An error
 * (UV_ENOENT, UV_ENOTDIR: "ENOTDIR: not a directory, opendir 'x'") rejects
 * the first next(), a NULL path too (VOW_EINVAL); an error while reading
 * rejects the next() it happens in. Leaving the loop early closes the
 * directory. NULL only when out of memory. */
vow_asyncgen *vow_fs_readdir(vow_loop *loop, const char *path);
/* The entry inside such a value (borrowed from it), or NULL. */
const vow_dirent *vow_as_dirent(vow_value value);

/* fs.mkdir(path, {recursive, mode}). Without recursive, fulfils with
 * undefined and rejects with UV_EEXIST if path exists. With it (mkdir -p),
 * missing parents are made too and an existing directory is fine; fulfils, as
 * Node does, with the first directory it made (a STRING), or undefined when
 * there was nothing to make. options may be NULL. */
typedef struct vow_fs_mkdir_options {
  int recursive;
  unsigned mode;  /* before the umask; 0: 0777 */
} vow_fs_mkdir_options;
vow_promise *vow_fs_mkdir(vow_loop *loop, const char *path, const vow_fs_mkdir_options *options);

/* fs.rm(path, {recursive, force}): removes a file or a symbolic link (never
 * what it points to); a directory only with recursive (rm -r: its whole tree,
 * links not followed), else UV_EISDIR. With force a missing path is not an
 * error. Fulfils with undefined. options may be NULL. */
typedef struct vow_fs_rm_options {
  int recursive;
  int force;
} vow_fs_rm_options;
vow_promise *vow_fs_rm(vow_loop *loop, const char *path, const vow_fs_rm_options *options);

/* fs.rename(from, to): atomic within one file system (UV_EXDEV across them);
 * replaces to if it exists. Fulfils with undefined. */
vow_promise *vow_fs_rename(vow_loop *loop, const char *from, const char *to);

/* fs.createReadStream(path, {start, signal}) and fs.createWriteStream(path,
 * {flags: 'a' | 'wx', mode, start}): opens path on the pool and fulfils
 * with a POINTER value holding a vow_stream (read it with vow_as_stream;
 * vow_stream_ref it to keep it past the value). The stream owns the file:
 * its last reference (the value holds one) or vow_stream_close closes it. Reading is the
 * vow_stream contract above — chunks of up to 64 KiB, read from the file only
 * while a reader waits, so a file of any size streams in constant memory;
 * writes go out in order, each promise fulfilled once its bytes are in the
 * file. Errors of the open reject ("ENOENT: no such file or directory, open
 * 'x'", "EISDIR: ..., open 'dir'"); those of reads and writes reject the read
 * or the write ("ENOSPC: write 'x'"). The signal aborts the open and, once
 * open, closes the stream (section "streams"). */
typedef struct vow_fs_stream_options {
  vow_abort_signal *signal;  /* NULL: the current cancel scope's, if any */
  int64_t start;             /* the byte to start reading or writing at; a
                                writer given a start keeps what the file holds
                                (Node's 'r+'), one without truncates it */
  int append;                /* write: add to the end (not with start) */
  int exclusive;             /* write: fail with UV_EEXIST if the file exists */
  unsigned mode;             /* write: of a new file, before the umask; 0: 0666 */
} vow_fs_stream_options;
vow_promise *vow_fs_open_read(vow_loop *loop, const char *path, const vow_fs_stream_options *options);
vow_promise *vow_fs_open_write(vow_loop *loop, const char *path, const vow_fs_stream_options *options);

/* ---- stdin, stdout, stderr, and any descriptor -------------------------------
 *
 * process.stdin, process.stdout and process.stderr: the loop's stream over
 * descriptor 0, 1 or 2, made on the first call; every call returns a new
 * reference to that same stream. What backs it is found at run time — a TTY,
 * a pipe or socket (polled by libuv), or a regular file or device (read and
 * written on libuv's thread pool, since files cannot be polled) — so
 * `prog < file`, `cmd | prog` and a terminal read alike. Reading stdin keeps
 * the loop alive only while a reader waits on it (Node keeps it alive while
 * stdin flows). The descriptors themselves are never closed: the stream works
 * on a duplicate. NULL when out of memory, on the wrong thread, or when the
 * descriptor is closed or not a byte stream.
 *
 *   // for await (const line of readline.createInterface({input: process.stdin}))
 *   vow_for_await it;
 *   vow_for_await_gen(&it, vow_stream_lines(in, 0));
 *   VOW_FOR_AWAIT(&it, line) ...
 */
vow_stream *vow_stdin(vow_loop *loop);
vow_stream *vow_stdout(vow_loop *loop);
vow_stream *vow_stderr(vow_loop *loop);

/* A stream over any open descriptor fd (borrowed: the stream works on a
 * duplicate, closed with it), backed as above. On success *out is a new
 * reference and 0 is returned; otherwise UV_EBADF (fd is not open),
 * VOW_EINVAL (a UDP socket, or a kind that is not a byte stream), VOW_ENOMEM,
 * or libuv's error. */
int vow_stream_open_fd(vow_loop *loop, int fd, vow_stream **out);
/* ---- DNS --------------------------------------------------------------------
 *
 * dns.promises.lookup(host, {all: true, family}): the system resolver
 * (getaddrinfo: /etc/hosts, then DNS) run on libuv's thread pool, so the loop
 * never blocks on a name. Every address is returned, in the resolver's order
 * (Node 20's verbatim order). A numeric address resolves to itself.
 */
typedef struct vow_dns_options {
  int family;                 /* 0: IPv4 and IPv6; 4 or 6: only that family */
  int pairs;                  /* fulfil with [address, family] pairs, ["::1",6],
                                 instead of address strings */
  vow_abort_signal *signal;   /* borrowed (a reference is kept while resolving); NULL: the current scope's */
} vow_dns_options;

/* Resolves host (copied). options may be NULL. Returns a new promise
 * reference, fulfilled with an ARRAY of address STRINGs ("127.0.0.1", "::1")
 * or of pairs; NULL only when out of memory or on the wrong thread. Rejects
 * with VOW_EINVAL (no host, a family other than 0, 4, 6), UV_EAI_NONAME (an
 * unknown name: "EAI_NONAME: getaddrinfo 'no.such.host': unknown node or
 * service"), another UV_EAI_* code, VOW_ENOMEM, or the signal's reason. An
 * abort stops the lookup if it has not started; one already running on a
 * pool thread finishes there, unheard. */
vow_promise *vow_dns_lookup(vow_loop *loop, const char *host, const vow_dns_options *options);

/* ---- TCP --------------------------------------------------------------------
 *
 * net.connect and net.createServer, as promises: a connection is a vow_stream
 * (read it with vow_stream_chunks or vow_stream_lines, write it with
 * vow_stream_write, half-close it with vow_stream_end), and a server hands out
 * its connections through an async iterator — for await (const c of server).
 * IPv4 and IPv6 alike.
 *
 *   vow_value v;
 *   if (vow_await(vow_tcp_connect(loop, "localhost", 6379, NULL), &v) == 0) {
 *     vow_stream *redis = vow_as_stream(v);
 *     vow_await(vow_stream_write(redis, "PING\r\n", 6), NULL);
 *     ...
 *   }
 *   vow_unref(v);   // the last reference closes the connection
 *
 * Connecting resolves a name on the loop (vow_dns_lookup) and tries every
 * address in turn, as Node 20's autoSelectFamily does: an address that
 * refuses, or does not answer within attempt_timeout_ms while others remain,
 * is given up for the next. When all fail, the rejection is the last
 * address's error, with the one before it as its cause, and so on.
 */
typedef struct vow_tcp_server vow_tcp_server;

typedef struct vow_tcp_connect_options {
  int family;                   /* resolve to 0: any family, 4 or 6 only */
  uint64_t timeout_ms;          /* for the whole connect, lookup included: then a
                                   VOW_ETIMEDOUT rejection; 0: none (the kernel's) */
  uint64_t attempt_timeout_ms;  /* per address when more remain (Node's
                                   autoSelectFamilyAttemptTimeout); 0: 250 ms */
  int nodelay;                  /* socket.setNoDelay(true) once connected */
  vow_abort_signal *signal;     /* borrowed while connecting (a reference is
                                   kept); abort rejects with its reason; NULL: the scope's */
} vow_tcp_connect_options;

/* net.connect(port, host): host (a name or a numeric IPv4/IPv6 address,
 * copied) and port (1-65535). options may be NULL. Returns a new promise
 * reference, fulfilled with a POINTER value holding the connected stream
 * (vow_as_stream; the value holds the stream's reference: keep the value, or
 * vow_stream_ref the stream, as long as you use it); NULL only when out of
 * memory or on the wrong thread. Rejects with an ERROR naming what failed:
 * VOW_EINVAL (no host, a port out of range), UV_EAI_* (the name), then the
 * connection's code — UV_ECONNREFUSED "ECONNREFUSED: connect 127.0.0.1:1",
 * UV_ENETUNREACH, UV_EADDRNOTAVAIL... — VOW_ETIMEDOUT (timeout_ms), VOW_ENOMEM,
 * or the signal's reason. An abort or a timeout closes the half-made socket. */
vow_promise *vow_tcp_connect(vow_loop *loop, const char *host, int port,
                             const vow_tcp_connect_options *options);

typedef struct vow_tcp_listen_options {
  int backlog;                  /* pending connections the kernel queues; 0: 511 (Node's) */
  int ipv6_only;                /* on "::", refuse IPv4 clients (no dual stack) */
} vow_tcp_listen_options;

/* server.listen(port, host): binds host — a numeric address ("127.0.0.1",
 * "::1", "0.0.0.0", "::"; NULL: "127.0.0.1"; resolve a name first with
 * vow_dns_lookup) — and port (0: an ephemeral port, see vow_tcp_server_port).
 * options may be NULL. Returns 0 with *out the server, or a negative code:
 * VOW_EINVAL (not a numeric address, a port out of range), UV_EADDRINUSE,
 * UV_EACCES, UV_EADDRNOTAVAIL, VOW_ENOMEM, VOW_ETHREAD. As in Node, a
 * listening server keeps the loop running until vow_tcp_server_close (or
 * vow_loop_free, which closes it). */
int vow_tcp_listen(vow_loop *loop, const char *host, int port,
                   const vow_tcp_listen_options *options, vow_tcp_server **out);

/* server.address().port: the bound port, or VOW_EINVAL. */
int vow_tcp_server_port(const vow_tcp_server *server);

/* for await (const socket of server): an async generator (a new reference)
 * yielding each accepted connection as a POINTER value holding its stream
 * (as from vow_tcp_connect; the generator keeps no reference). Connections
 * are accepted only while the iterator asks for one: until then they wait in
 * the kernel's backlog. The generator is done once the server closes, and
 * rejects if accepting fails ("ENOBUFS: accept"). Out of descriptors (EMFILE),
 * libuv closes the waiting connections rather than spin, as under Node: their
 * clients see the connection closed, and the iterator waits on. One iterator
 * at a time: a second one's first next() rejects with VOW_EBUSY while the
 * first is unfinished. NULL when out of memory or the server is closed. */
vow_asyncgen *vow_tcp_accept_iter(vow_tcp_server *server);

/* server.close(): stops listening now and ends the iterator (done). Unlike
 * Node's, the connections already accepted are the caller's streams, and go
 * on. The promise (a new reference) fulfils when the listening socket is
 * closed; the server is freed once that is done and its iterators are
 * released: do not use the pointer after calling close (but closing twice is
 * harmless). NULL when out of memory or on the wrong thread; out of memory,
 * the server still closes. */
vow_promise *vow_tcp_server_close(vow_tcp_server *server);

/* A TCP stream's own settings and addresses (a stream from vow_tcp_connect or
 * an iterator; borrowed). Return 0 (the addresses: the port) or a negative
 * code: VOW_EINVAL for a stream that is not TCP or is closed. */
int vow_tcp_set_nodelay(vow_stream *s, int on);                   /* setNoDelay */
int vow_tcp_set_keepalive(vow_stream *s, int on, unsigned delay_s); /* setKeepAlive */
/* socket.remoteAddress / remotePort and localAddress / localPort: the numeric
 * address is written to buf (46 bytes hold any), the port returned. */
int vow_tcp_remote_address(vow_stream *s, char *buf, size_t cap);
int vow_tcp_local_address(vow_stream *s, char *buf, size_t cap);

/* ---- child processes -------------------------------------------------------
 *
 * Node's child_process, as promises: spawn a program with its argv, env, cwd
 * and what its stdin, stdout and stderr are; read its output as streams; its
 * exit is a promise. vow_exec is execFile: it collects the output, within a
 * size limit and a time limit.
 *
 *   - The program (argv[0]) is looked up in PATH when it has no '/' (the
 *     PATH of options->env when it is given, as Node does). Nothing goes
 *     through a shell: to run a pipeline, run /bin/sh -c "yes | head". A
 *     script without a #! line is the exception, as with execvp and Node:
 *     it runs as /bin/sh SCRIPT ARGS...
 *   - The exit is an INT value: the exit code (0-255) when the child exited,
 *     or minus the signal's number when a signal killed it (-15: SIGTERM).
 *     vow_exit_code and vow_exit_signal read it, and read exec's results and
 *     rejections the same way.
 *   - No zombie, ever: each child is reaped when it exits while the loop
 *     runs. vow_loop_free, with children still running, kills them (SIGKILL)
 *     and waits for them. Between runs a child that exits waits to be reaped
 *     by the next run (or the free). After vow_loop_free a vow_process the
 *     caller still holds may only be read (pid), killed (UV_ESRCH) and
 *     released.
 *   - A running child keeps vow_loop_run going (vow_process_loop_unref says
 *     not to wait for it, like child.unref()); the vow_process lives at least
 *     until the child exits, however early the caller lets go of it.
 *   - A child's stdin/stdout/stderr made with VOW_STDIO_PIPE are vow_streams
 *     (above). Writing to a stdin the child has closed rejects with UV_EPIPE,
 *     never kills the program (the loop ignores SIGPIPE, as Node does).
 */
typedef struct vow_process vow_process;

/* What a child's stdin, stdout or stderr is. 0, the default, shares ours. */
enum {
  VOW_STDIO_INHERIT = 0, /* the parent's own fd 0, 1 or 2 ('inherit') */
  VOW_STDIO_PIPE,        /* a pipe, read or written as a vow_stream ('pipe') */
  VOW_STDIO_IGNORE       /* /dev/null ('ignore') */
};

typedef struct vow_spawn_options {
  const char *const *argv;  /* the program and its arguments, NULL-terminated;
                               argv[0] must be a non-empty string */
  const char *const *env;   /* "NAME=value" strings, NULL-terminated; NULL: ours */
  const char *cwd;          /* the child's working directory; NULL: ours */
  int stdio[3];             /* VOW_STDIO_* for stdin, stdout, stderr */
  vow_abort_signal *signal; /* when it aborts, the child is killed with
                               kill_signal; borrowed (a reference is kept
                               until the child exits); NULL: the current
                               cancel scope's, if any */
  int kill_signal;          /* for signal (and vow_exec's limits); 0: SIGTERM */
} vow_spawn_options;

/* spawn(argv[0], argv.slice(1), options). The strings are only read during
 * the call. On success *out is the process (one reference, the caller's;
 * release it with vow_process_unref) and 0 is returned. Otherwise *out is
 * NULL and the code says why: VOW_EINVAL (no options or argv, an empty
 * argv[0], a bad stdio mode or kill_signal), VOW_EABORTED (signal already
 * aborted: nothing was started), VOW_ENOMEM, VOW_ETHREAD, VOW_ECLOSING, or
 * the system's (UV_ENOENT: no such program or cwd; UV_EACCES; UV_EAGAIN).
 * vow_exec gives the same failures as rejections whose message names the
 * program. */
int vow_process_spawn(vow_loop *loop, const vow_spawn_options *options, vow_process **out);

vow_process *vow_process_ref(vow_process *p); /* returns p; NULL-safe */
void vow_process_unref(vow_process *p);       /* NULL-safe; the child runs on */

/* child.pid; 0 for NULL. It stays readable after the exit, but the number may
 * then belong to another process: signal the child with vow_process_kill. */
int vow_process_pid(const vow_process *p);

/* The child's stdin (writable), stdout and stderr (readable), for those made
 * with VOW_STDIO_PIPE, else NULL. Borrowed from the process (vow_stream_ref
 * one to keep it longer). Ending stdin (vow_stream_end) is how a child like
 * cat learns that its input is over. */
vow_stream *vow_process_stdin(vow_process *p);
vow_stream *vow_process_stdout(vow_process *p);
vow_stream *vow_process_stderr(vow_process *p);

/* once(child, 'exit'): a promise (a new reference; the same promise every
 * time) fulfilled with the exit INT when the child has exited. It never
 * rejects; it is NULL after vow_loop_free, or for NULL. Output may still be
 * waiting in stdout and stderr when it fulfils: read them to their end. */
vow_promise *vow_process_exit(vow_process *p);

/* child.kill(signum): sends signum (SIGTERM, SIGKILL, SIGINT...; 0 tests that
 * the child is alive). Returns 0, UV_ESRCH once the child has exited (no
 * signal is then sent: its pid may be another process's), VOW_EINVAL (NULL,
 * or signum out of range), VOW_ETHREAD. */
int vow_process_kill(vow_process *p, int signum);

/* child.unref() / child.ref(): whether vow_loop_run waits for the child's
 * exit (it does by default). Return 0, or VOW_EINVAL for NULL. */
int vow_process_loop_unref(vow_process *p);
int vow_process_loop_ref(vow_process *p);

/* execFile(argv[0], argv.slice(1), options): runs the program with stdin
 * from /dev/null, collects its stdout and stderr, and waits for its exit and
 * the end of both. */
typedef struct vow_exec_options {
  const char *const *env;   /* as vow_spawn_options */
  const char *cwd;
  vow_abort_signal *signal; /* aborting kills the child with kill_signal and
                               rejects with the signal's reason; borrowed;
                               NULL: the current cancel scope's, if any */
  int kill_signal;          /* 0: SIGTERM */
  size_t max_output;        /* a limit on each of stdout and stderr; 0: 1 MiB */
  uint64_t timeout_ms;      /* 0: none */
} vow_exec_options;

/* argv and options (may be NULL) are only read during the call. Returns a
 * new promise reference (NULL only when out of memory, or on the wrong
 * thread). It fulfils, when the child exited with code 0, with a POINTER
 * value: the exec result, which vow_exec_stdout, vow_exec_stderr,
 * vow_exit_code and vow_exit_signal read. It rejects with an ERROR:
 *   VOW_EEXIT      the child exited with another code, or a signal killed it:
 *                  "exec 'false': exited with code 1", "exec 'sh': killed by
 *                  SIGKILL"; its cause is the exec result, output included
 *                  (the readers above accept the error itself);
 *   VOW_ETOOBIG    stdout or stderr passed max_output: the child was killed
 *                  (the cause holds the result: the output up to the limit);
 *   VOW_ETIMEDOUT  timeout_ms passed: the child was killed (the cause: as above);
 *   the signal's reason, when it aborted: the child was killed;
 *   VOW_EINVAL     no argv, an empty argv[0], a bad kill_signal;
 *   UV_ENOENT...   the child could not start: "ENOENT: spawn 'nosuch'"
 *                  (and "(cwd 'dir')" when a cwd was given).
 * When the child is killed for a limit or an abort, the promise still waits
 * for it to exit, so it never leaves one behind. */
vow_promise *vow_exec(vow_loop *loop, const char *const *argv, const vow_exec_options *options);

/* Readers of an exit INT, of exec's result and of its VOW_EEXIT rejection
 * (all borrowed). vow_exit_code: the exit code, or -1 when a signal killed
 * the child (or for another value); vow_exit_signal: the signal, or 0. */
int vow_exit_code(vow_value exit);
int vow_exit_signal(vow_value exit);
/* The collected output, a STRING (borrowed from result); undefined for
 * another value. */
vow_value vow_exec_stdout(vow_value result);
vow_value vow_exec_stderr(vow_value result);

/* ---- signals -------------------------------------------------------------------
 *
 * process.on('SIGINT') and friends, for the pattern every server and tool
 * needs: Ctrl-C aborts everything. A signal watched here is delivered to the
 * loop as a macrotask, never inside the signal handler. Watching takes the
 * signal away from its default action (terminating the program) until the
 * last watcher of it is gone, as in Node. Watchers never keep vow_loop_run
 * going by themselves (the loop keeps no reference from them): a program
 * waiting for Ctrl-C waits because of its other work (a server, a child).
 */

/* once(process, 'SIGINT'): a promise (a new reference) fulfilled with
 * signum as an INT the first time it arrives; then the watch ends. A promise
 * rejected with VOW_EINVAL when signum cannot be watched (SIGKILL, SIGSTOP, out
 * of range); NULL only when out of memory or on the wrong thread. */
vow_promise *vow_signal_promise(vow_loop *loop, int signum);

/* An AbortSignal (a new reference) that aborts the first time one of the n
 * signals (signums, read during the call) arrives, with an error
 * VOW_EABORTED "interrupted by SIGINT". Then, or when it is aborted for
 * another reason, it stops watching them all. NULL when out of memory, on
 * the wrong thread, or when n is 0 or a signal cannot be watched.
 *   vow_abort_signal *stop = vow_signal_abort(loop, (int[]){SIGINT, SIGTERM}, 2);
 *   ... hand stop to every fetch, child, stream and timeout of the program */
vow_abort_signal *vow_signal_abort(vow_loop *loop, const int *signums, size_t n);

/* process.on(signum, fn): fn(loop, signum, data) runs each time signum
 * arrives (data borrowed) until vow_signal_off. Several deliveries of one
 * signal before the loop gets to them may run fn once. Returns a listener id
 * (> 0), or VOW_EINVAL (NULL fn, or a signal that cannot be watched),
 * VOW_ENOMEM, VOW_ETHREAD. */
typedef void (*vow_signal_fn)(vow_loop *loop, int signum, void *data);
int64_t vow_signal_on(vow_loop *loop, int signum, vow_signal_fn fn, void *data);
/* Removes a listener (also from inside its own fn): 1 if it was there, 0 if not. */
int vow_signal_off(vow_loop *loop, int64_t id);

/* ---- fetch ------------------------------------------------------------------
 *
 * fetch follows the WHATWG fetch that JavaScript programmers know. It is
 * built on libcurl's multi-socket interface driven by this loop (sockets
 * polled by libuv, curl's timer on a libuv timer), so hundreds of transfers
 * run at once on one thread, HTTPS included (and HTTP/2 where curl has it).
 *
 *   - The promise fulfils as soon as the status and headers have arrived,
 *     with a POINTER value holding a vow_response (vow_as_response reads it).
 *     An HTTP error status (404, 500) still fulfils, with ok false — unless
 *     options.reject_http_errors asks for a VOW_EHTTP rejection instead.
 *   - A network failure rejects with an ERROR value whose code says which:
 *     UV_ECONNREFUSED, UV_ECONNRESET, UV_EAI_NONAME (DNS), VOW_ETLS,
 *     VOW_ETIMEDOUT (options.timeout_ms), VOW_EPROTO (a reply that is not
 *     HTTP, or not one fetch can follow), VOW_ETOOBIG (response headers over
 *     the limits below, or a header line over curl's 100 KiB), or — when its
 *     signal aborts — the signal's reason. Aborting stops the transfer and frees its
 *     connection at once, whatever stage it is in (the body included).
 *   - The body is read once: whole (vow_response_text) or as a stream of
 *     chunks (vow_response_body). A slow stream consumer pauses the transfer
 *     rather than letting it buffer without bound. Releasing the response
 *     before its body is read, or the body stream before its end, stops the
 *     transfer and frees its connection.
 */
typedef struct vow_response vow_response;

enum { VOW_REDIRECT_FOLLOW = 0, VOW_REDIRECT_ERROR, VOW_REDIRECT_MANUAL };

typedef struct vow_fetch_options {
  const char *method;          /* NULL: "GET" */
  const char *const *headers;  /* NULL-terminated "Name: value" strings, or NULL; copied */
  const void *body;            /* request body, copied; NULL: none */
  size_t body_len;
  int redirect;                /* VOW_REDIRECT_*: follow (up to 20), reject (VOW_EPROTO), or hand back the 3xx */
  uint64_t timeout_ms;         /* for the whole transfer, body included; 0: none */
  vow_abort_signal *signal;    /* borrowed for the transfer's life (a reference is taken); NULL: the current cancel scope's, if any */
  size_t max_body;             /* limit for vow_response_text; 0: 64 MiB; over it: VOW_ETOOBIG */
  int reject_http_errors;      /* non-2xx: reject with VOW_EHTTP (status in the message) */
  const char *ca_file;         /* HTTPS: a PEM file of certificates to trust instead of the
                                  system's (a private CA, a test's self-signed one); NULL: the system's */
  size_t max_header_bytes;     /* a response's status line and headers; 0: 16 KiB (Node's fetch),
                                  at most 256 KiB (curl refuses more); over it: VOW_ETOOBIG */
  size_t max_headers;          /* header lines of a response; 0: 2000 (Node's maxHeadersCount);
                                  over it: VOW_ETOOBIG */
} vow_fetch_options;

/* fetch(url, options): url is copied, options may be NULL. Returns a new
 * promise reference (NULL only when out of memory or on the wrong thread). */
vow_promise *vow_fetch(vow_loop *loop, const char *url, const vow_fetch_options *options);

/* The response inside a fetch's value (borrowed from it), or NULL. */
vow_response *vow_as_response(vow_value value);
int vow_response_status(const vow_response *r);
int vow_response_ok(const vow_response *r);             /* status 200-299 */
const char *vow_response_status_text(const vow_response *r); /* "Not Found"; "" if none */
const char *vow_response_url(const vow_response *r);    /* after redirects */
/* A header's value, found case-insensitively (repeated headers joined with
 * ", "), or NULL. Borrowed from the response. */
const char *vow_response_header(const vow_response *r, const char *name);
/* response.text(): a promise of the whole body as a STRING (bytes, not
 * checked for UTF-8). The body can be read once: a second read rejects with
 * VOW_EINVAL. A new reference. */
vow_promise *vow_response_text(vow_response *r);
/* response.body: an async generator yielding STRING chunks as they arrive
 * (done at the end; a rejection if the transfer fails). A new reference. */
vow_asyncgen *vow_response_body(vow_response *r);

/* ---- the HTTP server --------------------------------------------------------
 *
 * A small HTTP/1.1 server on the same loop, built on Node's http-parser:
 * keep-alive, Content-Length and chunked request bodies, and a handler that
 * runs as an async function per request — it may vow_await — and returns the
 * response (or a promise of one). Bad input never crashes it: a malformed
 * request gets 400, too many or too large headers 431, an oversized body
 * 413, a client that stalls 408, a version other than HTTP/1.0 and 1.1 505,
 * and the connection is closed. The syntax is strict, as Node's parser and RFC 9112
 * are: whitespace before a header's colon, a bare LF, obs-fold (a line that
 * starts with whitespace), a control byte in a value, and a missing (HTTP/1.1)
 * or repeated Host are all malformed. Pipelined requests on one
 * connection are handled one at a time and answered in order; a request
 * with "Expect: 100-continue" gets "100 Continue" before its body is read.
 */
typedef struct vow_server vow_server;
typedef struct vow_request vow_request;

typedef struct vow_server_options {
  const char *host;               /* NULL: "127.0.0.1" */
  int port;                       /* 0: an ephemeral port (see vow_server_port) */
  size_t max_header_bytes;        /* 0: 16 KiB */
  size_t max_headers;             /* header lines in a request; 0: 2000 (more: 431) */
  size_t max_body_bytes;          /* 0: 1 MiB */
  uint64_t request_timeout_ms;    /* to receive a whole request; 0: 10 s */
  uint64_t keepalive_timeout_ms;  /* idle keep-alive connections close after; 0: 5 s */
  size_t stack_size;              /* the handlers' coroutines; 0: the loop's default */
} vow_server_options;

/* The handler. req is borrowed for the duration of the request (until its
 * response is sent). Return a response value (vow_http_response), a promise
 * of one, or vow_throw(reason) for a 500. */
typedef vow_value (*vow_http_handler)(vow_loop *loop, vow_request *req, void *data);

/* Starts listening. options may be NULL. data is borrowed. On success *out is
 * the server (close it with vow_server_close) and 0 is returned; otherwise a
 * negative code (UV_EADDRINUSE...). */
int vow_server_listen(vow_loop *loop, const vow_server_options *options, vow_http_handler handler,
                      void *data, vow_server **out);
int vow_server_port(const vow_server *server);
/* Graceful close: stops accepting, lets requests in flight finish, closes
 * idle connections, then frees the server and fulfils the promise (a new
 * reference). */
vow_promise *vow_server_close(vow_server *server);

/* The request, all borrowed from it. */
const char *vow_request_method(const vow_request *req);
const char *vow_request_target(const vow_request *req);  /* path and query: "/user?id=1" */
const char *vow_request_header(const vow_request *req, const char *name); /* case-insensitive */
vow_value vow_request_body(const vow_request *req);      /* STRING, borrowed */
/* Aborts (with VOW_EABORTED) when the client goes away before the response
 * is sent: handlers pass it on to their own work. Borrowed. */
vow_abort_signal *vow_request_signal(vow_request *req);

/* A response: status, content type (NULL: "text/plain; charset=utf-8") and
 * body (a STRING, taken; undefined for none). A POINTER value, new reference. */
vow_value vow_http_response(int status, const char *content_type, vow_value body);
/* Adds a header to a response value (borrowed). Returns 0, VOW_EINVAL. */
int vow_http_response_header(vow_value response, const char *name, const char *value);
/* A streamed response: the body is the STRING chunks that chunks (taken)
 * yields, sent with chunked encoding as they come, each awaited before the
 * next is asked for (backpressure). */
vow_value vow_http_response_stream(int status, const char *content_type, vow_asyncgen *chunks);



/* ===================================================================== *
 * 13. Tracing: a timeline of what the loop did
 * ===================================================================== *
 *
 * While tracing, the loop records what it ran — each macrotask (timer,
 * immediate, I/O callback), each microtask drain, each async function from
 * call to settlement with every resumption, each fetch from start to finish —
 * and writes it in the Chrome trace-event JSON format, which Perfetto
 * (ui.perfetto.dev) and chrome://tracing open. Setting the environment
 * variable VOW_TRACE=FILE traces every loop of a program into FILE (a loop
 * made after the first appends ".2", ".3"... to the name).
 *
 * Tracing off costs one branch per event site. Tracing on keeps the events in
 * memory until the file is written.
 */

/* Starts recording; the file at path is written by vow_trace_stop or by
 * vow_loop_free. Returns 0, VOW_EBUSY (already tracing), VOW_ENOMEM. */
int vow_trace_start(vow_loop *loop, const char *path);
/* Writes the file and stops. Returns 0, VOW_EINVAL (not tracing) or the
 * negated errno of the failed write. */
int vow_trace_stop(vow_loop *loop);
/* A span of your own, shown as its own lane: begin returns its id (0 when not
 * tracing; ending 0 is a no-op). category and name are copied. */
uint64_t vow_trace_begin(vow_loop *loop, const char *category, const char *name);
void vow_trace_end(vow_loop *loop, uint64_t span);

/* ===================================================================== *
 * 14. Threads: CPU work on a thread pool, and posting from other threads
 * ===================================================================== *
 *
 * JavaScript cannot run two pieces of CPU work at once on one event loop;
 * vow can. vow_work runs a C function on libuv's thread pool and gives a
 * promise on the loop. Every other vow call belongs to the loop's thread and
 * is refused elsewhere (VOW_ETHREAD); the calls below are the exceptions,
 * marked "any thread".
 *
 * Values crossing threads: reference counts are not atomic, so a value made
 * on a worker thread must be owned by that thread alone (made there, shared
 * with nothing) when it is handed over; it then belongs to the loop's thread.
 */

/* Runs on a pool thread: returns the result (or vow_throw(reason)). It must
 * not call vow functions other than the value constructors. */
typedef vow_value (*vow_work_fn)(void *arg);

/* Runs fn(arg) on libuv's thread pool (UV_THREADPOOL_SIZE threads, 4 by
 * default) and returns a promise (a new reference) settled with its result
 * on the loop's thread. arg is borrowed until the promise settles. */
vow_promise *vow_work(vow_loop *loop, vow_work_fn fn, void *arg);

/* Any thread: runs fn(loop, arg) on the loop's thread as a macrotask (then
 * the microtasks it queued). Posts run in the order they were made. Returns
 * 0, or VOW_ENOMEM. Posting to a loop being freed is a programming error: stop
 * the posting threads first. A post does not by itself keep vow_loop_run
 * going: hold the loop (vow_loop_hold) while posts are expected. */
int vow_loop_post(vow_loop *loop, vow_task_fn fn, void *arg);

/* Loop's thread: while held (a count), vow_loop_run keeps running even with
 * nothing else to do, waiting for posts. Like a referenced libuv handle. */
int vow_loop_hold(vow_loop *loop);
int vow_loop_release(vow_loop *loop);

/* Any thread: resolve or reject p with value (taken) on p's loop thread.
 * Takes one reference to p, which the caller obtained on the loop's thread
 * (so p cannot be freed meanwhile); it is released on the loop's thread.
 * Returns 0, VOW_EINVAL (NULL p) or VOW_ENOMEM; on an error value is
 * released and the reference to p stays the caller's. */
int vow_promise_resolve_threadsafe(vow_promise *p, vow_value value);
int vow_promise_reject_threadsafe(vow_promise *p, vow_value reason);

/* ===================================================================== *
 * 15. Beyond JavaScript: limits, retries, channels, races that cancel
 * ===================================================================== *
 *
 * What JavaScript programmers fetch from npm (p-map, p-retry, channels),
 * built in, with cancellation wired through: work that is no longer wanted is
 * told so through its AbortSignal.
 */

/* ---- a concurrency-limited map (p-map) --------------------------------------
 * Calls fn on each of n items with at most `concurrency` calls in flight,
 * starting the next as one finishes; the results come in input order. */

/* Starts the work for one item and returns its promise (a new reference).
 * item is borrowed; signal (borrowed) aborts when the map gives up. */
typedef vow_promise *(*vow_map_fn)(vow_loop *loop, vow_value item, size_t index,
                                   vow_abort_signal *signal, void *ctx);

typedef struct vow_map_options {
  size_t concurrency;  /* at most this many in flight; 0: no limit */
  int settled;         /* 0: fail fast — the first rejection rejects the map,
                          no new work starts and the work in flight is aborted;
                          1: like allSettled — an ARRAY of SETTLED records */
} vow_map_options;

/* The items (n values) are taken. ctx is borrowed until the map settles.
 * Fulfils with an ARRAY of results in input order. A new reference. */
vow_promise *vow_map(vow_loop *loop, vow_value *items, size_t n, vow_map_fn fn, void *ctx,
                     const vow_map_options *options);

/* ---- retry with exponential backoff ------------------------------------------ */

/* One attempt (attempt counts from 1); returns its promise (a new
 * reference). signal (borrowed) aborts when the retry is abandoned. */
typedef vow_promise *(*vow_attempt_fn)(vow_loop *loop, unsigned attempt,
                                       vow_abort_signal *signal, void *ctx);
/* Decides whether a rejection is worth another attempt (reason borrowed). */
typedef int (*vow_retryable_fn)(vow_value reason, void *ctx);

typedef struct vow_retry_options {
  unsigned max_attempts;      /* 0: 3 */
  uint64_t initial_delay_ms;  /* before the second attempt; 0: 100 */
  double factor;              /* growth of the delay; 0: 2 */
  uint64_t max_delay_ms;      /* cap on one delay; 0: 30 s */
  double jitter;              /* 0..1: each delay is scaled by a random
                                 factor in [1 - jitter, 1]; 0: none */
  uint64_t deadline_ms;       /* give up when the next attempt would start
                                 after this much time in all; 0: none */
  vow_retryable_fn retryable; /* NULL: every rejection is retryable */
  vow_abort_signal *signal;   /* borrowed: aborting stops the retries */
} vow_retry_options;

/* Calls attempt until one fulfils (with its value), or rejects with the last
 * reason when attempts, deadline or retryable say stop, or with the signal's
 * reason when aborted. options may be NULL. ctx is borrowed until it settles.
 * A new reference. */
vow_promise *vow_retry(vow_loop *loop, vow_attempt_fn attempt, void *ctx,
                       const vow_retry_options *options);

/* ---- channels: a bounded async queue -------------------------------------------
 * Producers send and await space; consumers receive (or for-await) items in
 * the order sent. Closing lets consumers drain what is buffered, then finish. */
typedef struct vow_channel vow_channel;

/* capacity 0 means a rendezvous: a send completes when a receiver takes it.
 * A new reference, or NULL. */
vow_channel *vow_channel_new(vow_loop *loop, size_t capacity);
vow_channel *vow_channel_ref(vow_channel *ch);
void vow_channel_unref(vow_channel *ch);
/* Sends value (taken): the promise fulfils once the value is in the buffer or
 * taken by a receiver — await it for backpressure; it rejects (VOW_EDONE)
 * when the channel is closed. A new reference. */
vow_promise *vow_channel_send(vow_channel *ch, vow_value value);
/* A promise of the next value as an ITER {value, done}; done once the channel
 * is closed and drained. A new reference. */
vow_promise *vow_channel_recv(vow_channel *ch);
/* No more sends: pending and later sends reject; receivers get done after the
 * buffered values. Idempotent. */
void vow_channel_close(vow_channel *ch);
/* An async generator over the channel's values, for VOW_FOR_AWAIT. */
vow_asyncgen *vow_channel_iter(vow_channel *ch);

/* ---- a race that cancels its losers ------------------------------------------
 * Promise.race, except that when the first input settles, the signals of all
 * the others are aborted (with VOW_EABORTED "lost the race"), so the work that
 * lost stops instead of running on unobserved. items are taken; signals
 * (borrowed, one per item, NULL where the item has none) are aborted. */
vow_promise *vow_race_abort(vow_loop *loop, vow_value *items, vow_abort_signal *const *signals,
                            size_t n);

/* ===================================================================== *
 * 16. Structured concurrency: task groups, cancel scopes, async context
 * ===================================================================== *
 *
 * What Python's asyncio.TaskGroup and asyncio.timeout, Trio's nurseries and
 * cancel scopes, and Node's AsyncLocalStorage give, for async functions:
 *
 *   vow_group *g = vow_group_new(loop, &(vow_group_options){.timeout_ms = 500});
 *   for (int i = 0; i < n; i++) vow_group_spawn(g, fetch_one, &urls[i], NULL);
 *   int rc = vow_group_await(g, &results);   // every child has ended here
 *   vow_group_unref(g);
 *
 * Ordering, as asyncio's (tests/test_structured.c quotes the Python programs
 * and what python3 printed):
 *   - a child runs at once, until its first await (as calling an async
 *     function does in JavaScript; asyncio.create_task runs it later);
 *   - the first child that fails cancels the group; the awaits of the other
 *     children wake one microtask later, in spawn order, with VOW_EABORTED;
 *   - the group ends when every child has: it then rejects with the first
 *     failure (or an AGGREGATE of all, options.aggregate), or with the reason
 *     it was cancelled for (VOW_ETIMEDOUT for its deadline), or fulfils with
 *     an ARRAY of the children's results in spawn order;
 *   - a cancelled scope wakes the await suspended inside it one microtask
 *     after its signal aborted; inner scopes are cancelled before the awaits
 *     inside them wake (so the innermost await sees the outer reason).
 */

/* ---- cancel scopes ------------------------------------------------------------
 * A scope belongs to the async function that opened it. While it is open,
 * every vow_await of that function (and vow_yield, vow_for_await_next...) is
 * an exit point: once the scope is cancelled, an await suspended inside it
 * wakes with VOW_ETIMEDOUT (its deadline passed) or VOW_EABORTED (anything
 * else) and *out the reason, and so does every later await inside it, at
 * once. The promise it awaited goes on, unobserved (its rejection is not
 * reported). Work started inside the scope stops with it: vow_delay rejects
 * with the reason, fetch is aborted (its options.signal, when NULL, is the
 * scope's), and so is any I/O call that takes vow_scope_signal_current. */
typedef struct vow_scope vow_scope;

typedef struct vow_scope_options {
  uint64_t timeout_ms;       /* cancelled (VOW_ETIMEDOUT) this long after it opens; 0: never */
  vow_abort_signal *signal;  /* borrowed (a reference is kept): cancelled when it aborts */
  int shield;                /* 1: the scopes around it do not reach inside (Trio's
                                shield=True): for cleanup that must await */
} vow_scope_options;

/* async with asyncio.timeout(...) / with trio.CancelScope(...): opens a scope
 * inside the running async function, nested in its current one (cancelled
 * with it, unless shield). *scope receives it (owned by the function: close
 * it with vow_scope_end before the function returns; one left open is closed
 * when the function ends). Returns 0, VOW_ENOTASYNC outside an async function
 * of loop, VOW_EINVAL (timeout_ms above VOW_TIMEOUT_MAX), VOW_ENOMEM.
 * options may be NULL (a scope cancelled only by vow_scope_cancel). */
int vow_scope_begin(vow_loop *loop, const vow_scope_options *options, vow_scope **scope);
/* A shielding scope with no deadline of its own: Trio's CancelScope(shield=True). */
int vow_shield_begin(vow_loop *loop, vow_scope **scope);
/* Closes the scope (and any opened inside it and left open), from the function
 * that opened it. Returns 0 when it was not cancelled, or only because a scope
 * around it was (that one reports it, as in Trio); else VOW_ETIMEDOUT or
 * VOW_EABORTED with *reason (may be NULL) the reason — a new reference — as
 * asyncio.timeout raises TimeoutError at its exit. VOW_EINVAL: NULL, or not
 * called from the function that opened it. */
int vow_scope_end(vow_scope *scope, vow_value *reason);
/* scope.cancel(): cancels it now with reason (taken; undefined: VOW_EABORTED
 * "This operation was aborted"). Returns 1 when this call cancelled it. */
int vow_scope_cancel(vow_scope *scope, vow_value reason);
/* The scope's signal (borrowed: valid until vow_scope_end). */
vow_abort_signal *vow_scope_signal(vow_scope *scope);
/* The signal of the innermost scope of the running async function (borrowed),
 * or NULL: what an I/O call started without a signal of its own stops on —
 * fetch, the file calls, TCP connects and DNS lookups do (processes too). */
vow_abort_signal *vow_scope_signal_current(vow_loop *loop);

/* ---- task groups ----------------------------------------------------------------
 * A group's children are async functions it runs; it ends when all of them
 * have (none outlives it). Each child runs inside a scope on the group's
 * signal, so cancelling the group reaches every await of every child. */
typedef struct vow_group vow_group;

typedef struct vow_group_options {
  size_t limit;              /* at most this many children running; the others
                                wait, in spawn order, and start as ones end; 0: no limit */
  uint64_t timeout_ms;       /* cancelled (VOW_ETIMEDOUT) this long after it is made; 0: never */
  vow_abort_signal *signal;  /* borrowed (a reference is kept): cancels the group */
  int aggregate;             /* 1: a failed group rejects with an AGGREGATE of every
                                failure, in the order they came; 0: with the first */
  const char *name;          /* for vow_loop_dump; borrowed, must outlive the group */
} vow_group_options;

/* async with asyncio.TaskGroup(): a new group (a new reference), or NULL (out
 * of memory, wrong thread, timeout_ms above VOW_TIMEOUT_MAX). Made inside a
 * cancel scope, the group is cancelled with it. options may be NULL. */
vow_group *vow_group_new(vow_loop *loop, const vow_group_options *options);
vow_group *vow_group_ref(vow_group *group);
/* Releasing the last reference before the group was awaited cancels it
 * (VOW_EABORTED): its children are stopped, never orphaned. */
void vow_group_unref(vow_group *group);

/* tg.create_task(fn(arg)): runs fn as a child, now (until its first await),
 * or later when options.limit children are running. arg is borrowed (options'
 * arg_free releases it, as for vow_async_ex; on an error too). A child fails
 * when fn returns vow_throw(reason) — except with the group's own cancellation
 * (VOW_EABORTED or VOW_ETIMEDOUT once the group is cancelled), which is not a
 * failure. Returns 0, VOW_EABORTED (the group is cancelled: nothing starts),
 * VOW_EINVAL (NULL, or the group has ended), VOW_ETHREAD, VOW_ENOMEM. */
int vow_group_spawn(vow_group *group, vow_async_fn fn, void *arg, const vow_async_options *options);

/* The group's end: a promise (a new reference) that settles once every child
 * has ended and nothing more can be spawned — see the ordering above. Until
 * it is asked for, a group with no children left still takes new ones. NULL
 * when out of memory. */
vow_promise *vow_group_wait(vow_group *group);
/* await vow_group_wait(group), inside an async function: the exit of `async
 * with`. Not an exit point of the scope around it — a cancelled scope cancels
 * the group made in it, and this still waits for the children to end. Returns
 * as vow_await does. */
int vow_group_await(vow_group *group, vow_value *out);
/* Cancels the group with reason (taken; undefined: VOW_EABORTED). Returns 1
 * when this call cancelled it, 0 when it was already (or has ended). */
int vow_group_cancel(vow_group *group, vow_value reason);
/* The group's signal (borrowed, lives as long as the group). */
vow_abort_signal *vow_group_signal(vow_group *group);

/* ---- async-local context ----------------------------------------------------------
 * Node's AsyncLocalStorage, with a key per store (any address: a static
 * variable's is the usual one). A value bound in an async function stays
 * bound for the rest of it, and is seen by what it starts from then on: the
 * async functions it calls (and theirs), its promise reactions (then, catch,
 * finally run in the context then() was called in), its timers, immediates
 * and queued microtasks (in the context they were scheduled in). Its caller
 * never sees it. Outside async functions, a binding lasts for the rest of
 * the callback that made it (at the top level: for the loop's life).
 * Costs a NULL check per reaction, timer and resumption while nothing is
 * bound (bench: "context" against AsyncLocalStorage). */

/* als.enterWith(value) for key: value is taken. Returns 0, VOW_EINVAL (NULL
 * key or loop), VOW_ETHREAD, VOW_ECLOSING, VOW_ENOMEM. */
int vow_context_set(vow_loop *loop, const void *key, vow_value value);
/* als.getStore(): the value bound to key where this code runs (borrowed:
 * valid while the binding is current), or undefined. */
vow_value vow_context_get(vow_loop *loop, const void *key);
/* als.run(value, fn): runs fn(arg) as an async function (vow_async_ex) with
 * key bound to value (taken); the caller's context is left as it was.
 * Returns its promise (a new reference), or NULL as vow_async does (options'
 * arg_free has then run). options may be NULL. */
vow_promise *vow_context_run(vow_loop *loop, const void *key, vow_value value, vow_async_fn fn,
                             void *arg, const vow_async_options *options);

/* ---- task dumps -----------------------------------------------------------------
 * What is every async function doing? vow_loop_dump prints one line per live
 * async function and generator of the loop, oldest first: its name
 * (vow_async_options.name), its age, what it waits for (a timer of
 * vow_delay, a fetch and its URL, a pending promise, its next tick), its task
 * group (vow_group_options.name) and its cancel scopes:
 *
 *   vow: loop 0x55d0c8a4e2a0: 2 async functions alive
 *     async 'main', age 12 ms: awaiting a pending promise; in 1 cancel scope
 *     async 'fetch_one', age 12 ms: awaiting fetch http://127.0.0.1:8080/a; in task group 'fanout'
 *
 * The environment variable VOW_DUMP_ON makes any program dump, to stderr:
 * VOW_DUMP_ON=SIGUSR1 (or SIGUSR2, SIGQUIT, SIGHUP, SIGINT, SIGTERM,
 * SIGWINCH) on that signal, for every loop running async functions;
 * VOW_DUMP_ON=exit when a loop is freed with async functions still
 * suspended; both: VOW_DUMP_ON=SIGUSR1,exit. With "exit", the loop also
 * reports, as vow_loop_free begins (before anything is released: queued
 * jobs, timers and transfers are all still there), the promises still
 * pending, in no particular order, each with what it stands for and who
 * awaits it:
 *
 *   vow: the loop is being freed with 3 promises still pending:
 *     promise 0x55d0c8a4f1c0: a pending promise, awaited by async 'stuck'
 *     promise 0x55d0c8a4f200: a pending promise
 *     promise 0x55d0c8a4f260: a timer (vow_delay)
 *
 * (an async function's own promise is listed too, while it runs). Cost: the
 * promise layer checks VOW_DUMP_ON when a loop makes its first promise; if
 * "exit" is there, it keeps a table of the loop's pending promises (a hash
 * set, 16 to 32 bytes per pending promise, vow's allocator; a promise it cannot
 * list for lack of memory is counted: "and N not listed (out of memory)").
 * Otherwise each promise's creation and settlement test one pointer or flag
 * more. The report needs the async layer: a loop that never ran an async
 * function reports nothing. Adding "backtrace"
 * (VOW_DUMP_ON=SIGUSR1,backtrace) gives those dumps VOW_DUMP_BACKTRACE.
 *
 * VOW_DUMP_BACKTRACE adds, under each suspended function's line, the C
 * backtrace of its coroutine, innermost first, from its suspension point
 * (vow's await or yield) down to the coroutine's entry:
 *
 *     async 'stuck', age 30 ms: awaiting a pending promise
 *       #0 0x55d0c7a1b2c4 ? (prog+0x1b2c4)
 *       #1 0x55d0c7a10a31 wait_for_reply+0x41 (prog)
 *       ...
 *
 * Each line is the address, then its symbol+offset when the dynamic symbol
 * table has one (link with -rdynamic to name a program's own non-static
 * functions), else the file and offset in it, for addr2line. The dump takes
 * a backtrace by resuming the coroutine with a request that its suspension
 * point answers, from its own stack, before it suspends again: nothing else
 * runs, no promise, job or order changes. Where that cannot be done a line
 * says why: the function is running (it called the dump, or awaits inside
 * it), has not started, or is closing; its coroutine copies its stack
 * (vow_async_options.copy_stack: resuming it would move frames, which may
 * need memory); or the dump itself runs in a copy-stack function. At most 31
 * frames each. Cost: nothing until asked, but one predicted branch after each
 * resumption of an await; a dump with backtraces costs two context switches
 * and one unwind per suspended function. */

/* Writes the dump to out (a stdio stream, borrowed). Returns how many async
 * functions are alive (>= 0), VOW_EINVAL (NULL loop or out), VOW_ETHREAD. */
int vow_loop_dump(vow_loop *loop, FILE *out);

enum { VOW_DUMP_BACKTRACE = 1 }; /* flags of vow_loop_dump_ex */
/* vow_loop_dump with flags (VOW_DUMP_BACKTRACE, or 0). Also VOW_EINVAL for
 * an unknown flag. Call it from the loop's thread, from anywhere on it: a
 * job, a callback, an async function (which shows as running). */
int vow_loop_dump_ex(vow_loop *loop, FILE *out, unsigned flags);

#ifdef __cplusplus
}
#endif
#endif /* VOW_H */
