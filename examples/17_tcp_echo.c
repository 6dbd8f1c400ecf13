/*
 * 17 — A TCP echo server and its client, with DNS
 *
 * Node's net module as promises: the server hands out its connections
 * through an async iterator, each connection is a stream you read with
 * for-await and write one awaited promise at a time, and the client resolves
 * "localhost" on the loop before it connects. The client half-closes
 * ("that is all I send"); the server reads to the end, echoes, and ends too.
 *
 * The JavaScript this mirrors (Node 20, as an ES module):
 *
 *   const server = net.createServer(async (socket) => {
 *     for await (const chunk of socket) socket.write(chunk); // echo every chunk back
 *     socket.end();                                          // the client ended: so do we
 *   });
 *   server.listen(0, '127.0.0.1');
 *   await once(server, 'listening');
 *   console.log('server: listening on 127.0.0.1');
 *   const addresses = await dns.lookup('localhost', { all: true });
 *   console.log('dns: localhost is', addresses.map((a) => a.address).join(', '));
 *
 *   const socket = net.connect(server.address().port, 'localhost');
 *   await once(socket, 'connect');
 *   console.log(`client: connected to ${socket.remoteAddress}`);
 *   socket.write('hello\n');
 *   socket.write('world\n');
 *   socket.end();                                            // half-close
 *   for await (const line of readline.createInterface({ input: socket }))
 *     console.log(`client: echoed "${line}"`);
 *   console.log('client: the server ended too');
 *   server.close();
 *   // connecting now: Error: connect ECONNREFUSED 127.0.0.1:PORT
 *
 * What node printed:
 *   server: listening on 127.0.0.1
 *   dns: localhost is 127.0.0.1
 *   client: connected to 127.0.0.1
 *   client: echoed "hello"
 *   client: echoed "world"
 *   client: the server ended too
 *   client: after close: ECONNREFUSED
 */
#include <stdio.h>
#include <string.h>
#include <vow.h>

/* One connection: every chunk back, then end our side once the client ended its. */
static vow_value echo(vow_loop *loop, void *arg) {
  (void)loop;
  vow_stream *socket = arg;
  vow_for_await it;
  vow_for_await_gen(&it, vow_stream_chunks(socket));
  VOW_FOR_AWAIT(&it, chunk) {
    if (vow_await(vow_stream_write_value(socket, vow_ref(chunk)), NULL) != 0) break;
  }
  vow_for_await_end(&it, NULL);
  vow_await(vow_stream_end(socket), NULL);
  return vow_undefined();
}

static void release_socket(void *socket) { vow_stream_unref(socket); }

/* net.createServer(handler): for await (const socket of server) handler(socket). */
static vow_value serve(vow_loop *loop, void *server) {
  vow_for_await it;
  vow_for_await_gen(&it, vow_tcp_accept_iter(server));
  VOW_FOR_AWAIT(&it, conn) {
    vow_async_options o = {.arg_free = release_socket};  /* echo keeps its own reference */
    vow_promise_unref(vow_async_ex(loop, echo, vow_stream_ref(vow_as_stream(conn)), &o));
  }
  return vow_int(vow_for_await_end(&it, NULL));
}

static vow_value lesson(vow_loop *loop, void *arg) {
  (void)arg;
  vow_tcp_server *server;
  int err = vow_tcp_listen(loop, "127.0.0.1", 0, NULL, &server);
  if (err) return vow_throw(vow_error(err, "listen 127.0.0.1"));
  int port = vow_tcp_server_port(server);
  vow_promise *serving = vow_async(loop, serve, server);
  printf("server: listening on 127.0.0.1\n");

  vow_value addresses;
  if (vow_await(vow_dns_lookup(loop, "localhost", NULL), &addresses) != 0) return vow_throw(addresses);
  printf("dns: localhost is");
  for (size_t i = 0; i < vow_array_len(addresses); i++)
    printf("%s %s", i ? "," : "", vow_str(vow_array_get(addresses, i)));
  printf("\n");
  vow_unref(addresses);

  vow_value conn;
  if (vow_await(vow_tcp_connect(loop, "localhost", port, NULL), &conn) != 0) return vow_throw(conn);
  vow_stream *socket = vow_as_stream(conn);
  char peer[64];
  vow_tcp_remote_address(socket, peer, sizeof peer);
  printf("client: connected to %s\n", peer);
  vow_promise_unref(vow_stream_write(socket, "hello\n", 6)); /* queued in order: */
  vow_promise_unref(vow_stream_write(socket, "world\n", 6)); /* no need to await each */
  vow_promise_unref(vow_stream_end(socket));                 /* half-close */

  vow_for_await lines;
  vow_for_await_gen(&lines, vow_stream_lines(socket, 0));
  VOW_FOR_AWAIT(&lines, line) printf("client: echoed \"%s\"\n", vow_str(line));
  vow_value why;
  if (vow_for_await_end(&lines, &why) == 0) printf("client: the server ended too\n");
  else vow_unref(why);
  vow_unref(conn);  /* the last reference closes the connection */

  vow_await(vow_tcp_server_close(server), NULL);
  vow_await(serving, NULL);
  vow_value refused;
  if (vow_await(vow_tcp_connect(loop, "127.0.0.1", port, NULL), &refused) != 0)
    printf("client: after close: %s\n", vow_err_name(vow_error_code(refused)));
  vow_unref(refused);
  return vow_undefined();
}

int main(void) {
  return vow_run(lesson, NULL, NULL, NULL) == 0 ? 0 : 1;
}
