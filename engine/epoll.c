/* The epoll backend: for where io_uring is refused (a container's seccomp
 * profile, a sysctl, a kernel without it). One epoll instance per loop,
 * edge-triggered, turned into the same outcomes the io_uring backend
 * reports, so the engine above cannot tell them apart.
 *
 * Descriptors: each socket the engine uses is registered once, for input
 * and output, the first time a request names it. The table `fds`, indexed
 * by descriptor, says which requests wait on it (one that reads: accept or
 * receive; one that writes: send or connect) and what epoll last said
 * about it. A registration belongs to its owner's socket (the connection
 * and its generation, or the loop for a listener): a request whose owner
 * differs from the slot's found a reused number, and registers afresh.
 * Events carry the registration's sequence number; an event for a
 * descriptor closed and reused in the same wait is dropped.
 *
 * Requests are carried out in wait(), never where they are made, so no
 * outcome is reported from inside the call that asked for it: first the
 * requests made since the last wait (and descriptors that had more to
 * give), then what epoll reports. Each outcome joins the `done` queue;
 * dispatch reports them in order. A cancel or a close finishes its request
 * at once, as a queued outcome behind the ones already there.
 *
 * Edge-triggered readiness: a descriptor stays "ready" until a call says
 * EAGAIN, or a receive comes back short (the socket was emptied; new bytes
 * raise a new edge) without the peer having hung up. A receive takes at
 * most RECV_BUDGET buffers and an accept at most ACCEPT_BUDGET sockets per
 * turn; a descriptor with more to give waits for the next turn behind the
 * others, so one busy peer cannot starve a loop.
 *
 * Receive buffers: the loop's buffers (bufring.c) that the backend holds
 * are a stack of free ids; a receive pops one, an outcome with
 * TAO__CQ_BUFFER hands it to the engine, give_buf pushes it back. With
 * the stack empty a receive ends with -ENOBUFS, as io_uring's does.
 *
 * SEND_ZC and registered buffers are io_uring's: this backend sends with
 * sendmsg. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/bufring.h"
#include "engine/conn.h"
#include "engine/fault.h"
#include "engine/log.h"
#include "engine/loop.h"
#include "engine/send.h"

#define EVENTS 256
#define RECV_BUDGET 8
#define ACCEPT_BUDGET 64
#define WAKE_DATA UINT64_MAX

typedef struct slot {
    uint32_t seq; /* registration; 0 = none */
    uint16_t gen; /* the owner's socket generation */
    bool rd_ready, wr_ready;
    bool hup;           /* the peer hung up: a short receive is not the end */
    bool queued;        /* on the run list */
    const void *owner;  /* the connection, or the loop for its listener */
    tao__op_t *rd, *wr; /* accept or receive; send or connect */
    int next;           /* run list */
} slot_t;

typedef struct done {
    tao__op_t *op;
    uint16_t gen;
    tao__cqe_t cqe;
} done_t;

typedef struct ep {
    int epfd;
    slot_t *fds;
    unsigned nfds;
    uint32_t next_seq;
    int run_head, run_tail; /* descriptors with requests to carry out */
    done_t *done;           /* outcomes not reported yet */
    unsigned ndone, done_cap;
    uint16_t *free_bufs; /* receive buffers the backend holds */
    unsigned nfree;
    uint64_t timeout_at;
    bool polled; /* the last wait asked epoll */
    struct epoll_event evs[EVENTS];
} ep_t;

static ep_t *E(tao__loop_t *loop)
{
    return loop->be_data;
}

/* ---- outcomes and the run list --------------------------------------------- */

