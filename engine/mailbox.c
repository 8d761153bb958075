/* Every hand-off between threads: items posted to loops and to workers,
 * batched, spliced, drained, and the wake-up of a sleeping loop.
 *
 * Ordering, the one argument everything else relies on:
 *   - Items from one thread to one loop arrive in the order they were
 *     posted: a thread appends to one FIFO (the loop's inbox, under its
 *     lock), or, on a worker, to its per-loop batch, which is spliced whole
 *     into the inbox when the worker's batch is done. So a handler's
 *     replies and its close reach the loop in the order it made them.
 *   - A connection is pinned to one worker, and the loop appends its frames
 *     to that worker's batch in the order they were decoded; batches are
 *     spliced whole into the worker's queue, and a worker runs its queue in
 *     order. So a connection's handlers run in order, one at a time, and a
 *     fence (WI_FENCE) or on_close (WI_CLOSED) queued behind its frames runs
 *     after all of them; the LI_CLOSE a fence answers is posted behind the
 *     replies those handlers queued.
 *
 * Waking: a loop about to block sets inbox.sleeping, then looks at
 * inbox.ready once more; a poster sets ready (under the lock), then clears
 * sleeping and, if it was set, writes the eventfd. Both are seq_cst: either
 * the poster sees the flag and wakes the loop, or the loop sees the item.
 * A busy loop is never woken: it drains its inbox after every batch. A
 * worker sleeps on its condition variable, signalled only when waiting. */
#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine/conn.h"
#include "engine/endpoint.h"
#include "engine/fault.h"
#include "engine/loop.h"
#include "engine/mailbox.h"
#include "engine/runtime.h"
#include "engine/send.h"
#include "engine/timer.h"
#include "engine/worker.h"

tao__item_t *tao__item_new(uint8_t kind, tao_conn_t *conn, size_t extra)
{
    tao__item_t *it = tao__malloc(sizeof *it + extra);
    if (!it)
        return NULL;
    it->next = NULL;
    it->kind = kind;
    it->from_worker = false;
    it->conn = conn;
    if (conn)
        tao__conn_ref(conn);
    return it;
}

void tao__item_free(tao__item_t *it)
{
    if (it->conn)
        tao__conn_unref(it->conn);
    free(it);
}

void tao__queue_push(tao__queue_t *q, tao__item_t *it)
{
    it->next = NULL;
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
}

static size_t splice(tao__queue_t *dst, tao__queue_t *src)
{
    size_t n = 0;
    if (!src->head)
        return 0;
    for (tao__item_t *it = src->head; it; it = it->next)
        n++;
    if (dst->tail)
        dst->tail->next = src->head;
    else
        dst->head = src->head;
    dst->tail = src->tail;
    src->head = src->tail = NULL;
    return n;
}

/* ---- a loop's inbox ----------------------------------------------------------- */

int tao__inbox_init(tao__inbox_t *in)
{
    pthread_mutex_init(&in->lock, NULL);
    in->q.head = in->q.tail = NULL;
    in->wake_fd = eventfd(0, EFD_CLOEXEC);
    return in->wake_fd < 0 ? -errno : 0;
}

/* An item that never ran (posted after its loop ended): let go of what it
 * carries. Every loop item kind is here. */
static void discard(tao__item_t *it)
{
    switch ((enum tao__loop_item)it->kind) {
    case LI_SEND:
        tao__queued_sub(it->conn, tao__chunk_bytes(it->u.chunk));
        tao__chunk_free(it->u.chunk);
        break;
    case LI_FRAME:
        tao__queued_sub(it->conn, tao__item_frame_bytes(it));
        break;
    case LI_TIMER_ARM:
        tao__timer_discard(it->u.timer);
        break;
    case LI_TIMER_CANCEL:
        tao__timer_unref(it->u.timer);
        break;
    case LI_BROADCAST:
        tao__bcast_unref(it->u.bcast);
        break;
    case LI_CLOSE:
    case LI_ABORT:
    case LI_RESUME:
    case LI_CONNECT:
        break;
    }
    tao__item_free(it);
}

