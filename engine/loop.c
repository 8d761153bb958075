/* An I/O loop: one thread, one backend, one set of receive buffers, one
 * timing wheel.
 *
 * The loop waits for what finished, hands each outcome to its owner by op
 * kind, then does the work that batching pays for: the items other threads
 * posted, one gathered send per dirty connection, re-arming receives that
 * ran out of buffers, firing due timers, and one wake-up for the next due
 * one. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/bufring.h"
#include "engine/client.h"
#include "engine/conn.h"
#include "engine/endpoint.h"
#include "engine/fault.h"
#include "engine/listener.h"
#include "engine/log.h"
#include "engine/loop.h"
#include "engine/recv.h"
#include "engine/runtime.h"
#include "engine/send.h"
#include "engine/timer.h"
#include "engine/transport.h"
#include "engine/worker.h"

uint64_t tao__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int tao__loop_init(tao__loop_t *loop, tao__runtime_t *rt, unsigned idx)
{
    memset(loop, 0, sizeof *loop);
    loop->rt = rt;
    loop->idx = idx;
    tao__list_init(&loop->conns);
    tao__list_init(&loop->timers);
    loop->buf_count = rt->buf_count;
    loop->buf_size = rt->buf_size;
    loop->next_gen = 1;
    int rc = tao__inbox_init(&loop->inbox);
    if (rc < 0)
        return rc;
    if (rt->nworkers) {
        loop->to_worker = tao__calloc(rt->nworkers, sizeof *loop->to_worker);
        if (!loop->to_worker)
            return -ENOMEM;
    }
    return 0;
}

void tao__loop_deinit(tao__loop_t *loop)
{
    tao__listeners_free(loop);
    tao__inbox_deinit(&loop->inbox);
    free(loop->to_worker);
    loop->to_worker = NULL;
    tao__sendctx_free_all(loop);
    tao__chunk_cache_drain(&loop->chunks);
}

bool tao__loop_behind(tao__loop_t *loop)
{
    return loop->be->behind(loop);
}

/* ---- stopping ------------------------------------------------------------ */

static void deadline_fire(tao__timer_t *t, uint64_t now)
{
    tao__loop_t *loop = container_of(t, tao__loop_t, stop_deadline);
    tao__list_t *it, *nx;
    size_t n = 0;
    tao__list_each(it, nx, &loop->conns)
    {
        tao__conn_abort_local(container_of(it, tao_conn_t, node));
        n++;
    }
    if (n)
        tao__log(TAO_LOG_WARN, "loop %u: stop deadline passed, aborted %zu connection(s)",
                 loop->idx, n);
}

/* The stop's rule: every complete frame that reached the server before the
 * stop's deadline is answered. So a connection keeps reading, handling and
 * replying while the server stops (C_DRAIN), back-pressure included, and
 * closes gracefully only once it is quiet: not paused, no frame (whole or
 * started) waiting in c->in, nothing unread in its socket, and nothing
 * received for a while. Whatever still keeps it busy at the deadline is
 * aborted (RST, deadline_fire), never closed with a FIN that would look
 * complete; bytes that arrive after its close began were not answered
 * either, and turn the close into an abort (recv.c).
 *
 * "For a while": an empty socket does not mean the peer is done. What it
 * wrote while our receive window was full waits in its own kernel, which
 * sends it only once our reading opens the window again, a round trip
 * later (and later still on a loaded machine, where the softirq that
 * carries it is deferred). So a connection that received in the last
 * DRAIN_QUIET_MS, or in its last two round trips if they are longer, is
 * not quiet yet; drain_timer looks again when that has passed. */
#define DRAIN_QUIET_MS 50

/* When c has been silent long enough to close, or 0 for now. */
static uint64_t quiet_at(const tao_conn_t *c)
{
    uint64_t at = c->last_rx + DRAIN_QUIET_MS;
    if (at <= c->loop->now) {
        struct tcp_info ti;
        socklen_t len = sizeof ti;
        if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0)
            at = c->last_rx + 2 * (uint64_t)ti.tcpi_rtt / 1000 + 1;
    }
    return at > c->loop->now ? at : 0;
}

static bool quiet(const tao_conn_t *c, uint64_t *wait_until)
{
    if (c->flags & (C_PAUSED | C_WPAUSED | C_NOBUFS) || c->in_len)
        return false;
    if (c->flags & C_EOF)
        return true; /* the peer said it is done */
    if (tao__conn_unread(c))
        return false;
    uint64_t at = quiet_at(c);
    if (at && at < *wait_until)
        *wait_until = at;
    return at == 0;
}

