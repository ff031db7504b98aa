/* daemon/requests.h — the daemon's request handlers. Private to
 * daemon/. */
#ifndef VOW_DAEMON_REQUESTS_H
#define VOW_DAEMON_REQUESTS_H

#include "conn.h"

/* Handles one request frame of c's (the_daemon.hooks.request): a msgpack
 * map with "v" and "op". What is not one gets an error and the client is
 * dropped. */
void qd_request(client* c, const char* data, size_t len);

#endif
