/* A connection's receive, dispatch and close paths over real sockets:
 * split headers, the 8 MiB limit, unknown types, close and abort from a
 * handler, owned sends, unmarshal, accessors, and a half-close that comes
 * while requests wait behind back-pressure (every one still answered). */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/t_net.h"
#include "util/t_util.h"

static atomic_int errors_msgsize, errors_badmsg, frees, last_send_rc, peer_ok;

static void on_echo(tao_conn_t *c, const tao_msg_t *m)
{
    tao_conn_send(c, m->type, m->payload, m->len);
}

static void on_bye(tao_conn_t *c, const tao_msg_t *m)
{
    tao_conn_send(c, 1, "bye", 3);
    tao_conn_close(c);
    /* After close, sending is refused, and closing again is harmless. */
    atomic_store(&last_send_rc, tao_conn_send(c, 1, "late", 4));
    tao_conn_close(c);
}

static void payload_free(void *p, void *user)
{
    free(p);
    atomic_fetch_add(&frees, 1);
}

static void on_owned(tao_conn_t *c, const tao_msg_t *m)
{
    void *copy = malloc(m->len + 1);
    memcpy(copy, m->payload, m->len);
    assert_int_equal(tao_conn_send_owned(c, 1, copy, m->len, payload_free, NULL), 0);
}

static void on_too_big(tao_conn_t *c, const tao_msg_t *m)
{
    static uint8_t big[2048];
    atomic_store(&last_send_rc, tao_conn_send(c, 1, big, sizeof big));
}

static void on_whoami(tao_conn_t *c, const tao_msg_t *m)
{
    struct sockaddr_storage ss;
    socklen_t len;
    char buf[64];
    int ok = tao_conn_peer(c, &ss, &len) == 0 && ss.ss_family == AF_INET &&
             ((struct sockaddr_in *)&ss)->sin_addr.s_addr == htonl(INADDR_LOOPBACK) &&
             tao_conn_local(c, &ss, &len) == 0 &&
             ntohs(((struct sockaddr_in *)&ss)->sin_port) == tao_server_port(tao_conn_server(c));
    atomic_store(&peer_ok, ok);
    if (!tao_conn_data(c))
        tao_conn_set_data(c, (void *)(uintptr_t)7);
    int n = snprintf(buf, sizeof buf, "%llu/%lu", (unsigned long long)tao_conn_id(c),
                     (unsigned long)(uintptr_t)tao_conn_data(c));
    tao_conn_send(c, 1, buf, (size_t)n);
}

typedef struct number {
    long value;
} number_t;

static int parse_number(const uint8_t *p, size_t len, void **out)
{
    char buf[32];
    char *end;
    if (len == 0 || len >= sizeof buf)
        return -EBADMSG;
    memcpy(buf, p, len);
    buf[len] = '\0';
    long v = strtol(buf, &end, 10);
    if (*end)
        return -EBADMSG;
    number_t *n = malloc(sizeof *n);
    n->value = v;
    *out = n;
    return 0;
}

static void number_free(void *v)
{
    free(v);
    atomic_fetch_add(&frees, 1);
}

static void on_double(tao_conn_t *c, const tao_msg_t *m)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld", ((number_t *)m->value)->value * 2);
    tao_conn_send(c, 6, buf, (size_t)n);
}

static void on_error(tao_server_t *srv, tao_conn_t *c, int err, const char *what)
{
    if (err == -EMSGSIZE)
        atomic_fetch_add(&errors_msgsize, 1);
    if (err == -EBADMSG)
        atomic_fetch_add(&errors_badmsg, 1);
}

