/* A connection's life on its loop: its states, and every move between
 * them. The receive path is recv.c, the output send.c, timeouts
 * keepalive.c; each of them asks this file to move the state along.
 *
 * States (flags in conn.h):
 *
 *   open       reading (C_RECV_ARMED), or not for a reason: C_PAUSED
 *              (output above the high watermark), C_WPAUSED (the worker
 *              is behind), C_NOBUFS (waiting for a receive buffer), C_EOF
 *              (the peer is done). A client between sockets is C_OFFLINE.
 *   fencing    C_FENCING: with workers, a close the loop starts (peer FIN,
 *              stop, a bad frame, a timeout) first goes through the
 *              connection's worker, so every frame received before it is
 *              handled and its replies are queued before the FIN.
 *   closing    C_CLOSING: keep reading (and discarding) so a peer still
 *              writing can neither stall the flush nor turn unread input
 *              into an RST that destroys the replies; once the queue is
 *              written our FIN goes (C_SHUT), then we wait (bounded) for
 *              the peer's. Every graceful close has a deadline
 *              (close_timeout_ms, on the linger timer): a peer that has not
 *              taken the queued output by then is aborted.
 *   aborting   C_CLOSING | C_ABORT: cancel what is in flight, drop the
 *              output, close with an RST.
 *   closed     C_CLOSE_SUBMITTED: the close is with the backend; its
 *              outcome is the socket's last. Then the connection finishes
 *              (on_close) or, a client, reconnects.
 *
 * tao__conn_progress is the one function that moves an open, closing or
 * aborting connection forward; every event that may unblock a step calls
 * it.
 *
 * References and memory: a connection is freed when its last reference
 * goes. The loop holds one from attach until finish; each item in flight
 * to or from a worker holds one. The loop's reference is dropped in one
 * place, tao__conn_unlist: a finished connection still on the loop's
 * flush or re-arm list is marked C_DEAD, and the reference goes when it
 * leaves the last of them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/client.h"
#include "engine/conn.h"
#include "engine/endpoint.h"
#include "engine/fault.h"
#include "engine/keepalive.h"
#include "engine/log.h"
#include "engine/loop.h"
#include "engine/recv.h"
#include "engine/runtime.h"
#include "engine/send.h"
#include "engine/timer.h"
#include "engine/transport.h"
#include "engine/worker.h"

#define LINGER_MS 2000

static void linger_fire(tao__timer_t *t, uint64_t now);

void tao__conn_error(tao_conn_t *c, int err, const char *what)
{
    tao__log(TAO_LOG_DEBUG, "conn %llu: %s: %s", (unsigned long long)c->id, what,
             tao_strerror(err));
    if (c->ep->on_error)
        c->ep->on_error(c->ep, c, err, what);
}

/* ---- references ------------------------------------------------------------ */

void tao__conn_ref(tao_conn_t *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void tao__conn_unref(tao_conn_t *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) {
        free(c->in);
        free(c);
    }
}

/* c left the loop's list marked by list_flag (C_DIRTY or C_NOBUFS). False
 * when it is finished: the loop's reference went with its last list. */
bool tao__conn_unlist(tao_conn_t *c, uint32_t list_flag)
{
    c->flags &= ~list_flag;
    if (!(c->flags & C_DEAD))
        return true;
    if (!(c->flags & (C_DIRTY | C_NOBUFS)))
        tao__conn_unref(c);
    return false;
}

/* The loop is done with c: its reference goes now, or when c leaves the
 * lists it is still on. */
static void release(tao_conn_t *c)
{
    c->flags |= C_DEAD;
    tao__conn_unlist(c, 0);
}

void tao__conn_mark_dirty(tao_conn_t *c)
{
    TAO__ON_LOOP(c->loop);
    if (c->flags & C_DIRTY)
        return;
    c->flags |= C_DIRTY;
    c->dirty_next = c->loop->dirty;
    c->loop->dirty = c;
}

/* ---- opening --------------------------------------------------------------- */

/* A connection object, not yet on its loop: any thread may make one (a
 * client connect does), the loop attaches it. extra bytes follow it. */
