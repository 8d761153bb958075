/* tao-faulty-echo: a TLV echo server that breaks one reply on purpose, so
 * the tests can show that tao-loadgen notices every kind of fault.
 *
 *   tao-faulty-echo [--listen HOST:PORT] --fault flip|drop|reorder|close|none [--nth N]
 *
 * Replies are counted across the whole server; the Nth (default 100) is:
 *   flip     sent with one payload byte flipped,
 *   drop     not sent at all,
 *   reorder  held back and sent after the next reply on its connection,
 *   close    sent, and then its connection is closed.
 * Level-triggered epoll and plain buffers: simple rather than fast, it is
 * not measured. */
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
#define MAX_FRAME (HDR + (8u << 20))

typedef enum fault { F_NONE, F_FLIP, F_DROP, F_REORDER, F_CLOSE } fault_t;

typedef struct conn {
    int fd;
    bool want_out; /* EPOLLOUT is on */
    bool closing;  /* close once the output is written */
    uint8_t *in, *out, *held;
    size_t in_len, out_len, held_len;
} conn_t;

static fault_t fault;
static unsigned long nth = 100, replies;
static int ep;

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void append(uint8_t **buf, size_t *len, const uint8_t *p, size_t n)
{
    uint8_t *b = realloc(*buf, *len + n);
    if (!b) {
        perror("tao-faulty-echo");
        exit(1);
    }
    memcpy(b + *len, p, n);
    *buf = b;
    *len += n;
}

static void conn_close(conn_t *c)
{
    close(c->fd);
    free(c->in);
    free(c->out);
    free(c->held);
    free(c);
}

/* One reply, with the fault applied when it is the Nth. */
static void reply(conn_t *c, const uint8_t *f, size_t n)
{
    size_t at = c->out_len;
    bool hit = ++replies == nth;

    if (hit && fault == F_DROP)
        return;
    if (hit && fault == F_REORDER) {
        append(&c->held, &c->held_len, f, n);
        return;
    }
    append(&c->out, &c->out_len, f, n);
    if (hit && fault == F_FLIP)
        c->out[n > HDR ? at + HDR + (n - HDR) / 2 : at] ^= 0x20;
    if (hit && fault == F_CLOSE)
        c->closing = true;
    if (c->held) {
        append(&c->out, &c->out_len, c->held, c->held_len);
        free(c->held);
        c->held = NULL;
        c->held_len = 0;
    }
}

/* Echo the complete frames in c->in; returns -1 for an oversized one. */
static int echo_frames(conn_t *c)
{
    size_t off = 0;
    while (c->in_len - off >= HDR && !c->closing) {
        size_t n = HDR + (size_t)le32(c->in + off + 4);
        if (n > MAX_FRAME)
            return -1;
        if (c->in_len - off < n)
            break;
        reply(c, c->in + off, n);
        off += n;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return 0;
}

static void want_out(conn_t *c, bool on)
{
    if (c->want_out == on)
        return;
    struct epoll_event e = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
    c->want_out = on;
}

/* Returns -1 when the connection should go. */
static int flush(conn_t *c)
{
    size_t off = 0;
    while (off < c->out_len) {
        ssize_t n = send(c->fd, c->out + off, c->out_len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    memmove(c->out, c->out + off, c->out_len - off);
    c->out_len -= off;
    want_out(c, c->out_len > 0);
    return c->closing && c->out_len == 0 ? -1 : 0;
}

static void on_event(conn_t *c, uint32_t ev)
{
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        uint8_t buf[65536];
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) {
            conn_close(c);
            return;
        }
        if (n > 0)
            append(&c->in, &c->in_len, buf, (size_t)n);
        if (echo_frames(c) < 0) {
            conn_close(c);
            return;
        }
    }
    if (flush(c) < 0)
        conn_close(c);
}

static void accept_one(int lfd)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return;
    conn_t *c = calloc(1, sizeof *c);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
    if (!c || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0) {
        free(c);
        close(fd);
        return;
    }
    c->fd = fd;
}

static int parse_fault(const char *s)
{
    static const char *names[] = {"none", "flip", "drop", "reorder", "close"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(s, names[i]) == 0) {
            fault = (fault_t)i;
            return 0;
        }
    }
    return -1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"fault", required_argument, NULL, 'f'},
        {"nth", required_argument, NULL, 'n'},
        {NULL, 0, NULL, 0},
    };
    const char *addr = "127.0.0.1:12345";
    int ch, port;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (ch == 'l') {
            addr = optarg;
        } else if (ch == 'n' && strtoul(optarg, NULL, 10) > 0) {
            nth = strtoul(optarg, NULL, 10);
        } else if (ch != 'f' || parse_fault(optarg) < 0) {
            fprintf(stderr, "usage: tao-faulty-echo [--listen HOST:PORT] "
                            "--fault flip|drop|reorder|close|none [--nth N]\n");
            return 2;
        }
    }
    int lfd = pb_listen(addr, &port);
    if (lfd < 0) {
        fprintf(stderr, "tao-faulty-echo: %s: %s\n", addr, strerror(-lfd));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
    /* The same line as the Tao-C examples print: scripts read the port from it. */
    printf("tao-faulty-echo listening on %.*s:%d\n", (int)(strrchr(addr, ':') - addr), addr, port);
    fflush(stdout);
    for (;;) {
        struct epoll_event evs[64];
        int n = epoll_wait(ep, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr)
                on_event(evs[i].data.ptr, evs[i].events);
            else
                accept_one(lfd);
        }
    }
}
