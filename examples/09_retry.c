/*
 * 09 — Try again, a little later each time: retry with backoff
 *
 * A flaky service fails twice, then answers. vow_retry calls it again after
 * 100 ms, then 200 ms (doubling, with some jitter so that many clients do not
 * retry in lockstep), and gives up after five attempts or on an error that
 * retrying cannot fix.
 *
 * The JavaScript this mirrors (with npm's p-retry):
 *
 *   import pRetry, {AbortError} from 'p-retry';
 *   const answer = await pRetry(() => callFlakyService(), {
 *     retries: 4, minTimeout: 100, factor: 2, randomize: true });
 */
#include <stdio.h>
#include <vow.h>

static vow_promise *call_flaky_service(vow_loop *loop, unsigned attempt, vow_abort_signal *signal,
                                       void *ctx) {
  (void)signal, (void)ctx;
  printf("attempt %u\n", attempt);
  if (attempt < 3)
    return vow_delay_reject(loop, 20, vow_error(503, "503 Service Unavailable"));
  return vow_delay(loop, 20, vow_string("the answer"));
}

/* Only a 503 is worth retrying; a 404 would fail at once. */
static int worth_retrying(vow_value reason, void *ctx) {
  (void)ctx;
  return vow_error_code(reason) == 503;
}

static vow_value main_async(vow_loop *loop, void *arg) {
  (void)arg;
  vow_retry_options o = {.max_attempts = 5, .initial_delay_ms = 100, .factor = 2,
                         .jitter = 0.2, .retryable = worth_retrying};
  uint64_t start = vow_loop_now(loop);
  vow_value v;
  if (vow_await(vow_retry(loop, call_flaky_service, NULL, &o), &v) == 0)
    printf("got %s after %llu ms\n", vow_str(v), (unsigned long long)(vow_loop_now(loop) - start));
  else
    printf("gave up: %s\n", vow_error_message(v));
  vow_unref(v);
  return vow_undefined();
}

int main(void) {
  return vow_run(main_async, NULL, NULL, NULL) == 0 ? 0 : 1;
}
