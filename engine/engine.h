/* Internal: the structures shared by the engine's files.
 *
 * Ownership: a server owns its loops; a loop owns its ring, listener, buffer
 * ring, timing wheel and connections. Everything a loop owns is touched only
 * by the loop's thread, except the few fields marked "any thread", which are
 * atomics. */
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
#include "engine/log.h"
#include "engine/timerwheel.h"
#include "tao/server.h"

#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

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
    OP_KINDS,
};

typedef struct tao__op {
    uint8_t kind;
    uint16_t gen; /* the owner's generation, set when the owner is created */
} tao__op_t;

#define TAO__UD_PTR_MASK ((UINT64_C(1) << 48) - 1)

typedef struct tao__loop tao__loop_t;

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
    struct msghdr msg;
    struct iovec iov[TAO__IOV_MAX];
};

/* ---- connections --------------------------------------------------------- */
enum {
    C_RECV_ARMED = 1u << 0, /* a multishot recv is in flight */
    C_SEND_INFLIGHT = 1u << 1,
    C_CLOSING = 1u << 2, /* close or abort was asked */
    C_ABORT = 1u << 3,
    C_PAUSED = 1u << 4,    /* back-pressure: not reading */
    C_CANCELING = 1u << 5, /* a cancel of the recv is in flight */
    C_DIRTY = 1u << 6,     /* on the loop's flush list */
    C_NOBUFS = 1u << 7,    /* recv ended with -ENOBUFS: re-arm after refill */
    C_SHUT = 1u << 8,      /* shutdown(SHUT_WR) submitted */
    C_EOF = 1u << 9,       /* peer sent FIN */
    C_CLOSE_SUBMITTED = 1u << 10,
    C_WANT_WRITABLE = 1u << 11, /* a send got -EAGAIN: tell on_writable */
    C_LINGER_DONE = 1u << 12,   /* stop waiting for the peer's FIN */
    C_DEAD = 1u << 13,          /* closed; freed when it leaves the loop's lists */
    C_LINGERING = 1u << 14,     /* waiting for the peer's FIN after ours */
};

struct tao_conn {
    tao__loop_t *loop;
    uint64_t id;
    void *data;
    int fd;
    uint32_t flags;
    tao__op_t recv_op, send_op, close_op;
    tao_conn_t *next, *prev; /* loop's connection list */
    tao_conn_t *dirty_next;  /* loop's flush / re-arm list */
    uint8_t *in;             /* bytes received and not yet decoded */
    uint32_t in_len, in_cap;
    tao__outq_t out;
    tao__sendctx_t *sending;
    tao__timer_t linger;
};

/* ---- loops ------------------------------------------------------------ */
/* Counters written by the loop thread only, read by anyone. */
typedef struct tao__counters {
    uint64_t accepted, refused, closed, frames_in, frames_out, bytes_in, bytes_out;
    uint64_t unknown, decode_err, unmarshal_err, send_rejected, backoffs, enobufs;
    uint64_t queued;
} tao__counters_t;

#define STAT_ADD(loop, field, n)                                                                   \
    __atomic_store_n(&(loop)->stats.field, (loop)->stats.field + (uint64_t)(n), __ATOMIC_RELAXED)

struct tao__loop {
    tao_server_t *srv;
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

    tao__wheel_t wheel;
    tao__op_t timeout_op;
    bool timeout_armed;
    struct __kernel_timespec timeout_ts;
    uint64_t timeout_at;
    uint64_t now;
    uint16_t next_gen;

    tao_conn_t conns; /* list sentinel */
    size_t nconns;
    tao_conn_t *dirty;  /* connections with output to flush */
    tao_conn_t *nobufs; /* connections whose recv must be re-armed */
    tao__sendctx_t *free_ctx;

    bool stopping;
    tao__timer_t stop_deadline;

    tao__counters_t stats;
};

struct tao_server {
    tao_server_config_t cfg;
    tao_codec_t codec;
    tao__registry_t *reg;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int port;
    unsigned nloops;
    tao__loop_t *loops;
    atomic_uint nconns;           /* any thread */
    atomic_uint_fast64_t next_id; /* any thread */
    atomic_bool stop_requested;   /* any thread */
    atomic_uint stop_deadline_ms;
    atomic_int state; /* 0 created, 1 running, 2 joined */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned loops_running;
};

/* engine/addr.c */
int tao__parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/* engine/loop.c */
uint64_t tao__now_ms(void);
struct io_uring_sqe *tao__sqe(tao__loop_t *loop);
void tao__sqe_op(struct io_uring_sqe *sqe, tao__op_t *op);
int tao__loop_init(tao__loop_t *loop, tao_server_t *srv, unsigned idx);
void tao__loop_deinit(tao__loop_t *loop);
void *tao__loop_main(void *arg);
void tao__loop_wake(tao__loop_t *loop);
void tao__buf_recycle(tao__loop_t *loop, unsigned bid);

/* engine/listener.c */
int tao__listener_open(tao_server_t *srv, int *fd_out);
void tao__accept_arm(tao__loop_t *loop);
void tao__accept_complete(tao__loop_t *loop, tao__op_t *op, struct io_uring_cqe *cqe);
void tao__listener_close(tao__loop_t *loop);

/* engine/conn.c */
void tao__conn_open(tao__loop_t *loop, int fd);
void tao__recv_complete(tao__loop_t *loop, tao__op_t *op, struct io_uring_cqe *cqe);
void tao__close_complete(tao__loop_t *loop, tao__op_t *op, struct io_uring_cqe *cqe);
void tao__conn_recv_arm(tao_conn_t *c);
void tao__conn_progress(tao_conn_t *c);
void tao__conn_error(tao_conn_t *c, int err, const char *what);
void tao__conn_mark_dirty(tao_conn_t *c);
void tao__conn_pause(tao_conn_t *c);
void tao__conn_free(tao_conn_t *c);
void tao__conn_drained(tao_conn_t *c);

/* engine/outq.c */
int tao__outq_push_copy(tao__outq_t *q, const tao_frame_hdr_t *h, const void *payload, size_t len);
int tao__outq_push_owned(tao__outq_t *q, const tao_frame_hdr_t *h, void *payload, size_t len,
                         tao_payload_free_fn free_fn, void *user);
void tao__outq_clear(tao__outq_t *q);
void tao__conn_flush(tao_conn_t *c);
void tao__send_complete(tao__loop_t *loop, tao__op_t *op, struct io_uring_cqe *cqe);

#endif
