/* Listening: by default one SO_REUSEPORT socket per loop, so the kernel
 * spreads new connections over the loops, and one multishot accept on each.
 * With inherited sockets (listen_fds: systemd's, or a predecessor's through
 * a hand-over) every loop accepts on every one of them instead.
 *
 * Ownership. The descriptors in the config's listen_fds stay the caller's:
 * the server never closes or shuts them down. The server keeps one copy of
 * each listening socket (srv->lfds, a dup of an inherited one, or the
 * socket it opened for a loop), which a hand-over sends and destroy closes.
 * Each loop accepts on copies of its own (a dup each), and closes them on
 * its thread when it stops accepting: first the accept is cancelled (and
 * the backend forgets the descriptor), then the copy is closed, so no
 * accept is ever made on a number that another socket may reuse.
 *
 * Stopping never breaks a socket that someone else listens on: an
 * inherited or handed-over socket (srv->shared) is only closed, never
 * shut down, so the connections in its queue wait for the other process.
 * A socket only this server holds is shut down first, so that no peer
 * completes a handshake into a queue nobody will accept from (the kernel
 * resets what is queued there).
 *
 * An accepted connection is served, whenever its accept returns: also one
 * that an accept in flight returns after the loop began to stop or to hand
 * over. Closing it would refuse a peer the kernel already told "connected";
 * serving it, it drains under the stop's rule (loop.c) like the others.
 *
 * A shared socket has several accepts waiting on it (our loops', another
 * process's). io_uring's accept waits exclusively: a new connection wakes
 * one waiter only, and when that waiter is being cancelled (the other
 * process stops accepting) the wake-up is lost, and the connection waits in
 * the queue until the next one arrives, which under a closed-loop client
 * may be never. So while the sockets are shared, each loop looks every
 * WATCH_MS: a listener whose queue held connections at two looks in a row
 * with no accept in between gets its accept made afresh, which accepts what
 * is queued at once.
 *
 * Running out of descriptors (EMFILE/ENFILE) or memory never stops
 * accepting for good: the listener backs off (10 ms doubling to 1 s) and
 * tries again. The connection limit is checked across all loops with one
 * atomic. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/conn.h"
#include "engine/endpoint.h"
#include "engine/fault.h"
#include "engine/handover.h"
#include "engine/listener.h"
#include "engine/log.h"
#include "engine/loop.h"
#include "engine/server.h"
#include "engine/transport.h"

/* SO_REUSEPORT lets another process of the same user bind a port that is
 * taken, and the two would share it silently. A bind without it, before the
 * first listener, tells whether the port is free. */
int tao__port_free(const tao_server_t *srv)
{
    int one = 1;
    int fd = socket(srv->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* TIME_WAIT is fine */
    int rc = bind(fd, (const struct sockaddr *)&srv->addr, srv->addr_len) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int tao__listener_open(tao_server_t *srv, int *fd_out)
{
    int one = 1;
    int fd = socket(srv->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        /* Accepted sockets inherit TCP_NODELAY from the listener on Linux:
         * one setsockopt here instead of one per connection. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&srv->addr, srv->addr_len) < 0)
        goto fail;
    if (listen(fd, (int)srv->cfg.backlog) < 0)
        goto fail;
    if (srv->port == 0) {
        /* With port 0 the first loop picks the port and the others share it. */
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
            goto fail;
        uint16_t port = ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port;
        if (srv->addr.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&srv->addr)->sin6_port = port;
        else
            ((struct sockaddr_in *)&srv->addr)->sin_port = port;
        srv->port = ntohs(port);
    }
    *fd_out = fd;
    return 0;
fail:;
    int err = -errno;
    close(fd);
    return err;
}

/* A socket someone else made: it must be a TCP socket that listens. Both
 * backends need it non-blocking (an accept must never wait for a peer that
 * another process took); the flag is the socket's, so a predecessor that
 * shares it sees it too, and Tao-C's own sockets are used that way anyway. */
int tao__listener_inherit(int fd, unsigned idx)
{
    int type = 0, acc = 0, fam = 0;
    socklen_t len = sizeof type;
    int rc = 0;
    const char *why = NULL;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
        rc = -errno;
        why = rc == -EBADF ? "not open" : "not a socket";
    } else if (type != SOCK_STREAM) {
        rc = -EINVAL;
        why = "not a stream socket";
    } else if (len = sizeof fam, getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &fam, &len) < 0 ||
                                     (fam != AF_INET && fam != AF_INET6)) {
        rc = -EINVAL;
        why = "not a TCP socket";
    } else if (len = sizeof acc,
               getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0 || !acc) {
        rc = -EINVAL;
        why = "not listening";
    } else {
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
            rc = -errno;
            why = "cannot make it non-blocking";
        }
    }
    if (rc < 0)
        tao__log(TAO_LOG_ERROR, "listen_fds[%u] (descriptor %d): %s (%s)", idx, fd, why,
                 strerror(-rc));
    return rc;
}

