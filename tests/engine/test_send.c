/* Tests for engine/send.c: the output queue under load and under
 * back-pressure, over 127.0.0.1 with the server in this process.
 *
 *   - 64 connections pipelining 10,000 echo frames each, of skewed random
 *     sizes, every reply checked in order and byte for byte, with one loop
 *     and with two;
 *   - a client that writes 50 MiB and never reads: the server stops reading
 *     it, its queue stays bounded (the high watermark plus one frame, plus
 *     one more high watermark with workers), the client's writes block;
 *     once the client reads, every reply arrives and the connection is
 *     still open, and the echo handler never saw -EAGAIN;
 *   - a handler that floods until tao_conn_send says -EAGAIN (exactly past
 *     the documented limit), and the on_writable that follows once the
 *     client has drained the queue;
 *   - a handler that aborts its connection right after an echo that lent
 *     the receive buffer, again and again, while 16 other connections
 *     echo 4 KiB frames: every byte they get back is checked, because a
 *     receive buffer returned to the ring twice hands one buffer to two
 *     receives.
 *
 * Each runs with handlers inline and on worker threads.
 *
 * Payloads are generated from (connection, sequence) with t_fill, so the
 * client regenerates what it expects instead of storing what it sent. */
#include "util/t_util.h"
#include "util/t_net.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define T_ECHO 1
#define T_FLOOD 2
#define T_RESUMED 3
#define T_ABORT 4

#define HDR 8
#define MAX_PAYLOAD 65536

/* ---- what the server's callbacks saw (on loop or worker threads) ---------- */

static atomic_uint echo_errors;

static void on_echo(tao_conn_t *conn, const tao_msg_t *msg)
{
    if (tao_conn_send(conn, msg->type, msg->payload, msg->len) < 0)
        atomic_fetch_add(&echo_errors, 1);
}

static void reset_counters(void)
{
    atomic_store(&echo_errors, 0);
}

/* ---- helpers --------------------------------------------------------------- */

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- 64 connections x 10,000 pipelined frames ----------------------------- */

#define PIPE_CONNS 64
#if defined(__SANITIZE_THREAD__)
/* TSan checks every byte copied, on both sides: a quarter of the volume
 * still covers every path, in a fraction of the time. */
#define PIPE_FRAMES 2500
#else
#define PIPE_FRAMES 10000
#endif

static uint32_t mix(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* ~90% up to 256 B, ~9% up to 4 KiB, ~1% up to 64 KiB: mostly the small
 * replies that gathering is for, with big ones mixed in, a few hundred MB in
 * all. */
static size_t skewed_size(unsigned conn, uint32_t seq)
{
    uint32_t h = mix(t_seed(conn, seq));
    uint32_t r = mix(h) % 1000;
    if (r < 900)
        return h % 257;
    if (r < 990)
        return 257 + h % (4096 - 256);
    return 4097 + h % (MAX_PAYLOAD - 4096);
}

static void run_pipeline(unsigned loops, int workers)
{
    reset_counters();
    tao_server_config_t cfg = {.loops = loops, .workers = workers};
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, T_ECHO, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);

    t_pipeline(tao_server_port(srv), PIPE_CONNS, T_ECHO, PIPE_FRAMES, skewed_size, MAX_PAYLOAD,
               100000);

    /* The clients are closed: every connection must go away on its own. */
    assert_true(T_WAIT(tao_server_conn_count(srv) == 0, 5000));
    tao_stats_t st;
    tao_server_stats(srv, &st);
    assert_int_equal(st.frames_in, (uint64_t)PIPE_CONNS * PIPE_FRAMES);
    assert_int_equal(st.frames_out, (uint64_t)PIPE_CONNS * PIPE_FRAMES);
    assert_int_equal(st.bytes_in, st.bytes_out);
    assert_int_equal(st.decode_errors, 0);
    assert_int_equal(st.send_rejected, 0);
    assert_int_equal(st.queued_bytes, 0);
    assert_int_equal(st.conns_accepted, PIPE_CONNS);
    assert_int_equal(st.conns_closed, PIPE_CONNS);
    assert_int_equal(atomic_load(&echo_errors), 0);

    tao_server_stop(srv, 0);
    assert_int_equal(tao_server_wait(srv), 0);
    tao_server_destroy(srv);
}

static void test_pipeline_one_loop_inline(void **state)
{
    run_pipeline(1, TAO_WORKERS_INLINE);
}

static void test_pipeline_two_loops_inline(void **state)
{
    run_pipeline(2, TAO_WORKERS_INLINE);
}

static void test_pipeline_one_loop_workers(void **state)
{
    run_pipeline(1, 2);
}

