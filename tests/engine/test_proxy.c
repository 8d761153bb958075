/* Tests for the PROXY stage (engine/proxy.c) over 127.0.0.1, with the
 * server in this process.
 *
 *   - every header form (v1 TCP4, TCP6, UNKNOWN; v2 TCP4, TCP6 with TLVs,
 *     LOCAL, UNSPEC), followed by a frame, split at every byte offset (the
 *     server has received the first part before the second is written):
 *     the frame is echoed, and on_connect already sees the client from the
 *     header in tao_conn_peer and the socket's peer in tao_conn_proxy (or
 *     the socket's own address and -ENOENT for LOCAL and UNKNOWN);
 *   - optional: a connection without a header is served as it is, one with
 *     a header as above; a first byte that only starts like a signature;
 *   - bad input: a malformed header, a missing one (required), an announced
 *     length over TAO_PROXY_MAX, a header cut short by the peer's FIN, one
 *     that never finishes (the timeout): each closes only its connection,
 *     with on_error (-EPROTO, or -ETIMEDOUT) and stats.proxy_errors, while
 *     a neighbour opened before keeps echoing; a peer that closes without
 *     a byte (a health check) is no error. */
#include "util/t_util.h"
#include "util/t_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define T_ECHO 1
#define WAIT_MS 20000

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sockaddr_storage seen_peer, seen_proxy;
static int seen_proxy_rc;
static atomic_int proto_errors, timeout_errors, other_errors;

static void on_echo(tao_conn_t *c, const tao_msg_t *m)
{
    tao_conn_send(c, m->type, m->payload, m->len);
}

static int on_connect(tao_conn_t *c)
{
    struct sockaddr_storage peer, proxy;
    socklen_t len = sizeof peer;
    assert_int_equal(tao_conn_peer(c, &peer, &len), 0);
    len = sizeof proxy;
    int rc = tao_conn_proxy(c, &proxy, &len);
    pthread_mutex_lock(&seen_lock);
    seen_peer = peer;
    seen_proxy = proxy;
    seen_proxy_rc = rc;
    pthread_mutex_unlock(&seen_lock);
    return 0;
}

static void on_error(tao_server_t *srv, tao_conn_t *c, int err, const char *what)
{
    if (c && err == -EPROTO)
        atomic_fetch_add(&proto_errors, 1);
    else if (c && err == -ETIMEDOUT)
        atomic_fetch_add(&timeout_errors, 1);
    else
        atomic_fetch_add(&other_errors, 1);
}

static tao_server_t *start(tao_proxy_mode_t mode, unsigned timeout_ms)
{
    atomic_store(&proto_errors, 0);
    atomic_store(&timeout_errors, 0);
    atomic_store(&other_errors, 0);
    tao_server_config_t cfg = {
        .workers = t_workers,
        .loops = 1, /* every byte counted in one place: see received() */
        .proxy_protocol = mode,
        .proxy_timeout_ms = timeout_ms,
        .on_connect = on_connect,
        .on_error = on_error,
    };
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, T_ECHO, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);
    return srv;
}

static uint64_t received(tao_server_t *srv)
{
    tao_stats_t st;
    tao_server_stats(srv, &st);
    return st.bytes_in;
}

static uint64_t proxy_errors(tao_server_t *srv)
{
    tao_stats_t st;
    tao_server_stats(srv, &st);
    return st.proxy_errors;
}

/* ---- the header forms ------------------------------------------------------ */

static const char v1_tcp4[] = "PROXY TCP4 192.0.2.7 198.51.100.1 4242 443\r\n";
static const char v1_tcp6[] = "PROXY TCP6 2001:db8::7 2001:db8::1 4242 443\r\n";
static const char v1_unknown[] = "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";

#define V2_SIG 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a

static const uint8_t v2_tcp4[] = {V2_SIG, 0x21, 0x11, 0x00, 12,   192,  0,    2,   7,
                                  198,    51,   100,  1,    0x10, 0x92, 0x01, 0xbb};