static tao_server_t *start(size_t max_frame)
{
    tao_server_config_t cfg = {.on_error = on_error, .max_frame = max_frame};
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, 1, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_handle(srv, 2, on_bye, NULL, NULL), 0);
    assert_int_equal(tao_server_handle(srv, 4, on_owned, NULL, NULL), 0);
    assert_int_equal(tao_server_handle(srv, 5, on_too_big, NULL, NULL), 0);
    assert_int_equal(tao_server_handle(srv, 6, on_double, parse_number, number_free), 0);
    assert_int_equal(tao_server_handle(srv, 7, on_whoami, NULL, NULL), 0);
    /* A route with no handler, and no on_message to fall back on. */
    assert_int_equal(tao_server_handle(srv, 8, NULL, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);
    atomic_store(&errors_msgsize, 0);
    atomic_store(&errors_badmsg, 0);
    atomic_store(&frees, 0);
    return srv;
}

static void expect_frame(int fd, int32_t type, const void *payload, size_t len)
{
    int32_t t;
    uint8_t *p;
    size_t l;
    assert_int_equal(t_read_frame(fd, &t, &p, &l, 10000), 0);
    assert_int_equal(t, type);
    assert_int_equal(l, len);
    if (len)
        assert_memory_equal(p, payload, len);
    free(p);
}

static void split_headers(void **state)
{
    tao_server_t *srv = start(0);
    int fd = t_connect(tao_server_port(srv));
    uint8_t frames[3 * 20];
    size_t n = 0;
    for (int i = 0; i < 3; i++)
        n += t_tlv(frames + n, 1, "hello, world", 12);
    /* One byte per send, with pauses, so every split point reaches the
     * server as a separate receive. */
    for (size_t i = 0; i < n; i++) {
        t_write_all(fd, frames + i, 1);
        if (i % 7 == 0)
            usleep(1000);
    }
    for (int i = 0; i < 3; i++)
        expect_frame(fd, 1, "hello, world", 12);
    close(fd);
    tao_server_destroy(srv);
}

static void max_frame_and_one_more(void **state)
{
    const size_t max = 8u << 20;
    tao_server_t *srv = start(0);
    int port = tao_server_port(srv);
    uint8_t *big = malloc(max + 1);
    t_fill(big, max + 1, 42);

    int ok = t_connect(port), bad = t_connect(port);
    t_send_frame(ok, 1, big, max);
    /* The oversized frame only needs its header to be refused. */
    uint8_t hdr[8];
    t_tlv(hdr, 1, NULL, 0);
    hdr[4] = (uint8_t)((max + 1) & 0xff);
    hdr[5] = (uint8_t)(((max + 1) >> 8) & 0xff);
    hdr[6] = (uint8_t)(((max + 1) >> 16) & 0xff);
    t_write_all(bad, hdr, sizeof hdr);
    assert_int_not_equal(t_wait_closed(bad, 5000, NULL), 0);
    assert_true(T_WAIT(atomic_load(&errors_msgsize) == 1, 5000));

    expect_frame(ok, 1, big, max);
    t_send_frame(ok, 1, "still here", 10);
    expect_frame(ok, 1, "still here", 10);
    tao_stats_t st;
    tao_server_stats(srv, &st);
    assert_int_equal(st.decode_errors, 1);
    close(ok);
    close(bad);
    free(big);
    tao_server_destroy(srv);
}

static void configured_max(void **state)
{
    tao_server_t *srv = start(1024);
    int fd = t_connect(tao_server_port(srv));
    uint8_t buf[1025];
    t_fill(buf, sizeof buf, 1);
    t_send_frame(fd, 1, buf, 1024);
    expect_frame(fd, 1, buf, 1024);
    /* A handler sending more than the codec allows gets -EMSGSIZE. */
    t_send_frame(fd, 5, NULL, 0);
    t_send_frame(fd, 1, "x", 1);
    expect_frame(fd, 1, "x", 1);
    assert_int_equal(atomic_load(&last_send_rc), -EMSGSIZE);
    t_send_frame(fd, 1, buf, 1025);
    assert_int_not_equal(t_wait_closed(fd, 5000, NULL), 0);
    assert_true(T_WAIT(atomic_load(&errors_msgsize) == 1, 5000));
    close(fd);
    tao_server_destroy(srv);
}

