/* An I/O loop: one thread, one io_uring, one buffer ring, one timing wheel.
 *
 * The loop waits for completions, hands each to the handler of its op kind,
 * then does the work that batching pays for: one gathered send per dirty
 * connection, re-arming receives that ran out of buffers, firing due timers,
 * and arming a single io_uring timeout for the next due one. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "engine/compat.h"
#include "engine/engine.h"
#include "engine/uring_why.h"
#include "engine/fault.h"

uint64_t tao__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- submitting --------------------------------------------------------------
 * Callers of tao__sqe never see NULL: a full submission queue is submitted
 * first. A submit can fail: -EBUSY when the completion queue is full and
 * the kernel holds completions back, -EAGAIN when it is short of memory.
 * Then the waiting completions are moved aside (parked) to make room, and
 * the submit is retried. The loop itself takes every batch of completions
 * the same way, out of the ring and into the parked array, before it
 * dispatches one: so a handler that submits, and parks, in the middle of
 * a batch never sees the ring's head move under it. Any other
 * failure is logged, and retried after a pause that grows to 100 ms, so a
 * persistent one neither spins a core nor drops an operation. */

/* Copy the completions waiting in the ring aside (as many as fit); returns
 * how many. */
static unsigned park_cqes(tao__loop_t *loop)
{
    unsigned head, n = 0;
    struct io_uring_cqe *cqe;
    unsigned ready = io_uring_cq_ready(&loop->ring);
    if (loop->nparked + ready > loop->parked_cap) {
        unsigned cap = (loop->nparked + ready) * 2;
        struct io_uring_cqe *p = tao__realloc(loop->parked, cap * sizeof *p);
        if (p) {
            loop->parked = p;
            loop->parked_cap = cap;
        }
    }
    io_uring_for_each_cqe(&loop->ring, head, cqe)
    {
        if (loop->nparked == loop->parked_cap)
            break;
        loop->parked[loop->nparked++] = *cqe;
        n++;
    }
    io_uring_cq_advance(&loop->ring, n);
    return n;
}

static void submit_failed(tao__loop_t *loop, int rc)
{
    if (rc == -EINTR || rc == -ETIME)
        return;
    if ((rc == -EBUSY || rc == -EAGAIN) && park_cqes(loop))
        return;
    unsigned ms = loop->submit_pause_ms ? loop->submit_pause_ms : 1;
    if ((ms & (ms - 1)) == 0) /* 1, 2, 4, ... ms: a line now and then, not a flood */
        tao__log(TAO_LOG_ERROR, "loop %u: io_uring submit failed: %s; retrying in %u ms", loop->idx,
                 tao_strerror(rc), ms);
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
    loop->submit_pause_ms = ms >= 100 ? 100 : ms + 1;
}

static int submit(tao__loop_t *loop, bool wait)
{
    int rc = tao__fault(TAO_FAULT_SUBMIT) ? -EBUSY
             : wait                       ? io_uring_submit_and_wait(&loop->ring, 1)
                                          : io_uring_submit(&loop->ring);
    if (rc < 0)
        submit_failed(loop, rc);
    else
        loop->submit_pause_ms = 0;
    return rc;
}

struct io_uring_sqe *tao__sqe(tao__loop_t *loop)
{
    struct io_uring_sqe *sqe = tao__fault(TAO_FAULT_SQ_FULL) ? NULL : io_uring_get_sqe(&loop->ring);
    while (!sqe) {
        submit(loop, false);
        sqe = io_uring_get_sqe(&loop->ring);
    }
    return sqe;
}

void tao__sqe_op(struct io_uring_sqe *sqe, tao__op_t *op)
{
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | ((uint64_t)op->gen << 48));
}

/* ---- ring setup --------------------------------------------------------- */

/* Ask for the cheapest task-running mode first and step down where the
 * kernel refuses a flag, so older kernels still work. */
