/* tao-echo-client: sends "hello, world" a few times and prints each reply.
 *
 * Go Tao's echo client, rebuilt on a client group: the sends are paced by a
 * connection timer (tao_conn_run_every) started in on_connect, and the
 * connection is closed only once every reply has arrived, so none is lost
 * (Go Tao's client closes right after its last write and misses the last
 * reply). The exit status says whether all of them came back. */
#include <errno.h>
#include <stdio.h>

#include <tao.h>

#include "examples/common.h"

/* Everything below runs on the client's one I/O loop (handlers inline), so
 * these need no locking; main reads them only after tao_client_wait. */
static ex_opts_t opts = {
    .prog = "tao-echo-client",
    .what = "send \"hello, world\" to an echo server and print the replies",
    .takes = EX_CONNECT | EX_COUNT | EX_INTERVAL | EX_TLS_CLIENT,
    .addr = "127.0.0.1:12345",
    .count = 10,
    .count_what = "messages to send",
    .interval_ms = 60,
};
static bool connected;
static unsigned sent, replies;
static int64_t pacer = -1; /* the run_every timer's id */

static void send_one(tao_conn_t *conn, void *arg)
{
    static const char hello[] = "hello, world";
    int rc = tao_conn_send(conn, EX_MSG, hello, sizeof hello - 1);
    if (rc < 0) {
        fprintf(stderr, "%s: send: %s\n", opts.prog, tao_strerror(rc));
        tao_conn_close(conn);
        return;
    }
    if (++sent == opts.count)
        tao_conn_cancel_timer(conn, pacer);
}

static int on_connect(tao_conn_t *conn)
{
    connected = true;
    pacer = tao_conn_run_every(conn, opts.interval_ms, send_one, NULL);
    if (pacer < 0) {
        fprintf(stderr, "%s: timer: %s\n", opts.prog, tao_strerror((int)pacer));
        return -1; /* refuse: the connection closes, on_close follows */
    }
    return 0;
}

static void on_reply(tao_conn_t *conn, const tao_msg_t *msg)
{
    printf("reply %u: %.*s\n", replies + 1, (int)msg->len, (const char *)msg->payload);
    if (++replies == opts.count)
        tao_conn_close(conn); /* graceful: whatever is queued still goes out */
}

static void on_error(tao_client_t *cl, tao_conn_t *conn, int err, const char *what)
{
    fprintf(stderr, "%s: %s: %s: %s\n", opts.prog, opts.addr, what, tao_strerror(err));
}

/* The last callback of the connection: nothing is left to wait for. */
static void on_close(tao_conn_t *conn)
{
    tao_client_stop(tao_conn_client(conn), 0);
}

int main(int argc, char **argv)
{
    if (ex_parse(argc, argv, &opts) < 0)
        return 2;

    tao_client_config_t cfg = {
        .on_connect = on_connect,
        .on_close = on_close,
        .on_error = on_error,
    };
    tao_client_t *cl;
    int64_t id = ex_dial(&opts, &cfg, on_reply, &cl);
    if (id < 0)
        return 1;
    tao_client_wait(cl);
    tao_client_destroy(cl);
    if (replies < opts.count) {
        if (connected) /* otherwise on_error said why */
            fprintf(stderr, "%s: %u of %u replies\n", opts.prog, replies, opts.count);
        return 1;
    }
    return 0;
}
