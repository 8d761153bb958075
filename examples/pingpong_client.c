/* tao-pingpong-client: "ping", wait for "pong", repeat; then report the rate.
 *
 * Go Tao's pingpong client rebuilt, with many connections at once. Each
 * connection carries its own round-trip counter as user data
 * (tao_client_connect's data argument), so the handler needs no lookup;
 * connections spread over the client's loops (--loops), so counters shared
 * by all of them are atomic. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tao.h>

#include "examples/common.h"

static ex_opts_t opts = {
    .prog = "tao-pingpong-client",
    .what = "ping, wait for pong, repeat; print the round trips per second",
    .takes = EX_CONNECT | EX_LOOPS | EX_COUNT | EX_CONNS | EX_TLS_CLIENT,
    .addr = "127.0.0.1:12346",
    .count = 10000,
    .count_what = "round trips per connection",
    .conns = 1,
};
static atomic_uint completed; /* connections that made all their round trips */
static atomic_uint finished;  /* connections closed, for whatever reason */
static _Atomic uint64_t end_ms;

static void ping(tao_conn_t *conn)
{
    static const char msg[] = "ping";
    int rc = tao_conn_send(conn, EX_MSG, msg, sizeof msg - 1);
    if (rc < 0) {
        fprintf(stderr, "%s: send: %s\n", opts.prog, tao_strerror(rc));
        tao_conn_close(conn);
    }
}

static int on_connect(tao_conn_t *conn)
{
    ping(conn);
    return 0;
}

static void on_pong(tao_conn_t *conn, const tao_msg_t *msg)
{
    unsigned *trips = tao_conn_data(conn);
    if (msg->len != 4 || memcmp(msg->payload, "pong", 4) != 0) {
        fprintf(stderr, "%s: unexpected reply \"%.*s\"\n", opts.prog, (int)msg->len,
                (const char *)msg->payload);
        tao_conn_abort(conn);
        return;
    }
    if (++*trips < opts.count) {
        ping(conn);
        return;
    }
    if (atomic_fetch_add(&completed, 1) + 1 == opts.conns)
        atomic_store(&end_ms, tao_now_ms());
    tao_conn_close(conn);
}

static void on_error(tao_client_t *cl, tao_conn_t *conn, int err, const char *what)
{
    fprintf(stderr, "%s: %s: %s: %s\n", opts.prog, opts.addr, what, tao_strerror(err));
}

static void on_close(tao_conn_t *conn)
{
    if (atomic_fetch_add(&finished, 1) + 1 == opts.conns)
        tao_client_stop(tao_conn_client(conn), 0);
}

/* Open every connection; returns how many were started. */
static unsigned connect_all(tao_client_t *cl, unsigned *trips)
{
    for (unsigned i = 0; i < opts.conns; i++) {
        int64_t id = tao_client_connect(cl, opts.addr, &trips[i]);
        if (id < 0) {
            fprintf(stderr, "%s: cannot connect to %s: %s\n", opts.prog, opts.addr,
                    tao_strerror((int)id));
            return i;
        }
    }
    return opts.conns;
}

static void report(uint64_t start)
{
    uint64_t trips = (uint64_t)opts.conns * opts.count;
    double secs = (double)(atomic_load(&end_ms) - start) / 1000.0;
    if (secs <= 0)
        secs = 0.001; /* under a millisecond: the clock's resolution */
    printf("%u connection(s) x %u round trips in %.3f s: %.0f round trips/s\n", opts.conns,
           opts.count, secs, (double)trips / secs);
}

int main(int argc, char **argv)
{
    if (ex_parse(argc, argv, &opts) < 0)
        return 2;
    unsigned *trips = calloc(opts.conns, sizeof *trips);
    tao_client_config_t cfg = {
        .tls = ex_tls(&opts),
        .loops = opts.loops,
        .max_conns = opts.conns,
        .on_connect = on_connect,
        .on_close = on_close,
        .on_error = on_error,
    };
    tao_client_t *cl = NULL;
    int rc = trips ? tao_client_create(&cfg, &cl) : -ENOMEM;
    if (rc == 0)
        rc = tao_client_handle(cl, EX_MSG, on_pong, NULL, NULL);
    if (rc == 0)
        rc = tao_client_start(cl);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", opts.prog, tao_strerror(rc));
        tao_client_destroy(cl);
        free(trips);
        return 1;
    }
    fprintf(stderr, "%s: backend: %s\n", opts.prog, tao_client_backend(cl));
    uint64_t start = tao_now_ms();
    if (connect_all(cl, trips) < opts.conns)
        tao_client_stop(cl, 0);
    tao_client_wait(cl);
    tao_client_destroy(cl);
    free(trips);

    unsigned done = atomic_load(&completed);
    if (done < opts.conns) {
        fprintf(stderr, "%s: %u of %u connections completed\n", opts.prog, done, opts.conns);
        return 1;
    }
    report(start);
    return 0;
}