static int ring_setup(tao__loop_t *loop, unsigned entries)
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
        p.flags = tries[i] | IORING_SETUP_SUBMIT_ALL;
        p.cq_entries = entries * 4;
        p.flags |= IORING_SETUP_CQSIZE;
        rc = io_uring_queue_init_params(entries, &loop->ring, &p);
        if (rc == 0)
            break;
        if (rc != -EINVAL)
            break;
    }
    if (rc < 0) {
        tao__log(TAO_LOG_ERROR, "loop %u: %s (%s)", loop->idx, tao__uring_why(rc), strerror(-rc));
        return rc;
    }
    /* Saves a file-table lookup on every io_uring_enter. */
    io_uring_register_ring_fd(&loop->ring);
    /* Room for a whole completion queue, so a batch always fits. */
    loop->parked_cap = loop->ring.cq.ring_entries;
    loop->parked = tao__calloc(loop->parked_cap, sizeof *loop->parked);
    if (!loop->parked) {
        io_uring_queue_exit(&loop->ring);
        return -ENOMEM;
    }
    return 0;
}

/* Registered buffers for SEND_ZC. They are pinned memory, counted against
 * RLIMIT_MEMLOCK for unprivileged users: when they do not fit, say so and
 * send without them. */
static void zc_setup(tao__loop_t *loop)
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
        rc = io_uring_register_buffers(&loop->ring, iov, rt->zc_count);
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

int tao__loop_init(tao__loop_t *loop, tao__runtime_t *rt, unsigned idx)
{
    memset(loop, 0, sizeof *loop);
    loop->rt = rt;
    loop->idx = idx;
    loop->listen_fd = -1;
    loop->conns.next = loop->conns.prev = &loop->conns;
    loop->buf_count = rt->buf_count;
    loop->buf_size = rt->buf_size;
    pthread_mutex_init(&loop->inbox_lock, NULL);
    loop->accept_op.kind = OP_ACCEPT;
    loop->wake_op.kind = OP_WAKE;
    loop->timeout_op.kind = OP_TIMEOUT;
    loop->next_gen = 1;
    loop->wake_fd = eventfd(0, EFD_CLOEXEC);
    if (loop->wake_fd < 0)
        return -errno;
    if (rt->nworkers) {
        loop->to_worker = tao__calloc(rt->nworkers, sizeof *loop->to_worker);
        if (!loop->to_worker)
            return -ENOMEM;
    }
    return 0;
}

/* Items still in the inbox when the loop is gone (posted after it ended). */
static void discard(tao__item_t *it)
{
    if (it->kind == IT_SEND)
        tao__chunk_free(it->u.chunk);
    else if (it->kind == IT_TIMER_ARM)
        tao__timer_discard(it->u.timer);
    else if (it->kind == IT_TIMER_CANCEL)
        tao__timer_unref(it->u.timer);
    else if (it->kind == IT_BROADCAST)
        tao__bcast_unref(it->u.bcast);
    tao__item_free(it);
}

void tao__loop_deinit(tao__loop_t *loop)
{
    if (loop->listen_fd >= 0)
        close(loop->listen_fd);
    if (loop->wake_fd >= 0)
        close(loop->wake_fd);
    loop->listen_fd = loop->wake_fd = -1;
    for (tao__item_t *it = loop->inbox.head, *next; it; it = next) {
        next = it->next;
        discard(it);
    }
    loop->inbox.head = loop->inbox.tail = NULL;
    free(loop->parked);
    loop->parked = NULL;
    free(loop->to_worker);
    loop->to_worker = NULL;
    pthread_mutex_destroy(&loop->inbox_lock);
    while (loop->free_ctx) {
        tao__sendctx_t *n = loop->free_ctx->next_free;
        free(loop->free_ctx);
        loop->free_ctx = n;
    }
}

/* ---- wake-ups and timers -------------------------------------------------- */

void tao__loop_wake(tao__loop_t *loop)
{
    uint64_t one = 1;
    /* write(2) is async-signal-safe, so this works from a signal handler. */
    ssize_t rc = write(loop->wake_fd, &one, sizeof one);
    (void)rc;
}

static void wake_arm(tao__loop_t *loop)
{
    struct io_uring_sqe *sqe = tao__sqe(loop);
    io_uring_prep_read(sqe, loop->wake_fd, &loop->wake_val, sizeof loop->wake_val, 0);
    tao__sqe_op(sqe, &loop->wake_op);
}

static void begin_stop(tao__loop_t *loop);

static void wake_complete(tao__loop_t *loop, tao__op_t *op, struct io_uring_cqe *cqe)
{
    wake_arm(loop);
}