static void test_pipeline_two_loops_workers(void **state)
{
    run_pipeline(2, 3);
}

/* ---- a client that writes 50 MiB and does not read -------------------------- */

#define BP_HIGH (1u << 20)
#define BP_FRAMES 800 /* of 64 KiB: 50 MiB */
#define BP_CONN 7777

static size_t full_size(unsigned conn, uint32_t seq)
{
    return MAX_PAYLOAD;
}

/* Keep the peak of the server's queued bytes; return its bytes_in. */
static uint64_t sample(const tao_server_t *srv, uint64_t *max)
{
    tao_stats_t st;
    tao_server_stats(srv, &st);
    if (st.queued_bytes > *max)
        *max = st.queued_bytes;
    return st.bytes_in;
}

static void run_backpressure(int workers)
{
    reset_counters();
    tao_server_config_t cfg = {.loops = 1, .workers = workers, .out_high = BP_HIGH};
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, T_ECHO, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);

    t_stream_t s;
    t_stream_init(&s, t_connect(tao_server_port(srv)), BP_CONN, T_ECHO, BP_FRAMES, full_size,
                  MAX_PAYLOAD);
    uint64_t max_queued = 0;

    /* Write without reading until the writes have been refused for more
     * than a second: the server must have stopped reading. */
    uint64_t blocked_since = 0, bytes_in_mid = 0;
    bool mid_sampled = false;
    for (;;) {
        /* 50 MiB must not all fit. */
        assert_true(t_stream_want_write(&s));
        size_t n = t_stream_write(&s);
        uint64_t bytes_in = sample(srv, &max_queued);
        if (n) {
            blocked_since = 0;
            mid_sampled = false;
            continue;
        }
        uint64_t now = t_now_ms();
        if (!blocked_since)
            blocked_since = now;
        if (!mid_sampled && now - blocked_since >= 300) {
            bytes_in_mid = bytes_in;
            mid_sampled = true;
        }
        if (now - blocked_since >= 1200) {
            /* Nothing was taken from the socket while the client waited. */
            assert_int_equal(bytes_in, bytes_in_mid);
            break;
        }
        struct pollfd pfd = {.fd = s.fd, .events = POLLOUT};
        poll(&pfd, 1, 20);
    }
    print_message("blocked after %u of %u frames, server queue peaked at %llu bytes\n", s.queued,
                  BP_FRAMES, (unsigned long long)max_queued);
    assert_true(s.queued < BP_FRAMES);
    assert_int_equal(tao_server_conn_count(srv), 1);

    /* Now read while finishing the writes: every reply, in order. */
    uint64_t end = t_now_ms() + 60000;
    while (!t_stream_done(&s)) {
        struct pollfd pfd = {.fd = s.fd, .events = POLLIN};
        if (t_stream_want_write(&s))
            pfd.events |= POLLOUT;
        poll(&pfd, 1, 100);
        if (pfd.revents & POLLOUT)
            t_stream_write(&s);
        if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) && !t_stream_read(&s))
            fail_msg("closed by the server after %u replies", s.checked);
        sample(srv, &max_queued);
        if (t_now_ms() > end)
            fail_msg("%u of %u replies after 60 s", s.checked, BP_FRAMES);
    }
    print_message("server queue peaked at %llu bytes\n", (unsigned long long)max_queued);
    /* Bounded: the high watermark, plus the one frame that crossed it; with
     * workers, plus the replies to what was already on its way to the
     * worker when reading paused (up to another high watermark, and the
     * frame that crossed that one). */
    size_t bound = BP_HIGH + HDR + MAX_PAYLOAD + 4096;
    if (workers > 0)
        bound += BP_HIGH + HDR + MAX_PAYLOAD;
    assert_true(max_queued <= bound);

    /* Still open and still serving. */
    int fl = fcntl(s.fd, F_GETFL);
    assert_int_equal(fcntl(s.fd, F_SETFL, fl & ~O_NONBLOCK), 0);
    uint8_t ping[4] = {'p', 'i', 'n', 'g'};
    t_send_frame(s.fd, T_ECHO, ping, sizeof ping);
    int32_t type;
    uint8_t *payload;
    size_t len;
    assert_int_equal(t_read_frame(s.fd, &type, &payload, &len, 5000), 0);
    assert_int_equal(type, T_ECHO);
    assert_int_equal(len, sizeof ping);
    assert_memory_equal(payload, ping, sizeof ping);
    free(payload);
    assert_int_equal(tao_server_conn_count(srv), 1);

    /* The echo itself was never refused: reading stopped instead. */
    assert_int_equal(atomic_load(&echo_errors), 0);
    tao_stats_t st;
    tao_server_stats(srv, &st);
    assert_int_equal(st.send_rejected, 0);
    assert_int_equal(st.frames_in, BP_FRAMES + 1);

    t_stream_deinit(&s);
    tao_server_stop(srv, 0);
    tao_server_wait(srv);
    tao_server_destroy(srv);
}

