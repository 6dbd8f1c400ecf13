/*
 * test_dns.c — vow_dns_lookup against the system resolver, without leaving
 * the machine: names come from /etc/hosts ("localhost") or are numeric, and
 * the unknown name is one glibc rejects before asking any server (an empty
 * label, "no..such.host": checked with strace, no packet is sent).
 *
 * The JavaScript it mirrors:
 *   await dns.promises.lookup('localhost', {all: true})
 *     // node: [ { address: '127.0.0.1', family: 4 } ] here
 *   await dns.promises.lookup('no..such.host', {all: true})
 *     // node: Error: getaddrinfo ENOTFOUND no..such.host
 */
#include <criterion/criterion.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>

#include "io/dns.h"
#include "log.h"
#include "vow.h"

LOOP_SUITE(dns, NULL);

static vow_value ignore(vow_loop *l, vow_value reason, void *ctx) {
  (void)l, (void)reason, (void)ctx;
  return vow_undefined();
}

/* Runs the loop until nothing is left; p's outcome (a new reference) in *out.
 * A rejection is handled here, so it is not reported. */
static vow_state settle(vow_promise *p, vow_value *out) {
  cr_assert_not_null(p);
  vow_promise_unref(vow_catch(p, ignore, NULL));
  cr_assert_eq(vow_loop_run(loop), 0);
  vow_state st = vow_promise_state(p);
  *out = vow_ref(vow_promise_result(p));
  vow_promise_unref(p);
  return st;
}

static const char *text(vow_value v) {
  static char buf[4096];
  vow_value_format(v, buf, sizeof buf);
  return buf;
}

LOOP_TEST(dns, localhost_gives_every_address_the_system_resolver_gives) {
  struct addrinfo hints = {0}, *res;
  hints.ai_socktype = SOCK_STREAM;
  cr_assert_eq(getaddrinfo("localhost", NULL, &hints, &res), 0);
  vow_value expected = vow_array(4);
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
    char ip[64];
    vow__dns_addr_text(ai->ai_addr, ip, sizeof ip);
    vow_array_push(expected, vow_string(ip));
  }
  freeaddrinfo(res);
  char want[4096];
  vow_value_format(expected, want, sizeof want);
  vow_unref(expected);

  vow_value v;
  cr_assert_eq(settle(vow_dns_lookup(loop, "localhost", NULL), &v), VOW_FULFILLED, "%s", text(v));
  cr_assert_str_eq(text(v), want);
  cr_assert_geq(vow_array_len(v), 1);
  vow_unref(v);
}

LOOP_TEST(dns, numeric_addresses_resolve_to_themselves_with_their_family) {
  vow_dns_options pairs = {.pairs = 1};
  vow_value v;
  cr_assert_eq(settle(vow_dns_lookup(loop, "127.0.0.1", &pairs), &v), VOW_FULFILLED, "%s", text(v));
  cr_assert_str_eq(text(v), "[[\"127.0.0.1\",4]]");
  vow_unref(v);
  cr_assert_eq(settle(vow_dns_lookup(loop, "::1", &pairs), &v), VOW_FULFILLED, "%s", text(v));
  cr_assert_str_eq(text(v), "[[\"::1\",6]]");
  vow_unref(v);
  vow_dns_options v6 = {.family = 6};
  cr_assert_eq(settle(vow_dns_lookup(loop, "::1", &v6), &v), VOW_FULFILLED);
  cr_assert_str_eq(text(v), "[\"::1\"]");
  vow_unref(v);
}

