/* Tests for tao_server_broadcast (engine/server.c) and for a graceful stop
 * with work still queued, over 127.0.0.1 with the server in this process.
 *
 *   - 10 clients: broadcasts from the test thread and from a handler reach
 *     every client, the sender included, each sender's in order;
 *   - a client that never reads (tiny receive buffer, 64 KiB high
 *     watermark): broadcasting on skips it once its queue is full
 *     (stats.broadcast_skipped), every reading client still receives every
 *     message, and the call never blocks;
 *   - stop with 1,000 connections whose frames are written but not handled
 *     yet: every client gets all its replies and a FIN, on_close runs once
 *     per connection, and tao_server_wait returns. */
#include "util/t_util.h"
#include "util/t_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define T_ECHO 1
#define T_CHAT 20  /* broadcast the payload as T_SAID */
#define T_SAID 21  /* payload: sender index, sequence (LE uint32 each) */
#define T_NEWS 22  /* from the test thread; payload: sequence, then filler */
#define T_WORK 30  /* sleep ~1 ms, then echo */
#define T_FLOOD 31 /* reply with FLOOD_MB frames of 1 MiB */

static atomic_int closes, bcast_errors, handled;

static void on_echo(tao_conn_t *c, const tao_msg_t *m)
{
    tao_conn_send(c, m->type, m->payload, m->len);
}

static void on_chat(tao_conn_t *c, const tao_msg_t *m)
{
    if (tao_server_broadcast(tao_conn_server(c), T_SAID, m->payload, m->len) != 0)
        atomic_fetch_add(&bcast_errors, 1);
}

static void on_work(tao_conn_t *c, const tao_msg_t *m)
{
    struct timespec ts = {.tv_nsec = 1000000};
    nanosleep(&ts, NULL);
    tao_conn_send(c, m->type, m->payload, m->len);
    atomic_fetch_add(&handled, 1);
}

#define FLOOD_MB 12 /* under the send limit: 2 x 4 MiB + one 8 MiB frame */

static void on_flood(tao_conn_t *c, const tao_msg_t *m)
{
    static uint8_t mb[1u << 20];
    for (int i = 0; i < FLOOD_MB; i++)
        if (tao_conn_send(c, T_FLOOD, mb, sizeof mb) != 0)
            atomic_fetch_add(&bcast_errors, 1);
    atomic_fetch_add(&handled, 1);
}

static void on_close(tao_conn_t *c)
{
    atomic_fetch_add(&closes, 1);
}

