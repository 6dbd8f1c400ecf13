/*
 * 02 — Promise.all: everything at once, and fail fast
 *
 * vow_all starts waiting on every promise together and fulfils with all of
 * their values, in the order given, once the last one arrives. If any of
 * them rejects, the combined promise rejects at once with that reason: the
 * page cannot render without every piece.
 *
 * The JavaScript this mirrors:
 *
 *   try {
 *     const [user, notifications, feed] = await Promise.all([
 *       fetchUser(), fetchNotifications(), fetchFeed()
 *     ]);
 *     console.log(user, notifications, feed);
 *   } catch (error) {
 *     console.error("One failed, so all failed:", error);
 *   }
 */
#include <stdio.h>
#include <vow.h>

/* Stand-ins for requests: fulfilled (or rejected) after ms milliseconds. */
static vow_value ok_after(vow_loop *loop, uint64_t ms, const char *what) {
  return vow_promise_value(vow_delay(loop, ms, vow_string(what)));
}
static vow_value fail_after(vow_loop *loop, uint64_t ms, const char *why) {
  return vow_promise_value(vow_delay_reject(loop, ms, vow_error(VOW_EINVAL, why)));
}

static void load_page(vow_loop *loop, const char *title, vow_value *requests, size_t n) {
  uint64_t start = vow_loop_now(loop);
  vow_value page;
  if (vow_await(vow_all(loop, requests, n), &page) == 0) {
    printf("%s: rendered after %llu ms with ", title,
           (unsigned long long)(vow_loop_now(loop) - start));
    vow_value_print(stdout, page);
    printf("\n");
  } else {
    printf("%s: one failed, so all failed after %llu ms: %s\n", title,
           (unsigned long long)(vow_loop_now(loop) - start), vow_error_message(page));
  }
  vow_unref(page);
}

static vow_value main_async(vow_loop *loop, void *arg) {
  (void)arg;
  /* All three in parallel: done when the slowest (150 ms) is. */
  load_page(loop, "page", VOW_VALUES(ok_after(loop, 100, "user"),
                                     ok_after(loop, 50, "notifications"),
                                     ok_after(loop, 150, "feed")), 3);
  /* Notifications fail at 50 ms: all rejects then, without waiting for the feed. */
  load_page(loop, "page", VOW_VALUES(ok_after(loop, 100, "user"),
                                     fail_after(loop, 50, "notifications service is down"),
                                     ok_after(loop, 150, "feed")), 3);
  return vow_undefined();
}

int main(void) {
  return vow_run(main_async, NULL, NULL, NULL) == 0 ? 0 : 1;
}
