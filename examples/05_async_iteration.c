/*
 * 05 — Async iteration: for await, and the forEach pitfall
 *
 * Four ways to go over three URLs:
 *   1. the pitfall: starting an async function per URL in a loop without
 *      awaiting them (JavaScript's urls.forEach(async url => ...)): the loop
 *      is over before any response has arrived;
 *   2. sequential: await each response inside the loop, one after another;
 *   3. parallel: start them all (urls.map(fetch)), then await Promise.all;
 *   4. for await over an async generator that yields responses as they come.
 *
 * The JavaScript this mirrors:
 *
 *   urls.forEach(async url => { ... });               // doesn't wait!
 *   for (const url of urls) {                         // one at a time
 *     const response = await fetch(url);
 *     console.log(response);
 *   }
 *   const responses = await Promise.all(urls.map(url => fetch(url)));  // together
 *   async function* responsesOf(urls) { for (const u of urls) yield await fetch(u); }
 *   for await (const response of responsesOf(urls)) console.log(response);
 */
#include <stdio.h>
#include <vow.h>

enum { NURLS = 3 };
static char urls[NURLS][8] = {"/url1", "/url2", "/url3"};

/* Stands in for fetch(url): answers "response of URL" after 100 ms. */
static vow_promise *fake_fetch(vow_loop *loop, const char *url) {
  return vow_delay(loop, 100, vow_stringf("response of %s", url));
}

static uint64_t started;
static void say(vow_loop *loop, const char *what, vow_value v) {
  printf("  %4llu ms  %s %s\n", (unsigned long long)(vow_loop_now(loop) - started), what,
         vow_str(v));
}

/* 1. The body of the forEach callback: it awaits, but nobody awaits it. */
static vow_value log_one(vow_loop *loop, void *url) {
  vow_value response;
  vow_await(fake_fetch(loop, url), &response);
  say(loop, "forEach got", response);
  vow_unref(response);
  return vow_undefined();
}

static void pitfall(vow_loop *loop) {
  for (int i = 0; i < NURLS; i++) vow_promise_unref(vow_async(loop, log_one, urls[i]));
  printf("  %4llu ms  forEach returned: nothing has arrived yet\n",
         (unsigned long long)(vow_loop_now(loop) - started));
}

/* 2. for (const url of urls) { await fetch(url) } */
static void sequential(vow_loop *loop) {
  for (int i = 0; i < NURLS; i++) {
    vow_value response;
    vow_await(fake_fetch(loop, urls[i]), &response);
    say(loop, "in turn:", response);
    vow_unref(response);
  }
}

/* 3. await Promise.all(urls.map(fetch)) */
static void parallel(vow_loop *loop) {
  vow_value requests[NURLS];
  for (int i = 0; i < NURLS; i++) requests[i] = vow_promise_value(fake_fetch(loop, urls[i]));
  vow_value responses;
  vow_await(vow_all(loop, requests, NURLS), &responses);
  for (size_t i = 0; i < vow_array_len(responses); i++)
    say(loop, "together:", vow_array_get(responses, i));
  vow_unref(responses);
}

/* 4. async function* responsesOf(urls) { for (const u of urls) yield await fetch(u) } */
static vow_value responses_of(vow_loop *loop, vow_asyncgen *gen, void *arg) {
  (void)gen, (void)arg;
  for (int i = 0; i < NURLS; i++) {
    vow_value response;
    if (vow_await(fake_fetch(loop, urls[i]), &response) != 0) return vow_throw(response);
    if (vow_yield(response, NULL) != 0) break; /* the consumer stopped early */
  }
  return vow_undefined();
}

static void streamed(vow_loop *loop) {
  vow_for_await it;
  vow_for_await_gen(&it, vow_asyncgen_new(loop, responses_of, NULL));
  VOW_FOR_AWAIT(&it, response) say(loop, "for await:", response);
  vow_for_await_end(&it, NULL);
}

static vow_value main_async(vow_loop *loop, void *arg) {
  (void)arg;
  struct {
    const char *title;
    void (*run)(vow_loop *);
  } ways[] = {{"sequential (about 300 ms)", sequential},
              {"parallel with all (about 100 ms)", parallel},
              {"for await over an async generator (about 300 ms)", streamed}};
  for (size_t i = 0; i < sizeof ways / sizeof ways[0]; i++) {
    printf("%s\n", ways[i].title);
    started = vow_loop_now(loop);
    ways[i].run(loop);
  }
  return vow_undefined();
}

int main(void) {
  vow_loop *loop;
  if (vow_loop_new(&loop, NULL) != 0) return 1;

  printf("the forEach pitfall\n");
  started = vow_loop_now(loop);
  pitfall(loop);
  vow_loop_run(loop); /* the responses arrive after the loop "ended" */

  vow_promise_unref(vow_async(loop, main_async, NULL));
  int err = vow_loop_run(loop);
  vow_loop_free(loop);
  return err == 0 ? 0 : 1;
}