static void timeout_complete(tao__loop_t *loop, tao__op_t *op, struct io_uring_cqe *cqe)
{
    /* -ETIME: it fired. Anything else means it was updated or removed;
     * either way the wheel is looked at again after this batch. */
    if (cqe->res == -ETIME || cqe->res == 0 || cqe->res == -ECANCELED)
        loop->timeout_armed = false;
}

/* One io_uring timeout, armed for the wheel's next due time; moved earlier
 * when a sooner timer appears, left alone (a harmless early wake) when the
 * sooner timer is cancelled. */
static void timer_arm(tao__loop_t *loop)
{
    int64_t next = tao__wheel_next(&loop->wheel);
    if (next < 0)
        return;
    uint64_t at = loop->wheel.now + (uint64_t)next;
    if (loop->timeout_armed && loop->timeout_at <= at)
        return;

    /* The kernel reads the timespec when the SQE is submitted, which is at
     * the loop's next io_uring_enter: keep it in the loop until then. */
    struct __kernel_timespec *ts = &loop->timeout_ts;
    ts->tv_sec = (long long)(at / 1000);
    ts->tv_nsec = (long long)(at % 1000) * 1000000;
    struct io_uring_sqe *sqe = tao__sqe(loop);
    if (loop->timeout_armed) {
        io_uring_prep_timeout_update(sqe, ts, (uint64_t)(uintptr_t)&loop->timeout_op,
                                     IORING_TIMEOUT_ABS);
        io_uring_sqe_set_data64(sqe, 0);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    } else {
        io_uring_prep_timeout(sqe, ts, 0, IORING_TIMEOUT_ABS);
        tao__sqe_op(sqe, &loop->timeout_op);
    }
    loop->timeout_armed = true;
    loop->timeout_at = at;
}

/* ---- stopping ------------------------------------------------------------ */

static void deadline_fire(tao__timer_t *t, uint64_t now)
{
    tao__loop_t *loop = container_of(t, tao__loop_t, stop_deadline);
    size_t n = 0;
    for (tao_conn_t *c = loop->conns.next, *next; c != &loop->conns; c = next) {
        next = c->next;
        tao__conn_abort_local(c);
        n++;
    }
    if (n)
        tao__log(TAO_LOG_WARN, "loop %u: stop deadline passed, aborted %zu connection(s)",
                 loop->idx, n);
}

/* The stop's rule: every complete frame that reached the server before the
 * stop's deadline is answered. So a connection keeps reading, handling and
 * replying while the server stops (C_DRAIN), back-pressure included, and
 * closes gracefully only once it is quiet: not paused, no frame (whole or
 * started) waiting in c->in, nothing unread in its socket. Whatever still
 * keeps it busy at the deadline is aborted (RST, deadline_fire), never
 * closed with a FIN that would look complete; bytes that arrive after its
 * close began were not answered either, and turn the close into an abort
 * (conn.c). */
static bool quiet(const tao_conn_t *c)
{
    if (c->flags & (C_PAUSED | C_WPAUSED | C_NOBUFS) || c->in_len)
        return false;
    return (c->flags & C_EOF) || !tao__conn_unread(c);
}

/* While stopping, after a whole batch: close each draining connection that
 * has gone quiet. Not while completions wait in the ring: one of them may
 * hold bytes the socket no longer shows. */
static void drain_check(tao__loop_t *loop)
{
    if (io_uring_cq_ready(&loop->ring))
        return;
    for (tao_conn_t *c = loop->conns.next, *next; c != &loop->conns; c = next) {
        next = c->next;
        if ((c->flags & C_DRAIN) && !(c->flags & (C_CLOSING | C_FENCING)) && quiet(c))
            tao__conn_close_local(c, false);
    }
}

static void begin_stop(tao__loop_t *loop)
{
    unsigned ms = atomic_load(&loop->rt->stop_deadline_ms);
    loop->stopping = true;
    tao__listener_close(loop);
    for (tao_conn_t *c = loop->conns.next, *next; c != &loop->conns; c = next) {
        next = c->next;
        if (c->flags & C_OFFLINE)
            tao__conn_close_local(c, false); /* a client between sockets */
        else
            c->flags |= C_DRAIN;
    }
    tao__timer_init(&loop->stop_deadline, deadline_fire);
    tao__wheel_add(&loop->wheel, &loop->stop_deadline, loop->now + ms, 0);
}

/* ---- the loop -------------------------------------------------------------- */

typedef void (*complete_fn)(tao__loop_t *loop, tao__op_t *op, struct io_uring_cqe *cqe);

