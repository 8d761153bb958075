/* The listening socket of the hand-written servers in perf/ (the baselines
 * and the faulty echo): parse "HOST:PORT" or "[v6]:PORT", bind, listen;
 * then the signals and the ready line. */
#ifndef TAO_PERF_LISTEN_H
#define TAO_PERF_LISTEN_H

#include <signal.h>

/* A non-blocking listening socket with TCP_NODELAY (inherited by accepted
 * sockets, as Tao-C's listener does) and SO_REUSEADDR. Port 0 picks a free
 * port, returned in *port. Returns the descriptor, or -errno. */
int pb_listen(const char *addr, int *port);

/* Set by SIGINT and SIGTERM once pb_ready installed their handler. */
extern volatile sig_atomic_t pb_stop;

/* Ready to serve: SIGINT and SIGTERM set pb_stop and interrupt the wait
 * (no SA_RESTART), SIGPIPE is ignored, and "NAME listening on HOST:PORT"
 * goes to stdout, the line the Tao-C examples print and scripts read. */
void pb_ready(const char *name, const char *addr, int port);

#endif
