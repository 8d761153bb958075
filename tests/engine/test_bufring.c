/* Tests for engine/bufring.c, the receive buffers' ownership rule: a buffer
 * goes back to the backend exactly once, when the kernel has let go of it
 * and its last hold is dropped; whole buffers and incremental slices
 * (TAO__CQ_BUF_MORE) alike. A fake backend records every give_buf. In
 * debug builds, breaking the rule on purpose (a put too many, a take of a
 * buffer the kernel does not have, a slice past the end) must abort. */
#include "util/t_util.h"
#include "engine/backend.h"
#include "engine/bufring.h"
#include "engine/loop.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define COUNT 8
#define SIZE 4096

static unsigned given[COUNT]; /* give_buf calls per buffer, after setup */

static void fake_give(tao__loop_t *loop, unsigned bid)
{
    (void)loop;
    given[bid]++;
}

static const tao__backend_t fake = {.name = "fake", .give_buf = fake_give};

static tao__loop_t *loop_new(void)
{
    tao__loop_t *loop = calloc(1, sizeof *loop);
    assert_non_null(loop);
    memset(given, 0, sizeof given);
    loop->be = &fake;
    loop->buf_count = COUNT;
    loop->buf_size = SIZE;
    tao__cur_loop = loop;
    assert_int_equal(tao__bufs_setup(loop), 0);
    for (unsigned i = 0; i < COUNT; i++) /* setup gives every buffer once */
        assert_int_equal(given[i], 1);
    assert_int_equal(loop->bufs_avail, COUNT);
    memset(given, 0, sizeof given);
    return loop;
}

static void loop_free(tao__loop_t *loop)
{
    tao__bufs_teardown(loop);
    free(loop);
    tao__cur_loop = NULL;
}

static const uint8_t *take(tao__loop_t *loop, unsigned bid, int res, bool more)
{
    tao__cqe_t c = {
        .res = res, .flags = TAO__CQ_BUFFER | (more ? TAO__CQ_BUF_MORE : 0), .bid = (uint16_t)bid};
    return tao__buf_take(loop, &c);
}

static const uint8_t *buf(tao__loop_t *loop, unsigned bid)
{
    return loop->bufs + (size_t)bid * SIZE;
}

/* A whole buffer: back at the put, not before, and only once. */
static void test_whole(void **state)
{
    tao__loop_t *loop = loop_new();
    assert_ptr_equal(take(loop, 3, 100, false), buf(loop, 3));
    assert_int_equal(loop->bufs_avail, COUNT - 1);
    assert_int_equal(given[3], 0);
    tao__buf_put(loop, 3);
    assert_int_equal(given[3], 1);
    assert_int_equal(loop->bufs_avail, COUNT);
    loop_free(loop);
}

/* A lender keeps it after the receive lets go; either order. */
static void test_lent(void **state)
{
    tao__loop_t *loop = loop_new();
    take(loop, 1, 2000, false);
    assert_true(tao__buf_lend(loop, 1));
    tao__buf_put(loop, 1); /* the receive */
    assert_int_equal(given[1], 0);
    tao__buf_put(loop, 1); /* the chunk, written */
    assert_int_equal(given[1], 1);
    assert_int_equal(loop->bufs_lent, 0);

    take(loop, 1, 2000, false);
    assert_true(tao__buf_lend(loop, 1));
    tao__buf_put(loop, 1); /* the chunk, dropped by an abort first */
    assert_int_equal(given[1], 1);
    tao__buf_put(loop, 1);
    assert_int_equal(given[1], 2);
    loop_free(loop);
}

/* Slices: each starts where the previous ended, the kernel keeps the
 * buffer until its last slice, and the offset starts over after. */
static void test_slices(void **state)
{
    tao__loop_t *loop = loop_new();
    const uint8_t *b = buf(loop, 0);
    assert_ptr_equal(take(loop, 0, 100, true), b);
    tao__buf_put(loop, 0);
    assert_ptr_equal(take(loop, 0, 200, true), b + 100);
    tao__buf_put(loop, 0);
    assert_int_equal(given[0], 0); /* still the kernel's */
    assert_int_equal(loop->bufs_avail, COUNT);
    assert_ptr_equal(take(loop, 0, SIZE - 300, false), b + 300);
    assert_int_equal(loop->bufs_avail, COUNT - 1);
    assert_int_equal(given[0], 0); /* held */
    tao__buf_put(loop, 0);
    assert_int_equal(given[0], 1);
    assert_ptr_equal(take(loop, 0, 64, true), b); /* filled again, from the start */
    tao__buf_put(loop, 0);
    loop_free(loop);
}

