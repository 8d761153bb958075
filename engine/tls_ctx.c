/* TLS contexts: what a server or client group's TLS settings become in
 * wolfSSL (versions, certificates, ciphers, tickets, verification). The
 * transport that uses them per connection is tls.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/endpoint.h"
#include "engine/fault.h"
#include "engine/log.h"
#include "engine/tls.h"
#include "engine/transport.h"

#ifndef TAO_WITH_TLS

TAO_API bool tao_tls_available(void)
{
    return false;
}

int tao__tls_endpoint(tao__endpoint_t *ep, const tao_tls_config_t *cfg, bool server)
{
    tao__log(TAO_LOG_ERROR, "TLS requested, but this Tao-C was built without it (TAO_WITH_TLS)");
    return -ENOTSUP;
}

void tao__tls_ctx_destroy(tao__tls_ctx_t *ctx)
{
}

#else

TAO_API bool tao_tls_available(void)
{
    return true;
}

static void init_once(void)
{
    wolfSSL_Init();
}

/* ---- contexts ---------------------------------------------------------------- */

static int file_format(const char *path)
{
    size_t n = strlen(path);
    return n > 4 && (strcmp(path + n - 4, ".der") == 0 || strcmp(path + n - 4, ".cer") == 0)
               ? WOLFSSL_FILETYPE_ASN1
               : WOLFSSL_FILETYPE_PEM;
}

static WOLFSSL_METHOD *method(const tao_tls_config_t *cfg, bool server)
{
    if (cfg->max_version == TAO_TLS_1_2)
        return server ? wolfTLSv1_2_server_method() : wolfTLSv1_2_client_method();
    if (cfg->min_version == TAO_TLS_1_3)
        return server ? wolfTLSv1_3_server_method() : wolfTLSv1_3_client_method();
    return server ? wolfSSLv23_server_method() : wolfSSLv23_client_method();
}

#define CHACHA_FIRST                                                                               \
    "TLS13-CHACHA20-POLY1305-SHA256:TLS13-AES128-GCM-SHA256:TLS13-AES256-GCM-SHA384:"              \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:"     \
    "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"

static int configure(tao__tls_ctx_t *t, const tao_tls_config_t *cfg)
{
    WOLFSSL_CTX *ctx = t->ctx;
    /* Debian's build would accept TLS 1.1 unless told otherwise. */
    int min = cfg->min_version == TAO_TLS_1_3 ? WOLFSSL_TLSV1_3 : WOLFSSL_TLSV1_2;
    if (wolfSSL_CTX_SetMinVersion(ctx, min) != WOLFSSL_SUCCESS)
        return -EPROTO;
    if (cfg->cert_file &&
        wolfSSL_CTX_use_certificate_chain_file_format(
            ctx, cfg->cert_file, file_format(cfg->cert_file)) != WOLFSSL_SUCCESS) {
        tao__log(TAO_LOG_ERROR, "TLS: cannot load certificate chain %s", cfg->cert_file);
        return -ENOENT;
    }
    if (cfg->key_file && wolfSSL_CTX_use_PrivateKey_file(
                             ctx, cfg->key_file, file_format(cfg->key_file)) != WOLFSSL_SUCCESS) {
        tao__log(TAO_LOG_ERROR, "TLS: cannot load private key %s", cfg->key_file);
        return -ENOENT;
    }
    if (cfg->ca_file &&
        wolfSSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL) != WOLFSSL_SUCCESS) {
        tao__log(TAO_LOG_ERROR, "TLS: cannot load CA file %s", cfg->ca_file);
        return -ENOENT;
    }
    const char *ciphers = cfg->ciphers ? cfg->ciphers : cfg->prefer_chacha ? CHACHA_FIRST : NULL;
    if (ciphers && wolfSSL_CTX_set_cipher_list(ctx, ciphers) != WOLFSSL_SUCCESS) {
        tao__log(TAO_LOG_ERROR, "TLS: cipher list refused: %s", ciphers);
        return -EINVAL;
    }
    if (cfg->prefer_chacha)
        wolfSSL_CTX_set_options(ctx, WOLFSSL_OP_CIPHER_SERVER_PREFERENCE);
    if (t->server) {
        if (!cfg->cert_file || !cfg->key_file) {
            tao__log(TAO_LOG_ERROR, "TLS server: cert_file and key_file are required");
            return -EINVAL;
        }
        if (cfg->verify_client && !cfg->ca_file) {
            tao__log(TAO_LOG_ERROR, "TLS server: verify_client needs ca_file");
            return -EINVAL;
        }
        wolfSSL_CTX_set_verify(ctx,
                               cfg->verify_client
                                   ? WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT
                                   : WOLFSSL_VERIFY_NONE,
                               NULL);
        if (cfg->no_tickets) {
            wolfSSL_CTX_NoTicketTLSv12(ctx);
            wolfSSL_CTX_no_ticket_TLSv13(ctx);
        }
    } else {
        if (!cfg->insecure && !cfg->ca_file) {
            tao__log(TAO_LOG_ERROR, "TLS client: ca_file is required (or insecure)");
            return -EINVAL;
        }
        wolfSSL_CTX_set_verify(ctx, cfg->insecure ? WOLFSSL_VERIFY_NONE : WOLFSSL_VERIFY_PEER,
                               NULL);
        wolfSSL_CTX_UseSessionTicket(ctx);
    }
    tao__tls_ctx_io(t);
    return 0;
}

static int ctx_create(const tao_tls_config_t *cfg, bool server, tao__tls_ctx_t **out)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_once);

    tao__tls_ctx_t *t = tao__calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->server = server;
    t->hs_ms = cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms : TAO__TLS_HANDSHAKE_MS;
    pthread_mutex_init(&t->lock, NULL);
    t->ctx = wolfSSL_CTX_new(method(cfg, server));
    int rc = t->ctx ? configure(t, cfg) : -ENOMEM;
    if (rc == 0 && cfg->server_name && !(t->server_name = strdup(cfg->server_name)))
        rc = -ENOMEM;
    if (rc == 0 && cfg->alpn && !(t->alpn = strdup(cfg->alpn)))
        rc = -ENOMEM;
    if (rc < 0) {
        tao__tls_ctx_destroy(t);
        return rc;
    }
    *out = t;
    return 0;
}

void tao__tls_ctx_destroy(tao__tls_ctx_t *t)
{
    if (!t)
        return;
    if (t->session)
        wolfSSL_SESSION_free(t->session);
    if (t->ctx)
        wolfSSL_CTX_free(t->ctx);
    free(t->server_name);
    free(t->alpn);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

int tao__tls_endpoint(tao__endpoint_t *ep, const tao_tls_config_t *cfg, bool server)
{
    int rc = ctx_create(cfg, server, &ep->tls);
    if (rc == 0)
        ep->xport = &tao__transport_tls;
    return rc;
}

#endif