void tao__inbox_deinit(tao__inbox_t *in)
{
    for (tao__item_t *it = in->q.head, *next; it; it = next) {
        next = it->next;
        discard(it);
    }
    in->q.head = in->q.tail = NULL;
    if (in->wake_fd >= 0)
        close(in->wake_fd);
    in->wake_fd = -1;
    pthread_mutex_destroy(&in->lock);
}

void tao__loop_wake(tao__loop_t *loop)
{
    uint64_t one = 1;
    /* write(2) is async-signal-safe, so this works from a signal handler. */
    ssize_t rc = write(loop->inbox.wake_fd, &one, sizeof one);
    (void)rc;
}

static void deliver(tao__loop_t *loop, tao__queue_t *q, tao__item_t *it)
{
    tao__inbox_t *in = &loop->inbox;
    pthread_mutex_lock(&in->lock);
    if (q)
        splice(&in->q, q);
    else
        tao__queue_push(&in->q, it);
    atomic_store(&in->ready, true);
    pthread_mutex_unlock(&in->lock);
    if (tao__cur_loop != loop && atomic_exchange(&in->sleeping, false))
        tao__loop_wake(loop);
}

void tao__post(tao__loop_t *loop, tao__item_t *it)
{
    tao__worker_t *w = tao__cur_worker;
    if (w && w->rt == loop->rt) {
        tao__queue_push(&w->to_loop[loop->idx], it);
        return;
    }
    deliver(loop, NULL, it);
}

tao__queue_t tao__inbox_take(tao__loop_t *loop)
{
    TAO__ON_LOOP(loop);
    tao__inbox_t *in = &loop->inbox;
    tao__queue_t q = {0};
    if (!atomic_load(&in->ready))
        return q;
    pthread_mutex_lock(&in->lock);
    q = in->q;
    in->q.head = in->q.tail = NULL;
    atomic_store(&in->ready, false);
    pthread_mutex_unlock(&in->lock);
    return q;
}

bool tao__inbox_empty(tao__loop_t *loop)
{
    return !atomic_load(&loop->inbox.ready);
}

void tao__worker_send_batches(tao__worker_t *w)
{
    for (unsigned i = 0; i < w->rt->nloops; i++)
        if (w->to_loop[i].head)
            deliver(&w->rt->loops[i], &w->to_loop[i], NULL);
}

/* ---- a worker's queue ----------------------------------------------------------- */

void tao__workq_init(tao__workq_t *wq)
{
    pthread_mutex_init(&wq->lock, NULL);
    pthread_cond_init(&wq->cond, NULL);
}

void tao__workq_deinit(tao__workq_t *wq)
{
    pthread_mutex_destroy(&wq->lock);
    pthread_cond_destroy(&wq->cond);
}

void tao__to_worker(tao__loop_t *loop, unsigned w, tao__item_t *it)
{
    TAO__ON_LOOP(loop);
    tao__queue_push(&loop->to_worker[w], it);
}

void tao__loop_send_batches(tao__loop_t *loop)
{
    TAO__ON_LOOP(loop);
    for (unsigned i = 0; loop->to_worker && i < loop->rt->nworkers; i++) {
        if (!loop->to_worker[i].head)
            continue;
        tao__workq_t *wq = &loop->rt->workers[i].wq;
        pthread_mutex_lock(&wq->lock);
        atomic_fetch_add(&wq->depth, splice(&wq->q, &loop->to_worker[i]));
        if (wq->waiting)
            pthread_cond_signal(&wq->cond);
        pthread_mutex_unlock(&wq->lock);
    }
}

bool tao__worker_take(tao__worker_t *w, tao__queue_t *batch)
{
    tao__workq_t *wq = &w->wq;
    pthread_mutex_lock(&wq->lock);
    while (!wq->q.head && !wq->stop) {
        wq->waiting = true;
        pthread_cond_wait(&wq->cond, &wq->lock);
        wq->waiting = false;
    }
    *batch = wq->q;
    wq->q.head = wq->q.tail = NULL;
    bool more = batch->head || !wq->stop;
    pthread_mutex_unlock(&wq->lock);
    return more;
}

void tao__worker_stop(tao__worker_t *w)
{
    pthread_mutex_lock(&w->wq.lock);
    w->wq.stop = true;
    pthread_cond_signal(&w->wq.cond);
    pthread_mutex_unlock(&w->wq.lock);
}
