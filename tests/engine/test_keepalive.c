/* Tests for the idle, read and heartbeat timeouts of engine/conn.c, over
 * 127.0.0.1 with the server in this process.
 *
 *   - idle_timeout_ms: a silent client is closed (FIN) no sooner than the
 *     timeout, with on_error(-ETIMEDOUT) and stats.timeouts; a client that
 *     keeps talking stays open;
 *   - read_timeout_ms: a client that starts a frame and stops is closed no
 *     sooner than the timeout; one that sends whole frames with long pauses
 *     between them (or a frame in two parts, quickly) stays open;
 *   - heartbeat_ms: a silent client receives Go Tao heartbeats (type 0, an
 *     LE int64 of CLOCK_REALTIME in ns); answering them keeps a connection
 *     open under an idle timeout, while a silent one is still closed.
 *
 *   - back-pressure is not idleness: a client that pipelines 300,000
 *     requests and reads nothing for 5 s gets every reply under a 2 s read
 *     timeout; under a 2 s idle timeout it is cut off with an RST, never
 *     a FIN after missing replies.
 *
 * Several cases first let the server sit idle for a while, so that its
 * loops are asleep when the client's bytes arrive: the timeouts must count
 * from when the bytes came, not from when the loop last woke up. */
#include "util/t_util.h"
#include "util/t_net.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define T_ECHO 1

static atomic_int timeouts_seen, other_errors;

static void on_echo(tao_conn_t *c, const tao_msg_t *m)
{
    tao_conn_send(c, m->type, m->payload, m->len);
}

static void on_error(tao_server_t *srv, tao_conn_t *c, int err, const char *what)
{
    if (c && err == -ETIMEDOUT)
        atomic_fetch_add(&timeouts_seen, 1);
    else
        atomic_fetch_add(&other_errors, 1);
}

static tao_server_t *start(unsigned idle_ms, unsigned read_ms, unsigned heartbeat_ms)
{
    atomic_store(&timeouts_seen, 0);
    atomic_store(&other_errors, 0);
    tao_server_config_t cfg = {
        .workers = t_workers,
        .idle_timeout_ms = idle_ms,
        .read_timeout_ms = read_ms,
        .heartbeat_ms = heartbeat_ms,
        .on_error = on_error,
    };
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, T_ECHO, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);
    return srv;
}

static void sleep_ms(unsigned ms)
{
    usleep(ms * 1000u);
}

