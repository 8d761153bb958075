/* A connection's output: counting queued bytes, putting frames into the
 * output queue (outq.c), the one send in flight that drains it, and the
 * public send calls from any thread.
 *
 * Counting: an output byte counts from the moment a send accepts it (on
 * any thread) until it is written or dropped, on the connection (its
 * watermarks and send limit) and on its endpoint (the server-wide budget,
 * max_queued_bytes). tao__queued_add and tao__queued_sub are the only two
 * functions that change those counts; the queue's own entries and exits
 * (out_chunk, out_copy, out_sent, tao__out_clear) call them.
 *
 * Other threads count with atomic adds. The loop, which counts every frame
 * its handlers send, defers both counts instead of paying two locked adds
 * per frame:
 * - its additions to c->queued wait in c->qd until the connection's flush
 *   at the end of the batch, or its next subtraction, which adds them in
 *   the same atomic step. c->queued + c->qd is exact (tao__queued_now);
 *   another thread reads c->queued alone, which is never above the true
 *   count and short of it only by what the loop queued on c in the batch
 *   under way. A sender elsewhere may so pass the send limit by that
 *   much; it is never refused wrongly, and the want_writable handshake
 *   holds because every subtraction publishes first.
 * - its changes to an endpoint's count wait in loop->qdelta, for one
 *   endpoint at a time (loop->qep), until the batch ends, another endpoint
 *   counts, a connection finishes, or they reach TAO__QUEUED_SLACK either
 *   way. The loop's own budget check adds its qdelta, so it is exact; any
 *   other thread (another loop included) may find ep->queued short by less
 *   than TAO__QUEUED_SLACK per loop, for at most one batch, or above the
 *   truth (bytes the loop has written and not yet subtracted), which only
 *   refuses early.
 * A connection that finished (C_CLOSE_SUBMITTED) counts directly: its
 * endpoint may go once its last connection has, and then no delta may be
 * left pointing at it.
 *
 * Sending: at most one send per socket is in flight, gathering up to
 * TAO__IOV_MAX iovecs from the head; a short send leaves the rest for the
 * next one. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bufring.h"
#include "engine/conn.h"
#include "engine/endpoint.h"
#include "engine/fault.h"
#include "engine/keepalive.h"
#include "engine/loop.h"
#include "engine/recv.h"
#include "engine/send.h"
#include "engine/transport.h"

/* ---- counting ------------------------------------------------------------- */

void tao__queued_publish(tao__loop_t *loop)
{
    TAO__ON_LOOP(loop);
    if (loop->qdelta)
        atomic_fetch_add(&loop->qep->queued, (size_t)loop->qdelta);
    loop->qdelta = 0;
}

/* The loop counts n bytes in or out of ep's budget. */
static void ep_count(tao__loop_t *loop, tao__endpoint_t *ep, ptrdiff_t n)
{
    if (loop->qep != ep) {
        tao__queued_publish(loop);
        loop->qep = ep;
    }
    loop->qdelta += n;
    if (loop->qdelta >= TAO__QUEUED_SLACK || loop->qdelta <= -TAO__QUEUED_SLACK)
        tao__queued_publish(loop);
}

/* The loop defers the counts of its live connections only. */
static bool deferred(const tao_conn_t *c)
{
    return tao__cur_loop == c->loop && !(c->flags & (C_CLOSE_SUBMITTED | C_DEAD));
}

void tao__queued_add(tao_conn_t *c, size_t n)
{
    if (deferred(c)) {
        c->qd += n;
        ep_count(c->loop, c->ep, (ptrdiff_t)n);
        return;
    }
    atomic_fetch_add(&c->queued, n);
    atomic_fetch_add(&c->ep->queued, n);
}

void tao__queued_sub(tao_conn_t *c, size_t n)
{
    if (deferred(c)) {
        atomic_fetch_add(&c->queued, c->qd - n); /* modular: may be a subtraction */
        c->qd = 0;
        ep_count(c->loop, c->ep, -(ptrdiff_t)n);
        return;
    }
    atomic_fetch_sub(&c->queued, n);
    atomic_fetch_sub(&c->ep->queued, n);
}

size_t tao__queued_now(const tao_conn_t *c)
{
    TAO__ON_LOOP(c->loop);
    return atomic_load(&c->queued) + c->qd;
}

