/*
 * 20 — Fan-out with a task group and a deadline
 *
 * A page needs three services. Promise.all would give up on the first
 * failure but leave the others running; a task group cancels them, and does
 * not end before they have: no request outlives the page. A deadline on the
 * group bounds the whole fan-out — the slow service is cancelled at its
 * await, cleans up, and the group fails with a timeout.
 *
 * JavaScript has no task groups; this is the Python (asyncio) it mirrors:
 *
 *   async def service(name, ms):
 *       try:
 *           await asyncio.sleep(ms / 1000)
 *           print(f"{name}: answered")
 *           return name
 *       except asyncio.CancelledError:
 *           print(f"{name}: cancelled, closing its connection")
 *           raise
 *   async def page(services, deadline_ms):
 *       try:
 *           async with asyncio.timeout(deadline_ms / 1000):
 *               async with asyncio.TaskGroup() as tg:
 *                   tasks = [tg.create_task(service(n, ms)) for n, ms in services]
 *           print("page:", [t.result() for t in tasks])
 *       except TimeoutError:
 *           print("page: gave up at the deadline; nothing is left running")
 *   await page([("users", 20), ("orders", 40), ("ads", 30)], 500)
 *   await page([("users", 20), ("orders", 40), ("recommendations", 5000)], 200)
 */
#include <stdio.h>
#include <vow.h>

typedef struct service {
  const char *name;
  uint64_t ms;
} service;

static vow_value call_service(vow_loop *loop, void *arg) {
  service *s = arg;
  vow_value v;
  /* Stands for a request: inside the group, any await is where a
   * cancellation arrives (VOW_EABORTED, or VOW_ETIMEDOUT for the deadline). */
  int rc = vow_await(vow_delay(loop, s->ms, vow_string(s->name)), &v);
  if (rc != 0) {
    printf("%s: cancelled, closing its connection\n", s->name);
    return vow_throw(v);
  }
  printf("%s: answered\n", s->name);
  return v;
}

static void page(vow_loop *loop, service *services, int n, uint64_t deadline_ms) {
  vow_group *g = vow_group_new(loop, &(vow_group_options){.timeout_ms = deadline_ms, .name = "page"});
  for (int i = 0; i < n; i++) vow_group_spawn(g, call_service, &services[i], NULL);
  vow_value results;
  if (vow_group_await(g, &results) == 0) {
    char text[256];
    vow_value_format(results, text, sizeof text);
    printf("page: %s\n", text);
  } else if (vow_error_code(results) == VOW_ETIMEDOUT) {
    printf("page: gave up at the deadline; nothing is left running\n");
  } else {
    printf("page: failed: %s\n", vow_error_message(results));
  }
  vow_unref(results);
  vow_group_unref(g);
}

static vow_value main_async(vow_loop *loop, void *arg) {
  (void)arg;
  service fast[] = {{"users", 20}, {"orders", 40}, {"ads", 30}};
  service slow[] = {{"users", 20}, {"orders", 40}, {"recommendations", 5000}};
  page(loop, fast, 3, 500);
  page(loop, slow, 3, 200);
  return vow_undefined();
}

int main(void) {
  vow_loop *loop;
  if (vow_loop_new(&loop, NULL) != 0) return 1;
  vow_promise *done = vow_async(loop, main_async, NULL);
  int ok = vow_loop_run(loop) == 0 && vow_promise_state(done) == VOW_FULFILLED;
  vow_promise_unref(done);
  vow_loop_free(loop);
  return ok ? 0 : 1;
}
