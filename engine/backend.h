/* Internal: the backend seam. Everything a loop asks of the kernel goes
 * through one tao__backend_t: accept, receive, send, connect, cancel,
 * shutdown, close, the wake-up at the next timer, and waiting for what
 * finished. io_uring (uring.c) and epoll (epoll.c) implement it; the
 * rest of the engine does not know which one runs. backend.c picks one
 * for a runtime when it starts.
 *
 * Operations: a request names a tao__op_t embedded in its owner (the loop,
 * a connection, a send). The backend reports each outcome, on the loop
 * thread, from inside dispatch(), as tao__complete(loop, op, cqe): res is
 * a byte count or a file descriptor, or -errno as the kernel said it; a
 * multishot operation (accept, receive) reports TAO__CQ_MORE while it goes
 * on. The owner's generation travels with the request: an outcome whose
 * generation no longer matches its op (the owner took a new socket since)
 * is stale, and the backend drops it, giving back any receive buffer it
 * carries. Requests are never refused: a backend that runs out of room
 * submits what it has first.
 *
 * Receives fill the loop's receive buffers (bufring.c), whose ownership
 * rule holds for every backend: a report with TAO__CQ_BUFFER hands buffer
 * `bid` (or, with TAO__CQ_BUF_MORE, its next res bytes) to the receiver,
 * and the backend gets it back only through give_buf. */
#ifndef TAO_ENGINE_BACKEND_H
#define TAO_ENGINE_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tao/common.h"

typedef struct tao__loop tao__loop_t;
typedef struct tao_conn tao_conn_t;
typedef struct tao__sendctx tao__sendctx_t;

enum tao__op_kind {
    OP_ACCEPT,  /* the loop's listener */
    OP_RECV,    /* a connection's multishot receive */
    OP_SEND,    /* a send context (send.c) */
    OP_CLOSE,   /* a connection's close: its last outcome */
    OP_CONNECT, /* a client connection's connect */
    OP_KINDS,
};

typedef struct tao__op {
    uint8_t kind;
    uint16_t gen; /* the owner's generation when the request was made */
    int fd;       /* the descriptor it was made on (the backend sets it) */
} tao__op_t;

enum {
    TAO__CQ_MORE = 1u << 0,   /* a multishot operation goes on */
    TAO__CQ_BUFFER = 1u << 1, /* the data is in receive buffer bid */
    TAO__CQ_NOTIF = 1u << 2,  /* zero-copy send: the kernel let go of the buffer */
    /* The data is a slice of buffer bid, and the kernel keeps filling the
     * rest (incremental consumption, bufring.c). */
    TAO__CQ_BUF_MORE = 1u << 3,
};

typedef struct tao__cqe {
    int res;
    uint16_t flags;
    uint16_t bid;
} tao__cqe_t;

typedef struct tao__backend {
    const char *name;
    /* On the loop thread, before anything else: kernel objects, and the
     * receive buffers' provision (not yet filled). 0 or -errno, logged. */
    int (*setup)(tao__loop_t *loop);
    void (*teardown)(tao__loop_t *loop);
    /* Submit what was asked; when block is true and the backend has nothing
     * already in hand, wait for at least one outcome (or the wake-up). */
    void (*wait)(tao__loop_t *loop, bool block);
    /* Report every outcome collected by wait through tao__complete. */
    void (*dispatch)(tao__loop_t *loop);
    /* Outcomes are there that dispatch has not reported yet. */
    bool (*behind)(tao__loop_t *loop);
    /* Wake wait() at at_ms (CLOCK_MONOTONIC ms) at the latest. */
    void (*timeout)(tao__loop_t *loop, uint64_t at_ms);
    /* Receive buffer bid may be filled again. */
    void (*give_buf)(tao__loop_t *loop, unsigned bid);

    void (*accept)(tao__loop_t *loop, int fd, tao__op_t *op); /* multishot */
    void (*recv)(tao_conn_t *c, tao__op_t *op);               /* multishot */
    void (*send)(tao_conn_t *c, tao__sendctx_t *ctx);         /* ctx->msg, once */
    void (*connect)(tao_conn_t *c, tao__op_t *op, const struct sockaddr *sa, socklen_t len);
    /* Stop op; its outcome (-ECANCELED or what it did before) still comes. */
    void (*cancel)(tao__loop_t *loop, tao__op_t *op);
    void (*shutdown)(tao_conn_t *c); /* SHUT_WR: our FIN, after the queued bytes */
    /* Close c's socket; reset: with an RST, dropping unsent bytes. */
    void (*close)(tao_conn_t *c, tao__op_t *op, bool reset);
} tao__backend_t;

extern const tao__backend_t tao__backend_uring;
extern const tao__backend_t tao__backend_epoll;

/* The backend a runtime runs on: want, unless TAO_BACKEND in the
 * environment says otherwise; auto is io_uring when this process may set
 * up a ring, else epoll (with one log line saying why). -EINVAL for a
 * TAO_BACKEND value it does not know. */
int tao__backend_pick(tao_backend_t want, const tao__backend_t **out);

/* Every outcome, reported by the backend: hands it to its owner. */
void tao__complete(tao__loop_t *loop, tao__op_t *op, const tao__cqe_t *cqe);

#endif