int tao__listeners_attach(tao__loop_t *loop, const int *fds, unsigned n, bool own)
{
    loop->lst = tao__calloc(n, sizeof *loop->lst);
    if (!loop->lst)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        tao__listener_t *l = &loop->lst[i];
        l->loop = loop;
        l->op.kind = OP_ACCEPT;
        l->own = own;
        l->fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3);
        if (l->fd < 0) {
            int err = -errno;
            loop->nlst = i;
            return err;
        }
    }
    loop->nlst = n;
    return 0;
}

#define WATCH_MS 100

static void arm(tao__listener_t *l);

static void watch_fire(tao__timer_t *t, uint64_t now)
{
    tao__loop_t *loop = container_of(t, tao__loop_t, listen_watch);
    for (unsigned i = 0; i < loop->nlst; i++) {
        tao__listener_t *l = &loop->lst[i];
        struct pollfd p = {.fd = l->fd, .events = POLLIN};
        bool queued = l->fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
        if (queued && l->waiting && l->armed) {
            tao__log(TAO_LOG_DEBUG,
                     "loop %u: connections wait on a shared socket: accepting afresh", loop->idx);
            loop->be->cancel(loop, &l->op); /* its last outcome arms it again */
            queued = false;
        }
        l->waiting = queued;
    }
    tao__wheel_add(&loop->wheel, &loop->listen_watch, now + WATCH_MS, 0);
}

static void watch(tao__loop_t *loop)
{
    if (loop->stopping || loop->unlistened || tao__timer_armed(&loop->listen_watch) ||
        !atomic_load(&loop->srv->shared))
        return;
    tao__timer_init(&loop->listen_watch, watch_fire);
    tao__wheel_add(&loop->wheel, &loop->listen_watch, loop->now + WATCH_MS, 0);
}

static void arm(tao__listener_t *l)
{
    tao__loop_t *loop = l->loop;
    if (l->armed || l->fd < 0 || loop->stopping)
        return;
    loop->be->accept(loop, l->fd, &l->op);
    l->armed = true;
}

void tao__accept_arm(tao__loop_t *loop)
{
    TAO__ON_LOOP(loop);
    for (unsigned i = 0; i < loop->nlst; i++)
        if (!tao__timer_armed(&loop->lst[i].retry))
            arm(&loop->lst[i]);
    if (loop->srv)
        watch(loop);
}

bool tao__accepting(const tao__loop_t *loop)
{
    for (unsigned i = 0; i < loop->nlst; i++)
        if (loop->lst[i].armed)
            return true;
    return false;
}

static void retry_fire(tao__timer_t *t, uint64_t now)
{
    arm(container_of(t, tao__listener_t, retry));
}

static void backoff(tao__listener_t *l, int err)
{
    tao__loop_t *loop = l->loop;
    tao_server_t *srv = loop->srv;
    l->backoff = l->backoff ? l->backoff * 2 : 10;
    if (l->backoff > 1000)
        l->backoff = 1000;
    STAT_ADD(loop, backoffs, 1);
    tao__log(TAO_LOG_WARN, "loop %u: accept: %s; retrying in %u ms", loop->idx, strerror(-err),
             l->backoff);
    if (srv->cfg.on_error)
        srv->cfg.on_error(srv, NULL, err, "accept");
    tao__timer_init(&l->retry, retry_fire);
    tao__wheel_add(&loop->wheel, &l->retry, loop->now + l->backoff, 0);
}

