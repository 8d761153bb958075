/* tao-chat-server: every message goes to everyone, the sender included.
 *
 * Go Tao's chat example rebuilt: the handler hands each message to
 * tao_server_broadcast, which queues a copy on every open connection. A
 * client that cannot keep up is skipped and counted, not allowed to stall
 * the others (Go Tao's Broadcast stopped at the first full connection).
 *
 * Memory stays bounded however many clients stop reading: when the room's
 * output budget (--max-queued) is spent, the broadcast is refused whole
 * (-EAGAIN). The message is then dropped and its sender told so. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>

#include <tao.h>

#include "examples/common.h"

static atomic_ulong dropped;

static void on_chat(tao_conn_t *conn, const tao_msg_t *msg)
{
    static const char busy[] = "[server] the room is busy: your message was not delivered";
    int rc = tao_server_broadcast(tao_conn_server(conn), msg->type, msg->payload, msg->len);
    if (rc == -EAGAIN) {
        /* Readers are far behind. Tell the sender (if even that fits), and
         * say how many were dropped at 1, 2, 4, 8... rather than per line. */
        tao_conn_send(conn, EX_MSG, busy, sizeof busy - 1);
        unsigned long n = atomic_fetch_add(&dropped, 1) + 1;
        if ((n & (n - 1)) == 0)
            fprintf(stderr, "tao-chat-server: room busy, %lu message(s) dropped so far\n", n);
    } else if (rc < 0) {
        fprintf(stderr, "tao-chat-server: broadcast: %s\n", tao_strerror(rc));
    }
}

static int on_connect(tao_conn_t *conn)
{
    ex_log_open(conn);
    return 0;
}

static void on_close(tao_conn_t *conn)
{
    ex_log_conn("left", conn);
}

int main(int argc, char **argv)
{
    ex_opts_t o = {
        .prog = "tao-chat-server",
        .what = "a chat room: every message is sent to every client",
        .takes = EX_SERVER | EX_TLS_SERVER,
        .addr = "127.0.0.1:12345",
    };
    if (ex_parse(argc, argv, &o) < 0)
        return 2;

    tao_server_config_t cfg = {
        .on_connect = on_connect,
        .on_close = on_close,
    };
    return ex_serve(&o, &cfg, on_chat);
}
