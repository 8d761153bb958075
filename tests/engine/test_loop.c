/* Tests for engine/loop.c: the loop under a starved buffer ring, and the
 * three ways a running server is stopped, over 127.0.0.1 with the server in
 * this process.
 *
 *   - a buffer ring of 2 x 256 bytes shared by 8 pipelining connections:
 *     receives keep ending with -ENOBUFS and are re-armed, and every echo
 *     still arrives, in order and intact;
 *   - tao_server_stop with 500 connections whose 64 KiB replies are queued
 *     and unread: each client then reads its whole reply followed by a FIN,
 *     on_close runs 500 times and the server winds down;
 *   - tao_server_stop from inside a handler;
 *   - tao_server_stop from a signal handler while tao_server_run blocks.
 *
 * Each runs with handlers inline and on workers, where it matters. */
#include "util/t_util.h"
#include "util/t_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define T_ECHO 1
#define T_REQUEST 2
#define T_REPLY 3
#define T_STOP 9

static atomic_uint handled, closes, send_errors;

static void reset_counters(void)
{
    atomic_store(&handled, 0);
    atomic_store(&closes, 0);
    atomic_store(&send_errors, 0);
}

static void on_echo(tao_conn_t *conn, const tao_msg_t *msg)
{
    if (tao_conn_send(conn, msg->type, msg->payload, msg->len) < 0)
        atomic_fetch_add(&send_errors, 1);
}

static void on_close(tao_conn_t *conn)
{
    atomic_fetch_add(&closes, 1);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void raise_nofile(rlim_t want)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < want)
        skip(); /* the hard limit is too low for this test */
}

/* ---- a starved buffer ring ---------------------------------------------------- */

#define NB_CONNS 8
#define NB_FRAMES 2000
#define NB_MAX 700

static uint32_t mix(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

/* 0 to 700 bytes: many frames span several 256-byte buffers. */
static size_t small_size(unsigned conn, uint32_t seq)
{
    return mix(t_seed(conn, seq)) % (NB_MAX + 1);
}

/* Echo frames from conns connections through a ring of buf_count buffers of
 * buf_size bytes, every byte checked (t_pipeline). Returns the receives
 * re-armed after -ENOBUFS. */
static uint64_t run_ring(int workers, unsigned buf_count, unsigned buf_size, unsigned conns,
                         uint32_t frames, t_size_fn size, size_t max)
{
    reset_counters();
    tao_server_config_t cfg = {.loops = 1,
                               .workers = workers,
                               .buf_count = buf_count,
                               .buf_size = buf_size,
                               .on_close = on_close};
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, T_ECHO, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);
    print_message("%s (%s)\n", tao_server_backend(srv), tao_server_features(srv));

    t_pipeline(tao_server_port(srv), conns, T_ECHO, frames, size, max, 30000);

    tao_stats_t st;
    tao_server_stats(srv, &st);
    assert_int_equal(st.frames_in, (uint64_t)conns * frames);
    assert_int_equal(st.decode_errors, 0);
    assert_int_equal(atomic_load(&send_errors), 0);
    assert_true(T_WAIT(atomic_load(&closes) == conns, 5000));

    tao_server_stop(srv, 0);
    tao_server_wait(srv);
    tao_server_destroy(srv);
    return st.enobufs;
}

static void run_enobufs(int workers)
{
    uint64_t n = run_ring(workers, 2, 256, NB_CONNS, NB_FRAMES, small_size, NB_MAX);
    print_message("receives re-armed after -ENOBUFS: %llu\n", (unsigned long long)n);
    assert_true(n > 0);
}

/* Frames of 1 to 3 KiB through four 8 KiB buffers: with incremental
 * consumption (bufring.c) receives share a buffer a slice each, and inline
 * echoes lend their payloads from a slice while the kernel fills the rest
 * for other connections. Every byte must come back, in order. */
#define SH_CONNS 16
#define SH_FRAMES 400
#define SH_MAX 3072

static size_t shared_size(unsigned conn, uint32_t seq)
{
    return 1024 + mix(t_seed(conn, seq)) % (SH_MAX - 1024 + 1);
}

