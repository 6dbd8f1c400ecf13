/*
 * tcp.h — what the tests reach of tcp.c beyond vow.h (internal).
 */
#ifndef VOW_IO_TCP_H
#define VOW_IO_TCP_H

#include "vow.h"

/* vow_tcp_connect as if its host had resolved to the n numeric addresses
 * given (copied), in that order: the path a name with several addresses
 * takes ("localhost" as ::1 then 127.0.0.1), which this machine's resolver
 * may not offer. label names the host in messages. */
vow_promise *vow__tcp_connect_list(vow_loop *loop, const char *label, const char *const *addresses,
                                   size_t n, int port, const vow_tcp_connect_options *options);

#endif
