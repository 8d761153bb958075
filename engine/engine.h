/* Internal: the structures shared by the engine's files.
 *
 * Ownership: a runtime owns its loops and workers; a loop owns its ring,
 * listener, buffer ring, timing wheel and connections. What a loop owns is
 * touched only by the loop's thread. Other threads reach it by posting items
 * to the loop's inbox (a mutex-protected list taken whole by the loop once
 * per batch); the few fields read from elsewhere are atomics, marked so.
 *
 * An endpoint is what a connection was made by: a server, or a client
 * group. It holds the codec, the registry, the callbacks and the limits. */
#ifndef TAO_ENGINE_ENGINE_H
#define TAO_ENGINE_ENGINE_H

#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "codec/registry.h"
#include "engine/bufring.h"
#include "engine/log.h"
#include "engine/timerwheel.h"
#include "engine/tls.h"
#include "tao/server.h"
#include "tao/timer.h"
#include "tao/client.h"

#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

typedef struct tao__loop tao__loop_t;
typedef struct tao__worker tao__worker_t;
typedef struct tao__runtime tao__runtime_t;
struct tao__cstate;
typedef struct tao__utimer tao__utimer_t;

/* ---- operations ----------------------------------------------------------
 * Every SQE's user_data is an op pointer with the owner's generation in the
 * top 16 bits: a completion whose generation no longer matches its owner is
 * stale and ignored. user_data 0 marks fire-and-forget SQEs. */
enum tao__op_kind {
    OP_ACCEPT,
    OP_RECV,
    OP_SEND,
    OP_CLOSE,
    OP_TIMEOUT,
    OP_WAKE,
    OP_CONNECT,
    OP_KINDS,
};

typedef struct tao__op {
    uint8_t kind;
    uint16_t gen; /* the owner's generation, set when the owner is created */
} tao__op_t;

#define TAO__UD_PTR_MASK ((UINT64_C(1) << 48) - 1)

/* ---- output queue ----------------------------------------------------- */
typedef struct tao__chunk tao__chunk_t;
struct tao__chunk {
    tao__chunk_t *next;
    uint32_t len; /* bytes used in data[] */
    uint32_t cap; /* bytes available in data[] (0 for an owned chunk) */
    uint8_t *ext; /* owned payload, sent after data[] */
    size_t ext_len;
    tao_payload_free_fn free_fn;
    void *free_user;
    tao__loop_t *zc_loop; /* set when ext is a registered buffer */
    tao__loop_t *lent;    /* set when ext lies in this loop's receive buffer lent_bid */
    uint16_t lent_bid;
    uint32_t zc_slot; /* that buffer's index */
    uint8_t post[TAO_FRAME_POST_MAX];
    uint8_t post_len;
    uint8_t data[];
};

typedef struct tao__outq {
    tao__chunk_t *head, *tail;
    size_t bytes;    /* unsent bytes */
    size_t head_off; /* bytes of head already sent */
} tao__outq_t;

#define TAO__IOV_MAX 64

typedef struct tao__sendctx tao__sendctx_t;
struct tao__sendctx {
    tao__sendctx_t *next_free;
    tao__op_t op; /* every send's user_data */
    tao_conn_t *conn;
    int zc_slot; /* registered buffer of a SEND_ZC, else -1 */
    struct msghdr msg;
    struct iovec iov[TAO__IOV_MAX];
};

/* ---- items: work handed between threads -------------------------------- */
enum tao__item_kind {
    IT_FRAME,        /* loop -> worker: run the handler for a frame */
    IT_CLOSED,       /* loop -> worker: run on_close, last item of a connection */
    IT_FENCE,        /* loop -> worker -> loop: close once earlier frames are handled */
    IT_TIMER,        /* loop -> worker: run a connection timer's callback */
    IT_SEND,         /* any -> loop: queue a chunk on a connection */
    IT_CLOSE,        /* any -> loop: graceful close */
    IT_ABORT,        /* any -> loop: abort */
    IT_RESUME,       /* worker -> loop: the connection's worker backlog drained */
    IT_TIMER_ARM,    /* any -> loop: arm a user timer */
    IT_TIMER_CANCEL, /* any -> loop: disarm a user timer */
    IT_BROADCAST,    /* any -> loop: send to every connection of an endpoint */
    IT_CONNECT,      /* any -> loop: start a client connection */
};

typedef struct tao__bcast tao__bcast_t;