static void run_shared(int workers)
{
    run_ring(workers, 4, 8192, SH_CONNS, SH_FRAMES, shared_size, SH_MAX);
}

static void test_shared_buffers_inline(void **state)
{
    run_shared(TAO_WORKERS_INLINE);
}

static void test_shared_buffers_workers(void **state)
{
    run_shared(2);
}

static void test_enobufs_inline(void **state)
{
    run_enobufs(TAO_WORKERS_INLINE);
}

static void test_enobufs_workers(void **state)
{
    run_enobufs(2);
}

/* ---- stop with 500 connections and their replies unread ------------------------- */

#define STOP_CONNS 500
#define REPLY_LEN 65536

/* A client whose small receive window keeps most of its reply in the
 * server's output queue until it reads. */
static int connect_small_rcvbuf(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int sz = 8 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Answer request i with 64 KiB made from i. */
static void on_request(tao_conn_t *conn, const tao_msg_t *msg)
{
    uint8_t *reply = malloc(REPLY_LEN);
    int rc = -ENOMEM;
    if (reply && msg->len == 4) {
        t_fill(reply, REPLY_LEN, t_seed(rd32(msg->payload), 0));
        rc = tao_conn_send(conn, T_REPLY, reply, REPLY_LEN);
    }
    if (rc < 0)
        atomic_fetch_add(&send_errors, 1);
    free(reply);
    atomic_fetch_add(&handled, 1);
}

/* Output bytes the loops have seen: queued plus written. */
static uint64_t output_seen(const tao_server_t *srv, uint64_t *queued)
{
    tao_stats_t st;
    tao_server_stats(srv, &st);
    *queued = st.queued_bytes;
    return st.queued_bytes + st.bytes_out;
}

static void run_stop_500(int workers)
{
    reset_counters();
    raise_nofile(2 * STOP_CONNS + 100);
    tao_server_config_t cfg = {.loops = 2, .workers = workers, .on_close = on_close};
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, T_REQUEST, on_request, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);
    int port = tao_server_port(srv);

    int *fds = calloc(STOP_CONNS, sizeof *fds);
    assert_non_null(fds);
    for (uint32_t i = 0; i < STOP_CONNS; i++) {
        uint8_t req[4];
        wr32(req, i);
        fds[i] = connect_small_rcvbuf(port);
        t_send_frame(fds[i], T_REQUEST, req, sizeof req);
    }
    assert_true(T_WAIT(atomic_load(&handled) == STOP_CONNS, 20000));
    assert_int_equal(atomic_load(&send_errors), 0);

    /* Nothing has been read yet: the replies sit in socket buffers and in
     * the output queues. */
    /* With workers, the replies reach the loop a moment after the handlers
     * ran: stop once every reply is queued or written. */
    const uint64_t total = (uint64_t)STOP_CONNS * (8 + REPLY_LEN);
    uint64_t queued = 0;
    assert_true(T_WAIT(output_seen(srv, &queued) == total, 10000));
    print_message("queued in the server at stop: %llu bytes\n", (unsigned long long)queued);
    tao_server_stop(srv, 10000);

    uint8_t *want = malloc(REPLY_LEN);
    assert_non_null(want);
    for (uint32_t i = 0; i < STOP_CONNS; i++) {
        int32_t type;
        uint8_t *got;
        size_t len, extra = 0;
        int rc = t_read_frame(fds[i], &type, &got, &len, 10000);
        if (rc != 0)
            fail_msg("client %u: reply not read: %d", i, rc);
        assert_int_equal(type, T_REPLY);
        assert_int_equal(len, REPLY_LEN);
        t_fill(want, REPLY_LEN, t_seed(i, 0));
        if (memcmp(got, want, REPLY_LEN) != 0)
            fail_msg("client %u: reply differs", i);
        free(got);
        /* Then a FIN, not a reset, and nothing more. */
        int how = t_wait_closed(fds[i], 10000, &extra);
        if (how != 1)
            fail_msg("client %u: %s after the reply", i, how == 2 ? "RST" : "no FIN");
        assert_int_equal(extra, 0);
        close(fds[i]);
    }
    free(want);
    free(fds);

    assert_int_equal(tao_server_wait(srv), 0);
    assert_int_equal(atomic_load(&closes), STOP_CONNS);
    assert_int_equal(tao_server_conn_count(srv), 0);
    tao_stats_t st;
    tao_server_stats(srv, &st);
    assert_int_equal(st.conns_closed, STOP_CONNS);
    assert_int_equal(st.queued_bytes, 0);
    tao_server_destroy(srv);
}

