/* Fault injection (engine/fault.h): the engine under failed allocations,
 * short sends and a full submission queue, in a build with
 * TAO_FAULT_INJECTION (the asan preset), over 127.0.0.1.
 *
 * The scenario: an echo server and a client group in one process, four
 * client connections each sending 20 frames of 100 to 5,000 bytes and
 * checking every echo byte for byte. It runs in a child process per fault:
 *
 *   - once with no fault, counting the allocations a run makes; then once
 *     with each of them failing in turn (TAO_FAULT_ALLOC=N, every N up to
 *     that count): no crash, no leak (ASan's leak check runs as the child
 *     exits), and either every connection complete, or an error reported
 *     (a call's return value, on_error, or a log line) with the other
 *     connections unharmed: at most one connection lost, none corrupted;
 *   - every send cut short (TAO_FAULT_SHORT_SEND): every echo complete;
 *   - every third SQE finding the queue full and every third submit
 *     failing with -EBUSY (TAO_FAULT_SQ_FULL=3): every echo complete. */
#include "util/t_util.h"
#include "util/t_net.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/fault.h"

#ifdef TAO_FAULT_INJECTION

#define T_ECHO 1
#define CONNS 4
#define FRAMES 20

/* ---- the scenario (in a child process) ------------------------------------ */

static atomic_int errors;         /* on_error calls and log lines */
static atomic_int corrupt;        /* echoes that differ from what was sent */
static atomic_uint echoed[CONNS]; /* checked echoes per connection */
static atomic_bool gone[CONNS];   /* closed before all its echoes came */

static size_t frame_len(unsigned conn, unsigned seq)
{
    return 100 + (t_seed(conn, seq) % 4900);
}

/* A reply that cannot be queued is lost: a correct handler says so and
 * aborts, so the peer does not wait for it (and never sees the next reply
 * in its place). */
static void on_echo(tao_conn_t *c, const tao_msg_t *m)
{
    if (tao_conn_send(c, m->type, m->payload, m->len) < 0) {
        atomic_fetch_add(&errors, 1);
        tao_conn_abort(c);
    }
}

static void on_reply(tao_conn_t *c, const tao_msg_t *m)
{
    unsigned idx = (unsigned)(uintptr_t)tao_conn_data(c);
    unsigned seq = atomic_load(&echoed[idx]);
    uint8_t want[5000];
    size_t len = frame_len(idx, seq);
    t_fill(want, len, t_seed(idx, seq));
    if (m->len != len || memcmp(m->payload, want, len) != 0) {
        atomic_fetch_add(&corrupt, 1);
        return;
    }
    atomic_store(&echoed[idx], seq + 1);
}

static void on_client_close(tao_conn_t *c)
{
    unsigned idx = (unsigned)(uintptr_t)tao_conn_data(c);
    if (atomic_load(&echoed[idx]) < FRAMES)
        atomic_store(&gone[idx], true);
}

static void on_server_error(tao_server_t *s, tao_conn_t *c, int err, const char *what)
{
    atomic_fetch_add(&errors, 1);
}

static void on_client_error(tao_client_t *cl, tao_conn_t *c, int err, const char *what)
{
    atomic_fetch_add(&errors, 1);
}

static void on_log(tao_log_level_t level, const char *msg, void *user)
{
    if (getenv("T_VERBOSE"))
        fprintf(stderr, "log: %s\n", msg);
    if (level >= TAO_LOG_WARN)
        atomic_fetch_add(&errors, 1);
}

static bool settled(void)
{
    for (unsigned i = 0; i < CONNS; i++)
        if (atomic_load(&echoed[i]) < FRAMES && !atomic_load(&gone[i]))
            return false;
    return true;
}

/* 0: fine; 1: the engine broke a promise; 3: an error was returned (fine,
 * it was reported). */
