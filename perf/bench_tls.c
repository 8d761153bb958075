/* tao-bench-tls: what TLS costs, next to plain TCP, in one run.
 *
 * Starts an echo server and a client group in this process (one loop
 * each), then measures for plain TCP, TLS 1.3 with ChaCha20-Poly1305 and
 * TLS 1.3 with AES-128-GCM: echo throughput (C connections, D frames in
 * flight, S-byte payloads) and handshakes per second (connect, one echo,
 * close, repeatedly). Prints each figure and its ratio to plain TCP.
 * Measures, asserts nothing; bounded in time.
 *   tao-bench-tls [--seconds S] [--conns C] [--depth D] [--size BYTES]
 * Needs scripts/make-test-certs.sh and openssl to make its certificates. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tao.h>

static double seconds = 2;
static unsigned conns = 16, depth = 8, size = 1024;
static char ca[256], cert[256], key[256];

static atomic_ullong echoed, handshakes;
static atomic_int running;
static uint8_t payload[1 << 20];

static void srv_echo(tao_conn_t *c, const tao_msg_t *m)
{
    tao_conn_send(c, m->type, m->payload, m->len);
}

/* Throughput: every reply sends the next frame, keeping depth in flight. */
static void cli_echo(tao_conn_t *c, const tao_msg_t *m)
{
    atomic_fetch_add_explicit(&echoed, 1, memory_order_relaxed);
    if (atomic_load_explicit(&running, memory_order_relaxed))
        tao_conn_send(c, 1, payload, size);
}

static int cli_start(tao_conn_t *c)
{
    for (unsigned i = 0; i < depth; i++)
        tao_conn_send(c, 1, payload, size);
    return 0;
}

/* Handshakes: one echo per connection, then close; on_close opens the next. */
static tao_client_t *storm_cl;
static char storm_addr[64];

static int storm_start(tao_conn_t *c)
{
    tao_conn_send(c, 1, payload, 16);
    return 0;
}

static void storm_echo(tao_conn_t *c, const tao_msg_t *m)
{
    atomic_fetch_add_explicit(&handshakes, 1, memory_order_relaxed);
    tao_conn_close(c);
}

static void storm_close(tao_conn_t *c)
{
    if (atomic_load(&running))
        tao_client_connect(storm_cl, storm_addr, NULL);
}

static double now_s(void)
{
    return tao_now_ms() / 1000.0;
}

static tao_server_t *server(const tao_tls_config_t *tls)
{
    tao_server_config_t cfg = {
        .listen = "127.0.0.1:0", .loops = 1, .workers = TAO_WORKERS_INLINE, .tls = tls};
    tao_server_t *srv;
    if (tao_server_create(&cfg, &srv) < 0 || tao_server_handle(srv, 1, srv_echo, NULL, NULL) < 0 ||
        tao_server_start(srv) < 0) {
        fprintf(stderr, "tao-bench-tls: cannot start a server\n");
        exit(1);
    }
    return srv;
}

static double throughput(const tao_tls_config_t *stls, const tao_tls_config_t *ctls)
{
    tao_server_t *srv = server(stls);
    tao_client_config_t cfg = {.loops = 1, .tls = ctls, .on_connect = cli_start};
    tao_client_t *cl;
    tao_client_create(&cfg, &cl);
    tao_client_handle(cl, 1, cli_echo, NULL, NULL);
    tao_client_start(cl);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", tao_server_port(srv));
    atomic_store(&running, 1);
    for (unsigned i = 0; i < conns; i++)
        tao_client_connect(cl, addr, NULL);
    usleep(300 * 1000); /* handshakes and warm-up */
    unsigned long long n0 = atomic_load(&echoed);
    double t0 = now_s();
    usleep((useconds_t)(seconds * 1e6));
    double rate = (double)(atomic_load(&echoed) - n0) / (now_s() - t0);
    atomic_store(&running, 0);
    tao_client_destroy(cl);
    tao_server_destroy(srv);
    return rate;
}

static double storm(const tao_tls_config_t *stls, const tao_tls_config_t *ctls)
{
    tao_server_t *srv = server(stls);
    tao_client_config_t cfg = {
        .loops = 1, .tls = ctls, .on_connect = storm_start, .on_close = storm_close};
    tao_client_create(&cfg, &storm_cl);
    tao_client_handle(storm_cl, 1, storm_echo, NULL, NULL);
    tao_client_start(storm_cl);
    snprintf(storm_addr, sizeof storm_addr, "127.0.0.1:%d", tao_server_port(srv));
    atomic_store(&running, 1);
    for (int i = 0; i < 8; i++) /* eight at a time */
        tao_client_connect(storm_cl, storm_addr, NULL);
    usleep(200 * 1000);
    unsigned long long n0 = atomic_load(&handshakes);
    double t0 = now_s();
    usleep((useconds_t)(seconds * 1e6));
    double rate = (double)(atomic_load(&handshakes) - n0) / (now_s() - t0);
    atomic_store(&running, 0);
    tao_client_destroy(storm_cl);
    tao_server_destroy(srv);
    return rate;
}

static void certs(void)
{
    char dir[] = "/tmp/tao-bench-tls-XXXXXX", cmd[512];
    if (!mkdtemp(dir))
        exit(1);
    const char *src = getenv("TAO_SOURCE_DIR");
    snprintf(cmd, sizeof cmd, "bash %s/scripts/make-test-certs.sh %s >/dev/null", src ? src : ".",
             dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "tao-bench-tls: cannot make certificates (run from the source tree, "
                        "or set TAO_SOURCE_DIR)\n");
        exit(1);
    }
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(cert, sizeof cert, "%s/server.pem", dir);
    snprintf(key, sizeof key, "%s/server.key", dir);
}

int main(int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--conns"))
            conns = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--depth"))
            depth = (unsigned)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size"))
            size = (unsigned)atoi(argv[i + 1]);
    }
    if (!tao_tls_available()) {
        fprintf(stderr, "tao-bench-tls: this Tao-C was built without TLS\n");
        return 77;
    }
    if (size > sizeof payload)
        size = sizeof payload;
    certs();
    static const struct {
        const char *name, *ciphers;
    } modes[] = {
        {"plain TCP", NULL},
        {"TLS 1.3 ChaCha20-Poly1305", "TLS13-CHACHA20-POLY1305-SHA256"},
        {"TLS 1.3 AES-128-GCM", "TLS13-AES128-GCM-SHA256"},
    };
    double base_tp = 0, base_hs = 0;
    printf("echo: %u conns x %u in flight x %u B, %.1f s per figure; one loop each side\n", conns,
           depth, size, seconds);
    printf("%-28s %14s %8s %14s %8s\n", "", "echoes/s", "ratio", "handshakes/s", "ratio");
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        tao_tls_config_t s = {.cert_file = cert, .key_file = key, .ciphers = modes[i].ciphers};
        tao_tls_config_t c = {
            .ca_file = ca, .server_name = "localhost", .ciphers = modes[i].ciphers};
        const tao_tls_config_t *st = modes[i].ciphers ? &s : NULL;
        const tao_tls_config_t *ct = modes[i].ciphers ? &c : NULL;
        double tp = throughput(st, ct), hs = storm(st, ct);
        if (i == 0) {
            base_tp = tp;
            base_hs = hs;
        }
        printf("%-28s %14.0f %7.2fx %14.0f %7.2fx\n", modes[i].name, tp, tp / base_tp, hs,
               hs / base_hs);
    }
    return 0;
}
