/* Internal: listening and accepting (listener.c). */
#ifndef TAO_ENGINE_LISTENER_H
#define TAO_ENGINE_LISTENER_H

#include "engine/backend.h"
#include "tao/server.h"

/* Before the loops start: is the port free, and a listening socket. */
int tao__port_free(const tao_server_t *srv);
int tao__listener_open(tao_server_t *srv, int *fd_out);
/* The loop: */
void tao__accept_arm(tao__loop_t *loop);
void tao__accept_complete(tao__loop_t *loop, tao__op_t *op, const tao__cqe_t *cqe);
void tao__listener_close(tao__loop_t *loop);

#endif
