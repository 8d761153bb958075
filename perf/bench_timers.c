/* tao-bench-timers: how precisely timers fire.
 *
 * Arms N timers (default 10,000) with random delays of 1 to 1,000 ms on a
 * running server, from a loop thread and from outside, records when each
 * callback ran against its due time, and prints the distribution of the
 * delay (target: p99 under 2 ms; never negative, which would be early).
 * Measures, asserts nothing.
 *   tao-bench-timers [--count N] [--loops N] */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tao.h>

typedef struct probe {
    uint64_t due_us; /* CLOCK_MONOTONIC, microseconds */
    int64_t late_us;
} probe_t;

static atomic_int fired;

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void on_fire(tao_conn_t *conn, void *arg)
{
    probe_t *p = arg;
    p->late_us = (int64_t)(now_us() - p->due_us);
    atomic_fetch_add_explicit(&fired, 1, memory_order_release);
}

static int cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int count = 10000;
    unsigned loops = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--count") == 0)
            count = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--loops") == 0)
            loops = (unsigned)atoi(argv[i + 1]);
    }
    if (count <= 0)
        count = 10000;

    tao_server_config_t cfg = {
        .listen = "127.0.0.1:0", .loops = loops, .workers = TAO_WORKERS_INLINE};
    tao_server_t *srv;
    int rc = tao_server_create(&cfg, &srv);
    if (rc == 0)
        rc = tao_server_start(srv);
    if (rc < 0) {
        fprintf(stderr, "tao-bench-timers: %s\n", tao_strerror(rc));
        return 1;
    }
    probe_t *p = calloc((size_t)count, sizeof *p);
    srand(42);
    for (int i = 0; i < count; i++) {
        uint64_t delay = 1 + (uint64_t)(rand() % 1000);
        /* run_after never fires before delay ms from the call. */
        p[i].due_us = now_us() + delay * 1000;
        if (tao_server_run_after(srv, delay, on_fire, &p[i]) < 0) {
            fprintf(stderr, "tao-bench-timers: run_after failed\n");
            return 1;
        }
    }
    while (atomic_load_explicit(&fired, memory_order_acquire) < count)
        usleep(10000);
    tao_server_destroy(srv);

    int64_t *late = malloc((size_t)count * sizeof *late);
    int early = 0;
    for (int i = 0; i < count; i++) {
        late[i] = p[i].late_us;
        early += late[i] < 0;
    }
    qsort(late, (size_t)count, sizeof *late, cmp);
    printf("timers: %d, random delays 1-1000 ms, %u loop(s)\n", count, loops);
    printf("fire delay after due (ms): min %.3f  p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
           late[0] / 1000.0, late[count / 2] / 1000.0, late[count * 99 / 100] / 1000.0,
           late[count * 999 / 1000] / 1000.0, late[count - 1] / 1000.0);
    printf("early: %d  (target: 0; p99 under 2 ms: %s)\n", early,
           late[count * 99 / 100] < 2000 ? "met" : "missed");
    free(late);
    free(p);
    return 0;
}
