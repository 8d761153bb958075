/* Tests for engine/listener.c: the connection limit and the accept backoff
 * when the process runs out of descriptors, over 127.0.0.1 with the server
 * in this process.
 *
 *   - max_conns = 4: four connections are served, a fifth is closed at once
 *     (no data, counted as refused), and once one of the four goes a new
 *     one is served;
 *   - EMFILE: with no descriptor left, accept fails, on_error hears -EMFILE
 *     for the server (conn == NULL) and the loop backs off; once descriptors
 *     are back, every waiting client is accepted and served. */
#include "util/t_util.h"
#include "util/t_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define T_ECHO 1

static atomic_uint closes, emfile_errors, other_errors;

static void reset_counters(void)
{
    atomic_store(&closes, 0);
    atomic_store(&emfile_errors, 0);
    atomic_store(&other_errors, 0);
}

static void on_echo(tao_conn_t *conn, const tao_msg_t *msg)
{
    tao_conn_send(conn, msg->type, msg->payload, msg->len);
}

static void on_close(tao_conn_t *conn)
{
    atomic_fetch_add(&closes, 1);
}

static void on_error(tao_server_t *srv, tao_conn_t *conn, int err, const char *what)
{
    if ((err == -EMFILE || err == -ENFILE) && conn == NULL)
        atomic_fetch_add(&emfile_errors, 1);
    else
        atomic_fetch_add(&other_errors, 1);
}

static uint64_t refused(const tao_server_t *srv)
{
    tao_stats_t st;
    tao_server_stats(srv, &st);
    return st.conns_refused;
}

/* ---- max_conns ------------------------------------------------------------- */

#define MAX_CONNS 4

