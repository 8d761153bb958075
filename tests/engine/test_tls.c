/* TLS over 127.0.0.1: Tao-C client and server with TLS 1.3 and 1.2,
 * resumption, OpenSSL's s_client and s_server as peers nobody here wrote,
 * and the bad inputs: plaintext, a truncated hello, a silent peer, a wrong
 * CA. Each failure closes only its own connection. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/t_net.h"
#include "util/t_util.h"

extern char **environ;

static char dir[256];
static char ca[300], other_ca[300], cert[300], key[300], ccert[300], ckey[300];
static atomic_int srv_errors, srv_timeouts, cli_errors, cli_connects, echoes, bad, resumed;
static char version[32];
static pthread_mutex_t version_lock = PTHREAD_MUTEX_INITIALIZER;

/* The version on_connect saw; on_connect runs on a loop thread. */
static void get_version(char *out, size_t cap)
{
    pthread_mutex_lock(&version_lock);
    snprintf(out, cap, "%s", version);
    pthread_mutex_unlock(&version_lock);
}

static void reset(void)
{
    atomic_store(&srv_errors, 0);
    atomic_store(&srv_timeouts, 0);
    atomic_store(&cli_errors, 0);
    atomic_store(&cli_connects, 0);
    atomic_store(&echoes, 0);
    atomic_store(&bad, 0);
    atomic_store(&resumed, 0);
}

static int make_certs(void **state)
{
    if (!tao_tls_available())
        return 0;
    const char *src = getenv("TAO_SOURCE_DIR");
    snprintf(dir, sizeof dir, "/tmp/tao-tls-test-%d", (int)getpid());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "bash %s/scripts/make-test-certs.sh %s >/dev/null", src ? src : ".",
             dir);
    if (system(cmd) != 0)
        return -1;
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(other_ca, sizeof other_ca, "%s/other-ca.pem", dir);
    snprintf(cert, sizeof cert, "%s/server.pem", dir);
    snprintf(key, sizeof key, "%s/server.key", dir);
    snprintf(ccert, sizeof ccert, "%s/client.pem", dir);
    snprintf(ckey, sizeof ckey, "%s/client.key", dir);
    return 0;
}