typedef struct tao__item tao__item_t;
struct tao__item {
    tao__item_t *next;
    uint8_t kind;
    bool from_worker; /* IT_CLOSE posted by the connection's own worker */
    tao_conn_t *conn; /* holds a reference when set */
    union {
        struct {
            int32_t type;
            uint32_t len;
        } frame; /* payload follows in bytes[] */
        tao__chunk_t *chunk;
        tao__utimer_t *timer;
        tao__bcast_t *bcast;
        void *ptr;
    } u;
    uint8_t bytes[];
};

typedef struct tao__queue {
    tao__item_t *head, *tail;
} tao__queue_t;

static inline void tao__queue_push(tao__queue_t *q, tao__item_t *it)
{
    it->next = NULL;
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
}

static inline void tao__queue_splice(tao__queue_t *dst, tao__queue_t *src)
{
    if (!src->head)
        return;
    if (dst->tail)
        dst->tail->next = src->head;
    else
        dst->head = src->head;
    dst->tail = src->tail;
    src->head = src->tail = NULL;
}

/* A shared broadcast payload: one copy, referenced by every loop. */
struct tao__bcast {
    atomic_uint refs;
    struct tao__endpoint *ep; /* endpoint whose connections get it */
    int32_t type;
    size_t len;
    uint8_t data[];
};

/* ---- endpoints ------------------------------------------------------------- */
typedef struct tao__endpoint {
    tao_server_t *srv; /* NULL for client groups */
    void *client;      /* the client group, NULL for servers */
    tao_codec_t codec;
    tao__registry_t *reg;
    size_t out_high, out_low;
    unsigned idle_ms, read_ms, heartbeat_ms, close_ms;
    bool workers; /* handlers run on the runtime's workers */
    tao_connect_cb on_connect;
    tao_handler_cb on_message;
    tao_close_cb on_close;
    tao_writable_cb on_writable;
    void (*on_error)(struct tao__endpoint *ep, tao_conn_t *c, int err, const char *what);
    tao__tls_ctx_t *tls;   /* TLS on every connection, when set */
    size_t zc_threshold;   /* SEND_ZC for payloads this large; 0 = never */
    size_t max_queued;     /* budget for every connection's output together */
    _Atomic size_t queued; /* any thread: output bytes queued, all connections,
                              and broadcast payloads not yet delivered */
    atomic_uint_fast64_t bcast_skipped;
    atomic_uint_fast64_t unmarshal_err;
    atomic_uint_fast64_t send_rejected;
    atomic_uint nconns;           /* open connections (any thread) */
    atomic_uint_fast64_t next_id; /* connection ids (any thread) */
    pthread_mutex_t map_lock;     /* id -> connection, for unicast */
    tao_conn_t **map;
    size_t map_mask;
} tao__endpoint_t;

/* ---- connections --------------------------------------------------------- */
enum {
    C_RECV_ARMED = 1u << 0, /* a multishot recv is in flight */
    C_SEND_INFLIGHT = 1u << 1,
    C_CLOSING = 1u << 2, /* close or abort under way */
    C_ABORT = 1u << 3,
    C_PAUSED = 1u << 4,    /* output above the high watermark: not reading */
    C_CANCELING = 1u << 5, /* a cancel of the recv is in flight */
    C_DIRTY = 1u << 6,     /* on the loop's flush list */
    C_NOBUFS = 1u << 7,    /* recv ended with -ENOBUFS: re-arm after refill */
    C_SHUT = 1u << 8,      /* shutdown(SHUT_WR) submitted */
    C_EOF = 1u << 9,       /* peer sent FIN, or the socket failed */
    C_CLOSE_SUBMITTED = 1u << 10,
    C_LINGER_DONE = 1u << 12, /* stop waiting for the peer's FIN */
    C_DEAD = 1u << 13,        /* closed; dropped when it leaves the loop's lists */
    C_WPAUSED = 1u << 14,     /* worker backlog above the limit: not reading */
    C_FENCING = 1u << 15,     /* a close is waiting for the worker to catch up */
    C_OFFLINE = 1u << 16,     /* client: no socket (connecting or backing off) */
    C_DRAIN = 1u << 17,       /* stopping: read what the peer already sent, then close */
};

