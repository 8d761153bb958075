/* A connection's life on its loop: open, receive, decode, dispatch, and the
 * close sequence.
 *
 * Receiving: one multishot recv on the loop's buffer ring. Bytes are decoded
 * straight out of the ring buffer; only the tail of a frame that has not
 * fully arrived is copied aside (c->in), and the buffer goes back to the ring
 * at once. Back-pressure pauses reading (the recv is cancelled) while the
 * output queue is above its high watermark; bytes that were already received
 * wait in c->in, so nothing is lost.
 *
 * Closing: graceful close keeps draining input (discarding it) so a peer
 * that is still writing cannot block the flush; once the queue is written,
 * SHUT_WR sends our FIN and we wait (bounded) for the peer's, so the kernel
 * never turns unread input into an RST that would destroy the replies. The
 * memory goes only after the close completion, the last one for the socket. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"

#define LINGER_MS 2000

static void linger_fire(tao__timer_t *t, uint64_t now);

void tao__conn_error(tao_conn_t *c, int err, const char *what)
{
    tao_server_t *srv = c->loop->srv;
    tao__log(TAO_LOG_DEBUG, "conn %llu: %s: %s", (unsigned long long)c->id, what,
             tao_strerror(err));
    if (srv->cfg.on_error)
        srv->cfg.on_error(srv, c, err, what);
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

static void recv_cancel(tao_conn_t *c)
{
    if (!(c->flags & C_RECV_ARMED) || (c->flags & C_CANCELING))
        return;
    struct io_uring_sqe *sqe = tao__sqe(c->loop);
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&c->recv_op | ((uint64_t)c->recv_op.gen << 48),
                           0);
    io_uring_sqe_set_data64(sqe, 0);
    c->flags |= C_CANCELING;
}

void tao__conn_open(tao__loop_t *loop, int fd)
{
    tao_server_t *srv = loop->srv;
    tao_conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        tao__log(TAO_LOG_ERROR, "loop %u: out of memory for a connection", loop->idx);
        atomic_fetch_sub(&srv->nconns, 1);
        STAT_ADD(loop, refused, 1);
        close(fd);
        return;
    }
    c->loop = loop;
    c->fd = fd;
    c->id = atomic_fetch_add(&srv->next_id, 1);
    uint16_t gen = loop->next_gen++;
    c->recv_op = (tao__op_t){.kind = OP_RECV, .gen = gen};
    c->send_op = (tao__op_t){.kind = OP_SEND, .gen = gen};
    c->close_op = (tao__op_t){.kind = OP_CLOSE, .gen = gen};
    tao__timer_init(&c->linger, linger_fire);
    c->next = &loop->conns;
    c->prev = loop->conns.prev;
    c->prev->next = c;
    loop->conns.prev = c;
    loop->nconns++;
    STAT_ADD(loop, accepted, 1);

    if (srv->cfg.on_connect && srv->cfg.on_connect(c) < 0) {
        STAT_ADD(loop, refused, 1);
        tao_conn_close(c);
        return;
    }
    tao__conn_progress(c);
}

/* ---- input ---------------------------------------------------------------- */

static void deliver(tao_conn_t *c, const tao_frame_t *f)
{
    tao__loop_t *loop = c->loop;
    tao_server_t *srv = loop->srv;

    STAT_ADD(loop, frames_in, 1);
    int rc = tao__registry_dispatch(srv->reg, c, f, srv->cfg.on_message);
    if (rc == -ENOENT) {
        /* As in Go Tao: skip it, keep the connection. */
        STAT_ADD(loop, unknown, 1);
        tao__log(TAO_LOG_DEBUG, "conn %llu: no handler for message type %d",
                 (unsigned long long)c->id, (int)f->type);
    } else if (rc < 0) {
        STAT_ADD(loop, unmarshal_err, 1);
        tao__conn_error(c, rc, "unmarshal");
        tao_conn_close(c);
    }
}

/* Decode and dispatch whole frames from buf; stop early when the connection
 * pauses or closes. Returns the bytes used (all of them once closing: the
 * rest is discarded). */
static size_t consume(tao_conn_t *c, const uint8_t *buf, size_t len)
{
    const tao_codec_t *codec = &c->loop->srv->codec;
    size_t off = 0;

    while (off < len && !(c->flags & (C_PAUSED | C_CLOSING))) {
        tao_frame_t f;
        ssize_t n = codec->decode(codec, buf + off, len - off, &f);
        if (n == 0)
            break;
        if (n < 0) {
            STAT_ADD(c->loop, decode_err, 1);
            tao__conn_error(c, (int)n, n == -EMSGSIZE ? "frame too large" : "malformed frame");
            tao_conn_close(c);
            break;
        }
        off += (size_t)n;
        deliver(c, &f);
    }
    return (c->flags & C_CLOSING) ? len : off;
}

