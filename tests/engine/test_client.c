/* Client connections against a Tao-C server in the same process, over
 * 127.0.0.1 and ::1: echo, many connections on one loop, connect errors,
 * connect timeout, reconnect with backoff, user close. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/t_net.h"
#include "util/t_util.h"

static atomic_int connects, closes, replies, errors_refused, errors_timeout, errors_lost;
static atomic_int bad_replies;
static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t connect_times[16];
static int nconnect_times;
/* When each refused connect was reported, stamped on the loop thread: the
 * test thread may notice them late on a loaded machine. */
static uint64_t refused_times[16];
static int nrefused_times;

static void reset(void)
{
    atomic_store(&connects, 0);
    atomic_store(&closes, 0);
    atomic_store(&replies, 0);
    atomic_store(&errors_refused, 0);
    atomic_store(&errors_timeout, 0);
    atomic_store(&errors_lost, 0);
    atomic_store(&bad_replies, 0);
    nconnect_times = 0;
    nrefused_times = 0;
}

static void srv_echo(tao_conn_t *c, const tao_msg_t *m)
{
    tao_conn_send(c, m->type, m->payload, m->len);
}

static tao_server_t *echo_server_loops(const char *listen, unsigned loops)
{
    tao_server_config_t cfg = {.listen = listen, .loops = loops};
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, 1, srv_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);
    return srv;
}

static tao_server_t *echo_server(const char *listen)
{
    return echo_server_loops(listen, 0);
}

static int on_connect(tao_conn_t *c)
{
    atomic_fetch_add(&connects, 1);
    pthread_mutex_lock(&ev_lock);
    if (nconnect_times < 16)
        connect_times[nconnect_times++] = t_now_ms();
    pthread_mutex_unlock(&ev_lock);
    return 0;
}

static void on_close(tao_conn_t *c)
{
    atomic_fetch_add(&closes, 1);
}

static void note_refused(void)
{
    pthread_mutex_lock(&ev_lock);
    if (nrefused_times < 16)
        refused_times[nrefused_times++] = t_now_ms();
    pthread_mutex_unlock(&ev_lock);
    atomic_fetch_add(&errors_refused, 1);
}

static void on_error(tao_client_t *cl, tao_conn_t *c, int err, const char *what)
{
    if (err == -ECONNREFUSED)
        note_refused();
    else if (err == -ETIMEDOUT)
        atomic_fetch_add(&errors_timeout, 1);
    else if (err == -ECONNRESET || err == -ENOTCONN)
        atomic_fetch_add(&errors_lost, 1);
}

static void on_reply(tao_conn_t *c, const tao_msg_t *m)
{
    if (m->len != 12 || memcmp(m->payload, "hello, world", 12) != 0)
        atomic_fetch_add(&bad_replies, 1);
    atomic_fetch_add(&replies, 1);
}

static tao_client_t *client(tao_client_config_t *cfg)
{
    tao_client_t *cl;
    cfg->on_connect = on_connect;
    cfg->on_close = on_close;
    cfg->on_error = on_error;
    assert_int_equal(tao_client_create(cfg, &cl), 0);
    assert_int_equal(tao_client_handle(cl, 1, on_reply, NULL, NULL), 0);
    assert_int_equal(tao_client_start(cl), 0);
    return cl;
}

static void echo_v4_and_v6(void **state)
{
    const char *listens[] = {"127.0.0.1:0", "[::1]:0"};
    for (int v = 0; v < 2; v++) {
        reset();
        tao_server_t *srv = echo_server(listens[v]);
        tao_client_config_t cfg = {0};
        tao_client_t *cl = client(&cfg);
        char addr[64];
        snprintf(addr, sizeof addr, v ? "[::1]:%d" : "127.0.0.1:%d", tao_server_port(srv));
        int64_t id = tao_client_connect(cl, addr, NULL);
        assert_true(id > 0);
        assert_true(T_WAIT(tao_client_connected(cl, id), 5000));
        for (int i = 0; i < 10; i++)
            assert_int_equal(tao_client_send(cl, id, 1, "hello, world", 12), 0);
        assert_true(T_WAIT(atomic_load(&replies) == 10, 5000));
        assert_int_equal(atomic_load(&bad_replies), 0);
        assert_int_equal(tao_client_close(cl, id), 0);
        assert_true(T_WAIT(atomic_load(&closes) == 1, 5000));
        assert_int_equal(tao_client_send(cl, id, 1, "x", 1), -ENOENT);
        assert_int_equal(tao_client_conn_count(cl), 0);
        tao_client_destroy(cl);
        tao_server_destroy(srv);
    }
}

