/* A connection's receive path: the receive's outcome, through the
 * transport, into the decoder, to the handler (inline) or the connection's
 * worker, and back-pressure.
 *
 * Receiving: one multishot receive into the loop's receive buffers. Bytes
 * are decoded straight out of the buffer; only the tail of a frame that has
 * not fully arrived is copied aside (c->in), and the buffer goes back at
 * once (bufring.c). Back-pressure pauses reading (the receive is
 * cancelled) while the output queue is above its high watermark, or the
 * worker is behind; bytes already received wait in c->in, so nothing is
 * lost, and are decoded first when reading resumes.
 *
 * Delivering: a frame whose type has no route (and no on_message to fall
 * back on) is skipped and counted, as Go Tao does, whichever mode. Inline,
 * tao__frame_handle runs the handler at once; with workers the frame is
 * copied into an item (so it never pins a receive buffer) and the worker
 * calls tao__frame_handle. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "engine/bufring.h"
#include "engine/client.h"
#include "engine/conn.h"
#include "engine/endpoint.h"
#include "engine/fault.h"
#include "engine/keepalive.h"
#include "engine/log.h"
#include "engine/loop.h"
#include "engine/recv.h"
#include "engine/send.h"
#include "engine/runtime.h"
#include "engine/transport.h"

void tao__recv_arm(tao_conn_t *c)
{
    TAO__ON_LOOP(c->loop);
    c->loop->be->recv(c, &c->recv_op);
    c->flags |= C_RECV_ARMED;
}

void tao__recv_cancel(tao_conn_t *c)
{
    TAO__ON_LOOP(c->loop);
    if (!(c->flags & C_RECV_ARMED) || (c->flags & C_CANCELING))
        return;
    c->loop->be->cancel(c->loop, &c->recv_op);
    c->flags |= C_CANCELING;
}

bool tao__conn_unread(const tao_conn_t *c)
{
    int n = 0;
    return c->fd >= 0 && ioctl(c->fd, FIONREAD, &n) == 0 && n > 0;
}

/* ---- delivering --------------------------------------------------------------- */

void tao__frame_handle(tao_conn_t *c, const tao_frame_t *f)
{
    tao__endpoint_t *ep = c->ep;
    int rc = tao__registry_dispatch(ep->reg, c, f, ep->set.on_message);
    if (rc < 0 && rc != -ENOENT) {
        atomic_fetch_add(&ep->unmarshal_err, 1);
        tao__conn_error(c, rc, "unmarshal");
        tao_conn_close(c);
    }
}

/* A frame the registry can deliver: a route with a handler, or one without
 * (and types with no route) when on_message is there to take it. */
static bool routed(const tao__endpoint_t *ep, int32_t type)
{
    const tao__route_t *r = tao__registry_find(ep->reg, type);
    return r && (r->handler || ep->set.on_message);
}

/* Hand a frame to the connection's worker: copied, so the receive buffer
 * goes back at once, and sent with the batch. */
static void to_worker(tao_conn_t *c, const tao_frame_t *f)
{
    tao__item_t *it = tao__item_new(WI_FRAME, c, f->len);
    if (!it) {
        tao__conn_error(c, -ENOMEM, "frame for worker");
        tao__conn_abort_local(c);
        return;
    }
    it->u.frame.type = f->type;
    it->u.frame.len = (uint32_t)f->len;
    memcpy(it->bytes, f->payload, f->len);
    tao__to_worker(c->loop, c->worker, it);
    /* The worker's replies count as queued when it sends them, before the
     * loop sees them: past the high watermark, stop reading now rather than
     * hand it more frames to answer in the meantime. */
    if (tao__queued_now(c) >= c->ep->set.out_high)
        tao__conn_pause(c);
    size_t pending = atomic_fetch_add(&c->wpending, sizeof *it + f->len) + sizeof *it + f->len;
    if (pending >= c->ep->set.out_high && !(c->flags & C_WPAUSED)) {
        /* The worker is behind: stop reading this connection until it
         * catches up, instead of queueing without bound. Ask for a resume
         * first, then look again: either the worker sees the request, or
         * we see that it already drained (both are seq_cst). */
        atomic_store(&c->wpause_req, true);
        if (atomic_load(&c->wpending) < c->ep->set.out_low) {
            atomic_store(&c->wpause_req, false);
            return;
        }
        c->flags |= C_WPAUSED;
        tao__recv_cancel(c);
    }
}

