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
 * memory goes only after the close completion, the last one for the socket,
 * and the last reference (items in flight to or from a worker hold one).
 *
 * With workers, frames are copied into items (so they never pin the buffer
 * ring) and handed to the connection's worker at the end of the batch; a
 * close asked for by the loop (peer FIN, stop, an oversized frame) first
 * goes through the worker as a fence, so every frame received before it is
 * handled and its replies are written before the FIN. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"

#define LINGER_MS 2000

static void linger_fire(tao__timer_t *t, uint64_t now);
static void ka_fire(tao__timer_t *t, uint64_t now);
static void ka_arm(tao_conn_t *c);

void tao__conn_error(tao_conn_t *c, int err, const char *what)
{
    tao__log(TAO_LOG_DEBUG, "conn %llu: %s: %s", (unsigned long long)c->id, what,
             tao_strerror(err));
    if (c->ep->on_error)
        c->ep->on_error(c->ep, c, err, what);
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

/* A connection object, not yet on its loop: any thread may make one (a
 * client connect does), the loop attaches it. extra bytes follow it. */
tao_conn_t *tao__conn_alloc(tao__loop_t *loop, tao__endpoint_t *ep, uint64_t id, size_t extra)
{
    tao_conn_t *c = calloc(1, sizeof *c + extra);
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
    tao__timer_init(&c->linger, linger_fire);
    tao__timer_init(&c->ka, ka_fire);
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
    c->last_rx = c->last_tx = loop->now;
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
    c->last_rx = c->last_tx = c->loop->now;
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
    ka_arm(c);
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
         * catches up, instead of queueing without bound. */
        c->flags |= C_WPAUSED;
        recv_cancel(c);
    }
}

