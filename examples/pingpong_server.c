/* tao-pingpong-server: answers every message with "pong".
 *
 * Go Tao's pingpong server rebuilt. Paired with tao-pingpong-client it
 * measures round-trip latency: one message in flight per connection, so
 * every round trip pays the full path (receive, decode, dispatch, encode,
 * send). Try --workers 0 to run the handler on the I/O loop and skip the
 * hop to a worker thread. */
#include <stdio.h>

#include <tao.h>

#include "examples/common.h"

static void on_ping(tao_conn_t *conn, const tao_msg_t *msg)
{
    static const char pong[] = "pong";
    tao_conn_send(conn, EX_MSG, pong, sizeof pong - 1);
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
        .prog = "tao-pingpong-server",
        .what = "reply \"pong\" to every message",
        .takes = EX_SERVER | EX_TLS_SERVER,
        .addr = "127.0.0.1:12346",
    };
    if (ex_parse(argc, argv, &o) < 0)
        return 2;

    tao_server_config_t cfg = {
        .on_connect = on_connect,
        .on_close = on_close,
    };
    return ex_serve(&o, &cfg, on_ping);
}
