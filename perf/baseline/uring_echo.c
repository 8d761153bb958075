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
#include "perf/baseline/echo.h"
#include "perf/baseline/listen.h"

#define OUT_HIGH (4u << 20)
#define BGID 0

enum { OP_RECV, OP_SEND, OP_CANCEL, OP_ACCEPT };

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
    pb_buf_t in;      /* the start of a frame that has not fully arrived */
    pb_buf_t out;     /* being sent */
    pb_buf_t pending; /* gathered while a send is in flight */
};

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static uint8_t *bufs;
static unsigned nbufs = 256, buf_size = 16u << 10, returned;
static conn_t *dirty;
static int lfd;

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
    pb_buf_free(&c->in);
    pb_buf_free(&c->out);
    pb_buf_free(&c->pending);
    free(c);
    return true;
}

static void kill_conn(conn_t *c)
{
    c->dead = true;
    if (c->recv_armed)
        cancel_recv(c);
}

static void on_recv(conn_t *c, const struct io_uring_cqe *cqe)
{
    bool more = cqe->flags & IORING_CQE_F_MORE;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        uint8_t *p = bufs + (size_t)bid * buf_size;
        if (cqe->res > 0 && !c->dead && pb_echo(&c->in, &c->pending, p, (size_t)cqe->res) < 0)
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
        pb_buf_consumed(&c->out);
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
            pb_buf_t t = c->out;
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
    if (!(br = tao__buf_ring_setup(&ring, nbufs, BGID, 0, &map_len, &rc)))
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
    while (!pb_stop) {
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
    pb_ready("tao-uring-echo", addr, port);
    serve();
    io_uring_queue_exit(&ring);
    close(lfd);
    return 0;
}