static void push(tao__loop_t *loop, tao__op_t *op, int res, uint16_t flags, uint16_t bid)
{
    ep_t *b = E(loop);
    if (b->ndone == b->done_cap) {
        unsigned cap = b->done_cap ? b->done_cap * 2 : 256;
        done_t *d = tao__realloc(b->done, cap * sizeof *d);
        while (!d) {
            /* An outcome may not be lost: its owner waits for it. */
            tao__log(TAO_LOG_ERROR, "loop %u: out of memory for an outcome; retrying", loop->idx);
            usleep(1000);
            d = tao__realloc(b->done, cap * sizeof *d);
        }
        b->done = d;
        b->done_cap = cap;
    }
    b->done[b->ndone++] =
        (done_t){.op = op, .gen = op->gen, .cqe = {.res = res, .flags = flags, .bid = bid}};
}

/* A request's last outcome: the slot lets go of it. */
static void finish(tao__loop_t *loop, tao__op_t **which, int res)
{
    tao__op_t *op = *which;
    *which = NULL;
    push(loop, op, res, 0, 0);
}

static void enqueue(ep_t *b, int fd)
{
    slot_t *s = &b->fds[fd];
    if (s->queued)
        return;
    s->queued = true;
    s->next = -1;
    if (b->run_tail >= 0)
        b->fds[b->run_tail].next = fd;
    else
        b->run_head = fd;
    b->run_tail = fd;
}

static bool runnable(const slot_t *s)
{
    return (s->rd && s->rd_ready) || (s->wr && s->wr_ready);
}

/* ---- descriptors ------------------------------------------------------------- */

static int grow(ep_t *b, int fd)
{
    if ((unsigned)fd < b->nfds)
        return 0;
    unsigned n = b->nfds ? b->nfds : 256;
    while (n <= (unsigned)fd)
        n *= 2;
    slot_t *p = tao__realloc(b->fds, n * sizeof *p);
    if (!p)
        return -ENOMEM;
    memset(p + b->nfds, 0, (n - b->nfds) * sizeof *p);
    b->fds = p;
    b->nfds = n;
    return 0;
}

/* The slot of fd for owner's socket gen, registered with epoll; NULL (and
 * *err) when that fails. */
