/* The PROXY stage: a server with proxy_protocol on starts each connection
 * here, in front of its transport. It reads the PROXY header (the parser is
 * codec/proxy.c), records the client's address, then hands the connection
 * to the real transport (plain or TLS: the ClientHello follows the header)
 * and passes on every byte after the header.
 *
 * Ownership: while the stage runs, c->xdata is its own state (struct
 * tao__proxy). It is freed, and c->xdata cleared, before the transport
 * starts, so the transport finds c->xdata as it would without the stage.
 * Bytes of a header split over receives are copied here (at most
 * TAO_PROXY_MAX); a header that arrives whole is read in place.
 *
 * Nothing of the connection reaches the user before the header is read:
 * on_connect comes from the transport once it is ready, so tao_conn_peer
 * already names the client there. Sends before then fail with -ENOTCONN
 * (a broadcast skips the connection), as during a TLS handshake.
 *
 * Ends: a malformed header, one missing (required) or cut short by the
 * peer's FIN, and a header later than proxy_timeout_ms each count in
 * proxy_errors, call on_error (-EPROTO, or -ETIMEDOUT) and abort the
 * connection; nothing else on the server is touched. A peer that closes
 * before sending a byte (a TCP health check) is closed quietly. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/conn.h"
#include "engine/endpoint.h"
#include "engine/fault.h"
#include "engine/loop.h"
#include "engine/send.h"
#include "engine/server.h"
#include "engine/transport.h"
#include "tao/proxy.h"

struct tao__proxy {
    tao_conn_t *c;
    tao__timer_t timer; /* the header's deadline */
    uint32_t len;       /* bytes of a header split over receives, in buf */
    uint8_t *buf;       /* TAO_PROXY_MAX bytes, once a header is split */
};

static void report(tao_conn_t *c, int err, const char *why)
{
    char what[96];
    snprintf(what, sizeof what, "PROXY header: %s", why);
    STAT_ADD(c->loop, proxy_err, 1);
    tao__conn_error(c, err, what);
}

static void fail(tao_conn_t *c, int err, const char *why)
{
    report(c, err, why);
    tao__conn_abort_local(c);
}

static void timed_out(tao__timer_t *t, uint64_t now)
{
    tao_conn_t *c = container_of(t, struct tao__proxy, timer)->c;
    STAT_ADD(c->loop, timeouts, 1);
    fail(c, -ETIMEDOUT, "timed out");
}

static int start(tao_conn_t *c)
{
    struct tao__proxy *p = tao__calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->c = c;
    tao__timer_init(&p->timer, timed_out);
    c->xdata = p;
    tao__wheel_add(&c->loop->wheel, &p->timer, c->loop->now + c->ep->srv->cfg.proxy_timeout_ms, 0);
    return 0; /* tao__conn_start arms the receive */
}

static void end(tao_conn_t *c)
{
    struct tao__proxy *p = c->xdata;
    if (!p)
        return;
    tao__wheel_cancel(&c->loop->wheel, &p->timer);
    free(p->buf);
    free(p);
    c->xdata = NULL;
}

/* The header is read (h, or NULL when optional and there was none): the
 * client's address, then the transport, then the bytes that followed. */
static void done(tao_conn_t *c, const tao_proxy_hdr_t *h, const uint8_t *rest, size_t rest_len)
{
    if (h && !h->local) {
        c->proxy = c->peer;
        c->proxy_len = c->peer_len;
        tao__conn_set_peer(c, (const struct sockaddr *)&h->src, h->src_len);
    }
    end(c);
    c->xport = c->ep->xport;
    int rc = c->xport->start(c);
    if (rc < 0) {
        tao__conn_error(c, rc, "transport setup");
        tao__conn_abort_local(c);
        return;
    }
    if (rest_len && !(c->flags & (C_CLOSING | C_FENCING)))
        c->xport->input(c, rest, rest_len);
}

static void input(tao_conn_t *c, const uint8_t *data, size_t len)
{
    struct tao__proxy *p = c->xdata;
    const uint8_t *hdr = data;
    size_t have = len, old = p->len;
    if (old) { /* the rest of a split header: completed in p->buf */
        size_t take = len < TAO_PROXY_MAX - old ? len : TAO_PROXY_MAX - old;
        memcpy(p->buf + old, data, take);
        hdr = p->buf;
        have = old + take;
    }
    tao_proxy_hdr_t h;
    ssize_t n = tao_proxy_parse(hdr, have, &h);
    if (n > 0 && (size_t)n > old) {
        /* The header ends n bytes in; of data, n - old were part of it
         * (its first old bytes were not a whole header: n > old). */
        done(c, &h, data + (size_t)n - old, len - ((size_t)n - old));
    } else if (n == 0 && have < TAO_PROXY_MAX) {
        if (!p->buf && !(p->buf = tao__malloc(TAO_PROXY_MAX))) {
            fail(c, -ENOMEM, "no memory for a split header");
            return;
        }
        if (!old)
            memcpy(p->buf, data, len);
        p->len = (uint32_t)have;
    } else if (n == -ENOENT && c->ep->srv->cfg.proxy_protocol == TAO_PROXY_OPTIONAL) {
        /* No header: every byte so far is the protocol's. The copy of the
         * first ones must outlive the stage's state. */
        uint8_t first[TAO_PROXY_MAX];
        if (old)
            memcpy(first, p->buf, old);
        done(c, NULL, first, old);
        if (!(c->flags & (C_CLOSING | C_FENCING)))
            c->xport->input(c, data, len);
    } else {
        fail(c, -EPROTO, n == -ENOENT ? "missing" : "malformed");
    }
}

static void eof(tao_conn_t *c)
{
    struct tao__proxy *p = c->xdata;
    if (p && p->len) /* the close that follows is the peer's */
        report(c, -EPROTO, "the peer closed the connection in the middle of it");
}

static int write_frame(tao_conn_t *c, const tao_frame_hdr_t *h, const void *payload, size_t len)
{
    return -ENOTCONN;
}

static int write_chunk(tao_conn_t *c, tao__chunk_t *k)
{
    tao__queued_sub(c, tao__chunk_bytes(k));
    tao__chunk_free(k);
    return -ENOTCONN;
}

static void nothing(tao_conn_t *c)
{
}

const tao__transport_t tao__transport_proxy = {
    .name = "proxy",
    .start = start,
    .input = input,
    .write = write_frame,
    .write_chunk = write_chunk,
    .eof = eof,
    .shutdown = nothing,
    .end = end,
};

TAO_API int tao_conn_proxy(const tao_conn_t *c, struct sockaddr_storage *addr, socklen_t *len)
{
    if (!c->proxy_len)
        return -ENOENT;
    memcpy(addr, &c->proxy, c->proxy_len);
    *len = c->proxy_len;
    return 0;
}