/* Skipped and counted alike in both handler modes (with workers, a route
 * with no handler used to be dropped on the worker, uncounted). */
static void unknown_type_skipped(void **state)
{
    tao_server_t *srv = start(0);
    int fd = t_connect(tao_server_port(srv));
    uint8_t junk[300];
    t_fill(junk, sizeof junk, 3);
    t_send_frame(fd, 99, junk, sizeof junk);
    t_send_frame(fd, -5, NULL, 0);
    t_send_frame(fd, 0, junk, 8); /* a heartbeat, unregistered here */
    t_send_frame(fd, 8, junk, 16);
    t_send_frame(fd, 1, "after", 5);
    expect_frame(fd, 1, "after", 5);
    tao_stats_t st;
    tao_server_stats(srv, &st);
    assert_int_equal(st.unknown_types, 4);
    assert_int_equal(st.conns_open, 1);
    close(fd);
    tao_server_destroy(srv);
}

static void close_from_handler_flushes(void **state)
{
    tao_server_t *srv = start(0);
    int fd = t_connect(tao_server_port(srv));
    uint8_t buf[64];
    size_t n = t_tlv(buf, 1, "one", 3);
    n += t_tlv(buf + n, 2, NULL, 0);
    n += t_tlv(buf + n, 1, "never", 5);
    t_write_all(fd, buf, n);
    expect_frame(fd, 1, "one", 3);
    expect_frame(fd, 1, "bye", 3);
    size_t extra = 0;
    assert_int_equal(t_wait_closed(fd, 5000, &extra), 1);
    assert_int_equal(extra, 0);
    assert_int_equal(atomic_load(&last_send_rc), -ESHUTDOWN);
    close(fd);
    tao_server_destroy(srv);
}

static void owned_send_and_unmarshal(void **state)
{
    tao_server_t *srv = start(0);
    int fd = t_connect(tao_server_port(srv));
    for (int i = 0; i < 100; i++)
        t_send_frame(fd, 4, "owned!", 6);
    for (int i = 0; i < 100; i++)
        expect_frame(fd, 1, "owned!", 6);
    assert_true(T_WAIT(atomic_load(&frees) == 100, 5000));

    t_send_frame(fd, 6, "21", 2);
    expect_frame(fd, 6, "42", 2);
    assert_true(T_WAIT(atomic_load(&frees) == 101, 5000));
    /* A payload the unmarshaller rejects: on_error, then the close. */
    t_send_frame(fd, 6, "x1", 2);
    assert_int_equal(t_wait_closed(fd, 5000, NULL), 1);
    assert_int_equal(atomic_load(&errors_badmsg), 1);
    assert_int_equal(atomic_load(&frees), 101);
    close(fd);
    tao_server_destroy(srv);
}

static void accessors(void **state)
{
    tao_server_t *srv = start(0);
    int a = t_connect(tao_server_port(srv)), b = t_connect(tao_server_port(srv));
    char ids[2][64];
    int fds[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        int32_t t;
        uint8_t *p;
        size_t l;
        t_send_frame(fds[i], 7, NULL, 0);
        assert_int_equal(t_read_frame(fds[i], &t, &p, &l, 5000), 0);
        memcpy(ids[i], p, l);
        ids[i][l] = '\0';
        free(p);
        assert_int_equal(atomic_load(&peer_ok), 1);
    }
    assert_string_not_equal(ids[0], ids[1]);
    assert_non_null(strstr(ids[0], "/7"));
    assert_true(strtoull(ids[0], NULL, 10) > 0);
    close(a);
    close(b);
    tao_server_destroy(srv);
}

/* Large replies go out with SEND_ZC from registered buffers, small ones
 * the ordinary way, interleaved in one stream: every byte in order. */