static const uint8_t v2_tcp6_tlv[] = {
    V2_SIG, 0x21, 0x21, 0x00, 36 + 3 + 5 + 3,
    /* src 2001:db8::7, dst 2001:db8::1 */
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, /* */
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, /* */
    0x10, 0x92, 0x01, 0xbb,                                     /* ports */
    0x05, 0x00, 0x00,                                           /* UNIQUE_ID, empty */
    0x02, 0x00, 0x02, 'h', 'i',                                 /* AUTHORITY "hi" */
    0x04, 0x00, 0x00};                                          /* NOOP */
static const uint8_t v2_local[] = {V2_SIG, 0x20, 0x00, 0x00, 0x00};
static const uint8_t v2_unspec[] = {V2_SIG, 0x21, 0x00, 0x00, 0x03, 0x04, 0x00, 0x00};

typedef struct form {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    int family; /* the client's, or 0: the socket's own address stands */
} form_t;

#define TEXT(s) (const uint8_t *)(s), sizeof(s) - 1
static const form_t forms[] = {
    {"v1 TCP4", TEXT(v1_tcp4), AF_INET},
    {"v1 TCP6", TEXT(v1_tcp6), AF_INET6},
    {"v1 UNKNOWN", TEXT(v1_unknown), 0},
    {"v2 TCP4", v2_tcp4, sizeof v2_tcp4, AF_INET},
    {"v2 TCP6 + TLVs", v2_tcp6_tlv, sizeof v2_tcp6_tlv, AF_INET6},
    {"v2 LOCAL", v2_local, sizeof v2_local, 0},
    {"v2 UNSPEC", v2_unspec, sizeof v2_unspec, 0},
};

/* What on_connect saw matches the form: the client 192.0.2.7 or
 * 2001:db8::7, port 4242, behind the test's own socket; or, without
 * addresses, the socket itself and no proxy. */
static void check_seen(const form_t *f, int fd)
{
    struct sockaddr_storage self;
    socklen_t len = sizeof self;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&self, &len), 0);
    const struct sockaddr_in *me = (const struct sockaddr_in *)&self;

    pthread_mutex_lock(&seen_lock);
    struct sockaddr_storage peer = seen_peer, proxy = seen_proxy;
    int proxy_rc = seen_proxy_rc;
    pthread_mutex_unlock(&seen_lock);

    const struct sockaddr_in *p4 = (const struct sockaddr_in *)&peer;
    const struct sockaddr_in6 *p6 = (const struct sockaddr_in6 *)&peer;
    if (f->family == 0) {
        assert_int_equal(proxy_rc, -ENOENT);
        assert_int_equal(peer.ss_family, AF_INET);
        assert_int_equal(p4->sin_port, me->sin_port);
        return;
    }
    assert_int_equal(proxy_rc, 0);
    const struct sockaddr_in *x = (const struct sockaddr_in *)&proxy;
    assert_int_equal(x->sin_family, AF_INET);
    assert_int_equal(x->sin_port, me->sin_port);
    assert_int_equal(x->sin_addr.s_addr, me->sin_addr.s_addr);
    assert_int_equal(peer.ss_family, f->family);
    if (f->family == AF_INET) {
        assert_int_equal(ntohs(p4->sin_port), 4242);
        assert_int_equal(p4->sin_addr.s_addr, inet_addr("192.0.2.7"));
    } else {
        struct in6_addr want;
        inet_pton(AF_INET6, "2001:db8::7", &want);
        assert_int_equal(ntohs(p6->sin6_port), 4242);
        assert_memory_equal(&p6->sin6_addr, &want, sizeof want);
    }
}

/* The header and one frame, split at `at` (0: in one write): the server has
 * all of the first part before the second is written. */
