/* The io_uring backend: one ring per loop, created on the loop's thread.
 *
 * Every SQE's user_data is an op pointer with the owner's generation in the
 * top 16 bits; 0 marks fire-and-forget SQEs (cancels, timeout updates). A
 * completion whose generation no longer matches its op is stale.
 *
 * Submitting: callers of sqe() never see NULL: a full submission queue is
 * submitted first. A submit can fail: -EBUSY when the completion queue is
 * full and the kernel holds completions back, -EAGAIN when it is short of
 * memory. Then the waiting completions are moved aside (parked) to make
 * room, and the submit is retried. wait() takes every batch of completions
 * the same way, out of the ring and into the parked array, before dispatch
 * reports one: so a handler that submits, and parks, in the middle of a
 * batch never sees the ring's head move under it. Any other failure is
 * logged, and retried after a pause that grows to 100 ms, so a persistent
 * one neither spins a core nor drops an operation. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "engine/bufring.h"
#include "engine/compat.h"
#include "engine/conn.h"
#include "engine/fault.h"
#include "engine/log.h"
#include "engine/loop.h"
#include "engine/runtime.h"
#include "engine/send.h"
#include "engine/uring_why.h"

#define UD_PTR_MASK ((UINT64_C(1) << 48) - 1)
#define ENTRIES 1024
#define BGID 0

typedef struct uring {
    struct io_uring ring;
    bool ring_up;
    struct io_uring_cqe *parked; /* taken out of the ring, not yet dispatched */
    unsigned nparked, parked_cap;
    unsigned submit_pause_ms; /* backoff after failed submits; 0 when fine */
    tao__op_t wake_op;
    uint64_t wake_val;
    tao__op_t timeout_op;
    bool timeout_armed;
    uint64_t timeout_at;
    struct __kernel_timespec ts; /* read by the kernel at submit */
    struct io_uring_buf_ring *br;
    size_t br_len;
    bool buf_inc; /* the buffer ring is consumed incrementally */
} uring_t;

static uring_t *U(tao__loop_t *loop)
{
    return loop->be_data;
}

/* ---- submitting ----------------------------------------------------------- */

/* Copy the completions waiting in the ring aside (as many as fit); returns
 * how many. */
static unsigned park_cqes(uring_t *u)
{
    unsigned head, n = 0;
    struct io_uring_cqe *cqe;
    unsigned ready = io_uring_cq_ready(&u->ring);
    if (u->nparked + ready > u->parked_cap) {
        unsigned cap = (u->nparked + ready) * 2;
        struct io_uring_cqe *p = tao__realloc(u->parked, cap * sizeof *p);
        if (p) {
            u->parked = p;
            u->parked_cap = cap;
        }
    }
    io_uring_for_each_cqe(&u->ring, head, cqe)
    {
        if (u->nparked == u->parked_cap)
            break;
        u->parked[u->nparked++] = *cqe;
        n++;
    }
    io_uring_cq_advance(&u->ring, n);
    return n;
}

static void submit_failed(tao__loop_t *loop, uring_t *u, int rc)
{
    if (rc == -EINTR || rc == -ETIME)
        return;
    if ((rc == -EBUSY || rc == -EAGAIN) && park_cqes(u))
        return;
    unsigned ms = u->submit_pause_ms ? u->submit_pause_ms : 1;
    if ((ms & (ms - 1)) == 0) /* 1, 2, 4, ... ms: a line now and then, not a flood */
        tao__log(TAO_LOG_ERROR, "loop %u: io_uring submit failed: %s; retrying in %u ms", loop->idx,
                 tao_strerror(rc), ms);
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    u->submit_pause_ms = ms >= 100 ? 100 : ms + 1;
}

static int submit(tao__loop_t *loop, bool wait)
{
    uring_t *u = U(loop);
    int rc = tao__fault(TAO_FAULT_SUBMIT) ? -EBUSY
             : wait                       ? io_uring_submit_and_wait(&u->ring, 1)
                                          : io_uring_submit(&u->ring);
    if (rc < 0)
        submit_failed(loop, u, rc);
    else
        u->submit_pause_ms = 0;
    return rc;
}

static struct io_uring_sqe *sqe_get(tao__loop_t *loop)
{
    TAO__ON_LOOP(loop);
    struct io_uring *ring = &U(loop)->ring;
    struct io_uring_sqe *sqe = tao__fault(TAO_FAULT_SQ_FULL) ? NULL : io_uring_get_sqe(ring);
    while (!sqe) {
        submit(loop, false);
        sqe = io_uring_get_sqe(ring);
    }
    return sqe;
}

