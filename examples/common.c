/* Helpers shared by the examples: option parsing with per-program help,
 * signal setup, and the lines that scripts and people read. */
#include "examples/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TAO_WITH_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

static bool debug_on;
static const char *prog_name = "tao";

const char *ex_allocator(void)
{
#ifdef TAO_WITH_JEMALLOC
    static char buf[64];
    const char *v = NULL;
    size_t len = sizeof v;
    if (mallctl("version", &v, &len, NULL, 0) == 0 && v) {
        snprintf(buf, sizeof buf, "jemalloc %s", v);
        return buf;
    }
#endif
    return "libc";
}

static void usage(const ex_opts_t *o)
{
    unsigned t = o->takes;
    printf("%s: %s\n\n", o->prog, o->what);
    if (t & EX_LISTEN)
        printf("  --listen HOST:PORT   address to listen on (default %s; IPv6 as [::1]:PORT)\n",
               o->addr);
    if (t & EX_CONNECT)
        printf("  --connect HOST:PORT  server to connect to (default %s)\n", o->addr);
    if (t & EX_LOOPS)
        printf("  --loops N            I/O loops (default: %s)\n",
               t & EX_LISTEN ? "one per CPU" : "1");
    if (t & EX_WORKERS)
        printf("  --workers N          handler threads (0: run handlers inline on the loops;\n"
               "                       default: one per CPU)\n");
    if (t & EX_COUNT)
        printf("  --count N            %s (default %u)\n", o->count_what, o->count);
    if (t & EX_CONNS)
        printf("  --conns N            connections (default %u)\n", o->conns);
    if (t & EX_INTERVAL)
        printf("  --interval MS        time between messages (default %u ms)\n", o->interval_ms);
    if (t & EX_RECONNECT)
        printf("  --reconnect          reconnect, with backoff, when the connection is lost\n");
    if (t & EX_TLS_SERVER)
        printf("  --tls-cert FILE      serve TLS with this certificate chain (PEM or DER)\n"
               "  --tls-key FILE       and this private key\n");
    if (t & EX_BUFS)
        printf("  --buf-count N        receive buffers per loop, a power of two (default 64)\n"
               "  --buf-size BYTES     bytes per receive buffer (default 65536)\n");
    if (t & EX_BUDGET)
        printf("  --max-queued BYTES   output queued for all clients together before sends\n"
               "                       are refused (default: a quarter of RAM, at most 1 GiB)\n");
    if (t & EX_TIMEOUTS)
        printf("  --idle-timeout MS    close a connection with no traffic for this long\n"
               "                       (default: never)\n"
               "  --read-timeout MS    close a connection whose started frame is not\n"
               "                       complete within this (default: never)\n");
    if (t & EX_METRICS)
        printf("  --metrics HOST:PORT  serve statistics as Prometheus text over HTTP here\n"
               "                       (port 0: a free port, printed)\n");
    if (t & EX_RESTART)
        printf("  --listen-fd N        serve on this inherited listening socket instead\n"
               "                       (socket activation by systemd needs no option)\n"
               "  --handover PATH      take the listening sockets of the server offering\n"
               "                       them at this unix socket, if one does; then offer\n"
               "                       them there to a successor, and stop once it serves\n");
    if (t & EX_ROOT)
        printf("  --root DIR           serve the files under DIR (none beyond it)\n");
    if (t & EX_PROXY)
        printf("  --proxy-protocol M   a PROXY header (v1 or v2, as HAProxy sends) before\n"
               "                       each connection's bytes: off (default), optional,\n"
               "                       required\n");
    if (t & EX_TLS_CLIENT)
        printf("  --tls                connect with TLS\n"
               "  --ca FILE            trust these CAs (scripts/make-test-certs.sh makes one)\n"
               "  --server-name NAME   the name the certificate must carry (default localhost)\n");
    printf("  --debug              log at debug level\n"
           "  --help               this text\n"
           "allocator: %s\n",
           ex_allocator());
}

/* A whole decimal number within [min, max], or -1. */
static long number(const char *s, long min, long max)
{
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v >= min && v <= max ? v : -1;
}