static int remove_certs(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- the server ----------------------------------------------------------- */

static void srv_echo(tao_conn_t *c, const tao_msg_t *m)
{
    tao_conn_send(c, m->type, m->payload, m->len);
}

static void srv_bye(tao_conn_t *c, const tao_msg_t *m)
{
    tao_conn_close(c);
}

static void srv_error(tao_server_t *s, tao_conn_t *c, int err, const char *what)
{
    atomic_fetch_add(&srv_errors, 1);
    if (err == -ETIMEDOUT)
        atomic_fetch_add(&srv_timeouts, 1);
}

/* handshake_ms 0 keeps the default (10 s): a handshake timeout only
 * bounds the peers that never finish, and a short one would also cut off
 * good clients on a loaded machine. */
static tao_server_t *tls_server(int max_version, unsigned handshake_ms)
{
    static tao_tls_config_t tls;
    tls = (tao_tls_config_t){.cert_file = cert,
                             .key_file = key,
                             .max_version = max_version,
                             .handshake_timeout_ms = handshake_ms,
                             .alpn = "tao,x"};
    tao_server_config_t cfg = {.tls = &tls, .on_error = srv_error};
    tao_server_t *srv = t_server_create(&cfg);
    assert_int_equal(tao_server_handle(srv, 1, srv_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_handle(srv, 2, srv_bye, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);
    return srv;
}

/* ---- the client -------------------------------------------------------------- */

typedef struct stream {
    uint32_t sent, got;
} stream_t;

static size_t frame_len(uint32_t i)
{
    return (i * 2654435761u) % 7 == 0 ? (i * 40503u) % 20000 : (i * 40503u) % 200;
}

static void fill(uint8_t *p, size_t len, uint32_t i)
{
    t_fill(p, len, i);
    if (len >= 4)
        memcpy(p, &i, 4);
}

static int cli_connect(tao_conn_t *c)
{
    const char *v = tao_conn_tls_version(c);
    pthread_mutex_lock(&version_lock);
    snprintf(version, sizeof version, "%s", v ? v : "?");
    pthread_mutex_unlock(&version_lock);
    if (tao_conn_tls_resumed(c))
        atomic_fetch_add(&resumed, 1);
    const char *alpn = tao_conn_tls_alpn(c);
    if (!alpn || strcmp(alpn, "tao") != 0)
        atomic_fetch_add(&bad, 1);
    atomic_fetch_add(&cli_connects, 1);
    return 0;
}

static void cli_echo(tao_conn_t *c, const tao_msg_t *m)
{
    stream_t *s = tao_conn_data(c);
    uint8_t buf[20000];
    size_t want = frame_len(s ? s->got : 0);
    if (s) {
        fill(buf, want, s->got);
        if (m->len != want || (want && memcmp(buf, m->payload, want) != 0))
            atomic_fetch_add(&bad, 1);
        s->got++;
    }
    atomic_fetch_add(&echoes, 1);
}

static void cli_error(tao_client_t *cl, tao_conn_t *c, int err, const char *what)
{
    atomic_fetch_add(&cli_errors, 1);
}

static tao_client_t *tls_client(const char *ca_file, int max_version)
{
    static tao_tls_config_t tls;
    tls = (tao_tls_config_t){
        .ca_file = ca_file, .server_name = "localhost", .max_version = max_version, .alpn = "tao"};
    tao_client_config_t cfg = {.tls = &tls, .on_connect = cli_connect, .on_error = cli_error};
    tao_client_t *cl;
    assert_int_equal(tao_client_create(&cfg, &cl), 0);
    assert_int_equal(tao_client_handle(cl, 1, cli_echo, NULL, NULL), 0);
    assert_int_equal(tao_client_start(cl), 0);
    return cl;
}

static void echo_run(int max_version, const char *want_version)
{
    enum { N = 10000 };
    reset();
    tao_server_t *srv = tls_server(max_version, 0);
    tao_client_t *cl = tls_client(ca, max_version);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", tao_server_port(srv));
    stream_t s = {0};
    int64_t id = tao_client_connect(cl, addr, &s);
    assert_true(T_WAIT(atomic_load(&cli_connects) == 1, 5000));
    char v[32];
    get_version(v, sizeof v);
    assert_string_equal(v, want_version);

    static uint8_t buf[20000];
    for (uint32_t i = 0; i < N; i++) {
        size_t len = frame_len(i);
        fill(buf, len, i);
        int rc;
        while ((rc = tao_client_send(cl, id, 1, buf, len)) == -EAGAIN)
            usleep(1000);
        assert_int_equal(rc, 0);
    }
    assert_true(T_WAIT(atomic_load(&echoes) == N, 30000));
    assert_int_equal(atomic_load(&bad), 0);
    assert_int_equal(atomic_load(&resumed), 0);
    tao_client_close(cl, id);
    assert_true(T_WAIT(tao_client_conn_count(cl) == 0, 5000));

    /* A second connection resumes the first one's session. */
    tao_client_connect(cl, addr, NULL);
    assert_true(T_WAIT(atomic_load(&cli_connects) == 2, 5000));
    assert_int_equal(atomic_load(&resumed), 1);
    tao_client_destroy(cl);
    assert_int_equal(atomic_load(&srv_errors), 0);
    tao_server_destroy(srv);
}

static void echo_tls13(void **state)
{
    if (!tao_tls_available())
        skip();
    echo_run(0, "TLSv1.3");
}

static void echo_tls12(void **state)
{
    if (!tao_tls_available())
        skip();
    echo_run(TAO_TLS_1_2, "TLSv1.2");
}

/* ---- OpenSSL as the peer ----------------------------------------------------- */

static void openssl_s_client(void **state)
{
    if (!tao_tls_available() || system("command -v openssl >/dev/null") != 0)
        skip();
    reset();
    tao_server_t *srv = tls_server(0, 0);
    char cmd[1024], out[300];
    snprintf(out, sizeof out, "%s/s_client.out", dir);
    /* The golden frame, then type 2 (the server closes), over TLS 1.3. */
    snprintf(cmd, sizeof cmd,
             "printf '\\001\\000\\000\\000\\014\\000\\000\\000hello, world"
             "\\002\\000\\000\\000\\000\\000\\000\\000' | timeout 10 openssl s_client "
             "-connect 127.0.0.1:%d -tls1_3 -CAfile %s -servername localhost -verify_return_error "
             "-quiet > %s 2>/dev/null",
             tao_server_port(srv), ca, out);
    assert_int_equal(system(cmd), 0);
    uint8_t *got;
    long n = t_read_file(out, &got);
    static const uint8_t golden[] = {0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 'h', 'e',
                                     'l',  'l',  'o',  ',',  ' ',  'w',  'o',  'r',  'l', 'd'};
    assert_int_equal(n, sizeof golden);
    assert_memory_equal(got, golden, sizeof golden);
    free(got);
    tao_server_destroy(srv);
}

/* s_server closes the connection when its stdin ends: give it a pipe that
 * stays open (*keep is its write end). */
static pid_t spawn_s_server(int port, const char *out, int *keep)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    *keep = pfd[1];
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    char *argv[] = {"openssl", "s_server", "-accept",  p,   "-cert",  cert, "-key",
                    key,       "-tls1_3",  "-naccept", "1", "-quiet", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[0], 0);
    posix_spawn_file_actions_addclose(&fa, pfd[1]);
    pid_t pid;
    assert_int_equal(posix_spawnp(&pid, "openssl", &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[0]);
    return pid;
}

static void openssl_s_server(void **state)
{
    if (!tao_tls_available() || system("command -v openssl >/dev/null") != 0)
        skip();
    reset();
    /* A free port: bind, read it, release it. */
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    bind(probe, (struct sockaddr *)&a, sizeof a);
    getsockname(probe, (struct sockaddr *)&a, &alen);
    int port = ntohs(a.sin_port);
    close(probe);

    char out[300];
    snprintf(out, sizeof out, "%s/s_server.out", dir);
    int keep;
    pid_t pid = spawn_s_server(port, out, &keep);
    static tao_tls_config_t tls;
    tls = (tao_tls_config_t){.ca_file = ca, .server_name = "localhost"};
    tao_client_config_t cfg = {.tls = &tls,
                               .on_connect = cli_connect,
                               .on_error = cli_error,
                               .reconnect = true,
                               .reconnect_initial_ms = 50,
                               .reconnect_attempts = 40};
    tao_client_t *cl;
    assert_int_equal(tao_client_create(&cfg, &cl), 0);
    assert_int_equal(tao_client_start(cl), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    /* Retries cover the moment before s_server listens. */
    int64_t id = tao_client_connect(cl, addr, NULL);
    assert_true(T_WAIT(atomic_load(&cli_connects) == 1, 10000));
    char v[32];
    get_version(v, sizeof v);
    assert_string_equal(v, "TLSv1.3");
    assert_int_equal(tao_client_send(cl, id, 1, "hello, world", 12), 0);
    uint8_t *got = NULL;
    long n = 0;
    assert_true(T_WAIT((free(got), got = NULL, n = t_read_file(out, &got), n >= 20), 5000));
    assert_memory_equal(got + 8, "hello, world", 12);
    free(got);
    tao_client_destroy(cl);
    close(keep);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* ---- bad input ------------------------------------------------------------------ */

/* The handshake timeout of the server the bad peers meet. The good clients
 * that follow them must finish their handshakes within it, which takes a
 * few milliseconds on an idle machine and can take hundreds on a loaded one
 * (each flight waits for a thread to be scheduled). */
#define BAD_PEERS_HS_MS 2000

/* Wait for the server to close fd, opened at since, by the handshake
 * timeout: no sooner than the timeout. */
static void closed_by_handshake_timeout(int fd, uint64_t since)
{
    assert_int_not_equal(t_wait_closed(fd, BAD_PEERS_HS_MS + 10000, NULL), 0);
    uint64_t dt = t_now_ms() - since;
    print_message("closed after %llu ms\n", (unsigned long long)dt);
    assert_true(dt >= BAD_PEERS_HS_MS);
}

static void bad_peers_close_only_themselves(void **state)
{
    if (!tao_tls_available())
        skip();
    reset();
    tao_server_t *srv = tls_server(0, BAD_PEERS_HS_MS);
    int port = tao_server_port(srv);

    /* Plaintext TLV on the TLS port: closed at once, not by the timeout
     * (only the two peers below time out). */
    int plain = t_connect(port);
    t_send_frame(plain, 1, "hello, world", 12);
    assert_int_not_equal(t_wait_closed(plain, 10000, NULL), 0);
    assert_int_equal(atomic_load(&srv_timeouts), 0);
    /* A truncated ClientHello, then silence; and a peer that says nothing. */
    uint64_t t_trunc = t_now_ms();
    int trunc = t_connect(port);
    static const uint8_t hello_start[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc};
    t_write_all(trunc, hello_start, sizeof hello_start);
    uint64_t t_silent = t_now_ms();
    int silent = t_connect(port);
    closed_by_handshake_timeout(trunc, t_trunc);
    closed_by_handshake_timeout(silent, t_silent);
    assert_true(T_WAIT(atomic_load(&srv_timeouts) == 2, 5000));

    /* A client that does not trust the server's CA gives up. */
    tao_client_t *wrong = tls_client(other_ca, 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    tao_client_connect(wrong, addr, NULL);
    assert_true(T_WAIT(atomic_load(&cli_errors) >= 1, 5000));
    assert_true(T_WAIT(tao_client_conn_count(wrong) == 0, 5000));
    assert_int_equal(atomic_load(&cli_connects), 0);
    tao_client_destroy(wrong);

    /* The server still serves a good client. */
    tao_client_t *good = tls_client(ca, 0);
    uint64_t t_good = t_now_ms();
    int64_t id = tao_client_connect(good, addr, NULL);
    assert_true(T_WAIT(tao_client_connected(good, id), 10000));
    print_message("good client connected after %llu ms\n",
                  (unsigned long long)(t_now_ms() - t_good));
    assert_int_equal(tao_client_send(good, id, 1, "", 0), 0);
    assert_true(T_WAIT(atomic_load(&echoes) == 1, 5000));
    tao_client_destroy(good);
    assert_true(atomic_load(&srv_errors) >= 3);
    close(plain);
    close(trunc);
    close(silent);
    tao_server_destroy(srv);
}

/* A server that requires client certificates: a client with one signed by
 * the CA gets in, one without is refused, and the server goes on. */
static void client_certificates(void **state)
{
    if (!tao_tls_available())
        skip();
    reset();
    static tao_tls_config_t stls;
    stls = (tao_tls_config_t){.cert_file = cert,
                              .key_file = key,
                              .ca_file = ca,
                              .verify_client = true,
                              .handshake_timeout_ms = 2000};
    tao_server_config_t scfg = {.tls = &stls, .on_error = srv_error};
    tao_server_t *srv = t_server_create(&scfg);
    assert_int_equal(tao_server_handle(srv, 1, srv_echo, NULL, NULL), 0);
    assert_int_equal(tao_server_start(srv), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", tao_server_port(srv));

    for (int with_cert = 1; with_cert >= 0; with_cert--) {
        static tao_tls_config_t ctls;
        ctls = (tao_tls_config_t){.ca_file = ca,
                                  .server_name = "localhost",
                                  .cert_file = with_cert ? ccert : NULL,
                                  .key_file = with_cert ? ckey : NULL};
        tao_client_config_t ccfg = {.tls = &ctls, .on_connect = cli_connect, .on_error = cli_error};
        tao_client_t *cl;
        assert_int_equal(tao_client_create(&ccfg, &cl), 0);
        assert_int_equal(tao_client_handle(cl, 1, cli_echo, NULL, NULL), 0);
        assert_int_equal(tao_client_start(cl), 0);
        int64_t id = tao_client_connect(cl, addr, NULL);
        if (with_cert) {
            assert_true(T_WAIT(atomic_load(&cli_connects) == 1, 5000));
            assert_int_equal(tao_client_send(cl, id, 1, "", 0), 0);
            assert_true(T_WAIT(atomic_load(&echoes) == 1, 5000));
        } else {
            /* TLS 1.3 lets the client finish first; the server's refusal
             * then closes the connection: either way nothing is echoed. */
            assert_true(T_WAIT(atomic_load(&srv_errors) >= 1, 5000));
            assert_true(T_WAIT(tao_client_conn_count(cl) == 0, 5000));
            assert_int_equal(atomic_load(&echoes), 1);
        }
        tao_client_destroy(cl);
    }
    tao_server_destroy(srv);
}

int main(void)
{
    t_require_backend();
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(echo_tls13),
        cmocka_unit_test(echo_tls12),
        cmocka_unit_test(openssl_s_client),
        cmocka_unit_test(openssl_s_server),
        cmocka_unit_test(bad_peers_close_only_themselves),
        cmocka_unit_test(client_certificates),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