static int scenario(int workers)
{
    tao_log_set(on_log, NULL, TAO_LOG_WARN);
    tao_server_config_t scfg = {
        .listen = "127.0.0.1:0", .loops = 1, .workers = workers, .on_error = on_server_error};
    tao_server_t *srv = NULL;
    tao_client_t *cl = NULL;
    int rc = tao_server_create(&scfg, &srv);
    if (rc == 0)
        rc = tao_server_handle(srv, T_ECHO, on_echo, NULL, NULL);
    if (rc == 0)
        rc = tao_server_start(srv);
    tao_client_config_t ccfg = {
        .loops = 1, .on_close = on_client_close, .on_error = on_client_error};
    if (rc == 0)
        rc = tao_client_create(&ccfg, &cl);
    if (rc == 0)
        rc = tao_client_handle(cl, T_ECHO, on_reply, NULL, NULL);
    if (rc == 0)
        rc = tao_client_start(cl);
    if (rc < 0) {
        tao_client_destroy(cl);
        tao_server_destroy(srv);
        return 3;
    }
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", tao_server_port(srv));
    int64_t ids[CONNS];
    int refused = 0;
    for (unsigned i = 0; i < CONNS; i++) {
        ids[i] = tao_client_connect(cl, addr, (void *)(uintptr_t)i);
        if (ids[i] < 0) {
            refused++;
            atomic_store(&gone[i], true);
        }
    }
    /* Send each connection's frames once it is connected (or gone). */
    uint8_t buf[5000];
    for (unsigned i = 0; i < CONNS; i++) {
        if (ids[i] < 0)
            continue;
        if (!T_WAIT(tao_client_connected(cl, ids[i]) || atomic_load(&gone[i]), 10000))
            return 1;
        for (unsigned s = 0; s < FRAMES && !atomic_load(&gone[i]); s++) {
            size_t len = frame_len(i, s);
            t_fill(buf, len, t_seed(i, s));
            if (tao_client_send(cl, ids[i], T_ECHO, buf, len) < 0) {
                refused++; /* reported by the call; its echoes will not come */
                atomic_store(&gone[i], true);
                break;
            }
        }
    }
    /* A connection whose send failed may never settle by itself: close it. */
    bool ok = T_WAIT(settled(), 10000);
    if (!ok)
        for (unsigned i = 0; i < CONNS; i++) {
            fprintf(stderr, "conn %u: id %lld echoed %u gone %d connected %d errors %d\n", i,
                    (long long)ids[i], atomic_load(&echoed[i]), atomic_load(&gone[i]),
                    ids[i] > 0 && tao_client_connected(cl, ids[i]), atomic_load(&errors));
            if (atomic_load(&echoed[i]) < FRAMES)
                tao_client_close(cl, ids[i]);
        }
    tao_client_destroy(cl);
    tao_server_destroy(srv);

    unsigned lost = 0;
    for (unsigned i = 0; i < CONNS; i++)
        lost += atomic_load(&echoed[i]) < FRAMES;
    if (atomic_load(&corrupt)) {
        fprintf(stderr, "%d corrupt echoes\n", atomic_load(&corrupt));
        return 1;
    }
    if (lost && !atomic_load(&errors) && !refused) {
        fprintf(stderr, "%u connection(s) lost and no error reported\n", lost);
        return 1;
    }
    if (lost > 1) {
        fprintf(stderr, "one fault cost %u connections\n", lost);
        return 1;
    }
    return 0;
}

/* ---- the runs ----------------------------------------------------------------- */

/* Run the scenario in a child with var=value; returns its exit status (or
 * 128 + signal). With counted, the child reports its allocation count. */
static int run_child(const char *var, unsigned long value, int workers, uint64_t *counted)
{
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char v[32];
        snprintf(v, sizeof v, "%lu", value);
        setenv(var, v, 1);
        alarm(60); /* a hang is a failure, not a stuck suite */
        int st = scenario(workers);
        uint64_t n = tao__fault_allocs();
        if (write(pfd[1], &n, sizeof n) != sizeof n)
            st = 1;
        exit(st == 3 ? 0 : st); /* exit(), not _exit(): LeakSanitizer runs */
    }
    close(pfd[1]);
    uint64_t n = 0;
    if (read(pfd[0], &n, sizeof n) == sizeof n && counted)
        *counted = n;
    close(pfd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void every_allocation(int workers)
{
    uint64_t count = 0;
    assert_int_equal(run_child("TAO_FAULT_ALLOC", 0, workers, &count), 0);
    assert_true(count > 10);
    /* Allocations on other threads vary a little from run to run; a few
     * beyond the count cover the tail. */
    unsigned failed = 0;
    for (uint64_t n = 1; n <= count + 8; n++) {
        int st = run_child("TAO_FAULT_ALLOC", (unsigned long)n, workers, NULL);
        if (st != 0) {
            print_error("allocation %llu failing: child status %d\n", (unsigned long long)n, st);
            failed++;
        }
    }
    print_message("%llu allocations, each failed once\n", (unsigned long long)count);
    assert_int_equal(failed, 0);
}

static void every_allocation_inline(void **state)
{
    every_allocation(TAO_WORKERS_INLINE);
}

static void every_allocation_workers(void **state)
{
    every_allocation(2);
}

static void short_sends(void **state)
{
    assert_int_equal(run_child("TAO_FAULT_SHORT_SEND", 1, TAO_WORKERS_INLINE, NULL), 0);
    assert_int_equal(run_child("TAO_FAULT_SHORT_SEND", 1, 2, NULL), 0);
}

static void full_submission_queue(void **state)
{
    if (t_on_epoll())
        skip(); /* io_uring's submission queue: epoll has none */
    assert_int_equal(run_child("TAO_FAULT_SQ_FULL", 3, TAO_WORKERS_INLINE, NULL), 0);
    assert_int_equal(run_child("TAO_FAULT_SQ_FULL", 3, 2, NULL), 0);
}

/* test_faults --scenario inline|workers: one run, with the TAO_FAULT_*
 * variables of the environment (to look into one fault by hand). */
int main(int argc, char **argv)
{
    t_require_backend();
    if (argc == 3 && strcmp(argv[1], "--scenario") == 0) {
        int st = scenario(strcmp(argv[2], "workers") == 0 ? 2 : TAO_WORKERS_INLINE);
        fprintf(stderr, "status %d, %llu allocations\n", st,
                (unsigned long long)tao__fault_allocs());
        return st == 3 ? 0 : st;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(short_sends),
        cmocka_unit_test(full_submission_queue),
        cmocka_unit_test(every_allocation_inline),
        cmocka_unit_test(every_allocation_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

int main(void)
{
    fprintf(stderr, "SKIP: built without TAO_FAULT_INJECTION (the asan preset has it)\n");
    return 77;
}

#endif
