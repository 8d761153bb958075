/* Helpers shared by the examples. */
#include "examples/common.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef TAO_WITH_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

static int debug_on;

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

static void usage(const char *prog, const char *what)
{
    printf("%s: %s\n\n"
           "  --listen/--connect HOST:PORT  address (IPv6 as [::1]:PORT)\n"
           "  --loops N                     I/O loops (default: one per CPU)\n"
           "  --workers N                   handler threads (0: run handlers inline)\n"
           "  --debug                       log connects and closes\n"
           "  --help                        this text\n"
           "allocator: %s\n",
           prog, what, ex_allocator());
}

int ex_parse(int argc, char **argv, ex_opts_t *o, const char *prog, const char *what)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"connect", required_argument, NULL, 'c'},
        {"loops", required_argument, NULL, 'L'},
        {"workers", required_argument, NULL, 'w'},
        {"debug", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'l':
        case 'c':
            o->addr = optarg;
            break;
        case 'L':
            o->loops = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'w':
            o->workers = atoi(optarg);
            break;
        case 'd':
            o->debug = debug_on = 1;
            tao_log_set(NULL, NULL, TAO_LOG_DEBUG);
            break;
        case 'h':
            usage(prog, what);
            exit(0);
        default:
            fprintf(stderr, "%s: see --help\n", prog);
            return -1;
        }
    }
    /* On the command line 0 means "inline", as in the perf scripts. */
    if (o->workers == 0)
        o->workers = TAO_WORKERS_INLINE;
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

void ex_log_conn(const char *event, tao_conn_t *conn)
{
    if (!debug_on)
        return;
    struct sockaddr_storage ss;
    socklen_t len;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (tao_conn_peer(conn, &ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            port = ntohs(a->sin6_port);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
            port = ntohs(a->sin_port);
        }
    }
    fprintf(stderr, "%s %s:%d (#%llu)\n", event, host, port, (unsigned long long)tao_conn_id(conn));
}
