/* tao-echo-server: every type-1 message comes back unchanged.
 *
 * The smallest useful Tao-C server, and Go Tao's echo example rebuilt:
 *   tao-echo-server [--listen HOST:PORT] [--loops N] [--workers N] [--debug]
 * SIGINT or SIGTERM stops it gracefully (queued replies are flushed). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tao.h>

#include "examples/common.h"

static tao_server_t *server;

static void on_echo(tao_conn_t *conn, const tao_msg_t *msg)
{
    tao_conn_send(conn, msg->type, msg->payload, msg->len);
}

static int on_connect(tao_conn_t *conn)
{
    ex_log_conn("connected", conn);
    return 0;
}

static void on_close(tao_conn_t *conn)
{
    ex_log_conn("closed", conn);
}

static void on_signal(int sig)
{
    tao_server_stop(server, 0);
}

int main(int argc, char **argv)
{
    ex_opts_t o = {.addr = "127.0.0.1:12345"};
    if (ex_parse(argc, argv, &o, "tao-echo-server", "echo every type-1 message back") < 0)
        return 2;

    tao_server_config_t cfg = {
        .listen = o.addr,
        .loops = o.loops,
        .workers = o.workers,
        .on_connect = on_connect,
        .on_close = on_close,
    };
    int rc = tao_server_create(&cfg, &server);
    if (rc == 0)
        rc = tao_server_handle(server, 1, on_echo, NULL, NULL);
    if (rc == 0)
        rc = tao_server_start(server);
    if (rc < 0) {
        fprintf(stderr, "tao-echo-server: %s\n", tao_strerror(rc));
        return 1;
    }
    ex_on_stop_signals(on_signal);
    printf("tao-echo-server listening on %s (port %d)\n", o.addr, tao_server_port(server));
    fflush(stdout);
    tao_server_wait(server);
    tao_server_destroy(server);
    return 0;
}