static void deliver(tao_conn_t *c, const tao_frame_t *f)
{
    tao__endpoint_t *ep = c->ep;
    STAT_ADD(c->loop, frames_in, 1);
    if (!routed(ep, f->type)) {
        STAT_ADD(c->loop, unknown, 1);
        tao__log(TAO_LOG_DEBUG, "conn %llu: no handler for message type %d",
                 (unsigned long long)c->id, (int)f->type);
    } else if (ep->workers) {
        to_worker(c, f);
    } else {
        tao__frame_handle(c, f);
    }
}

/* ---- decoding ------------------------------------------------------------------ */

/* Decode and deliver whole frames from buf; stop early when the connection
 * pauses or closes. Returns the bytes used (all of them once closing: the
 * rest is discarded). */
static size_t consume(tao_conn_t *c, const uint8_t *buf, size_t len)
{
    const tao_codec_t *codec = &c->ep->codec;
    size_t off = 0;

    while (off < len && !(c->flags & (C_PAUSED | C_WPAUSED | C_CLOSING | C_FENCING))) {
        tao_frame_t f;
        ssize_t n = codec->decode(codec, buf + off, len - off, &f);
        if (n == 0)
            break;
        if (n < 0) {
            STAT_ADD(c->loop, decode_err, 1);
            tao__conn_error(c, (int)n, n == -EMSGSIZE ? "frame too large" : "malformed frame");
            tao__conn_close_local(c, false);
            break;
        }
        off += (size_t)n;
        deliver(c, &f);
    }
    return (c->flags & (C_CLOSING | C_FENCING)) ? len : off;
}

static int stash(tao_conn_t *c, const uint8_t *buf, size_t len)
{
    size_t need = (size_t)c->in_len + len;
    if (need > UINT32_MAX)
        return -EMSGSIZE;
    if (need > c->in_cap) {
        /* Grow with what arrived, never with what a header announces. */
        size_t cap = 2 * (size_t)c->in_cap;
        if (cap < need)
            cap = need;
        if (cap < 512)
            cap = 512;
        uint8_t *p = tao__realloc(c->in, cap);
        if (!p)
            return -ENOMEM;
        c->in = p;
        c->in_cap = (uint32_t)cap;
    }
    memcpy(c->in + c->in_len, buf, len);
    c->in_len = (uint32_t)need;
    return 0;
}

/* Drop the first used bytes of c->in; free it when empty, so an idle
 * connection holds no input buffer. */
static void unstash(tao_conn_t *c, size_t used)
{
    c->in_len -= (uint32_t)used;
    if (c->in_len) {
        memmove(c->in, c->in + used, c->in_len);
        return;
    }
    free(c->in);
    c->in = NULL;
    c->in_cap = 0;
}

/* How much of buf completes the frame waiting in c->in: just its rest when
 * the decoder says how big the frame is, else all of buf. */
static size_t to_complete(const tao_conn_t *c, size_t len)
{
    const tao_codec_t *codec = &c->ep->codec;
    tao_frame_t f = {0};
    if (codec->decode(codec, c->in, c->in_len, &f) == 0 && f.len > c->in_len &&
        f.len - c->in_len < len)
        return f.len - c->in_len;
    return len;
}

/* Decode straight from the receive buffer; a frame split across buffers is
 * completed in c->in, copying no more than it needs. */
void tao__conn_input(tao_conn_t *c, const uint8_t *buf, size_t len)
{
    int rc = 0;
    while (c->in_len && len && rc == 0 &&
           !(c->flags & (C_PAUSED | C_WPAUSED | C_CLOSING | C_FENCING))) {
        size_t take = to_complete(c, len);
        if ((rc = stash(c, buf, take)) == 0) {
            buf += take;
            len -= take;
            unstash(c, consume(c, c->in, c->in_len));
        }
    }
    if (rc == 0 && len && c->in_len && !(c->flags & (C_CLOSING | C_FENCING))) {
        rc = stash(c, buf, len); /* paused behind a pending frame: keep the order */
    } else if (rc == 0 && len) {
        size_t used = consume(c, buf, len);
        if (used < len)
            rc = stash(c, buf + used, len - used);
    }
    if (rc < 0) {
        tao__conn_error(c, rc, "receive buffer");
        tao__conn_abort_local(c);
    }
    tao__ka_input(c);
}

static void ran_dry(tao__loop_t *loop, tao_conn_t *c)
{
    /* The buffers ran out: they come back as this batch is processed, so
     * re-arm after it. Nothing was lost: the data is still queued in the
     * socket. Oldest first: re-arming newest-first starved the ones that
     * ran dry earliest. */
    STAT_ADD(loop, enobufs, 1);
    if (c->flags & C_NOBUFS)
        return;
    c->flags |= C_NOBUFS;
    c->nobufs_next = NULL;
    if (loop->nobufs_tail)
        loop->nobufs_tail->nobufs_next = c;
    else
        loop->nobufs = c;
    loop->nobufs_tail = c;
}