/* Store one option's value; -1 when it is not valid. */
static int apply(ex_opts_t *o, int ch, const char *arg)
{
    long v = 0;
    if (ch == 'w')
        v = number(arg, 0, TAO_WORKERS_MAX);
    else if (ch == 'F')
        v = number(arg, 0, 1000000);
    else if (strchr("LkCibBQIR", ch))
        v = number(arg, 1, 1000000000);
    if (v < 0)
        return -1;
    switch (ch) {
    case 'l':
    case 'c':
        o->addr = arg;
        break;
    case 'L':
        o->loops = (unsigned)v;
        break;
    case 'w':
        /* The config's 0 means "library default", so the command line's
         * 0 ("no worker threads") has to be spelled TAO_WORKERS_INLINE. */
        o->workers = v ? (int)v : TAO_WORKERS_INLINE;
        break;
    case 'k':
        o->count = (unsigned)v;
        break;
    case 'C':
        o->conns = (unsigned)v;
        break;
    case 'i':
        o->interval_ms = (unsigned)v;
        break;
    case 'r':
        o->reconnect = true;
        break;
    case 'T':
        o->tls_cert = arg;
        break;
    case 'K':
        o->tls_key = arg;
        break;
    case 't':
        o->tls = true;
        break;
    case 'A':
        o->ca = arg;
        break;
    case 'N':
        o->server_name = arg;
        break;
    case 'b':
        o->buf_count = (unsigned)v;
        break;
    case 'Q':
        o->max_queued = (size_t)v;
        break;
    case 'B':
        o->buf_size = (unsigned)v;
        break;
    case 'I':
        o->idle_ms = (unsigned)v;
        break;
    case 'R':
        o->read_ms = (unsigned)v;
        break;
    case 'M':
        o->metrics = arg;
        break;
    case 'D':
        o->root = arg;
        break;
    case 'P':
        if (strcmp(arg, "off") == 0)
            o->proxy = TAO_PROXY_OFF;
        else if (strcmp(arg, "optional") == 0)
            o->proxy = TAO_PROXY_OPTIONAL;
        else if (strcmp(arg, "required") == 0)
            o->proxy = TAO_PROXY_REQUIRED;
        else
            return -1;
        break;
    case 'F':
        o->listen_fd = (int)v + 1;
        break;
    case 'H':
        o->handover = arg;
        break;
    }
    return 0;
}

int ex_parse(int argc, char **argv, ex_opts_t *o)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"connect", required_argument, NULL, 'c'},
        {"loops", required_argument, NULL, 'L'},
        {"workers", required_argument, NULL, 'w'},
        {"count", required_argument, NULL, 'k'},
        {"conns", required_argument, NULL, 'C'},
        {"interval", required_argument, NULL, 'i'},
        {"reconnect", no_argument, NULL, 'r'},
        {"tls-cert", required_argument, NULL, 'T'},
        {"tls-key", required_argument, NULL, 'K'},
        {"tls", no_argument, NULL, 't'},
        {"ca", required_argument, NULL, 'A'},
        {"server-name", required_argument, NULL, 'N'},
        {"buf-count", required_argument, NULL, 'b'},
        {"buf-size", required_argument, NULL, 'B'},
        {"max-queued", required_argument, NULL, 'Q'},
        {"idle-timeout", required_argument, NULL, 'I'},
        {"read-timeout", required_argument, NULL, 'R'},
        {"metrics", required_argument, NULL, 'M'},
        {"root", required_argument, NULL, 'D'},
        {"proxy-protocol", required_argument, NULL, 'P'},
        {"listen-fd", required_argument, NULL, 'F'},
        {"handover", required_argument, NULL, 'H'},
        {"debug", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* Which EX_* flag each option needs, in the order of opts[]. */
    static const unsigned needs[] = {EX_LISTEN,
                                     EX_CONNECT,
                                     EX_LOOPS,
                                     EX_WORKERS,
                                     EX_COUNT,
                                     EX_CONNS,
                                     EX_INTERVAL,
                                     EX_RECONNECT,
                                     EX_TLS_SERVER,
                                     EX_TLS_SERVER,
                                     EX_TLS_CLIENT,
                                     EX_TLS_CLIENT,
                                     EX_TLS_CLIENT,
                                     EX_BUFS,
                                     EX_BUFS,
                                     EX_BUDGET,
                                     EX_TIMEOUTS,
                                     EX_TIMEOUTS,
                                     EX_METRICS,
                                     EX_ROOT,
                                     EX_PROXY,
                                     EX_RESTART,
                                     EX_RESTART,
                                     0,
                                     0};
    int ch, idx;

    prog_name = o->prog;
    /* Output piped into a script or a file should appear line by line. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    opterr = 0;
    while ((idx = -1, ch = getopt_long(argc, argv, "", opts, &idx)) != -1) {
        if (ch == 'h') {
            usage(o);
            exit(0);
        }
        if (ch == 'd') {
            o->debug = debug_on = true;
            tao_log_set(NULL, NULL, TAO_LOG_DEBUG);
            continue;
        }
        if (ch == '?' || idx < 0) {
            fprintf(stderr, "%s: bad option %s (see --help)\n", o->prog, argv[optind - 1]);
            return -1;
        }
        if (!(needs[idx] & o->takes)) {
            fprintf(stderr, "%s: --%s is not an option of this program\n", o->prog, opts[idx].name);
            return -1;
        }
        if (apply(o, ch, optarg) < 0) {
            fprintf(stderr, "%s: bad value for --%s: %s\n", o->prog, opts[idx].name, optarg);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument %s (see --help)\n", o->prog, argv[optind]);
        return -1;
    }
    return 0;
}

void ex_on_stop_signals(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

void ex_print_listening(const char *prog, const char *addr, tao_server_t *srv)
{
    const char *colon = strrchr(addr, ':');
    int host_len = colon ? (int)(colon - addr) : (int)strlen(addr);
    printf("%s listening on %.*s:%d\n", prog, host_len, addr, tao_server_port(srv));
    const char *features = tao_server_features(srv);
    if (features && *features)
        printf("%s backend: %s (%s)\n", prog, tao_server_backend(srv), features);
    else
        printf("%s backend: %s\n", prog, tao_server_backend(srv));
    fflush(stdout);
}

/* "host:port" of a socket address, IPv6 in brackets. */
static void format_addr(const struct sockaddr_storage *ss, char *out, size_t size)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        snprintf(out, size, "[%s]:%d", host, port);
        return;
    }
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
    port = ntohs(a->sin_port);
    snprintf(out, size, "%s:%d", host, port);
}

