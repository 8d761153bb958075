/* A runtime: the I/O loops and worker threads a server (or client group)
 * runs on; creating them, starting their threads, stopping and joining.
 * How the threads hand each other work is mailbox.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/endpoint.h"
#include "engine/fault.h"
#include "engine/loop.h"
#include "engine/runtime.h"
#include "engine/timer.h"
#include "engine/worker.h"

__thread tao__loop_t *tao__cur_loop;
__thread tao__worker_t *tao__cur_worker;

/* ---- lifecycle -------------------------------------------------------------- */

int tao__runtime_init(tao__runtime_t *rt, const tao__settings_t *s, unsigned loops,
                      unsigned workers)
{
    memset(rt, 0, sizeof *rt);
    if (s->zc_threshold) {
        rt->zc_count = s->zc_buffers;
        rt->zc_size = s->zc_buffer_size;
    }
    rt->nloops = loops;
    rt->nworkers = workers;
    rt->buf_count = s->buf_count;
    rt->buf_size = s->buf_size;
    rt->no_pin = s->no_pin;
    rt->want = s->backend;
    rt->next_timer_id = 1;
    pthread_mutex_init(&rt->lock, NULL);
    pthread_cond_init(&rt->cond, NULL);
    pthread_mutex_init(&rt->tlock, NULL);
    rt->loops = tao__calloc(loops, sizeof *rt->loops);
    rt->workers = tao__calloc(workers ? workers : 1, sizeof *rt->workers);
    if (!rt->loops || !rt->workers || tao__idmap_init(&rt->timers, 64) < 0)
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
        tao__workq_init(&w->wq);
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
        while (!rt->loops[i].ready)
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
    enum tao__rt_state expected = RT_CREATED;
    if (!atomic_compare_exchange_strong(&rt->state, &expected, RT_RUNNING))
        return -EBUSY;
    int rc = tao__backend_pick(rt->want, &rt->be);
    for (unsigned i = 0; i < rt->nloops && rc == 0; i++)
        rt->loops[i].be = rt->be;
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
    if (atomic_load(&rt->state) != RT_RUNNING)
        return;
    for (unsigned i = 0; i < rt->nloops; i++)
        if (rt->loops[i].inbox.wake_fd >= 0)
            tao__loop_wake(&rt->loops[i]);
}

static void join_workers(tao__runtime_t *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        tao__worker_t *w = &rt->workers[i];
        tao__worker_stop(w);
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
    if (atomic_load(&rt->state) == RT_RUNNING) {
        for (unsigned i = 0; i < rt->nloops; i++) {
            tao__loop_t *loop = &rt->loops[i];
            if (loop->thread_started)
                pthread_join(loop->thread, NULL);
            loop->thread_started = false;
        }
        join_workers(rt);
        atomic_store(&rt->state, RT_JOINED);
    }
    pthread_mutex_unlock(&rt->lock);
}

void tao__runtime_deinit(tao__runtime_t *rt)
{
    if (atomic_load(&rt->state) == RT_RUNNING) {
        tao__runtime_stop(rt, 0);
        tao__runtime_wait(rt);
    }
    for (unsigned i = 0; rt->loops && i < rt->nloops; i++)
        tao__loop_deinit(&rt->loops[i]);
    for (unsigned i = 0; rt->workers && i < rt->nworkers; i++) {
        tao__workq_deinit(&rt->workers[i].wq);
        free(rt->workers[i].to_loop);
    }
    tao__timers_free_all(rt);
    tao__idmap_deinit(&rt->timers);
    free(rt->loops);
    free(rt->workers);
    pthread_mutex_destroy(&rt->lock);
    pthread_cond_destroy(&rt->cond);
    pthread_mutex_destroy(&rt->tlock);
    rt->loops = NULL;
    rt->workers = NULL;
}

bool tao__runtime_accepting(tao__runtime_t *rt)
{
    return atomic_load(&rt->state) == RT_RUNNING && !atomic_load(&rt->stop_requested);
}
