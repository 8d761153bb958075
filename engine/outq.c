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
#include "engine/fault.h"

#define CHUNK_MIN 4096

/* ---- counting queued bytes ------------------------------------------------ *
 * The one place output bytes are counted: from the moment a send is
 * accepted (on any thread) until they are written or dropped, they count
 * on the connection (its watermarks and send limit) and on its endpoint
 * (the server-wide budget, max_queued_bytes). */
void tao__queued_add(tao_conn_t *c, size_t n)
{
    atomic_fetch_add(&c->queued, n);
    atomic_fetch_add(&c->ep->queued, n);
}

void tao__queued_sub(tao_conn_t *c, size_t n)
{
    atomic_fetch_sub(&c->queued, n);
    atomic_fetch_sub(&c->ep->queued, n);
}

size_t tao__chunk_bytes(const tao__chunk_t *k)
{
    return k->len + k->ext_len + k->post_len;
}

void tao__chunk_free(tao__chunk_t *k)
{
    if (k->zc_loop)
        tao__zc_put(k->zc_loop, k->zc_slot);
    else if (k->lent)
        tao__buf_put(k->lent, k->lent_bid);
    else if (k->free_fn)
        k->free_fn(k->ext, k->free_user);
    free(k);
}

void tao__outq_append(tao__outq_t *q, tao__chunk_t *k)
{
    k->next = NULL;
    if (q->tail)
        q->tail->next = k;
    else
        q->head = k;
    q->tail = k;
    q->bytes += tao__chunk_bytes(k);
}

static tao__chunk_t *chunk_new(size_t cap)
{
    tao__chunk_t *k = tao__malloc(sizeof *k + cap);
    if (!k)
        return NULL;
    memset(k, 0, sizeof *k);
    k->cap = (uint32_t)cap;
    return k;
}

static void put_frame(tao__chunk_t *k, const tao_frame_hdr_t *h, const void *payload, size_t len)
{
    uint8_t *p = k->data + k->len;
    memcpy(p, h->pre, h->pre_len);
    if (len)
        memcpy(p + h->pre_len, payload, len);
    memcpy(p + h->pre_len + len, h->post, h->post_len);
    k->len += (uint32_t)(h->pre_len + len + h->post_len);
}

/* Copy a frame into the queue, packed behind the previous one when the tail
 * chunk has room. */
int tao__outq_push_copy(tao__outq_t *q, const tao_frame_hdr_t *h, const void *payload, size_t len)
{
    size_t total = h->pre_len + len + h->post_len;
    tao__chunk_t *k = q->tail;

    if (total > UINT32_MAX - CHUNK_MIN)
        return -EMSGSIZE;
    if (k && !k->ext && k->cap - k->len >= total) {
        put_frame(k, h, payload, len);
        q->bytes += total;
        return 0;
    }
    k = chunk_new(total < CHUNK_MIN - sizeof *k ? CHUNK_MIN - sizeof *k : total);
    if (!k)
        return -ENOMEM;
    put_frame(k, h, payload, len);
    tao__outq_append(q, k);
    return 0;
}

/* A chunk holding one copied frame, for a send from another thread. */
tao__chunk_t *tao__chunk_copy(const tao_frame_hdr_t *h, const void *payload, size_t len)
{
    size_t total = h->pre_len + len + h->post_len;
    if (total > UINT32_MAX)
        return NULL;
    tao__chunk_t *k = chunk_new(total);
    if (k)
        put_frame(k, h, payload, len);
    return k;
}

tao__chunk_t *tao__chunk_owned(const tao_frame_hdr_t *h, void *payload, size_t len,
                               tao_payload_free_fn free_fn, void *user)
{
    tao__chunk_t *k = chunk_new(h->pre_len);
    if (!k)
        return NULL;
    memcpy(k->data, h->pre, h->pre_len);
    k->len = h->pre_len;
    k->ext = payload;
    k->ext_len = len;
    k->free_fn = free_fn;
    k->free_user = user;
    memcpy(k->post, h->post, h->post_len);
    k->post_len = h->post_len;
    return k;
}