static void test_stop_500_inline(void **state)
{
    run_stop_500(TAO_WORKERS_INLINE);
}

static void test_stop_500_workers(void **state)
{
    run_stop_500(2);
}

/* ---- stop with requests parked behind back-pressure ---------------------------- */

/* 8 clients each write 40,000 requests and read nothing; then the server
 * is asked to stop; then the clients read. Nearly all the requests wait in
 * the server's c->in or the sockets behind back-pressure (a 256 KiB high
 * watermark) when the stop comes: every one must be answered, and only
 * then the FIN. The writers must finish before the stop, so what a client
 * writes has to fit in the kernel's socket buffers while the server does
 * not read: 2.5 MB fits with Linux's default limits (tcp_wmem up to
 * 4 MiB); 9.6 MB (an earlier size) needed the server's receive buffer to
 * grow with its reading, and on a loaded machine it did not. */
#define PARK_CONNS 8
#define PARK_REQS 40000
#define PARK_HIGH (256u << 10)
#define PARK_LEN 64 /* 8-byte header, 56-byte payload carrying its number */

typedef struct park_writer {
    int fd;
    atomic_bool done;
    int err;
} park_writer_t;

static void *park_write(void *arg)
{
    park_writer_t *w = arg;
    enum { BATCH = 1000 };
    static _Thread_local uint8_t buf[BATCH * PARK_LEN];
    uint8_t payload[PARK_LEN - 8] = {0};
    for (uint32_t i = 0; i < PARK_REQS && !w->err; i += BATCH) {
        for (uint32_t k = 0; k < BATCH; k++) {
            wr32(payload, i + k);
            t_tlv(buf + (size_t)k * PARK_LEN, T_ECHO, payload, sizeof payload);
        }
        for (size_t off = 0; off < sizeof buf;) {
            ssize_t r = send(w->fd, buf + off, sizeof buf - off, MSG_NOSIGNAL);
            if (r <= 0) {
                w->err = errno;
                break;
            }
            off += (size_t)r;
        }
    }
    atomic_store(&w->done, true);
    return NULL;
}

static bool writers_done(park_writer_t *w)
{
    for (int i = 0; i < PARK_CONNS; i++)
        if (!atomic_load(&w[i].done))
            return false;
    return true;
}

static void run_stop_parked(int workers)
{
    reset_counters();
    tao_server_config_t cfg = {
        .loops = 1, .workers = workers, .out_high = PARK_HIGH, .on_close = on_close};
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, T_ECHO, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);

    park_writer_t w[PARK_CONNS] = {0};
    pthread_t th[PARK_CONNS];
    for (int i = 0; i < PARK_CONNS; i++)
        w[i].fd = t_connect(tao_server_port(srv));
    /* Accepted, all of them: a connection still in the listen backlog when
     * the stop closes the listener is reset by the kernel. */
    assert_true(T_WAIT(tao_server_conn_count(srv) == PARK_CONNS, 30000));
    uint64_t t0 = t_now_ms();
    for (int i = 0; i < PARK_CONNS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, park_write, &w[i]), 0);
    /* Every request is written (the kernel's buffers and the server's
     * queues hold them all) before the stop: the count below is exact. */
    bool written = T_WAIT(writers_done(w), 60000);
    print_message("requests written in %llu ms\n", (unsigned long long)(t_now_ms() - t0));
    assert_true(written);
    for (int i = 0; i < PARK_CONNS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].err, 0);
    }
    tao_stats_t st;
    tao_server_stats(srv, &st);
    print_message("at stop: %llu of %u frames decoded, %llu bytes queued\n",
                  (unsigned long long)st.frames_in, PARK_CONNS * PARK_REQS,
                  (unsigned long long)st.queued_bytes);
    tao_server_stop(srv, 60000);

    uint8_t rep[PARK_LEN];
    for (int i = 0; i < PARK_CONNS; i++) {
        uint32_t n = 0;
        int rc;
        while ((rc = t_read_exact(w[i].fd, rep, sizeof rep, 30000)) == 0) {
            if (rd32(rep + 8) != n)
                fail_msg("client %d: reply %u carries request %u", i, n, rd32(rep + 8));
            n++;
        }
        if (n != PARK_REQS || rc != -EPIPE)
            fail_msg("client %d: %u of %u replies, then %s", i, n, PARK_REQS,
                     rc == -EPIPE        ? "FIN"
                     : rc == -ECONNRESET ? "RST"
                                         : "nothing");
        close(w[i].fd);
    }
    assert_int_equal(tao_server_wait(srv), 0);
    assert_int_equal(atomic_load(&closes), PARK_CONNS);
    tao_server_stats(srv, &st);
    assert_int_equal(st.frames_in, (uint64_t)PARK_CONNS * PARK_REQS);
    assert_int_equal(st.queued_bytes, 0);
    tao_server_destroy(srv);
}

