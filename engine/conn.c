/* A connection's life on its loop: open, receive, decode, dispatch,
 * back-pressure (closing is in close.c, timeouts in keepalive.c).
 *
 * Receiving: one multishot recv on the loop's buffer ring. Bytes are decoded
 * straight out of the ring buffer; only the tail of a frame that has not
 * fully arrived is copied aside (c->in), and the buffer goes back to the ring
 * at once. Back-pressure pauses reading (the recv is cancelled) while the
 * output queue is above its high watermark; bytes that were already received
 * wait in c->in, so nothing is lost.
 *
 * With workers, frames are copied into items (so they never pin the buffer
 * ring) and handed to the connection's worker at the end of the batch. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/fault.h"

void tao__conn_error(tao_conn_t *c, int err, const char *what)
{
    tao__log(TAO_LOG_DEBUG, "conn %llu: %s: %s", (unsigned long long)c->id, what,
             tao_strerror(err));
    if (c->ep->on_error)
        c->ep->on_error(c->ep, c, err, what);
}

/* The peer sent bytes that wait in the socket, not yet received. */
bool tao__conn_unread(const tao_conn_t *c)
{
    int n = 0;
    return c->fd >= 0 && ioctl(c->fd, FIONREAD, &n) == 0 && n > 0;
}

void tao__conn_ref(tao_conn_t *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void tao__conn_unref(tao_conn_t *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        tao__conn_free(c);
}

void tao__conn_mark_dirty(tao_conn_t *c)
{
    if (c->flags & C_DIRTY)
        return;
    c->flags |= C_DIRTY;
    c->dirty_next = c->loop->dirty;
    c->loop->dirty = c;
}

void tao__conn_recv_arm(tao_conn_t *c)
{
    struct io_uring_sqe *sqe = tao__sqe(c->loop);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0;
    tao__sqe_op(sqe, &c->recv_op);
    c->flags |= C_RECV_ARMED;
}

void tao__conn_recv_cancel(tao_conn_t *c)
{
    if (!(c->flags & C_RECV_ARMED) || (c->flags & C_CANCELING))
        return;
    struct io_uring_sqe *sqe = tao__sqe(c->loop);
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&c->recv_op | ((uint64_t)c->recv_op.gen << 48),
                           0);
    io_uring_sqe_set_data64(sqe, 0);
    c->flags |= C_CANCELING;
}

/* A connection object, not yet on its loop: any thread may make one (a
 * client connect does), the loop attaches it. extra bytes follow it. */
tao_conn_t *tao__conn_alloc(tao__loop_t *loop, tao__endpoint_t *ep, uint64_t id, size_t extra)
{
    tao_conn_t *c = tao__calloc(1, sizeof *c + extra);
    if (!c)
        return NULL;
    c->loop = loop;
    c->ep = ep;
    c->fd = -1;
    c->id = id;
    atomic_init(&c->refs, 1); /* the loop's, dropped after the close */
    atomic_init(&c->connected, true);
    c->recv_op.kind = OP_RECV;
    c->close_op.kind = OP_CLOSE;
    tao__timer_init(&c->linger, tao__linger_fire);
    tao__timer_init(&c->ka, tao__ka_fire);
    if (ep->workers)
        c->worker = (uint16_t)(atomic_fetch_add(&loop->rt->next_worker, 1) % loop->rt->nworkers);
    return c;
}

/* New generations for the ops of a new socket: completions of the old one
 * become stale. */
static void new_gen(tao_conn_t *c)
{
    uint16_t gen = c->loop->next_gen++;
    c->recv_op.gen = c->close_op.gen = gen;
}

void tao__conn_attach(tao_conn_t *c)
{
    tao__loop_t *loop = c->loop;
    new_gen(c);
    c->last_rx = c->last_tx = c->last_out = loop->now;
    c->next = &loop->conns;
    c->prev = loop->conns.prev;
    c->prev->next = c;
    loop->conns.prev = c;
    loop->nconns++;
}

tao_conn_t *tao__conn_new(tao__loop_t *loop, tao__endpoint_t *ep, int fd, uint64_t id)
{
    tao_conn_t *c = tao__conn_alloc(loop, ep, id, 0);
    if (c) {
        c->fd = fd;
        tao__conn_attach(c);
    }
    return c;
}