/* The bytes a Tao-C client puts on the wire are Go Tao's. */
static void golden_bytes_on_the_wire(void **state)
{
    static const uint8_t golden[] = {0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 'h', 'e',
                                     'l',  'l',  'o',  ',',  ' ',  'w',  'o',  'r',  'l', 'd'};
    reset();
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 4), 0);
    getsockname(lfd, (struct sockaddr *)&a, &len);

    tao_client_config_t cfg = {0};
    tao_client_t *cl = client(&cfg);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
    int64_t id = tao_client_connect(cl, addr, NULL);
    int fd = accept(lfd, NULL, NULL);
    assert_true(fd >= 0);
    assert_true(T_WAIT(tao_client_connected(cl, id), 5000));
    assert_int_equal(tao_client_send(cl, id, 1, "hello, world", 12), 0);
    uint8_t got[sizeof golden];
    assert_int_equal(t_read_exact(fd, got, sizeof got, 5000), 0);
    assert_memory_equal(got, golden, sizeof golden);
    /* And it decodes Go Tao's reply. */
    t_write_all(fd, golden, sizeof golden);
    assert_true(T_WAIT(atomic_load(&replies) == 1, 5000));
    assert_int_equal(atomic_load(&bad_replies), 0);
    close(fd);
    close(lfd);
    tao_client_destroy(cl);
}

static void refused_then_gone(void **state)
{
    reset();
    /* A port with nothing listening: bind without listen reserves it. */
    int hold = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    assert_int_equal(bind(hold, (struct sockaddr *)&a, sizeof a), 0);
    getsockname(hold, (struct sockaddr *)&a, &len);

    tao_client_config_t cfg = {0};
    tao_client_t *cl = client(&cfg);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
    int64_t id = tao_client_connect(cl, addr, NULL);
    assert_true(id > 0);
    assert_true(T_WAIT(atomic_load(&errors_refused) == 1, 5000));
    assert_true(T_WAIT(atomic_load(&closes) == 1, 5000));
    assert_int_equal(atomic_load(&connects), 0);
    assert_int_equal(tao_client_send(cl, id, 1, "x", 1), -ENOENT);
    tao_client_destroy(cl);
    close(hold);
}

/* A listener whose accept queue is full and never drained drops SYNs, so a
 * connect to it hangs: the connect timeout has to end it. */
static void connect_timeout(void **state)
{
    reset();
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 0), 0);
    getsockname(lfd, (struct sockaddr *)&a, &len);
    /* Fill the backlog (0 means one pending connection on Linux, plus
     * slack): plain non-blocking connects until one stays in SYN_SENT. */
    int fillers[8];
    for (int i = 0; i < 8; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fillers[i], (struct sockaddr *)&a, sizeof a);
    }
    usleep(100 * 1000);

    tao_client_config_t cfg = {.connect_timeout_ms = 300};
    tao_client_t *cl = client(&cfg);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
    uint64_t t0 = t_now_ms();
    tao_client_connect(cl, addr, NULL);
    assert_true(T_WAIT(atomic_load(&errors_timeout) == 1, 5000));
    uint64_t took = t_now_ms() - t0;
    assert_true(took >= 300);
    assert_true(took < 3000);
    assert_true(T_WAIT(atomic_load(&closes) == 1, 5000));
    assert_int_equal(atomic_load(&connects), 0);
    tao_client_destroy(cl);
    for (int i = 0; i < 8; i++)
        close(fillers[i]);
    close(lfd);
}

/* The server goes away and comes back on the same port: the client backs
 * off with growing delays, reconnects, and on_connect runs again. */
