/* TLS with wolfSSL, driven from the loop through custom I/O callbacks.
 *
 * The receive callback hands wolfSSL the ciphertext the loop received (kept
 * in c->tls->in); the send callback appends wolfSSL's output to the
 * connection's send queue and always takes all of it: back-pressure works
 * above TLS, and wolfSSL 5.5.4 loses state when a send callback answers
 * WANT_WRITE mid-handshake. Nothing here blocks or touches a socket. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/tls.h"
#include "engine/fault.h"

#ifndef TAO_WITH_TLS

TAO_API bool tao_tls_available(void)
{
    return false;
}

int tao__tls_ctx_create(const tao_tls_config_t *cfg, bool server, tao__tls_ctx_t **out)
{
    tao__log(TAO_LOG_ERROR, "TLS requested, but this Tao-C was built without it (TAO_WITH_TLS)");
    return -ENOTSUP;
}

void tao__tls_ctx_destroy(tao__tls_ctx_t *ctx)
{
}

int tao__tls_begin(struct tao_conn *c)
{
    return -ENOTSUP;
}

void tao__tls_input(struct tao_conn *c, const uint8_t *data, size_t len)
{
}

int tao__tls_write(struct tao_conn *c, const tao_frame_hdr_t *h, const void *payload, size_t len)
{
    return -ENOTSUP;
}

int tao__tls_write_chunk(struct tao_conn *c, struct tao__chunk *k)
{
    tao__chunk_free(k);
    return -ENOTSUP;
}

void tao__tls_shutdown(struct tao_conn *c)
{
}

bool tao__tls_ready(const struct tao_conn *c)
{
    return false;
}

void tao__tls_end(struct tao_conn *c)
{
}

void tao__tls_thread_exit(void)
{
}

TAO_API const char *tao_conn_tls_version(const tao_conn_t *conn)
{
    return NULL;
}

TAO_API const char *tao_conn_tls_alpn(const tao_conn_t *conn)
{
    return NULL;
}

TAO_API bool tao_conn_tls_resumed(const tao_conn_t *conn)
{
    return false;
}

#else

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#define HANDSHAKE_MS 10000

struct tao__tls_ctx {
    WOLFSSL_CTX *ctx;
    bool server;
    char *server_name;
    char *alpn;
    unsigned hs_ms;
    pthread_mutex_t lock;
    WOLFSSL_SESSION *session; /* client: the last session, for resumption */
};

struct tao__tls {
    WOLFSSL *ssl;
    uint8_t *in; /* ciphertext received, not yet read by wolfSSL */
    size_t in_len, in_off, in_cap;
    tao__timer_t hs_timer;
    bool ready;
    char alpn[64]; /* the negotiated protocol, NUL-terminated */
};

TAO_API bool tao_tls_available(void)
{
    return true;
}

static void init_once(void)
{
    wolfSSL_Init();
}

static const char *reason(WOLFSSL *ssl, int rc)
{
    static __thread char buf[128];
    int err = wolfSSL_get_error(ssl, rc);
    wolfSSL_ERR_error_string_n((unsigned long)err, buf, sizeof buf);
    return buf;
}

/* ---- I/O callbacks --------------------------------------------------------- */

static int io_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    struct tao__tls *t = ((tao_conn_t *)arg)->tls;
    size_t avail = t->in_len - t->in_off;
    if (avail == 0)
        return WOLFSSL_CBIO_ERR_WANT_READ;
    size_t n = avail < (size_t)sz ? avail : (size_t)sz;
    memcpy(buf, t->in + t->in_off, n);
    t->in_off += n;
    return (int)n;
}

static int io_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
    tao_conn_t *c = arg;
    static const tao_frame_hdr_t none;
    size_t before = c->out.bytes;
    if (c->flags & C_ABORT)
        return sz; /* nothing will be written any more */
    if (tao__outq_push_copy(&c->out, &none, buf, (size_t)sz) < 0)
        return WOLFSSL_CBIO_ERR_GENERAL;
    tao__queued_add(c, c->out.bytes - before);
    STAT_ADD(c->loop, queued, c->out.bytes - before);
    tao__conn_mark_dirty(c);
    return sz;
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
    wolfSSL_CTX_SetIORecv(ctx, io_recv);
    wolfSSL_CTX_SetIOSend(ctx, io_send);
    return 0;
}

int tao__tls_ctx_create(const tao_tls_config_t *cfg, bool server, tao__tls_ctx_t **out)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_once);

    tao__tls_ctx_t *t = tao__calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->server = server;
    t->hs_ms = cfg->handshake_timeout_ms ? cfg->handshake_timeout_ms : HANDSHAKE_MS;
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