static const complete_fn on_complete[OP_KINDS] = {
    [OP_ACCEPT] = tao__accept_complete,   [OP_RECV] = tao__recv_complete,
    [OP_SEND] = tao__send_complete,       [OP_CLOSE] = tao__close_complete,
    [OP_TIMEOUT] = timeout_complete,      [OP_WAKE] = wake_complete,
    [OP_CONNECT] = tao__connect_complete,
};

static void dispatch(tao__loop_t *loop, struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    if (ud == 0)
        return; /* a fire-and-forget SQE (cancel, shutdown, timeout update) */
    tao__op_t *op = (tao__op_t *)(uintptr_t)(ud & TAO__UD_PTR_MASK);
    if (op->gen != (uint16_t)(ud >> 48)) {
        /* Stale: its owner is gone and the memory reused. A receive buffer
         * it carries is still ours to give back (see bufring.c). */
        if (cqe->flags & IORING_CQE_F_BUFFER) {
            unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
            tao__buf_take(loop, bid);
            tao__buf_put(loop, bid);
        }
        return;
    }
    on_complete[op->kind](loop, op, cqe);
}

/* Work deferred to the end of a batch, so that many replies leave in one
 * send and many refills cost one re-arm. */
static void run_item(tao__loop_t *loop, tao__item_t *it)
{
    tao_conn_t *c = it->conn;
    bool live = c && !(c->flags & C_CLOSE_SUBMITTED) && !(c->flags & C_DEAD);

    switch (it->kind) {
    case IT_SEND:
        if (live && !(c->flags & C_CLOSING)) {
            tao__conn_queue_chunk(c, it->u.chunk);
        } else {
            tao__queued_sub(c, tao__chunk_bytes(it->u.chunk));
            tao__chunk_free(it->u.chunk);
        }
        break;
    case IT_CLOSE:
        if (live)
            tao__conn_close_local(c, it->from_worker);
        break;
    case IT_ABORT:
        if (live)
            tao__conn_abort_local(c);
        break;
    case IT_RESUME:
        if (live)
            tao__conn_resume_worker(c);
        break;
    case IT_TIMER_ARM:
        tao__timer_arm_local(loop, it->u.timer);
        break;
    case IT_TIMER_CANCEL:
        tao__timer_cancel_local(loop, it->u.timer);
        tao__timer_unref(it->u.timer); /* the reference cancel took */
        break;
    case IT_BROADCAST:
        tao__broadcast_local(loop, it->u.bcast);
        break;
    case IT_CONNECT:
        tao__client_connect_item(c);
        break;
    default:
        break;
    }
    tao__item_free(it);
}

/* The flag spares the lock on the (usual) batches with nothing posted. */
static void drain_inbox(tao__loop_t *loop)
{
    if (!atomic_load(&loop->inbox_ready))
        return;
    pthread_mutex_lock(&loop->inbox_lock);
    tao__queue_t q = loop->inbox;
    loop->inbox.head = loop->inbox.tail = NULL;
    atomic_store(&loop->inbox_ready, false);
    pthread_mutex_unlock(&loop->inbox_lock);
    for (tao__item_t *it = q.head, *next; it; it = next) {
        next = it->next;
        run_item(loop, it);
    }
}

static bool inbox_empty(tao__loop_t *loop)
{
    return !atomic_load(&loop->inbox_ready);
}

static void flush_workers(tao__loop_t *loop)
{
    for (unsigned i = 0; loop->to_worker && i < loop->rt->nworkers; i++)
        if (loop->to_worker[i].head)
            tao__post_worker(&loop->rt->workers[i], &loop->to_worker[i]);
}

/* Re-arm the receives that ran out of buffers, oldest first, no more than
 * there are buffers in the ring: re-arming a thousand receives for a
 * handful of buffers only earns a thousand more -ENOBUFS. The rest wait for
 * the next pass; the loop does not sleep while buffers are there for them. */
static void rearm(tao__loop_t *loop)
{
    unsigned budget = loop->bufs_avail;
    while (loop->nobufs && budget) {
        tao_conn_t *c = loop->nobufs;
        loop->nobufs = c->nobufs_next;
        if (!loop->nobufs)
            loop->nobufs_tail = NULL;
        c->nobufs_next = NULL;
        c->flags &= ~(uint32_t)C_NOBUFS;
        if (c->flags & C_DEAD) {
            if (!(c->flags & C_DIRTY))
                tao__conn_unref(c);
            continue;
        }
        tao__conn_progress(c);
        budget--;
    }
}

