/* Tests for engine/worker.c: handlers on sharded worker threads, over
 * 127.0.0.1 with the server in this process.
 *
 *   - 64 connections x 10,000 small frames echoed in order, byte for byte,
 *     with 1, 3, 4 and 7 workers (2 loops): every worker runs handlers, and
 *     each connection's handlers all run on one thread;
 *   - a handler that sleeps on one connection does not delay another
 *     connection pinned to another worker;
 *   - the same echo run with handlers inline on the loops;
 *   - sends from other threads: tao_server_unicast from the test thread
 *     while the connection echoes, from another connection's handler, and
 *     its -ENOENT; tao_server_has_conn.
 *
 * Which thread ran a handler is kept per connection (tao_conn_data) and
 * merged into the server's record by on_close, which runs after the
 * connection's last handler; the test reads the record only after
 * tao_server_destroy has joined every thread. */
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
#define T_SLOW 2
#define T_WHOAMI 3
#define T_RELAY 4
#define T_UNICAST 5
#define T_RELAYED 6

#if defined(__SANITIZE_THREAD__)
#define FRAMES 4000 /* TSan runs these threads several times slower */
#else
#define FRAMES 10000
#endif
#define CONNS 64
#define SLOW_MS 200
#define MAX_THREADS 64
#define MAX_CONNS 256

/* ---- what the server's callbacks saw --------------------------------------- */

typedef struct conn_rec {
    uint64_t id;
    pthread_t thread; /* the first thread that ran a handler */
    bool have_thread;
    bool moved; /* a later handler ran on another thread */
} conn_rec_t;

typedef struct srv_rec {
    pthread_mutex_t lock;
    pthread_t handler_threads[MAX_THREADS];
    int nhandler;
    pthread_t connect_threads[MAX_THREADS];
    int nconnect;
    conn_rec_t closed[MAX_CONNS]; /* copies, in close order */
    int nclosed;
    int moved;
} srv_rec_t;

static void add_thread(pthread_t *set, int *n, pthread_t t)
{
    for (int i = 0; i < *n; i++)
        if (pthread_equal(set[i], t))
            return;
    if (*n < MAX_THREADS)
        set[(*n)++] = t;
}

static srv_rec_t *rec_of(tao_conn_t *c)
{
    return tao_server_data(tao_conn_server(c));
}

static int on_connect(tao_conn_t *c)
{
    srv_rec_t *r = rec_of(c);
    conn_rec_t *cr = calloc(1, sizeof *cr);
    if (!cr)
        return -1;
    cr->id = tao_conn_id(c);
    tao_conn_set_data(c, cr);
    pthread_mutex_lock(&r->lock);
    add_thread(r->connect_threads, &r->nconnect, pthread_self());
    pthread_mutex_unlock(&r->lock);
    return 0;
}

/* Runs at the start of every handler: handlers of one connection run one
 * at a time, so the per-connection record needs no lock. */
static void note_thread(tao_conn_t *c)
{
    conn_rec_t *cr = tao_conn_data(c);
    pthread_t self = pthread_self();
    if (!cr->have_thread) {
        cr->thread = self;
        cr->have_thread = true;
        srv_rec_t *r = rec_of(c);
        pthread_mutex_lock(&r->lock);
        add_thread(r->handler_threads, &r->nhandler, self);
        pthread_mutex_unlock(&r->lock);
    } else if (!pthread_equal(cr->thread, self)) {
        cr->moved = true;
    }
}

static void on_close(tao_conn_t *c)
{
    srv_rec_t *r = rec_of(c);
    conn_rec_t *cr = tao_conn_data(c);
    if (!cr)
        return;
    pthread_mutex_lock(&r->lock);
    if (r->nclosed < MAX_CONNS)
        r->closed[r->nclosed++] = *cr;
    r->moved += cr->moved;
    pthread_mutex_unlock(&r->lock);
    free(cr);
}