static void stop(tao_server_t *srv)
{
    tao_server_destroy(srv);
    assert_int_equal(atomic_load(&other_errors), 0);
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Read frames until one of type want arrives; heartbeats before it are
 * skipped. */
static void expect(int fd, int32_t want, const void *payload, size_t len)
{
    for (;;) {
        int32_t t;
        uint8_t *p;
        size_t l;
        assert_int_equal(t_read_frame(fd, &t, &p, &l, 5000), 0);
        if (t == TAO_MSG_HEARTBEAT && want != TAO_MSG_HEARTBEAT) {
            free(p);
            continue;
        }
        assert_int_equal(t, want);
        assert_int_equal(l, len);
        assert_memory_equal(p, payload, len);
        free(p);
        return;
    }
}

/* The peer is still there: nothing closed it, and it answers. */
static void expect_open(int fd)
{
    t_send_frame(fd, T_ECHO, "still?", 6);
    expect(fd, T_ECHO, "still?", 6);
}

/* Wait for a FIN; returns the ms from since until it came. */
static uint64_t closed_after(int fd, uint64_t since)
{
    assert_int_equal(t_wait_closed(fd, 5000, NULL), 1);
    return t_now_ms() - since;
}

/* ---- idle timeout ------------------------------------------------------------- */

static void idle_silent_closed(void **state)
{
    tao_server_t *srv = start(100, 0, 0);
    /* The loops fall asleep: nothing is due on them. */
    sleep_ms(300);
    uint64_t t0 = t_now_ms();
    int fd = t_connect(tao_server_port(srv));
    uint64_t dt = closed_after(fd, t0);
    print_message("silent client closed after %llu ms\n", (unsigned long long)dt);
    assert_true(dt >= 100);
    assert_true(dt < 3000);
    assert_int_equal(atomic_load(&timeouts_seen), 1);
    tao_stats_t st;
    tao_server_stats(srv, &st);
    assert_true(st.timeouts >= 1);
    close(fd);
    stop(srv);
}

/* A client that keeps talking stays open for 2.5 idle timeouts. Its pings
 * come every 20 ms against a 600 ms timeout, so only a stall of over half
 * a second in this thread could make it look idle, while a connection that
 * traffic did not keep open would be closed 600 ms in. */
static void idle_talker_stays(void **state)
{
    tao_server_t *srv = start(600, 0, 0);
    int fd = t_connect(tao_server_port(srv));
    uint64_t t0 = t_now_ms(), last = t0, longest = 0;
    while (t_now_ms() - t0 < 1500) {
        uint64_t now = t_now_ms();
        if (now - last > longest)
            longest = now - last;
        last = now;
        t_send_frame(fd, T_ECHO, "ping", 4);
        expect(fd, T_ECHO, "ping", 4);
        sleep_ms(20);
    }
    print_message("longest pause between pings: %llu ms\n", (unsigned long long)longest);
    expect_open(fd);
    assert_int_equal(atomic_load(&timeouts_seen), 0);
    close(fd);
    stop(srv);
}

/* Each frame restarts the idle clock from when it arrived, even when the
 * loop had been asleep since the previous one: 120 ms apart under a 200 ms
 * idle timeout is never idle for long enough. */
static void idle_counts_from_last_frame(void **state)
{
    /* Frames 120 ms apart under a 600 ms idle timeout: wide enough that a
     * loaded machine's scheduling cannot fake an idle spell. */
    tao_server_t *srv = start(600, 0, 0);
    int fd = t_connect(tao_server_port(srv));
    uint64_t sent = 0;
    for (int i = 0; i < 6; i++) {
        sleep_ms(120);
        sent = t_now_ms();
        t_send_frame(fd, T_ECHO, "tick", 4);
        expect(fd, T_ECHO, "tick", 4);
    }
    assert_int_equal(atomic_load(&timeouts_seen), 0);
    /* Then silence: closed 600 ms after the last frame, not sooner. */
    assert_true(closed_after(fd, sent) >= 600);
    assert_int_equal(atomic_load(&timeouts_seen), 1);
    close(fd);
    stop(srv);
}

/* ---- read timeout -------------------------------------------------------------- */

static void read_half_header_closed(void **state)
{
    tao_server_t *srv = start(0, 100, 0);
    int fd = t_connect(tao_server_port(srv));
    expect_open(fd);
    /* Idle connections are fine without an idle timeout. */
    sleep_ms(300);
    expect_open(fd);
    sleep_ms(300);
    uint8_t frame[12];
    t_tlv(frame, T_ECHO, "abcd", 4);
    uint64_t t0 = t_now_ms();
    t_write_all(fd, frame, 4);
    uint64_t dt = closed_after(fd, t0);
    print_message("half header: closed after %llu ms\n", (unsigned long long)dt);
    assert_true(dt >= 100);
    assert_true(dt < 3000);
    assert_int_equal(atomic_load(&timeouts_seen), 1);
    tao_stats_t st;
    tao_server_stats(srv, &st);
    assert_true(st.timeouts >= 1);
    close(fd);
    stop(srv);
}

/* Whole frames 600 ms apart under a 500 ms read timeout are not slow: the
 * clock runs only while a frame is unfinished. The parts of a split frame
 * come 20 ms apart, so only a stall of nearly half a second in this thread
 * could make the frame look slow on a loaded machine. */
static void read_slow_whole_frames_stay(void **state)
{
    tao_server_t *srv = start(0, 500, 0);
    int fd = t_connect(tao_server_port(srv));
    uint8_t frame[8 + 10];
    size_t n = t_tlv(frame, T_ECHO, "0123456789", 10);
    for (int i = 0; i < 2; i++) {
        sleep_ms(600);
        t_write_all(fd, frame, n);
        expect(fd, T_ECHO, "0123456789", 10);
    }
    /* After a long pause, a frame in two parts 20 ms apart: its read
     * timeout starts with its first byte, not with the previous frame. */
    for (int i = 0; i < 2; i++) {
        sleep_ms(600);
        t_write_all(fd, frame, 6);
        sleep_ms(20);
        t_write_all(fd, frame + 6, n - 6);
        expect(fd, T_ECHO, "0123456789", 10);
    }
    expect_open(fd);
    assert_int_equal(atomic_load(&timeouts_seen), 0);
    close(fd);
    stop(srv);
}

/* ---- heartbeats ------------------------------------------------------------------ */

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void check_heartbeat(const uint8_t *p, size_t len)
{
    assert_int_equal(len, TAO_HEARTBEAT_LEN);
    int64_t ts = (int64_t)get64(p), now = realtime_ns();
    int64_t diff = ts > now ? ts - now : now - ts;
    if (diff > 5 * (int64_t)1000000000)
        fail_msg("heartbeat timestamp %lld is %lld ms from now", (long long)ts,
                 (long long)(diff / 1000000));
}

static void heartbeats_to_silent_client(void **state)
{
    tao_server_t *srv = start(0, 0, 50);
    sleep_ms(200);
    uint64_t t0 = t_now_ms();
    int fd = t_connect(tao_server_port(srv));
    for (int k = 1; k <= 5; k++) {
        int32_t t;
        uint8_t *p;
        size_t l;
        assert_int_equal(t_read_frame(fd, &t, &p, &l, 5000), 0);
        uint64_t dt = t_now_ms() - t0;
        assert_int_equal(t, TAO_MSG_HEARTBEAT);
        check_heartbeat(p, l);
        free(p);
        /* Each one follows 50 ms without sending. */
        if (dt < (uint64_t)k * 50)
            fail_msg("heartbeat %d after %llu ms", k, (unsigned long long)dt);
    }
    expect_open(fd);
    close(fd);
    stop(srv);
}

/* A client answering every heartbeat with one stays open for 1.5 s, 2.5
 * times the 600 ms idle timeout; a silent one beside it is closed by that
 * timeout, heartbeats notwithstanding, and no sooner. Heartbeats every
 * 50 ms leave the talker a wide margin on a loaded machine, and the test
 * waits (up to 10 s) for the silent one's close however late it comes. */
static void heartbeat_answers_keep_alive(void **state)
{
    tao_server_t *srv = start(600, 0, 50);
    uint64_t t0 = t_now_ms();
    int silent = t_connect(tao_server_port(srv));
    int talker = t_connect(tao_server_port(srv));
    uint64_t silent_closed = 0, last_answer = t0, longest = 0;
    int answered = 0;
    uint8_t rx[4096];
    size_t rx_len = 0;

    while (t_now_ms() - t0 < 1500 || (!silent_closed && t_now_ms() - t0 < 10000)) {
        struct pollfd pfd[2] = {{.fd = talker, .events = POLLIN},
                                {.fd = silent_closed ? -1 : silent, .events = POLLIN}};
        assert_true(poll(pfd, 2, 10) >= 0);
        if (pfd[1].revents) {
            ssize_t n = recv(silent, rx, sizeof rx, 0); /* heartbeats: dropped */
            if (n == 0)
                silent_closed = t_now_ms();
            assert_true(n >= 0);
        }
        if (!pfd[0].revents)
            continue;
        ssize_t n = recv(talker, rx + rx_len, sizeof rx - rx_len, 0);
        assert_true(n > 0); /* neither closed nor reset */
        rx_len += (size_t)n;
        while (rx_len >= 8 + TAO_HEARTBEAT_LEN) {
            assert_memory_equal(rx, "\0\0\0\0\x08\0\0\0", 8);
            check_heartbeat(rx + 8, TAO_HEARTBEAT_LEN);
            uint8_t reply[TAO_HEARTBEAT_LEN];
            tao_heartbeat_encode(realtime_ns(), reply);
            t_send_frame(talker, TAO_MSG_HEARTBEAT, reply, sizeof reply);
            answered++;
            uint64_t now = t_now_ms();
            if (now - last_answer > longest)
                longest = now - last_answer;
            last_answer = now;
            rx_len -= 8 + TAO_HEARTBEAT_LEN;
            memmove(rx, rx + 8 + TAO_HEARTBEAT_LEN, rx_len);
        }
    }
    print_message("talker answered %d heartbeats (at most %llu ms apart); silent closed after "
                  "%llu ms\n",
                  answered, (unsigned long long)longest, (unsigned long long)(silent_closed - t0));
    assert_true(answered >= 5);
    assert_true(silent_closed != 0);
    assert_true(silent_closed - t0 >= 600);
    expect_open(talker);
    assert_int_equal(atomic_load(&timeouts_seen), 1);
    close(talker);
    close(silent);
    stop(srv);
}

/* ---- back-pressure is not idleness ------------------------------------------ */

#define PAUSED_REQS 300000
#define REQ_LEN 64 /* 8-byte header, 56-byte payload carrying its number */

typedef struct writer {
    int fd;
    uint32_t sent; /* requests written whole */
    int err;       /* errno of the write that failed */
} writer_t;

/* Write every request with blocking writes (they block while the server is
 * paused); stop quietly when the server closes or resets. */
static void *write_requests(void *arg)
{
    writer_t *w = arg;
    enum { BATCH = 1024 };
    uint8_t *buf = malloc(BATCH * REQ_LEN);
    uint8_t payload[REQ_LEN - 8] = {0};
    for (uint32_t i = 0; buf && i < PAUSED_REQS; i += BATCH) {
        uint32_t n = PAUSED_REQS - i < BATCH ? PAUSED_REQS - i : BATCH;
        for (uint32_t k = 0; k < n; k++) {
            memcpy(payload, &(uint32_t){i + k}, 4);
            t_tlv(buf + (size_t)k * REQ_LEN, T_ECHO, payload, sizeof payload);
        }
        size_t off = 0, len = (size_t)n * REQ_LEN;
        while (off < len) {
            ssize_t r = send(w->fd, buf + off, len - off, MSG_NOSIGNAL);
            if (r <= 0) {
                w->err = errno;
                goto out;
            }
            off += (size_t)r;
        }
        w->sent = i + n;
    }
out:
    free(buf);
    return NULL;
}

/* How a paused client's connection ended. */
typedef struct paused_end {
    uint32_t replies; /* checked, in order */
    int end;          /* 0: still open after every reply; 1: FIN; 2: RST */
    uint32_t sent;
} paused_end_t;

/* Pipeline PAUSED_REQS requests and read nothing, then read. The pause
 * lasts 5 s, or, until_cut, until the server reports its timeout: how soon
 * a server stops making progress depends on how fast the machine is, so a
 * test of the cut waits for the cut itself. */
static paused_end_t pipeline_paused(tao_server_t *srv, bool until_cut)
{
    paused_end_t r = {0};
    writer_t w = {.fd = t_connect(tao_server_port(srv))};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, write_requests, &w), 0);
    if (until_cut)
        assert_true(T_WAIT(atomic_load(&timeouts_seen) > 0, 60000));
    else
        sleep_ms(5000);
    uint8_t rep[REQ_LEN];
    while (r.replies < PAUSED_REQS) {
        int rc = t_read_exact(w.fd, rep, sizeof rep, 60000);
        if (rc == -EPIPE || rc == -ECONNRESET) {
            r.end = rc == -EPIPE ? 1 : 2;
            break;
        }
        if (rc != 0) {
            tao_stats_t st;
            tao_server_stats(srv, &st);
            fail_msg("no reply for 60 s after %u replies (%s); server: %llu frames in, %llu out, "
                     "%llu bytes queued, %llu in worker queues, %llu timeouts",
                     r.replies, tao_strerror(rc), (unsigned long long)st.frames_in,
                     (unsigned long long)st.frames_out, (unsigned long long)st.queued_bytes,
                     (unsigned long long)st.worker_queue, (unsigned long long)st.timeouts);
        }
        uint32_t seq;
        memcpy(&seq, rep + 8, 4);
        if (seq != r.replies)
            fail_msg("reply %u carries request number %u", r.replies, seq);
        r.replies++;
    }
    pthread_join(th, NULL);
    r.sent = w.sent;
    /* Whichever thread reads the socket's error first takes it: an RST
     * that came before any FIN leaves ECONNRESET there (after a FIN it
     * would be EPIPE), and the other thread then sees only the end. */
    if (r.end == 1 && w.err == ECONNRESET)
        r.end = 2;
    if (r.replies == PAUSED_REQS)
        expect_open(w.fd);
    close(w.fd);
    return r;
}