struct tao_conn {
    tao__loop_t *loop;
    tao__endpoint_t *ep;
    uint64_t id;
    void *data;
    int fd;
    uint32_t flags;
    uint16_t worker;
    tao__op_t recv_op, close_op;
    atomic_uint refs;          /* any thread: the loop's, plus one per item */
    atomic_bool closing;       /* any thread: published C_CLOSING */
    atomic_bool want_writable; /* any thread: a send got -EAGAIN */
    atomic_bool connected;     /* any thread: false while a client is offline */
    _Atomic size_t queued;     /* any thread: output bytes queued or in transit */
    _Atomic size_t wpending;   /* any thread: bytes handed to the worker, not handled */
    atomic_bool wpause_req;    /* any thread: the loop paused for the worker, wants IT_RESUME */
    tao_conn_t *next, *prev;   /* loop's connection list */
    tao_conn_t *dirty_next;    /* loop's flush list */
    tao_conn_t *nobufs_next;   /* loop's re-arm list (apart: a conn can be on both) */
    uint8_t *in;               /* bytes received and not yet decoded */
    uint32_t in_len, in_cap;
    tao__outq_t out;
    tao__sendctx_t *sending;
    tao__timer_t linger;        /* close: its deadline, then the bounded wait for a FIN */
    tao__timer_t ka;            /* idle, read and heartbeat checks (keepalive.c) */
    uint64_t last_rx;           /* a byte arrived */
    uint64_t last_out;          /* the peer took bytes of a waiting output queue */
    uint64_t last_tx;           /* we last sent (heartbeats) */
    uint64_t partial_since;     /* reading, and waiting for the rest of a frame */
    tao__utimer_t *timers;      /* user timers, cancelled on close */
    struct tao__cstate *client; /* client connection state, when a client */
    struct tao__tls *tls;       /* TLS state, when the endpoint has TLS */
    tao_conn_t *map_next;       /* server's id map chain */
    struct sockaddr_in6 peer;   /* the peer's address (v4 or v6), set once */
    socklen_t peer_len;
};

/* ---- client connections ------------------------------------------------ */
typedef struct tao__cstate {
    tao_client_t *cl;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    tao__op_t connect_op;
    tao__timer_t timer; /* connect timeout, or the backoff before a retry */
    unsigned failures;  /* failed attempts in a row */
    bool connecting;    /* a connect op is in flight */
    bool timed_out;     /* the connect timeout cancelled it */
    int last_err;       /* why the last socket failed; 0 for a FIN */
    atomic_bool user_closed;
} tao__cstate_t;

/* ---- user timers ---------------------------------------------------------- */
struct tao__utimer {
    tao__timer_t wt;
    tao__utimer_t *cnext, *cprev; /* the connection's timer list (loop only) */
    tao__utimer_t *lnext, *lprev; /* the loop's live timers (loop only) */
    bool live;                    /* armed on the loop, holding its reference */
    tao__utimer_t *hnext;         /* timer map chain */
    uint64_t id;
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

/* ---- loops ------------------------------------------------------------ */
/* Counters written by the loop thread only, read by anyone. */
typedef struct tao__counters {
    uint64_t accepted, refused, closed, frames_in, frames_out, bytes_in, bytes_out;
    uint64_t unknown, decode_err, unmarshal_err, send_rejected, backoffs, enobufs;
    uint64_t queued, timeouts, timers, zc_sends;
} tao__counters_t;

#define STAT_ADD(loop, field, n)                                                                   \
    __atomic_store_n(&(loop)->stats.field, (loop)->stats.field + (uint64_t)(n), __ATOMIC_RELAXED)

struct tao__loop {
    tao__runtime_t *rt;
    tao_server_t *srv; /* the server listening on this loop, if any */
    unsigned idx;
    pthread_t thread;
    bool thread_started;
    struct io_uring ring;
    bool ring_ready;
    int setup_err;

    int listen_fd;
    tao__op_t accept_op;
    bool accept_armed;
    tao__timer_t accept_retry;
    unsigned accept_backoff;

    struct io_uring_buf_ring *br;
    size_t br_len;
    uint8_t *bufs;
    unsigned buf_count, buf_size;

    int wake_fd;
    uint64_t wake_val;
    tao__op_t wake_op;
    pthread_mutex_t inbox_lock;
    tao__queue_t inbox;      /* guarded by inbox_lock */
    atomic_bool sleeping;    /* any thread: set while blocked in io_uring_enter */
    atomic_bool inbox_ready; /* any thread: the inbox has items (saves its lock) */

    tao__wheel_t wheel;
    tao__op_t timeout_op;
    bool timeout_armed;
    struct __kernel_timespec timeout_ts;
    uint64_t timeout_at;
    uint64_t now;
    uint16_t next_gen;

