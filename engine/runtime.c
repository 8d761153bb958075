/* A runtime: the I/O loops and worker threads a server (or client group)
 * runs on, and the items by which threads hand each other work.
 *
 * Hand-offs are batched: a loop collects the frames of one completion batch
 * per worker and posts each batch with one lock and at most one signal; a
 * worker collects its replies per loop the same way. A loop blocked in
 * io_uring_enter is woken through its eventfd, and only then: a busy loop
 * picks its inbox up at the end of the batch it is processing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/fault.h"

__thread tao__loop_t *tao__tls_loop;
__thread tao__worker_t *tao__tls_worker;

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

/* Post to a loop. From a worker, items wait in the worker's per-loop batch
 * (flushed when its batch is done), which keeps them in order behind the
 * replies the same handler queued. */
void tao__post(tao__loop_t *loop, tao__item_t *it)
{
    tao__worker_t *w = tao__tls_worker;
    if (w && w->rt == loop->rt) {
        tao__queue_push(&w->to_loop[loop->idx], it);
        return;
    }
    pthread_mutex_lock(&loop->inbox_lock);
    tao__queue_push(&loop->inbox, it);
    atomic_store(&loop->inbox_ready, true);
    pthread_mutex_unlock(&loop->inbox_lock);
    if (tao__tls_loop != loop && atomic_exchange(&loop->sleeping, false))
        tao__loop_wake(loop);
}

void tao__post_worker(tao__worker_t *w, tao__queue_t *batch)
{
    size_t n = 0;
    for (tao__item_t *it = batch->head; it; it = it->next)
        n++;
    atomic_fetch_add(&w->depth, n);
    pthread_mutex_lock(&w->lock);
    tao__queue_splice(&w->q, batch);
    if (w->waiting)
        pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* ---- lifecycle -------------------------------------------------------------- */

int tao__runtime_init(tao__runtime_t *rt, unsigned loops, unsigned workers, unsigned buf_count,
                      unsigned buf_size, bool no_pin)
{
    size_t zc_count = rt->zc_count, zc_size = rt->zc_size; /* set by the caller beforehand */
    memset(rt, 0, sizeof *rt);
    rt->zc_count = (unsigned)zc_count;
    rt->zc_size = (unsigned)zc_size;
    rt->nloops = loops;
    rt->nworkers = workers;
    rt->buf_count = buf_count;
    rt->buf_size = buf_size;
    rt->no_pin = no_pin;
    rt->next_timer_id = 1;
    pthread_mutex_init(&rt->lock, NULL);
    pthread_cond_init(&rt->cond, NULL);
    pthread_mutex_init(&rt->tlock, NULL);
    rt->loops = tao__calloc(loops, sizeof *rt->loops);
    rt->workers = tao__calloc(workers ? workers : 1, sizeof *rt->workers);
    if (!rt->loops || !rt->workers)
        return -ENOMEM;
    for (unsigned i = 0; i < loops; i++) {
        int rc = tao__loop_init(&rt->loops[i], rt, i);
        if (rc < 0)
            return rc;
    }
    for (unsigned i = 0; i < workers; i++) {
        tao__worker_t *w = &rt->workers[i];
        w->rt = rt;
        w->idx = i;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cond, NULL);
        w->to_loop = tao__calloc(loops, sizeof *w->to_loop);
        if (!w->to_loop)
            return -ENOMEM;
    }
    return 0;
}

static int spawn(tao__runtime_t *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        tao__worker_t *w = &rt->workers[i];
        int rc = pthread_create(&w->thread, NULL, tao__worker_main, w);
        if (rc != 0)
            return -rc;
        w->thread_started = true;
    }
    for (unsigned i = 0; i < rt->nloops; i++) {
        tao__loop_t *loop = &rt->loops[i];
        int rc = pthread_create(&loop->thread, NULL, tao__loop_main, loop);
        if (rc != 0)
            return -rc;
        loop->thread_started = true;
    }
    /* Wait until every ring is up, so start can report io_uring errors. */
    int err = 0;
    pthread_mutex_lock(&rt->lock);
    for (unsigned i = 0; i < rt->nloops; i++) {
        while (!rt->loops[i].ring_ready)
            pthread_cond_wait(&rt->cond, &rt->lock);
        if (rt->loops[i].setup_err && !err)
            err = rt->loops[i].setup_err;
    }
    pthread_mutex_unlock(&rt->lock);
    return err;
}

/* prepare runs for each loop before the threads start (a server opens its
 * listeners there, so bind errors come back from start). */
int tao__runtime_start(tao__runtime_t *rt, int (*prepare)(tao__loop_t *, void *), void *arg)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&rt->state, &expected, 1))
        return -EBUSY;
    int rc = 0;
    for (unsigned i = 0; i < rt->nloops && rc == 0 && prepare; i++)
        rc = prepare(&rt->loops[i], arg);
    if (rc == 0)
        rc = spawn(rt);
    if (rc < 0) {
        tao__runtime_stop(rt, 1);
        tao__runtime_wait(rt);
    }
    return rc;
}

void tao__runtime_stop(tao__runtime_t *rt, unsigned deadline_ms)
{
    /* Only atomics and write(2): callable from a signal handler. */
    atomic_store(&rt->stop_deadline_ms, deadline_ms ? deadline_ms : 5000);
    atomic_store(&rt->stop_requested, true);
    if (atomic_load(&rt->state) != 1)
        return;
    for (unsigned i = 0; i < rt->nloops; i++)
        if (rt->loops[i].wake_fd >= 0)
            tao__loop_wake(&rt->loops[i]);
}

static void join_workers(tao__runtime_t *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        tao__worker_t *w = &rt->workers[i];
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
        if (w->thread_started)
            pthread_join(w->thread, NULL);
        w->thread_started = false;
    }
}

/* Loops end once their connections are gone; the workers then finish what
 * is queued (the last on_close calls) and end too. */
void tao__runtime_wait(tao__runtime_t *rt)
{
    pthread_mutex_lock(&rt->lock);
    if (atomic_load(&rt->state) == 1) {
        for (unsigned i = 0; i < rt->nloops; i++) {
            tao__loop_t *loop = &rt->loops[i];
            if (loop->thread_started)
                pthread_join(loop->thread, NULL);
            loop->thread_started = false;
        }
        join_workers(rt);
        atomic_store(&rt->state, 2);
    }
    pthread_mutex_unlock(&rt->lock);
}

void tao__runtime_deinit(tao__runtime_t *rt)
{
    if (atomic_load(&rt->state) == 1) {
        tao__runtime_stop(rt, 0);
        tao__runtime_wait(rt);
    }
    for (unsigned i = 0; rt->loops && i < rt->nloops; i++)
        tao__loop_deinit(&rt->loops[i]);
    for (unsigned i = 0; rt->workers && i < rt->nworkers; i++) {
        pthread_mutex_destroy(&rt->workers[i].lock);
        pthread_cond_destroy(&rt->workers[i].cond);
        free(rt->workers[i].to_loop);
    }
    tao__timers_free_all(rt);
    free(rt->loops);
    free(rt->workers);
    pthread_mutex_destroy(&rt->lock);
    pthread_cond_destroy(&rt->cond);
    pthread_mutex_destroy(&rt->tlock);
    rt->loops = NULL;
    rt->workers = NULL;
}
