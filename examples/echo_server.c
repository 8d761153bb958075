/* tao-echo-server: every type-1 message comes back unchanged.
 *
 * The smallest useful Tao-C server, and Go Tao's echo example rebuilt:
 * create, register one handler, start, wait. SIGINT or SIGTERM stops it
 * gracefully: replies already queued are still written. */
#include <stdio.h>

#include <tao.h>

#include "examples/common.h"

static tao_server_t *server;

/* The payload is borrowed until we return; tao_conn_send copies it. */
static void on_echo(tao_conn_t *conn, const tao_msg_t *msg)
{
    tao_conn_send(conn, msg->type, msg->payload, msg->len);
}

static int on_connect(tao_conn_t *conn)
{
    ex_log_open(conn);
    return 0;
}

static void on_close(tao_conn_t *conn)
{
    ex_log_conn("closed", conn);
}

/* tao_server_stop is safe in a signal handler: it only sets flags and
 * wakes the loops. */
static void on_signal(int sig)
{
    tao_server_stop(server, 0);
}

int main(int argc, char **argv)
{
    ex_opts_t o = {
        .prog = "tao-echo-server",
        .what = "echo every type-1 message back",
        .takes = EX_SERVER | EX_TLS_SERVER | EX_BUFS,
        .addr = "127.0.0.1:12345",
    };
    if (ex_parse(argc, argv, &o) < 0)
        return 2;

    tao_server_config_t cfg = {
        .listen = o.addr,
        .loops = o.loops,
        .workers = o.workers,
        .tls = ex_tls(&o), /* --tls-cert/--tls-key; NULL: plain TCP */
        .buf_count = o.buf_count,
        .buf_size = o.buf_size,
        .max_queued_bytes = o.max_queued,
        .idle_timeout_ms = o.idle_ms, /* --idle-timeout, --read-timeout; 0: never */
        .read_timeout_ms = o.read_ms,
        .proxy_protocol = o.proxy, /* --proxy-protocol: behind HAProxy */
        .on_connect = on_connect,
        .on_close = on_close,
    };
    int rc = tao_server_create(&cfg, &server);
    if (rc == 0)
        rc = tao_server_handle(server, EX_MSG, on_echo, NULL, NULL);
    if (rc == 0)
        rc = tao_server_start(server);
    if (rc < 0)
        fprintf(stderr, "%s: cannot start on %s: %s\n", o.prog, o.addr, tao_strerror(rc));
    tao_server_t *metrics = NULL; /* --metrics: statistics over HTTP */
    if (rc < 0 || ex_metrics(&o, server, &metrics) < 0) {
        tao_server_destroy(server);
        return 1;
    }
    ex_on_stop_signals(on_signal);
    ex_print_listening(o.prog, o.addr, server);
    tao_server_wait(server);
    tao_server_destroy(metrics);
    tao_server_destroy(server);
    return 0;
}
