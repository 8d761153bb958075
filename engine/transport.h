/* Internal: the transport seam. What a connection's bytes go through
 * between the socket and the codec: plain (plain.c) or TLS (tls.c). The
 * rest of the engine calls c->xport and never asks which one it is. */
#ifndef TAO_ENGINE_TRANSPORT_H
#define TAO_ENGINE_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/outq.h"
#include "tao/codec.h"

struct tao__transport {
    const char *name;
    /* A new socket: the handshake, if any, then tao__conn_ready. 0 or
     * -errno (the caller aborts). */
    int (*start)(tao_conn_t *c);
    /* Bytes received from the socket. */
    void (*input)(tao_conn_t *c, const uint8_t *data, size_t len);
    /* One frame into the output queue. 0 or -errno. */
    int (*write)(tao_conn_t *c, const tao_frame_hdr_t *h, const void *payload, size_t len);
    /* A chunk built on another thread, its bytes already counted; takes
     * it. 0 or -errno. */
    int (*write_chunk)(tao_conn_t *c, tao__chunk_t *k);
    /* The peer's FIN came. */
    void (*eof)(tao_conn_t *c);
    /* A graceful close begins: anything to say before our FIN. */
    void (*shutdown)(tao_conn_t *c);
    /* The socket is gone: free the transport's state. */
    void (*end)(tao_conn_t *c);
};

extern const tao__transport_t tao__transport_plain;
extern const tao__transport_t tao__transport_tls;
/* Not a transport but a stage in front of one: the PROXY header (proxy.c). */
extern const tao__transport_t tao__transport_proxy;

/* A loop thread ends: free what transports cached for it. */
void tao__transport_thread_exit(void);

#endif
