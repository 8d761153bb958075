/* Internal: client groups and client connections (client.c). */
#ifndef TAO_ENGINE_CLIENT_H
#define TAO_ENGINE_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "engine/backend.h"
#include "engine/endpoint.h"
#include "engine/runtime.h"
#include "engine/timerwheel.h"
#include "tao/client.h"

/* A client connection's state; it follows its tao_conn_t in memory. */
typedef struct tao__cstate {
    tao_client_t *cl;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    tao__op_t connect_op;
    tao__timer_t timer; /* connect timeout, or the backoff before a retry */
    unsigned failures;  /* failed attempts in a row */
    bool connecting;    /* a connect op is in flight */
    bool timed_out;     /* the connect timeout cancelled it */
    int last_err;       /* why the last socket failed; 0 for a FIN */
    atomic_bool user_closed;
} tao__cstate_t;

struct tao_client {
    tao_client_config_t cfg;
    tao__endpoint_t ep;
    tao__runtime_t own;
    tao__runtime_t *rt; /* &own, or the shared server's */
    atomic_uint next_loop;
};

void tao__client_connect_item(tao_conn_t *c);
void tao__connect_complete(tao__loop_t *loop, tao__op_t *op, const tao__cqe_t *cqe);
/* The socket is gone: true when a reconnect is scheduled. */
bool tao__client_closed(tao_conn_t *c);
void tao__client_close_offline(tao_conn_t *c);

#endif
