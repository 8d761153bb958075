/* Internal: the server object (server.c). */
#ifndef TAO_ENGINE_SERVER_H
#define TAO_ENGINE_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "engine/endpoint.h"
#include "engine/runtime.h"
#include "tao/server.h"

struct tao_server {
    tao_server_config_t cfg;
    tao__endpoint_t ep;
    tao__runtime_t rt;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int port;
    /* The server's copy of each listening socket (listener.c owns the rule). */
    int *lfds;
    unsigned nlfds;
    atomic_bool shared;       /* another process may hold them: never shut down */
    atomic_bool unlisten;     /* handed over: every loop stops accepting */
    struct tao__offer *offer; /* hand-over offered to a successor (handover.c) */
};

#endif