/* A client about to use a new socket: forget the old one's state. */
void tao__conn_reset(tao_conn_t *c)
{
    new_gen(c);
    c->flags = (c->flags & (C_DIRTY | C_NOBUFS | C_DEAD)) | C_OFFLINE;
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    c->partial_since = 0;
    atomic_store(&c->connected, false);
    atomic_store(&c->closing, false);
    c->last_rx = c->last_tx = c->last_out = c->loop->now;
}

/* A new socket: with TLS the handshake comes first (tao__conn_ready follows
 * it), else the connection is ready at once. */
void tao__conn_start(tao_conn_t *c)
{
    if (!c->ep->tls) {
        tao__conn_ready(c);
        return;
    }
    int rc = tao__tls_begin(c);
    if (rc < 0) {
        tao__conn_error(c, rc, "TLS setup");
        tao__conn_abort_local(c);
        return;
    }
    tao__conn_progress(c);
}

/* on_connect, then reading. on_connect runs on the loop thread. */
void tao__conn_ready(tao_conn_t *c)
{
    tao__endpoint_t *ep = c->ep;
    tao__ka_arm(c);
    atomic_store(&c->connected, true); /* a client: sends work from now on */
    if (ep->on_connect && ep->on_connect(c) < 0) {
        STAT_ADD(c->loop, refused, 1);
        if (c->client)
            atomic_store(&c->client->user_closed, true);
        c->flags |= C_EOF; /* nothing to read from a refused connection */
        tao__conn_close_local(c, true);
        return;
    }
    tao__conn_progress(c);
}

/* ---- input ---------------------------------------------------------------- */

/* Hand a frame to the connection's worker: copied, so the ring buffer goes
 * back at once, and batched until the end of this completion batch. */
static void to_worker(tao_conn_t *c, const tao_frame_t *f)
{
    tao__item_t *it = tao__item_new(IT_FRAME, c, f->len);
    if (!it) {
        tao__conn_error(c, -ENOMEM, "frame for worker");
        tao__conn_abort_local(c);
        return;
    }
    it->u.frame.type = f->type;
    it->u.frame.len = (uint32_t)f->len;
    memcpy(it->bytes, f->payload, f->len);
    tao__queue_push(&c->loop->to_worker[c->worker], it);
    size_t pending = atomic_fetch_add(&c->wpending, sizeof *it + f->len) + sizeof *it + f->len;
    if (pending >= c->ep->out_high && !(c->flags & C_WPAUSED)) {
        /* The worker is behind: stop reading this connection until it
         * catches up, instead of queueing without bound. Ask for a resume
         * first, then look again: either the worker sees the request, or
         * we see that it already drained (both are seq_cst). */
        atomic_store(&c->wpause_req, true);
        if (atomic_load(&c->wpending) < c->ep->out_low) {
            atomic_store(&c->wpause_req, false);
            return;
        }
        c->flags |= C_WPAUSED;
        tao__conn_recv_cancel(c);
    }
}

static void deliver(tao_conn_t *c, const tao_frame_t *f)
{
    tao__loop_t *loop = c->loop;
    tao__endpoint_t *ep = c->ep;

    STAT_ADD(loop, frames_in, 1);
    /* Inline, dispatch looks the route up itself; only the hop to a worker
     * needs to know beforehand that there is one. */
    int rc = ep->workers ? (tao__registry_find(ep->reg, f->type) ? 0 : -ENOENT)
                         : tao__registry_dispatch(ep->reg, c, f, ep->on_message);
    if (rc == -ENOENT) {
        /* As in Go Tao: skip it, keep the connection. */
        STAT_ADD(loop, unknown, 1);
        tao__log(TAO_LOG_DEBUG, "conn %llu: no handler for message type %d",
                 (unsigned long long)c->id, (int)f->type);
    } else if (ep->workers) {
        to_worker(c, f);
    } else if (rc < 0) {
        atomic_fetch_add(&ep->unmarshal_err, 1);
        tao__conn_error(c, rc, "unmarshal");
        tao__conn_close_local(c, true);
    }
}

