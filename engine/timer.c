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

#include "engine/conn.h"
#include "engine/endpoint.h"
#include "engine/fault.h"
#include "engine/loop.h"
#include "engine/runtime.h"
#include "engine/server.h"
#include "engine/timer.h"

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

static void map_insert(tao__runtime_t *rt, tao__utimer_t *t)
{
    pthread_mutex_lock(&rt->tlock);
    t->idn.id = rt->next_timer_id++;
    tao__idmap_insert(&rt->timers, &t->idn);
    pthread_mutex_unlock(&rt->tlock);
}

/* Remove by id; returns the timer (with a new reference) or NULL. */
static tao__utimer_t *map_take(tao__runtime_t *rt, uint64_t id, const tao_conn_t *conn)
{
    pthread_mutex_lock(&rt->tlock);
    tao__idnode_t *n = tao__idmap_find(&rt->timers, id);
    tao__utimer_t *t = n ? container_of(n, tao__utimer_t, idn) : NULL;
    if (t && (!conn || t->conn == conn)) {
        tao__idmap_remove(&rt->timers, n);
        atomic_fetch_add(&t->refs, 1);
    } else {
        t = NULL;
    }
    pthread_mutex_unlock(&rt->tlock);
    return t;
}

/* Remove this timer if it is still mapped; true when it was. */
static bool map_remove(tao__runtime_t *rt, tao__utimer_t *t)
{
    tao__utimer_t *got = map_take(rt, t->idn.id, NULL);
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
    tao__list_remove(&t->lnode);
    tao__list_remove(&t->cnode);
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
        tao__item_t *it = tao__item_new(WI_TIMER, t->conn, 0);
        if (it) {
            atomic_fetch_add(&t->refs, 1);
            it->u.timer = t;
            tao__to_worker(loop, t->conn->worker, it);
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
    TAO__ON_LOOP(loop);
    if (atomic_load(&t->cancelled) || (c && (c->flags & (C_CLOSE_SUBMITTED | C_DEAD)))) {
        map_remove(loop->rt, t);
        tao__timer_unref(t);
        return;
    }
    t->live = true;
    tao__list_push(&loop->timers, &t->lnode);
    if (c)
        tao__list_push(&c->timers, &t->cnode);
    STAT_ADD(loop, timers, 1);
    tao__timer_init(&t->wt, fire);
    tao__wheel_add(&loop->wheel, &t->wt, t->due, t->period);
}

void tao__timer_cancel_local(tao__loop_t *loop, tao__utimer_t *t)
{
    TAO__ON_LOOP(loop);
    if (t->live)
        unlink_live(loop, t);
}

void tao__conn_timers_cancel(tao_conn_t *c)
{
    TAO__ON_LOOP(c->loop);
    while (!tao__list_empty(&c->timers)) {
        tao__utimer_t *t = container_of(c->timers.next, tao__utimer_t, cnode);
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
    while (!tao__list_empty(&loop->timers)) {
        tao__utimer_t *t = container_of(loop->timers.next, tao__utimer_t, lnode);
        map_remove(loop->rt, t);
        unlink_live(loop, t);
    }
}

void tao__timers_free_all(tao__runtime_t *rt)
{
    /* Every loop has freed its live timers; what is left was never armed. */
    tao__idmap_t *m = &rt->timers;
    for (size_t i = 0; m->slots && i <= m->mask; i++) {
        for (tao__idnode_t *n = m->slots[i], *next; n; n = next) {
            next = n->next;
            tao__timer_unref(container_of(n, tao__utimer_t, idn));
        }
        m->slots[i] = NULL;
    }
    m->count = 0;
}

/* ---- the public calls ------------------------------------------------------ */

static int64_t tao__timer_add(tao__runtime_t *rt, tao__loop_t *loop, tao_conn_t *conn, void *owner,
                              uint64_t due, uint64_t period, tao_timer_cb cb, void *arg)
{
    if (!cb)
        return -EINVAL;
    if (!tao__runtime_accepting(rt) || (conn && atomic_load(&conn->closing)))
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
    tao__list_init(&t->lnode);
    tao__list_init(&t->cnode);
    if (conn) {
        t->conn = conn;
        tao__conn_ref(conn);
    }
    map_insert(rt, t);
    int64_t id = (int64_t)t->idn.id;
    if (tao__cur_loop == loop) {
        tao__timer_arm_local(loop, t);
        return id;
    }
    tao__item_t *it = tao__item_new(LI_TIMER_ARM, NULL, 0);
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
    if (tao__cur_loop == t->loop) {
        tao__timer_cancel_local(t->loop, t);
        tao__timer_unref(t);
        return 0;
    }
    tao__item_t *it = tao__item_new(LI_TIMER_CANCEL, NULL, 0);
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
    tao__loop_t *l = tao__cur_loop;
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