static void send_split(tao_server_t *srv, const form_t *f, size_t at)
{
    uint8_t msg[TAO_PROXY_MAX + 64];
    const char payload[] = "behind a proxy";
    memcpy(msg, f->bytes, f->len);
    size_t n = f->len + t_tlv(msg + f->len, T_ECHO, payload, sizeof payload - 1);

    uint64_t before = received(srv);
    int fd = t_connect(tao_server_port(srv));
    if (at) {
        t_write_all(fd, msg, at);
        if (!T_WAIT(received(srv) == before + at, WAIT_MS))
            fail_msg("%s split at %zu: the server never received the first part", f->name, at);
    }
    t_write_all(fd, msg + at, n - at);

    int32_t type;
    uint8_t *got;
    size_t len;
    if (t_read_frame(fd, &type, &got, &len, WAIT_MS) != 0)
        fail_msg("%s split at %zu: no echo", f->name, at);
    assert_int_equal(type, T_ECHO);
    assert_int_equal(len, sizeof payload - 1);
    assert_memory_equal(got, payload, len);
    free(got);
    check_seen(f, fd);
    close(fd);
}

static void every_form_every_split(void **state)
{
    tao_server_t *srv = start(TAO_PROXY_REQUIRED, 0);
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        const form_t *f = &forms[i];
        /* Every offset inside the header, and a few into the frame. */
        for (size_t at = 0; at < f->len + 8; at++)
            send_split(srv, f, at);
    }
    assert_int_equal(proxy_errors(srv), 0);
    assert_int_equal(atomic_load(&proto_errors) + atomic_load(&other_errors), 0);
    tao_server_destroy(srv);
}

/* ---- optional ---------------------------------------------------------------- */

static void optional_header(void **state)
{
    static const form_t plain = {"none", NULL, 0, 0};
    tao_server_t *srv = start(TAO_PROXY_OPTIONAL, 0);

    /* No header: a TLV frame's first byte is no signature's. */
    int fd = t_connect(tao_server_port(srv));
    t_echo_once(fd, T_ECHO, 1);
    check_seen(&plain, fd);
    close(fd);

    /* A header of each version. */
    send_split(srv, &forms[0], 0);
    send_split(srv, &forms[3], 5);
    tao_server_destroy(srv);
    assert_int_equal(atomic_load(&proto_errors) + atomic_load(&other_errors), 0);
}

/* With a line codec, bytes that start like a signature and turn out not to
 * be one reach the decoder whole, even split where they could still have
 * been a header. */
static void optional_near_miss(void **state)
{
    tao_codec_t line;
    tao_line_opts_t lo = {.type = T_ECHO};
    assert_int_equal(tao_codec_line(&line, &lo), 0);
    atomic_store(&proto_errors, 0);
    atomic_store(&other_errors, 0);
    tao_server_config_t cfg = {
        .workers = t_workers,
        .loops = 1,
        .codec = &line,
        .proxy_protocol = TAO_PROXY_OPTIONAL,
        .on_error = on_error,
    };
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, T_ECHO, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);

    static const char *const lines[] = {"PROXIMA centauri\n", "PROXY\n", "\r\n\r\nnot v2\n"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        size_t n = strlen(lines[i]);
        for (size_t at = 1; at < n; at++) {
            uint64_t before = received(srv);
            int fd = t_connect(tao_server_port(srv));
            t_write_all(fd, lines[i], at);
            assert_true(T_WAIT(received(srv) == before + at, WAIT_MS));
            t_write_all(fd, lines[i] + at, n - at);
            char got[64];
            if (t_read_exact(fd, got, n, WAIT_MS) != 0)
                fail_msg("line %zu split at %zu: no echo", i, at);
            assert_memory_equal(got, lines[i], n);
            close(fd);
        }
    }
    tao_server_destroy(srv);
    assert_int_equal(atomic_load(&proto_errors) + atomic_load(&other_errors), 0);
}

/* ---- bad input --------------------------------------------------------------- */

/* bytes on a new connection (then, when fin, its FIN) close it with
 * on_error(want) and one more proxy error; the neighbour still echoes. */
static void refused(tao_server_t *srv, int neighbour, const void *bytes, size_t len, bool fin,
                    int want)
{
    atomic_int *count = want == -ETIMEDOUT ? &timeout_errors : &proto_errors;
    int before = atomic_load(count);
    uint64_t errs = proxy_errors(srv);
    int fd = t_connect(tao_server_port(srv));
    if (len)
        t_write_all(fd, bytes, len);
    if (fin)
        shutdown(fd, SHUT_WR);
    assert_int_not_equal(t_wait_closed(fd, WAIT_MS, NULL), 0);
    close(fd);
    assert_true(T_WAIT(atomic_load(count) == before + 1, WAIT_MS));
    assert_true(T_WAIT(proxy_errors(srv) == errs + 1, WAIT_MS));
    t_echo_once(neighbour, T_ECHO, 2);
}

