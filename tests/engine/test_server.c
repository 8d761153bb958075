/* The server object over real sockets: golden echo, lifecycle errors,
 * on_connect refusal, on_close exactly once, stats. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/t_net.h"
#include "util/t_util.h"

static atomic_int connects, closes, refusals_left;
static uint64_t closed_ids[256];
static atomic_int nclosed_ids;

static void on_echo(tao_conn_t *c, const tao_msg_t *m)
{
    tao_conn_send(c, m->type, m->payload, m->len);
}

static void on_bye(tao_conn_t *c, const tao_msg_t *m)
{
    tao_conn_send(c, 1, "bye", 3);
    tao_conn_close(c);
}

static void on_kill(tao_conn_t *c, const tao_msg_t *m)
{
    tao_conn_abort(c);
}

static int on_connect(tao_conn_t *c)
{
    atomic_fetch_add(&connects, 1);
    if (atomic_load(&refusals_left) > 0) {
        atomic_fetch_sub(&refusals_left, 1);
        return -1;
    }
    return 0;
}

static atomic_int peer_missing;

static void on_close(tao_conn_t *c)
{
    struct sockaddr_storage ss;
    socklen_t len;
    /* The peer's address is still there in on_close. */
    if (tao_conn_peer(c, &ss, &len) != 0 || ss.ss_family != AF_INET)
        atomic_fetch_add(&peer_missing, 1);
    atomic_fetch_add(&closes, 1);
    int i = atomic_fetch_add(&nclosed_ids, 1);
    if (i < 256)
        closed_ids[i] = tao_conn_id(c);
}

static tao_server_t *echo_server(void)
{
    tao_server_config_t cfg = {.on_connect = on_connect, .on_close = on_close};
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, 1, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_handle(srv, 2, on_bye, NULL, NULL), 0);
    assert_int_equal(tao_server_handle(srv, 3, on_kill, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);
    return srv;
}

static void reset_counters(void)
{
    atomic_store(&connects, 0);
    atomic_store(&closes, 0);
    atomic_store(&refusals_left, 0);
    atomic_store(&nclosed_ids, 0);
}

static void golden_echo(void **state)
{
    static const uint8_t golden[] = {0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 'h', 'e',
                                     'l',  'l',  'o',  ',',  ' ',  'w',  'o',  'r',  'l', 'd'};
    static const uint8_t empty[] = {0x01, 0, 0, 0, 0, 0, 0, 0};
    uint8_t got[sizeof golden];
    tao_server_t *srv = echo_server();
    int fd = t_connect(tao_server_port(srv));

    t_write_all(fd, golden, sizeof golden);
    assert_int_equal(t_read_exact(fd, got, sizeof golden, 5000), 0);
    assert_memory_equal(got, golden, sizeof golden);
    t_write_all(fd, empty, sizeof empty);
    assert_int_equal(t_read_exact(fd, got, sizeof empty, 5000), 0);
    assert_memory_equal(got, empty, sizeof empty);
    close(fd);

    tao_stats_t st;
    assert_true(T_WAIT((tao_server_stats(srv, &st), st.conns_closed == 1), 5000));
    assert_int_equal(st.frames_in, 2);
    assert_int_equal(st.frames_out, 2);
    assert_int_equal(st.bytes_in, sizeof golden + sizeof empty);
    assert_int_equal(st.bytes_out, sizeof golden + sizeof empty);
    tao_server_destroy(srv);
}

static void api_errors(void **state)
{
    tao_server_t *srv;
    tao_server_config_t bad = {.listen = "not an address"};
    assert_int_equal(tao_server_create(&bad, &srv), -EINVAL);
    tao_server_config_t badbufs = {.listen = "127.0.0.1:0", .buf_count = 3};
    assert_int_equal(tao_server_create(&badbufs, &srv), -EINVAL);

    srv = echo_server();
    int port = tao_server_port(srv);
    assert_true(port > 0);
    assert_int_equal(tao_server_handle(srv, 9, on_echo, NULL, NULL), -EBUSY);
    assert_int_equal(tao_server_start(srv), -EBUSY);

    /* A second server on a port that is taken fails, although both use
     * SO_REUSEPORT, which alone would let them share it silently. */
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    tao_server_config_t cfg = {.listen = addr, .loops = 1};
    tao_server_t *other;
    assert_int_equal(tao_server_create(&cfg, &other), 0);
    assert_int_equal(tao_server_port(other), -ENOTCONN);
    assert_int_equal(tao_server_start(other), -EADDRINUSE);
    tao_server_destroy(other);
    tao_server_destroy(srv);

    tao_server_config_t dup = {.listen = "127.0.0.1:0"};
    assert_int_equal(tao_server_create(&dup, &srv), 0);
    assert_int_equal(tao_server_handle(srv, 1, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_handle(srv, 1, on_echo, NULL, NULL), -EEXIST);
    tao_server_destroy(srv); /* never started */
}

static void addr_in_use(void **state)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 1), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);

    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
    tao_server_config_t cfg = {.listen = addr, .loops = 2};
    tao_server_t *srv;
    assert_int_equal(tao_server_create(&cfg, &srv), 0);
    assert_int_equal(tao_server_start(srv), -EADDRINUSE);
    tao_server_destroy(srv);
    close(fd);
}