static void test_stop_parked_inline(void **state)
{
    run_stop_parked(TAO_WORKERS_INLINE);
}

static void test_stop_parked_workers(void **state)
{
    run_stop_parked(2);
}

/* ---- stop from inside a handler -------------------------------------------------- */

#define HS_CONNS 8

/* Reply, then stop the whole server: the reply must still go out. */
static void on_stop(tao_conn_t *conn, const tao_msg_t *msg)
{
    if (tao_conn_send(conn, T_STOP, "bye", 3) < 0)
        atomic_fetch_add(&send_errors, 1);
    tao_server_stop(tao_conn_server(conn), 0);
    atomic_fetch_add(&handled, 1);
}

static void run_stop_in_handler(int workers)
{
    reset_counters();
    tao_server_config_t cfg = {.loops = 2, .workers = workers, .on_close = on_close};
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, T_ECHO, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_handle(srv, T_STOP, on_stop, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);

    int fds[HS_CONNS];
    for (int i = 0; i < HS_CONNS; i++) {
        fds[i] = t_connect(tao_server_port(srv));
        t_echo_once(fds[i], T_ECHO, (uint32_t)i);
    }
    t_send_frame(fds[0], T_STOP, NULL, 0);
    int32_t type;
    uint8_t *got;
    size_t len;
    assert_int_equal(t_read_frame(fds[0], &type, &got, &len, 5000), 0);
    assert_int_equal(type, T_STOP);
    assert_int_equal(len, 3);
    assert_memory_equal(got, "bye", 3);
    free(got);
    for (int i = 0; i < HS_CONNS; i++) {
        size_t extra = 0;
        assert_int_equal(t_wait_closed(fds[i], 5000, &extra), 1);
        assert_int_equal(extra, 0);
        close(fds[i]);
    }
    assert_int_equal(tao_server_wait(srv), 0);
    assert_int_equal(atomic_load(&handled), 1);
    assert_int_equal(atomic_load(&closes), HS_CONNS);
    assert_int_equal(atomic_load(&send_errors), 0);
    assert_int_equal(tao_server_conn_count(srv), 0);
    tao_server_destroy(srv);
}

static void test_stop_in_handler_inline(void **state)
{
    run_stop_in_handler(TAO_WORKERS_INLINE);
}

static void test_stop_in_handler_workers(void **state)
{
    run_stop_in_handler(2);
}

/* ---- stop from a signal handler ------------------------------------------------ */

static tao_server_t *sig_srv;
static atomic_int raiser_status; /* 1 running, 0 fine, < 0 what went wrong */

static void on_sigusr1(int sig)
{
    tao_server_stop(sig_srv, 0);
}

/* While the test thread blocks in tao_server_run: check that the server
 * serves, raise SIGUSR1 (its handler runs on this thread), then see the
 * connection closed by the stop. No cmocka asserts here: not the test
 * thread. */
