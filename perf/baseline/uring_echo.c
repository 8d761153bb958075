/* tao-uring-echo: the ceiling Tao-C is measured against. A single-threaded
 * TLV echo server written straight against liburing, as one would write it
 * by hand, with no framework:
 *
 *   tao-uring-echo [--listen HOST:PORT] [--bufs N] [--buf-size BYTES]
 *
 * Every complete frame (4-byte LE type, 4-byte LE length, payload; at most
 * 8 MiB of payload, as Tao-C) comes back unchanged, whatever its type.
 *
 * One ring (SINGLE_ISSUER | DEFER_TASKRUN where the kernel has them), a
 * multishot accept, one multishot recv per connection on a provided-buffer
 * ring. A received buffer is decoded at once and goes straight back to the
 * ring: complete frames are copied into the connection's pending output (as
 * a handler would copy a reply), only a partial frame's tail is kept. At
 * most one send is in flight per connection: replies that arrive meanwhile
 * gather in the pending buffer and leave together in the next send, issued
 * at the end of the completion batch. Past 4 MiB of unsent output the
 * connection's recv is cancelled and re-armed once the output drains, so a
 * peer that never reads cannot make the server buffer without bound. A
 * recv that ran out of buffers (-ENOBUFS) is re-armed after the batch has
 * returned its buffers.
 *
 * Ownership: a connection is freed only when neither its recv nor its send
 * is in flight; its two output buffers swap roles when a send completes,
 * so the one the kernel reads from is never written or reallocated. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/compat.h"
#include "perf/baseline/listen.h"

#define HDR 8
#define MAX_PAYLOAD (8u << 20)
#define OUT_HIGH (4u << 20)
#define OUT_KEEP (64u << 10) /* a drained buffer larger than this is freed */
#define BGID 0

enum { OP_RECV, OP_SEND, OP_CANCEL, OP_ACCEPT };

typedef struct buf {
    uint8_t *p;
    size_t off, len, cap; /* bytes [off, len) are pending */
} buf_t;

typedef struct conn conn_t;
struct conn {
    int fd;
    bool recv_armed; /* a multishot recv is in flight */
    bool sending;    /* a send is in flight: out is the kernel's */
    bool paused;     /* too much unsent output: recv cancelled */
    bool eof;        /* the peer is done: close once the output is written */
    bool dead;       /* broken: close once nothing is in flight */
    bool dirty;      /* on the flush list */
    conn_t *next_dirty;
    buf_t in;      /* the start of a frame that has not fully arrived */
    buf_t out;     /* being sent */
    buf_t pending; /* gathered while a send is in flight */
};

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static uint8_t *bufs;
static unsigned nbufs = 256, buf_size = 16u << 10, returned;
static conn_t *dirty;
static int lfd;
static volatile sig_atomic_t stop;

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void *tag(conn_t *c, int op)
{
    return (void *)((uintptr_t)c | (uintptr_t)op);
}

static struct io_uring_sqe *sqe_get(void)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&ring)))
        io_uring_submit(&ring);
    return sqe;
}

