/* Tests for inherited listening sockets (engine/listener.c, server.c),
 * socket activation (engine/activation.c) and hand-over to a successor
 * (engine/handover.c), over 127.0.0.1 with the servers in this process.
 *
 *   - a server with three loops on one inherited socket echoes over many
 *     connections, and reports the socket's port;
 *   - after it stops, the socket still listens: a connection made while no
 *     server runs waits in its queue, and the next server on it serves it;
 *   - descriptors that are not listening TCP sockets are refused at start
 *     with -EINVAL, -ENOTSOCK or -EBADF;
 *   - tao_listen_fds with a faked environment, in a forked child: the
 *     descriptors from 3, close-on-exec, the variables unset; 0 when they
 *     name another process; -EINVAL and -ENOBUFS;
 *   - hand-over: while a client storm runs (connect, echo, close), server
 *     B takes server A's sockets and A stops accepting and drains: not one
 *     connection refused, reset or unanswered; a successor that gives up
 *     leaves B serving and still offering. */
#include "util/t_util.h"
#include "util/t_net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define T_ECHO 1

static void on_echo(tao_conn_t *conn, const tao_msg_t *msg)
{
    tao_conn_send(conn, msg->type, msg->payload, msg->len);
}

/* A TCP socket listening on 127.0.0.1, any port. */
static int listening(int *port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sin;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(listen(fd, 1024), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

static tao_server_t *start_on(const int *fds, unsigned n, unsigned loops, const char *handover,
                              tao_handover_cb on_handover)
{
    tao_server_config_t cfg = {.listen_fds = fds,
                               .listen_fd_count = n,
                               .loops = loops,
                               .workers = t_workers,
                               .handover = handover,
                               .on_handover = on_handover};
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, T_ECHO, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);
    return srv;
}

static bool still_listening(int fd)
{
    int acc = 0;
    socklen_t len = sizeof acc;
    return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) == 0 && acc == 1;
}

/* ---- an inherited socket ------------------------------------------------------- */

#define CONNS 48

static void test_inherited(void **state)
{
    int port, lfd = listening(&port);
    tao_server_t *srv = start_on(&lfd, 1, 3, NULL, NULL);
    assert_int_equal(tao_server_port(srv), port);
    int fds[CONNS];
    for (int i = 0; i < CONNS; i++)
        fds[i] = t_connect(port);
    for (int i = 0; i < CONNS; i++)
        t_echo_once(fds[i], T_ECHO, (uint32_t)i);
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    tao_stats_t st;
    tao_server_stats(srv, &st);
    assert_int_equal(st.conns_accepted, CONNS);
    tao_server_stop(srv, 0);
    tao_server_wait(srv);
    tao_server_destroy(srv);

    /* Nobody serves now, yet the socket listens: the kernel completes this
     * connection and queues it for whoever accepts next. */
    assert_true(still_listening(lfd));
    int early = t_connect(port);
    uint8_t out[16];
    t_fill(out, sizeof out, 7);
    t_send_frame(early, T_ECHO, out, sizeof out);

    srv = start_on(&lfd, 1, 2, NULL, NULL);
    uint8_t *in;
    int32_t type;
    size_t len;
    assert_int_equal(t_read_frame(early, &type, &in, &len, 10000), 0);
    assert_int_equal(len, sizeof out);
    assert_memory_equal(in, out, sizeof out);
    free(in);
    t_echo_once(early, T_ECHO, 8);
    close(early);
    tao_server_stop(srv, 0);
    tao_server_wait(srv);
    tao_server_destroy(srv);
    assert_true(still_listening(lfd));
    close(lfd);
}

/* ---- bad descriptors ------------------------------------------------------------- */

static int start_error(int fd)
{
    tao_server_config_t cfg = {.listen_fds = &fd, .listen_fd_count = 1, .loops = 2};
    tao_server_t *srv = t_server_create(&cfg);
    int rc = tao_server_start(srv);
    tao_server_destroy(srv);
    return rc;
}

