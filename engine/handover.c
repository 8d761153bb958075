/* Hand-over: a running server passes its listening sockets to its
 * successor over a unix socket (SCM_RIGHTS), as HAProxy's seamless reload
 * does, and stops accepting only once the successor serves on them.
 *
 * The sequence, on a SOCK_SEQPACKET connection to cfg.handover:
 *   1. the successor connects; the old server sends "TAO-HANDOVER 1" with
 *      every listening socket attached (srv->lfds);
 *   2. the successor starts its own server on them (both accept now) and
 *      sends "ready";
 *   3. the old server stops accepting on every loop (listener.c: cancel,
 *      then close its copies; never a shutdown), closes its own copies,
 *      sends "done", and calls on_handover.
 * A successor that goes away before "ready" changes nothing: the old server
 * keeps serving and offers hand-over again.
 *
 * The path. A server binds a temporary name beside it and renames it over
 * the path, so the path always names a live offer: the successor's
 * replaces its predecessor's atomically. A server removes the path at the
 * end only while it is still its own socket (same device and inode), and
 * puts its offer back there when a successor failed after replacing it.
 *
 * The old side runs on a thread of its own: accept, one session at a time,
 * every wait bounded; destroy ends it through a pipe. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "engine/fault.h"
#include "engine/handover.h"
#include "engine/log.h"
#include "engine/loop.h"
#include "engine/mailbox.h"
#include "engine/server.h"
#include "tao/restart.h"

#define HELLO "TAO-HANDOVER 1"
#define READY_MS 60000 /* a successor may take this long to start */
#define STEP_MS 10000  /* any other step */

typedef struct tao__offer {
    tao_server_t *srv;
    const char *path;
    int fd;    /* the unix socket listening at path */
    dev_t dev; /* ... and what it is on disk */
    ino_t ino;
    int stop[2]; /* destroy writes here */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned closed; /* loops that closed their listeners */
    bool ending;
} tao__offer_t;

/* ---- the path -------------------------------------------------------------- */

static int unix_addr(const char *path, struct sockaddr_un *sun)
{
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun->sun_path)
        return -ENAMETOOLONG;
    strcpy(sun->sun_path, path);
    return 0;
}

static bool still_ours(const tao__offer_t *o)
{
    struct stat st;
    return stat(o->path, &st) == 0 && st.st_dev == o->dev && st.st_ino == o->ino;
}

/* Listen on a temporary name, then rename it over the path. */
static int publish(tao__offer_t *o)
{
    char tmp[PATH_MAX];
    struct sockaddr_un sun;
    struct stat st;
    if (snprintf(tmp, sizeof tmp, "%s.%d.tmp", o->path, (int)getpid()) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    int rc = unix_addr(tmp, &sun);
    if (rc < 0)
        return rc;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    unlink(tmp); /* left by a process of ours that died */
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0 || listen(fd, 4) < 0 ||
        stat(tmp, &st) < 0 || rename(tmp, o->path) < 0) {
        rc = -errno;
        unlink(tmp);
        close(fd);
        return rc;
    }
    if (o->fd >= 0)
        close(o->fd);
    o->fd = fd;
    o->dev = st.st_dev;
    o->ino = st.st_ino;
    return 0;
}

/* ---- one session ------------------------------------------------------------ */

/* Wait for fd to be readable, or the stop pipe, or ms: 1, 0 (timeout), or
 * -ECANCELED (destroy). */
static int wait_in(tao__offer_t *o, int fd, int ms)
{
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = o->stop[0], .events = POLLIN}};
    int n;
    do
        n = poll(p, 2, ms);
    while (n < 0 && errno == EINTR);
    if (p[1].revents)
        return -ECANCELED;
    return n > 0;
}