static void *raiser(void *arg)
{
    int port = *(int *)arg, st = 0;
    int fd = -1;
    uint8_t out[16], in[24];
    uint8_t frame[8 + sizeof out];

    usleep(100 * 1000);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        st = -1;
        goto out;
    }
    t_fill(out, sizeof out, 77);
    size_t n = t_tlv(frame, T_ECHO, out, sizeof out);
    if (send(fd, frame, n, MSG_NOSIGNAL) != (ssize_t)n || t_read_exact(fd, in, n, 5000) != 0 ||
        memcmp(in, frame, n) != 0) {
        st = -2;
        goto out;
    }
    if (raise(SIGUSR1) != 0) {
        st = -3;
        goto out;
    }
    if (t_read_exact(fd, in, 1, 5000) != -EPIPE)
        st = -4; /* expected the server's FIN */
out:
    if (fd >= 0)
        close(fd);
    atomic_store(&raiser_status, st);
    return NULL;
}

static void test_stop_from_signal(void **state)
{
    reset_counters();
    tao_server_config_t cfg = {.loops = 2, .on_close = on_close};
    sig_srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(sig_srv, T_ECHO, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_start(sig_srv), 0);
    int port = tao_server_port(sig_srv);

    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigusr1;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);

    atomic_store(&raiser_status, 1);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, raiser, &port), 0);
    assert_int_equal(tao_server_run(sig_srv), 0);
    pthread_join(th, NULL);
    sigaction(SIGUSR1, &old, NULL);

    assert_int_equal(atomic_load(&raiser_status), 0);
    assert_int_equal(atomic_load(&closes), 1);
    assert_int_equal(tao_server_conn_count(sig_srv), 0);
    tao_server_destroy(sig_srv);
    sig_srv = NULL;
}

/* ---- io_uring blocked ------------------------------------------------------
 * What Docker's default seccomp profile does (io_uring_setup fails with
 * EPERM) and Podman's (ENOSYS). Auto falls back to epoll, says so in one
 * line, and serves; io_uring asked for by the config or by TAO_BACKEND
 * refuses to start with that error and says why: a seccomp filter, not a
 * kernel without io_uring. */

static char logged[1024];
static pthread_mutex_t logged_lock = PTHREAD_MUTEX_INITIALIZER;

/* Every loop logs its failure, each on its own thread: keep them all. */
static void keep_log(tao_log_level_t level, const char *msg, void *user)
{
    pthread_mutex_lock(&logged_lock);
    size_t n = strlen(logged);
    snprintf(logged + n, sizeof logged - n, "%s\n", msg);
    pthread_mutex_unlock(&logged_lock);
}

static int block_io_uring(int err)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* One echo over a real socket: a frame out, the same frame back. */
static bool echoes(int port)
{
    int fd = t_connect(port);
    static const char msg[] = "served without io_uring";
    t_send_frame(fd, T_ECHO, msg, sizeof msg);
    int32_t type;
    uint8_t *payload = NULL;
    size_t len = 0;
    int rc = t_read_frame(fd, &type, &payload, &len, 30000);
    bool ok = rc == 0 && type == T_ECHO && len == sizeof msg && memcmp(payload, msg, len) == 0;
    free(payload);
    close(fd);
    return ok;
}

enum how { AUTO, FORCED_BY_CONFIG, FORCED_BY_ENV };

/* In a child: the filter cannot be removed again. Exit codes: 0 ok, 2 the
 * filter could not be installed, 1 wrong behaviour. */
static int blocked_child(int err, enum how how)
{
    if (block_io_uring(err) < 0)
        return 2;
    if (how == FORCED_BY_ENV)
        setenv("TAO_BACKEND", "io_uring", 1);
    else
        unsetenv("TAO_BACKEND");
    tao_log_set(keep_log, NULL, TAO_LOG_WARN);
    tao_server_config_t cfg = {.listen = "127.0.0.1:0", .loops = 2};
    if (how == FORCED_BY_CONFIG)
        cfg.backend = TAO_BACKEND_IO_URING;
    tao_server_t *srv;
    if (tao_server_create(&cfg, &srv) < 0)
        return 1;
    tao_server_handle(srv, T_ECHO, on_echo, NULL, NULL);
    int rc = tao_server_start(srv);
    const char *be = tao_server_backend(srv);
    bool ok;
    if (how == AUTO) {
        /* One line, naming the backend and the cause. */
        ok = rc == 0 && be && strcmp(be, "epoll") == 0 && echoes(tao_server_port(srv)) &&
             strstr(logged, "running on epoll: a seccomp filter blocks") &&
             strchr(logged, '\n') == logged + strlen(logged) - 1;
    } else {
        ok = rc == -err && strstr(logged, "seccomp filter blocks") &&
             !strstr(logged, "built without") && !strstr(logged, "epoll");
    }
    tao_server_destroy(srv);
    if (!ok) {
        fprintf(stderr, "errno %d, how %d: start gave %d on %s, logged:\n%s", err, (int)how, rc,
                be ? be : "(none)", logged);
        return 1;
    }
    return 0;
}