static void test_bad_fds(void **state)
{
    int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int idle = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0); /* never listened */
    int unix_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    struct sockaddr_un {
        sa_family_t sun_family;
        char sun_path[108];
    } sun = {.sun_family = AF_UNIX};
    assert_int_equal(bind(unix_fd, (struct sockaddr *)&sun, sizeof(sa_family_t)), 0); /* autobind */
    assert_int_equal(listen(unix_fd, 4), 0);

    assert_int_equal(start_error(udp), -EINVAL);
    assert_int_equal(start_error(idle), -EINVAL);
    assert_int_equal(start_error(unix_fd), -EINVAL);
    assert_int_equal(start_error(p[0]), -ENOTSOCK);
    int closed = 1000; /* above anything the server opens itself */
    assert_int_equal(fcntl(closed, F_GETFD), -1);
    assert_int_equal(start_error(closed), -EBADF);

    tao_server_config_t cfg = {.listen_fd_count = 1};
    tao_server_t *srv;
    assert_int_equal(tao_server_create(&cfg, &srv), -EINVAL);
    assert_null(srv);
    close(udp);
    close(idle);
    close(unix_fd);
    close(p[0]);
    close(p[1]);
}

/* ---- tao_listen_fds ----------------------------------------------------------------- */

static int env_checks(void)
{
    char pid[32];
    int fds[4], fl;
    snprintf(pid, sizeof pid, "%d", (int)getpid());
    if (tao_listen_fds(fds, 4) != 0)
        return 10; /* not activated */

    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "2", 1);
    setenv("LISTEN_FDNAMES", "a:b", 1);
    if (tao_listen_fds(fds, 4) != 2 || fds[0] != 3 || fds[1] != 4)
        return 11;
    if ((fl = fcntl(3, F_GETFD)) < 0 || !(fl & FD_CLOEXEC))
        return 12;
    if (getenv("LISTEN_PID") || getenv("LISTEN_FDS") || getenv("LISTEN_FDNAMES"))
        return 13;

    setenv("LISTEN_PID", "1", 1); /* for another process */
    setenv("LISTEN_FDS", "2", 1);
    if (tao_listen_fds(fds, 4) != 0 || getenv("LISTEN_PID"))
        return 14;
    setenv("LISTEN_PID", "12x", 1);
    setenv("LISTEN_FDS", "1", 1);
    if (tao_listen_fds(fds, 4) != -EINVAL)
        return 15;
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "2", 1);
    if (tao_listen_fds(fds, 1) != -ENOBUFS)
        return 16;

    /* And a server serves on what it got. */
    setenv("LISTEN_PID", pid, 1);
    setenv("LISTEN_FDS", "1", 1);
    if (tao_listen_fds(fds, 4) != 1)
        return 17;
    tao_server_config_t cfg = {.listen_fds = fds, .listen_fd_count = 1, .loops = 2};
    tao_server_t *srv;
    if (tao_server_create(&cfg, &srv) < 0 || tao_server_handle(srv, T_ECHO, on_echo, NULL, NULL) ||
        tao_server_start(srv) < 0)
        return 18;
    int port = tao_server_port(srv);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    uint8_t frame[8 + 4], back[sizeof frame];
    size_t n = t_tlv(frame, T_ECHO, "ping", 4);
    if (connect(c, (struct sockaddr *)&sin, sizeof sin) < 0 || write(c, frame, n) != (ssize_t)n ||
        t_read_exact(c, back, n, 10000) != 0 || memcmp(back, frame, n) != 0)
        return 19;
    close(c);
    tao_server_destroy(srv);
    return 0;
}

static void test_listen_fds(void **state)
{
    int port, lfd = listening(&port);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* What systemd hands over: the sockets from descriptor 3 on. */
        int other = socket(AF_INET, SOCK_STREAM, 0);
        if (dup2(lfd, 3) < 0 || dup2(other, 4) < 0)
            _exit(2);
        _exit(env_checks());
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    close(lfd);
}

/* ---- hand-over ------------------------------------------------------------------------ */

/* Clients that connect, echo one frame, check it and close, until told to
 * stop; every failure is counted. */
typedef struct storm {
    int port;
    atomic_bool stop;
    atomic_uint ok, refused, reset, bad;
    pthread_t thread[3];
} storm_t;

static int storm_one(storm_t *s, uint32_t seed)
{
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = htons((uint16_t)s->port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    uint8_t out[8 + 24], back[sizeof out];
    uint8_t payload[24];
    t_fill(payload, sizeof payload, seed);
    size_t n = t_tlv(out, T_ECHO, payload, sizeof payload);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -EMFILE;
    int rc = connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ? -errno : 0;
    if (rc == 0 && send(fd, out, n, MSG_NOSIGNAL) != (ssize_t)n)
        rc = -errno;
    if (rc == 0)
        rc = t_read_exact(fd, back, n, 20000);
    if (rc == 0 && memcmp(back, out, n) != 0)
        rc = -EBADMSG;
    close(fd);
    return rc;
}

static void *storm_main(void *arg)
{
    storm_t *s = arg;
    for (uint32_t i = 0; !atomic_load(&s->stop); i++) {
        int rc = storm_one(s, i);
        if (rc == 0)
            atomic_fetch_add(&s->ok, 1);
        else if (rc == -ECONNREFUSED)
            atomic_fetch_add(&s->refused, 1);
        else if (rc == -ECONNRESET || rc == -EPIPE)
            atomic_fetch_add(&s->reset, 1);
        else
            atomic_fetch_add(&s->bad, 1);
    }
    return NULL;
}

static void storm_start(storm_t *s, int port)
{
    memset(s, 0, sizeof *s);
    s->port = port;
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&s->thread[i], NULL, storm_main, s), 0);
}

