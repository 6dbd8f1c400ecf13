/*
 * 06 — Microtasks vs macrotasks
 *
 * Not all async work waits in the same line. A promise's handlers are
 * microtasks: they run as soon as the current piece of code finishes. A timer
 * is a macrotask: it runs on a later turn of the event loop, after every
 * microtask queued before it — even a timer of 0 ms.
 *
 * The JavaScript this mirrors:
 *
 *   console.log(1);
 *   setTimeout(() => console.log(2), 0);           // macrotask
 *   Promise.resolve().then(() => console.log(3));  // microtask
 *   console.log(4);
 *   // prints 1, 4, 3, 2
 */
#include <stdio.h>
#include <vow.h>

static void print_two(vow_loop *loop, void *arg) {
  (void)loop, (void)arg;
  printf("2\n");
}

static vow_value print_three(vow_loop *loop, vow_value value, void *ctx) {
  (void)loop, (void)value, (void)ctx;
  printf("3\n");
  return vow_undefined();
}

int main(void) {
  vow_loop *loop;
  if (vow_loop_new(&loop, NULL) != 0) return 1;

  /* Everything until vow_loop_run is the first macrotask: it runs to the end. */
  printf("1\n");
  vow_set_timeout(loop, 0, print_two, NULL);

  vow_promise *ready = vow_resolved(loop, vow_undefined());
  vow_promise_unref(vow_then(ready, print_three, NULL, NULL));
  vow_promise_unref(ready);

  printf("4\n");

  /* Handing control to the loop drains the microtasks (3) before the timer (2). */
  int err = vow_loop_run(loop);
  vow_loop_free(loop);
  return err == 0 ? 0 : 1;
}
