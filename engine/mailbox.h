/* Internal: every hand-off between threads (mailbox.c). Loops and workers
 * send each other items; the ordering rules are written once, in
 * mailbox.c. An item holds a reference to its connection, if it has one. */
#ifndef TAO_ENGINE_MAILBOX_H
#define TAO_ENGINE_MAILBOX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct tao__loop tao__loop_t;
typedef struct tao__worker tao__worker_t;
typedef struct tao_conn tao_conn_t;
typedef struct tao__chunk tao__chunk_t;
typedef struct tao__utimer tao__utimer_t;
typedef struct tao__bcast tao__bcast_t;

/* Items a loop runs (loop.c), from any thread. */
enum tao__loop_item {
    LI_SEND,         /* queue u.chunk on the connection */
    LI_FRAME,        /* queue the frame in bytes[] (a header, then u.frame.len bytes) */
    LI_CLOSE,        /* graceful close (from_worker: after its fence) */
    LI_ABORT,        /* abort */
    LI_RESUME,       /* the connection's worker backlog drained */
    LI_TIMER_ARM,    /* arm u.timer */
    LI_TIMER_CANCEL, /* disarm u.timer */
    LI_BROADCAST,    /* send u.bcast to every connection of its endpoint */
    LI_CONNECT,      /* start a client connection */
};

/* Items a worker runs (worker.c), from its connections' loops. */
enum tao__worker_item {
    WI_FRAME,  /* run the handler for the frame in bytes[] */
    WI_TIMER,  /* run u.timer's callback */
    WI_FENCE,  /* earlier frames are handled: let the loop close */
    WI_CLOSED, /* run on_close: the connection's last item */
};

typedef struct tao__item tao__item_t;
struct tao__item {
    tao__item_t *next;
    uint8_t kind;     /* enum tao__loop_item or tao__worker_item */
    bool from_worker; /* LI_CLOSE posted by the connection's own worker */
    tao_conn_t *conn; /* holds a reference when set */
    union {
        struct {
            int32_t type;
            uint32_t len;
        } frame; /* payload follows in bytes[] */
        tao__chunk_t *chunk;
        tao__utimer_t *timer;
        tao__bcast_t *bcast;
    } u;
    uint8_t bytes[];
};

typedef struct tao__queue {
    tao__item_t *head, *tail;
} tao__queue_t;

/* A loop's inbox: any thread posts, the loop drains once per batch. */
typedef struct tao__inbox {
    pthread_mutex_t lock;
    tao__queue_t q;       /* guarded by lock */
    atomic_bool ready;    /* q has items (spares the lock on empty batches) */
    atomic_bool sleeping; /* the loop is (about to be) blocked in the backend */
    int wake_fd;          /* eventfd the backend watches */
} tao__inbox_t;

/* A worker's queue: loops post batches, the worker takes them whole. */
typedef struct tao__workq {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    tao__queue_t q; /* guarded by lock */
    bool waiting, stop;
    atomic_uint_fast64_t depth; /* items queued, for stats */
} tao__workq_t;

tao__item_t *tao__item_new(uint8_t kind, tao_conn_t *conn, size_t extra);
void tao__item_free(tao__item_t *it);
void tao__queue_push(tao__queue_t *q, tao__item_t *it);

int tao__inbox_init(tao__inbox_t *in);
void tao__inbox_deinit(tao__inbox_t *in); /* frees what was never run */
void tao__workq_init(tao__workq_t *wq);
void tao__workq_deinit(tao__workq_t *wq);

/* Any thread: an item for a loop. */
void tao__post(tao__loop_t *loop, tao__item_t *it);
/* Any thread, signal handlers included: wake the loop if it sleeps. */
void tao__loop_wake(tao__loop_t *loop);
/* The loop: everything posted so far, in order. */
tao__queue_t tao__inbox_take(tao__loop_t *loop);
bool tao__inbox_empty(tao__loop_t *loop);

/* The loop: an item for worker w, sent with the batch. */
void tao__to_worker(tao__loop_t *loop, unsigned w, tao__item_t *it);
/* The loop, after each batch: send the workers their items. */
void tao__loop_send_batches(tao__loop_t *loop);
/* A worker: wait for items (or the stop); false once stopped and empty. */
bool tao__worker_take(tao__worker_t *w, tao__queue_t *batch);
/* A worker, after each batch: send the loops their items. */
void tao__worker_send_batches(tao__worker_t *w);
/* Tell a worker to end once its queue is empty. */
void tao__worker_stop(tao__worker_t *w);

#endif