static void storm_stop(storm_t *s)
{
    atomic_store(&s->stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(s->thread[i], NULL);
}

static unsigned storm_ok(storm_t *s)
{
    return atomic_load(&s->ok);
}

static atomic_int handed_over;

static void on_handover(tao_server_t *srv)
{
    atomic_fetch_add(&handed_over, 1);
    tao_server_stop(srv, 0);
}

static uint64_t accepted(tao_server_t *srv)
{
    tao_stats_t st;
    tao_server_stats(srv, &st);
    return st.conns_accepted;
}

static void test_handover(void **state)
{
    char dir[] = "/tmp/tao-handover-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/ho.sock", dir);
    atomic_store(&handed_over, 0);

    /* A binds its own sockets, one per loop, and offers them. */
    tao_server_config_t cfg = {
        .loops = 2, .workers = t_workers, .handover = path, .on_handover = on_handover};
    tao_server_t *a = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(a, T_ECHO, on_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_start(a), 0);
    int port = tao_server_port(a);

    storm_t s;
    storm_start(&s, port);
    assert_true(T_WAIT(storm_ok(&s) >= 100, 30000));

    /* B takes them, serves, and only then A stops accepting. */
    int fds[TAO_HANDOVER_MAX_FDS];
    tao_handover_t *h;
    int n = tao_handover_take(path, fds, TAO_HANDOVER_MAX_FDS, &h);
    assert_int_equal(n, 2);
    tao_server_t *b = start_on(fds, (unsigned)n, 2, path, on_handover);
    assert_int_equal(tao_server_port(b), port);
    assert_int_equal(tao_handover_done(h), 0);
    assert_true(T_WAIT(atomic_load(&handed_over) == 1, 10000));
    tao_server_wait(a);
    uint64_t a_total = accepted(a);
    tao_server_destroy(a);

    unsigned before = storm_ok(&s);
    assert_true(T_WAIT(storm_ok(&s) >= before + 100, 30000));
    assert_true(accepted(b) > 0);

    /* A successor that gives up: B keeps serving, and offering. */
    int more[TAO_HANDOVER_MAX_FDS];
    n = tao_handover_take(path, more, TAO_HANDOVER_MAX_FDS, &h);
    assert_int_equal(n, 2);
    tao_handover_abort(h);
    for (int i = 0; i < n; i++)
        close(more[i]);
    before = storm_ok(&s);
    assert_true(T_WAIT(storm_ok(&s) >= before + 100, 30000));
    n = tao_handover_take(path, more, TAO_HANDOVER_MAX_FDS, &h);
    assert_int_equal(n, 2);
    tao_handover_abort(h);
    for (int i = 0; i < n; i++)
        close(more[i]);
    assert_int_equal(atomic_load(&handed_over), 1);

    storm_stop(&s);
    fprintf(stderr, "storm: %u echoed (%llu by A), %u refused, %u reset, %u other\n",
            atomic_load(&s.ok), (unsigned long long)a_total, atomic_load(&s.refused),
            atomic_load(&s.reset), atomic_load(&s.bad));
    assert_int_equal(atomic_load(&s.refused), 0);
    assert_int_equal(atomic_load(&s.reset), 0);
    assert_int_equal(atomic_load(&s.bad), 0);
    tao_server_stop(b, 0);
    tao_server_wait(b);
    tao_server_destroy(b);
    for (int i = 0; i < 2; i++)
        close(fds[i]);

    /* Gone with B: nothing offers there now. */
    struct stat st;
    assert_int_equal(stat(path, &st), -1);
    assert_int_equal(tao_handover_take(path, more, TAO_HANDOVER_MAX_FDS, &h), -ENOENT);
    rmdir(dir);
}

int main(void)
{
    t_require_backend();
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        T_BOTH(test_inherited),
        cmocka_unit_test(test_bad_fds),
        cmocka_unit_test(test_listen_fds),
        T_BOTH(test_handover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
