/* Internal: the server object (server.c). */
#ifndef TAO_ENGINE_SERVER_H
#define TAO_ENGINE_SERVER_H

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
};

#endif
