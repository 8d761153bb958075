/* Worker threads: where handlers run when they may block.
 *
 * Each connection is pinned to one worker (round-robin at accept, so every
 * worker is used whatever their number), and a worker runs its items in
 * arrival order (mailbox.c says why that order holds): one connection's
 * handlers, timer callbacks and on_close run in order, one at a time. */
#include <stdlib.h>

#include "engine/conn.h"
#include "engine/endpoint.h"
#include "engine/loop.h"
#include "engine/recv.h"
#include "engine/runtime.h"
#include "engine/timer.h"
#include "engine/transport.h"
#include "engine/worker.h"

static void run_frame(tao__item_t *it)
{
    tao_conn_t *c = it->conn;
    tao__endpoint_t *ep = c->ep;
    tao_frame_t f = {.type = it->u.frame.type, .payload = it->bytes, .len = it->u.frame.len};

    tao__frame_handle(c, &f);
    /* Let the loop read again once the backlog has drained, if it paused:
     * one item per pause, not one per message. */
    size_t cost = sizeof *it + f.len;
    size_t left = atomic_fetch_sub(&c->wpending, cost) - cost;
    if (left < ep->set.out_low && atomic_load(&c->wpause_req) &&
        atomic_exchange(&c->wpause_req, false)) {
        tao__item_t *r = tao__item_new(LI_RESUME, c, 0);
        if (r)
            tao__post(c->loop, r);
    }
}

static void run_item(tao__item_t *it)
{
    switch ((enum tao__worker_item)it->kind) {
    case WI_FRAME:
        run_frame(it);
        break;
    case WI_TIMER:
        tao__timer_run(it->u.timer);
        tao__timer_unref(it->u.timer); /* the item's reference */
        break;
    case WI_FENCE: {
        /* Every frame received before the close has been handled and its
         * replies are queued ahead of this: now the loop may close. */
        tao__item_t *r = tao__item_new(LI_CLOSE, it->conn, 0);
        if (r) {
            r->from_worker = true;
            tao__post(it->conn->loop, r);
        }
        break;
    }
    case WI_CLOSED:
        if (it->conn->ep->set.on_close)
            it->conn->ep->set.on_close(it->conn);
        tao__ep_done(it->conn->ep);
        break;
    }
    tao__item_free(it);
}

void *tao__worker_main(void *arg)
{
    tao__worker_t *w = arg;
    tao__queue_t batch;
    tao__cur_worker = w;
    while (tao__worker_take(w, &batch)) {
        size_t n = 0;
        for (tao__item_t *it = batch.head, *next; it; it = next) {
            next = it->next;
            run_item(it);
            n++;
        }
        atomic_fetch_sub(&w->wq.depth, n);
        tao__worker_send_batches(w);
    }
    tao__cur_worker = NULL;
    return NULL;
}
