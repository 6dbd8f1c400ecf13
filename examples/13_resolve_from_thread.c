/*
 * 13 — A promise resolved by another thread
 *
 * A library with its own thread (a sensor, a database driver, a GUI) finishes
 * some work and must hand the result to code awaiting it on the event loop.
 * Only the loop's thread may touch its promises, so the other thread posts
 * the resolution: vow_promise_resolve_threadsafe moves the value over, and
 * the awaiting async function resumes on the loop as usual.
 *
 * The JavaScript this mirrors (worker_threads, where the message is the bridge):
 *
 *   const reading = new Promise(resolve => worker.once('message', resolve));
 *   console.log('waiting for the sensor...');
 *   console.log('sensor says', await reading);
 */
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <vow.h>

/* The sensor's own thread: measures for a while, then reports. */
static void *sensor_thread(void *reading) {
  struct timespec pause = {0, 150 * 1000 * 1000};
  nanosleep(&pause, NULL);
  vow_promise_resolve_threadsafe(reading, vow_stringf("%.1f degrees", 21.5)); /* takes our reference */
  return NULL;
}

static vow_value wait_for_sensor(vow_loop *loop, void *reading) {
  printf("waiting for the sensor...\n");
  vow_value v;
  vow_await(vow_promise_ref(reading), &v);
  printf("sensor says %s\n", vow_str(v));
  vow_unref(v);
  vow_loop_release(loop); /* no more posts expected */
  return vow_undefined();
}

int main(void) {
  vow_loop *loop;
  if (vow_loop_new(&loop, NULL) != 0) return 1;
  vow_promise *reading = vow_promise_new(loop);
  vow_loop_hold(loop); /* keep running while the sensor works */
  vow_promise_unref(vow_async(loop, wait_for_sensor, reading));

  pthread_t sensor;
  pthread_create(&sensor, NULL, sensor_thread, vow_promise_ref(reading)); /* its own reference */
  int err = vow_loop_run(loop);
  pthread_join(sensor, NULL);

  vow_promise_unref(reading);
  vow_loop_free(loop);
  return err == 0 ? 0 : 1;
}