static void zero_copy_sends(void **state)
{
    enum { N = 300 };
    tao_server_config_t cfg = {.workers = TAO_WORKERS_INLINE,
                               .zc_threshold = 2048,
                               .zc_buffers = 8,
                               .zc_buffer_size = 65536};
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, 1, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);
    int fd = t_connect(tao_server_port(srv));
    static uint8_t buf[70000];
    size_t sizes[N];
    for (int i = 0; i < N; i++) {
        sizes[i] = i % 3 == 0 ? 100 + (size_t)i : i % 3 == 1 ? 3000 + 200 * (size_t)i : 65000;
        t_fill(buf, sizes[i], (uint32_t)i);
        t_send_frame(fd, 1, buf, sizes[i]);
        if (i % 10 == 9) /* keep the pipeline short enough not to block both sides */
            for (int j = i - 9; j <= i; j++) {
                t_fill(buf, sizes[j], (uint32_t)j);
                expect_frame(fd, 1, buf, sizes[j]);
            }
    }
    tao_stats_t st;
    tao_server_stats(srv, &st);
    /* Where the kernel refuses registered buffers (RLIMIT_MEMLOCK), the
     * sends still work, the ordinary way. */
    if (st.zc_sends == 0)
        print_message("no SEND_ZC: registered buffers unavailable here\n");
    else
        assert_true(st.zc_sends >= N / 3);
    close(fd);
    tao_server_destroy(srv);
}

/* A peer writes 20,000 requests without reading, then half-closes. Its FIN
 * reaches the server while requests wait behind back-pressure: every one is
 * still answered, and only then comes the server's FIN. (1.3 MB: the
 * socket buffers take it all, so the writer is done before the reads.) */
#define HC_REQS 20000

static void *write_then_shut(void *arg)
{
    int fd = *(int *)arg;
    enum { BATCH = 1000, LEN = 64 };
    static uint8_t buf[BATCH * LEN];
    uint8_t payload[LEN - 8] = {0};
    for (uint32_t i = 0; i < HC_REQS; i += BATCH) {
        for (uint32_t k = 0; k < BATCH; k++) {
            memcpy(payload, &(uint32_t){i + k}, 4);
            t_tlv(buf + (size_t)k * LEN, 1, payload, sizeof payload);
        }
        t_write_all(fd, buf, sizeof buf);
    }
    shutdown(fd, SHUT_WR);
    return NULL;
}

static void half_close_with_requests_parked(void **state)
{
    /* A small high watermark pauses reading at almost every receive, so
     * the FIN often comes in the same batch as data that had to park. */
    tao_server_config_t cfg = {.loops = 1, .workers = TAO_WORKERS_INLINE, .out_high = 4096};
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, 1, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);
    int fd = t_connect(tao_server_port(srv));
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, write_then_shut, &fd), 0);
    pthread_join(th, NULL); /* every request written, and the FIN */
    uint8_t rep[64];
    uint32_t n = 0;
    int rc;
    while ((rc = t_read_exact(fd, rep, sizeof rep, 30000)) == 0) {
        uint32_t seq;
        memcpy(&seq, rep + 8, 4);
        if (seq != n)
            fail_msg("reply %u carries request %u", n, seq);
        n++;
    }
    if (n != HC_REQS || rc != -EPIPE)
        fail_msg("%u of %u replies, then %s", n, HC_REQS, rc == -EPIPE ? "FIN" : "no FIN");
    close(fd);
    tao_server_destroy(srv);
}

int main(void)
{
    t_require_backend();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_headers),
        cmocka_unit_test(max_frame_and_one_more),
        cmocka_unit_test(configured_max),
        T_BOTH(unknown_type_skipped),
        cmocka_unit_test(close_from_handler_flushes),
        cmocka_unit_test(owned_send_and_unmarshal),
        cmocka_unit_test(accessors),
        cmocka_unit_test(zero_copy_sends),
        cmocka_unit_test(half_close_with_requests_parked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
