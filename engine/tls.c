/* The TLS transport: wolfSSL driven from the loop through custom I/O
 * callbacks, behind the transport seam (transport.h).
 *
 * The receive callback hands wolfSSL the ciphertext the loop received (kept
 * in the connection's TLS state); the send callback appends wolfSSL's
 * output to the connection's send queue and always takes all of it:
 * back-pressure works above TLS, and wolfSSL 5.5.4 loses state when a send
 * callback answers WANT_WRITE mid-handshake. Nothing here blocks or touches
 * a socket. The contexts (certificates, versions, ciphers) are tls_ctx.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/conn.h"
#include "engine/endpoint.h"
#include "engine/fault.h"
#include "engine/log.h"
#include "engine/loop.h"
#include "engine/recv.h"
#include "engine/send.h"
#include "engine/tls.h"
#include "engine/transport.h"

#ifndef TAO_WITH_TLS

void tao__transport_thread_exit(void)
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

#include <wolfssl/wolfcrypt/ecc.h>

struct tao__tls {
    WOLFSSL *ssl;
    uint8_t *in; /* ciphertext received, not yet read by wolfSSL */
    size_t in_len, in_off, in_cap;
    tao__timer_t hs_timer;
    bool ready;
    char alpn[64]; /* the negotiated protocol, NUL-terminated */
};

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
    struct tao__tls *t = ((tao_conn_t *)arg)->xdata;
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
    if (c->flags & C_ABORT)
        return sz; /* nothing will be written any more */
    if (tao__out_copy(c, &none, buf, (size_t)sz) < 0)
        return WOLFSSL_CBIO_ERR_GENERAL;
    return sz;
}

void tao__tls_ctx_io(tao__tls_ctx_t *t)
{
    wolfSSL_CTX_SetIORecv(t->ctx, io_recv);
    wolfSSL_CTX_SetIOSend(t->ctx, io_send);
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

static int start(tao_conn_t *c)
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
    c->xdata = t;
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
    struct tao__tls *t = c->xdata;
    while (c->xdata && !(c->flags & (C_CLOSING | C_FENCING))) {
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
    struct tao__tls *t = c->xdata;
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

static void input(tao_conn_t *c, const uint8_t *data, size_t len)
{
    struct tao__tls *t = c->xdata;
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
    if (c->xdata && t->ready)
        read_plain(c);
    if (c->xdata && t->in_off == t->in_len && t->in_cap > 65536) {
        /* Do not keep a large buffer on an idle connection. */
        free(t->in);
        t->in = NULL;
        t->in_cap = t->in_len = t->in_off = 0;
    }
}

static int write_all(tao_conn_t *c, const void *buf, size_t len)
{
    struct tao__tls *t = c->xdata;
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

static int write_frame(tao_conn_t *c, const tao_frame_hdr_t *h, const void *payload, size_t len)
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

/* Encrypted into the queue: the plaintext count gives way to the
 * ciphertext one (io_send counts it). */
static int write_chunk(tao_conn_t *c, tao__chunk_t *k)
{
    tao__queued_sub(c, tao__chunk_bytes(k));
    int rc = write_all(c, k->data, k->len);
    if (rc == 0 && k->ext_len)
        rc = write_all(c, k->ext, k->ext_len);
    if (rc == 0 && k->post_len)
        rc = write_all(c, k->post, k->post_len);
    tao__chunk_free(k);
    return rc;
}

static void eof(tao_conn_t *c)
{
    struct tao__tls *t = c->xdata;
    if (t && !t->ready)
        tao__conn_error(c, -ECONNRESET, "TLS handshake: the peer closed the connection");
}

static void shutdown_(tao_conn_t *c)
{
    struct tao__tls *t = c->xdata;
    if (t && t->ready)
        wolfSSL_shutdown(t->ssl); /* queues close_notify; the peer's is not awaited */
}

static void end(tao_conn_t *c)
{
    struct tao__tls *t = c->xdata;
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
    c->xdata = NULL;
}

const tao__transport_t tao__transport_tls = {
    .name = "tls",
    .start = start,
    .input = input,
    .write = write_frame,
    .write_chunk = write_chunk,
    .eof = eof,
    .shutdown = shutdown_,
    .end = end,
};

void tao__transport_thread_exit(void)
{
    wc_ecc_fp_free();
}

static const struct tao__tls *ready(const tao_conn_t *c)
{
    const struct tao__tls *t = c->xport == &tao__transport_tls ? c->xdata : NULL;
    return t && t->ready ? t : NULL;
}

TAO_API const char *tao_conn_tls_version(const tao_conn_t *c)
{
    return ready(c) ? wolfSSL_get_version(ready(c)->ssl) : NULL;
}

TAO_API const char *tao_conn_tls_alpn(const tao_conn_t *c)
{
    return ready(c) && ready(c)->alpn[0] ? ready(c)->alpn : NULL;
}

TAO_API bool tao_conn_tls_resumed(const tao_conn_t *c)
{
    return ready(c) && wolfSSL_session_reused(ready(c)->ssl);
}

#endif