static atomic_int send_errors;
static atomic_int last_send_error;

static void send_checked(tao_conn_t *c, int32_t type, const void *p, size_t len)
{
    int rc = tao_conn_send(c, type, p, len);
    if (rc < 0) {
        atomic_fetch_add(&send_errors, 1);
        atomic_store(&last_send_error, rc);
    }
}

static void on_echo(tao_conn_t *c, const tao_msg_t *m)
{
    note_thread(c);
    send_checked(c, m->type, m->payload, m->len);
}

static void on_slow(tao_conn_t *c, const tao_msg_t *m)
{
    note_thread(c);
    struct timespec ts = {.tv_sec = SLOW_MS / 1000, .tv_nsec = (SLOW_MS % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
    send_checked(c, m->type, m->payload, m->len);
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Replies with the connection's id. */
static void on_whoami(tao_conn_t *c, const tao_msg_t *m)
{
    uint8_t id[8];
    note_thread(c);
    put64(id, tao_conn_id(c));
    send_checked(c, T_WHOAMI, id, sizeof id);
}

/* Payload: another connection's id. Sends it "hi" with tao_server_unicast
 * from this handler's thread and replies with the result (int32 LE). */
static void on_relay(tao_conn_t *c, const tao_msg_t *m)
{
    note_thread(c);
    int32_t rc = -EBADMSG;
    if (m->len == 8)
        rc = tao_server_unicast(tao_conn_server(c), get64(m->payload), T_RELAYED, "hi", 2);
    uint8_t out[4];
    for (int i = 0; i < 4; i++)
        out[i] = (uint8_t)((uint32_t)rc >> (8 * i));
    send_checked(c, T_RELAY, out, sizeof out);
}

static tao_server_t *start(srv_rec_t *r, int workers)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    atomic_store(&send_errors, 0);
    atomic_store(&last_send_error, 0);
    tao_server_config_t cfg = {
        .workers = workers,
        .loops = 2,
        .on_connect = on_connect,
        .on_close = on_close,
        .user = r,
    };
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, T_ECHO, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_handle(srv, T_SLOW, on_slow, NULL, NULL), 0);
    assert_int_equal(tao_server_handle(srv, T_WHOAMI, on_whoami, NULL, NULL), 0);
    assert_int_equal(tao_server_handle(srv, T_RELAY, on_relay, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);
    return srv;
}

static void finish(tao_server_t *srv, srv_rec_t *r)
{
    tao_server_destroy(srv);
    pthread_mutex_destroy(&r->lock);
    assert_int_equal(atomic_load(&send_errors), 0);
}

static const conn_rec_t *closed_rec(const srv_rec_t *r, uint64_t id)
{
    for (int i = 0; i < r->nclosed; i++)
        if (r->closed[i].id == id)
            return &r->closed[i];
    fail_msg("no on_close for connection %llu", (unsigned long long)id);
    return NULL;
}

static bool is_connect_thread(const srv_rec_t *r, pthread_t t)
{
    for (int i = 0; i < r->nconnect; i++)
        if (pthread_equal(r->connect_threads[i], t))
            return true;
    return false;
}

/* ---- order and spread ------------------------------------------------------- */

/* 8 to 64 bytes, different from frame to frame and stream to stream. */
static size_t small_size(unsigned idx, uint32_t seq)
{
    return 8 + (idx * 31u + seq * 7u) % 57u;
}

static void echo_run(int workers)
{
    srv_rec_t r;
    tao_server_t *srv = start(&r, workers);
    uint64_t t0 = t_now_ms();
    t_pipeline(tao_server_port(srv), CONNS, T_ECHO, FRAMES, small_size, 64, 100000);
    print_message("workers %d: %d x %d frames in %llu ms\n", workers, CONNS, FRAMES,
                  (unsigned long long)(t_now_ms() - t0));
    assert_true(T_WAIT(tao_server_conn_count(srv) == 0, 10000));
    finish(srv, &r);

    assert_int_equal(r.nclosed, CONNS);
    assert_int_equal(r.moved, 0);
    for (int i = 0; i < r.nclosed; i++)
        assert_true(r.closed[i].have_thread);
    if (workers > 0) {
        assert_int_equal(r.nhandler, workers);
        /* Handlers never run on a loop thread. */
        for (int i = 0; i < r.nhandler; i++)
            assert_false(is_connect_thread(&r, r.handler_threads[i]));
    } else {
        /* Inline: handlers run on the loops, where on_connect ran. */
        assert_true(r.nhandler >= 1 && r.nhandler <= 2);
        for (int i = 0; i < r.nhandler; i++)
            assert_true(is_connect_thread(&r, r.handler_threads[i]));
    }
}

static void order_1_worker(void **state)
{
    echo_run(1);
}

static void order_3_workers(void **state)
{
    echo_run(3);
}

static void order_4_workers(void **state)
{
    echo_run(4);
}

static void order_7_workers(void **state)
{
    echo_run(7);
}

static void order_inline(void **state)
{
    echo_run(TAO_WORKERS_INLINE);
}

/* ---- isolation ------------------------------------------------------------- */

static uint64_t whoami(int fd)
{
    int32_t type;
    uint8_t *p;
    size_t len;
    t_send_frame(fd, T_WHOAMI, NULL, 0);
    assert_int_equal(t_read_frame(fd, &type, &p, &len, 5000), 0);
    assert_int_equal(type, T_WHOAMI);
    assert_int_equal(len, 8);
    uint64_t id = get64(p);
    free(p);
    return id;
}

static void expect_frame(int fd, int32_t type, const void *payload, size_t len)
{
    int32_t t;
    uint8_t *p;
    size_t l;
    assert_int_equal(t_read_frame(fd, &t, &p, &l, 5000), 0);
    assert_int_equal(t, type);
    assert_int_equal(l, len);
    assert_memory_equal(p, payload, len);
    free(p);
}

static bool readable(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    return poll(&pfd, 1, 0) == 1;
}

static void slow_handler_isolated(void **state)
{
    srv_rec_t r;
    tao_server_t *srv = start(&r, 2);
    int a = t_connect(tao_server_port(srv));
    uint64_t ida = whoami(a);
    int b = t_connect(tao_server_port(srv));
    uint64_t idb = whoami(b);

    uint64_t t0 = t_now_ms();
    t_send_frame(a, T_SLOW, "slow", 4);
    for (uint32_t i = 0; i < 100; i++) {
        uint8_t seq[4] = {(uint8_t)i, (uint8_t)(i >> 8), 0, 0};
        t_send_frame(b, T_ECHO, seq, sizeof seq);
        expect_frame(b, T_ECHO, seq, sizeof seq);
    }
    uint64_t t1 = t_now_ms();
    /* B's hundred round trips are done and A's reply has not come yet: the
     * sleeping handler held up nothing but its own connection. */
    assert_false(readable(a));
    expect_frame(a, T_SLOW, "slow", 4);
    uint64_t t2 = t_now_ms();
    print_message("B: 100 round trips in %llu ms; A's reply after %llu ms\n",
                  (unsigned long long)(t1 - t0), (unsigned long long)(t2 - t0));
    assert_true(t2 - t0 >= SLOW_MS);
    close(a);
    close(b);
    assert_true(T_WAIT(tao_server_conn_count(srv) == 0, 5000));
    finish(srv, &r);

    /* Consecutive connections went to different workers. */
    assert_false(pthread_equal(closed_rec(&r, ida)->thread, closed_rec(&r, idb)->thread));
    assert_int_equal(r.nhandler, 2);
}

/* ---- sends from other threads ---------------------------------------------- */

#define UNICASTS 5000
#define UC_ECHOES 2000

typedef struct unicaster {
    tao_server_t *srv;
    uint64_t id;
    atomic_int failures;
    atomic_int last_err;
    atomic_int again; /* -EAGAIN retries */
} unicaster_t;

static void *unicast_main(void *arg)
{
    unicaster_t *u = arg;
    for (uint32_t i = 0; i < UNICASTS; i++) {
        uint8_t p[4] = {(uint8_t)i, (uint8_t)(i >> 8), (uint8_t)(i >> 16), (uint8_t)(i >> 24)};
        int rc;
        while ((rc = tao_server_unicast(u->srv, u->id, T_UNICAST, p, sizeof p)) == -EAGAIN) {
            atomic_fetch_add(&u->again, 1);
            usleep(1000);
        }
        if (rc < 0) {
            atomic_fetch_add(&u->failures, 1);
            atomic_store(&u->last_err, rc);
        }
    }
    return NULL;
}

/* Drive fd (non-blocking) until UC_ECHOES echoes and UNICASTS unicasts have
 * arrived, each kind in its own order. */
static void echo_while_unicast(int fd)
{
    size_t tx_len = UC_ECHOES * 12, tx_off = 0, rx_len = 0;
    uint8_t *tx = malloc(tx_len), rx[65536];
    assert_non_null(tx);
    for (uint32_t i = 0; i < UC_ECHOES; i++) {
        uint8_t p[4] = {(uint8_t)i, (uint8_t)(i >> 8), (uint8_t)(i >> 16), (uint8_t)(i >> 24)};
        t_tlv(tx + 12 * i, T_ECHO, p, sizeof p);
    }
    uint32_t echoes = 0, unicasts = 0;
    uint64_t end = t_now_ms() + 60000;
    while (echoes < UC_ECHOES || unicasts < UNICASTS) {
        assert_true(t_now_ms() < end);
        struct pollfd pfd = {.fd = fd, .events = POLLIN | (tx_off < tx_len ? POLLOUT : 0)};
        assert_true(poll(&pfd, 1, 1000) >= 0);
        if (pfd.revents & POLLOUT) {
            ssize_t n = send(fd, tx + tx_off, tx_len - tx_off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0)
                tx_off += (size_t)n;
        }
        if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        ssize_t n = recv(fd, rx + rx_len, sizeof rx - rx_len, MSG_DONTWAIT);
        if (n < 0)
            continue;
        assert_true(n > 0);
        rx_len += (size_t)n;
        size_t off = 0;
        while (rx_len - off >= 12) {
            const uint8_t *f = rx + off;
            int32_t type = (int32_t)get32(f);
            assert_int_equal(get32(f + 4), 4);
            uint32_t seq = get32(f + 8);
            if (type == T_ECHO)
                assert_int_equal(seq, echoes++);
            else if (type == T_UNICAST)
                assert_int_equal(seq, unicasts++);
            else
                fail_msg("unexpected frame type %d", type);
            off += 12;
        }
        memmove(rx, rx + off, rx_len - off);
        rx_len -= off;
    }
    free(tx);
}

static void unicast_from_threads(int workers)
{
    srv_rec_t r;
    tao_server_t *srv = start(&r, workers);
    int fd = t_connect(tao_server_port(srv));
    uint64_t id = whoami(fd);
    assert_true(id > 0);
    assert_true(tao_server_has_conn(srv, id));
    assert_false(tao_server_has_conn(srv, 0));
    assert_false(tao_server_has_conn(srv, id + 1000));
    assert_int_equal(tao_server_unicast(srv, id + 1000, T_UNICAST, "x", 1), -ENOENT);
    assert_int_equal(tao_server_unicast(srv, 0, T_UNICAST, "x", 1), -ENOENT);

    unicaster_t u = {.srv = srv, .id = id};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, unicast_main, &u), 0);
    echo_while_unicast(fd);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&u.failures), 0);
    if (atomic_load(&u.again))
        print_message("unicast: %d -EAGAIN retries\n", atomic_load(&u.again));

    /* From another connection's handler, on its own worker (or loop). */
    int other = t_connect(tao_server_port(srv));
    uint64_t oid = whoami(other);
    uint8_t target[8];
    put64(target, id);
    t_send_frame(other, T_RELAY, target, sizeof target);
    expect_frame(other, T_RELAY, "\0\0\0\0", 4);
    expect_frame(fd, T_RELAYED, "hi", 2);
    put64(target, id + oid + 1000);
    t_send_frame(other, T_RELAY, target, sizeof target);
    int32_t enoent = -ENOENT;
    uint8_t want[4];
    for (int i = 0; i < 4; i++)
        want[i] = (uint8_t)((uint32_t)enoent >> (8 * i));
    expect_frame(other, T_RELAY, want, 4);

    /* Once the connection is gone, its id is unknown. */
    close(fd);
    assert_true(T_WAIT(!tao_server_has_conn(srv, id), 5000));
    assert_int_equal(tao_server_unicast(srv, id, T_UNICAST, "x", 1), -ENOENT);
    assert_true(tao_server_has_conn(srv, oid));
    close(other);
    assert_true(T_WAIT(tao_server_conn_count(srv) == 0, 5000));
    finish(srv, &r);
    assert_int_equal(r.nclosed, 2);
}