tao_conn_t *tao__conn_alloc(tao__loop_t *loop, tao__endpoint_t *ep, uint64_t id, size_t extra)
{
    tao_conn_t *c = tao__calloc(1, sizeof *c + extra);
    if (!c)
        return NULL;
    c->loop = loop;
    c->ep = ep;
    c->xport = ep->xport;
    c->fd = -1;
    c->id = id;
    c->out.cache = &loop->chunks;
    atomic_init(&c->refs, 1); /* the loop's */
    atomic_init(&c->connected, true);
    c->recv_op.kind = OP_RECV;
    c->close_op.kind = OP_CLOSE;
    tao__list_init(&c->node);
    tao__list_init(&c->timers);
    tao__timer_init(&c->linger, linger_fire);
    tao__timer_init(&c->ka, tao__ka_fire);
    if (ep->workers)
        c->worker = (uint16_t)(atomic_fetch_add(&loop->rt->next_worker, 1) % loop->rt->nworkers);
    return c;
}

/* New generations for the ops of a new socket: outcomes for the old one
 * become stale. */
static void new_gen(tao_conn_t *c)
{
    uint16_t gen = c->loop->next_gen++;
    c->recv_op.gen = c->close_op.gen = gen;
}

void tao__conn_attach(tao_conn_t *c)
{
    tao__loop_t *loop = c->loop;
    TAO__ON_LOOP(loop);
    new_gen(c);
    c->last_rx = c->last_tx = c->last_out = loop->now;
    tao__list_push(&loop->conns, &c->node);
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

/* A new socket: the transport's handshake, if any, comes first. */
void tao__conn_start(tao_conn_t *c)
{
    TAO__ON_LOOP(c->loop);
    int rc = c->xport->start(c);
    if (rc < 0) {
        tao__conn_error(c, rc, "transport setup");
        tao__conn_abort_local(c);
        return;
    }
    tao__conn_progress(c);
}

/* The transport is ready (at once, or after its handshake): on_connect,
 * on the loop thread. Reading is armed by tao__conn_start, or, after a
 * handshake, is already on. */
void tao__conn_ready(tao_conn_t *c)
{
    tao__endpoint_t *ep = c->ep;
    TAO__ON_LOOP(c->loop);
    tao__ka_arm(c);
    atomic_store(&c->connected, true); /* a client: sends work from now on */
    if (ep->set.on_connect && ep->set.on_connect(c) < 0) {
        STAT_ADD(c->loop, refused, 1);
        if (c->client)
            atomic_store(&c->client->user_closed, true);
        c->flags |= C_EOF; /* nothing to read from a refused connection */
        tao__conn_close_local(c, true);
    }
}

/* ---- moving along ------------------------------------------------------------ */

static void submit_close(tao_conn_t *c)
{
    c->loop->be->close(c, &c->close_op, c->flags & C_ABORT);
    c->flags |= C_CLOSE_SUBMITTED;
}

static void progress_abort(tao_conn_t *c)
{
    tao__recv_cancel(c);
    if (c->flags & C_SEND_INFLIGHT) {
        c->loop->be->cancel(c->loop, &c->sending->op);
        return;
    }
    if (!(c->flags & C_RECV_ARMED))
        submit_close(c);
}

static void progress_graceful(tao_conn_t *c)
{
    bool peer_done = c->flags & (C_EOF | C_LINGER_DONE);

    if (!peer_done && !(c->flags & (C_RECV_ARMED | C_NOBUFS)))
        tao__recv_arm(c);
    if (c->out.bytes || (c->flags & C_SEND_INFLIGHT))
        return;
    if (!(c->flags & C_SHUT)) {
        c->loop->be->shutdown(c);
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

void tao__conn_progress(tao_conn_t *c)
{
    TAO__ON_LOOP(c->loop);
    if (c->flags & (C_CLOSE_SUBMITTED | C_OFFLINE))
        return;
    if (c->flags & C_ABORT)
        progress_abort(c);
    else if (c->flags & C_CLOSING)
        progress_graceful(c);
    else if (!(c->flags & (C_RECV_ARMED | C_PAUSED | C_WPAUSED | C_NOBUFS | C_EOF | C_FENCING)))
        tao__recv_arm(c);
}

static void linger_fire(tao__timer_t *t, uint64_t now)
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
    tao__recv_cancel(c);
    tao__conn_progress(c);
}

/* ---- closing ------------------------------------------------------------------- */

/* Graceful close on the loop thread. With workers, a close that does not
 * come from the connection's worker first fences through it. */
void tao__conn_close_local(tao_conn_t *c, bool from_worker)
{
    TAO__ON_LOOP(c->loop);
    if (c->flags & C_OFFLINE) {
        tao__client_close_offline(c);
        return;
    }
    if (c->flags & C_CLOSING)
        return;
    if (c->ep->workers && !from_worker) {
        if (c->flags & C_FENCING)
            return;
        tao__item_t *it = tao__item_new(WI_FENCE, c, 0);
        if (it) {
            c->flags |= C_FENCING;
            tao__recv_cancel(c);
            tao__to_worker(c->loop, c->worker, it);
            return;
        }
    }
    c->flags |= C_CLOSING;
    c->flags &= ~(uint32_t)(C_PAUSED | C_WPAUSED | C_FENCING);
    atomic_store(&c->closing, true);
    tao__wheel_cancel(&c->loop->wheel, &c->ka);
    /* A stop has its own deadline, which may be longer (loop.c). */
    if (!(c->flags & C_DRAIN))
        tao__wheel_add(&c->loop->wheel, &c->linger, c->loop->now + c->ep->set.close_timeout_ms, 0);
    c->xport->shutdown(c); /* behind the queued replies */
    tao__conn_mark_dirty(c);
    tao__conn_progress(c);
}

void tao__conn_abort_local(tao_conn_t *c)
{
    TAO__ON_LOOP(c->loop);
    if (c->flags & C_OFFLINE) {
        tao__client_close_offline(c);
        return;
    }
    if (c->flags & C_ABORT)
        return;
    c->flags |= C_CLOSING | C_ABORT;
    atomic_store(&c->closing, true);
    tao__wheel_cancel(&c->loop->wheel, &c->ka);
    if (!(c->flags & C_SEND_INFLIGHT))
        tao__out_clear(c);
    tao__conn_progress(c);
}

/* The connection is finished for good: off its loop, on_close, and the
 * loop's reference goes. */
void tao__conn_finish(tao_conn_t *c)
{
    tao__loop_t *loop = c->loop;
    tao__endpoint_t *ep = c->ep;

    TAO__ON_LOOP(loop);
    atomic_store(&c->closing, true);
    c->flags |= C_CLOSE_SUBMITTED; /* nothing more happens on it */
    tao__list_remove(&c->node);
    loop->nconns--;
    STAT_ADD(loop, closed, 1);
    tao__ep_remove(ep, c);
    tao__queued_publish(loop); /* ep may go with its last connection */
    tao__item_t *it = ep->workers ? tao__item_new(WI_CLOSED, c, 0) : NULL;
    if (it) {
        /* on_close runs on the worker, after every handler of c. */
        tao__to_worker(loop, c->worker, it);
    } else {
        if (ep->set.on_close)
            ep->set.on_close(c);
        tao__ep_done(ep);
    }
    release(c);
}

void tao__close_complete(tao__loop_t *loop, tao__op_t *op, const tao__cqe_t *cqe)
{
    tao_conn_t *c = container_of(op, tao_conn_t, close_op);
    TAO__ON_LOOP(loop);

    tao__wheel_cancel(&loop->wheel, &c->linger);
    tao__wheel_cancel(&loop->wheel, &c->ka);
    tao__conn_timers_cancel(c);
    c->xport->end(c);
    tao__out_clear(c);
    c->fd = -1;
    if (c->client && tao__client_closed(c))
        return; /* a reconnect follows */
    tao__conn_finish(c);
}

/* ---- from any thread ------------------------------------------------------------- */

static void post_close(tao_conn_t *c, uint8_t kind)
{
    tao__worker_t *w = tao__cur_worker;
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
    if (tao__cur_loop == c->loop) {
        tao__conn_close_local(c, true);
        return;
    }
    /* Sends after close fail at once, whichever thread asked. */
    if (!atomic_exchange(&c->closing, true) || tao__cur_worker)
        post_close(c, LI_CLOSE);
}

TAO_API void tao_conn_abort(tao_conn_t *c)
{
    if (c->client)
        atomic_store(&c->client->user_closed, true);
    if (tao__cur_loop == c->loop) {
        tao__conn_abort_local(c);
        return;
    }
    atomic_store(&c->closing, true);
    post_close(c, LI_ABORT);
}

/* ---- accessors ---------------------------------------------------------------- */

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

/* Recorded on the loop before any callback (at accept, and once more by
 * the PROXY stage before on_connect): readable from any thread for the
 * connection's whole life, on_close included. */
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
