/* Internal: user timers (timer.c): run-at, run-after, run-every and cancel
 * from any thread, on one loop's timing wheel each. */
#ifndef TAO_ENGINE_TIMER_H
#define TAO_ENGINE_TIMER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/idmap.h"
#include "engine/list.h"
#include "engine/timerwheel.h"
#include "tao/timer.h"

typedef struct tao__loop tao__loop_t;
typedef struct tao__runtime tao__runtime_t;

struct tao__utimer {
    tao__timer_t wt;
    tao__list_t cnode; /* the connection's timers (loop only) */
    tao__list_t lnode; /* the loop's live timers (loop only) */
    bool live;         /* armed on the loop, holding its reference */
    tao__idnode_t idn; /* the runtime's timer map */
    tao__loop_t *loop;
    tao__runtime_t *rt;
    tao_conn_t *conn; /* holds a reference */
    void *owner;      /* server or client group, for the callback */
    tao_timer_cb cb;
    void *arg;
    uint64_t due, period;
    atomic_uint refs;
    atomic_bool cancelled;
};

/* The loop: an item asked to arm or cancel t. */
void tao__timer_arm_local(tao__loop_t *loop, tao__utimer_t *t);
void tao__timer_cancel_local(tao__loop_t *loop, tao__utimer_t *t);
/* A worker: run the callback (unless cancelled since). */
void tao__timer_run(tao__utimer_t *t);
void tao__timer_unref(tao__utimer_t *t);
/* An item that would have armed t was never run. */
void tao__timer_discard(tao__utimer_t *t);
void tao__conn_timers_cancel(tao_conn_t *c);
void tao__loop_timers_free(tao__loop_t *loop);
void tao__timers_free_all(tao__runtime_t *rt);

#endif