LOOP_TEST(dns, a_family_filters_the_addresses) {
  vow_dns_options v4 = {.family = 4, .pairs = 1};
  vow_value v;
  cr_assert_eq(settle(vow_dns_lookup(loop, "localhost", &v4), &v), VOW_FULFILLED, "%s", text(v));
  for (size_t i = 0; i < vow_array_len(v); i++)
    cr_assert_eq(vow_as_int(vow_array_get(vow_array_get(v, i), 1)), 4, "%s", text(v));
  vow_unref(v);
  /* An IPv4 address asked for as IPv6 is not found. */
  vow_dns_options v6 = {.family = 6};
  cr_assert_eq(settle(vow_dns_lookup(loop, "127.0.0.1", &v6), &v), VOW_REJECTED, "%s", text(v));
  cr_assert_lt(vow_error_code(v), 0);
  cr_assert(strstr(vow_error_message(v), "getaddrinfo '127.0.0.1'"), "%s", text(v));
  vow_unref(v);
}

LOOP_TEST(dns, an_unknown_host_rejects_naming_it) {
  vow_value v;
  cr_assert_eq(settle(vow_dns_lookup(loop, "no..such.host", NULL), &v), VOW_REJECTED);
  int code = vow_error_code(v);
  cr_assert(code == UV_EAI_NONAME || code == UV_EAI_FAIL || code == UV_EAI_AGAIN, "%s", text(v));
  char want[128];
  snprintf(want, sizeof want, "%s: getaddrinfo 'no..such.host': ", vow_err_name(code));
  cr_assert(strncmp(vow_error_message(v), want, strlen(want)) == 0, "%s", text(v));
  vow_unref(v);
}

LOOP_TEST(dns, bad_arguments_reject_with_einval) {
  vow_value v;
  cr_assert_eq(settle(vow_dns_lookup(loop, NULL, NULL), &v), VOW_REJECTED);
  cr_assert_eq(vow_error_code(v), VOW_EINVAL);
  cr_assert_str_eq(vow_error_message(v), "dns lookup: no host name");
  vow_unref(v);
  cr_assert_eq(settle(vow_dns_lookup(loop, "", NULL), &v), VOW_REJECTED);
  cr_assert_eq(vow_error_code(v), VOW_EINVAL);
  vow_unref(v);
  vow_dns_options o = {.family = 5};
  cr_assert_eq(settle(vow_dns_lookup(loop, "localhost", &o), &v), VOW_REJECTED);
  cr_assert_str_eq(vow_error_message(v), "dns lookup: family must be 0, 4 or 6 (got 5)");
  vow_unref(v);
}

LOOP_TEST(dns, a_signal_aborted_before_or_during_rejects_with_its_reason) {
  vow_abort_signal *sig = vow_abort_signal_new(loop);
  vow_abort(sig, vow_error(VOW_EABORTED, "stop"));
  vow_dns_options o = {.signal = sig};
  vow_value v;
  cr_assert_eq(settle(vow_dns_lookup(loop, "localhost", &o), &v), VOW_REJECTED);
  cr_assert_str_eq(text(v), "Error(VOW_EABORTED: stop)");
  vow_unref(v);
  vow_abort_signal_unref(sig);

  /* During: the lookup is on its way to the thread pool when the abort comes. */
  sig = vow_abort_signal_new(loop);
  o.signal = sig;
  vow_promise *p = vow_dns_lookup(loop, "localhost", &o);
  cr_assert_eq(vow_promise_state(p), VOW_PENDING);
  vow_abort(sig, vow_undefined());
  cr_assert_eq(vow_promise_state(p), VOW_REJECTED);
  cr_assert_eq(settle(p, &v), VOW_REJECTED);
  cr_assert_eq(vow_error_code(v), VOW_EABORTED);
  vow_unref(v);
  vow_abort_signal_unref(sig);
}

LOOP_TEST(dns, a_loop_freed_with_a_lookup_pending_releases_it) {
  vow_abort_signal *sig = vow_abort_signal_new(loop);
  vow_dns_options o = {.signal = sig};
  vow_promise *p = vow_dns_lookup(loop, "localhost", &o);
  cr_assert_eq(vow_promise_state(p), VOW_PENDING);
  vow_promise_unref(p);
  vow_abort_signal_unref(sig);
  /* teardown frees the loop: ASan's leak check says whether all went */
}
