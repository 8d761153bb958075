/* tao-loadgen: a load generator for TLV echo servers, built on Tao-C's own
 * client API; one client loop drives thousands of connections.
 *
 *   tao-loadgen --connect 127.0.0.1:12345 -c 64 -d 16 -s 64 --duration 5
 *
 * Modes: echo (default: C connections with D frames in flight each),
 * --storm (connect, echo one frame, close, again: connections per second)
 * and --idle (open C connections, echo once, hold them: with --server-pid,
 * the server's memory per idle connection). Every reply is checked; any
 * error, a server that closes a connection or stalls, makes the exit
 * status 1. With --allow-lost, a connection the server closes is reported
 * as lost instead (a server behind a balancer that goes down), and the
 * rest of the run is judged as usual. Exit 77: io_uring is not available
 * here.
 *
 * This file is the main thread: options, the run's phases (connect, warm
 * up, measure, drain) and the watch for stalls; conns.c runs on the loops. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "perf/loadgen/lg.h"

#define CONNECT_WINDOW 256 /* connects in flight at once: stay under the backlog */
#define TICK_NS 20000000ull

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    interrupted = 1;
}

/* ---- options --------------------------------------------------------------- */

static void usage(void)
{
    printf("tao-loadgen: load and check a TLV echo server\n\n"
           "  --connect HOST:PORT   server (default 127.0.0.1:12345)\n"
           "  -c, --conns C         connections (default 1)\n"
           "  -d, --depth D         frames in flight per connection (default 1)\n"
           "  -s, --size S          payload bytes, at least %d (default 64)\n"
           "  --duration SECS       measured time; idle mode: hold time (default 5)\n"
           "  --warmup SECS         unmeasured time first (default 1)\n"
           "  --loops N             client loops (default 1)\n"
           "  --type T              message type (default 1)\n"
           "  --storm               connect, echo one frame, close; report conns/s\n"
           "  --idle                open C connections, echo once, hold them\n"
           "  --server-pid PID      report the server's CPU per message (and RSS)\n"
           "  --stall SECS          no reply this long with frames out: stalled (default 2)\n"
           "  --allow-lost          a connection the server closes mid-run is counted as\n"
           "                        lost, not as an error; the others are still checked\n"
           "  --json FILE           append one JSON line with the results\n"
           "  --label TEXT          a label for the JSON line\n"
           "exit status: 0 all replies correct, 1 errors, 2 usage, 77 no io_uring\n",
           LG_PAYLOAD_MIN);
}