/* ---- per connection ------------------------------------------------------------ */

static void fail(tao_conn_t *c, int err, const char *why)
{
    char what[192];
    snprintf(what, sizeof what, "TLS handshake: %s", why);
    tao__conn_error(c, err, what);
    tao__conn_abort_local(c);
}

static void hs_timeout(tao__timer_t *timer, uint64_t now)
{
    struct tao__tls *t = container_of(timer, struct tao__tls, hs_timer);
    tao_conn_t *c = wolfSSL_GetIOReadCtx(t->ssl);
    STAT_ADD(c->loop, timeouts, 1);
    fail(c, -ETIMEDOUT, "timed out");
}

static int setup_client(tao__tls_ctx_t *x, WOLFSSL *ssl)
{
    if (x->server_name) {
        size_t n = strlen(x->server_name);
        if (wolfSSL_UseSNI(ssl, WOLFSSL_SNI_HOST_NAME, x->server_name, (unsigned short)n) !=
                WOLFSSL_SUCCESS ||
            wolfSSL_check_domain_name(ssl, x->server_name) != WOLFSSL_SUCCESS)
            return -EPROTO;
    }
    pthread_mutex_lock(&x->lock);
    if (x->session)
        wolfSSL_set_session(ssl, x->session);
    pthread_mutex_unlock(&x->lock);
    return 0;
}

static void handshake(tao_conn_t *c);

int tao__tls_begin(tao_conn_t *c)
{
    tao__tls_ctx_t *x = c->ep->tls;
    struct tao__tls *t = tao__calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->ssl = wolfSSL_new(x->ctx);
    if (!t->ssl) {
        free(t);
        return -ENOMEM;
    }
    c->tls = t;
    wolfSSL_SetIOReadCtx(t->ssl, c);
    wolfSSL_SetIOWriteCtx(t->ssl, c);
    int rc = 0;
    if (x->alpn && wolfSSL_UseALPN(t->ssl, x->alpn, (unsigned)strlen(x->alpn),
                                   WOLFSSL_ALPN_CONTINUE_ON_MISMATCH) != WOLFSSL_SUCCESS)
        rc = -EPROTO;
    if (rc == 0 && !x->server)
        rc = setup_client(x, t->ssl);
    if (rc < 0)
        return rc;
    tao__timer_init(&t->hs_timer, hs_timeout);
    tao__wheel_add(&c->loop->wheel, &t->hs_timer, c->loop->now + x->hs_ms, 0);
    if (!x->server)
        handshake(c); /* the client speaks first */
    return 0;
}

/* Plaintext out of wolfSSL, into the decoder, until it wants more input. */
static void read_plain(tao_conn_t *c)
{
    static __thread uint8_t buf[16384];
    struct tao__tls *t = c->tls;
    while (c->tls && !(c->flags & (C_CLOSING | C_FENCING))) {
        int n = wolfSSL_read(t->ssl, buf, sizeof buf);
        if (n > 0) {
            tao__conn_input(c, buf, (size_t)n);
            continue;
        }
        int err = wolfSSL_get_error(t->ssl, n);
        if (err == WOLFSSL_ERROR_WANT_READ || err == WOLFSSL_ERROR_WANT_WRITE)
            return;
        if (err == WOLFSSL_ERROR_ZERO_RETURN) { /* close_notify */
            c->flags |= C_EOF;
            tao__conn_close_local(c, false);
            return;
        }
        tao__conn_error(c, -EPROTO, reason(t->ssl, n));
        tao__conn_abort_local(c);
        return;
    }
}

static void handshake(tao_conn_t *c)
{
    struct tao__tls *t = c->tls;
    int rc = c->ep->tls->server ? wolfSSL_accept(t->ssl) : wolfSSL_connect(t->ssl);
    if (rc == WOLFSSL_SUCCESS) {
        char *proto = NULL;
        unsigned short n = 0;
        if (wolfSSL_ALPN_GetProtocol(t->ssl, &proto, &n) == WOLFSSL_SUCCESS && proto &&
            n < sizeof t->alpn) {
            memcpy(t->alpn, proto, n);
            t->alpn[n] = '\0';
        }
        t->ready = true;
        tao__wheel_cancel(&c->loop->wheel, &t->hs_timer);
        tao__conn_ready(c);
        return;
    }
    int err = wolfSSL_get_error(t->ssl, rc);
    if (err != WOLFSSL_ERROR_WANT_READ && err != WOLFSSL_ERROR_WANT_WRITE)
        fail(c, -EPROTO, reason(t->ssl, rc));
}

