/* User timers: run-at, run-after, run-every and cancel, from any thread.
 *
 * A timer lives on one loop's timing wheel. Its id maps to it through the
 * runtime's timer map (a mutex-guarded hash), which is what makes cancel
 * from another thread safe: whoever removes the id from the map owns the
 * outcome, so a one-shot timer either fires or is cancelled, never both.
 * A cancelled timer also carries a flag checked just before its callback
 * runs, so a callback already handed to a worker does not run after cancel
 * returns. References: the loop holds one while the timer is live on its
 * wheel; every item carrying the timer holds one. */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "engine/engine.h"
#include "engine/fault.h"

TAO_API uint64_t tao_now_ms(void)
{
    return tao__now_ms();
}

/* Now rounded up: a timer due now_ceil + d cannot fire before d elapsed. */
static uint64_t now_ceil(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + ((uint64_t)ts.tv_nsec + 999999u) / 1000000u;
}

/* ---- the id map ----------------------------------------------------------- */

static int map_grow(tao__runtime_t *rt)
{
    size_t cap = rt->tmap_cap ? rt->tmap_cap * 2 : 256;
    tao__utimer_t **m = tao__calloc(cap, sizeof *m);
    if (!m)
        return -ENOMEM;
    for (size_t i = 0; i < rt->tmap_cap; i++) {
        for (tao__utimer_t *t = rt->tmap[i], *next; t; t = next) {
            next = t->hnext;
            t->hnext = m[t->id & (cap - 1)];
            m[t->id & (cap - 1)] = t;
        }
    }
    free(rt->tmap);
    rt->tmap = m;
    rt->tmap_cap = cap;
    return 0;
}

static int map_insert(tao__runtime_t *rt, tao__utimer_t *t)
{
    pthread_mutex_lock(&rt->tlock);
    if (rt->tmap_count * 2 >= rt->tmap_cap && map_grow(rt) < 0) {
        pthread_mutex_unlock(&rt->tlock);
        return -ENOMEM;
    }
    t->id = rt->next_timer_id++;
    t->hnext = rt->tmap[t->id & (rt->tmap_cap - 1)];
    rt->tmap[t->id & (rt->tmap_cap - 1)] = t;
    rt->tmap_count++;
    pthread_mutex_unlock(&rt->tlock);
    return 0;
}

/* Remove by id; returns the timer (with a new reference) or NULL. */
static tao__utimer_t *map_take(tao__runtime_t *rt, uint64_t id, const tao_conn_t *conn)
{
    tao__utimer_t *t = NULL;
    pthread_mutex_lock(&rt->tlock);
    for (tao__utimer_t **p = rt->tmap_cap ? &rt->tmap[id & (rt->tmap_cap - 1)] : NULL; p && *p;
         p = &(*p)->hnext) {
        if ((*p)->id == id && (!conn || (*p)->conn == conn)) {
            t = *p;
            *p = t->hnext;
            rt->tmap_count--;
            atomic_fetch_add(&t->refs, 1);
            break;
        }
    }
    pthread_mutex_unlock(&rt->tlock);
    return t;
}

/* Remove this timer if it is still mapped; true when it was. */
static bool map_remove(tao__runtime_t *rt, tao__utimer_t *t)
{
    tao__utimer_t *got = map_take(rt, t->id, NULL);
    if (got)
        atomic_fetch_sub(&got->refs, 1);
    return got != NULL;
}