static uint64_t ud(const tao__op_t *op)
{
    return (uint64_t)(uintptr_t)op | ((uint64_t)op->gen << 48);
}

static void sqe_op(struct io_uring_sqe *sqe, const tao__op_t *op)
{
    io_uring_sqe_set_data64(sqe, ud(op));
}

/* ---- setup ------------------------------------------------------------------ */

/* Ask for the cheapest task-running mode first and step down where the
 * kernel refuses a flag, so older kernels still work. */
static int ring_setup(tao__loop_t *loop, uring_t *u)
{
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = tries[i] | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
        p.cq_entries = ENTRIES * 4;
        rc = io_uring_queue_init_params(ENTRIES, &u->ring, &p);
        if (rc != -EINVAL)
            break;
    }
    if (rc < 0) {
        tao__log(TAO_LOG_ERROR, "loop %u: %s (%s)", loop->idx, tao__uring_why(rc), strerror(-rc));
        return rc;
    }
    u->ring_up = true;
    /* Saves a file-table lookup on every io_uring_enter. */
    io_uring_register_ring_fd(&u->ring);
    /* Room for a whole completion queue, so a batch always fits. */
    u->parked_cap = u->ring.cq.ring_entries;
    u->parked = tao__calloc(u->parked_cap, sizeof *u->parked);
    return u->parked ? 0 : -ENOMEM;
}

/* Registered buffers for SEND_ZC. They are pinned memory, counted against
 * RLIMIT_MEMLOCK for unprivileged users: when they do not fit, say so and
 * send without them. */
static void zc_setup(tao__loop_t *loop, uring_t *u)
{
    tao__runtime_t *rt = loop->rt;
    size_t total = (size_t)rt->zc_count * rt->zc_size;
    if (!total)
        return;
    loop->zc_mem = tao__aligned_alloc(4096, (total + 4095) & ~(size_t)4095);
    loop->zc_free = tao__calloc(rt->zc_count, sizeof *loop->zc_free);
    loop->zc_refs = tao__calloc(rt->zc_count, sizeof *loop->zc_refs);
    struct iovec *iov = tao__calloc(rt->zc_count, sizeof *iov);
    int rc = -ENOMEM;
    if (loop->zc_mem && loop->zc_free && loop->zc_refs && iov) {
        for (unsigned i = 0; i < rt->zc_count; i++) {
            iov[i].iov_base = loop->zc_mem + (size_t)i * rt->zc_size;
            iov[i].iov_len = rt->zc_size;
            loop->zc_free[i] = (uint16_t)(rt->zc_count - 1 - i);
        }
        rc = io_uring_register_buffers(&u->ring, iov, rt->zc_count);
    }
    free(iov);
    if (rc < 0) {
        struct rlimit rl;
        getrlimit(RLIMIT_MEMLOCK, &rl);
        tao__log(TAO_LOG_WARN,
                 "loop %u: %zu KiB of registered send buffers refused (%s; RLIMIT_MEMLOCK %llu "
                 "KiB): SEND_ZC off. Raise 'ulimit -l' or lower zc_buffers / zc_buffer_size",
                 loop->idx, total / 1024, strerror(-rc), (unsigned long long)rl.rlim_cur / 1024);
        free(loop->zc_mem);
        free(loop->zc_free);
        free(loop->zc_refs);
        loop->zc_mem = NULL;
        loop->zc_free = loop->zc_refs = NULL;
        return;
    }
    loop->zc_count = loop->zc_nfree = rt->zc_count;
    loop->zc_size = rt->zc_size;
}

/* What this kernel gave us, for tao_server_features: loop 0 writes it at
 * setup, before the start returns. */
static void note_features(tao__loop_t *loop, const uring_t *u)
{
    if (loop->idx != 0)
        return;
    const char *have[] = {
        (u->ring.flags & IORING_SETUP_DEFER_TASKRUN)  ? "defer-taskrun"
        : (u->ring.flags & IORING_SETUP_COOP_TASKRUN) ? "coop-taskrun"
                                                      : NULL,
        (u->ring.int_flags & 1) ? "registered-ring" : NULL, /* liburing's INT_FLAG_REG_RING */
        u->buf_inc ? "incremental-buffers" : NULL,
        loop->zc_mem ? "send-zc" : NULL,
    };
    char *out = loop->rt->features;
    size_t size = sizeof loop->rt->features, len = 0;
    for (size_t i = 0; i < sizeof have / sizeof have[0]; i++)
        if (have[i] && len < size)
            len += (size_t)snprintf(out + len, size - len, "%s%s", len ? ", " : "", have[i]);
}

