/* tao-timer: server timers: run-after, run-at, run-every and cancel.
 *
 * Timers live on the I/O loops' timing wheels, so they need a running
 * server; this one listens on a free port and serves nothing. Each callback
 * prints how late it fired against the time it was due (a timer never fires
 * early, so never below 0). One timer cancels another before it is due, one
 * cancels the ticker, and the last one stops the server: the program ends by
 * itself after about 1.3 s. Server timers run on a loop, maybe on different
 * loops at once, so what they share is atomic. */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>

#include <tao.h>

#include "examples/common.h"

#define TICK_MS 250

static tao_server_t *server;
static uint64_t start;                 /* tao_now_ms() before any timer */
static _Atomic int64_t ticker, doomed; /* ids of the timers we cancel */
static atomic_uint ticks, doomed_fired;

/* "+  250 ms  run_every(250) tick 1    0 ms late" */
static void fired(const char *what, uint64_t due_offset)
{
    uint64_t now = tao_now_ms();
    printf("+%5" PRIu64 " ms  %-26s fired %3" PRId64 " ms late\n", now - start, what,
           (int64_t)(now - (start + due_offset)));
}

static void on_doomed(tao_conn_t *conn, void *arg)
{
    atomic_store(&doomed_fired, 1);
    fired("run_after(600), cancelled", 600);
}

static void on_once(tao_conn_t *conn, void *arg)
{
    fired("run_after(100)", 100);
    int rc = tao_server_cancel_timer(server, atomic_load(&doomed));
    printf("         cancel(run_after(600)): %s\n", tao_strerror(rc));
}

static void on_at(tao_conn_t *conn, void *arg)
{
    fired("run_at(start + 200)", 200);
}

static void on_tick(tao_conn_t *conn, void *arg)
{
    unsigned n = atomic_fetch_add(&ticks, 1) + 1;
    char what[32];
    snprintf(what, sizeof what, "run_every(%d) tick %u", TICK_MS, n);
    fired(what, (uint64_t)n * TICK_MS);
}

static void on_cancel_ticker(tao_conn_t *conn, void *arg)
{
    fired("run_after(1100)", 1100);
    int rc = tao_server_cancel_timer(server, atomic_load(&ticker));
    printf("         cancel(run_every(%d)): %s\n", TICK_MS, tao_strerror(rc));
}

static void on_stop(tao_conn_t *conn, void *arg)
{
    fired("run_after(1300): stop", 1300);
    tao_server_stop(server, 0); /* safe from a callback: returns at once */
}

/* Schedule everything; returns 0 or the first error. */
static int schedule(void)
{
    int64_t ids[6];
    start = tao_now_ms();
    ids[0] = tao_server_run_after(server, 100, on_once, NULL);
    ids[1] = tao_server_run_at(server, start + 200, on_at, NULL);
    ids[2] = tao_server_run_every(server, TICK_MS, on_tick, NULL);
    ids[3] = tao_server_run_after(server, 600, on_doomed, NULL);
    ids[4] = tao_server_run_after(server, 1100, on_cancel_ticker, NULL);
    ids[5] = tao_server_run_after(server, 1300, on_stop, NULL);
    atomic_store(&ticker, ids[2]);
    atomic_store(&doomed, ids[3]);
    for (int i = 0; i < 6; i++)
        if (ids[i] < 0)
            return (int)ids[i];
    return 0;
}

int main(int argc, char **argv)
{
    ex_opts_t o = {
        .prog = "tao-timer",
        .what = "run-after, run-at, run-every and cancel on a server's loops",
        .takes = EX_LISTEN | EX_LOOPS, /* no handlers, so no --workers */
        .addr = "127.0.0.1:0",
    };
    if (ex_parse(argc, argv, &o) < 0)
        return 2;

    tao_server_config_t cfg = {.listen = o.addr, .loops = o.loops};
    int rc = tao_server_create(&cfg, &server);
    if (rc == 0)
        rc = tao_server_start(server);
    if (rc == 0)
        rc = schedule();
    if (rc < 0) {
        fprintf(stderr, "%s: cannot start: %s\n", o.prog, tao_strerror(rc));
        tao_server_destroy(server);
        return 1;
    }
    fprintf(stderr, "%s: backend: %s\n", o.prog, tao_server_backend(server));
    tao_server_wait(server);
    tao_server_destroy(server);
    printf("%u ticks; the cancelled timer %s\n", atomic_load(&ticks),
           atomic_load(&doomed_fired) ? "FIRED" : "never fired");
    return atomic_load(&doomed_fired) ? 1 : 0;
}