static tao_server_t *start(tao_server_config_t *cfg)
{
    atomic_store(&closes, 0);
    atomic_store(&bcast_errors, 0);
    atomic_store(&handled, 0);
    cfg->on_close = on_close;
    tao_server_t *srv = t_server_create(cfg);
    assert_int_equal(tao_server_handle(srv, T_ECHO, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_handle(srv, T_CHAT, on_chat, NULL, NULL), 0);
    assert_int_equal(tao_server_handle(srv, T_WORK, on_work, NULL, NULL), 0);
    assert_int_equal(tao_server_handle(srv, T_FLOOD, on_flood, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);
    return srv;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void expect_frame(int fd, int32_t type, const void *payload, size_t len)
{
    int32_t t;
    uint8_t *p;
    size_t l;
    assert_int_equal(t_read_frame(fd, &t, &p, &l, 10000), 0);
    assert_int_equal(t, type);
    assert_int_equal(l, len);
    assert_memory_equal(p, payload, len);
    free(p);
}

/* ---- everyone gets everything -------------------------------------------- */

#define CLIENTS 10
#define NEWS 100
#define CHATS 20

static void to_everyone(int workers)
{
    tao_server_config_t cfg = {.workers = workers};
    tao_server_t *srv = start(&cfg);
    int fd[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        fd[i] = t_connect(tao_server_port(srv));
        /* A round trip: the server has the connection. */
        t_send_frame(fd[i], T_ECHO, "hi", 2);
        expect_frame(fd[i], T_ECHO, "hi", 2);
    }

    /* From the test thread. */
    for (uint32_t s = 0; s < NEWS; s++) {
        uint8_t p[4];
        put32(p, s);
        assert_int_equal(tao_server_broadcast(srv, T_NEWS, p, sizeof p), 0);
    }
    for (int i = 0; i < CLIENTS; i++) {
        for (uint32_t s = 0; s < NEWS; s++) {
            uint8_t p[4];
            put32(p, s);
            expect_frame(fd[i], T_NEWS, p, sizeof p);
        }
    }

    /* From handlers: every client chats, all at once. */
    for (int i = 0; i < CLIENTS; i++) {
        uint8_t buf[CHATS * 16];
        size_t n = 0;
        for (uint32_t s = 0; s < CHATS; s++) {
            uint8_t p[8];
            put32(p, (uint32_t)i);
            put32(p + 4, s);
            n += t_tlv(buf + n, T_CHAT, p, sizeof p);
        }
        t_write_all(fd[i], buf, n);
    }
    for (int i = 0; i < CLIENTS; i++) {
        uint32_t next[CLIENTS] = {0};
        for (int k = 0; k < CLIENTS * CHATS; k++) {
            int32_t t;
            uint8_t *p;
            size_t l;
            assert_int_equal(t_read_frame(fd[i], &t, &p, &l, 10000), 0);
            assert_int_equal(t, T_SAID);
            assert_int_equal(l, 8);
            uint32_t from = get32(p), seq = get32(p + 4);
            free(p);
            assert_true(from < CLIENTS);
            assert_int_equal(seq, next[from]);
            next[from]++;
        }
        for (int j = 0; j < CLIENTS; j++)
            assert_int_equal(next[j], CHATS);
    }
    assert_int_equal(atomic_load(&bcast_errors), 0);

    tao_stats_t st;
    tao_server_stats(srv, &st);
    assert_int_equal(st.broadcast_skipped, 0);
    /* Too large for the codec; and nothing once the server stops. */
    assert_int_equal(
        tao_server_broadcast(srv, T_NEWS, NULL, (size_t)TAO_TLV_MAX_PAYLOAD_DEFAULT + 1),
        -EMSGSIZE);
    tao_server_stop(srv, 0);
    assert_int_equal(tao_server_broadcast(srv, T_NEWS, "x", 1), -ESHUTDOWN);
    for (int i = 0; i < CLIENTS; i++) {
        assert_int_equal(t_wait_closed(fd[i], 5000, NULL), 1);
        close(fd[i]);
    }
    assert_int_equal(tao_server_wait(srv), 0);
    assert_int_equal(atomic_load(&closes), CLIENTS);
    tao_server_destroy(srv);
}

static void to_everyone_workers(void **state)
{
    to_everyone(2);
}

static void to_everyone_inline(void **state)
{
    to_everyone(TAO_WORKERS_INLINE);
}

/* ---- a client that never reads ------------------------------------------------ */

#define READERS 9
#define BIG 16384
#define WINDOW 3 /* broadcasts a reader may lag behind: well under its queue limit */
#define MAX_BIG 4000

typedef struct readers {
    int fd[READERS];
    atomic_uint got[READERS]; /* messages received and checked */
    atomic_bool stop;
    atomic_int bad; /* a reader saw something wrong */
    char why[256];
} readers_t;

static void reader_fail(readers_t *r, const char *why, int i, uint32_t seq)
{
    if (atomic_fetch_add(&r->bad, 1) == 0)
        snprintf(r->why, sizeof r->why, "reader %d, message %u: %s", i, seq, why);
}

/* Read every reader's socket and check each message as it completes:
 * T_NEWS, BIG bytes, sequence then t_fill(seed = sequence). */
static void *read_main(void *arg)
{
    readers_t *r = arg;
    const size_t frame = 8 + BIG;
    uint8_t *buf[READERS], *want = malloc(BIG);
    size_t have[READERS] = {0};
    for (int i = 0; i < READERS; i++)
        buf[i] = malloc(frame);
    while (!atomic_load(&r->stop) && !atomic_load(&r->bad)) {
        struct pollfd pfd[READERS];
        for (int i = 0; i < READERS; i++)
            pfd[i] = (struct pollfd){.fd = r->fd[i], .events = POLLIN};
        if (poll(pfd, READERS, 10) <= 0)
            continue;
        for (int i = 0; i < READERS; i++) {
            if (!pfd[i].revents)
                continue;
            ssize_t n = recv(r->fd[i], buf[i] + have[i], frame - have[i], MSG_DONTWAIT);
            uint32_t seq = atomic_load(&r->got[i]);
            if (n <= 0) {
                if (n == 0 || (errno != EAGAIN && errno != EINTR))
                    reader_fail(r, "connection closed", i, seq);
                continue;
            }
            have[i] += (size_t)n;
            if (have[i] < frame)
                continue;
            have[i] = 0;
            put32(want, seq);
            t_fill(want + 4, BIG - 4, seq);
            if (get32(buf[i]) != T_NEWS || get32(buf[i] + 4) != BIG)
                reader_fail(r, "bad header", i, seq);
            else if (memcmp(buf[i] + 8, want, BIG) != 0)
                reader_fail(
                    r, get32(buf[i] + 8) != seq ? "out of order or missing" : "corrupt payload", i,
                    seq);
            atomic_store(&r->got[i], seq + 1);
        }
    }
    for (int i = 0; i < READERS; i++)
        free(buf[i]);
    free(want);
    return NULL;
}

static unsigned slowest(readers_t *r)
{
    unsigned m = UINT32_MAX;
    for (int i = 0; i < READERS; i++)
        if (atomic_load(&r->got[i]) < m)
            m = atomic_load(&r->got[i]);
    return m;
}

static void skips_the_stuck_one(void **state)
{
    tao_server_config_t cfg = {.workers = 2, .out_high = 65536, .max_frame = 65536};
    tao_server_t *srv = start(&cfg);

    /* The stuck client: a tiny receive window (set before connecting, so
     * the window is small from the start), and it never reads. */
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)tao_server_port(srv))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int stuck = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), small = 4096;
    assert_true(stuck >= 0);
    assert_int_equal(setsockopt(stuck, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    assert_int_equal(connect(stuck, (struct sockaddr *)&a, sizeof a), 0);
    static readers_t r;
    memset(&r, 0, sizeof r);
    for (int i = 0; i < READERS; i++)
        r.fd[i] = t_connect(tao_server_port(srv));
    assert_true(T_WAIT(tao_server_conn_count(srv) == READERS + 1, 5000));

    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, read_main, &r), 0);
    uint8_t *msg = malloc(BIG);
    assert_non_null(msg);
    uint64_t worst = 0;
    uint32_t sent = 0, skipped_at = 0;
    tao_stats_t st;
    while (sent < MAX_BIG && (!skipped_at || sent < skipped_at + 20) && !atomic_load(&r.bad)) {
        /* Pace the sender by the slowest reader, so that only the stuck
         * client ever has a full queue. */
        uint64_t end = t_now_ms() + 10000;
        while (slowest(&r) + WINDOW < sent && !atomic_load(&r.bad) && t_now_ms() < end)
            usleep(100);
        assert_true(slowest(&r) + WINDOW >= sent || atomic_load(&r.bad));
        put32(msg, sent);
        t_fill(msg + 4, BIG - 4, sent);
        uint64_t t0 = t_now_ms();
        assert_int_equal(tao_server_broadcast(srv, T_NEWS, msg, BIG), 0);
        uint64_t dt = t_now_ms() - t0;
        if (dt > worst)
            worst = dt;
        sent++;
        tao_server_stats(srv, &st);
        if (!skipped_at && st.broadcast_skipped > 0)
            skipped_at = sent;
    }
    uint64_t end = t_now_ms() + 20000;
    while (slowest(&r) < sent && !atomic_load(&r.bad) && t_now_ms() < end)
        usleep(1000);
    atomic_store(&r.stop, true);
    pthread_join(th, NULL);
    if (atomic_load(&r.bad))
        fail_msg("%s", r.why);
    print_message("%u broadcasts of %d bytes; the first skip at %u; slowest call %llu ms\n", sent,
                  BIG, skipped_at, (unsigned long long)worst);
    assert_true(skipped_at > 0);
    assert_int_equal(slowest(&r), sent);
    tao_server_stats(srv, &st);
    /* Every reader got everything: only the stuck client was skipped, once
     * per broadcast at most. */
    assert_true(st.broadcast_skipped >= 1 && st.broadcast_skipped <= sent);
    assert_true(worst < 1000);

    close(stuck);
    for (int i = 0; i < READERS; i++)
        close(r.fd[i]);
    free(msg);
    assert_true(T_WAIT(tao_server_conn_count(srv) == 0, 10000));
    tao_server_destroy(srv);
    assert_int_equal(atomic_load(&closes), READERS + 1);
}