/* The counts as this thread can know them: a loop adds what it deferred. */
static size_t ep_queued(const tao__endpoint_t *ep)
{
    const tao__loop_t *loop = tao__cur_loop;
    size_t q = atomic_load(&ep->queued);
    return loop && loop->qep == ep ? q + (size_t)loop->qdelta : q;
}

static size_t conn_queued(const tao_conn_t *c)
{
    size_t q = atomic_load(&c->queued);
    return tao__cur_loop == c->loop ? q + c->qd : q;
}

/* Output grew by n bytes: flush at the end of the batch, and stop reading
 * past the high watermark. */
static void grew(tao_conn_t *c, size_t n, bool counted)
{
    TAO__ON_LOOP(c->loop);
    if (!counted)
        tao__queued_add(c, n);
    STAT_ADD(c->loop, queued, n);
    tao__conn_mark_dirty(c);
}

void tao__out_chunk(tao_conn_t *c, tao__chunk_t *k, bool counted)
{
    tao__outq_append(&c->out, k);
    grew(c, tao__chunk_bytes(k), counted);
}

int tao__out_copy(tao_conn_t *c, const tao_frame_hdr_t *h, const void *payload, size_t len)
{
    size_t before = c->out.bytes;
    int rc = tao__outq_push_copy(&c->out, h, payload, len);
    if (rc == 0)
        grew(c, c->out.bytes - before, false);
    return rc;
}

/* The bytes between before and now left the queue. */
static void shrank(tao_conn_t *c, size_t before)
{
    STAT_ADD(c->loop, queued, -(int64_t)(before - c->out.bytes));
    tao__queued_sub(c, before - c->out.bytes);
}

void tao__out_clear(tao_conn_t *c)
{
    TAO__ON_LOOP(c->loop);
    size_t before = c->out.bytes;
    tao__outq_clear(&c->out);
    shrank(c, before);
}

/* ---- lending receive buffers ----------------------------------------------- */

#define LEND_MIN 1024          /* smaller payloads are cheaper to copy and pack */
#define LEND_QUEUE (256 << 10) /* a connection this far behind gets copies */

/* A payload that lies in the receive buffer being decoded is sent from that
 * buffer instead of a copy: what an echo or a proxy does. Bounded so that
 * slow peers cannot drain the buffers: at most half of them out on loan
 * (bufring.c), and only to connections whose queue is short. */
static tao__chunk_t *lend_chunk(tao_conn_t *c, const tao_frame_hdr_t *h, const void *payload,
                                size_t len)
{
    tao__loop_t *loop = c->loop;
    const uint8_t *p = payload, *base = loop->recv_base;
    if (!base || len < LEND_MIN || p < base || p + len > loop->recv_end ||
        tao__queued_now(c) > LEND_QUEUE)
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
    if (!c->ep->set.zc_threshold || len < c->ep->set.zc_threshold || !loop->zc_nfree ||
        total > loop->zc_size)
        return NULL;
    tao__chunk_t *k = tao__chunk_new(0);
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

int tao__out_frame(tao_conn_t *c, const tao_frame_hdr_t *h, const void *payload, size_t len)
{
    tao__chunk_t *k = zc_chunk(c, h, payload, len);
    if (!k)
        k = lend_chunk(c, h, payload, len);
    if (!k)
        return tao__out_copy(c, h, payload, len);
    tao__out_chunk(c, k, false);
    return 0;
}

/* ---- sending -------------------------------------------------------------- */

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
    memset(&ctx->msg, 0, sizeof ctx->msg);
    ctx->msg.msg_iov = ctx->iov;
    return ctx;
}

static void ctx_put(tao__loop_t *loop, tao__sendctx_t *ctx)
{
    if (ctx->zc_slot >= 0)
        tao__zc_put(loop, (unsigned)ctx->zc_slot);
    ctx->next_free = loop->free_ctx;
    loop->free_ctx = ctx;
}