static int buf_append(buf_t *b, const uint8_t *p, size_t n)
{
    if (b->len + n > b->cap) {
        if (b->off) {
            memmove(b->p, b->p + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        if (cap != b->cap) {
            uint8_t *np = realloc(b->p, cap);
            if (!np)
                return -1;
            b->p = np;
            b->cap = cap;
        }
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

static void buf_consumed(buf_t *b)
{
    if (b->off < b->len)
        return;
    b->off = b->len = 0;
    if (b->cap > OUT_KEEP) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
}

static size_t unsent(const conn_t *c)
{
    return c->out.len - c->out.off + c->pending.len - c->pending.off;
}

static void arm_recv(conn_t *c)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data(sqe, tag(c, OP_RECV));
    c->recv_armed = true;
}

static void arm_accept(void)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data(sqe, tag(NULL, OP_ACCEPT));
}

static void cancel_recv(conn_t *c)
{
    struct io_uring_sqe *sqe = sqe_get();
    io_uring_prep_cancel(sqe, tag(c, OP_RECV), 0);
    io_uring_sqe_set_data(sqe, tag(NULL, OP_CANCEL));
}

static void mark_dirty(conn_t *c)
{
    if (!c->dirty) {
        c->dirty = true;
        c->next_dirty = dirty;
        dirty = c;
    }
}

/* The connection is done when nothing is in flight and either it broke or
 * the peer finished and every reply was written. */
static bool maybe_free(conn_t *c)
{
    if (c->recv_armed || c->sending || c->dirty)
        return false;
    if (!c->dead && !(c->eof && unsent(c) == 0))
        return false;
    close(c->fd);
    free(c->in.p);
    free(c->out.p);
    free(c->pending.p);
    free(c);
    return true;
}

static void kill_conn(conn_t *c)
{
    c->dead = true;
    if (c->recv_armed)
        cancel_recv(c);
}

/* Echo every complete frame of p[0..n) into the pending output. Returns
 * the bytes used, or -1 for a frame over the limit. */
static ssize_t echo_frames(conn_t *c, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (n - off >= HDR) {
        uint32_t len = le32(p + off + 4);
        if (len > MAX_PAYLOAD)
            return -1;
        if (n - off - HDR < len)
            break;
        if (buf_append(&c->pending, p + off, HDR + (size_t)len) < 0)
            return -1;
        off += HDR + (size_t)len;
    }
    return (ssize_t)off;
}

/* New bytes: straight from the receive buffer when no partial frame waits,
 * through the connection's input buffer otherwise. */
static int consume(conn_t *c, const uint8_t *p, size_t n)
{
    if (c->in.len == c->in.off) {
        ssize_t used = echo_frames(c, p, n);
        if (used < 0)
            return -1;
        return (size_t)used < n ? buf_append(&c->in, p + used, n - (size_t)used) : 0;
    }
    if (buf_append(&c->in, p, n) < 0)
        return -1;
    ssize_t used = echo_frames(c, c->in.p + c->in.off, c->in.len - c->in.off);
    if (used < 0)
        return -1;
    c->in.off += (size_t)used;
    buf_consumed(&c->in);
    return 0;
}

static void on_recv(conn_t *c, const struct io_uring_cqe *cqe)
{
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        uint8_t *p = bufs + (size_t)bid * buf_size;
        if (cqe->res > 0 && !c->dead && consume(c, p, (size_t)cqe->res) < 0)
            kill_conn(c);
        /* Decoded or copied: the buffer goes back at once. */
        io_uring_buf_ring_add(br, p, buf_size, (unsigned short)bid, io_uring_buf_ring_mask(nbufs),
                              (int)returned++);
    }
    if (!more)
        c->recv_armed = false;
    if (cqe->res == 0)
        c->eof = true;
    else if (cqe->res < 0 && cqe->res != -ENOBUFS && !(cqe->res == -ECANCELED && c->paused))
        c->dead = true;
    if (unsent(c) >= OUT_HIGH && !c->paused) {
        c->paused = true;
        if (c->recv_armed)
            cancel_recv(c);
    }
    if (!c->recv_armed && !c->eof && !c->dead && !c->paused)
        arm_recv(c); /* -ENOBUFS: the buffers are back by the next submit */
    mark_dirty(c);
}

static void on_send(conn_t *c, const struct io_uring_cqe *cqe)
{
    c->sending = false;
    if (cqe->res < 0) {
        kill_conn(c);
    } else {
        c->out.off += (size_t)cqe->res;
        buf_consumed(&c->out);
    }
    mark_dirty(c);
}

/* At the end of a batch: one send per connection with output and none in
 * flight, re-arm a paused recv whose output drained, free the finished. */
static void flush(conn_t *c)
{
    c->dirty = false;
    if (!c->dead && !c->sending) {
        if (c->out.off == c->out.len && c->pending.len > c->pending.off) {
            buf_t t = c->out;
            c->out = c->pending;
            c->pending = t;
        }
        if (c->out.off < c->out.len) {
            struct io_uring_sqe *sqe = sqe_get();
            io_uring_prep_send(sqe, c->fd, c->out.p + c->out.off, c->out.len - c->out.off,
                               MSG_NOSIGNAL);
            io_uring_sqe_set_data(sqe, tag(c, OP_SEND));
            c->sending = true;
        }
    }
    if (c->paused && !c->recv_armed && unsent(c) < OUT_HIGH / 2 && !c->dead && !c->eof) {
        c->paused = false;
        arm_recv(c);
    }
    maybe_free(c);
}

static void on_accept(const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        arm_accept();
    if (cqe->res < 0) {
        if (cqe->res == -EMFILE || cqe->res == -ENFILE)
            fprintf(stderr, "tao-uring-echo: accept: %s\n", strerror(-cqe->res));
        return;
    }
    conn_t *c = calloc(1, sizeof *c);
    if (!c) {
        close(cqe->res);
        return;
    }
    c->fd = cqe->res;
    arm_recv(c);
}

static int setup(void)
{
    struct io_uring_params p;
    unsigned flags[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        memset(&p, 0, sizeof p);
        p.flags = flags[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = 16384;
        if ((rc = io_uring_queue_init_params(4096, &ring, &p)) == 0)
            break;
    }
    if (rc < 0)
        return rc;
    size_t map_len;
    if (!(br = tao__buf_ring_setup(&ring, nbufs, BGID, &map_len, &rc)))
        return rc;
    if (!(bufs = aligned_alloc(4096, (size_t)nbufs * buf_size)))
        return -ENOMEM;
    for (unsigned i = 0; i < nbufs; i++)
        io_uring_buf_ring_add(br, bufs + (size_t)i * buf_size, buf_size, (unsigned short)i,
                              io_uring_buf_ring_mask(nbufs), (int)i);
    io_uring_buf_ring_advance(br, (int)nbufs);
    return 0;
}

static void serve(void)
{
    arm_accept();
    while (!stop) {
        int rc = io_uring_submit_and_wait(&ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
            fprintf(stderr, "tao-uring-echo: io_uring_enter: %s\n", strerror(-rc));
            exit(1);
        }
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            n++;
            uintptr_t ud = (uintptr_t)io_uring_cqe_get_data(cqe);
            conn_t *c = (conn_t *)(ud & ~(uintptr_t)7);
            switch (ud & 7) {
            case OP_RECV:
                on_recv(c, cqe);
                break;
            case OP_SEND:
                on_send(c, cqe);
                break;
            case OP_ACCEPT:
                on_accept(cqe);
                break;
            }
        }
        io_uring_cq_advance(&ring, n);
        io_uring_buf_ring_advance(br, (int)returned);
        returned = 0;
        while (dirty) {
            conn_t *c = dirty;
            dirty = c->next_dirty;
            flush(c);
        }
    }
}

static void on_signal(int sig)
{
    stop = 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"bufs", required_argument, NULL, 'n'},
        {"buf-size", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *addr = "127.0.0.1:12345";
    int ch, port;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'l') {
            addr = optarg;
        } else if (ch == 'n') {
            nbufs = (unsigned)strtoul(optarg, NULL, 10);
        } else if (ch == 's') {
            buf_size = (unsigned)strtoul(optarg, NULL, 10);
        } else {
            printf("tao-uring-echo [--listen HOST:PORT] [--bufs N] [--buf-size BYTES]: echo "
                   "every TLV frame back\n");
            return ch == 'h' ? 0 : 2;
        }
    }
    if (!nbufs || (nbufs & (nbufs - 1)) || nbufs > 32768 || buf_size < 64) {
        fprintf(stderr, "tao-uring-echo: --bufs must be a power of two up to 32768\n");
        return 2;
    }
    lfd = pb_listen(addr, &port);
    if (lfd < 0) {
        fprintf(stderr, "tao-uring-echo: %s: %s\n", addr, strerror(-lfd));
        return 1;
    }
    int rc = setup();
    if (rc < 0) {
        fprintf(stderr, "tao-uring-echo: io_uring setup: %s\n", strerror(-rc));
        return 1;
    }
    /* No SA_RESTART: the signal must interrupt io_uring_enter. */
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* The same line as the Tao-C examples print: scripts read the port from it. */
    printf("tao-uring-echo listening on %.*s:%d\n", (int)(strrchr(addr, ':') - addr), addr, port);
    fflush(stdout);
    serve();
    io_uring_queue_exit(&ring);
    close(lfd);
    return 0;
}
