/* The listening socket of the epoll servers in perf/ (the baseline and the
 * faulty echo): parse "HOST:PORT" or "[v6]:PORT", bind, listen. */
#ifndef TAO_PERF_LISTEN_H
#define TAO_PERF_LISTEN_H

/* A non-blocking listening socket with TCP_NODELAY (inherited by accepted
 * sockets, as Tao-C's listener does) and SO_REUSEADDR. Port 0 picks a free
 * port, returned in *port. Returns the descriptor, or -errno. */
int pb_listen(const char *addr, int *port);

#endif