/* ---- stop with work queued --------------------------------------------------- */

#define MANY_CONNS 1000
#define PER_CONN 3

static bool fds_ok;

/* 1,000 clients each write PER_CONN frames for a handler that sleeps ~1 ms
 * (two workers: about 1.5 s of work), then the server is asked to stop.
 * With wait_decoded, the stop comes once the loops have read every frame
 * and queued it for the workers; without, right after the last write. */
static void stop_with_work(bool wait_decoded)
{
    if (!fds_ok)
        skip();
    tao_server_config_t cfg = {.workers = 2};
    tao_server_t *srv = start(&cfg);
    int *fd = calloc(MANY_CONNS, sizeof *fd);
    assert_non_null(fd);
    for (int i = 0; i < MANY_CONNS; i++)
        fd[i] = t_connect(tao_server_port(srv));
    /* Every connection is accepted before the stop closes the listeners. */
    assert_true(T_WAIT(tao_server_conn_count(srv) == MANY_CONNS, 20000));

    for (int i = 0; i < MANY_CONNS; i++) {
        uint8_t buf[PER_CONN * 16];
        size_t n = 0;
        for (uint32_t k = 0; k < PER_CONN; k++) {
            uint8_t p[8];
            put32(p, (uint32_t)i);
            put32(p + 4, k);
            n += t_tlv(buf + n, T_WORK, p, sizeof p);
        }
        t_write_all(fd[i], buf, n);
    }
    tao_stats_t st;
    if (wait_decoded)
        assert_true(
            T_WAIT((tao_server_stats(srv, &st), st.frames_in == MANY_CONNS * PER_CONN), 20000));
    uint64_t t0 = t_now_ms();
    tao_server_stop(srv, 10000);
    print_message("stop: %d of %d frames handled when it began\n", atomic_load(&handled),
                  MANY_CONNS * PER_CONN);

    int missing = 0, not_fin = 0;
    for (int i = 0; i < MANY_CONNS; i++) {
        for (uint32_t k = 0; k < PER_CONN; k++) {
            int32_t t;
            uint8_t *p;
            size_t l;
            if (t_read_frame(fd[i], &t, &p, &l, 15000) != 0) {
                missing += PER_CONN - k;
                break;
            }
            assert_int_equal(t, T_WORK);
            assert_int_equal(l, 8);
            assert_int_equal(get32(p), (uint32_t)i);
            assert_int_equal(get32(p + 4), k);
            free(p);
        }
        if (t_wait_closed(fd[i], 15000, NULL) != 1)
            not_fin++;
        close(fd[i]);
    }
    assert_int_equal(tao_server_wait(srv), 0);
    print_message("stop: all done after %llu ms\n", (unsigned long long)(t_now_ms() - t0));
    tao_server_stats(srv, &st);
    if (missing)
        fail_msg("%d replies missing; the server read %llu of %d bytes but decoded %llu of %d "
                 "frames",
                 missing, (unsigned long long)st.bytes_in, MANY_CONNS * PER_CONN * 16,
                 (unsigned long long)st.frames_in, MANY_CONNS * PER_CONN);
    assert_int_equal(not_fin, 0);
    assert_int_equal(atomic_load(&closes), MANY_CONNS);
    tao_server_destroy(srv);
    free(fd);
}