static void after_batch(tao__loop_t *loop)
{
    loop->now = tao__now_ms();
    drain_inbox(loop);
    tao__wheel_advance(&loop->wheel, loop->now);

    rearm(loop);
    while (loop->dirty) {
        tao_conn_t *c = loop->dirty;
        loop->dirty = c->dirty_next;
        c->dirty_next = NULL;
        c->flags &= ~(uint32_t)C_DIRTY;
        if (c->flags & C_DEAD) {
            if (!(c->flags & C_NOBUFS))
                tao__conn_unref(c);
        } else {
            tao__conn_flush(c);
        }
    }
    if (!loop->stopping && atomic_load(&loop->rt->stop_requested))
        begin_stop(loop);
    if (loop->stopping)
        drain_check(loop);
    flush_workers(loop);
    timer_arm(loop);
}

static void pin(tao__loop_t *loop)
{
    tao__runtime_t *rt = loop->rt;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (rt->no_pin || cpus <= 0 || rt->nloops != (unsigned)cpus)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(loop->idx, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void report_ready(tao__loop_t *loop, int rc)
{
    tao__runtime_t *rt = loop->rt;
    pthread_mutex_lock(&rt->lock);
    loop->setup_err = rc;
    loop->ring_ready = true;
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
}

static void teardown(tao__loop_t *loop)
{
    if (loop->zc_mem) {
        io_uring_unregister_buffers(&loop->ring);
        free(loop->zc_mem);
        free(loop->zc_free);
        free(loop->zc_refs);
        loop->zc_mem = NULL;
    }
    tao__bufs_teardown(loop);
    io_uring_queue_exit(&loop->ring);
}

void *tao__loop_main(void *arg)
{
    tao__loop_t *loop = arg;

    tao__tls_loop = loop;
    pin(loop);
    /* Created on this thread: SINGLE_ISSUER and DEFER_TASKRUN tie the ring
     * to the thread that submits. */
    int rc = ring_setup(loop, 1024);
    if (rc == 0 && (rc = tao__bufs_setup(loop)) < 0) {
        tao__log(TAO_LOG_ERROR, "loop %u: buffer ring setup failed: %s", loop->idx, strerror(-rc));
        teardown(loop);
    }
    if (rc == 0)
        zc_setup(loop);
    report_ready(loop, rc);
    if (rc < 0)
        return NULL;

    loop->now = tao__now_ms();
    tao__wheel_init(&loop->wheel, loop->now);
    wake_arm(loop);
    tao__accept_arm(loop);
    after_batch(loop);

    while (!(loop->stopping && loop->nconns == 0 && !loop->accept_armed)) {
        /* Announce the sleep, then look at the inbox once more: a poster
         * either sees the flag and wakes us, or we see its item. */
        atomic_store(&loop->sleeping, true);
        submit(loop, inbox_empty(loop) && !(loop->nobufs && loop->bufs_avail) && !loop->nparked);
        atomic_store(&loop->sleeping, false);
        /* The completions below stamp connections with loop->now (last
         * receive, start of a partial frame): it must be the time they
         * came, not the time the loop went to sleep. */
        loop->now = tao__now_ms();
        /* The batch, in order: what submits parked earlier, then the
         * ring's. Dispatching may park more; they join this batch. */
        park_cqes(loop);
        for (unsigned i = 0; i < loop->nparked; i++) {
            struct io_uring_cqe cqe = loop->parked[i];
            dispatch(loop, &cqe);
        }
        loop->nparked = 0;
        after_batch(loop);
    }
    while (loop->nobufs) { /* only finished connections can be left here */
        tao_conn_t *c = loop->nobufs;
        loop->nobufs = c->nobufs_next;
        c->flags &= ~(uint32_t)C_NOBUFS;
        if ((c->flags & C_DEAD) && !(c->flags & C_DIRTY))
            tao__conn_unref(c);
    }
    loop->nobufs_tail = NULL;
    tao__loop_timers_free(loop);
    flush_workers(loop);
    teardown(loop);
    tao__tls_thread_exit();
    tao__tls_loop = NULL;
    return NULL;
}