void tao__sendctx_free_all(tao__loop_t *loop)
{
    while (loop->free_ctx) {
        tao__sendctx_t *n = loop->free_ctx->next_free;
        free(loop->free_ctx);
        loop->free_ctx = n;
    }
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

/* A chunk in a registered buffer goes alone, as a zero-copy send. */
static void fill_zc(tao__loop_t *loop, const tao__outq_t *q, tao__sendctx_t *ctx)
{
    const tao__chunk_t *k = q->head;
    size_t skip = q->head_off - k->len; /* a ZC chunk has no data[] bytes */
    ctx->iov[0].iov_base = k->ext + skip;
    ctx->iov[0].iov_len = k->ext_len - skip;
    ctx->msg.msg_iovlen = 1;
    ctx->zc_slot = (int)k->zc_slot;
    loop->zc_refs[k->zc_slot]++; /* until the kernel's notification */
    STAT_ADD(loop, zc_sends, 1);
}

void tao__conn_flush(tao_conn_t *c)
{
    TAO__ON_LOOP(c->loop);
    if (c->qd) { /* the end of the batch: other threads see what it queued */
        atomic_fetch_add(&c->queued, c->qd);
        c->qd = 0;
    }
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
        fill_zc(loop, &c->out, ctx);
    } else {
        int n = tao__outq_gather(&c->out, ctx->iov);
        if (tao__fault(TAO_FAULT_SHORT_SEND))
            n = shorten(ctx->iov, n);
        ctx->msg.msg_iovlen = (size_t)n;
    }
    loop->be->send(c, ctx);
    c->sending = ctx;
    c->flags |= C_SEND_INFLIGHT;
    tao__conn_touch_tx(c);
}

void tao__send_complete(tao__loop_t *loop, tao__op_t *op, const tao__cqe_t *cqe)
{
    tao__sendctx_t *ctx = container_of(op, tao__sendctx_t, op);
    TAO__ON_LOOP(loop);
    if (cqe->flags & TAO__CQ_NOTIF) {
        /* A zero-copy send's second outcome: the kernel let go of the buffer. */
        ctx_put(loop, ctx);
        return;
    }
    tao_conn_t *c = ctx->conn;
    size_t before = c->out.bytes;

    c->sending = NULL;
    c->flags &= ~(uint32_t)C_SEND_INFLIGHT;
    if (!(cqe->flags & TAO__CQ_MORE))
        ctx_put(loop, ctx); /* no notification follows */
    if (cqe->res < 0) {
        if (cqe->res != -ECANCELED && !(c->flags & C_CLOSING))
            tao__conn_error(c, cqe->res, "send");
        c->flags |= C_CLOSING | C_ABORT;
    } else {
        tao__outq_advance(&c->out, (size_t)cqe->res);
        STAT_ADD(loop, bytes_out, cqe->res);
        if (cqe->res > 0 && (c->out.bytes || (c->flags & C_PAUSED)))
            c->last_out = loop->now; /* the peer is draining a backlog: not idle */
    }
    if (c->flags & C_ABORT)
        tao__outq_clear(&c->out);
    shrank(c, before);

    tao__conn_flush(c);
    if (tao__queued_now(c) < c->ep->set.out_low)
        tao__conn_drained(c);
    tao__conn_progress(c);
}

/* ---- the public send calls ------------------------------------------------ */

static void sent_one(tao_conn_t *c)
{
    STAT_ADD(c->loop, frames_out, 1);
    if (tao__queued_now(c) >= c->ep->set.out_high)
        tao__conn_pause(c);
}

/* A chunk built on another thread reaches the loop. */
void tao__conn_queue_chunk(tao_conn_t *c, tao__chunk_t *k)
{
    TAO__ON_LOOP(c->loop);
    if (c->xport->write_chunk(c, k) < 0) {
        tao__conn_abort_local(c);
        return;
    }
    sent_one(c);
}

/* A small frame from another thread travels in its item, not in a chunk of
 * its own: one allocation instead of two, and the loop packs it behind the
 * others in its cached chunks, so it is one more copy of a few bytes for
 * one malloc and free fewer. It was counted when sent; the transport's
 * write counts it again, so the first count goes first. */
#define FRAME_ITEM_MAX 2048

size_t tao__item_frame_bytes(const tao__item_t *it)
{
    tao_frame_hdr_t h;
    memcpy(&h, it->bytes, sizeof h);
    return h.pre_len + it->u.frame.len + h.post_len;
}