static void drain_fire(tao__timer_t *t, uint64_t now)
{
    /* Nothing to do here: the batch this timer ends runs drain_check. */
}

/* While stopping, after a whole batch: close each draining connection that
 * has gone quiet. Not while outcomes wait in the backend: one of them may
 * hold bytes the socket no longer shows. */
static void drain_check(tao__loop_t *loop)
{
    if (tao__loop_behind(loop))
        return;
    uint64_t wait_until = UINT64_MAX;
    tao__list_t *it, *nx;
    tao__list_each(it, nx, &loop->conns)
    {
        tao_conn_t *c = container_of(it, tao_conn_t, node);
        if ((c->flags & C_DRAIN) && !(c->flags & (C_CLOSING | C_FENCING)) && quiet(c, &wait_until))
            tao__conn_close_local(c, false);
    }
    if (wait_until != UINT64_MAX &&
        (!tao__timer_armed(&loop->drain_timer) || loop->drain_timer.due > wait_until))
        tao__wheel_add(&loop->wheel, &loop->drain_timer, wait_until, 0);
}

static void begin_stop(tao__loop_t *loop)
{
    unsigned ms = atomic_load(&loop->rt->stop_deadline_ms);
    loop->stopping = true;
    tao__listener_close(loop);
    tao__list_t *it, *nx;
    tao__list_each(it, nx, &loop->conns)
    {
        tao_conn_t *c = container_of(it, tao_conn_t, node);
        if (c->flags & C_OFFLINE)
            tao__conn_close_local(c, false); /* a client between sockets */
        else
            c->flags |= C_DRAIN;
    }
    tao__timer_init(&loop->drain_timer, drain_fire);
    tao__timer_init(&loop->stop_deadline, deadline_fire);
    tao__wheel_add(&loop->wheel, &loop->stop_deadline, loop->now + ms, 0);
}

/* ---- the loop -------------------------------------------------------------- */

typedef void (*complete_fn)(tao__loop_t *loop, tao__op_t *op, const tao__cqe_t *cqe);

static const complete_fn on_complete[OP_KINDS] = {
    [OP_ACCEPT] = tao__accept_complete,   [OP_RECV] = tao__recv_complete,
    [OP_SEND] = tao__send_complete,       [OP_CLOSE] = tao__close_complete,
    [OP_CONNECT] = tao__connect_complete,
};

void tao__complete(tao__loop_t *loop, tao__op_t *op, const tao__cqe_t *cqe)
{
    on_complete[op->kind](loop, op, cqe);
}

/* An item from another thread. Every kind is here; one for a connection
 * that has finished since it was posted only lets go of what it carries. */
static void run_item(tao__loop_t *loop, tao__item_t *it)
{
    tao_conn_t *c = it->conn;
    bool live = c && !(c->flags & (C_CLOSE_SUBMITTED | C_DEAD));

    switch ((enum tao__loop_item)it->kind) {
    case LI_SEND:
        if (live && !(c->flags & C_CLOSING)) {
            tao__conn_queue_chunk(c, it->u.chunk);
        } else {
            tao__queued_sub(c, tao__chunk_bytes(it->u.chunk));
            tao__chunk_free(it->u.chunk);
        }
        break;
    case LI_FRAME:
        if (live && !(c->flags & C_CLOSING))
            tao__conn_queue_frame(c, it);
        else
            tao__queued_sub(c, tao__item_frame_bytes(it));
        break;
    case LI_CLOSE:
        if (live)
            tao__conn_close_local(c, it->from_worker);
        break;
    case LI_ABORT:
        if (live)
            tao__conn_abort_local(c);
        break;
    case LI_RESUME:
        if (live)
            tao__conn_resume_worker(c);
        break;
    case LI_TIMER_ARM:
        tao__timer_arm_local(loop, it->u.timer);
        break;
    case LI_TIMER_CANCEL:
        tao__timer_cancel_local(loop, it->u.timer);
        tao__timer_unref(it->u.timer); /* the reference cancel took */
        break;
    case LI_BROADCAST:
        tao__broadcast_local(loop, it->u.bcast);
        break;
    case LI_CONNECT:
        tao__client_connect_item(c);
        break;
    }
    tao__item_free(it);
}

/* Re-arm the receives that ran out of buffers, oldest first, no more than
 * there are buffers free: re-arming a thousand receives for a handful of
 * buffers only earns a thousand more -ENOBUFS. The rest wait for the next
 * pass; the loop does not sleep while buffers are there for them. */
