/* Plain-socket test helpers. */
#include "util/t_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/t_util.h"

int t_connect(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

void t_write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

int t_read_exact(int fd, void *buf, size_t len, int timeout_ms)
{
    uint8_t *p = buf;
    uint64_t end = t_now_ms() + (uint64_t)timeout_ms;
    while (len) {
        uint64_t now = t_now_ms();
        if (now >= end)
            return -ETIMEDOUT;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(end - now));
        if (r == 0)
            return -ETIMEDOUT;
        ssize_t n = recv(fd, p, len, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return -EPIPE;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

size_t t_tlv(uint8_t *out, int32_t type, const void *payload, size_t len)
{
    uint32_t t = (uint32_t)type, l = (uint32_t)len;
    for (int i = 0; i < 4; i++) {
        out[i] = (uint8_t)(t >> (8 * i));
        out[4 + i] = (uint8_t)(l >> (8 * i));
    }
    if (len)
        memcpy(out + 8, payload, len);
    return 8 + len;
}

void t_send_frame(int fd, int32_t type, const void *payload, size_t len)
{
    uint8_t *buf = malloc(8 + len);
    assert_non_null(buf);
    t_write_all(fd, buf, t_tlv(buf, type, payload, len));
    free(buf);
}

int t_read_frame(int fd, int32_t *type, uint8_t **payload, size_t *len, int timeout_ms)
{
    uint8_t h[8];
    int rc = t_read_exact(fd, h, 8, timeout_ms);
    if (rc < 0)
        return rc;
    *type = (int32_t)((uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 |
                      (uint32_t)h[3] << 24);
    *len = (size_t)h[4] | (size_t)h[5] << 8 | (size_t)h[6] << 16 | (size_t)h[7] << 24;
    *payload = malloc(*len + 1);
    assert_non_null(*payload);
    rc = t_read_exact(fd, *payload, *len, timeout_ms);
    if (rc < 0) {
        free(*payload);
        *payload = NULL;
    }
    return rc;
}

int t_wait_closed(int fd, int timeout_ms, size_t *discarded)
{
    uint64_t end = t_now_ms() + (uint64_t)timeout_ms;
    static uint8_t sink[65536];
    for (;;) {
        uint64_t now = t_now_ms();
        if (now >= end)
            return 0;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(end - now)) == 0)
            return 0;
        ssize_t n = recv(fd, sink, sizeof sink, 0);
        if (n == 0)
            return 1;
        if (n < 0 && errno == ECONNRESET)
            return 2;
        if (n < 0)
            continue;
        if (discarded)
            *discarded += (size_t)n;
    }
}

tao_server_t *t_server_create(tao_server_config_t *cfg)
{
    tao_server_t *srv;
    if (!cfg->listen)
        cfg->listen = "127.0.0.1:0";
    if (!cfg->loops)
        cfg->loops = 2;
    assert_int_equal(tao_server_create(cfg, &srv), 0);
    return srv;
}

void t_fill(uint8_t *buf, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
}