void tao__tls_input(tao_conn_t *c, const uint8_t *data, size_t len)
{
    struct tao__tls *t = c->tls;
    if (t->in_off == t->in_len)
        t->in_off = t->in_len = 0;
    if (t->in_len + len > t->in_cap) {
        size_t cap = t->in_cap ? t->in_cap : 4096;
        while (cap < t->in_len - t->in_off + len)
            cap *= 2;
        uint8_t *p = tao__malloc(cap);
        if (!p) {
            tao__conn_error(c, -ENOMEM, "TLS input");
            tao__conn_abort_local(c);
            return;
        }
        if (t->in_len > t->in_off)
            memcpy(p, t->in + t->in_off, t->in_len - t->in_off);
        free(t->in);
        t->in = p;
        t->in_cap = cap;
        t->in_len -= t->in_off;
        t->in_off = 0;
    }
    memcpy(t->in + t->in_len, data, len);
    t->in_len += len;
    if (!t->ready)
        handshake(c);
    if (c->tls && t->ready)
        read_plain(c);
    if (c->tls && t->in_off == t->in_len && t->in_cap > 65536) {
        /* Do not keep a large buffer on an idle connection. */
        free(t->in);
        t->in = NULL;
        t->in_cap = t->in_len = t->in_off = 0;
    }
}

static int write_all(tao_conn_t *c, const void *buf, size_t len)
{
    struct tao__tls *t = c->tls;
    if (!t || !t->ready)
        return -ENOTCONN;
    while (len) {
        int chunk = len > (1u << 30) ? 1 << 30 : (int)len;
        int n = wolfSSL_write(t->ssl, buf, chunk);
        if (n <= 0) {
            tao__conn_error(c, -EPROTO, reason(t->ssl, n));
            return -EPROTO;
        }
        buf = (const uint8_t *)buf + n;
        len -= (size_t)n;
    }
    return 0;
}

int tao__tls_write(tao_conn_t *c, const tao_frame_hdr_t *h, const void *payload, size_t len)
{
    /* One record for a small frame: header, payload and trailer together. */
    uint8_t small[4096];
    size_t total = h->pre_len + len + h->post_len;
    if (total <= sizeof small) {
        memcpy(small, h->pre, h->pre_len);
        if (len)
            memcpy(small + h->pre_len, payload, len);
        memcpy(small + h->pre_len + len, h->post, h->post_len);
        return write_all(c, small, total);
    }
    int rc = write_all(c, h->pre, h->pre_len);
    if (rc == 0 && len)
        rc = write_all(c, payload, len);
    if (rc == 0 && h->post_len)
        rc = write_all(c, h->post, h->post_len);
    return rc;
}

int tao__tls_write_chunk(tao_conn_t *c, tao__chunk_t *k)
{
    int rc = write_all(c, k->data, k->len);
    if (rc == 0 && k->ext_len)
        rc = write_all(c, k->ext, k->ext_len);
    if (rc == 0 && k->post_len)
        rc = write_all(c, k->post, k->post_len);
    tao__chunk_free(k);
    return rc;
}

bool tao__tls_ready(const tao_conn_t *c)
{
    return c->tls && c->tls->ready;
}

void tao__tls_shutdown(tao_conn_t *c)
{
    if (c->tls && c->tls->ready)
        wolfSSL_shutdown(c->tls->ssl); /* queues close_notify; the peer's is not awaited */
}

void tao__tls_end(tao_conn_t *c)
{
    struct tao__tls *t = c->tls;
    if (!t)
        return;
    tao__tls_ctx_t *x = c->ep->tls;
    if (!x->server && t->ready) {
        WOLFSSL_SESSION *s = wolfSSL_get1_session(t->ssl);
        if (s) {
            pthread_mutex_lock(&x->lock);
            if (x->session)
                wolfSSL_SESSION_free(x->session);
            x->session = s;
            pthread_mutex_unlock(&x->lock);
        }
    }
    tao__wheel_cancel(&c->loop->wheel, &t->hs_timer);
    wolfSSL_free(t->ssl);
    free(t->in);
    free(t);
    c->tls = NULL;
}

void tao__tls_thread_exit(void)
{
    wc_ecc_fp_free();
}

TAO_API const char *tao_conn_tls_version(const tao_conn_t *c)
{
    return c->tls && c->tls->ready ? wolfSSL_get_version(c->tls->ssl) : NULL;
}

TAO_API const char *tao_conn_tls_alpn(const tao_conn_t *c)
{
    return c->tls && c->tls->ready && c->tls->alpn[0] ? c->tls->alpn : NULL;
}

TAO_API bool tao_conn_tls_resumed(const tao_conn_t *c)
{
    return c->tls && c->tls->ready && wolfSSL_session_reused(c->tls->ssl);
}

#endif