static void bad_headers(void **state)
{
    tao_server_t *srv = start(TAO_PROXY_REQUIRED, 300);
    int neighbour = t_connect(tao_server_port(srv));
    t_write_all(neighbour, v1_tcp4, sizeof v1_tcp4 - 1);
    t_echo_once(neighbour, T_ECHO, 3);

    static const char v1_bad[] = "PROXY TCP4 192.0.2.7  198.51.100.1 4242 443\r\n";
    refused(srv, neighbour, v1_bad, sizeof v1_bad - 1, false, -EPROTO);
    static const char v1_mixed[] = "PROXY TCP4 2001:db8::7 198.51.100.1 4242 443\r\n";
    refused(srv, neighbour, v1_mixed, sizeof v1_mixed - 1, false, -EPROTO);
    uint8_t v2_bad_version[sizeof v2_tcp4];
    memcpy(v2_bad_version, v2_tcp4, sizeof v2_tcp4);
    v2_bad_version[12] = 0x31;
    refused(srv, neighbour, v2_bad_version, sizeof v2_bad_version, false, -EPROTO);
    /* An announced length past TAO_PROXY_MAX: refused at once, no waiting
     * for the bytes it announces. */
    static const uint8_t v2_huge[] = {V2_SIG, 0x21, 0x11, 0xff, 0xff};
    refused(srv, neighbour, v2_huge, sizeof v2_huge, false, -EPROTO);
    /* Required, and none: a frame straight away. */
    uint8_t frame[16];
    size_t n = t_tlv(frame, T_ECHO, "hello", 5);
    refused(srv, neighbour, frame, n, false, -EPROTO);
    /* Cut short by the peer's FIN. */
    refused(srv, neighbour, v2_tcp4, 10, true, -EPROTO);
    /* Never finished: the header's timeout. */
    refused(srv, neighbour, v1_tcp4, 20, false, -ETIMEDOUT);

    /* A peer that connects and leaves without a byte is no error. */
    uint64_t errs = proxy_errors(srv);
    int fd = t_connect(tao_server_port(srv));
    close(fd);
    t_echo_once(neighbour, T_ECHO, 4);
    assert_int_equal(proxy_errors(srv), errs);

    close(neighbour);
    tao_server_destroy(srv);
    assert_int_equal(atomic_load(&other_errors), 0);
}

/* The header's timeout is the read timeout when it has none of its own. */
static void timeout_default(void **state)
{
    atomic_store(&timeout_errors, 0);
    tao_server_config_t cfg = {
        .workers = t_workers,
        .read_timeout_ms = 200,
        .proxy_protocol = TAO_PROXY_REQUIRED,
        .on_error = on_error,
    };
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, T_ECHO, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);
    int fd = t_connect(tao_server_port(srv));
    t_write_all(fd, "PROXY ", 6);
    uint64_t t0 = t_now_ms();
    assert_int_not_equal(t_wait_closed(fd, WAIT_MS, NULL), 0);
    assert_true(t_now_ms() - t0 >= 150);
    assert_true(T_WAIT(atomic_load(&timeout_errors) == 1, WAIT_MS));
    close(fd);
    tao_server_destroy(srv);
}

static void bad_mode(void **state)
{
    tao_server_config_t cfg = {.proxy_protocol = (tao_proxy_mode_t)7};
    tao_server_t *srv;
    assert_int_equal(tao_server_create(&cfg, &srv), -EINVAL);
    assert_null(srv);
}

int main(void)
{
    t_require_backend();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_mode), T_BOTH(every_form_every_split),
        T_BOTH(optional_header),    T_BOTH(optional_near_miss),
        T_BOTH(bad_headers),        T_BOTH(timeout_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
