/* The output side of a connection: a queue of chunks and the one send in
 * flight that drains it.
 *
 * Copied messages are packed back to back into chunks (header, payload,
 * trailer), so a burst of small replies is a few iovecs; an owned payload
 * gets a chunk of its own that points at it. At most one sendmsg per socket
 * is in flight, gathering up to TAO__IOV_MAX iovecs from the head; a short
 * send simply leaves the rest for the next one. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

#define CHUNK_MIN 4096

static size_t chunk_bytes(const tao__chunk_t *k)
{
    return k->len + k->ext_len + k->post_len;
}

static void chunk_free(tao__chunk_t *k)
{
    if (k->free_fn)
        k->free_fn(k->ext, k->free_user);
    free(k);
}

static void append(tao__outq_t *q, tao__chunk_t *k)
{
    k->next = NULL;
    if (q->tail)
        q->tail->next = k;
    else
        q->head = k;
    q->tail = k;
}

int tao__outq_push_copy(tao__outq_t *q, const tao_frame_hdr_t *h, const void *payload, size_t len)
{
    size_t total = h->pre_len + len + h->post_len;
    tao__chunk_t *k = q->tail;

    if (total > UINT32_MAX - CHUNK_MIN)
        return -EMSGSIZE;
    if (!k || k->ext || k->cap - k->len < total) {
        size_t cap = total < CHUNK_MIN - sizeof *k ? CHUNK_MIN - sizeof *k : total;
        k = malloc(sizeof *k + cap);
        if (!k)
            return -ENOMEM;
        memset(k, 0, sizeof *k);
        k->cap = (uint32_t)cap;
        append(q, k);
    }
    uint8_t *p = k->data + k->len;
    memcpy(p, h->pre, h->pre_len);
    if (len)
        memcpy(p + h->pre_len, payload, len);
    memcpy(p + h->pre_len + len, h->post, h->post_len);
    k->len += (uint32_t)total;
    q->bytes += total;
    return 0;
}

int tao__outq_push_owned(tao__outq_t *q, const tao_frame_hdr_t *h, void *payload, size_t len,
                         tao_payload_free_fn free_fn, void *user)
{
    tao__chunk_t *k = malloc(sizeof *k + h->pre_len);
    if (!k)
        return -ENOMEM;
    memset(k, 0, sizeof *k);
    memcpy(k->data, h->pre, h->pre_len);
    k->len = k->cap = h->pre_len;
    k->ext = payload;
    k->ext_len = len;
    k->free_fn = free_fn;
    k->free_user = user;
    memcpy(k->post, h->post, h->post_len);
    k->post_len = h->post_len;
    append(q, k);
    q->bytes += chunk_bytes(k);
    return 0;
}

void tao__outq_clear(tao__outq_t *q)
{
    while (q->head) {
        tao__chunk_t *k = q->head;
        q->head = k->next;
        chunk_free(k);
    }
    q->tail = NULL;
    q->bytes = 0;
    q->head_off = 0;
}

/* Drop n sent bytes from the front. */
static void advance(tao__outq_t *q, size_t n)
{
    q->bytes -= n;
    n += q->head_off;
    while (q->head && n >= chunk_bytes(q->head)) {
        tao__chunk_t *k = q->head;
        n -= chunk_bytes(k);
        q->head = k->next;
        chunk_free(k);
    }
    if (!q->head)
        q->tail = NULL;
    q->head_off = n;
}

/* ---- sending -------------------------------------------------------------- */

static int put_iov(struct iovec *iov, int n, const void *base, size_t len, size_t *skip)
{
    if (len <= *skip) {
        *skip -= len;
        return n;
    }
    if (n == TAO__IOV_MAX)
        return n;
    iov[n].iov_base = (uint8_t *)base + *skip;
    iov[n].iov_len = len - *skip;
    *skip = 0;
    return n + 1;
}

static int gather(const tao__outq_t *q, struct iovec *iov)
{
    size_t skip = q->head_off;
    int n = 0;
    for (const tao__chunk_t *k = q->head; k && n < TAO__IOV_MAX; k = k->next) {
        n = put_iov(iov, n, k->data, k->len, &skip);
        if (k->ext_len)
            n = put_iov(iov, n, k->ext, k->ext_len, &skip);
        if (k->post_len)
            n = put_iov(iov, n, k->post, k->post_len, &skip);
    }
    return n;
}

static tao__sendctx_t *ctx_get(tao__loop_t *loop)
{
    tao__sendctx_t *ctx = loop->free_ctx;
    if (ctx) {
        loop->free_ctx = ctx->next_free;
        return ctx;
    }
    return malloc(sizeof *ctx);
}

