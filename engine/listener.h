/* Internal: listening and accepting (listener.c). */
#ifndef TAO_ENGINE_LISTENER_H
#define TAO_ENGINE_LISTENER_H

#include <stdbool.h>

#include "engine/backend.h"
#include "engine/timerwheel.h"
#include "tao/server.h"

/* One listening socket a loop accepts on: the op is embedded, so an
 * accept's outcome finds its listener with container_of. */
typedef struct tao__listener {
    tao__loop_t *loop;
    int fd; /* the loop's own copy; -1 once closed */
    tao__op_t op;
    bool armed;
    bool own;     /* opened by this server for this loop (not inherited) */
    bool waiting; /* the watch saw connections queued, and none accepted since */
    tao__timer_t retry;
    unsigned backoff;
} tao__listener_t;

/* Before the loops start: is the port free, a listening socket of our own,
 * and an inherited one checked and made ready (-EINVAL, -ENOTSOCK, -EBADF,
 * logged). */
int tao__port_free(const tao_server_t *srv);
int tao__listener_open(tao_server_t *srv, int *fd_out);
int tao__listener_inherit(int fd, unsigned idx);
/* Give the loop a copy (dup) of each of fds to accept on. */
int tao__listeners_attach(tao__loop_t *loop, const int *fds, unsigned n, bool own);
/* The loop: */
void tao__accept_arm(tao__loop_t *loop);
void tao__accept_complete(tao__loop_t *loop, tao__op_t *op, const tao__cqe_t *cqe);
/* An accept is in flight on one of the loop's listeners. */
bool tao__accepting(const tao__loop_t *loop);
/* After each batch: stop accepting when the server hands its sockets over. */
void tao__listener_poll(tao__loop_t *loop);
void tao__listener_close(tao__loop_t *loop);
/* Off the loop, once its thread has ended: close what is left. */
void tao__listeners_free(tao__loop_t *loop);

#endif