static void test_io_uring_blocked(void **state)
{
    static const int errs[] = {EPERM, ENOSYS}; /* Docker's answer, Podman's */
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        for (enum how how = AUTO; how <= FORCED_BY_ENV; how++) {
            pid_t pid = fork();
            assert_true(pid >= 0);
            if (pid == 0)
                _exit(blocked_child(errs[i], how));
            int status;
            assert_int_equal(waitpid(pid, &status, 0), pid);
            assert_true(WIFEXITED(status));
            if (WEXITSTATUS(status) == 2)
                skip();
            assert_int_equal(WEXITSTATUS(status), 0);
        }
    }
}

/* ---- the kernel features a server reports ----------------------------------- */

/* tao_server_features: nothing before start; "" on epoll; on io_uring a
 * list of known names, with send-zc exactly when registered send buffers
 * were asked for (zc_threshold; a small pool, well under the default
 * memlock limit). */
static void test_features(void **state)
{
    for (int zc = 0; zc <= 1; zc++) {
        tao_server_config_t cfg = {
            .loops = 1, .zc_threshold = zc ? 4096 : 0, .zc_buffers = 4, .zc_buffer_size = 4096};
        tao_server_t *srv = t_server_create(&cfg);
        assert_null(tao_server_features(srv));
        assert_int_equal(tao_server_start(srv), 0);
        const char *be = tao_server_backend(srv), *f = tao_server_features(srv);
        print_message("%s, zc %d: \"%s\"\n", be, zc, f);
        assert_non_null(f);
        if (strcmp(be, "epoll") == 0) {
            assert_string_equal(f, "");
        } else {
            char list[128];
            snprintf(list, sizeof list, "%s", f);
            bool saw_zc = false;
            for (char *save, *name = strtok_r(list, ", ", &save); name;
                 name = strtok_r(NULL, ", ", &save)) {
                static const char *known[] = {"defer-taskrun", "coop-taskrun", "registered-ring",
                                              "incremental-buffers", "send-zc"};
                bool ok = false;
                for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
                    ok |= strcmp(name, known[i]) == 0;
                assert_true(ok);
                saw_zc |= strcmp(name, "send-zc") == 0;
            }
            assert_int_equal(saw_zc, zc);
            /* Linux 6.12 and later fill buffers a slice at a time: the
             * engine must have asked for it, not fallen back. */
            struct utsname u;
            unsigned major = 0, minor = 0;
            if (uname(&u) == 0 && sscanf(u.release, "%u.%u", &major, &minor) == 2 &&
                (major > 6 || (major == 6 && minor >= 12)))
                assert_non_null(strstr(f, "incremental-buffers"));
        }
        tao_server_destroy(srv);
    }
}

int main(void)
{
    t_require_backend();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enobufs_inline),
        cmocka_unit_test(test_enobufs_workers),
        cmocka_unit_test(test_shared_buffers_inline),
        cmocka_unit_test(test_shared_buffers_workers),
        cmocka_unit_test(test_stop_500_inline),
        cmocka_unit_test(test_stop_500_workers),
        cmocka_unit_test(test_stop_parked_inline),
        cmocka_unit_test(test_stop_parked_workers),
        cmocka_unit_test(test_stop_in_handler_inline),
        cmocka_unit_test(test_stop_in_handler_workers),
        cmocka_unit_test(test_stop_from_signal),
        cmocka_unit_test(test_io_uring_blocked),
        cmocka_unit_test(test_features),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
