/*
 * 04 — Promise.race: the first to settle wins (the timeout pattern)
 *
 * vow_race settles the way its fastest input settles. Racing a request
 * against a timer that rejects gives the request a deadline.
 *
 * The JavaScript this mirrors:
 *
 *   const fetchData = fetch('/data');
 *   const timeout = new Promise((_, reject) =>
 *     setTimeout(() => reject(new Error("Timeout!")), 5000));
 *   try {
 *     const data = await Promise.race([fetchData, timeout]);
 *     console.log(data);
 *   } catch (err) {
 *     console.log(err.message); // "Timeout!"
 *   }
 *
 * Here the deadline is 100 ms: a 300 ms request loses to it, a 30 ms one wins.
 * (In JavaScript, and in this plain race, the losing request keeps running;
 * vow's cancellation lets the timeout abort it instead — see the tour.)
 */
#include <stdio.h>
#include <vow.h>

static void fetch_with_timeout(vow_loop *loop, uint64_t request_ms) {
  vow_promise *fetch_data = vow_delay(loop, request_ms, vow_string("the data"));
  vow_promise *timeout = vow_delay_reject(loop, 100, vow_error(VOW_ETIMEDOUT, "Timeout!"));
  vow_value result;
  if (vow_await(vow_race(loop, VOW_VALUES(vow_promise_value(fetch_data),
                                          vow_promise_value(timeout)), 2),
                &result) == 0) {
    printf("a %3llu ms request: %s\n", (unsigned long long)request_ms, vow_str(result));
  } else {
    printf("a %3llu ms request: %s\n", (unsigned long long)request_ms, vow_error_message(result));
  }
  vow_unref(result);
}

static vow_value main_async(vow_loop *loop, void *arg) {
  (void)arg;
  fetch_with_timeout(loop, 300); /* Timeout! */
  fetch_with_timeout(loop, 30);  /* the data */
  return vow_undefined();
}

int main(void) {
  return vow_run(main_async, NULL, NULL, NULL) == 0 ? 0 : 1;
}