static void test_backpressure_inline(void **state)
{
    run_backpressure(TAO_WORKERS_INLINE);
}

static void test_backpressure_workers(void **state)
{
    run_backpressure(2);
}

/* ---- -EAGAIN and on_writable ------------------------------------------------ */

#define FLOOD_LEN 65536
#define FLOOD_CONN 4242

static size_t flood_high; /* set before the server starts */
static atomic_uint flood_frames, flood_eagain, writable_calls;
static atomic_int flood_err, resume_rc;
static atomic_size_t writable_queued;

/* Send until the queue says no. */
static void on_flood(tao_conn_t *conn, const tao_msg_t *msg)
{
    uint8_t *buf = malloc(FLOOD_LEN);
    if (!buf) {
        atomic_store(&flood_err, -ENOMEM);
        return;
    }
    for (uint32_t i = 0;; i++) {
        t_fill(buf, FLOOD_LEN, t_seed(FLOOD_CONN, i));
        int rc = tao_conn_send(conn, T_FLOOD, buf, FLOOD_LEN);
        if (rc == 0)
            continue;
        atomic_store(&flood_frames, i);
        if (rc == -EAGAIN)
            atomic_store(&flood_eagain, 1);
        else
            atomic_store(&flood_err, rc);
        break;
    }
    free(buf);
}

/* Sending works again: say so with one more frame, after the flood. */
static void on_writable(tao_conn_t *conn)
{
    uint8_t n[4];
    wr32(n, atomic_load(&flood_frames));
    atomic_store(&writable_queued, tao_conn_queued(conn));
    atomic_fetch_add(&writable_calls, 1);
    atomic_store(&resume_rc, tao_conn_send(conn, T_RESUMED, n, sizeof n));
}

static size_t tcp_wmem_max(void)
{
    unsigned long lo, def, max = 4u << 20;
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");
    if (f) {
        if (fscanf(f, "%lu %lu %lu", &lo, &def, &max) != 3)
            max = 4u << 20;
        fclose(f);
    }
    return max;
}

/* A client with a small receive buffer, so the kernel cannot take much of
 * the server's queue off its hands. */
static int connect_small_rcvbuf(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int sz = 64 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void run_eagain_then_writable(int workers)
{
    atomic_store(&flood_frames, 0);
    atomic_store(&flood_eagain, 0);
    atomic_store(&writable_calls, 0);
    atomic_store(&flood_err, 0);
    atomic_store(&resume_rc, 1);
    /* The queue must outgrow what the socket buffers can hold, so that it
     * can only fall below the low watermark once the client reads. */
    flood_high = 4 * tcp_wmem_max();
    if (flood_high < (16u << 20))
        flood_high = 16u << 20;
    tao_server_config_t cfg = {.loops = 1,
                               .workers = workers,
                               .max_frame = FLOOD_LEN,
                               .out_high = flood_high,
                               .on_writable = on_writable};
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, T_FLOOD, on_flood, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);

    int fd = connect_small_rcvbuf(tao_server_port(srv));
    t_send_frame(fd, T_FLOOD, NULL, 0);
    assert_true(T_WAIT(atomic_load(&flood_eagain) || atomic_load(&flood_err), 10000));
    assert_int_equal(atomic_load(&flood_err), 0);
    /* Refused exactly past the documented limit: twice the high watermark
     * plus one largest frame. */
    uint32_t n = atomic_load(&flood_frames);
    size_t limit = 2 * flood_high + FLOOD_LEN;
    assert_true((size_t)n * (HDR + FLOOD_LEN) >= limit);
    assert_true((size_t)(n - 1) * (HDR + FLOOD_LEN) < limit);

    /* Not writable while the client has read nothing. */
    usleep(200 * 1000);
    assert_int_equal(atomic_load(&writable_calls), 0);
    tao_stats_t st;
    tao_server_stats(srv, &st);
    assert_int_equal(st.send_rejected, 1);

    uint8_t *want = malloc(FLOOD_LEN);
    assert_non_null(want);
    for (uint32_t i = 0; i < n; i++) {
        int32_t type;
        uint8_t *payload;
        size_t len;
        assert_int_equal(t_read_frame(fd, &type, &payload, &len, 10000), 0);
        assert_int_equal(type, T_FLOOD);
        assert_int_equal(len, FLOOD_LEN);
        t_fill(want, FLOOD_LEN, t_seed(FLOOD_CONN, i));
        if (memcmp(payload, want, FLOOD_LEN) != 0)
            fail_msg("flood frame %u differs", i);
        free(payload);
    }
    free(want);

    /* on_writable ran once the queue fell under the low watermark, and its
     * send worked and came after the flood. */
    int32_t type;
    uint8_t *payload;
    size_t len;
    assert_int_equal(t_read_frame(fd, &type, &payload, &len, 10000), 0);
    assert_int_equal(type, T_RESUMED);
    assert_int_equal(len, 4);
    assert_int_equal(rd32(payload), n);
    free(payload);
    assert_int_equal(atomic_load(&writable_calls), 1);
    assert_int_equal(atomic_load(&resume_rc), 0);
    assert_true(atomic_load(&writable_queued) < flood_high / 4);
    assert_int_equal(tao_server_conn_count(srv), 1);

    close(fd);
    tao_server_stop(srv, 0);
    tao_server_wait(srv);
    tao_server_destroy(srv);
}