static void test_max_conns(void **state)
{
    reset_counters();
    tao_server_config_t cfg = {.max_conns = MAX_CONNS, .on_close = on_close};
    tao_server_t *srv = t_server_create(&cfg); /* two loops: the limit is global */
    assert_int_equal(tao_server_handle(srv, T_ECHO, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);
    int port = tao_server_port(srv);

    int fds[MAX_CONNS];
    for (int i = 0; i < MAX_CONNS; i++) {
        fds[i] = t_connect(port);
        t_echo_once(fds[i], T_ECHO, (uint32_t)i);
    }
    assert_int_equal(tao_server_conn_count(srv), MAX_CONNS);

    /* One too many: closed at once, without a byte. */
    int extra = t_connect(port);
    size_t junk = 0;
    uint64_t t0 = t_now_ms();
    int how = t_wait_closed(extra, 3000, &junk);
    uint64_t took = t_now_ms() - t0;
    assert_true(how == 1 || how == 2);
    assert_true(took < 1000);
    assert_int_equal(junk, 0);
    close(extra);
    assert_true(T_WAIT(refused(srv) == 1, 2000));
    tao_stats_t st;
    tao_server_stats(srv, &st);
    assert_int_equal(st.conns_accepted, MAX_CONNS);
    assert_int_equal(atomic_load(&closes), 0); /* never became a connection */

    /* The four are unaffected. */
    for (int i = 0; i < MAX_CONNS; i++)
        t_echo_once(fds[i], T_ECHO, 100u + (uint32_t)i);

    /* One leaves: there is room again. */
    close(fds[0]);
    assert_true(T_WAIT(tao_server_conn_count(srv) == MAX_CONNS - 1, 5000));
    assert_true(T_WAIT(atomic_load(&closes) == 1, 5000));
    fds[0] = t_connect(port);
    t_echo_once(fds[0], T_ECHO, 200);
    assert_int_equal(tao_server_conn_count(srv), MAX_CONNS);
    assert_int_equal(refused(srv), 1);

    for (int i = 0; i < MAX_CONNS; i++)
        close(fds[i]);
    assert_true(T_WAIT(atomic_load(&closes) == MAX_CONNS + 1, 5000));
    tao_server_stop(srv, 0);
    tao_server_wait(srv);
    tao_server_destroy(srv);
}

/* ---- EMFILE backoff --------------------------------------------------------- */

#define EM_CLIENTS 4
#define EM_HEADROOM 32 /* descriptors left for the server's start */

static struct rlimit saved_nofile;
static bool nofile_lowered;
static int fillers[EM_HEADROOM + 1];
static int nfillers;

/* Give the descriptors back and restore the limit, also when a check
 * failed while they were gone. */
static void restore_nofile(void)
{
    while (nfillers > 0)
        close(fillers[--nfillers]);
    if (nofile_lowered)
        setrlimit(RLIMIT_NOFILE, &saved_nofile);
    nofile_lowered = false;
}

static int teardown_nofile(void **state)
{
    restore_nofile();
    return 0;
}

static void test_emfile_backoff(void **state)
{
    reset_counters();
    tao_server_config_t cfg = {
        .loops = 1, .workers = TAO_WORKERS_INLINE, .on_close = on_close, .on_error = on_error};
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, T_ECHO, on_echo, NULL, NULL), 0);

    /* The client sockets first: connecting them later needs no descriptor. */
    int cl[EM_CLIENTS];
    for (int i = 0; i < EM_CLIENTS; i++) {
        cl[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(cl[i] >= 0);
    }

    /* The kernel takes an accept's descriptor limit when the accept is
     * submitted, so the limit goes down before the server starts, with
     * room for what start opens; whatever start leaves is then taken here,
     * so that no descriptor is left below the limit. */
    int lowest = fcntl(cl[0], F_DUPFD_CLOEXEC, 0);
    assert_true(lowest >= 0);
    close(lowest);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved_nofile), 0);
    struct rlimit low = saved_nofile;
    low.rlim_cur = (rlim_t)lowest + EM_HEADROOM;
    if (low.rlim_cur > saved_nofile.rlim_max)
        skip();
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    nofile_lowered = true;
    assert_int_equal(tao_server_start(srv), 0);
    int port = tao_server_port(srv);
    /* An accept with no connection waiting still holds a descriptor for a
     * moment (the kernel reserves one before it looks), which could leave
     * a hole in what is taken below. A first client, served, shows the
     * accept has settled into waiting; it stays connected. */
    int probe = t_connect(port);
    t_echo_once(probe, T_ECHO, 400);
    int fd;
    while (nfillers <= EM_HEADROOM && (fd = fcntl(cl[0], F_DUPFD_CLOEXEC, 0)) >= 0)
        fillers[nfillers++] = fd;
    assert_int_equal(errno, EMFILE);

    /* From here until the limit is restored, this test opens nothing. */
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    uint8_t frames[EM_CLIENTS][8 + 16];
    for (int i = 0; i < EM_CLIENTS; i++) {
        uint8_t payload[16];
        t_fill(payload, sizeof payload, 500u + (uint32_t)i);
        t_tlv(frames[i], T_ECHO, payload, sizeof payload);
        assert_int_equal(connect(cl[i], (struct sockaddr *)&a, sizeof a), 0);
        t_write_all(cl[i], frames[i], sizeof frames[i]);
    }
    assert_true(T_WAIT(atomic_load(&emfile_errors) > 0, 5000));
    /* Backing off, not giving up: it tried again and failed again. */
    assert_true(T_WAIT(atomic_load(&emfile_errors) >= 2, 5000));
    tao_stats_t st;
    tao_server_stats(srv, &st);
    assert_true(st.accept_backoffs >= 2);
    assert_int_equal(st.conns_accepted, 1);
    assert_int_equal(tao_server_conn_count(srv), 1);

    restore_nofile();

    /* Accepting resumed: every waiting client is served. */
    for (int i = 0; i < EM_CLIENTS; i++) {
        uint8_t back[sizeof frames[i]];
        assert_int_equal(t_read_exact(cl[i], back, sizeof back, 5000), 0);
        assert_memory_equal(back, frames[i], sizeof back);
    }
    tao_server_stats(srv, &st);
    assert_int_equal(st.conns_accepted, 1 + EM_CLIENTS);
    assert_int_equal(atomic_load(&other_errors), 0);
    t_echo_once(probe, T_ECHO, 401);

    for (int i = 0; i < EM_CLIENTS; i++)
        close(cl[i]);
    close(probe);
    assert_true(T_WAIT(atomic_load(&closes) == 1 + EM_CLIENTS, 5000));
    tao_server_stop(srv, 0);
    tao_server_wait(srv);
    tao_server_destroy(srv);
}

int main(void)
{
    t_require_backend();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_conns),
        cmocka_unit_test_teardown(test_emfile_backoff, teardown_nofile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