static int num(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_one(lg_opts_t *o, int ch, const char *arg)
{
    double v = 0;
    switch (ch) {
    case 'C':
        o->addr = arg;
        return 0;
    case 'c':
        return num(arg, 1, 1e6, &v) < 0 ? -1 : (o->conns = (unsigned)v, 0);
    case 'd':
        return num(arg, 1, 65536, &v) < 0 ? -1 : (o->depth = (unsigned)v, 0);
    case 's':
        return num(arg, LG_PAYLOAD_MIN, TAO_TLV_MAX_PAYLOAD_DEFAULT, &v) < 0
                   ? -1
                   : (o->size = (size_t)v, 0);
    case 'D':
        return num(arg, 0.01, 86400, &o->duration);
    case 'W':
        return num(arg, 0, 86400, &o->warmup);
    case 'L':
        return num(arg, 1, 1024, &v) < 0 ? -1 : (o->loops = (unsigned)v, 0);
    case 'T':
        return num(arg, INT32_MIN, INT32_MAX, &v) < 0 ? -1 : (o->type = (int32_t)v, 0);
    case 'S':
        o->mode = LG_STORM;
        return 0;
    case 'I':
        o->mode = LG_IDLE;
        return 0;
    case 'P':
        return num(arg, 1, 1e9, &v) < 0 ? -1 : (o->server_pid = (pid_t)v, 0);
    case 'X':
        return num(arg, 0.1, 3600, &o->stall);
    case 'A':
        o->allow_lost = true;
        return 0;
    case 'J':
        o->json = arg;
        return 0;
    case 'B':
        o->label = arg;
        return 0;
    default:
        return -1;
    }
}

static int parse(int argc, char **argv, lg_opts_t *o)
{
    static const struct option opts[] = {
        {"connect", required_argument, NULL, 'C'},
        {"conns", required_argument, NULL, 'c'},
        {"depth", required_argument, NULL, 'd'},
        {"size", required_argument, NULL, 's'},
        {"duration", required_argument, NULL, 'D'},
        {"warmup", required_argument, NULL, 'W'},
        {"loops", required_argument, NULL, 'L'},
        {"type", required_argument, NULL, 'T'},
        {"storm", no_argument, NULL, 'S'},
        {"idle", no_argument, NULL, 'I'},
        {"server-pid", required_argument, NULL, 'P'},
        {"stall", required_argument, NULL, 'X'},
        {"allow-lost", no_argument, NULL, 'A'},
        {"json", required_argument, NULL, 'J'},
        {"label", required_argument, NULL, 'B'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (lg_opts_t){.addr = "127.0.0.1:12345",
                     .conns = 1,
                     .depth = 1,
                     .loops = 1,
                     .size = 64,
                     .duration = 5,
                     .warmup = 1,
                     .stall = 2,
                     .type = 1};
    int ch;
    while ((ch = getopt_long(argc, argv, "c:d:s:h", opts, NULL)) != -1) {
        if (ch == 'h') {
            usage();
            exit(0);
        }
        if (parse_one(o, ch, optarg) < 0) {
            fprintf(stderr, "tao-loadgen: bad option or value%s%s (see --help)\n",
                    optarg ? ": " : "", optarg ? optarg : "");
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "tao-loadgen: unexpected argument %s\n", argv[optind]);
        return -1;
    }
    if (o->mode != LG_ECHO)
        o->depth = 1; /* one frame per connection, by definition */
    return 0;
}

/* ---- watching the run ------------------------------------------------------- */

static void nap_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                          .tv_nsec = (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

/* Connections with frames out and no reply for --stall seconds. Each is
 * reported once; returns how many are newly stalled. */
static unsigned stall_check_for(lg_run_t *r, uint64_t now, uint64_t limit)
{
    unsigned n = 0;
    for (unsigned i = 0; i < r->o->conns; i++) {
        lg_conn_t *c = &r->conns[i];
        if (c->stalled || atomic_load(&c->state) != LG_UP)
            continue;
        uint32_t out = atomic_load_explicit(&c->inflight_pub, memory_order_relaxed);
        uint64_t last = atomic_load_explicit(&c->last_ns, memory_order_relaxed);
        if (out && now >= last + limit) {
            c->stalled = true;
            atomic_fetch_add(&r->err.stalled, 1);
            if (n++ < 3)
                fprintf(stderr,
                        "tao-loadgen: connection %u stalled: %u frame(s) unanswered for %.1f s\n",
                        c->cid, out, (double)(now - last) / 1e9);
        }
    }
    return n;
}

static unsigned stall_check(lg_run_t *r, uint64_t now)
{
    return stall_check_for(r, now, (uint64_t)(r->o->stall * 1e9));
}

/* Still worth measuring: no stall, not every connection gone, no signal. */
static bool healthy(lg_run_t *r)
{
    if (interrupted || atomic_load(&r->err.stalled))
        return false;
    return r->o->mode == LG_STORM || atomic_load(&r->finished) < r->o->conns;
}

/* Sleep for secs, watching; returns false when the run went wrong. */
static bool watch(lg_run_t *r, double secs)
{
    uint64_t end = lg_now_ns() + (uint64_t)(secs * 1e9);
    for (;;) {
        uint64_t now = lg_now_ns();
        stall_check(r, now);
        if (!healthy(r))
            return false;
        if (now >= end)
            return true;
        nap_ns(end - now < TICK_NS ? end - now : TICK_NS);
    }
}

/* Open the connections, a window at a time, and wait until every one has
 * connected or failed. Returns false when some failed. */
static bool open_all(lg_run_t *r)
{
    unsigned n = r->o->conns;
    uint64_t deadline = lg_now_ns() + 10000000000ull;
    for (unsigned i = 0; i < n; i++) {
        while (i - (atomic_load(&r->up) + atomic_load(&r->failed)) >= CONNECT_WINDOW &&
               lg_now_ns() < deadline && !interrupted)
            nap_ns(100000);
        lg_conn_open(r, &r->conns[i]);
    }
    while (atomic_load(&r->up) + atomic_load(&r->failed) < n && lg_now_ns() < deadline &&
           !interrupted)
        nap_ns(1000000);
    if (atomic_load(&r->up) + atomic_load(&r->failed) < n) {
        fprintf(stderr, "tao-loadgen: connections still not up after 10 s\n");
        atomic_fetch_add(&r->err.connect, n - atomic_load(&r->up) - atomic_load(&r->failed));
    }
    return atomic_load(&r->up) == n;
}

/* ---- the measured window ------------------------------------------------------- */

typedef struct window {
    uint64_t t0;
    double cpu0, srv0, busy0;
} window_t;

static double server_cpu(const lg_opts_t *o)
{
    return o->server_pid ? lg_proc_cpu_s(o->server_pid) : -1;
}

static void window_open(lg_run_t *r, window_t *w)
{
    w->srv0 = server_cpu(r->o);
    w->cpu0 = lg_self_cpu_s();
    w->busy0 = lg_machine_busy_s();
    w->t0 = lg_now_ns();
    atomic_store(&r->phase, LG_MEASURE);
}

static void window_close(lg_run_t *r, const window_t *w, lg_result_t *res)
{
    atomic_store(&r->phase, LG_DRAIN);
    res->window_s = (double)(lg_now_ns() - w->t0) / 1e9;
    res->client_cpu_s = lg_self_cpu_s() - w->cpu0;
    double busy1 = lg_machine_busy_s();
    double srv1 = server_cpu(r->o);
    res->server_cpu_s = w->srv0 >= 0 && srv1 >= 0 ? srv1 - w->srv0 : -1;
    res->other_cpu_s = -1;
    if (w->busy0 >= 0 && busy1 >= 0 && res->server_cpu_s >= 0) {
        double other = busy1 - w->busy0 - res->client_cpu_s - res->server_cpu_s;
        res->other_cpu_s = other > 0 ? other : 0; /* the clocks tick apart */
    }
}

/* Let outstanding replies arrive; whatever is still out after --stall
 * seconds is unanswered, and its connection stalled. */
static void drain(lg_run_t *r)
{
    uint64_t end = lg_now_ns() + (uint64_t)(r->o->stall * 1e9);
    for (;;) {
        uint64_t out = 0;
        unsigned busy = 0;
        for (unsigned i = 0; i < r->o->conns; i++) {
            lg_conn_t *c = &r->conns[i];
            int st = atomic_load(&c->state);
            if (st == LG_UP)
                out += atomic_load_explicit(&c->inflight_pub, memory_order_relaxed);
            if (r->o->mode == LG_STORM && (st == LG_CONNECTING || st == LG_UP))
                busy++;
        }
        if ((!out && !busy) || lg_now_ns() >= end) {
            stall_check_for(r, lg_now_ns(), 0); /* the drain was their last chance */
            atomic_fetch_add(&r->err.unanswered, out);
            return;
        }
        nap_ns(1000000);
    }
}

static void collect(lg_run_t *r, lg_result_t *res)
{
    unsigned n = atomic_load(&r->nthreads);
    for (unsigned i = 0; i < n && i < LG_MAX_THREADS; i++) {
        lg_thread_t *t = r->threads[i];
        res->msgs += t->msgs;
        res->bytes += t->bytes;
        lg_hist_merge(&res->hist, &t->hist);
        free(t->scratch);
        free(t);
    }
    uint64_t skipped = atomic_load(&r->err.skipped), late = atomic_load(&r->err.late);
    res->corrupted = atomic_load(&r->err.corrupted);
    res->lost = (skipped > late ? skipped - late : 0) + atomic_load(&r->err.unanswered);
    res->reordered = late;
    res->dup = atomic_load(&r->err.dup);
    res->closed = atomic_load(&r->err.closed);
    res->lost_conns = atomic_load(&r->err.lost_conns);
    res->lost_frames = atomic_load(&r->err.lost_frames);
    res->stalled = atomic_load(&r->err.stalled);
    res->connect = atomic_load(&r->err.connect);
    res->send = atomic_load(&r->err.send);
}

/* ---- the modes ------------------------------------------------------------------ */

static void run_traffic(lg_run_t *r, lg_result_t *res)
{
    window_t w;
    bool ok = true;
    if (r->o->mode == LG_STORM) {
        for (unsigned i = 0; i < r->o->conns; i++)
            lg_conn_open(r, &r->conns[i]);
    } else {
        ok = open_all(r);
    }
    ok = ok && watch(r, r->o->warmup);
    window_open(r, &w);
    if (ok)
        watch(r, r->o->duration);
    window_close(r, &w, res);
    drain(r);
}

static void run_idle(lg_run_t *r, lg_result_t *res)
{
    pid_t pid = r->o->server_pid;
    res->rss_before_kb = pid ? lg_proc_rss_kb(pid) : -1;
    uint64_t t0 = lg_now_ns();
    bool ok = open_all(r);
    /* Wait for each connection's echo: the server has then accepted it and
     * handled a message on it, as on any connection that goes quiet. */
    while (ok && atomic_load(&r->echoed) < r->o->conns && stall_check(r, lg_now_ns()) == 0 &&
           !interrupted)
        nap_ns(1000000);
    res->idle_conns = atomic_load(&r->echoed);
    nap_ns(200000000); /* let the server finish its batch */
    res->rss_after_kb = pid ? lg_proc_rss_kb(pid) : -1;
    double held = (double)(lg_now_ns() - t0) / 1e9;
    if (held < r->o->duration)
        watch(r, r->o->duration - held);
    res->window_s = (double)(lg_now_ns() - t0) / 1e9;
    res->server_cpu_s = -1;
    drain(r);
}

static int setup(lg_run_t *r, const lg_opts_t *o)
{
    memset(r, 0, sizeof *r);
    r->o = o;
    r->conns = calloc(o->conns, sizeof *r->conns);
    if (!r->conns)
        return -ENOMEM;
    for (unsigned i = 0; i < o->conns; i++) {
        r->conns[i].run = r;
        r->conns[i].sent_ns = calloc(o->depth, sizeof(uint64_t));
        if (!r->conns[i].sent_ns)
            return -ENOMEM;
    }
    /* Each connection is a descriptor, plus a few for the loops. */
    unsigned long need = (unsigned long)o->conns + 64;
    if (lg_raise_nofile(need) < need)
        fprintf(stderr, "tao-loadgen: RLIMIT_NOFILE is below %lu; raise the hard limit\n", need);
    return lg_client_start(r);
}

static void teardown(lg_run_t *r)
{
    for (unsigned i = 0; r->conns && i < r->o->conns; i++)
        free(r->conns[i].sent_ns);
    free(r->conns);
}

int main(int argc, char **argv)
{
    lg_opts_t o;
    static lg_run_t run;
    static lg_result_t res;

    if (parse(argc, argv, &o) < 0)
        return 2;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int rc = setup(&run, &o);
    if (rc < 0) {
        fprintf(stderr, "tao-loadgen: cannot start the client: %s\n", tao_strerror(rc));
        teardown(&run);
        return rc == -EPERM || rc == -ENOSYS ? 77 : 1;
    }
    res.rss_before_kb = res.rss_after_kb = -1;
    res.other_cpu_s = -1;
    if (o.mode == LG_IDLE)
        run_idle(&run, &res);
    else
        run_traffic(&run, &res);
    lg_client_finish(&run);
    collect(&run, &res);
    teardown(&run);

    lg_report_text(&o, &res);
    if (o.json && (rc = lg_report_json(&o, &res)) < 0)
        fprintf(stderr, "tao-loadgen: %s: %s\n", o.json, strerror(-rc));
    return lg_result_errors(&res) || interrupted ? 1 : 0;
}