static void reconnect_with_backoff(void **state)
{
    reset();
    /* One loop: a server's loops stop one by one, and while a slow one
     * still listens, a reconnect could reach it after another has closed
     * the connection. One loop shuts its listener before it closes any
     * connection, so every attempt while it is down is refused. */
    tao_server_t *srv = echo_server_loops("127.0.0.1:0", 1);
    int port = tao_server_port(srv);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);

    tao_client_config_t cfg = {
        .reconnect = true, .reconnect_initial_ms = 40, .reconnect_max_ms = 2000};
    tao_client_t *cl = client(&cfg);
    int64_t id = tao_client_connect(cl, addr, NULL);
    assert_true(T_WAIT(tao_client_connected(cl, id), 5000));
    assert_int_equal(tao_client_send(cl, id, 1, "hello, world", 12), 0);
    assert_true(T_WAIT(atomic_load(&replies) == 1, 5000));

    tao_server_destroy(srv);
    assert_true(T_WAIT(atomic_load(&errors_lost) == 1, 5000));
    /* While it is down: sends fail clearly, attempts are refused. */
    assert_true(T_WAIT(!tao_client_connected(cl, id), 5000));
    assert_int_equal(tao_client_send(cl, id, 1, "x", 1), -ENOTCONN);
    assert_true(T_WAIT(atomic_load(&errors_refused) >= 5, 10000));
    /* Backoff grows: after the fourth refusal the delay is 320 to 640 ms
     * (40 ms doubled four times, half of it random), so the fifth comes at
     * least 160 ms later, where without growth it would come in 40. The
     * times are the loop's own, so a late test thread cannot shrink the
     * gap; a late loop only widens it. */
    pthread_mutex_lock(&ev_lock);
    uint64_t gap = refused_times[4] - refused_times[3];
    pthread_mutex_unlock(&ev_lock);
    print_message("fifth refusal %llu ms after the fourth\n", (unsigned long long)gap);
    assert_true(gap >= 160);

    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    srv = echo_server_loops(listen, 1);
    assert_true(T_WAIT(atomic_load(&connects) == 2, 10000));
    assert_true(T_WAIT(tao_client_connected(cl, id), 5000));
    assert_int_equal(tao_client_send(cl, id, 1, "hello, world", 12), 0);
    assert_true(T_WAIT(atomic_load(&replies) == 2, 5000));
    assert_int_equal(atomic_load(&closes), 0); /* the same connection all along */

    /* The user's own close never reconnects. */
    assert_int_equal(tao_client_close(cl, id), 0);
    assert_true(T_WAIT(atomic_load(&closes) == 1, 5000));
    usleep(300 * 1000);
    assert_int_equal(atomic_load(&connects), 2);
    tao_client_destroy(cl);
    tao_server_destroy(srv);
}

static void reconnect_gives_up(void **state)
{
    reset();
    int hold = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    assert_int_equal(bind(hold, (struct sockaddr *)&a, sizeof a), 0);
    getsockname(hold, (struct sockaddr *)&a, &len);
    tao_client_config_t cfg = {
        .reconnect = true, .reconnect_initial_ms = 10, .reconnect_attempts = 3};
    tao_client_t *cl = client(&cfg);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
    tao_client_connect(cl, addr, NULL);
    assert_true(T_WAIT(atomic_load(&closes) == 1, 10000));
    assert_int_equal(atomic_load(&errors_refused), 4); /* the first try and 3 retries */
    assert_int_equal(atomic_load(&errors_timeout), 1); /* "giving up" */
    tao_client_destroy(cl);
    close(hold);
}

static void many_connections_one_loop(void **state)
{
    enum { N = 2000 };
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 2 * N + 200) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < 2 * N + 200)
            skip();
    }
    reset();
    tao_server_t *srv = echo_server("127.0.0.1:0");
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", tao_server_port(srv));
    tao_client_config_t cfg = {.loops = 1};
    tao_client_t *cl = client(&cfg);
    static int64_t ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = tao_client_connect(cl, addr, NULL);
    assert_true(T_WAIT(atomic_load(&connects) == N, 20000));
    for (int i = 0; i < N; i++)
        assert_int_equal(tao_client_send(cl, ids[i], 1, "hello, world", 12), 0);
    assert_true(T_WAIT(atomic_load(&replies) == N, 20000));
    assert_int_equal(atomic_load(&bad_replies), 0);
    tao_client_stop(cl, 0);
    tao_client_wait(cl);
    assert_int_equal(atomic_load(&closes), N);
    tao_client_destroy(cl);
    tao_server_destroy(srv);
}

/* A program that is both: the client runs on the server's own loops. */
static void shared_loops(void **state)
{
    reset();
    tao_server_t *srv = echo_server("127.0.0.1:0");
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", tao_server_port(srv));
    tao_client_config_t cfg = {.server = srv};
    tao_client_t *cl = client(&cfg);
    int64_t id = tao_client_connect(cl, addr, NULL);
    assert_true(T_WAIT(tao_client_connected(cl, id), 5000));
    for (int i = 0; i < 100; i++)
        assert_int_equal(tao_client_send(cl, id, 1, "hello, world", 12), 0);
    assert_true(T_WAIT(atomic_load(&replies) == 100, 5000));
    tao_client_destroy(cl);
    assert_int_equal(atomic_load(&closes), 1);
    tao_server_destroy(srv);
}

int main(void)
{
    t_require_backend();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(echo_v4_and_v6),
        cmocka_unit_test(golden_bytes_on_the_wire),
        cmocka_unit_test(refused_then_gone),
        cmocka_unit_test(connect_timeout),
        cmocka_unit_test(reconnect_with_backoff),
        cmocka_unit_test(reconnect_gives_up),
        cmocka_unit_test(many_connections_one_loop),
        cmocka_unit_test(shared_loops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