void ex_log_open(tao_conn_t *conn)
{
    if (!debug_on)
        return;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char peer[INET6_ADDRSTRLEN + 16] = "?", via[INET6_ADDRSTRLEN + 24] = "";
    if (tao_conn_peer(conn, &ss, &len) == 0)
        format_addr(&ss, peer, sizeof peer);
    len = sizeof ss;
    if (tao_conn_proxy(conn, &ss, &len) == 0) {
        strcpy(via, " via ");
        format_addr(&ss, via + 5, sizeof via - 5);
    }
    fprintf(stderr, "%s: conn %llu from %s%s\n", prog_name, (unsigned long long)tao_conn_id(conn),
            peer, via);
}

void ex_log_conn(const char *event, tao_conn_t *conn)
{
    if (debug_on)
        fprintf(stderr, "%s: conn %llu %s\n", prog_name, (unsigned long long)tao_conn_id(conn),
                event);
}

const tao_tls_config_t *ex_tls(const ex_opts_t *o)
{
    static tao_tls_config_t tls;
    if (o->tls_cert || o->tls_key) {
        tls = (tao_tls_config_t){
            .cert_file = o->tls_cert, .key_file = o->tls_key, .prefer_chacha = true};
        return &tls;
    }
    if (o->tls) {
        tls = (tao_tls_config_t){.ca_file = o->ca,
                                 .server_name = o->server_name ? o->server_name : "localhost",
                                 .prefer_chacha = true};
        return &tls;
    }
    return NULL;
}

int ex_metrics(const ex_opts_t *o, tao_server_t *srv, tao_server_t **out)
{
    *out = NULL;
    if (!o->metrics)
        return 0;
    int rc = tao_metrics_start(srv, o->metrics, out);
    if (rc < 0) {
        fprintf(stderr, "%s: cannot serve metrics on %s: %s\n", o->prog, o->metrics,
                tao_strerror(rc));
        return -1;
    }
    /* Not "listening on": scripts take that line for the server's port. */
    const char *colon = strrchr(o->metrics, ':');
    int host_len = colon ? (int)(colon - o->metrics) : (int)strlen(o->metrics);
    printf("%s metrics on %.*s:%d\n", o->prog, host_len, o->metrics, tao_server_port(*out));
    return 0;
}

static tao_server_t *serving;

static int log_open(tao_conn_t *conn)
{
    ex_log_open(conn);
    return 0;
}

/* tao_server_stop is safe in a signal handler: it only sets flags and
 * wakes the loops. */
static void stop_serving(int sig)
{
    tao_server_stop(serving, 0);
}

static const char *prog_name;

/* A successor serves on our sockets now: stop as on SIGTERM, answering
 * every request already received. */
static void handed_over(tao_server_t *srv)
{
    printf("%s handed over to its successor; stopping\n", prog_name);
    tao_server_stop(srv, 0);
}