static void ctx_put(tao__loop_t *loop, tao__sendctx_t *ctx)
{
    ctx->next_free = loop->free_ctx;
    loop->free_ctx = ctx;
}

void tao__conn_flush(tao_conn_t *c)
{
    if (c->flags & (C_SEND_INFLIGHT | C_CLOSE_SUBMITTED | C_ABORT) || !c->out.bytes)
        return;
    tao__loop_t *loop = c->loop;
    tao__sendctx_t *ctx = ctx_get(loop);
    if (!ctx) {
        tao__conn_error(c, -ENOMEM, "send");
        tao_conn_abort(c);
        return;
    }
    memset(&ctx->msg, 0, sizeof ctx->msg);
    ctx->msg.msg_iov = ctx->iov;
    ctx->msg.msg_iovlen = (size_t)gather(&c->out, ctx->iov);

    struct io_uring_sqe *sqe = tao__sqe(loop);
    if (ctx->msg.msg_iovlen == 1)
        io_uring_prep_send(sqe, c->fd, ctx->iov[0].iov_base, ctx->iov[0].iov_len, MSG_NOSIGNAL);
    else
        io_uring_prep_sendmsg(sqe, c->fd, &ctx->msg, MSG_NOSIGNAL);
    tao__sqe_op(sqe, &c->send_op);
    c->sending = ctx;
    c->flags |= C_SEND_INFLIGHT;
}

void tao__send_complete(tao__loop_t *loop, tao__op_t *op, struct io_uring_cqe *cqe)
{
    tao_conn_t *c = container_of(op, tao_conn_t, send_op);
    const tao_server_t *srv = loop->srv;
    size_t before = c->out.bytes;

    ctx_put(loop, c->sending);
    c->sending = NULL;
    c->flags &= ~(uint32_t)C_SEND_INFLIGHT;

    if (cqe->res < 0) {
        if (cqe->res != -ECANCELED && !(c->flags & C_CLOSING))
            tao__conn_error(c, cqe->res, "send");
        c->flags |= C_CLOSING | C_ABORT;
    } else {
        advance(&c->out, (size_t)cqe->res);
        STAT_ADD(loop, bytes_out, cqe->res);
    }
    if (c->flags & C_ABORT)
        tao__outq_clear(&c->out);
    STAT_ADD(loop, queued, -(int64_t)(before - c->out.bytes));

    tao__conn_flush(c);
    if (c->out.bytes < srv->cfg.out_low)
        tao__conn_drained(c);
    tao__conn_progress(c);
}

/* ---- the public send calls ------------------------------------------------ */

static int send_check(tao_conn_t *c, int32_t type, size_t len, tao_frame_hdr_t *h)
{
    tao__loop_t *loop = c->loop;
    const tao_server_t *srv = loop->srv;

    if (c->flags & C_CLOSING)
        return -ESHUTDOWN;
    if (c->out.bytes >= srv->cfg.out_high) {
        c->flags |= C_WANT_WRITABLE;
        STAT_ADD(loop, send_rejected, 1);
        return -EAGAIN;
    }
    return srv->codec.encode(&srv->codec, type, len, h);
}

static void sent(tao_conn_t *c, size_t before)
{
    STAT_ADD(c->loop, frames_out, 1);
    STAT_ADD(c->loop, queued, c->out.bytes - before);
    tao__conn_mark_dirty(c);
    if (c->out.bytes >= c->loop->srv->cfg.out_high)
        tao__conn_pause(c);
}

TAO_API int tao_conn_send(tao_conn_t *c, int32_t type, const void *payload, size_t len)
{
    tao_frame_hdr_t h;
    size_t before = c->out.bytes;
    int rc = send_check(c, type, len, &h);
    if (rc == 0)
        rc = tao__outq_push_copy(&c->out, &h, payload, len);
    if (rc == 0)
        sent(c, before);
    return rc;
}

TAO_API int tao_conn_send_owned(tao_conn_t *c, int32_t type, void *payload, size_t len,
                                tao_payload_free_fn free_fn, void *user)
{
    tao_frame_hdr_t h;
    size_t before = c->out.bytes;
    int rc = send_check(c, type, len, &h);
    if (rc == 0)
        rc = tao__outq_push_owned(&c->out, &h, payload, len, free_fn, user);
    if (rc == 0)
        sent(c, before);
    return rc;
}

TAO_API size_t tao_conn_queued(const tao_conn_t *c)
{
    return c->out.bytes;
}
