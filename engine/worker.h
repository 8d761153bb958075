/* Internal: worker threads (worker.c), where handlers run when they may
 * block. Each connection is pinned to one worker. */
#ifndef TAO_ENGINE_WORKER_H
#define TAO_ENGINE_WORKER_H

#include <pthread.h>
#include <stdbool.h>

#include "engine/mailbox.h"

typedef struct tao__runtime tao__runtime_t;

struct tao__worker {
    tao__runtime_t *rt;
    unsigned idx;
    pthread_t thread;
    bool thread_started;
    tao__workq_t wq;
    tao__queue_t *to_loop; /* per loop: items of this batch (worker only) */
};

void *tao__worker_main(void *arg);

#endif