void tao__timer_unref(tao__utimer_t *t)
{
    if (atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    if (t->conn)
        tao__conn_unref(t->conn);
    free(t);
}

/* ---- on the loop ------------------------------------------------------------ */

static void unlink_live(tao__loop_t *loop, tao__utimer_t *t)
{
    tao__wheel_cancel(&loop->wheel, &t->wt);
    if (t->lprev)
        t->lprev->lnext = t->lnext;
    else
        loop->timers = t->lnext;
    if (t->lnext)
        t->lnext->lprev = t->lprev;
    if (t->conn) {
        if (t->cprev)
            t->cprev->cnext = t->cnext;
        else
            t->conn->timers = t->cnext;
        if (t->cnext)
            t->cnext->cprev = t->cprev;
    }
    t->live = false;
    STAT_ADD(loop, timers, -1);
    tao__timer_unref(t);
}

void tao__timer_run(tao__utimer_t *t)
{
    if (!atomic_load(&t->cancelled))
        t->cb(t->conn, t->arg);
}

static void fire(tao__timer_t *wt, uint64_t now)
{
    tao__utimer_t *t = container_of(wt, tao__utimer_t, wt);
    tao__loop_t *loop = t->loop;
    bool once = t->period == 0;

    /* A one-shot timer fires only if it is still mapped: a racing cancel
     * that removed it first wins. */
    if (once && !map_remove(loop->rt, t)) {
        unlink_live(loop, t);
        return;
    }
    if (t->conn && t->conn->ep->workers) {
        tao__item_t *it = tao__item_new(IT_TIMER, t->conn, 0);
        if (it) {
            atomic_fetch_add(&t->refs, 1);
            it->u.timer = t;
            tao__queue_push(&loop->to_worker[t->conn->worker], it);
        }
    } else {
        tao__timer_run(t);
    }
    if (once && t->live)
        unlink_live(loop, t);
}

void tao__timer_arm_local(tao__loop_t *loop, tao__utimer_t *t)
{
    tao_conn_t *c = t->conn;
    if (atomic_load(&t->cancelled) || (c && (c->flags & (C_CLOSE_SUBMITTED | C_DEAD)))) {
        map_remove(loop->rt, t);
        tao__timer_unref(t);
        return;
    }
    t->live = true;
    t->lprev = NULL;
    t->lnext = loop->timers;
    if (loop->timers)
        loop->timers->lprev = t;
    loop->timers = t;
    if (c) {
        t->cprev = NULL;
        t->cnext = c->timers;
        if (c->timers)
            c->timers->cprev = t;
        c->timers = t;
    }
    STAT_ADD(loop, timers, 1);
    tao__timer_init(&t->wt, fire);
    tao__wheel_add(&loop->wheel, &t->wt, t->due, t->period);
}

void tao__timer_cancel_local(tao__loop_t *loop, tao__utimer_t *t)
{
    if (t->live)
        unlink_live(loop, t);
}

void tao__conn_timers_cancel(tao_conn_t *c)
{
    while (c->timers) {
        tao__utimer_t *t = c->timers;
        atomic_store(&t->cancelled, true);
        map_remove(c->loop->rt, t);
        unlink_live(c->loop, t);
    }
}

/* An arm item that never reached a running loop. */
void tao__timer_discard(tao__utimer_t *t)
{
    map_remove(t->rt, t);
    tao__timer_unref(t);
}

void tao__loop_timers_free(tao__loop_t *loop)
{
    while (loop->timers) {
        tao__utimer_t *t = loop->timers;
        map_remove(loop->rt, t);
        unlink_live(loop, t);
    }
}

void tao__timers_free_all(tao__runtime_t *rt)
{
    /* Every loop has freed its live timers; what is left was never armed. */
    for (size_t i = 0; i < rt->tmap_cap; i++) {
        for (tao__utimer_t *t = rt->tmap[i], *next; t; t = next) {
            next = t->hnext;
            tao__timer_unref(t);
        }
    }
    free(rt->tmap);
    rt->tmap = NULL;
    rt->tmap_cap = rt->tmap_count = 0;
}

/* ---- the public calls ------------------------------------------------------ */

int64_t tao__timer_add(tao__runtime_t *rt, tao__loop_t *loop, tao_conn_t *conn, void *owner,
                       uint64_t due, uint64_t period, tao_timer_cb cb, void *arg)
{
    if (!cb)
        return -EINVAL;
    if (atomic_load(&rt->state) != 1 || atomic_load(&rt->stop_requested) ||
        (conn && atomic_load(&conn->closing)))
        return -ESHUTDOWN;
    tao__utimer_t *t = tao__calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->loop = loop;
    t->rt = rt;
    t->owner = owner;
    t->cb = cb;
    t->arg = arg;
    t->due = due;
    t->period = period;
    atomic_init(&t->refs, 1);
    if (conn) {
        t->conn = conn;
        tao__conn_ref(conn);
    }
    if (map_insert(rt, t) < 0) {
        tao__timer_unref(t);
        return -ENOMEM;
    }
    int64_t id = (int64_t)t->id;
    if (tao__tls_loop == loop) {
        tao__timer_arm_local(loop, t);
        return id;
    }
    tao__item_t *it = tao__item_new(IT_TIMER_ARM, NULL, 0);
    if (!it) {
        tao__timer_discard(t);
        return -ENOMEM;
    }
    it->u.timer = t;
    tao__post(loop, it);
    return id;
}

static int cancel(tao__runtime_t *rt, int64_t id, const tao_conn_t *conn)
{
    if (id <= 0)
        return -ENOENT;
    tao__utimer_t *t = map_take(rt, (uint64_t)id, conn);
    if (!t)
        return -ENOENT;
    atomic_store(&t->cancelled, true);
    if (tao__tls_loop == t->loop) {
        tao__timer_cancel_local(t->loop, t);
        tao__timer_unref(t);
        return 0;
    }
    tao__item_t *it = tao__item_new(IT_TIMER_CANCEL, NULL, 0);
    if (!it) {
        /* The flag alone keeps the callback from running; the loop frees
         * the timer when it comes due. */
        tao__timer_unref(t);
        return 0;
    }
    it->u.timer = t;
    tao__post(t->loop, it);
    return 0;
}

/* Server timers go to the caller's loop when it is one of ours, else loop 0. */
static tao__loop_t *server_loop(tao_server_t *srv)
{
    tao__loop_t *l = tao__tls_loop;
    return l && l->rt == &srv->rt ? l : &srv->rt.loops[0];
}

TAO_API int64_t tao_server_run_at(tao_server_t *srv, uint64_t when_ms, tao_timer_cb cb, void *arg)
{
    if (!srv->rt.loops)
        return -ESHUTDOWN;
    return tao__timer_add(&srv->rt, server_loop(srv), NULL, srv, when_ms, 0, cb, arg);
}

TAO_API int64_t tao_server_run_after(tao_server_t *srv, uint64_t delay_ms, tao_timer_cb cb,
                                     void *arg)
{
    return tao_server_run_at(srv, now_ceil() + delay_ms, cb, arg);
}

TAO_API int64_t tao_server_run_every(tao_server_t *srv, uint64_t interval_ms, tao_timer_cb cb,
                                     void *arg)
{
    if (!interval_ms)
        return -EINVAL;
    if (!srv->rt.loops)
        return -ESHUTDOWN;
    return tao__timer_add(&srv->rt, server_loop(srv), NULL, srv, now_ceil() + interval_ms,
                          interval_ms, cb, arg);
}

TAO_API int tao_server_cancel_timer(tao_server_t *srv, int64_t id)
{
    return cancel(&srv->rt, id, NULL);
}

TAO_API int64_t tao_conn_run_at(tao_conn_t *c, uint64_t when_ms, tao_timer_cb cb, void *arg)
{
    return tao__timer_add(c->loop->rt, c->loop, c, c->ep->srv, when_ms, 0, cb, arg);
}

TAO_API int64_t tao_conn_run_after(tao_conn_t *c, uint64_t delay_ms, tao_timer_cb cb, void *arg)
{
    return tao_conn_run_at(c, now_ceil() + delay_ms, cb, arg);
}

TAO_API int64_t tao_conn_run_every(tao_conn_t *c, uint64_t interval_ms, tao_timer_cb cb, void *arg)
{
    if (!interval_ms)
        return -EINVAL;
    return tao__timer_add(c->loop->rt, c->loop, c, c->ep->srv, now_ceil() + interval_ms,
                          interval_ms, cb, arg);
}

TAO_API int tao_conn_cancel_timer(tao_conn_t *c, int64_t id)
{
    return cancel(c->loop->rt, id, c);
}