/* A slice lent out while the kernel fills the rest, for another
 * connection: the buffer goes back after the kernel's last slice and the
 * lender, whichever comes last. */
static void test_slices_lent(void **state)
{
    tao__loop_t *loop = loop_new();
    take(loop, 2, 1500, true);
    assert_true(tao__buf_lend(loop, 2));
    tao__buf_put(loop, 2);
    take(loop, 2, 1500, true); /* another receive's slice */
    tao__buf_put(loop, 2);
    take(loop, 2, SIZE - 3000, false);
    tao__buf_put(loop, 2);
    assert_int_equal(given[2], 0); /* the lender still holds it */
    tao__buf_put(loop, 2);
    assert_int_equal(given[2], 1);

    take(loop, 2, 1500, true);
    assert_true(tao__buf_lend(loop, 2));
    tao__buf_put(loop, 2);
    tao__buf_put(loop, 2); /* lender done while the kernel still has the rest */
    assert_int_equal(given[2], 1);
    assert_int_equal(loop->bufs_lent, 0);
    take(loop, 2, SIZE - 1500, false);
    tao__buf_put(loop, 2);
    assert_int_equal(given[2], 2);
    loop_free(loop);
}

/* At most half the buffers have lenders. */
static void test_lend_limit(void **state)
{
    tao__loop_t *loop = loop_new();
    for (unsigned i = 0; i < COUNT; i++)
        take(loop, i, 2000, false);
    for (unsigned i = 0; i < COUNT; i++)
        assert_int_equal(tao__buf_lend(loop, i), i < COUNT / 2);
    assert_true(tao__buf_lend(loop, 0)); /* a second lender on a lent buffer */
    for (unsigned i = 0; i < COUNT; i++)
        tao__buf_put(loop, i);
    tao__buf_put(loop, 0);
    for (unsigned i = 0; i < COUNT; i++) {
        assert_int_equal(given[i], i < COUNT / 2 ? 0 : 1);
        if (i < COUNT / 2)
            tao__buf_put(loop, i);
        assert_int_equal(given[i], 1);
    }
    assert_int_equal(loop->bufs_lent, 0);
    loop_free(loop);
}

/* ---- breaking the rule on purpose ------------------------------------------------ */

typedef void (*breach_fn)(tao__loop_t *loop);

static void put_twice(tao__loop_t *loop)
{
    take(loop, 0, 10, false);
    tao__buf_put(loop, 0);
    tao__buf_put(loop, 0);
}

static void take_held(tao__loop_t *loop)
{
    take(loop, 0, 10, false);
    take(loop, 0, 10, false); /* the kernel let go of it: no completion can name it */
}

static void slice_past_end(tao__loop_t *loop)
{
    take(loop, 0, SIZE - 10, true);
    take(loop, 0, 20, true);
}

static void put_in_ring(tao__loop_t *loop)
{
    tao__buf_put(loop, 5); /* nobody holds it */
}

/* Run breach in a child: it must die of SIGABRT (an assertion). */
static void expect_abort(breach_fn breach, const char *what)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr))
            _exit(2);
        tao__loop_t *loop = loop_new();
        breach(loop);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGABRT)
        fail_msg("%s: not caught (status %d)", what, st);
}

static void test_breaches_abort(void **state)
{
#ifdef NDEBUG
    skip(); /* the checks are assertions */
#else
    expect_abort(put_twice, "a put too many");
    expect_abort(take_held, "a take of a held buffer");
    expect_abort(slice_past_end, "a slice past the buffer's end");
    expect_abort(put_in_ring, "a put of a buffer in the ring");
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole),      cmocka_unit_test(test_lent),
        cmocka_unit_test(test_slices),     cmocka_unit_test(test_slices_lent),
        cmocka_unit_test(test_lend_limit), cmocka_unit_test(test_breaches_abort),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
