/* Internal: a connection (conn.c owns its states and its life; recv.c is
 * its receive path, send.c its output). The flags below are its state;
 * conn.c opens with the rules that tie them together. */
#ifndef TAO_ENGINE_CONN_H
#define TAO_ENGINE_CONN_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/idmap.h"
#include "engine/list.h"
#include "engine/outq.h"
#include "engine/timerwheel.h"
#include "tao/conn.h"

typedef struct tao__endpoint tao__endpoint_t;
typedef struct tao__transport tao__transport_t;
struct tao__cstate;

enum {
    C_RECV_ARMED = 1u << 0, /* a multishot receive is in flight */
    C_SEND_INFLIGHT = 1u << 1,
    C_CLOSING = 1u << 2, /* close or abort under way */
    C_ABORT = 1u << 3,
    C_PAUSED = 1u << 4,    /* output above the high watermark: not reading */
    C_CANCELING = 1u << 5, /* a cancel of the receive is in flight */
    C_DIRTY = 1u << 6,     /* on the loop's flush list */
    C_NOBUFS = 1u << 7,    /* receive ended with -ENOBUFS: on the re-arm list */
    C_SHUT = 1u << 8,      /* our FIN is out */
    C_EOF = 1u << 9,       /* peer sent FIN, or the socket failed */
    C_CLOSE_SUBMITTED = 1u << 10,
    C_LINGER_DONE = 1u << 12, /* stop waiting for the peer's FIN */
    C_DEAD = 1u << 13,        /* finished; still on a list of the loop */
    C_WPAUSED = 1u << 14,     /* worker backlog above the limit: not reading */
    C_FENCING = 1u << 15,     /* a close is waiting for the worker to catch up */
    C_OFFLINE = 1u << 16,     /* client: no socket (connecting or backing off) */
    C_DRAIN = 1u << 17,       /* stopping: read what the peer already sent, then close */
};

struct tao_conn {
    tao__loop_t *loop;
    tao__endpoint_t *ep;
    const tao__transport_t *xport; /* plain or TLS */
    void *xdata;                   /* the transport's state */
    union {
        uint64_t id;
        tao__idnode_t idn; /* the endpoint's id map */
    };
    void *data;
    int fd;
    uint32_t flags;
    uint16_t worker;
    tao__op_t recv_op, close_op;
    atomic_uint refs;          /* any thread: the loop's, plus one per item */
    atomic_bool closing;       /* any thread: published C_CLOSING */
    atomic_bool want_writable; /* any thread: a send got -EAGAIN */
    atomic_bool connected;     /* any thread: false while a client is offline */
    _Atomic size_t queued;     /* any thread: output bytes queued or in transit, less qd */
    size_t qd;                 /* the loop: bytes it queued since it last added them to queued */
    _Atomic size_t wpending;   /* any thread: bytes handed to the worker, not handled */
    atomic_bool wpause_req;    /* any thread: the loop paused for the worker, wants LI_RESUME */
    tao__list_t node;          /* the loop's connections */
    tao_conn_t *dirty_next;    /* the loop's flush list */
    tao_conn_t *nobufs_next;   /* the loop's re-arm list (apart: a conn can be on both) */
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
    tao__list_t timers;         /* user timers, cancelled on close */
    struct tao__cstate *client; /* client connection state, when a client */
    struct sockaddr_in6 peer;   /* the peer's address (v4 or v6): the client's,
                                   from a PROXY header, when there was one */
    struct sockaddr_in6 proxy;  /* the socket's peer, when a PROXY header named
                                   the client (proxy.c) */
    socklen_t peer_len, proxy_len;
};

/* conn.c: life and states */
tao_conn_t *tao__conn_alloc(tao__loop_t *loop, tao__endpoint_t *ep, uint64_t id, size_t extra);
tao_conn_t *tao__conn_new(tao__loop_t *loop, tao__endpoint_t *ep, int fd, uint64_t id);
void tao__conn_attach(tao_conn_t *c);
void tao__conn_reset(tao_conn_t *c);
void tao__conn_start(tao_conn_t *c);
void tao__conn_ready(tao_conn_t *c);
void tao__conn_progress(tao_conn_t *c);
void tao__conn_close_local(tao_conn_t *c, bool from_worker);
void tao__conn_abort_local(tao_conn_t *c);
void tao__conn_finish(tao_conn_t *c);
void tao__close_complete(tao__loop_t *loop, tao__op_t *op, const tao__cqe_t *cqe);
void tao__conn_ref(tao_conn_t *c);
void tao__conn_unref(tao_conn_t *c);
bool tao__conn_unlist(tao_conn_t *c, uint32_t list_flag);
void tao__conn_mark_dirty(tao_conn_t *c);
void tao__conn_error(tao_conn_t *c, int err, const char *what);
void tao__conn_set_peer(tao_conn_t *c, const struct sockaddr *sa, socklen_t len);

#endif
