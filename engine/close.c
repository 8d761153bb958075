/* Closing a connection, gracefully or not, from any thread.
 *
 * Graceful close keeps draining input (discarding it) so a peer that is
 * still writing cannot stall the flush; once the queue is written, SHUT_WR
 * sends our FIN and we wait (bounded) for the peer's, so the kernel never
 * turns unread input into an RST that would destroy the replies. Every
 * graceful close has a deadline (close_timeout_ms, on the linger timer): a
 * peer that has not taken the queued output by then is aborted, so no
 * connection outlives its close for long whatever the peer does. Abort
 * cancels what is in flight and closes with SO_LINGER 0 (RST). The memory
 * goes only after the close completion, the last one for the socket, and
 * the last reference (items in flight to or from a worker hold one).
 *
 * With workers, a close the loop starts (peer FIN, stop, an oversized
 * frame, a timeout) first goes through the connection's worker as a fence,
 * so every frame received before it is handled and its replies are written
 * before the FIN. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/engine.h"

#define LINGER_MS 2000

void tao__linger_fire(tao__timer_t *t, uint64_t now)
{
    tao_conn_t *c = container_of(t, tao_conn_t, linger);
    if (!(c->flags & C_SHUT)) {
        /* The close deadline, with output still unsent: the peer is not
         * reading. An RST tells it that it missed replies. */
        STAT_ADD(c->loop, timeouts, 1);
        tao__conn_error(c, -ETIMEDOUT, "close timeout: the peer did not take the queued output");
        tao__conn_abort_local(c);
        return;
    }
    c->flags |= C_LINGER_DONE;
    tao__conn_recv_cancel(c);
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
    tao__conn_recv_cancel(c);
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
        /* Wait for the peer's FIN no longer than LINGER_MS, nor past the
         * close deadline. */
        uint64_t due = c->loop->now + LINGER_MS;
        if (peer_done)
            tao__wheel_cancel(&c->loop->wheel, &c->linger);
        else if (!tao__timer_armed(&c->linger) || c->linger.due > due)
            tao__wheel_add(&c->loop->wheel, &c->linger, due, 0);
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
            tao__conn_recv_cancel(c);
            tao__queue_push(&c->loop->to_worker[c->worker], it);
            return;
        }
    }
    c->flags |= C_CLOSING;
    c->flags &= ~(uint32_t)(C_PAUSED | C_WPAUSED | C_FENCING);
    atomic_store(&c->closing, true);
    tao__wheel_cancel(&c->loop->wheel, &c->ka);
    /* A stop has its own deadline, which may be longer (loop.c). */
    if (!(c->flags & C_DRAIN))
        tao__wheel_add(&c->loop->wheel, &c->linger, c->loop->now + c->ep->close_ms, 0);
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
        tao__queued_sub(c, c->out.bytes);
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
    tao__queued_sub(c, c->out.bytes);
    tao__outq_clear(&c->out);
    c->fd = -1;
    if (c->client && tao__client_closed(c))
        return; /* a reconnect follows */
    tao__conn_finish(c);
}