static slot_t *attach(tao__loop_t *loop, int fd, const void *owner, uint16_t gen, int *err)
{
    ep_t *b = E(loop);
    if ((*err = grow(b, fd)) < 0)
        return NULL;
    slot_t *s = &b->fds[fd];
    if (s->seq && s->owner == owner && s->gen == gen)
        return s;
    uint32_t seq = ++b->next_seq ? b->next_seq : ++b->next_seq;
    struct epoll_event ev = {
        .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
        .data.u64 = (uint64_t)seq << 32 | (uint32_t)fd,
    };
    int rc = epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
    if (rc == -EEXIST) /* the number was ours, for a socket closed without us */
        rc = epoll_ctl(b->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
    if (rc < 0) {
        *err = rc;
        return NULL;
    }
    s->seq = seq;
    s->owner = owner;
    s->gen = gen;
    s->rd = s->wr = NULL;
    s->rd_ready = s->wr_ready = true; /* until a call says otherwise */
    s->hup = false;
    return s; /* queued and next stay: the run list may hold fd already */
}

/* The slot a request on a connection's socket uses; a failure to register
 * finishes the request with the error. */
static slot_t *conn_slot(tao_conn_t *c, tao__op_t *op)
{
    int err;
    op->fd = c->fd;
    slot_t *s = attach(c->loop, c->fd, c, c->recv_op.gen, &err);
    if (!s) {
        tao__log(TAO_LOG_ERROR, "loop %u: epoll_ctl: %s", c->loop->idx, strerror(-err));
        push(c->loop, op, err, 0, 0);
    }
    return s;
}

/* ---- carrying requests out ---------------------------------------------------- */

static void do_accept(tao__loop_t *loop, slot_t *s, int fd)
{
    for (int i = 0; i < ACCEPT_BUDGET && s->rd; i++) {
        int nfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (nfd >= 0) {
            push(loop, s->rd, nfd, TAO__CQ_MORE, 0);
        } else if (errno == EAGAIN) {
            s->rd_ready = false;
        } else if (errno != EINTR && errno != ECONNABORTED) {
            finish(loop, &s->rd, -errno); /* EMFILE and the like: the engine backs off */
        }
        if (!s->rd_ready)
            break;
    }
}

static void do_recv(tao__loop_t *loop, ep_t *b, slot_t *s, int fd)
{
    for (int i = 0; i < RECV_BUDGET && s->rd && s->rd_ready; i++) {
        if (!b->nfree) {
            finish(loop, &s->rd, -ENOBUFS);
            return;
        }
        uint16_t bid = b->free_bufs[--b->nfree];
        uint8_t *buf = loop->bufs + (size_t)bid * loop->buf_size;
        ssize_t n = recv(fd, buf, loop->buf_size, MSG_DONTWAIT);
        if (n > 0) {
            push(loop, s->rd, (int)n, TAO__CQ_MORE | TAO__CQ_BUFFER, bid);
            if ((size_t)n < loop->buf_size && !s->hup)
                s->rd_ready = false; /* emptied: the next bytes raise an edge */
            continue;
        }
        b->free_bufs[b->nfree++] = bid;
        if (n == 0)
            finish(loop, &s->rd, 0);
        else if (errno == EAGAIN)
            s->rd_ready = false;
        else if (errno != EINTR)
            finish(loop, &s->rd, -errno);
    }
}

static void do_send(tao__loop_t *loop, slot_t *s, int fd)
{
    tao__sendctx_t *ctx = container_of(s->wr, tao__sendctx_t, op);
    const struct iovec *v = ctx->msg.msg_iov;
    size_t want = 0;
    for (size_t i = 0; i < ctx->msg.msg_iovlen; i++)
        want += v[i].iov_len;
    ssize_t n = ctx->msg.msg_iovlen == 1
                    ? send(fd, v->iov_base, v->iov_len, MSG_NOSIGNAL | MSG_DONTWAIT)
                    : sendmsg(fd, &ctx->msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
        if ((size_t)n < want)
            s->wr_ready = false; /* the socket is full; it says when it has room */
        finish(loop, &s->wr, (int)n);
    } else if (errno == EAGAIN) {
        s->wr_ready = false;
    } else if (errno != EINTR) {
        finish(loop, &s->wr, -errno);
    }
}

/* The connect in progress has an answer: the socket's error, or none. */
static void do_connect(tao__loop_t *loop, slot_t *s, int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    finish(loop, &s->wr, -err);
}

static void run(tao__loop_t *loop, ep_t *b, int fd)
{
    slot_t *s = &b->fds[fd];
    if (s->wr && s->wr_ready) {
        if (s->wr->kind == OP_CONNECT)
            do_connect(loop, s, fd);
        else
            do_send(loop, s, fd);
    }
    if (s->rd && s->rd_ready) {
        if (s->rd->kind == OP_ACCEPT)
            do_accept(loop, s, fd);
        else
            do_recv(loop, b, s, fd);
    }
    if (runnable(s))
        enqueue(b, fd); /* more to give: behind the others */
}

/* The requests made since the last wait, and descriptors with more to give;
 * what they enqueue again waits for the next turn. */
static void run_queued(tao__loop_t *loop, ep_t *b)
{
    int fd = b->run_head;
    b->run_head = b->run_tail = -1;
    while (fd >= 0) {
        slot_t *s = &b->fds[fd];
        int next = s->next;
        s->queued = false;
        run(loop, b, fd);
        fd = next;
    }
}

/* ---- setup ---------------------------------------------------------------------- */

static void teardown(tao__loop_t *loop)
{
    ep_t *b = E(loop);
    if (!b)
        return;
    if (b->epfd >= 0)
        close(b->epfd);
    free(b->fds);
    free(b->done);
    free(b->free_bufs);
    free(b);
    loop->be_data = NULL;
}

static int setup(tao__loop_t *loop)
{
    TAO__ON_LOOP(loop);
    ep_t *b = tao__calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    loop->be_data = b;
    b->run_head = b->run_tail = -1;
    b->timeout_at = UINT64_MAX;
    b->free_bufs = tao__calloc(loop->buf_count, sizeof *b->free_bufs);
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    int rc = b->epfd < 0 ? -errno : b->free_bufs ? 0 : -ENOMEM;
    if (rc == 0) {
        /* Level-triggered: a wake-up stays reported until it is read. */
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_DATA};
        if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, loop->inbox.wake_fd, &ev) < 0)
            rc = -errno;
    }
    if (rc < 0) {
        tao__log(TAO_LOG_ERROR, "loop %u: epoll setup failed: %s", loop->idx, strerror(-rc));
        teardown(loop);
    }
    return rc;
}

