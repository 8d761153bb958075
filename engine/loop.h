/* Internal: an I/O loop (loop.c). One thread, one backend instance, one
 * set of receive buffers, one timing wheel, and the connections on it.
 * What a loop owns is touched only by its thread (TAO__ON_LOOP asserts it
 * in debug builds); other threads reach it through its inbox (mailbox.c).
 * The few fields read from elsewhere are atomics or marked so. */
#ifndef TAO_ENGINE_LOOP_H
#define TAO_ENGINE_LOOP_H

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/list.h"
#include "engine/mailbox.h"
#include "engine/outq.h"
#include "engine/timerwheel.h"

typedef struct tao__runtime tao__runtime_t;
typedef struct tao_server tao_server_t;
typedef struct tao__listener tao__listener_t;

/* Counters written by the loop thread only, read by anyone. */
typedef struct tao__counters {
    uint64_t accepted, refused, closed, frames_in, frames_out, bytes_in, bytes_out;
    uint64_t unknown, decode_err, send_rejected, backoffs, enobufs;
    uint64_t queued, timeouts, timers, zc_sends, proxy_err;
} tao__counters_t;

#define STAT_ADD(loop, field, n)                                                                   \
    __atomic_store_n(&(loop)->stats.field, (loop)->stats.field + (uint64_t)(n), __ATOMIC_RELAXED)

struct tao__loop {
    tao__runtime_t *rt;
    tao_server_t *srv; /* the server listening on this loop, if any */
    unsigned idx;
    pthread_t thread;
    bool thread_started;
    bool ready; /* setup finished (guarded by rt->lock) */
    int setup_err;
    const tao__backend_t *be;
    void *be_data; /* the backend's own state */

    /* The sockets it accepts on (listener.c). */
    tao__listener_t *lst;
    unsigned nlst;
    bool unlistened; /* they are closed: stopping, or handed over */
    tao__timer_t listen_watch;

    /* Receive buffers and who holds each (bufring.c). */
    uint8_t *bufs;
    unsigned buf_count, buf_size;
    unsigned bufs_avail;      /* with the backend now (whole, or their rest) */
    uint32_t *buf_refs;       /* holds: each receive's slice, each lending chunk */
    uint8_t *buf_state;       /* with the backend, lent (flags, bufring.c) */
    uint32_t *buf_off;        /* where the kernel's next slice starts */
    unsigned bufs_lent;       /* buffers with a lender among their holders */
    const uint8_t *recv_base; /* the bytes being decoded now, or NULL */
    const uint8_t *recv_end;
    uint16_t recv_bid;

    /* Registered send buffers for SEND_ZC (io_uring only): a slot is free
     * when its count of users (the chunk, each send until the kernel's
     * notification) is 0. */
    uint8_t *zc_mem;
    unsigned zc_count, zc_size, zc_nfree;
    uint16_t *zc_free, *zc_refs;

    tao__inbox_t inbox;
    tao__queue_t *to_worker; /* per worker: items of this batch */

    tao__wheel_t wheel;
    uint64_t now; /* ms, read at each wake-up */
    uint16_t next_gen;

    tao__list_t timers; /* live user timers (timer.c) */
    tao__list_t conns;  /* every connection on the loop (conn.c) */
    size_t nconns;
    tao_conn_t *dirty;                /* connections with output to flush */
    tao_conn_t *nobufs, *nobufs_tail; /* receives to re-arm, oldest first */
    tao__sendctx_t *free_ctx;
    tao__chunk_cache_t chunks; /* spare output chunks (outq.c) */
    /* Output bytes counted for qep's budget and not yet added to it
     * (send.c): under TAO__QUEUED_SLACK either way, published by the end
     * of the batch. */
    struct tao__endpoint *qep;
    ptrdiff_t qdelta;

    bool stopping;
    tao__timer_t stop_deadline;
    tao__timer_t drain_timer; /* a draining connection may have gone quiet */

    tao__counters_t stats;
};

/* The loop whose thread this is, or NULL; the same for workers. */
extern __thread tao__loop_t *tao__cur_loop;
extern __thread tao__worker_t *tao__cur_worker;

/* Debug builds: a loop-only function checks that it runs on its loop. */
#define TAO__ON_LOOP(loop) assert(tao__cur_loop == (loop))

uint64_t tao__now_ms(void);
int tao__loop_init(tao__loop_t *loop, tao__runtime_t *rt, unsigned idx);
void tao__loop_deinit(tao__loop_t *loop);
void *tao__loop_main(void *arg);
/* Completions the backend holds that the loop has not seen yet. */
bool tao__loop_behind(tao__loop_t *loop);

#endif
