/* tao-loadgen histogram: quantiles within the bucket resolution. */
#include <stdlib.h>
#include <string.h>

#include "perf/loadgen/lg.h"
#include "util/t_util.h"

static lg_hist_t h;

static int setup(void **state)
{
    memset(&h, 0, sizeof h);
    return 0;
}

/* Within 1/32 above the true value: a bucket's top, never below it. */
static void assert_near(uint64_t got, uint64_t want)
{
    assert_true(got >= want);
    assert_true(got <= want + want / 32 + 1);
}

static void test_empty(void **state)
{
    assert_int_equal(lg_hist_quantile(&h, 0.5), 0);
}

static void test_small_values_exact(void **state)
{
    for (uint64_t v = 0; v < 32; v++)
        lg_hist_record(&h, v);
    assert_int_equal(lg_hist_quantile(&h, 0.5), 15);
    assert_int_equal(lg_hist_quantile(&h, 1.0), 31);
}

static void test_uniform(void **state)
{
    for (uint64_t v = 1; v <= 100000; v++)
        lg_hist_record(&h, v * 10);
    assert_near(lg_hist_quantile(&h, 0.5), 500000);
    assert_near(lg_hist_quantile(&h, 0.99), 990000);
    assert_near(lg_hist_quantile(&h, 0.999), 999000);
    assert_int_equal(lg_hist_quantile(&h, 1.0), 1000000);
}

static void test_huge_and_merge(void **state)
{
    lg_hist_t other;
    memset(&other, 0, sizeof other);
    lg_hist_record(&h, 1000);
    lg_hist_record(&other, UINT64_MAX);
    lg_hist_merge(&h, &other);
    assert_int_equal(h.total, 2);
    assert_near(lg_hist_quantile(&h, 0.5), 1000);
    assert_true(lg_hist_quantile(&h, 1.0) == UINT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_empty, setup),
        cmocka_unit_test_setup(test_small_values_exact, setup),
        cmocka_unit_test_setup(test_uniform, setup),
        cmocka_unit_test_setup(test_huge_and_merge, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
