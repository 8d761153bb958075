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

static tao_server_t *server;

static void on_ping(tao_conn_t *conn, const tao_msg_t *msg)
{
    static const char pong[] = "pong";
    tao_conn_send(conn, EX_MSG, pong, sizeof pong - 1);
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
    ex_opts_t o = {
        .prog = "tao-pingpong-server",
        .what = "reply \"pong\" to every message",
        .takes = EX_SERVER,
        .addr = "127.0.0.1:12346",
    };
    if (ex_parse(argc, argv, &o) < 0)
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
        rc = tao_server_handle(server, EX_MSG, on_ping, NULL, NULL);
    if (rc == 0)
        rc = tao_server_start(server);
    if (rc < 0) {
        fprintf(stderr, "%s: cannot start on %s: %s\n", o.prog, o.addr, tao_strerror(rc));
        tao_server_destroy(server);
        return 1;
    }
    ex_on_stop_signals(on_signal);
    ex_print_listening(o.prog, o.addr, server);
    tao_server_wait(server);
    tao_server_destroy(server);
    return 0;
}