static void wake_arm(tao__loop_t *loop, uring_t *u)
{
    struct io_uring_sqe *sqe = sqe_get(loop);
    io_uring_prep_read(sqe, loop->inbox.wake_fd, &u->wake_val, sizeof u->wake_val, 0);
    sqe_op(sqe, &u->wake_op);
}

static void teardown(tao__loop_t *loop)
{
    uring_t *u = U(loop);
    if (!u)
        return;
    if (loop->zc_mem) {
        io_uring_unregister_buffers(&u->ring);
        free(loop->zc_mem);
        free(loop->zc_free);
        free(loop->zc_refs);
        loop->zc_mem = NULL;
    }
    if (u->br) {
        io_uring_unregister_buf_ring(&u->ring, BGID);
        munmap(u->br, u->br_len);
    }
    if (u->ring_up)
        io_uring_queue_exit(&u->ring);
    free(u->parked);
    free(u);
    loop->be_data = NULL;
}

static int setup(tao__loop_t *loop)
{
    TAO__ON_LOOP(loop);
    uring_t *u = tao__calloc(1, sizeof *u);
    if (!u)
        return -ENOMEM;
    loop->be_data = u;
    int rc = ring_setup(loop, u);
    if (rc == 0) {
        /* Small receives share a buffer where the kernel can fill one a
         * slice at a time (6.12); elsewhere each takes a whole one. */
        u->buf_inc = true;
        u->br = tao__buf_ring_setup(&u->ring, loop->buf_count, BGID, IOU_PBUF_RING_INC, &u->br_len,
                                    &rc);
        if (!u->br && rc == -EINVAL) {
            u->buf_inc = false;
            u->br = tao__buf_ring_setup(&u->ring, loop->buf_count, BGID, 0, &u->br_len, &rc);
        }
        if (!u->br)
            tao__log(TAO_LOG_ERROR, "loop %u: buffer ring setup failed: %s", loop->idx,
                     strerror(-rc));
    }
    if (rc < 0) {
        teardown(loop);
        return rc;
    }
    zc_setup(loop, u);
    note_features(loop, u);
    wake_arm(loop, u);
    return 0;
}

/* ---- waiting and reporting -------------------------------------------------- */

static void wait_(tao__loop_t *loop, bool block)
{
    uring_t *u = U(loop);
    submit(loop, block && !u->nparked);
    /* The batch, in order: what submits parked earlier, then the ring's. */
    park_cqes(u);
}

static void report(tao__loop_t *loop, uring_t *u, const struct io_uring_cqe *cqe)
{
    uint64_t data = io_uring_cqe_get_data64(cqe);
    if (data == 0)
        return; /* a fire-and-forget SQE */
    tao__op_t *op = (tao__op_t *)(uintptr_t)(data & UD_PTR_MASK);
    if (op == &u->wake_op) {
        wake_arm(loop, u);
        return;
    }
    if (op == &u->timeout_op) {
        /* -ETIME: it fired. Anything else: it was updated or removed;
         * either way the wheel is looked at again after this batch. */
        if (cqe->res == -ETIME || cqe->res == 0 || cqe->res == -ECANCELED)
            u->timeout_armed = false;
        return;
    }
    tao__cqe_t c = {.res = cqe->res};
    if (cqe->flags & IORING_CQE_F_MORE)
        c.flags |= TAO__CQ_MORE;
    if (cqe->flags & IORING_CQE_F_NOTIF)
        c.flags |= TAO__CQ_NOTIF;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        c.flags |= TAO__CQ_BUFFER;
        c.bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        if (cqe->flags & IORING_CQE_F_BUF_MORE)
            c.flags |= TAO__CQ_BUF_MORE;
    }
    if (op->gen != (uint16_t)(data >> 48)) {
        /* Stale: its owner is gone and the memory reused. A receive buffer
         * it carries is still ours to give back (see bufring.c). */
        if (c.flags & TAO__CQ_BUFFER) {
            tao__buf_take(loop, &c);
            tao__buf_put(loop, c.bid);
        }
        return;
    }
    tao__complete(loop, op, &c);
}

/* Dispatching may park more; they join this batch. */
static void dispatch(tao__loop_t *loop)
{
    uring_t *u = U(loop);
    for (unsigned i = 0; i < u->nparked; i++) {
        struct io_uring_cqe cqe = u->parked[i];
        report(loop, u, &cqe);
    }
    u->nparked = 0;
}

