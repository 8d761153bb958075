/* Tests for engine/conn.c's closing states: every graceful close ends, whatever the peer
 * does, over 127.0.0.1 with the server in this process.
 *
 *   - a handler queues more than the socket buffers hold and closes the
 *     connection; the client never reads: after close_timeout_ms the
 *     connection is aborted (the client sees an RST, not a FIN), on_close
 *     runs and the server holds nothing for it any more;
 *   - a client that writes 200,000 requests and never reads, under an idle
 *     timeout: it is let go (on_close) soon after the timeout, not when the
 *     client goes away.
 *
 * Each runs with handlers inline and on worker threads. */
#include "util/t_util.h"
#include "util/t_net.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define T_ECHO 1
#define T_FLOOD_CLOSE 2
#define FLOOD_LEN 65536

static atomic_int closes, timeouts, other_errors;

static void on_echo(tao_conn_t *c, const tao_msg_t *m)
{
    tao_conn_send(c, m->type, m->payload, m->len);
}

/* Queue until the queue says no, then close gracefully. */
static void on_flood_close(tao_conn_t *c, const tao_msg_t *m)
{
    uint8_t *buf = calloc(1, FLOOD_LEN);
    while (buf && tao_conn_send(c, T_FLOOD_CLOSE, buf, FLOOD_LEN) == 0)
        ;
    free(buf);
    tao_conn_close(c);
}

static void on_close(tao_conn_t *c)
{
    atomic_fetch_add(&closes, 1);
}

static void on_error(tao_server_t *srv, tao_conn_t *c, int err, const char *what)
{
    if (err == -ETIMEDOUT)
        atomic_fetch_add(&timeouts, 1);
    else
        atomic_fetch_add(&other_errors, 1);
}

static tao_server_t *start(tao_server_config_t *cfg)
{
    atomic_store(&closes, 0);
    atomic_store(&timeouts, 0);
    atomic_store(&other_errors, 0);
    cfg->workers = t_workers;
    cfg->loops = 1;
    cfg->on_close = on_close;
    cfg->on_error = on_error;
    tao_server_t *srv = t_server_create(cfg);
    assert_int_equal(tao_server_handle(srv, T_ECHO, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_handle(srv, T_FLOOD_CLOSE, on_flood_close, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);
    return srv;
}

/* The server let the connection go: on_close ran and nothing is queued. */
static void expect_released(tao_server_t *srv, unsigned within_ms)
{
    assert_true(T_WAIT(atomic_load(&closes) == 1, within_ms));
    assert_true(T_WAIT(tao_server_conn_count(srv) == 0, 5000));
    tao_stats_t st;
    tao_server_stats(srv, &st);
    assert_int_equal(st.queued_bytes, 0);
    assert_int_equal(st.conns_closed, 1);
}

static void close_deadline_aborts_non_reader(void **state)
{
    tao_server_config_t cfg = {.close_timeout_ms = 1000, .max_frame = FLOOD_LEN};
    tao_server_t *srv = start(&cfg);
    int fd = t_connect(tao_server_port(srv));
    uint64_t t0 = t_now_ms();
    t_send_frame(fd, T_FLOOD_CLOSE, NULL, 0);
    /* Generous: the deadline is 1 s; a loaded machine may take longer to
     * get there, but not 20 times longer. */
    expect_released(srv, 20000);
    uint64_t dt = t_now_ms() - t0;
    print_message("released %llu ms after the close\n", (unsigned long long)dt);
    assert_true(dt >= 1000);
    assert_int_equal(atomic_load(&timeouts), 1);
    /* The client reads what reached it, then learns it was cut off. */
    size_t got = 0;
    assert_int_equal(t_wait_closed(fd, 10000, &got), 2);
    assert_true(got > 0);
    close(fd);
    tao_server_destroy(srv);
    assert_int_equal(atomic_load(&other_errors), 0);
}

/* A graceful close that the client does read completes with a FIN, every
 * byte delivered, before the deadline. */
static void close_read_in_time_ends_with_fin(void **state)
{
    tao_server_config_t cfg = {.close_timeout_ms = 30000, .max_frame = FLOOD_LEN};
    tao_server_t *srv = start(&cfg);
    int fd = t_connect(tao_server_port(srv));
    t_send_frame(fd, T_FLOOD_CLOSE, NULL, 0);
    size_t got = 0;
    assert_int_equal(t_wait_closed(fd, 30000, &got), 1);
    assert_int_equal(got % (8 + FLOOD_LEN), 0);
    assert_true(got >= 2 * (4u << 20)); /* twice the default high watermark */
    expect_released(srv, 10000);
    assert_int_equal(atomic_load(&timeouts), 0);
    close(fd);
    tao_server_destroy(srv);
    assert_int_equal(atomic_load(&other_errors), 0);
}

typedef struct writer {
    int fd;
    atomic_bool done;
} writer_t;

static void *write_requests(void *arg)
{
    writer_t *w = arg;
    uint8_t buf[64 * 64];
    for (size_t off = 0; off < sizeof buf; off += 64)
        t_tlv(buf + off, T_ECHO, "0123456789012345678901234567890123456789012345678901234", 56);
    for (int i = 0; i < 200000 / 64; i++)
        if (send(w->fd, buf, sizeof buf, MSG_NOSIGNAL) != (ssize_t)sizeof buf)
            break;
    atomic_store(&w->done, true);
    return NULL;
}

static void idle_non_reader_released(void **state)
{
    tao_server_config_t cfg = {.idle_timeout_ms = 2000};
    tao_server_t *srv = start(&cfg);
    writer_t w = {.fd = t_connect(tao_server_port(srv))};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, write_requests, &w), 0);
    /* The client stays, never reading; the server must let it go. */
    expect_released(srv, 30000);
    assert_int_equal(atomic_load(&timeouts), 1);
    shutdown(w.fd, SHUT_RDWR); /* unblock a write still waiting */
    pthread_join(th, NULL);
    close(w.fd);
    tao_server_destroy(srv);
    assert_int_equal(atomic_load(&other_errors), 0);
}

int main(void)
{
    t_require_backend();
    const struct CMUnitTest tests[] = {
        T_BOTH(close_deadline_aborts_non_reader),
        T_BOTH(close_read_in_time_ends_with_fin),
        T_BOTH(idle_non_reader_released),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
