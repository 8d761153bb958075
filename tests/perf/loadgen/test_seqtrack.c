/* tao-loadgen sequence tracking: loss, reordering, duplication, bogus. */
#include <string.h>

#include "perf/loadgen/lg.h"
#include "util/t_util.h"

static lg_seq_t s;
static uint64_t skipped;

static int setup(void **state)
{
    memset(&s, 0, sizeof s);
    return 0;
}

static lg_verdict_t reply(uint64_t seq, uint64_t sent)
{
    return lg_seq_reply(&s, seq, sent, &skipped);
}

static void test_in_order(void **state)
{
    for (uint64_t i = 0; i < 100; i++)
        assert_int_equal(reply(i, i + 4), LG_IN_ORDER);
    assert_int_equal(s.nmissing, 0);
}

/* Replies 5 and 6 swapped: 6 first (5 missing), then 5 turns up late. */
static void test_swap_is_reordering(void **state)
{
    for (uint64_t i = 0; i < 5; i++)
        assert_int_equal(reply(i, 10), LG_IN_ORDER);
    assert_int_equal(reply(6, 10), LG_GAP);
    assert_int_equal(skipped, 1);
    assert_int_equal(reply(5, 10), LG_LATE);
    assert_int_equal(reply(7, 10), LG_IN_ORDER);
    assert_int_equal(s.nmissing, 0);
}

/* A dropped reply stays missing. */
static void test_drop_is_loss(void **state)
{
    assert_int_equal(reply(0, 10), LG_IN_ORDER);
    assert_int_equal(reply(2, 10), LG_GAP);
    assert_int_equal(skipped, 1);
    for (uint64_t i = 3; i < 10; i++)
        assert_int_equal(reply(i, 10), LG_IN_ORDER);
    assert_int_equal(s.nmissing, 1);
}

static void test_duplicate(void **state)
{
    assert_int_equal(reply(0, 4), LG_IN_ORDER);
    assert_int_equal(reply(1, 4), LG_IN_ORDER);
    assert_int_equal(reply(1, 4), LG_DUP);
    assert_int_equal(reply(0, 4), LG_DUP);
    assert_int_equal(reply(2, 4), LG_IN_ORDER);
}

static void test_never_sent(void **state)
{
    assert_int_equal(reply(4, 4), LG_BOGUS);
    assert_int_equal(reply(0, 4), LG_IN_ORDER);
}

/* A long gap remembers only the latest LG_MISSING_MAX: an older one coming
 * back counts as a duplicate (it was given up as lost). */
static void test_long_gap(void **state)
{
    assert_int_equal(reply(100, 200), LG_GAP);
    assert_int_equal(skipped, 100);
    assert_int_equal(s.nmissing, LG_MISSING_MAX);
    assert_int_equal(reply(99, 200), LG_LATE);
    assert_int_equal(reply(3, 200), LG_DUP);
    assert_int_equal(reply(101, 200), LG_IN_ORDER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_in_order, setup),
        cmocka_unit_test_setup(test_swap_is_reordering, setup),
        cmocka_unit_test_setup(test_drop_is_loss, setup),
        cmocka_unit_test_setup(test_duplicate, setup),
        cmocka_unit_test_setup(test_never_sent, setup),
        cmocka_unit_test_setup(test_long_gap, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