/* The listening sockets this process was given: systemd's, --listen-fd, or
 * its predecessor's at --handover. Returns their count (0: bind --listen),
 * or -1 after saying why. */
static int inherit(const ex_opts_t *o, int *fds, unsigned max, tao_handover_t **h)
{
    *h = NULL;
    int n = tao_listen_fds(fds, max);
    if (n < 0)
        fprintf(stderr, "%s: bad socket activation (LISTEN_FDS): %s\n", o->prog, tao_strerror(n));
    if (n != 0)
        return n < 0 ? -1 : n;
    if (o->listen_fd) {
        fds[0] = o->listen_fd - 1;
        return 1;
    }
    if (!o->handover)
        return 0;
    n = tao_handover_take(o->handover, fds, max, h);
    if (n == -ENOENT || n == -ECONNREFUSED)
        return 0; /* nobody there: the first of its line */
    if (n < 0)
        fprintf(stderr, "%s: cannot take over at %s: %s\n", o->prog, o->handover, tao_strerror(n));
    return n < 0 ? -1 : n;
}

int ex_serve(const ex_opts_t *o, tao_server_config_t *cfg, tao_handler_cb handler)
{
    int fds[TAO_HANDOVER_MAX_FDS];
    tao_handover_t *ho;
    int nfds = inherit(o, fds, TAO_HANDOVER_MAX_FDS, &ho);
    if (nfds < 0)
        return 1;
    prog_name = o->prog;
    cfg->listen = o->addr;
    cfg->listen_fds = nfds ? fds : NULL;
    cfg->listen_fd_count = (unsigned)nfds;
    cfg->handover = o->handover;
    cfg->on_handover = handed_over;
    cfg->loops = o->loops;
    cfg->workers = o->workers;
    cfg->tls = ex_tls(o);
    cfg->buf_count = o->buf_count;
    cfg->buf_size = o->buf_size;
    cfg->max_queued_bytes = o->max_queued;
    cfg->idle_timeout_ms = o->idle_ms;
    cfg->read_timeout_ms = o->read_ms;
    cfg->proxy_protocol = o->proxy;
    if (!cfg->on_connect)
        cfg->on_connect = log_open;
    tao_server_t *metrics = NULL;
    int rc = tao_server_create(cfg, &serving);
    if (rc == 0)
        rc = tao_server_handle(serving, EX_MSG, handler, NULL, NULL);
    if (rc == 0)
        rc = tao_server_start(serving);
    if (rc < 0)
        fprintf(stderr, "%s: cannot start on %s: %s\n", o->prog, o->addr, tao_strerror(rc));
    else if (ex_metrics(o, serving, &metrics) < 0)
        rc = -1;
    if (rc < 0) {
        tao_handover_abort(ho); /* the predecessor keeps serving */
        tao_server_destroy(serving);
        return 1;
    }
    ex_on_stop_signals(stop_serving);
    char where[INET6_ADDRSTRLEN + 16];
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (nfds && getsockname(fds[0], (struct sockaddr *)&ss, &len) == 0)
        format_addr(&ss, where, sizeof where);
    ex_print_listening(o->prog, nfds ? where : o->addr, serving);
    if (ho && (rc = tao_handover_done(ho)) < 0)
        fprintf(stderr, "%s: the predecessor did not confirm the hand-over: %s\n", o->prog,
                tao_strerror(rc));
    else if (ho)
        printf("%s took over from its predecessor\n", o->prog);
    tao_server_wait(serving);
    tao_server_destroy(metrics);
    tao_server_destroy(serving);
    return 0;
}

int64_t ex_dial(const ex_opts_t *o, tao_client_config_t *cfg, tao_handler_cb handler,
                tao_client_t **out)
{
    tao_client_t *cl = NULL;
    cfg->tls = ex_tls(o);
    int rc = tao_client_create(cfg, &cl);
    if (rc == 0)
        rc = tao_client_handle(cl, EX_MSG, handler, NULL, NULL);
    if (rc == 0)
        rc = tao_client_start(cl);
    int64_t id = rc < 0 ? rc : tao_client_connect(cl, o->addr, NULL);
    if (id < 0) {
        fprintf(stderr, "%s: cannot connect to %s: %s\n", o->prog, o->addr, tao_strerror((int)id));
        tao_client_destroy(cl);
        return -1;
    }
    fprintf(stderr, "%s: backend: %s\n", o->prog, tao_client_backend(cl));
    *out = cl;
    return id;
}