    tao__utimer_t *timers; /* live user timers */
    tao_conn_t conns;      /* list sentinel */
    size_t nconns;
    tao_conn_t *dirty;                /* connections with output to flush */
    tao_conn_t *nobufs, *nobufs_tail; /* receives to re-arm, oldest first */
    unsigned bufs_avail;              /* buffers in the ring now */
    tao__sendctx_t *free_ctx;
    tao__queue_t *to_worker; /* per worker: frames of this batch */

    /* Registered buffers for SEND_ZC: a slot is free when its count of
     * users (the chunk, each ZC send until its notification) is 0. */
    uint8_t *zc_mem;
    unsigned zc_count, zc_size, zc_nfree;
    uint16_t *zc_free, *zc_refs;

    /* Who holds each receive buffer: see bufring.c, the one place that
     * returns a buffer to the ring. */
    uint16_t *buf_refs;       /* holders: the receive, plus each lending chunk */
    uint8_t *buf_state;       /* in the ring, held, or held and lent */
    unsigned bufs_lent;       /* buffers with a lender among their holders */
    const uint8_t *recv_base; /* the buffer being decoded now, or NULL */
    uint16_t recv_bid;

    bool stopping;
    tao__timer_t stop_deadline;

    /* Completions moved out of a full CQ so that a submit could go on;
     * dispatched before the ring's next ones (loop.c). */
    struct io_uring_cqe *parked;
    unsigned nparked, parked_cap;
    unsigned submit_pause_ms; /* backoff after failed submits; 0 when fine */

