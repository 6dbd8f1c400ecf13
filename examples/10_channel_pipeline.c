/*
 * 10 — A pipeline: producer, bounded channel, consumer
 *
 * A channel is a queue with room for a few items. The producer awaits each
 * send, so when the consumer falls behind the producer waits instead of
 * piling up work in memory (backpressure). Closing the channel ends the
 * consumer's for-await loop once it has drained what was sent.
 *
 * The JavaScript this mirrors has no built-in; with a hand-rolled channel:
 *
 *   const ch = new Channel(2);
 *   (async () => { for (let i = 1; i <= 5; i++) await ch.send(i); ch.close(); })();
 *   for await (const item of ch) { await slowly(item); }
 */
#include <stdio.h>
#include <vow.h>

static uint64_t started; /* when main began, for the printed times */

static vow_value produce(vow_loop *loop, void *ch) {
  for (int i = 1; i <= 5; i++) {
    vow_await(vow_channel_send(ch, vow_int(i)), NULL); /* waits while the channel is full */
    printf("%4llu ms  produced %d\n", (unsigned long long)(vow_loop_now(loop) - started), i);
  }
  vow_channel_close(ch);
  return vow_undefined();
}

static vow_value consume(vow_loop *loop, void *ch) {
  vow_for_await it;
  vow_for_await_gen(&it, vow_channel_iter(ch));
  VOW_FOR_AWAIT(&it, item) {
    vow_await(vow_delay(loop, 100, vow_undefined()), NULL); /* a slow consumer */
    printf("%4llu ms      consumed %lld\n", (unsigned long long)(vow_loop_now(loop) - started),
           (long long)vow_as_int(item));
  }
  vow_for_await_end(&it, NULL);
  printf("channel closed and drained\n");
  return vow_undefined();
}

int main(void) {
  vow_loop *loop;
  if (vow_loop_new(&loop, NULL) != 0) return 1;
  started = vow_loop_now(loop);
  vow_channel *ch = vow_channel_new(loop, 2);
  vow_promise_unref(vow_async(loop, produce, ch));
  vow_promise_unref(vow_async(loop, consume, ch));
  int err = vow_loop_run(loop);
  vow_channel_unref(ch);
  vow_loop_free(loop);
  return err == 0 ? 0 : 1;
}