static void rearm(tao__loop_t *loop)
{
    unsigned budget = loop->bufs_avail;
    while (loop->nobufs && budget) {
        tao_conn_t *c = loop->nobufs;
        loop->nobufs = c->nobufs_next;
        if (!loop->nobufs)
            loop->nobufs_tail = NULL;
        c->nobufs_next = NULL;
        if (tao__conn_unlist(c, C_NOBUFS)) {
            tao__conn_progress(c);
            budget--;
        }
    }
}

static void flush_dirty(tao__loop_t *loop)
{
    while (loop->dirty) {
        tao_conn_t *c = loop->dirty;
        loop->dirty = c->dirty_next;
        c->dirty_next = NULL;
        if (tao__conn_unlist(c, C_DIRTY))
            tao__conn_flush(c);
    }
}

static void after_batch(tao__loop_t *loop)
{
    loop->now = tao__now_ms();
    tao__queue_t q = tao__inbox_take(loop);
    for (tao__item_t *it = q.head, *next; it; it = next) {
        next = it->next;
        run_item(loop, it);
    }
    tao__wheel_advance(&loop->wheel, loop->now);
    rearm(loop);
    flush_dirty(loop);
    if (!loop->stopping && atomic_load(&loop->rt->stop_requested))
        begin_stop(loop);
    if (loop->stopping)
        drain_check(loop);
    else
        tao__listener_poll(loop);
    tao__loop_send_batches(loop);
    tao__queued_publish(loop);
    int64_t next = tao__wheel_next(&loop->wheel);
    if (next >= 0)
        loop->be->timeout(loop, loop->wheel.now + (uint64_t)next);
}

static void pin(tao__loop_t *loop)
{
    tao__runtime_t *rt = loop->rt;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (rt->no_pin || cpus <= 0 || rt->nloops != (unsigned)cpus)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(loop->idx, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void report_ready(tao__loop_t *loop, int rc)
{
    tao__runtime_t *rt = loop->rt;
    pthread_mutex_lock(&rt->lock);
    loop->setup_err = rc;
    loop->ready = true;
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
}

/* Created on this thread: a backend may tie its kernel objects to the
 * thread that uses them (io_uring's SINGLE_ISSUER and DEFER_TASKRUN). */
static int setup(tao__loop_t *loop)
{
    int rc = loop->be->setup(loop);
    if (rc == 0 && (rc = tao__bufs_setup(loop)) < 0) {
        tao__log(TAO_LOG_ERROR, "loop %u: receive buffers: %s", loop->idx, strerror(-rc));
        loop->be->teardown(loop);
        tao__bufs_teardown(loop);
    }
    return rc;
}

/* The end: only finished connections can be left on the re-arm list. */
static void teardown(tao__loop_t *loop)
{
    while (loop->nobufs) {
        tao_conn_t *c = loop->nobufs;
        loop->nobufs = c->nobufs_next;
        tao__conn_unlist(c, C_NOBUFS);
    }
    loop->nobufs_tail = NULL;
    tao__loop_timers_free(loop);
    tao__loop_send_batches(loop);
    tao__queued_publish(loop);
    loop->be->teardown(loop);
    tao__bufs_teardown(loop);
    tao__transport_thread_exit();
}

void *tao__loop_main(void *arg)
{
    tao__loop_t *loop = arg;

    tao__cur_loop = loop;
    pin(loop);
    int rc = setup(loop);
    report_ready(loop, rc);
    if (rc < 0) {
        tao__cur_loop = NULL;
        return NULL;
    }
    loop->now = tao__now_ms();
    tao__wheel_init(&loop->wheel, loop->now);
    tao__accept_arm(loop);
    after_batch(loop);

    while (!(loop->stopping && loop->nconns == 0 && !tao__accepting(loop))) {
        /* Announce the sleep, then look at the inbox once more: a poster
         * either sees the flag and wakes us, or we see its item. */
        atomic_store(&loop->inbox.sleeping, true);
        loop->be->wait(loop, tao__inbox_empty(loop) && !(loop->nobufs && loop->bufs_avail));
        atomic_store(&loop->inbox.sleeping, false);
        /* The outcomes below stamp connections with loop->now (last
         * receive, start of a partial frame): it must be the time they
         * came, not the time the loop went to sleep. */
        loop->now = tao__now_ms();
        loop->be->dispatch(loop);
        after_batch(loop);
    }
    teardown(loop);
    tao__cur_loop = NULL;
    return NULL;
}