static void paused_read_timeout_every_reply(void **state)
{
    tao_server_t *srv = start(0, 2000, 0);
    paused_end_t r = pipeline_paused(srv, false);
    print_message("%u of %u replies\n", r.replies, PAUSED_REQS);
    assert_int_equal(r.replies, PAUSED_REQS);
    assert_int_equal(atomic_load(&timeouts_seen), 0);
    stop(srv);
}

static void paused_idle_timeout_reply_or_reset(void **state)
{
    tao_server_t *srv = start(2000, 0, 0);
    paused_end_t r = pipeline_paused(srv, true);
    print_message("%u of %u replies (%u sent), then %s\n", r.replies, PAUSED_REQS, r.sent,
                  r.end == 2   ? "RST"
                  : r.end == 1 ? "FIN"
                               : "still open");
    /* 2 s without progress either way is idle: cut off, and the client
     * must be able to tell. */
    assert_int_equal(atomic_load(&timeouts_seen), 1);
    assert_true(r.replies < PAUSED_REQS);
    assert_int_equal(r.end, 2);
    stop(srv);
}

int main(void)
{
    t_require_backend();
    const struct CMUnitTest tests[] = {
        T_BOTH(idle_silent_closed),
        T_BOTH(idle_talker_stays),
        T_BOTH(idle_counts_from_last_frame),
        T_BOTH(read_half_header_closed),
        T_BOTH(read_slow_whole_frames_stay),
        T_BOTH(heartbeats_to_silent_client),
        T_BOTH(heartbeat_answers_keep_alive),
        T_BOTH(paused_read_timeout_every_reply),
        T_BOTH(paused_idle_timeout_reply_or_reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