static void unicast_workers(void **state)
{
    unicast_from_threads(2);
}

static void unicast_inline(void **state)
{
    unicast_from_threads(TAO_WORKERS_INLINE);
}

/* ---- a worker that falls behind --------------------------------------------
 * With a small high watermark and a slow handler, the loop must stop
 * reading the connection while the worker's backlog is large, then read
 * again once it drains (one resume per pause): every echo arrives, in
 * order, and nothing stalls. */

static atomic_int slow_handled;

static void on_slow_echo(tao_conn_t *c, const tao_msg_t *m)
{
    usleep(200);
    atomic_fetch_add(&slow_handled, 1);
    tao_conn_send(c, m->type, m->payload, m->len);
}

static void backlog_pauses_and_resumes(void **state)
{
    enum { BATCH = 200, ROUNDS = 5, LEN = 1024 };
    tao_server_config_t cfg = {.workers = 1, .out_high = 64 * 1024};
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, 1, on_slow_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);
    int fd = t_connect(tao_server_port(srv));
    static uint8_t frames[BATCH * (LEN + 8)], want[LEN];
    uint32_t seq = 0;
    atomic_store(&slow_handled, 0);
    for (int r = 0; r < ROUNDS; r++) {
        size_t n = 0;
        for (int i = 0; i < BATCH; i++) {
            uint8_t p[LEN];
            t_fill(p, LEN, seq + (uint32_t)i);
            n += t_tlv(frames + n, 1, p, LEN);
        }
        /* 200 KiB at once: more than three high watermarks of backlog. */
        t_write_all(fd, frames, n);
        for (int i = 0; i < BATCH; i++, seq++) {
            int32_t type;
            uint8_t *p;
            size_t len;
            assert_int_equal(t_read_frame(fd, &type, &p, &len, 10000), 0);
            t_fill(want, LEN, seq);
            assert_int_equal(len, LEN);
            assert_memory_equal(p, want, LEN);
            free(p);
        }
    }
    assert_int_equal(atomic_load(&slow_handled), BATCH * ROUNDS);
    close(fd);
    tao_server_destroy(srv);
}

int main(void)
{
    t_require_backend();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(order_1_worker),
        cmocka_unit_test(order_3_workers),
        cmocka_unit_test(order_4_workers),
        cmocka_unit_test(order_7_workers),
        cmocka_unit_test(order_inline),
        cmocka_unit_test(slow_handler_isolated),
        cmocka_unit_test(unicast_workers),
        cmocka_unit_test(unicast_inline),
        cmocka_unit_test(backlog_pauses_and_resumes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
