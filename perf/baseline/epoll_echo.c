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

#include "perf/baseline/echo.h"
#include "perf/baseline/listen.h"

#define READ_BUF (64u << 10)
#define OUT_HIGH (4u << 20)

typedef struct conn {
    int fd;
    bool paused; /* too much unsent output: not reading */
    bool eof;    /* the peer is done: close once the output is written */
    pb_buf_t in; /* the start of a frame that has not fully arrived */
    pb_buf_t out;
} conn_t;

static uint8_t rbuf[READ_BUF];

static void conn_close(conn_t *c)
{
    close(c->fd); /* also takes it out of the epoll set */
    pb_buf_free(&c->in);
    pb_buf_free(&c->out);
    free(c);
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
    pb_buf_consumed(&c->out);
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
            if (pb_echo(&c->in, &c->out, rbuf, (size_t)n) < 0)
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
    while (!pb_stop) {
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
    pb_ready("tao-epoll-echo", addr, port);
    serve(lfd);
    close(lfd);
    return 0;
}