static int stash(tao_conn_t *c, const uint8_t *buf, size_t len)
{
    size_t need = (size_t)c->in_len + len;
    if (need > UINT32_MAX)
        return -EMSGSIZE;
    if (need > c->in_cap) {
        size_t cap = c->in_cap ? c->in_cap : 512;
        while (cap < need)
            cap *= 2;
        uint8_t *p = realloc(c->in, cap);
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

static void input(tao_conn_t *c, const uint8_t *buf, size_t len)
{
    int rc = 0;
    if (c->in_len == 0) {
        size_t used = consume(c, buf, len);
        if (used < len)
            rc = stash(c, buf + used, len - used);
    } else if ((rc = stash(c, buf, len)) == 0) {
        unstash(c, consume(c, c->in, c->in_len));
    }
    if (rc < 0) {
        tao__conn_error(c, rc, "receive buffer");
        tao_conn_abort(c);
    }
}

void tao__recv_complete(tao__loop_t *loop, tao__op_t *op, struct io_uring_cqe *cqe)
{
    tao_conn_t *c = container_of(op, tao_conn_t, recv_op);
    int res = cqe->res;

    if (!(cqe->flags & IORING_CQE_F_MORE))
        c->flags &= ~(uint32_t)(C_RECV_ARMED | C_CANCELING);
    if (res > 0) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        STAT_ADD(loop, bytes_in, res);
        if (!(c->flags & C_CLOSING))
            input(c, loop->bufs + (size_t)bid * loop->buf_size, (size_t)res);
        tao__buf_recycle(loop, bid);
    } else if (res == 0) {
        c->flags |= C_EOF;
        tao_conn_close(c); /* the peer is done; flush what we owe it */
    } else if (res == -ENOBUFS) {
        /* The ring ran dry: buffers come back as this batch is processed,
         * so re-arm after it. Nothing was lost: the data is still queued in
         * the socket. */
        STAT_ADD(loop, enobufs, 1);
        if (!(c->flags & C_NOBUFS)) {
            c->flags |= C_NOBUFS;
            c->dirty_next = loop->nobufs;
            loop->nobufs = c;
        }
        return;
    } else if (res != -ECANCELED) {
        c->flags |= C_EOF;
        if (!(c->flags & C_CLOSING) && res != -ECONNRESET)
            tao__conn_error(c, res, "recv");
        tao_conn_abort(c);
    }
    if (!(c->flags & C_RECV_ARMED))
        tao__conn_progress(c);
}

/* ---- back-pressure ------------------------------------------------------ */

void tao__conn_pause(tao_conn_t *c)
{
    if (c->flags & (C_PAUSED | C_CLOSING))
        return;
    c->flags |= C_PAUSED;
    recv_cancel(c);
}

void tao__conn_drained(tao_conn_t *c)
{
    tao_server_t *srv = c->loop->srv;
    if (c->flags & C_WANT_WRITABLE) {
        c->flags &= ~(uint32_t)C_WANT_WRITABLE;
        if (srv->cfg.on_writable && !(c->flags & C_CLOSING))
            srv->cfg.on_writable(c);
    }
    if (!(c->flags & C_PAUSED) || c->out.bytes >= srv->cfg.out_low)
        return;
    c->flags &= ~(uint32_t)C_PAUSED;
    if (c->in_len && !(c->flags & C_CLOSING))
        unstash(c, consume(c, c->in, c->in_len));
    tao__conn_progress(c);
}

/* ---- closing -------------------------------------------------------------- */

static void linger_fire(tao__timer_t *t, uint64_t now)
{
    tao_conn_t *c = container_of(t, tao_conn_t, linger);
    c->flags |= C_LINGER_DONE;
    recv_cancel(c);
    tao__conn_progress(c);
}

static void submit_close(tao_conn_t *c)
{
    if (c->flags & C_ABORT) {
        /* SO_LINGER 0: close sends RST and drops unsent data. */
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    struct io_uring_sqe *sqe = tao__sqe(c->loop);
    io_uring_prep_close(sqe, c->fd);
    tao__sqe_op(sqe, &c->close_op);
    c->flags |= C_CLOSE_SUBMITTED;
}

static void progress_abort(tao_conn_t *c)
{
    recv_cancel(c);
    if (c->flags & C_SEND_INFLIGHT) {
        struct io_uring_sqe *sqe = tao__sqe(c->loop);
        io_uring_prep_cancel64(
            sqe, (uint64_t)(uintptr_t)&c->send_op | ((uint64_t)c->send_op.gen << 48), 0);
        io_uring_sqe_set_data64(sqe, 0);
        return;
    }
    if (!(c->flags & C_RECV_ARMED))
        submit_close(c);
}

static void progress_graceful(tao_conn_t *c)
{
    bool peer_done = c->flags & (C_EOF | C_LINGER_DONE);

    /* Keep reading (and discarding) until the peer's FIN, so a peer still
     * writing cannot stall our flush nor trigger an RST. */
    if (!peer_done && !(c->flags & (C_RECV_ARMED | C_NOBUFS)))
        tao__conn_recv_arm(c);
    if (c->out.bytes || (c->flags & C_SEND_INFLIGHT))
        return;
    if (!(c->flags & C_SHUT)) {
        struct io_uring_sqe *sqe = tao__sqe(c->loop);
        io_uring_prep_shutdown(sqe, c->fd, SHUT_WR);
        io_uring_sqe_set_data64(sqe, 0);
        c->flags |= C_SHUT;
        if (!peer_done)
            tao__wheel_add(&c->loop->wheel, &c->linger, c->loop->now + LINGER_MS, 0);
    }
    if (!peer_done || (c->flags & C_RECV_ARMED))
        return;
    submit_close(c);
}

/* Move the connection one step along its state machine; called after every
 * event that may unblock a step. */
void tao__conn_progress(tao_conn_t *c)
{
    if (c->flags & C_CLOSE_SUBMITTED)
        return;
    if (c->flags & C_ABORT)
        progress_abort(c);
    else if (c->flags & C_CLOSING)
        progress_graceful(c);
    else if (!(c->flags & (C_RECV_ARMED | C_PAUSED | C_NOBUFS | C_EOF)))
        tao__conn_recv_arm(c);
}

TAO_API void tao_conn_close(tao_conn_t *c)
{
    if (c->flags & C_CLOSING)
        return;
    c->flags |= C_CLOSING;
    c->flags &= ~(uint32_t)C_PAUSED;
    tao__conn_mark_dirty(c);
    tao__conn_progress(c);
}

TAO_API void tao_conn_abort(tao_conn_t *c)
{
    if (c->flags & C_ABORT)
        return;
    c->flags |= C_CLOSING | C_ABORT;
    if (!(c->flags & C_SEND_INFLIGHT)) {
        STAT_ADD(c->loop, queued, -(int64_t)c->out.bytes);
        tao__outq_clear(&c->out);
    }
    tao__conn_progress(c);
}

void tao__conn_free(tao_conn_t *c)
{
    free(c->in);
    free(c);
}

void tao__close_complete(tao__loop_t *loop, tao__op_t *op, struct io_uring_cqe *cqe)
{
    tao_conn_t *c = container_of(op, tao_conn_t, close_op);
    tao_server_t *srv = loop->srv;

    tao__wheel_cancel(&loop->wheel, &c->linger);
    STAT_ADD(loop, queued, -(int64_t)c->out.bytes);
    tao__outq_clear(&c->out);
    c->fd = -1;
    c->next->prev = c->prev;
    c->prev->next = c->next;
    loop->nconns--;
    atomic_fetch_sub(&srv->nconns, 1);
    STAT_ADD(loop, closed, 1);
    if (srv->cfg.on_close)
        srv->cfg.on_close(c);
    /* Still on a flush list: the loop frees it when it gets there. */
    if (c->flags & (C_DIRTY | C_NOBUFS))
        c->flags |= C_DEAD;
    else
        tao__conn_free(c);
}

/* ---- accessors ---------------------------------------------------------- */

TAO_API uint64_t tao_conn_id(const tao_conn_t *c)
{
    return c->id;
}

TAO_API tao_server_t *tao_conn_server(const tao_conn_t *c)
{
    return c->loop->srv;
}

TAO_API void *tao_conn_data(const tao_conn_t *c)
{
    return c->data;
}

TAO_API void tao_conn_set_data(tao_conn_t *c, void *data)
{
    c->data = data;
}

TAO_API int tao_conn_peer(const tao_conn_t *c, struct sockaddr_storage *addr, socklen_t *len)
{
    *len = sizeof *addr;
    if (c->fd < 0)
        return -ENOTCONN;
    return getpeername(c->fd, (struct sockaddr *)addr, len) < 0 ? -errno : 0;
}

TAO_API int tao_conn_local(const tao_conn_t *c, struct sockaddr_storage *addr, socklen_t *len)
{
    *len = sizeof *addr;
    if (c->fd < 0)
        return -ENOTCONN;
    return getsockname(c->fd, (struct sockaddr *)addr, len) < 0 ? -errno : 0;
}