static bool behind(tao__loop_t *loop)
{
    uring_t *u = U(loop);
    return u->nparked || io_uring_cq_ready(&u->ring);
}

/* One io_uring timeout, armed for the wheel's next due time; moved earlier
 * when a sooner timer appears, left alone (a harmless early wake) when the
 * sooner timer is cancelled. */
static void timeout(tao__loop_t *loop, uint64_t at)
{
    uring_t *u = U(loop);
    if (u->timeout_armed && u->timeout_at <= at)
        return;
    /* The kernel reads the timespec when the SQE is submitted, which is at
     * the loop's next wait: keep it until then. */
    u->ts.tv_sec = (long long)(at / 1000);
    u->ts.tv_nsec = (long long)(at % 1000) * 1000000;
    struct io_uring_sqe *sqe = sqe_get(loop);
    if (u->timeout_armed) {
        io_uring_prep_timeout_update(sqe, &u->ts, ud(&u->timeout_op), IORING_TIMEOUT_ABS);
        io_uring_sqe_set_data64(sqe, 0);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    } else {
        io_uring_prep_timeout(sqe, &u->ts, 0, IORING_TIMEOUT_ABS);
        sqe_op(sqe, &u->timeout_op);
    }
    u->timeout_armed = true;
    u->timeout_at = at;
}

static void give_buf(tao__loop_t *loop, unsigned bid)
{
    uring_t *u = U(loop);
    io_uring_buf_ring_add(u->br, loop->bufs + (size_t)bid * loop->buf_size, loop->buf_size,
                          (unsigned short)bid, io_uring_buf_ring_mask(loop->buf_count), 0);
    io_uring_buf_ring_advance(u->br, 1);
}

/* ---- operations ----------------------------------------------------------- */

static void accept_(tao__loop_t *loop, int fd, tao__op_t *op)
{
    struct io_uring_sqe *sqe = sqe_get(loop);
    io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
    sqe_op(sqe, op);
}

static void recv_(tao_conn_t *c, tao__op_t *op)
{
    struct io_uring_sqe *sqe = sqe_get(c->loop);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    sqe_op(sqe, op);
}

static void send_(tao_conn_t *c, tao__sendctx_t *ctx)
{
    struct io_uring_sqe *sqe = sqe_get(c->loop);
    const struct iovec *v = ctx->iov;
    if (ctx->zc_slot >= 0)
        io_uring_prep_send_zc_fixed(sqe, c->fd, v->iov_base, v->iov_len, MSG_NOSIGNAL, 0,
                                    (unsigned)ctx->zc_slot);
    else if (ctx->msg.msg_iovlen == 1)
        io_uring_prep_send(sqe, c->fd, v->iov_base, v->iov_len, MSG_NOSIGNAL);
    else
        io_uring_prep_sendmsg(sqe, c->fd, &ctx->msg, MSG_NOSIGNAL);
    sqe_op(sqe, &ctx->op);
}

static void connect_(tao_conn_t *c, tao__op_t *op, const struct sockaddr *sa, socklen_t len)
{
    struct io_uring_sqe *sqe = sqe_get(c->loop);
    io_uring_prep_connect(sqe, c->fd, sa, len);
    sqe_op(sqe, op);
}

static void cancel(tao__loop_t *loop, tao__op_t *op)
{
    struct io_uring_sqe *sqe = sqe_get(loop);
    io_uring_prep_cancel64(sqe, ud(op), 0);
    io_uring_sqe_set_data64(sqe, 0);
}

/* A plain syscall, not an io_uring op: the kernel runs a shutdown op on an
 * io-wq thread that looks the descriptor up late, so one still pending
 * when the close completes could hit another socket that reused the
 * number. */
static void shutdown_(tao_conn_t *c)
{
    TAO__ON_LOOP(c->loop);
    shutdown(c->fd, SHUT_WR);
}

static void close_(tao_conn_t *c, tao__op_t *op, bool reset)
{
    if (reset) {
        /* SO_LINGER 0: close sends RST and drops unsent data. */
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    struct io_uring_sqe *sqe = sqe_get(c->loop);
    io_uring_prep_close(sqe, c->fd);
    sqe_op(sqe, op);
}

const tao__backend_t tao__backend_uring = {
    .name = "io_uring",
    .setup = setup,
    .teardown = teardown,
    .wait = wait_,
    .dispatch = dispatch,
    .behind = behind,
    .timeout = timeout,
    .give_buf = give_buf,
    .accept = accept_,
    .recv = recv_,
    .send = send_,
    .connect = connect_,
    .cancel = cancel,
    .shutdown = shutdown_,
    .close = close_,
};