static void stop_with_queued_work(void **state)
{
    stop_with_work(true);
}

/* Frames already written when stop is called, some not read by the loop
 * yet: the loop reads what each socket holds before closing it, so every
 * one is handled and answered. */
static void stop_with_unread_frames(void **state)
{
    stop_with_work(false);
}

/* A peer that never reads holds 12 MiB of replies: the graceful close
 * cannot finish, so the stop deadline aborts it, not sooner, and the
 * server still runs on_close and ends. */
static void stop_deadline_aborts_stuck_peer(void **state)
{
    tao_server_config_t cfg = {.workers = 2};
    tao_server_t *srv = start(&cfg);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)tao_server_port(srv))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), small = 4096;
    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    int ok = t_connect(tao_server_port(srv)); /* a well-behaved neighbour */
    t_send_frame(fd, T_FLOOD, NULL, 0);
    assert_true(T_WAIT(atomic_load(&handled) == 1, 5000));
    tao_stats_t st;
    assert_true(T_WAIT((tao_server_stats(srv, &st), st.queued_bytes > (FLOOD_MB - 6) << 20), 5000));

    uint64_t t0 = t_now_ms();
    tao_server_stop(srv, 300);
    /* The neighbour's close is graceful (a FIN), before the deadline. */
    assert_int_equal(t_wait_closed(ok, 5000, NULL), 1);
    assert_int_equal(tao_server_wait(srv), 0);
    uint64_t dt = t_now_ms() - t0;
    print_message("stop with a stuck peer: done after %llu ms\n", (unsigned long long)dt);
    assert_true(dt >= 300);
    assert_true(dt < 300 + 3000);
    assert_int_equal(atomic_load(&closes), 2);
    assert_int_equal(atomic_load(&bcast_errors), 0);
    assert_int_not_equal(t_wait_closed(fd, 5000, NULL), 0); /* reset, after some data */
    close(fd);
    close(ok);
    tao_server_destroy(srv);
}

int main(void)
{
    t_require_backend();
    /* 1,000 clients and their 1,000 server ends, plus the rings. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        fds_ok = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= 2 * MANY_CONNS + 100;
    }
    if (!fds_ok)
        fprintf(stderr, "stop_with_queued_work: RLIMIT_NOFILE below %d, skipped\n",
                2 * MANY_CONNS + 100);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(to_everyone_workers),
        cmocka_unit_test(to_everyone_inline),
        cmocka_unit_test(skips_the_stuck_one),
        cmocka_unit_test(stop_with_queued_work),
        cmocka_unit_test(stop_with_unread_frames),
        cmocka_unit_test(stop_deadline_aborts_stuck_peer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