static void test_eagain_then_writable_inline(void **state)
{
    run_eagain_then_writable(TAO_WORKERS_INLINE);
}

static void test_eagain_then_writable_workers(void **state)
{
    run_eagain_then_writable(2);
}

/* ---- an abort after an echo that lent the receive buffer -------------------- */

#define INNOCENTS 16
#if defined(__SANITIZE_THREAD__)
#define INNOCENT_FRAMES 600
#elif defined(__SANITIZE_ADDRESS__)
#define INNOCENT_FRAMES 3000
#else
#define INNOCENT_FRAMES 20000
#endif

static void on_abort(tao_conn_t *conn, const tao_msg_t *msg)
{
    tao_conn_abort(conn);
}

static size_t size_4k(unsigned conn, uint32_t seq)
{
    return 4096;
}

typedef struct abuser {
    int port;
    atomic_bool stop;
    atomic_uint rounds, failures;
} abuser_t;

/* One write: a 2 KiB echo (large enough to be lent, not copied) and then a
 * frame whose handler aborts, on a new connection each round. */
static void *abuse(void *arg)
{
    abuser_t *a = arg;
    uint8_t buf[2 * HDR + 2048];
    uint8_t payload[2048];
    t_fill(payload, sizeof payload, 99);
    size_t n = t_tlv(buf, T_ECHO, payload, sizeof payload);
    n += t_tlv(buf + n, T_ABORT, NULL, 0);
    while (!atomic_load(&a->stop)) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)a->port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
            send(fd, buf, n, MSG_NOSIGNAL) != (ssize_t)n || t_wait_closed(fd, 10000, NULL) == 0)
            atomic_fetch_add(&a->failures, 1);
        if (fd >= 0)
            close(fd);
        atomic_fetch_add(&a->rounds, 1);
    }
    return NULL;
}

static void test_abort_after_lent_echo_crosses_nothing(void **state)
{
    reset_counters();
    /* A small ring, so that a buffer returned twice is soon handed out
     * twice. */
    tao_server_config_t cfg = {.loops = 1, .workers = TAO_WORKERS_INLINE, .buf_count = 16};
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, T_ECHO, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_handle(srv, T_ABORT, on_abort, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);

    abuser_t a = {.port = tao_server_port(srv)};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, abuse, &a), 0);
    /* Wait for the abuse to be under way before the innocents start. */
    assert_true(T_WAIT(atomic_load(&a.rounds) >= 10, 10000));
    t_pipeline(tao_server_port(srv), INNOCENTS, T_ECHO, INNOCENT_FRAMES, size_4k, 4096, 120000);
    atomic_store(&a.stop, true);
    pthread_join(th, NULL);
    print_message("%u aborted connections beside %u x %u checked echoes\n", atomic_load(&a.rounds),
                  INNOCENTS, INNOCENT_FRAMES);
    assert_int_equal(atomic_load(&a.failures), 0);
    assert_true(atomic_load(&a.rounds) >= 10);
    assert_int_equal(atomic_load(&echo_errors), 0);

    tao_server_stop(srv, 0);
    tao_server_wait(srv);
    tao_server_destroy(srv);
}

int main(void)
{
    t_require_backend();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backpressure_inline),
        cmocka_unit_test(test_backpressure_workers),
        cmocka_unit_test(test_eagain_then_writable_inline),
        cmocka_unit_test(test_eagain_then_writable_workers),
        cmocka_unit_test(test_pipeline_one_loop_inline),
        cmocka_unit_test(test_pipeline_two_loops_inline),
        cmocka_unit_test(test_pipeline_one_loop_workers),
        cmocka_unit_test(test_pipeline_two_loops_workers),
        cmocka_unit_test(test_abort_after_lent_echo_crosses_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