void tao__outq_clear(tao__outq_t *q)
{
    while (q->head) {
        tao__chunk_t *k = q->head;
        q->head = k->next;
        tao__chunk_free(k);
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
    while (q->head && n >= tao__chunk_bytes(q->head)) {
        tao__chunk_t *k = q->head;
        n -= tao__chunk_bytes(k);
        q->head = k->next;
        tao__chunk_free(k);
    }
    if (!q->head)
        q->tail = NULL;
    q->head_off = n;
}

/* ---- lending receive buffers ----------------------------------------------- */

#define LEND_MIN 1024          /* smaller payloads are cheaper to copy and pack */
#define LEND_QUEUE (256 << 10) /* a connection this far behind gets copies */

/* A payload that lies in the receive buffer being decoded is sent from that
 * buffer instead of a copy: what an echo or a proxy does. Bounded so that
 * slow peers cannot drain the ring: at most half its buffers out on loan,
 * and only to connections whose queue is short. */
static tao__chunk_t *lend_chunk(tao_conn_t *c, const tao_frame_hdr_t *h, const void *payload,
                                size_t len)
{
    tao__loop_t *loop = c->loop;
    const uint8_t *p = payload, *base = loop->recv_base;
    if (!base || len < LEND_MIN || p < base || p + len > base + loop->buf_size ||
        atomic_load(&c->queued) > LEND_QUEUE || c->tls)
        return NULL;
    tao__chunk_t *k = tao__chunk_owned(h, (void *)p, len, NULL, NULL);
    if (!k)
        return NULL;
    if (!tao__buf_lend(loop, loop->recv_bid)) {
        free(k);
        return NULL;
    }
    k->lent = loop;
    k->lent_bid = loop->recv_bid;
    return k;
}

/* ---- gathering ----------------------------------------------------------- */

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

/* iovecs from the head, up to (not into) a chunk in a registered buffer:
 * those go alone, as SEND_ZC. */
static int gather(const tao__outq_t *q, struct iovec *iov)
{
    size_t skip = q->head_off;
    int n = 0;
    for (const tao__chunk_t *k = q->head; k && n < TAO__IOV_MAX && !k->zc_loop; k = k->next) {
        n = put_iov(iov, n, k->data, k->len, &skip);
        if (k->ext_len)
            n = put_iov(iov, n, k->ext, k->ext_len, &skip);
        if (k->post_len)
            n = put_iov(iov, n, k->post, k->post_len, &skip);
    }
    return n;
}

/* Fault injection: keep the first few bytes only, as a short send would
 * (1 to 64 of them, varied so frame boundaries fall everywhere). */
static int shorten(struct iovec *iov, int n)
{
    static _Thread_local unsigned seq;
    size_t left = 1 + (seq++ * 7919u) % 64;
    int i = 0;
    for (; i < n && left; i++) {
        if (iov[i].iov_len > left)
            iov[i].iov_len = left;
        left -= iov[i].iov_len;
    }
    return i;
}

static tao__sendctx_t *ctx_get(tao__loop_t *loop, tao_conn_t *c)
{
    tao__sendctx_t *ctx = loop->free_ctx;
    if (ctx)
        loop->free_ctx = ctx->next_free;
    else if (!(ctx = tao__malloc(sizeof *ctx)))
        return NULL;
    ctx->op = (tao__op_t){.kind = OP_SEND};
    ctx->conn = c;
    ctx->zc_slot = -1;
    return ctx;
}

static void ctx_put(tao__loop_t *loop, tao__sendctx_t *ctx)
{
    if (ctx->zc_slot >= 0)
        tao__zc_put(loop, (unsigned)ctx->zc_slot);
    ctx->next_free = loop->free_ctx;
    loop->free_ctx = ctx;
}

/* ---- registered buffers for SEND_ZC ----------------------------------------- */

void tao__zc_put(tao__loop_t *loop, unsigned slot)
{
    if (--loop->zc_refs[slot] == 0)
        loop->zc_free[loop->zc_nfree++] = (uint16_t)slot;
}

/* Copy a frame into a free registered buffer: one copy, as for any send,
 * and the kernel then sends from pinned memory. NULL when none fits. */
static tao__chunk_t *zc_chunk(tao_conn_t *c, const tao_frame_hdr_t *h, const void *payload,
                              size_t len)
{
    tao__loop_t *loop = c->loop;
    size_t total = h->pre_len + len + h->post_len;
    if (!c->ep->zc_threshold || len < c->ep->zc_threshold || !loop->zc_nfree ||
        total > loop->zc_size || c->tls)
        return NULL;
    tao__chunk_t *k = chunk_new(0);
    if (!k)
        return NULL;
    unsigned slot = loop->zc_free[--loop->zc_nfree];
    loop->zc_refs[slot] = 1;
    k->zc_loop = loop;
    k->zc_slot = slot;
    k->ext = loop->zc_mem + (size_t)slot * loop->zc_size;
    k->ext_len = total;
    memcpy(k->ext, h->pre, h->pre_len);
    if (len)
        memcpy(k->ext + h->pre_len, payload, len);
    memcpy(k->ext + h->pre_len + len, h->post, h->post_len);
    return k;
}

static void submit_zc(tao_conn_t *c, tao__sendctx_t *ctx, tao__chunk_t *k)
{
    tao__loop_t *loop = c->loop;
    size_t skip = c->out.head_off - k->len; /* a ZC chunk has no data[] bytes */
    struct io_uring_sqe *sqe = tao__sqe(loop);
    io_uring_prep_send_zc_fixed(sqe, c->fd, k->ext + skip, k->ext_len - skip, MSG_NOSIGNAL, 0,
                                k->zc_slot);
    ctx->zc_slot = (int)k->zc_slot;
    loop->zc_refs[k->zc_slot]++; /* until the kernel's notification */
    STAT_ADD(loop, zc_sends, 1);
    tao__sqe_op(sqe, &ctx->op);
}

/* ---- sending -------------------------------------------------------------- */

void tao__conn_flush(tao_conn_t *c)
{
    if (c->flags & (C_SEND_INFLIGHT | C_CLOSE_SUBMITTED | C_ABORT) || !c->out.bytes)
        return;
    tao__loop_t *loop = c->loop;
    tao__sendctx_t *ctx = ctx_get(loop, c);
    if (!ctx) {
        tao__conn_error(c, -ENOMEM, "send");
        tao__conn_abort_local(c);
        return;
    }
    if (c->out.head->zc_loop) {
        submit_zc(c, ctx, c->out.head);
    } else {
        memset(&ctx->msg, 0, sizeof ctx->msg);
        ctx->msg.msg_iov = ctx->iov;
        int n = gather(&c->out, ctx->iov);
        if (tao__fault(TAO_FAULT_SHORT_SEND))
            n = shorten(ctx->iov, n);
        ctx->msg.msg_iovlen = (size_t)n;
        struct io_uring_sqe *sqe = tao__sqe(loop);
        if (ctx->msg.msg_iovlen == 1)
            io_uring_prep_send(sqe, c->fd, ctx->iov[0].iov_base, ctx->iov[0].iov_len, MSG_NOSIGNAL);
        else
            io_uring_prep_sendmsg(sqe, c->fd, &ctx->msg, MSG_NOSIGNAL);
        tao__sqe_op(sqe, &ctx->op);
    }
    c->sending = ctx;
    c->flags |= C_SEND_INFLIGHT;
    tao__conn_touch_tx(c);
}

void tao__send_complete(tao__loop_t *loop, tao__op_t *op, struct io_uring_cqe *cqe)
{
    tao__sendctx_t *ctx = container_of(op, tao__sendctx_t, op);
    if (cqe->flags & IORING_CQE_F_NOTIF) {
        /* SEND_ZC's second completion: the kernel is done with the buffer. */
        ctx_put(loop, ctx);
        return;
    }
    tao_conn_t *c = ctx->conn;
    size_t before = c->out.bytes;

    c->sending = NULL;
    c->flags &= ~(uint32_t)C_SEND_INFLIGHT;
    if (!(cqe->flags & IORING_CQE_F_MORE))
        ctx_put(loop, ctx); /* no notification follows */
    if (cqe->res < 0) {
        if (cqe->res != -ECANCELED && !(c->flags & C_CLOSING))
            tao__conn_error(c, cqe->res, "send");
        c->flags |= C_CLOSING | C_ABORT;
    } else {
        advance(&c->out, (size_t)cqe->res);
        STAT_ADD(loop, bytes_out, cqe->res);
        if (cqe->res > 0 && (c->out.bytes || (c->flags & C_PAUSED)))
            c->last_out = loop->now; /* the peer is draining a backlog: not idle */
    }
    if (c->flags & C_ABORT)
        tao__outq_clear(&c->out);
    STAT_ADD(loop, queued, -(int64_t)(before - c->out.bytes));
    tao__queued_sub(c, before - c->out.bytes);

    tao__conn_flush(c);
    if (atomic_load(&c->queued) < c->ep->out_low)
        tao__conn_drained(c);
    tao__conn_progress(c);
}

/* ---- the public send calls ------------------------------------------------ */

/* A chunk built on another thread reaches the loop. */
void tao__conn_queue_chunk(tao_conn_t *c, tao__chunk_t *k)
{
    if (c->tls) {
        /* Encrypted into the queue; the plaintext count gives way to the
         * ciphertext one. */
        tao__queued_sub(c, tao__chunk_bytes(k));
        if (tao__tls_write_chunk(c, k) < 0) {
            tao__conn_abort_local(c);
            return;
        }
        STAT_ADD(c->loop, frames_out, 1);
        if (atomic_load(&c->queued) >= c->ep->out_high)
            tao__conn_pause(c);
        return;
    }
    tao__outq_append(&c->out, k);
    STAT_ADD(c->loop, frames_out, 1);
    STAT_ADD(c->loop, queued, tao__chunk_bytes(k));
    tao__conn_mark_dirty(c);
    if (atomic_load(&c->queued) >= c->ep->out_high)
        tao__conn_pause(c);
}

/* Reading pauses at the high watermark; sends are refused only past twice
 * that plus one largest frame, which leaves room for the replies to frames
 * already received (with workers, up to a high watermark of them may be
 * waiting to be handled when reading pauses). */
static size_t send_limit(const tao__endpoint_t *ep)
{
    return 2 * ep->out_high + ep->codec.max_payload;
}

static int send_check(tao_conn_t *c, int32_t type, size_t len, tao_frame_hdr_t *h)
{
    tao__endpoint_t *ep = c->ep;

    if (atomic_load(&c->closing))
        return -ESHUTDOWN;
    if (!atomic_load(&c->connected))
        return -ENOTCONN;
    if (atomic_load(&ep->queued) + len > ep->max_queued) {
        /* The server-wide budget: refused whole, nothing half-queued. */
        atomic_store(&c->want_writable, true);
        atomic_fetch_add(&ep->send_rejected, 1);
        return -EAGAIN;
    }
    if (atomic_load(&c->queued) >= send_limit(ep)) {
        atomic_store(&c->want_writable, true);
        /* Re-check: the queue may have drained past the low watermark
         * before the flag was up, and then nobody would call on_writable. */
        if (atomic_load(&c->queued) >= send_limit(ep)) {
            atomic_fetch_add(&ep->send_rejected, 1);
            return -EAGAIN;
        }
    }
    return ep->codec.encode(&ep->codec, type, len, h);
}

int tao__conn_send_local(tao_conn_t *c, int32_t type, const void *payload, size_t len)
{
    tao_frame_hdr_t h;
    size_t before = c->out.bytes;
    int rc = send_check(c, type, len, &h);
    if (rc == 0 && (c->flags & C_CLOSING))
        rc = -ESHUTDOWN;
    if (rc == 0 && c->tls) {
        /* The TLS send callback queues (and counts) the ciphertext. */
        rc = tao__tls_write(c, &h, payload, len);
        if (rc < 0)
            return rc;
        STAT_ADD(c->loop, frames_out, 1);
        if (atomic_load(&c->queued) >= c->ep->out_high)
            tao__conn_pause(c);
        return 0;
    }
    tao__chunk_t *zc = rc == 0 ? zc_chunk(c, &h, payload, len) : NULL;
    if (!zc && rc == 0)
        zc = lend_chunk(c, &h, payload, len);
    if (zc)
        tao__outq_append(&c->out, zc);
    else if (rc == 0)
        rc = tao__outq_push_copy(&c->out, &h, payload, len);
    if (rc < 0)
        return rc;
    tao__queued_add(c, c->out.bytes - before);
    STAT_ADD(c->loop, frames_out, 1);
    STAT_ADD(c->loop, queued, c->out.bytes - before);
    tao__conn_mark_dirty(c);
    if (atomic_load(&c->queued) >= c->ep->out_high)
        tao__conn_pause(c);
    return 0;
}

/* From a worker or any other thread: the chunk travels to the loop in an
 * item, behind everything this thread sent to the connection before. */
static int send_remote(tao_conn_t *c, tao__chunk_t *k)
{
    if (!k)
        return -ENOMEM;
    tao__item_t *it = tao__item_new(IT_SEND, c, 0);
    if (!it) {
        k->free_fn = NULL; /* on failure the caller keeps its payload */
        tao__chunk_free(k);
        return -ENOMEM;
    }
    it->u.chunk = k;
    tao__queued_add(c, tao__chunk_bytes(k));
    tao__post(c->loop, it);
    return 0;
}

TAO_API int tao_conn_send(tao_conn_t *c, int32_t type, const void *payload, size_t len)
{
    if (tao__tls_loop == c->loop)
        return tao__conn_send_local(c, type, payload, len);
    tao_frame_hdr_t h;
    int rc = send_check(c, type, len, &h);
    return rc < 0 ? rc : send_remote(c, tao__chunk_copy(&h, payload, len));
}

TAO_API int tao_conn_send_owned(tao_conn_t *c, int32_t type, void *payload, size_t len,
                                tao_payload_free_fn free_fn, void *user)
{
    tao_frame_hdr_t h;
    int rc = send_check(c, type, len, &h);
    if (rc < 0)
        return rc;
    tao__chunk_t *k = tao__chunk_owned(&h, payload, len, free_fn, user);
    if (tao__tls_loop != c->loop)
        return send_remote(c, k);
    if (!k)
        return -ENOMEM;
    if (c->flags & C_CLOSING) {
        k->free_fn = NULL;
        tao__chunk_free(k);
        return -ESHUTDOWN;
    }
    tao__queued_add(c, tao__chunk_bytes(k));
    tao__conn_queue_chunk(c, k);
    return 0;
}

TAO_API size_t tao_conn_queued(const tao_conn_t *c)
{
    return atomic_load(&c->queued);
}