    tao__counters_t stats;
};

/* ---- workers ---------------------------------------------------------- */
struct tao__worker {
    tao__runtime_t *rt;
    unsigned idx;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    tao__queue_t q; /* guarded by lock */
    bool waiting, stop;
    tao__queue_t *to_loop;      /* per loop: items of this batch (worker only) */
    atomic_uint_fast64_t depth; /* items queued, for stats */
    uint64_t handled;
};

/* ---- runtimes ------------------------------------------------------------ */
struct tao__runtime {
    unsigned nloops, nworkers;
    tao__loop_t *loops;
    tao__worker_t *workers;
    unsigned buf_count, buf_size;
    unsigned zc_count, zc_size; /* registered send buffers per loop */
    bool no_pin;
    atomic_bool stop_requested;
    atomic_uint stop_deadline_ms;
    atomic_int state; /* 0 created, 1 running, 2 joined */
    atomic_uint next_worker;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* user timers by id */
    pthread_mutex_t tlock;
    tao__utimer_t **tmap;
    size_t tmap_cap, tmap_count;
    uint64_t next_timer_id;
};

extern __thread tao__loop_t *tao__tls_loop;
extern __thread tao__worker_t *tao__tls_worker;

struct tao_server {
    tao_server_config_t cfg;
    tao__endpoint_t ep;
    tao__runtime_t rt;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int port;
};

struct tao_client {
    tao_client_config_t cfg;
    tao__endpoint_t ep;
    tao__runtime_t own;
    tao__runtime_t *rt; /* &own, or the shared server's */
    atomic_uint next_loop;
};

/* engine/addr.c */
int tao__parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/* engine/runtime.c */
int tao__runtime_init(tao__runtime_t *rt, unsigned loops, unsigned workers, unsigned buf_count,
                      unsigned buf_size, bool no_pin);
int tao__runtime_start(tao__runtime_t *rt, int (*prepare)(tao__loop_t *, void *), void *arg);
void tao__runtime_stop(tao__runtime_t *rt, unsigned deadline_ms);
void tao__runtime_wait(tao__runtime_t *rt);
void tao__runtime_deinit(tao__runtime_t *rt);
void tao__post(tao__loop_t *loop, tao__item_t *it);
void tao__post_worker(tao__worker_t *w, tao__queue_t *batch);
tao__item_t *tao__item_new(uint8_t kind, tao_conn_t *conn, size_t extra);
void tao__item_free(tao__item_t *it);

/* engine/loop.c */
uint64_t tao__now_ms(void);
struct io_uring_sqe *tao__sqe(tao__loop_t *loop);
void tao__sqe_op(struct io_uring_sqe *sqe, tao__op_t *op);
int tao__loop_init(tao__loop_t *loop, tao__runtime_t *rt, unsigned idx);
void tao__loop_deinit(tao__loop_t *loop);
void *tao__loop_main(void *arg);
void tao__loop_wake(tao__loop_t *loop);
void tao__zc_put(tao__loop_t *loop, unsigned slot);

/* engine/worker.c */
void *tao__worker_main(void *arg);
void tao__worker_flush(tao__worker_t *w);

/* engine/listener.c */
int tao__listener_open(tao_server_t *srv, int *fd_out);
int tao__port_free(const tao_server_t *srv);
void tao__accept_arm(tao__loop_t *loop);
void tao__accept_complete(tao__loop_t *loop, tao__op_t *op, struct io_uring_cqe *cqe);
void tao__listener_close(tao__loop_t *loop);

/* engine/conn.c */
tao_conn_t *tao__conn_new(tao__loop_t *loop, tao__endpoint_t *ep, int fd, uint64_t id);
tao_conn_t *tao__conn_alloc(tao__loop_t *loop, tao__endpoint_t *ep, uint64_t id, size_t extra);
void tao__conn_attach(tao_conn_t *c);
void tao__conn_finish(tao_conn_t *c);
void tao__conn_reset(tao_conn_t *c);
void tao__conn_start(tao_conn_t *c);
void tao__conn_ready(tao_conn_t *c);
void tao__conn_input(tao_conn_t *c, const uint8_t *buf, size_t len);
bool tao__conn_unread(const tao_conn_t *c);
void tao__conn_ref(tao_conn_t *c);
void tao__conn_unref(tao_conn_t *c);
void tao__recv_complete(tao__loop_t *loop, tao__op_t *op, struct io_uring_cqe *cqe);
void tao__close_complete(tao__loop_t *loop, tao__op_t *op, struct io_uring_cqe *cqe);
void tao__conn_progress(tao_conn_t *c);
void tao__conn_recv_arm(tao_conn_t *c);
void tao__conn_error(tao_conn_t *c, int err, const char *what);
void tao__conn_mark_dirty(tao_conn_t *c);
void tao__conn_pause(tao_conn_t *c);
void tao__conn_drained(tao_conn_t *c);
void tao__conn_resume_worker(tao_conn_t *c);
void tao__conn_close_local(tao_conn_t *c, bool from_worker);
void tao__conn_abort_local(tao_conn_t *c);
void tao__conn_free(tao_conn_t *c);
void tao__conn_recv_cancel(tao_conn_t *c);

/* engine/keepalive.c */
void tao__ka_arm(tao_conn_t *c);
void tao__ka_fire(tao__timer_t *t, uint64_t now);
void tao__conn_touch_tx(tao_conn_t *c);
void tao__ka_input(tao_conn_t *c);

/* engine/close.c */
void tao__linger_fire(tao__timer_t *t, uint64_t now);
void tao__conn_set_peer(tao_conn_t *c, const struct sockaddr *sa, socklen_t len);

/* engine/outq.c */
int tao__outq_push_copy(tao__outq_t *q, const tao_frame_hdr_t *h, const void *payload, size_t len);
tao__chunk_t *tao__chunk_copy(const tao_frame_hdr_t *h, const void *payload, size_t len);
tao__chunk_t *tao__chunk_owned(const tao_frame_hdr_t *h, void *payload, size_t len,
                               tao_payload_free_fn free_fn, void *user);
void tao__chunk_free(tao__chunk_t *k);
size_t tao__chunk_bytes(const tao__chunk_t *k);
void tao__outq_append(tao__outq_t *q, tao__chunk_t *k);
void tao__outq_clear(tao__outq_t *q);
void tao__conn_flush(tao_conn_t *c);
void tao__queued_add(tao_conn_t *c, size_t n);
void tao__queued_sub(tao_conn_t *c, size_t n);
void tao__send_complete(tao__loop_t *loop, tao__op_t *op, struct io_uring_cqe *cqe);
void tao__conn_queue_chunk(tao_conn_t *c, tao__chunk_t *k);
int tao__conn_send_local(tao_conn_t *c, int32_t type, const void *payload, size_t len);

/* engine/timer.c */
void tao__timer_arm_local(tao__loop_t *loop, tao__utimer_t *t);
void tao__timer_cancel_local(tao__loop_t *loop, tao__utimer_t *t);
void tao__timer_run(tao__utimer_t *t);
void tao__timer_unref(tao__utimer_t *t);
void tao__conn_timers_cancel(tao_conn_t *c);
void tao__timers_free_all(tao__runtime_t *rt);
void tao__loop_timers_free(tao__loop_t *loop);
void tao__timer_discard(tao__utimer_t *t);
int64_t tao__timer_add(tao__runtime_t *rt, tao__loop_t *loop, tao_conn_t *conn, void *owner,
                       uint64_t due, uint64_t period, tao_timer_cb cb, void *arg);

/* engine/client.c */
void tao__client_connect_item(tao_conn_t *c);
void tao__connect_complete(tao__loop_t *loop, tao__op_t *op, struct io_uring_cqe *cqe);
bool tao__client_closed(tao_conn_t *c);
void tao__client_close_offline(tao_conn_t *c);

/* Defaults for the fields server and client configs share by name, and
 * copying them into the endpoint: one place for both. The first evaluates
 * to 0 or -EINVAL. */
#define TAO__SHARED_DEFAULTS(cfg)                                                                  \
    ({                                                                                             \
        if (!(cfg)->out_high)                                                                      \
            (cfg)->out_high = 4u << 20;                                                            \
        if (!(cfg)->out_low || (cfg)->out_low > (cfg)->out_high)                                   \
            (cfg)->out_low = (cfg)->out_high / 4;                                                  \
        if (!(cfg)->buf_count)                                                                     \
            (cfg)->buf_count = 64;                                                                 \
        if (!(cfg)->buf_size)                                                                      \
            (cfg)->buf_size = 65536;                                                               \
        if (!(cfg)->max_conns)                                                                     \
            (cfg)->max_conns = 10000;                                                              \
        if (!(cfg)->close_timeout_ms)                                                              \
            (cfg)->close_timeout_ms = 5000;                                                        \
        if (!(cfg)->max_queued_bytes)                                                              \
            (cfg)->max_queued_bytes = tao__default_max_queued();                                   \
        ((cfg)->buf_count & ((cfg)->buf_count - 1)) || (cfg)->buf_count > 32768 ||                 \
                (cfg)->zc_buffers > 65535 ||                                                       \
                (cfg)->workers<TAO_WORKERS_INLINE || (cfg)->workers> TAO_WORKERS_MAX ||            \
                (cfg)->loops > 1024                                                                \
            ? -EINVAL                                                                              \
            : 0;                                                                                   \
    })

#define TAO__EP_FROM_CFG(ep, cfg)                                                                  \
    do {                                                                                           \
        (ep)->out_high = (cfg)->out_high;                                                          \
        (ep)->out_low = (cfg)->out_low;                                                            \
        (ep)->idle_ms = (cfg)->idle_timeout_ms;                                                    \
        (ep)->read_ms = (cfg)->read_timeout_ms;                                                    \
        (ep)->heartbeat_ms = (cfg)->heartbeat_ms;                                                  \
        (ep)->close_ms = (cfg)->close_timeout_ms;                                                  \
        (ep)->max_queued = (cfg)->max_queued_bytes;                                                \
        (ep)->zc_threshold = (cfg)->zc_threshold;                                                  \
        (ep)->workers = (cfg)->workers > 0;                                                        \
        (ep)->on_connect = (cfg)->on_connect;                                                      \
        (ep)->on_message = (cfg)->on_message;                                                      \
        (ep)->on_close = (cfg)->on_close;                                                          \
        (ep)->on_writable = (cfg)->on_writable;                                                    \
    } while (0)

#define TAO__RT_ZC(rt, cfg)                                                                        \
    do {                                                                                           \
        if ((cfg)->zc_threshold) {                                                                 \
            (rt)->zc_count = (cfg)->zc_buffers ? (cfg)->zc_buffers : 32;                           \
            (rt)->zc_size = (cfg)->zc_buffer_size ? (cfg)->zc_buffer_size : 65536;                 \
        }                                                                                          \
    } while (0)

/* engine/endpoint.c */
size_t tao__default_max_queued(void);
int tao__ep_codec(tao__endpoint_t *ep, const tao_codec_t *codec, size_t max_frame);
int tao__ep_init(tao__endpoint_t *ep, unsigned max_conns);
void tao__ep_deinit(tao__endpoint_t *ep);
void tao__ep_add(tao__endpoint_t *ep, tao_conn_t *c);
void tao__ep_remove(tao__endpoint_t *ep, tao_conn_t *c);
void tao__ep_done(tao__endpoint_t *ep);
tao_conn_t *tao__ep_lookup(tao__endpoint_t *ep, uint64_t id);
int tao__ep_broadcast(tao__endpoint_t *ep, tao__runtime_t *rt, int32_t type, const void *payload,
                      size_t len);
void tao__broadcast_local(tao__loop_t *loop, tao__bcast_t *b);
void tao__bcast_unref(tao__bcast_t *b);

#endif
