/* Plain-socket test helpers. */
#include "util/t_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
        if (n <= 0)
            print_error("send failed: %s (fd %d)\n", strerror(errno), fd);
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
        if (n < 0 && errno == ECONNRESET)
            return -ECONNRESET;
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

void t_echo_once(int fd, int32_t type, uint32_t seed)
{
    uint8_t out[32], *in;
    int32_t got;
    size_t len;
    t_fill(out, sizeof out, seed);
    t_send_frame(fd, type, out, sizeof out);
    assert_int_equal(t_read_frame(fd, &got, &in, &len, 10000), 0);
    assert_int_equal(got, type);
    assert_int_equal(len, sizeof out);
    assert_memory_equal(in, out, sizeof out);
    free(in);
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

static uint32_t xorshift(uint32_t x)
{
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return x;
}

void t_fill(uint8_t *buf, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    size_t i = 0;
    /* Eight bytes per store: the same bytes, but a sanitizer checks one
     * store instead of eight, which makes load tests several times faster
     * under TSan. */
    for (; i + 8 <= len; i += 8) {
        uint8_t w[8];
        for (int j = 0; j < 8; j++) {
            x = xorshift(x);
            w[j] = (uint8_t)x;
        }
        memcpy(buf + i, w, sizeof w);
    }
    for (; i < len; i++) {
        x = xorshift(x);
        buf[i] = (uint8_t)x;
    }
}

/* ---- checked echo streams ------------------------------------------------ */

uint32_t t_seed(unsigned idx, uint32_t seq)
{
    return idx * 1000003u + seq * 7u + 1u;
}

static uint32_t rd32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void t_stream_init(t_stream_t *s, int fd, unsigned idx, int32_t type, uint32_t frames,
                   t_size_fn size, size_t max_payload)
{
    memset(s, 0, sizeof *s);
    s->fd = fd;
    s->idx = idx;
    s->type = type;
    s->frames = frames;
    s->size = size;
    s->max_payload = max_payload;
    /* Room for a batch of about 64 KiB plus one whole frame going out, and
     * for a few whole frames coming in. */
    s->tx_cap = 65536 + 8 + max_payload;
    s->rx_cap = 4 * (8 + max_payload) + 65536;
    s->tx = malloc(s->tx_cap);
    s->rx = malloc(s->rx_cap);
    s->scratch = malloc(max_payload + 1);
    assert_non_null(s->tx);
    assert_non_null(s->rx);
    assert_non_null(s->scratch);
    int fl = fcntl(fd, F_GETFL);
    assert_true(fl >= 0);
    assert_int_equal(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

void t_stream_deinit(t_stream_t *s)
{
    close(s->fd);
    free(s->tx);
    free(s->rx);
    free(s->scratch);
    s->fd = -1;
    s->tx = s->rx = s->scratch = NULL;
}

bool t_stream_want_write(t_stream_t *s)
{
    if (s->tx_off < s->tx_len)
        return true;
    s->tx_off = s->tx_len = 0;
    while (s->queued < s->frames && s->tx_len < 65536) {
        size_t len = s->size(s->idx, s->queued);
        assert_true(len <= s->max_payload);
        uint8_t *f = s->tx + s->tx_len;
        uint32_t t = (uint32_t)s->type;
        for (int i = 0; i < 4; i++) {
            f[i] = (uint8_t)(t >> (8 * i));
            f[4 + i] = (uint8_t)(len >> (8 * i));
        }
        t_fill(f + 8, len, t_seed(s->idx, s->queued));
        s->tx_len += 8 + len;
        s->queued++;
    }
    return s->tx_len > 0;
}

size_t t_stream_write(t_stream_t *s)
{
    if (!t_stream_want_write(s))
        return 0;
    ssize_t n = send(s->fd, s->tx + s->tx_off, s->tx_len - s->tx_off, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0)
        fail_msg("stream %u: send after %u frames: %s", s->idx, s->queued, strerror(errno));
    s->tx_off += (size_t)n;
    return (size_t)n;
}

static void check_echoes(t_stream_t *s)
{
    size_t off = 0;
    while (s->rx_len - off >= 8) {
        const uint8_t *h = s->rx + off;
        int32_t type = (int32_t)rd32le(h);
        size_t len = rd32le(h + 4);
        size_t want = s->checked < s->frames ? s->size(s->idx, s->checked) : 0;
        if (s->checked >= s->frames || type != s->type || len != want)
            fail_msg("stream %u echo %u: type %d len %zu, expected type %d len %zu", s->idx,
                     s->checked, type, len, s->type, want);
        if (s->rx_len - off < 8 + len)
            break;
        t_fill(s->scratch, len, t_seed(s->idx, s->checked));
        if (memcmp(h + 8, s->scratch, len) != 0) {
            size_t i = 0;
            while (h[8 + i] == s->scratch[i])
                i++;
            fail_msg("stream %u echo %u (%zu bytes): first wrong byte at %zu", s->idx, s->checked,
                     len, i);
        }
        off += 8 + len;
        s->checked++;
    }
    memmove(s->rx, s->rx + off, s->rx_len - off);
    s->rx_len -= off;
}

bool t_stream_read(t_stream_t *s)
{
    ssize_t n = recv(s->fd, s->rx + s->rx_len, s->rx_cap - s->rx_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return true;
    if (n <= 0)
        return false;
    s->rx_len += (size_t)n;
    check_echoes(s);
    return true;
}

bool t_stream_done(const t_stream_t *s)
{
    return s->checked == s->frames;
}

void t_pipeline(int port, unsigned n, int32_t type, uint32_t frames, t_size_fn size,
                size_t max_payload, int timeout_ms)
{
    t_stream_t *st = calloc(n, sizeof *st);
    struct pollfd *pfd = calloc(n, sizeof *pfd);
    assert_non_null(st);
    assert_non_null(pfd);
    for (unsigned i = 0; i < n; i++)
        t_stream_init(&st[i], t_connect(port), i, type, frames, size, max_payload);

    uint64_t end = t_now_ms() + (uint64_t)timeout_ms;
    unsigned done = 0;
    while (done < n) {
        for (unsigned i = 0; i < n; i++) {
            pfd[i].fd = t_stream_done(&st[i]) ? -1 : st[i].fd;
            pfd[i].events = POLLIN | (t_stream_want_write(&st[i]) ? POLLOUT : 0);
            pfd[i].revents = 0;
        }
        int r = poll(pfd, n, 1000);
        assert_true(r >= 0 || errno == EINTR);
        if (t_now_ms() > end) {
            for (unsigned i = 0; i < n; i++)
                if (!t_stream_done(&st[i]))
                    print_message("stream %u: %u frames written, %u echoes checked\n", i,
                                  st[i].queued, st[i].checked);
            fail_msg("pipeline: %u of %u streams done after %d ms", done, n, timeout_ms);
        }
        for (unsigned i = 0; i < n && r > 0; i++) {
            if (pfd[i].revents & POLLOUT)
                t_stream_write(&st[i]);
            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            if (!t_stream_read(&st[i]))
                fail_msg("stream %u closed by the server after %u echoes", i, st[i].checked);
            if (t_stream_done(&st[i]))
                done++;
        }
    }
    for (unsigned i = 0; i < n; i++)
        t_stream_deinit(&st[i]);
    free(pfd);
    free(st);
}

int t_workers;

int t_setup_workers(void **state)
{
    t_workers = 2;
    return 0;
}

int t_setup_inline(void **state)
{
    t_workers = TAO_WORKERS_INLINE;
    return 0;
}
