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
  X(EDONE,     -5014, "the iterator is finished")

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
 */
typedef struct vow_loop vow_loop;

/* Per-loop settings; zero-initialise and set what you need. */
typedef struct vow_loop_options {
  /* Default stack size for async functions' coroutines, in bytes; 0 means
   * 256 KiB. Each stack also gets one guard page. */
  size_t stack_size;
} vow_loop_options;

/* Creates a loop owned by the calling thread. options may be NULL (defaults).
 * On success *out receives the loop (free it with vow_loop_free) and 0 is
 * returned; on failure a negative code, and *out is NULL. */
int vow_loop_new(vow_loop **out, const vow_loop_options *options);

/* Runs the loop until nothing is pending (no timers, immediates, I/O or
 * microtasks), then returns 0. Returns early with a negative code when the
 * run is stopped by an error: VOW_EUNHANDLED when a rejection went unhandled
 * under the default policy (section 7). VOW_EBUSY when called from a callback
 * of the same loop; VOW_ETHREAD from a thread that does not own it. */
int vow_loop_run(vow_loop *loop);

/* Frees the loop and everything still pending on it: queued microtasks and
 * timers are dropped without running, suspended async functions are released
 * with their stacks (code after their await never runs), and internal
 * references are released. Arguments that the caller passed to dropped
 * callbacks are not touched: they remain the caller's. Must not be called from
 * inside the loop's own callbacks (VOW_EBUSY) or from another thread
 * (VOW_ETHREAD); NULL is a no-op returning 0. */
int vow_loop_free(vow_loop *loop);

/* The loop's libuv loop, for adding libuv handles of your own. Borrowed: valid
 * until vow_loop_free. Callbacks you register directly with libuv should call
 * vow_loop_enter so that microtasks drain after them, as vow's own do. */
struct uv_loop_s *vow_loop_uv(vow_loop *loop);

/* The loop's clock in milliseconds (libuv's cached "now"). */
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

/* @@SECTIONS-4-9@@ */

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

/* timer.unref() / timer.ref(): an unreferenced timer does not keep
 * vow_loop_run from returning. Return 0, or 0 with no effect for an id that is
 * not pending. */
int vow_timer_unref(vow_loop *loop, vow_timer id);
int vow_timer_ref(vow_loop *loop, vow_timer id);

#ifdef __cplusplus
}
#endif
#endif /* VOW_H */