static void received(tao__loop_t *loop, tao_conn_t *c, const tao__cqe_t *cqe)
{
    const uint8_t *data = tao__buf_take(loop, cqe);
    STAT_ADD(loop, bytes_in, cqe->res);
    c->last_rx = loop->now;
    if ((c->flags & (C_CLOSING | C_DRAIN | C_ABORT)) == (C_CLOSING | C_DRAIN)) {
        /* Stopping, and the close already began: these bytes will not be
         * answered, and a FIN would say that all was. */
        tao__conn_abort_local(c);
    } else if (!(c->flags & (C_CLOSING | C_FENCING))) { /* closing: discarded */
        loop->recv_base = data;                         /* sends may borrow it: see send.c */
        loop->recv_end = data + cqe->res;
        loop->recv_bid = cqe->bid;
        c->xport->input(c, data, (size_t)cqe->res);
        loop->recv_base = NULL;
    }
    tao__buf_put(loop, cqe->bid); /* back to the backend, unless a send still lends it */
}

void tao__recv_complete(tao__loop_t *loop, tao__op_t *op, const tao__cqe_t *cqe)
{
    tao_conn_t *c = container_of(op, tao_conn_t, recv_op);
    int res = cqe->res;

    TAO__ON_LOOP(loop);
    if (!(cqe->flags & TAO__CQ_MORE))
        c->flags &= ~(uint32_t)(C_RECV_ARMED | C_CANCELING);
    if (res > 0) {
        received(loop, c, cqe);
    } else if (res == 0) {
        c->flags |= C_EOF;
        if (!(c->flags & C_CLOSING))
            c->xport->eof(c);
        /* The peer is done; answer what it sent, flush, close. Frames
         * parked behind back-pressure are answered first (resume). */
        if (!(c->in_len && (c->flags & (C_PAUSED | C_WPAUSED))))
            tao__conn_close_local(c, false);
    } else if (res == -ENOBUFS) {
        ran_dry(loop, c);
        return;
    } else if (res != -ECANCELED) {
        c->flags |= C_EOF;
        if (c->client)
            c->client->last_err = res;
        if (!(c->flags & C_CLOSING) && res != -ECONNRESET)
            tao__conn_error(c, res, "recv");
        tao__conn_abort_local(c);
    }
    if (!(c->flags & C_RECV_ARMED))
        tao__conn_progress(c);
}

/* ---- back-pressure ------------------------------------------------------ */

/* Output passed the high watermark: stop reading until it drains. Servers
 * only: a client's incoming replies do not add to its output, and if both
 * ends stopped reading while their output was full, neither would drain. */
void tao__conn_pause(tao_conn_t *c)
{
    TAO__ON_LOOP(c->loop);
    if (c->flags & (C_PAUSED | C_CLOSING) || c->client)
        return;
    c->flags |= C_PAUSED;
    tao__recv_cancel(c);
    /* Not reading: a frame started before is not slow from now on. A pause
     * that comes from output (a reply from a worker, say) rather than from
     * decoding would otherwise leave the read clock running. */
    tao__ka_input(c);
}

/* Reading may start again: decode what waited in c->in, then re-arm. */
static void resume(tao_conn_t *c)
{
    if (c->flags & (C_PAUSED | C_WPAUSED))
        return;
    if (c->in_len && !(c->flags & (C_CLOSING | C_FENCING)))
        unstash(c, consume(c, c->in, c->in_len));
    tao__ka_input(c); /* the read timeout runs again from now */
    if ((c->flags & C_EOF) && !(c->flags & (C_PAUSED | C_WPAUSED)))
        tao__conn_close_local(c, false); /* the peer's last frames are answered */
    tao__conn_progress(c);
}

void tao__conn_drained(tao_conn_t *c)
{
    tao__endpoint_t *ep = c->ep;
    TAO__ON_LOOP(c->loop);
    if (atomic_load(&c->want_writable) && atomic_exchange(&c->want_writable, false)) {
        if (ep->set.on_writable && !(c->flags & C_CLOSING))
            ep->set.on_writable(c);
    }
    if (!(c->flags & C_PAUSED) || tao__queued_now(c) >= ep->set.out_low)
        return;
    c->flags &= ~(uint32_t)C_PAUSED;
    resume(c);
}

void tao__conn_resume_worker(tao_conn_t *c)
{
    TAO__ON_LOOP(c->loop);
    if (!(c->flags & C_WPAUSED) || atomic_load(&c->wpending) >= c->ep->set.out_low)
        return;
    atomic_store(&c->wpause_req, false);
    c->flags &= ~(uint32_t)C_WPAUSED;
    resume(c);
}
