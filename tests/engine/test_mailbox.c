/* Tests for engine/mailbox.c: items posted to a loop from many threads
 * arrive whole and, per thread, in the order they were posted; and the
 * loop's side of the mailbox refuses, in debug builds, to run anywhere but
 * on its loop's thread (the TAO__ON_LOOP rule, broken on purpose). No
 * threads of the runtime are started: the test thread plays the loop. */
#include "util/t_util.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/endpoint.h"
#include "engine/loop.h"
#include "engine/mailbox.h"
#include "engine/runtime.h"

#define POSTERS 4
#define PER_POSTER 20000

static tao__runtime_t rt;

static int setup(void **state)
{
    tao__settings_t s = {0};
    assert_int_equal(tao__settings_defaults(&s), 0);
    assert_int_equal(tao__runtime_init(&rt, &s, 1, 0), 0);
    return 0;
}

static int teardown(void **state)
{
    tao__runtime_deinit(&rt);
    return 0;
}

typedef struct stamp {
    uint32_t poster, seq;
} stamp_t;

static void *poster(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    for (uint32_t i = 0; i < PER_POSTER; i++) {
        tao__item_t *it = tao__item_new(LI_RESUME, NULL, sizeof(stamp_t));
        assert_non_null(it);
        memcpy(it->bytes, &(stamp_t){id, i}, sizeof(stamp_t));
        tao__post(&rt.loops[0], it);
    }
    return NULL;
}

static void posts_arrive_in_order(void **state)
{
    tao__loop_t *loop = &rt.loops[0];
    pthread_t th[POSTERS];
    for (uintptr_t i = 0; i < POSTERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, poster, (void *)i), 0);

    /* Drain while they post, as a loop does once per batch. */
    tao__cur_loop = loop;
    uint32_t next[POSTERS] = {0}, total = 0;
    uint64_t end = t_now_ms() + 60000;
    while (total < POSTERS * PER_POSTER && t_now_ms() < end) {
        tao__queue_t q = tao__inbox_take(loop);
        for (tao__item_t *it = q.head, *nx; it; it = nx) {
            nx = it->next;
            stamp_t s;
            memcpy(&s, it->bytes, sizeof s);
            assert_true(s.poster < POSTERS);
            if (s.seq != next[s.poster])
                fail_msg("poster %u: item %u came where %u was due", s.poster, s.seq,
                         next[s.poster]);
            next[s.poster]++;
            total++;
            tao__item_free(it);
        }
    }
    tao__cur_loop = NULL;
    for (int i = 0; i < POSTERS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(total, POSTERS * PER_POSTER);
    assert_true(tao__inbox_empty(loop));
}

/* The loop's inbox taken from a thread that is not the loop's. */
static void loop_side_off_its_thread_aborts(void **state)
{
#ifdef NDEBUG
    skip(); /* the assertion is compiled out */
#else
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGABRT, SIG_DFL);
        close(STDERR_FILENO); /* the assertion's message is expected */
        tao__cur_loop = NULL;
        tao__inbox_take(&rt.loops[0]);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(posts_arrive_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(loop_side_off_its_thread_aborts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
