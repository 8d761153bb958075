/* Internal: the TLS transport's settings (tls_ctx.c). The transport itself
 * is tao__transport_tls (transport.h, tls.c). */
#ifndef TAO_ENGINE_TLS_H
#define TAO_ENGINE_TLS_H

#include <stdbool.h>

#include "tao/tls.h"

typedef struct tao__tls_ctx tao__tls_ctx_t;

#ifdef TAO_WITH_TLS
#include <pthread.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#define TAO__TLS_HANDSHAKE_MS 10000

struct tao__tls_ctx {
    WOLFSSL_CTX *ctx;
    bool server;
    char *server_name;
    char *alpn;
    unsigned hs_ms;
    pthread_mutex_t lock;
    WOLFSSL_SESSION *session; /* client: the last session, for resumption */
};

/* tls.c: the transport's I/O callbacks, on a new context. */
void tao__tls_ctx_io(tao__tls_ctx_t *t);
#endif

typedef struct tao__endpoint tao__endpoint_t;

/* TLS on every connection of ep: its context, and the TLS transport. 0;
 * -ENOTSUP without TLS in the build; -EINVAL, -ENOENT (a file) or -EPROTO
 * (wolfSSL refused a setting), with a log line saying which. */
int tao__tls_endpoint(tao__endpoint_t *ep, const tao_tls_config_t *cfg, bool server);
void tao__tls_ctx_destroy(tao__tls_ctx_t *ctx);

#endif