static int send_fds(int fd, const int *fds, unsigned n)
{
    char cbuf[CMSG_SPACE(sizeof(int) * TAO_HANDOVER_MAX_FDS)];
    struct iovec iov = {.iov_base = (void *)HELLO, .iov_len = sizeof HELLO - 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (n > TAO_HANDOVER_MAX_FDS)
        return -ENOBUFS;
    memset(cbuf, 0, sizeof cbuf);
    m.msg_control = cbuf;
    m.msg_controllen = CMSG_SPACE(sizeof(int) * n);
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    return sendmsg(fd, &m, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* Every loop stops accepting; wait (bounded) until each has. */
static void unlisten(tao__offer_t *o)
{
    tao_server_t *srv = o->srv;
    tao__runtime_t *rt = &srv->rt;
    atomic_store(&srv->unlisten, true);
    for (unsigned i = 0; i < rt->nloops; i++)
        if (rt->loops[i].inbox.wake_fd >= 0)
            tao__loop_wake(&rt->loops[i]);
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += STEP_MS / 1000;
    pthread_mutex_lock(&o->lock);
    int rc = 0;
    while (o->closed < rt->nloops && !o->ending && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&o->cond, &o->lock, &end);
    bool all = o->closed >= rt->nloops;
    pthread_mutex_unlock(&o->lock);
    if (!all)
        tao__log(TAO_LOG_WARN, "hand-over: not every loop stopped accepting in time");
    for (unsigned i = 0; i < srv->nlfds; i++)
        close(srv->lfds[i]);
    srv->nlfds = 0;
}

/* One successor: true once it has taken over. */
static bool session(tao__offer_t *o, int fd)
{
    tao_server_t *srv = o->srv;
    char buf[16];
    /* Shared from the moment they leave: a stop from now on must not shut
     * down the sockets the successor may be serving on. */
    atomic_store(&srv->shared, true);
    if (!tao__runtime_accepting(&srv->rt)) {
        tao__log(TAO_LOG_INFO, "hand-over: refused, the server is stopping");
        return false;
    }
    int rc = send_fds(fd, srv->lfds, srv->nlfds);
    if (rc < 0) {
        tao__log(TAO_LOG_WARN, "hand-over: sending the sockets: %s", strerror(-rc));
        return false;
    }
    rc = wait_in(o, fd, READY_MS);
    ssize_t n = rc > 0 ? recv(fd, buf, sizeof buf, 0) : -1;
    if (n != 5 || memcmp(buf, "ready", 5) != 0) {
        tao__log(TAO_LOG_INFO, "hand-over: the successor went away (%s); still serving",
                 rc == 0  ? "no answer"
                 : n == 0 ? "closed"
                          : "no ready");
        return false;
    }
    unlisten(o);
    if (send(fd, "done", 4, MSG_NOSIGNAL) < 0)
        tao__log(TAO_LOG_DEBUG, "hand-over: saying done: %s", strerror(errno));
    tao__log(TAO_LOG_INFO, "hand-over: the successor serves; this server accepts no more");
    return true;
}

static void *offer_main(void *arg)
{
    tao__offer_t *o = arg;
    tao_server_t *srv = o->srv;
    for (;;) {
        int rc = wait_in(o, o->fd, -1);
        if (rc < 0)
            break;
        int fd = accept4(o->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        bool taken = session(o, fd);
        close(fd);
        if (taken) {
            if (srv->cfg.on_handover)
                srv->cfg.on_handover(srv);
            break;
        }
        /* A successor that failed after replacing the path: take it back. */
        if (!still_ours(o) && tao__runtime_accepting(&srv->rt) && (rc = publish(o)) < 0)
            tao__log(TAO_LOG_WARN, "hand-over: cannot offer at %s again: %s", o->path,
                     strerror(-rc));
    }
    return NULL;
}

/* ---- the old server's side --------------------------------------------------- */

int tao__handover_init(tao_server_t *srv)
{
    tao__offer_t *o = tao__calloc(1, sizeof *o);
    if (!o)
        return -ENOMEM;
    o->srv = srv;
    o->path = srv->cfg.handover;
    o->fd = -1;
    o->stop[0] = o->stop[1] = -1;
    pthread_mutex_init(&o->lock, NULL);
    pthread_cond_init(&o->cond, NULL);
    srv->offer = o;
    return pipe2(o->stop, O_CLOEXEC) < 0 ? -errno : 0;
}

int tao__handover_offer(tao_server_t *srv)
{
    tao__offer_t *o = srv->offer;
    int rc = publish(o);
    if (rc == 0)
        rc = -pthread_create(&o->thread, NULL, offer_main, o);
    if (rc < 0) {
        tao__log(TAO_LOG_ERROR, "hand-over: cannot offer at %s: %s", o->path, strerror(-rc));
        return rc;
    }
    o->thread_started = true;
    return 0;
}

void tao__handover_withdraw(tao_server_t *srv)
{
    tao__offer_t *o = srv->offer;
    if (!o)
        return;
    pthread_mutex_lock(&o->lock);
    o->ending = true;
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->lock);
    if (o->stop[1] >= 0 && write(o->stop[1], "x", 1) < 0)
        tao__log(TAO_LOG_ERROR, "hand-over: cannot end the offer: %s", strerror(errno));
    if (o->thread_started)
        pthread_join(o->thread, NULL);
    if (o->fd >= 0) {
        if (still_ours(o))
            unlink(o->path);
        close(o->fd);
    }
    for (int i = 0; i < 2; i++)
        if (o->stop[i] >= 0)
            close(o->stop[i]);
    pthread_mutex_destroy(&o->lock);
    pthread_cond_destroy(&o->cond);
    free(o);
    srv->offer = NULL;
}

void tao__handover_loop_closed(tao_server_t *srv)
{
    tao__offer_t *o = srv->offer;
    if (!o)
        return;
    pthread_mutex_lock(&o->lock);
    o->closed++;
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->lock);
}

/* ---- the successor's side ------------------------------------------------------ */

struct tao_handover {
    int fd;
};

static int wait_fd(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n;
    do
        n = poll(&p, 1, ms);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n == 0 ? -ETIMEDOUT : 0;
}

/* The hello and its descriptors: their count, or -errno (none kept). */
static int recv_fds(int fd, int *fds, unsigned max)
{
    char buf[32], cbuf[CMSG_SPACE(sizeof(int) * TAO_HANDOVER_MAX_FDS)];
    struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    int rc = wait_fd(fd, STEP_MS);
    if (rc < 0)
        return rc;
    ssize_t n = recvmsg(fd, &m, MSG_CMSG_CLOEXEC);
    if (n < 0)
        return -errno;
    int got[TAO_HANDOVER_MAX_FDS];
    unsigned ngot = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        unsigned k = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (unsigned i = 0; i < k && ngot < TAO_HANDOVER_MAX_FDS; i++)
            memcpy(&got[ngot++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
    rc = (size_t)n != sizeof HELLO - 1 || memcmp(buf, HELLO, (size_t)n) != 0 ||
                 (m.msg_flags & MSG_CTRUNC) || ngot == 0
             ? -EPROTO
         : ngot > max ? -ENOBUFS
                      : (int)ngot;
    for (unsigned i = 0; i < ngot; i++) {
        if (rc < 0)
            close(got[i]);
        else
            fds[i] = got[i];
    }
    return rc;
}

TAO_API int tao_handover_take(const char *path, int *fds, unsigned max, tao_handover_t **h)
{
    struct sockaddr_un sun;
    *h = NULL;
    int rc = unix_addr(path, &sun);
    if (rc < 0)
        return rc;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    rc = connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0 ? -errno : recv_fds(fd, fds, max);
    tao_handover_t *ho = rc > 0 ? tao__calloc(1, sizeof *ho) : NULL;
    if (rc > 0 && !ho) {
        for (int i = 0; i < rc; i++)
            close(fds[i]);
        rc = -ENOMEM;
    }
    if (rc <= 0) {
        close(fd);
        return rc < 0 ? rc : -EPROTO;
    }
    ho->fd = fd;
    *h = ho;
    return rc;
}

TAO_API int tao_handover_done(tao_handover_t *h)
{
    char buf[8];
    int rc = send(h->fd, "ready", 5, MSG_NOSIGNAL) < 0 ? -errno : wait_fd(h->fd, STEP_MS);
    if (rc == 0) {
        ssize_t n = recv(h->fd, buf, sizeof buf, 0);
        rc = n == 4 && memcmp(buf, "done", 4) == 0 ? 0 : n < 0 ? -errno : -ECONNRESET;
    }
    tao_handover_abort(h);
    return rc;
}

TAO_API void tao_handover_abort(tao_handover_t *h)
{
    if (!h)
        return;
    close(h->fd);
    free(h);
}