void tao__conn_queue_frame(tao_conn_t *c, const tao__item_t *it)
{
    tao_frame_hdr_t h;
    TAO__ON_LOOP(c->loop);
    memcpy(&h, it->bytes, sizeof h);
    tao__queued_sub(c, h.pre_len + it->u.frame.len + h.post_len);
    int rc = c->xport->write(c, &h, it->bytes + sizeof h, it->u.frame.len);
    if (rc < 0) {
        /* The sender was told 0: its peer must hear of the loss. */
        tao__conn_error(c, rc, "send");
        tao__conn_abort_local(c);
        return;
    }
    sent_one(c);
}

static int send_remote_frame(tao_conn_t *c, const tao_frame_hdr_t *h, const void *payload,
                             size_t len)
{
    tao__item_t *it = tao__item_new(LI_FRAME, c, sizeof *h + len);
    if (!it)
        return -ENOMEM;
    it->u.frame.type = 0;
    it->u.frame.len = (uint32_t)len;
    memcpy(it->bytes, h, sizeof *h);
    if (len)
        memcpy(it->bytes + sizeof *h, payload, len);
    tao__queued_add(c, h->pre_len + len + h->post_len);
    tao__post(c->loop, it);
    return 0;
}

/* Reading pauses at the high watermark; sends are refused only past twice
 * that plus one largest frame, which leaves room for the replies to frames
 * already received (with workers, up to a high watermark of them may be
 * waiting to be handled when reading pauses). */
static size_t send_limit(const tao__endpoint_t *ep)
{
    return 2 * ep->set.out_high + ep->codec.max_payload;
}

static int send_check(tao_conn_t *c, int32_t type, size_t len, tao_frame_hdr_t *h)
{
    tao__endpoint_t *ep = c->ep;

    if (atomic_load(&c->closing))
        return -ESHUTDOWN;
    if (!atomic_load(&c->connected))
        return -ENOTCONN;
    if (ep_queued(ep) + len > ep->set.max_queued_bytes) {
        /* The server-wide budget: refused whole, nothing half-queued. */
        atomic_store(&c->want_writable, true);
        atomic_fetch_add(&ep->send_rejected, 1);
        return -EAGAIN;
    }
    if (conn_queued(c) >= send_limit(ep)) {
        atomic_store(&c->want_writable, true);
        /* Re-check: the queue may have drained past the low watermark
         * before the flag was up, and then nobody would call on_writable. */
        if (conn_queued(c) >= send_limit(ep)) {
            atomic_fetch_add(&ep->send_rejected, 1);
            return -EAGAIN;
        }
    }
    return ep->codec.encode(&ep->codec, type, len, h);
}

int tao__conn_send_local(tao_conn_t *c, int32_t type, const void *payload, size_t len)
{
    tao_frame_hdr_t h;
    TAO__ON_LOOP(c->loop);
    int rc = send_check(c, type, len, &h);
    if (rc == 0 && (c->flags & C_CLOSING))
        rc = -ESHUTDOWN;
    if (rc == 0)
        rc = c->xport->write(c, &h, payload, len);
    if (rc == 0)
        sent_one(c);
    return rc;
}

/* From a worker or any other thread: the chunk travels to the loop in an
 * item, behind everything this thread sent to the connection before. */
static int send_remote(tao_conn_t *c, tao__chunk_t *k)
{
    if (!k)
        return -ENOMEM;
    tao__item_t *it = tao__item_new(LI_SEND, c, 0);
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
    if (tao__cur_loop == c->loop)
        return tao__conn_send_local(c, type, payload, len);
    tao_frame_hdr_t h;
    int rc = send_check(c, type, len, &h);
    if (rc < 0)
        return rc;
    if (len <= FRAME_ITEM_MAX)
        return send_remote_frame(c, &h, payload, len);
    return send_remote(c, tao__chunk_copy(&h, payload, len));
}

TAO_API int tao_conn_send_owned(tao_conn_t *c, int32_t type, void *payload, size_t len,
                                tao_payload_free_fn free_fn, void *user)
{
    tao_frame_hdr_t h;
    int rc = send_check(c, type, len, &h);
    if (rc < 0)
        return rc;
    tao__chunk_t *k = tao__chunk_owned(&h, payload, len, free_fn, user);
    if (tao__cur_loop != c->loop)
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
    return conn_queued(c);
}
