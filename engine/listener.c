/* Listening: one SO_REUSEPORT socket per loop, so the kernel spreads new
 * connections over the loops, and one multishot accept on each.
 *
 * Running out of descriptors (EMFILE/ENFILE) or memory never stops
 * accepting for good: the loop backs off (10 ms doubling to 1 s) and tries
 * again. The connection limit is checked across all loops with one atomic. */
#include <errno.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/conn.h"
#include "engine/endpoint.h"
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

void tao__accept_arm(tao__loop_t *loop)
{
    TAO__ON_LOOP(loop);
    if (loop->accept_armed || loop->stopping || loop->listen_fd < 0)
        return;
    loop->be->accept(loop, loop->listen_fd, &loop->accept_op);
    loop->accept_armed = true;
}

static void retry_fire(tao__timer_t *t, uint64_t now)
{
    tao__accept_arm(container_of(t, tao__loop_t, accept_retry));
}

static void backoff(tao__loop_t *loop, int err)
{
    tao_server_t *srv = loop->srv;
    loop->accept_backoff = loop->accept_backoff ? loop->accept_backoff * 2 : 10;
    if (loop->accept_backoff > 1000)
        loop->accept_backoff = 1000;
    STAT_ADD(loop, backoffs, 1);
    tao__log(TAO_LOG_WARN, "loop %u: accept: %s; retrying in %u ms", loop->idx, strerror(-err),
             loop->accept_backoff);
    if (srv->cfg.on_error)
        srv->cfg.on_error(srv, NULL, err, "accept");
    tao__timer_init(&loop->accept_retry, retry_fire);
    tao__wheel_add(&loop->wheel, &loop->accept_retry, loop->now + loop->accept_backoff, 0);
}

static void accepted(tao__loop_t *loop, int fd)
{
    tao_server_t *srv = loop->srv;
    loop->accept_backoff = 0;
    if (loop->stopping) {
        close(fd);
        return;
    }
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
    tao__conn_start(c);
}

void tao__accept_complete(tao__loop_t *loop, tao__op_t *op, const tao__cqe_t *cqe)
{
    bool more = cqe->flags & TAO__CQ_MORE;
    int res = cqe->res;
    TAO__ON_LOOP(loop);

    if (!more)
        loop->accept_armed = false;
    if (res >= 0) {
        accepted(loop, res);
    } else if (res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -ENOBUFS) {
        if (more) /* stop the multishot accept until the backoff ends */
            loop->be->cancel(loop, &loop->accept_op);
        if (!tao__timer_armed(&loop->accept_retry))
            backoff(loop, res);
        return;
    } else if (res != -ECANCELED) {
        tao__log(TAO_LOG_DEBUG, "loop %u: accept: %s", loop->idx, strerror(-res));
    }
    if (!more && !tao__timer_armed(&loop->accept_retry))
        tao__accept_arm(loop);
}

void tao__listener_close(tao__loop_t *loop)
{
    TAO__ON_LOOP(loop);
    tao__wheel_cancel(&loop->wheel, &loop->accept_retry);
    if (loop->accept_armed)
        loop->be->cancel(loop, &loop->accept_op);
    if (loop->listen_fd >= 0) {
        /* Shut the listener down now so no new peer completes a handshake
         * into its queue; an accept in flight holds its own reference. */
        shutdown(loop->listen_fd, SHUT_RDWR);
        close(loop->listen_fd);
        loop->listen_fd = -1;
    }
}
