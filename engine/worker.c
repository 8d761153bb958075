/* Worker threads: where handlers run when they may block.
 *
 * Each connection is pinned to one worker (round-robin at accept, so every
 * worker is used whatever their number), and a worker runs its items in
 * arrival order: one connection's handlers, timer callbacks and on_close
 * run in order, one at a time. A worker takes its whole queue at once and
 * posts what its handlers produced back to the loops per batch. */
#include <stdlib.h>

#include "engine/engine.h"

static void run_frame(tao__worker_t *w, tao__item_t *it)
{
    tao_conn_t *c = it->conn;
    tao__endpoint_t *ep = c->ep;
    tao_frame_t f = {.type = it->u.frame.type, .payload = it->bytes, .len = it->u.frame.len};

    int rc = tao__registry_dispatch(ep->reg, c, &f, ep->on_message);
    if (rc == -ENOENT) {
        tao__log(TAO_LOG_DEBUG, "conn %llu: no handler for message type %d",
                 (unsigned long long)c->id, (int)f.type);
    } else if (rc < 0) {
        atomic_fetch_add(&ep->unmarshal_err, 1);
        tao__conn_error(c, rc, "unmarshal");
        tao_conn_close(c);
    }
    /* Let the loop read again once the backlog has drained, if it paused:
     * one item per pause, not one per message. */
    size_t cost = sizeof *it + f.len;
    size_t left = atomic_fetch_sub(&c->wpending, cost) - cost;
    if (left < ep->out_low && atomic_load(&c->wpause_req) &&
        atomic_exchange(&c->wpause_req, false)) {
        tao__item_t *r = tao__item_new(IT_RESUME, c, 0);
        if (r)
            tao__post(c->loop, r);
    }
}

static void run_item(tao__worker_t *w, tao__item_t *it)
{
    switch (it->kind) {
    case IT_FRAME:
        run_frame(w, it);
        break;
    case IT_TIMER:
        tao__timer_run(it->u.timer);
        tao__timer_unref(it->u.timer); /* the item's reference */
        break;
    case IT_FENCE: {
        /* Every frame received before the close has been handled and its
         * replies are queued ahead of this: now the loop may close. */
        tao__item_t *r = tao__item_new(IT_CLOSE, it->conn, 0);
        if (r) {
            r->from_worker = true;
            tao__post(it->conn->loop, r);
        }
        break;
    }
    case IT_CLOSED:
        if (it->conn->ep->on_close)
            it->conn->ep->on_close(it->conn);
        tao__ep_done(it->conn->ep);
        break;
    default:
        break;
    }
    tao__item_free(it);
}

void tao__worker_flush(tao__worker_t *w)
{
    tao__runtime_t *rt = w->rt;
    for (unsigned i = 0; i < rt->nloops; i++) {
        tao__queue_t *q = &w->to_loop[i];
        if (!q->head)
            continue;
        tao__loop_t *loop = &rt->loops[i];
        pthread_mutex_lock(&loop->inbox_lock);
        tao__queue_splice(&loop->inbox, q);
        atomic_store(&loop->inbox_ready, true);
        pthread_mutex_unlock(&loop->inbox_lock);
        if (atomic_exchange(&loop->sleeping, false))
            tao__loop_wake(loop);
    }
}

void *tao__worker_main(void *arg)
{
    tao__worker_t *w = arg;
    tao__tls_worker = w;
    for (;;) {
        pthread_mutex_lock(&w->lock);
        while (!w->q.head && !w->stop) {
            w->waiting = true;
            pthread_cond_wait(&w->cond, &w->lock);
            w->waiting = false;
        }
        tao__queue_t batch = w->q;
        w->q.head = w->q.tail = NULL;
        bool stop = w->stop;
        pthread_mutex_unlock(&w->lock);

        size_t n = 0;
        for (tao__item_t *it = batch.head, *next; it; it = next) {
            next = it->next;
            run_item(w, it);
            n++;
        }
        atomic_fetch_sub(&w->depth, n);
        tao__worker_flush(w);
        if (stop && !batch.head)
            break;
    }
    tao__tls_worker = NULL;
    return NULL;
}
