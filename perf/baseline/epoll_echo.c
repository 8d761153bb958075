/* tao-epoll-echo: the baseline Tao-C is measured against. A single-threaded,
 * edge-triggered epoll TLV echo server, as one would write it by hand:
 *
 *   tao-epoll-echo [--listen HOST:PORT]
 *
 * Every complete frame (4-byte LE type, 4-byte LE length, payload; at most
 * 8 MiB of payload, as Tao-C) comes back unchanged, whatever its type.
 *
 * Kept honest and efficient: reads go into one shared 64 KiB buffer until
 * the socket is drained; only a partial frame's tail is kept per
 * connection; replies of one read batch are gathered in the connection's
 * output buffer and leave in one write. A write that would block keeps the
 * rest and waits for EPOLLOUT; past 4 MiB of unsent output the connection
 * stops being read until it drains, so a peer that never reads cannot make
 * the server buffer without bound. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "perf/baseline/listen.h"

#define HDR 8
#define MAX_PAYLOAD (8u << 20)
#define READ_BUF (64u << 10)
#define OUT_HIGH (4u << 20)
#define OUT_KEEP (64u << 10) /* a drained output buffer larger than this is freed */

typedef struct buf {
    uint8_t *p;
    size_t off, len, cap; /* bytes [off, len) are pending */
} buf_t;

typedef struct conn {
    int fd;
    bool paused; /* too much unsent output: not reading */
    bool eof;    /* the peer is done: close once the output is written */
    buf_t in;    /* the start of a frame that has not fully arrived */
    buf_t out;
} conn_t;

static uint8_t rbuf[READ_BUF];
static volatile sig_atomic_t stop;

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
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

static void buf_consumed(buf_t *b, size_t max_keep)
{
    if (b->off < b->len)
        return;
    b->off = b->len = 0;
    if (b->cap > max_keep) {
        free(b->p);
        b->p = NULL;
        b->cap = 0;
    }
}

static void conn_close(conn_t *c)
{
    close(c->fd); /* also takes it out of the epoll set */
    free(c->in.p);
    free(c->out.p);
    free(c);
}

/* Echo every complete frame of p[0..n) into the output buffer. Returns the
 * bytes used, or -1 for a frame over the limit. */
static ssize_t echo_frames(conn_t *c, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (n - off >= HDR) {
        uint32_t len = le32(p + off + 4);
        if (len > MAX_PAYLOAD)
            return -1;
        if (n - off - HDR < len)
            break;
        /* The reply: the same header and payload. */
        if (buf_append(&c->out, p + off, HDR + (size_t)len) < 0)
            return -1;
        off += HDR + (size_t)len;
    }
    return (ssize_t)off;
}

/* New bytes: straight from the read buffer when no partial frame waits,
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
    buf_consumed(&c->in, OUT_KEEP);
    return 0;
}

/* Returns -1 when the connection is broken. */
static int flush(conn_t *c)
{
    while (c->out.off < c->out.len) {
        ssize_t n = send(c->fd, c->out.p + c->out.off, c->out.len - c->out.off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out.off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        /* EAGAIN: EPOLLOUT (registered once, edge-triggered) tells us when. */
        return n < 0 && errno == EAGAIN ? 0 : -1;
    }
    buf_consumed(&c->out, OUT_KEEP);
    return 0;
}

/* Read until the socket is drained. A short read means it is: with a
 * stream socket, any byte arriving later raises a new edge. Returns -1 when
 * the connection is broken. */
static int read_batch(conn_t *c)
{
    while (!c->eof) {
        if (c->out.len - c->out.off >= OUT_HIGH) {
            c->paused = true;
            return 0;
        }
        ssize_t n = read(c->fd, rbuf, sizeof rbuf);
        if (n > 0) {
            if (consume(c, rbuf, (size_t)n) < 0)
                return -1;
            if ((size_t)n < sizeof rbuf)
                return 0;
        } else if (n == 0) {
            c->eof = true;
        } else if (errno == EAGAIN) {
            return 0;
        } else if (errno != EINTR) {
            return -1;
        }
    }
    return 0;
}

static void on_event(conn_t *c, uint32_t ev)
{
    if (c->paused && c->out.off == c->out.len)
        c->paused = false;
    if (!c->paused && read_batch(c) < 0) {
        conn_close(c);
        return;
    }
    if (flush(c) < 0 || (c->eof && c->out.off == c->out.len)) {
        conn_close(c);
        return;
    }
    /* Drained by this flush: reading can go on, and with edge triggering
     * no new EPOLLIN will come for bytes that already wait. */
    if (c->paused && c->out.off == c->out.len)
        on_event(c, ev);
}

static void accept_all(int lfd, int ep)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                fprintf(stderr, "tao-epoll-echo: accept: %s\n", strerror(errno));
            return; /* EAGAIN, or try again on the next wakeup */
        }
        conn_t *c = calloc(1, sizeof *c);
        struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
        if (!c || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0) {
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
    }
}

static void serve(int lfd)
{
    static struct epoll_event evs[512];
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e) < 0) {
        perror("tao-epoll-echo: epoll");
        exit(1);
    }
    while (!stop) {
        int n = epoll_wait(ep, evs, (int)(sizeof evs / sizeof evs[0]), -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr)
                on_event(evs[i].data.ptr, evs[i].events);
            else
                accept_all(lfd, ep);
        }
    }
    close(ep);
}

static void on_signal(int sig)
{
    stop = 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *addr = "127.0.0.1:12345";
    int ch, port;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'l') {
            addr = optarg;
        } else {
            printf("tao-epoll-echo [--listen HOST:PORT]: echo every TLV frame back\n");
            return ch == 'h' ? 0 : 2;
        }
    }
    int lfd = pb_listen(addr, &port);
    if (lfd < 0) {
        fprintf(stderr, "tao-epoll-echo: %s: %s\n", addr, strerror(-lfd));
        return 1;
    }
    /* No SA_RESTART: the signal must interrupt epoll_wait. */
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* The same line as the Tao-C examples print: scripts read the port from it. */
    printf("tao-epoll-echo listening on %.*s:%d\n", (int)(strrchr(addr, ':') - addr), addr, port);
    fflush(stdout);
    serve(lfd);
    close(lfd);
    return 0;
}
