/*
 * 03 — Promise.allSettled: wait for everything, whatever happens
 *
 * vow_all_settled never rejects. It waits until every promise has settled and
 * fulfils with one record per input, in order: fulfilled with its value, or
 * rejected with its reason. One optional call failing does not sink the rest.
 *
 * The JavaScript this mirrors:
 *
 *   const results = await Promise.allSettled([
 *     fetch('/critical-data'),   // succeeds
 *     fetch('/optional-data')    // fails (404)
 *   ]);
 *   results.forEach(result => {
 *     if (result.status === 'fulfilled') console.log("Got data:", result.value);
 *     else console.log("Failed:", result.reason);
 *   });
 */
#include <stdio.h>
#include <vow.h>

static vow_value main_async(vow_loop *loop, void *arg) {
  (void)arg;
  vow_value requests[] = {
      vow_promise_value(vow_delay(loop, 80, vow_string("critical numbers"))),
      vow_promise_value(vow_delay_reject(loop, 40, vow_error(404, "/optional-data: 404 Not Found"))),
  };
  vow_value results;
  vow_await(vow_all_settled(loop, requests, 2), &results); /* never rejects */

  for (size_t i = 0; i < vow_array_len(results); i++) {
    vow_value r = vow_array_get(results, i);
    if (vow_settled_ok(r)) {
      printf("Got data: %s\n", vow_str(vow_settled_value(r)));
    } else {
      printf("Failed: %s\n", vow_error_message(vow_settled_value(r)));
    }
  }
  vow_unref(results);
  return vow_undefined();
}

int main(void) {
  return vow_run(main_async, NULL, NULL, NULL) == 0 ? 0 : 1;
}