static void refuse_and_close_once(void **state)
{
    enum { N = 40 };
    int fds[N];
    reset_counters();
    atomic_store(&refusals_left, 5);
    tao_server_t *srv = echo_server();
    int port = tao_server_port(srv);

    /* The first 5 are refused by on_connect: closed with no data. */
    for (int i = 0; i < 5; i++) {
        fds[i] = t_connect(port);
        assert_int_not_equal(t_wait_closed(fds[i], 5000, NULL), 0);
    }
    /* Then: client close, server close after a reply, server abort. */
    for (int i = 5; i < N; i++)
        fds[i] = t_connect(port);
    for (int i = 5; i < N; i++) {
        int kind = i % 3;
        if (kind == 0) {
            close(fds[i]);
            fds[i] = -1;
        } else if (kind == 1) {
            int32_t type;
            uint8_t *p;
            size_t len;
            t_send_frame(fds[i], 2, NULL, 0);
            assert_int_equal(t_read_frame(fds[i], &type, &p, &len, 5000), 0);
            assert_int_equal(len, 3);
            assert_memory_equal(p, "bye", 3);
            free(p);
            assert_int_equal(t_wait_closed(fds[i], 5000, NULL), 1); /* FIN, not RST */
        } else {
            t_send_frame(fds[i], 3, NULL, 0);
            assert_int_equal(t_wait_closed(fds[i], 5000, NULL), 2); /* RST */
        }
    }
    assert_true(T_WAIT(atomic_load(&closes) == N, 5000));
    for (int i = 0; i < N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    usleep(50 * 1000);
    assert_int_equal(atomic_load(&closes), N);
    assert_int_equal(atomic_load(&connects), N);
    assert_int_equal(atomic_load(&peer_missing), 0);
    tao_stats_t st;
    tao_server_stats(srv, &st);
    assert_int_equal(st.conns_refused, 5);
    assert_int_equal(st.conns_open, 0);
    assert_int_equal(tao_server_conn_count(srv), 0);
    /* Joining the loops orders their writes to closed_ids before ours. */
    tao_server_destroy(srv);
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            assert_true(closed_ids[i] != closed_ids[j]);
}

/* Everything until the peer closes, NUL-terminated; returns its length. */
static size_t read_to_close(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

static void metrics_endpoint(void **state)
{
    tao_server_t *srv = echo_server();
    int fd = t_connect(tao_server_port(srv));
    t_send_frame(fd, 1, "hi", 2);
    uint8_t got[10];
    assert_int_equal(t_read_exact(fd, got, 10, 5000), 0);

    tao_server_t *m;
    assert_int_equal(tao_metrics_start(srv, "127.0.0.1:0", &m), 0);
    int hfd = t_connect(tao_server_port(m));
    /* Two requests, pipelined: the first keeps the connection, the second
     * closes it once answered. */
    const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    t_write_all(hfd, req, strlen(req));
    char resp[16384];
    size_t len = read_to_close(hfd, resp, sizeof resp);
    assert_non_null(strstr(resp, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(resp, "# TYPE tao_frames_in counter\ntao_frames_in 1\n"));
    assert_non_null(strstr(resp, "\ntao_conns_open 1\n"));
    assert_non_null(strstr(resp, "\ntao_backend_info{backend=\""));
    /* The second response starts where the first one's Content-Length ends. */
    const char *body = strstr(resp, "\r\n\r\n");
    const char *cl = strstr(resp, "Content-Length: ");
    assert_non_null(body);
    assert_non_null(cl);
    const char *second = body + 4 + strtol(cl + 16, NULL, 10);
    assert_true(second < resp + len);
    assert_memory_equal(second, "HTTP/1.1 200 OK\r\n", 17);
    assert_non_null(strstr(second, "Connection: close\r\n"));
    const char *body2 = strstr(second, "\r\n\r\n");
    const char *cl2 = strstr(second, "Content-Length: ");
    assert_int_equal(strtol(cl2 + 16, NULL, 10), (long)(len - (size_t)(body2 + 4 - resp)));
    close(hfd);

    /* Not HTTP: 400, and the close. */
    hfd = t_connect(tao_server_port(m));
    t_write_all(hfd, "NOT HTTP\r\n\r\n", 12);
    len = read_to_close(hfd, resp, sizeof resp);
    assert_non_null(strstr(resp, "HTTP/1.1 400 Bad Request\r\n"));

    char small[64];
    tao_stats_t st = {0};
    assert_int_equal(tao_stats_format(&st, small, sizeof small), -ENOSPC);
    close(hfd);
    close(fd);
    tao_server_destroy(m);
    tao_server_destroy(srv);
}

int main(void)
{
    t_require_backend();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(golden_echo),      cmocka_unit_test(api_errors),
        cmocka_unit_test(addr_in_use),      cmocka_unit_test(refuse_and_close_once),
        cmocka_unit_test(metrics_endpoint),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
