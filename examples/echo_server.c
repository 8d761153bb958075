/* tao-echo-server: every type-1 message comes back unchanged.
 *
 * The smallest useful Tao-C server, and Go Tao's echo example rebuilt:
 * create, register one handler, start, wait (ex_serve in common.c shows
 * each step). SIGINT or SIGTERM stops it gracefully: replies already
 * queued are still written. */
#include <stdio.h>

#include <tao.h>

#include "examples/common.h"

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

    /* ex_serve (common.c) fills in the rest from the command line: the
     * address or inherited sockets, loops, workers, TLS, buffers, budget
     * and timeouts; then it creates, starts and waits, and stops on
     * SIGINT or SIGTERM, or once a successor has taken over. */
    tao_server_config_t cfg = {
        .on_connect = on_connect,
        .on_close = on_close,
    };
    return ex_serve(&o, &cfg, on_echo);
}
