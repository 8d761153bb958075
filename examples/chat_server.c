/* tao-chat-server: every message goes to everyone, the sender included.
 *
 * Go Tao's chat example rebuilt: the handler hands each message to
 * tao_server_broadcast, which queues a copy on every open connection. A
 * client that cannot keep up is skipped and counted, not allowed to stall
 * the others (Go Tao's Broadcast stopped at the first full connection). */
#include <stdio.h>

#include <tao.h>

#include "examples/common.h"

static tao_server_t *server;

static void on_chat(tao_conn_t *conn, const tao_msg_t *msg)
{
    int rc = tao_server_broadcast(tao_conn_server(conn), msg->type, msg->payload, msg->len);
    if (rc < 0)
        fprintf(stderr, "tao-chat-server: broadcast: %s\n", tao_strerror(rc));
}

static int on_connect(tao_conn_t *conn)
{
    ex_log_conn("joined", conn);
    return 0;
}

static void on_close(tao_conn_t *conn)
{
    ex_log_conn("left", conn);
}

static void on_signal(int sig)
{
    tao_server_stop(server, 0);
}

int main(int argc, char **argv)
{
    ex_opts_t o = {
        .prog = "tao-chat-server",
        .what = "a chat room: every message is sent to every client",
        .takes = EX_SERVER,
        .addr = "127.0.0.1:12345",
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
        rc = tao_server_handle(server, EX_MSG, on_chat, NULL, NULL);
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