/* ---- waiting and reporting ------------------------------------------------------ */

static int wait_ms(const ep_t *b)
{
    if (b->timeout_at == UINT64_MAX)
        return -1;
    uint64_t now = tao__now_ms();
    if (b->timeout_at <= now)
        return 0;
    uint64_t ms = b->timeout_at - now;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

static void event(tao__loop_t *loop, ep_t *b, const struct epoll_event *ev)
{
    if (ev->data.u64 == WAKE_DATA) {
        uint64_t v;
        if (read(loop->inbox.wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
            tao__log(TAO_LOG_ERROR, "loop %u: wake-up read: %s", loop->idx, strerror(errno));
        return;
    }
    int fd = (int)(uint32_t)ev->data.u64;
    slot_t *s = &b->fds[fd];
    if (s->seq != (uint32_t)(ev->data.u64 >> 32))
        return; /* closed since, and the number reused */
    if (ev->events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        s->hup = true;
    if (ev->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        s->rd_ready = true;
    if (ev->events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        s->wr_ready = true;
    if (runnable(s) && !s->queued)
        run(loop, b, fd);
}

static void wait_(tao__loop_t *loop, bool block)
{
    ep_t *b = E(loop);
    run_queued(loop, b);
    /* Outcomes in hand: report them now, and ask epoll next time; so a
     * request and its answer cost no extra wait, and epoll is asked at
     * least every other turn. */
    if (b->ndone && b->polled) {
        b->polled = false;
        b->timeout_at = UINT64_MAX;
        return;
    }
    int ms = block && !b->ndone && b->run_head < 0 ? wait_ms(b) : 0;
    int n = epoll_wait(b->epfd, b->evs, EVENTS, ms);
    b->polled = true;
    b->timeout_at = UINT64_MAX; /* the loop names the next one after this batch */
    if (n < 0 && errno != EINTR)
        tao__log(TAO_LOG_ERROR, "loop %u: epoll_wait: %s", loop->idx, strerror(errno));
    for (int i = 0; i < n; i++)
        event(loop, b, &b->evs[i]);
}

/* Reporting may queue more (a cancel, a close): they join this batch. */
static void dispatch(tao__loop_t *loop)
{
    ep_t *b = E(loop);
    for (unsigned i = 0; i < b->ndone; i++) {
        done_t d = b->done[i];
        if (d.op->gen != d.gen) {
            /* Stale: the owner took a new socket since. */
            if (d.cqe.flags & TAO__CQ_BUFFER) {
                tao__buf_take(loop, &d.cqe);
                tao__buf_put(loop, d.cqe.bid);
            }
            continue;
        }
        tao__complete(loop, d.op, &d.cqe);
    }
    b->ndone = 0;
}

static bool behind(tao__loop_t *loop)
{
    return E(loop)->ndone > 0;
}

static void timeout(tao__loop_t *loop, uint64_t at)
{
    ep_t *b = E(loop);
    if (at < b->timeout_at)
        b->timeout_at = at;
}

static void give_buf(tao__loop_t *loop, unsigned bid)
{
    ep_t *b = E(loop);
    b->free_bufs[b->nfree++] = (uint16_t)bid;
}

/* ---- requests ------------------------------------------------------------------- */

static void accept_(tao__loop_t *loop, int fd, tao__op_t *op)
{
    TAO__ON_LOOP(loop);
    int err;
    op->fd = fd;
    /* accept4 must not block the loop when another took the connection. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && !(fl & O_NONBLOCK))
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    slot_t *s = attach(loop, fd, loop, 0, &err);
    if (!s) {
        tao__log(TAO_LOG_ERROR, "loop %u: epoll_ctl (listener): %s", loop->idx, strerror(-err));
        push(loop, op, err, 0, 0);
        return;
    }
    s->rd = op;
    if (s->rd_ready)
        enqueue(E(loop), fd);
}

static void recv_(tao_conn_t *c, tao__op_t *op)
{
    TAO__ON_LOOP(c->loop);
    slot_t *s = conn_slot(c, op);
    if (!s)
        return;
    s->rd = op;
    if (s->rd_ready)
        enqueue(E(c->loop), c->fd);
}

static void send_(tao_conn_t *c, tao__sendctx_t *ctx)
{
    TAO__ON_LOOP(c->loop);
    slot_t *s = conn_slot(c, &ctx->op);
    if (!s)
        return;
    s->wr = &ctx->op;
    if (s->wr_ready)
        enqueue(E(c->loop), c->fd);
}

static void connect_(tao_conn_t *c, tao__op_t *op, const struct sockaddr *sa, socklen_t len)
{
    TAO__ON_LOOP(c->loop);
    int fl = fcntl(c->fd, F_GETFL);
    int rc = fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno
             : connect(c->fd, sa, len) < 0                        ? -errno
                                                                  : 0;
    if (rc != -EINPROGRESS) {
        op->fd = c->fd;
        push(c->loop, op, rc, 0, 0); /* answered at once */
        return;
    }
    /* Registered after connect: a socket not yet connecting polls as hung
     * up. The answer comes as an output (or error) edge. */
    slot_t *s = conn_slot(c, op);
    if (!s)
        return;
    s->wr = op;
    s->wr_ready = false;
}

static void cancel(tao__loop_t *loop, tao__op_t *op)
{
    TAO__ON_LOOP(loop);
    ep_t *b = E(loop);
    if (op->fd < 0 || (unsigned)op->fd >= b->nfds)
        return;
    slot_t *s = &b->fds[op->fd];
    if (s->rd == op)
        finish(loop, &s->rd, -ECANCELED);
    else if (s->wr == op)
        finish(loop, &s->wr, -ECANCELED);
    /* Otherwise it has finished already: its outcome is queued. */
    if (op->kind == OP_ACCEPT && s->seq && s->owner == loop) {
        /* A listener is closed after its accept is cancelled, and another
         * process may hold the same socket: closing our descriptor would
         * not take it out of epoll, which would go on reporting that
         * process's connections. An accept later attaches afresh. */
        epoll_ctl(b->epfd, EPOLL_CTL_DEL, op->fd, NULL);
        s->seq = 0;
    }
}

static void shutdown_(tao_conn_t *c)
{
    TAO__ON_LOOP(c->loop);
    shutdown(c->fd, SHUT_WR);
}

static void close_(tao_conn_t *c, tao__op_t *op, bool reset)
{
    TAO__ON_LOOP(c->loop);
    ep_t *b = E(c->loop);
    if (reset) {
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    if ((unsigned)c->fd < b->nfds) {
        slot_t *s = &b->fds[c->fd];
        if (s->owner == c) {
            s->seq = 0; /* closing removes it from epoll */
            s->rd = s->wr = NULL;
        }
    }
    op->fd = c->fd;
    push(c->loop, op, close(c->fd) < 0 && errno != EINTR ? -errno : 0, 0, 0);
}

const tao__backend_t tao__backend_epoll = {
    .name = "epoll",
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