static void deliver(tao_conn_t *c, const tao_frame_t *f)
{
    tao__loop_t *loop = c->loop;
    tao__endpoint_t *ep = c->ep;

    STAT_ADD(loop, frames_in, 1);
    if (!tao__registry_find(ep->reg, f->type)) {
        /* As in Go Tao: skip it, keep the connection. */
        STAT_ADD(loop, unknown, 1);
        tao__log(TAO_LOG_DEBUG, "conn %llu: no handler for message type %d",
                 (unsigned long long)c->id, (int)f->type);
        return;
    }
    if (ep->workers) {
        to_worker(c, f);
        return;
    }
    int rc = tao__registry_dispatch(ep->reg, c, f, ep->on_message);
    if (rc < 0 && rc != -ENOENT) {
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

void tao__conn_input(tao_conn_t *c, const uint8_t *buf, size_t len)
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
        tao__conn_abort_local(c);
    }
    if (!c->in_len) {
        c->partial_since = 0;
    } else if (!c->partial_since) {
        /* A frame started: its read timeout may be the nearest deadline. */
        c->partial_since = c->loop->now;
        if (c->ep->read_ms && !(c->flags & C_CLOSING) &&
            (!tao__timer_armed(&c->ka) || c->ka.due > c->partial_since + c->ep->read_ms))
            ka_arm(c);
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
        c->last_rx = loop->now;
        const uint8_t *data = loop->bufs + (size_t)bid * loop->buf_size;
        if (c->flags & (C_CLOSING | C_FENCING))
            ; /* closing: the rest is discarded */
        else if (c->tls)
            tao__tls_input(c, data, (size_t)res);
        else
            tao__conn_input(c, data, (size_t)res);
        tao__buf_recycle(loop, bid);
    } else if (res == 0) {
        c->flags |= C_EOF;
        tao__conn_close_local(c, false); /* the peer is done; flush what we owe it */
    } else if (res == -ENOBUFS) {
        /* The ring ran dry: buffers come back as this batch is processed,
         * so re-arm after it. Nothing was lost: the data is still queued in
         * the socket. */
        STAT_ADD(loop, enobufs, 1);
        if (!(c->flags & C_NOBUFS)) {
            c->flags |= C_NOBUFS;
            c->nobufs_next = loop->nobufs;
            loop->nobufs = c;
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
    recv_cancel(c);
}

/* Reading may start again: decode what waited in c->in, then re-arm. */
static void resume(tao_conn_t *c)
{
    if (c->flags & (C_PAUSED | C_WPAUSED))
        return;
    if (c->in_len && !(c->flags & (C_CLOSING | C_FENCING)))
        unstash(c, consume(c, c->in, c->in_len));
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
    c->flags &= ~(uint32_t)C_WPAUSED;
    resume(c);
}

/* ---- idle, read and heartbeat timeouts -------------------------------------
 * One embedded timer per connection, armed for the nearest of the three
 * deadlines and re-checked when it fires: traffic only updates timestamps,
 * never the wheel. */

static uint64_t ka_next(const tao_conn_t *c)
{
    const tao__endpoint_t *ep = c->ep;
    uint64_t next = UINT64_MAX;
    if (ep->idle_ms)
        next = c->last_rx + ep->idle_ms;
    if (ep->read_ms && c->partial_since && c->partial_since + ep->read_ms < next)
        next = c->partial_since + ep->read_ms;
    if (ep->heartbeat_ms && c->last_tx + ep->heartbeat_ms < next)
        next = c->last_tx + ep->heartbeat_ms;
    return next;
}

static void ka_arm(tao_conn_t *c)
{
    uint64_t next = ka_next(c);
    if (next != UINT64_MAX && !(c->flags & C_CLOSING))
        tao__wheel_add(&c->loop->wheel, &c->ka, next, 0);
}

static void timed_out(tao_conn_t *c, const char *what)
{
    STAT_ADD(c->loop, timeouts, 1);
    tao__conn_error(c, -ETIMEDOUT, what);
    tao__conn_close_local(c, false);
}

static void ka_fire(tao__timer_t *t, uint64_t now)
{
    tao_conn_t *c = container_of(t, tao_conn_t, ka);
    const tao__endpoint_t *ep = c->ep;

    if (c->flags & (C_CLOSING | C_FENCING))
        return;
    if (ep->idle_ms && now >= c->last_rx + ep->idle_ms) {
        timed_out(c, "idle timeout");
        return;
    }
    if (ep->read_ms && c->partial_since && now >= c->partial_since + ep->read_ms) {
        timed_out(c, "read timeout: a frame started and did not finish");
        return;
    }
    if (ep->heartbeat_ms && now >= c->last_tx + ep->heartbeat_ms) {
        /* Go Tao's heartbeat: type 0, an 8-byte LE int64 timestamp in ns. */
        struct timespec ts;
        uint8_t hb[TAO_HEARTBEAT_LEN];
        clock_gettime(CLOCK_REALTIME, &ts);
        tao_heartbeat_encode((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, hb);
        tao__conn_send_local(c, TAO_MSG_HEARTBEAT, hb, sizeof hb);
        c->last_tx = now;
    }
    ka_arm(c);
}

void tao__conn_touch_tx(tao_conn_t *c)
{
    c->last_tx = c->loop->now;
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
        io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&c->sending->op, 0);
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
        /* A plain syscall, not an io_uring op: the kernel runs a shutdown
         * op on an io-wq thread that looks the descriptor up late, so one
         * still pending when the close below completes could hit another
         * socket that reused the number. */
        shutdown(c->fd, SHUT_WR);
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
    if (c->flags & (C_CLOSE_SUBMITTED | C_OFFLINE))
        return;
    if (c->flags & C_ABORT)
        progress_abort(c);
    else if (c->flags & C_CLOSING)
        progress_graceful(c);
    else if (!(c->flags & (C_RECV_ARMED | C_PAUSED | C_WPAUSED | C_NOBUFS | C_EOF | C_FENCING)))
        tao__conn_recv_arm(c);
}

/* Graceful close on the loop thread. With workers, a close that does not
 * come from the connection's worker first fences through it. */
void tao__conn_close_local(tao_conn_t *c, bool from_worker)
{
    if (c->flags & C_OFFLINE) {
        tao__client_close_offline(c);
        return;
    }
    if (c->flags & C_CLOSING)
        return;
    if (c->ep->workers && !from_worker) {
        if (c->flags & C_FENCING)
            return;
        tao__item_t *it = tao__item_new(IT_FENCE, c, 0);
        if (it) {
            c->flags |= C_FENCING;
            recv_cancel(c);
            tao__queue_push(&c->loop->to_worker[c->worker], it);
            return;
        }
    }
    c->flags |= C_CLOSING;
    c->flags &= ~(uint32_t)(C_PAUSED | C_WPAUSED | C_FENCING);
    atomic_store(&c->closing, true);
    tao__wheel_cancel(&c->loop->wheel, &c->ka);
    if (c->tls)
        tao__tls_shutdown(c); /* close_notify, behind the queued replies */
    tao__conn_mark_dirty(c);
    tao__conn_progress(c);
}

void tao__conn_abort_local(tao_conn_t *c)
{
    if (c->flags & C_OFFLINE) {
        tao__client_close_offline(c);
        return;
    }
    if (c->flags & C_ABORT)
        return;
    c->flags |= C_CLOSING | C_ABORT;
    atomic_store(&c->closing, true);
    tao__wheel_cancel(&c->loop->wheel, &c->ka);
    if (!(c->flags & C_SEND_INFLIGHT)) {
        STAT_ADD(c->loop, queued, -(int64_t)c->out.bytes);
        atomic_fetch_sub(&c->queued, c->out.bytes);
        tao__outq_clear(&c->out);
    }
    tao__conn_progress(c);
}

static void post_close(tao_conn_t *c, uint8_t kind)
{
    tao__worker_t *w = tao__tls_worker;
    tao__item_t *it = tao__item_new(kind, c, 0);
    if (!it) {
        tao__log(TAO_LOG_ERROR, "conn %llu: out of memory to close it", (unsigned long long)c->id);
        return;
    }
    it->from_worker = w && w->rt == c->loop->rt && w->idx == c->worker;
    tao__post(c->loop, it);
}

TAO_API void tao_conn_close(tao_conn_t *c)
{
    if (c->client)
        atomic_store(&c->client->user_closed, true);
    if (tao__tls_loop == c->loop) {
        tao__conn_close_local(c, true);
        return;
    }
    /* Sends after close fail at once, whichever thread asked. */
    if (!atomic_exchange(&c->closing, true) || tao__tls_worker)
        post_close(c, IT_CLOSE);
}

TAO_API void tao_conn_abort(tao_conn_t *c)
{
    if (c->client)
        atomic_store(&c->client->user_closed, true);
    if (tao__tls_loop == c->loop) {
        tao__conn_abort_local(c);
        return;
    }
    atomic_store(&c->closing, true);
    post_close(c, IT_ABORT);
}

void tao__conn_free(tao_conn_t *c)
{
    free(c->in);
    free(c);
}

/* Drop the loop's reference, unless the connection is still on one of the
 * loop's lists: then the loop drops it when it gets there. */
static void release(tao_conn_t *c)
{
    if (c->flags & (C_DIRTY | C_NOBUFS))
        c->flags |= C_DEAD;
    else
        tao__conn_unref(c);
}

/* The connection is finished for good: off its loop, on_close, and the
 * loop's reference goes. */
void tao__conn_finish(tao_conn_t *c)
{
    tao__loop_t *loop = c->loop;
    tao__endpoint_t *ep = c->ep;

    atomic_store(&c->closing, true);
    c->flags |= C_CLOSE_SUBMITTED; /* nothing more happens on it */
    c->next->prev = c->prev;
    c->prev->next = c->next;
    loop->nconns--;
    STAT_ADD(loop, closed, 1);
    tao__ep_remove(ep, c);
    tao__item_t *it = ep->workers ? tao__item_new(IT_CLOSED, c, 0) : NULL;
    if (it) {
        /* on_close runs on the worker, after every handler of c. */
        tao__queue_push(&loop->to_worker[c->worker], it);
    } else {
        if (ep->on_close)
            ep->on_close(c);
        tao__ep_done(ep);
    }
    release(c);
}

void tao__close_complete(tao__loop_t *loop, tao__op_t *op, struct io_uring_cqe *cqe)
{
    tao_conn_t *c = container_of(op, tao_conn_t, close_op);

    tao__wheel_cancel(&loop->wheel, &c->linger);
    tao__wheel_cancel(&loop->wheel, &c->ka);
    tao__conn_timers_cancel(c);
    tao__tls_end(c);
    STAT_ADD(loop, queued, -(int64_t)c->out.bytes);
    atomic_fetch_sub(&c->queued, c->out.bytes);
    tao__outq_clear(&c->out);
    c->fd = -1;
    if (c->client && tao__client_closed(c))
        return; /* a reconnect follows */
    tao__conn_finish(c);
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