static void accepted(tao__loop_t *loop, int fd)
{
    tao_server_t *srv = loop->srv;
    unsigned prev = atomic_fetch_add(&srv->ep.nconns, 1);
    if (prev >= srv->ep.set.max_conns) {
        atomic_fetch_sub(&srv->ep.nconns, 1);
        STAT_ADD(loop, refused, 1);
        tao__log(TAO_LOG_DEBUG, "loop %u: %u connections: refusing one", loop->idx,
                 srv->ep.set.max_conns);
        close(fd);
        return;
    }
    tao_conn_t *c = tao__conn_new(loop, &srv->ep, fd, atomic_fetch_add(&srv->ep.next_id, 1));
    if (!c) {
        tao__log(TAO_LOG_ERROR, "loop %u: out of memory for a connection", loop->idx);
        atomic_fetch_sub(&srv->ep.nconns, 1);
        STAT_ADD(loop, refused, 1);
        close(fd);
        return;
    }
    STAT_ADD(loop, accepted, 1);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
        tao__conn_set_peer(c, (struct sockaddr *)&ss, len);
    if (srv->cfg.proxy_protocol)
        c->xport = &tao__transport_proxy;
    tao__ep_add(&srv->ep, c);
    /* Accepted while stopping (an accept in flight): served, then drained
     * like the others; its creation counts as its last receive, so it has
     * the quiet period to send its first bytes. */
    if (loop->stopping)
        c->flags |= C_DRAIN;
    tao__conn_start(c);
}

void tao__accept_complete(tao__loop_t *loop, tao__op_t *op, const tao__cqe_t *cqe)
{
    tao__listener_t *l = container_of(op, tao__listener_t, op);
    bool more = cqe->flags & TAO__CQ_MORE;
    int res = cqe->res;
    TAO__ON_LOOP(loop);

    if (!more)
        l->armed = false;
    if (res >= 0) {
        l->backoff = 0;
        l->waiting = false;
        accepted(loop, res);
    } else if (res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -ENOBUFS) {
        if (more) /* stop the multishot accept until the backoff ends */
            loop->be->cancel(loop, &l->op);
        if (!tao__timer_armed(&l->retry) && l->fd >= 0)
            backoff(l, res);
        return;
    } else if (res != -ECANCELED) {
        tao__log(TAO_LOG_DEBUG, "loop %u: accept: %s", loop->idx, strerror(-res));
    }
    if (!more && !tao__timer_armed(&l->retry))
        arm(l);
}

void tao__listener_poll(tao__loop_t *loop)
{
    TAO__ON_LOOP(loop);
    if (!loop->srv || loop->unlistened)
        return;
    if (atomic_load(&loop->srv->unlisten))
        tao__listener_close(loop);
    else
        watch(loop); /* the sockets may have become shared */
}

/* Once per loop, whether it stops or hands over: the accepts are
 * cancelled (the backend forgets each descriptor) before the copies are
 * closed. An accept in flight holds its own reference to the socket; what
 * it still returns is served (see the top of this file). */
void tao__listener_close(tao__loop_t *loop)
{
    TAO__ON_LOOP(loop);
    tao_server_t *srv = loop->srv;
    bool shared = !srv || atomic_load(&srv->shared);
    tao__wheel_cancel(&loop->wheel, &loop->listen_watch);
    for (unsigned i = 0; i < loop->nlst; i++) {
        tao__listener_t *l = &loop->lst[i];
        tao__wheel_cancel(&loop->wheel, &l->retry);
        if (l->armed)
            loop->be->cancel(loop, &l->op);
        if (l->fd < 0)
            continue;
        /* Only a socket nobody else holds is shut down: see the top. */
        if (l->own && !shared)
            shutdown(l->fd, SHUT_RDWR);
        close(l->fd);
        l->fd = -1;
    }
    if (!loop->unlistened) {
        loop->unlistened = true;
        if (srv)
            tao__handover_loop_closed(srv);
    }
}

void tao__listeners_free(tao__loop_t *loop)
{
    for (unsigned i = 0; i < loop->nlst; i++)
        if (loop->lst[i].fd >= 0)
            close(loop->lst[i].fd);
    free(loop->lst);
    loop->lst = NULL;
    loop->nlst = 0;
}