/* Decode and dispatch whole frames from buf; stop early when the connection
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

void tao__recv_complete(tao__loop_t *loop, tao__op_t *op, struct io_uring_cqe *cqe)
{
    tao_conn_t *c = container_of(op, tao_conn_t, recv_op);
    int res = cqe->res;

    if (!(cqe->flags & IORING_CQE_F_MORE))
        c->flags &= ~(uint32_t)(C_RECV_ARMED | C_CANCELING);
    if (res > 0) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        const uint8_t *data = tao__buf_take(loop, bid);
        STAT_ADD(loop, bytes_in, res);
        c->last_rx = loop->now;
        if ((c->flags & (C_CLOSING | C_DRAIN | C_ABORT)) == (C_CLOSING | C_DRAIN)) {
            /* Stopping, and the close already began: these bytes will not
             * be answered, and a FIN would say that all was. */
            tao__conn_abort_local(c);
        } else if (c->flags & (C_CLOSING | C_FENCING)) {
            ; /* closing: the rest is discarded */
        } else if (c->tls) {
            tao__tls_input(c, data, (size_t)res);
        } else {
            loop->recv_base = data; /* sends may borrow it: see outq.c */
            loop->recv_bid = (uint16_t)bid;
            tao__conn_input(c, data, (size_t)res);
            loop->recv_base = NULL;
        }
        tao__buf_put(loop, bid); /* back to the ring, unless a send still lends it */
    } else if (res == 0) {
        c->flags |= C_EOF;
        if (c->tls && !tao__tls_ready(c) && !(c->flags & C_CLOSING))
            tao__conn_error(c, -ECONNRESET, "TLS handshake: the peer closed the connection");
        /* The peer is done; answer what it sent, flush, close. Frames
         * parked behind back-pressure are answered first (resume). */
        if (!(c->in_len && (c->flags & (C_PAUSED | C_WPAUSED))))
            tao__conn_close_local(c, false);
    } else if (res == -ENOBUFS) {
        /* The ring ran dry: buffers come back as this batch is processed,
         * so re-arm after it. Nothing was lost: the data is still queued in
         * the socket. */
        STAT_ADD(loop, enobufs, 1);
        if (!(c->flags & C_NOBUFS)) {
            c->flags |= C_NOBUFS;
            /* Oldest first: re-arming newest-first starved the ones that
             * ran dry earliest. */
            c->nobufs_next = NULL;
            if (loop->nobufs_tail)
                loop->nobufs_tail->nobufs_next = c;
            else
                loop->nobufs = c;
            loop->nobufs_tail = c;
        }
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
    if (c->flags & (C_PAUSED | C_CLOSING) || c->client)
        return;
    c->flags |= C_PAUSED;
    tao__conn_recv_cancel(c);
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
    if (atomic_load(&c->want_writable) && atomic_exchange(&c->want_writable, false)) {
        if (ep->on_writable && !(c->flags & C_CLOSING))
            ep->on_writable(c);
    }
    if (!(c->flags & C_PAUSED) || atomic_load(&c->queued) >= ep->out_low)
        return;
    c->flags &= ~(uint32_t)C_PAUSED;
    resume(c);
}

void tao__conn_resume_worker(tao_conn_t *c)
{
    if (!(c->flags & C_WPAUSED) || atomic_load(&c->wpending) >= c->ep->out_low)
        return;
    atomic_store(&c->wpause_req, false);
    c->flags &= ~(uint32_t)C_WPAUSED;
    resume(c);
}

/* ---- accessors ---------------------------------------------------------- */

TAO_API uint64_t tao_conn_id(const tao_conn_t *c)
{
    return c->id;
}

TAO_API tao_server_t *tao_conn_server(const tao_conn_t *c)
{
    return c->ep->srv;
}

TAO_API tao_client_t *tao_conn_client(const tao_conn_t *c)
{
    return c->client ? c->client->cl : NULL;
}

TAO_API void *tao_conn_data(const tao_conn_t *c)
{
    return c->data;
}

TAO_API void tao_conn_set_data(tao_conn_t *c, void *data)
{
    c->data = data;
}

/* Recorded once, on the loop, before any callback: readable from any thread
 * for the connection's whole life, on_close included. */
void tao__conn_set_peer(tao_conn_t *c, const struct sockaddr *sa, socklen_t len)
{
    if (len > sizeof c->peer)
        len = sizeof c->peer;
    memcpy(&c->peer, sa, len);
    c->peer_len = len;
}

TAO_API int tao_conn_peer(const tao_conn_t *c, struct sockaddr_storage *addr, socklen_t *len)
{
    if (!c->peer_len)
        return -ENOTCONN;
    memcpy(addr, &c->peer, c->peer_len);
    *len = c->peer_len;
    return 0;
}

TAO_API int tao_conn_local(const tao_conn_t *c, struct sockaddr_storage *addr, socklen_t *len)
{
    *len = sizeof *addr;
    if (atomic_load(&c->closing))
        return -ENOTCONN;
    return getsockname(c->fd, (struct sockaddr *)addr, len) < 0 ? -errno : 0;
}
