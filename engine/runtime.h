/* Internal: a runtime (runtime.c), the loops and workers a server or
 * client group runs on: created, started, stopped, joined. It owns its
 * loops and workers; a loop owns what runs on it. */
#ifndef TAO_ENGINE_RUNTIME_H
#define TAO_ENGINE_RUNTIME_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/idmap.h"

typedef struct tao__loop tao__loop_t;
typedef struct tao__worker tao__worker_t;
typedef struct tao__settings tao__settings_t;

enum tao__rt_state {
    RT_CREATED, /* threads not started: handlers may still be registered */
    RT_RUNNING, /* started (stop may have been asked) */
    RT_JOINED,  /* every thread has ended */
};

typedef struct tao__runtime {
    unsigned nloops, nworkers;
    tao__loop_t *loops;
    tao__worker_t *workers;
    unsigned buf_count, buf_size;
    unsigned zc_count, zc_size; /* registered send buffers per loop */
    bool no_pin;
    tao_backend_t want;       /* the config's choice */
    const tao__backend_t *be; /* the one picked at start; NULL before */
    char features[96];        /* the kernel features it uses, loop 0's setup writes */
    atomic_bool stop_requested;
    atomic_uint stop_deadline_ms;
    _Atomic enum tao__rt_state state;
    atomic_uint next_worker;
    pthread_mutex_t lock; /* start-up reports, joining */
    pthread_cond_t cond;
    pthread_mutex_t tlock; /* guards timers and next_timer_id */
    tao__idmap_t timers;   /* user timers by id (timer.c) */
    uint64_t next_timer_id;
} tao__runtime_t;

/* loops and workers are the counts to run; the rest comes from s. */
int tao__runtime_init(tao__runtime_t *rt, const tao__settings_t *s, unsigned loops,
                      unsigned workers);
/* prepare runs for each loop before the threads start (a server opens its
 * listeners there, so bind errors come back from start). */
int tao__runtime_start(tao__runtime_t *rt, int (*prepare)(tao__loop_t *, void *), void *arg);
/* Only atomics and write(2): callable from a signal handler. */
void tao__runtime_stop(tao__runtime_t *rt, unsigned deadline_ms);
void tao__runtime_wait(tao__runtime_t *rt);
void tao__runtime_deinit(tao__runtime_t *rt);
bool tao__runtime_accepting(tao__runtime_t *rt); /* running, and no stop asked */

#endif
