/* Unit tests for the pure half of engine/keepalive.c: tao__ka_next (the
 * earliest of the idle, read and heartbeat deadlines) and tao__ka_due (which
 * one has passed). Each deadline alone, all off, idle measured from the later
 * of last_rx and last_out, the read clock only while a frame is partial, the
 * nearest deadline winning, idle before read before heartbeat when several
 * are due, and the exact boundary. Times are made up: no clock, no loop.
 *
 * Including the .c also defines tao__ka_arm and the rest, which reach into
 * connections and loops; they are linked (from libtao.a) but never called. */
#include "engine/keepalive.c"

#include "util/t_util.h"

/* Due exactly at `at`, not a millisecond before, and still just after. */
static void assert_due_at(const tao__ka_clock_t *k, uint64_t at, enum tao__ka_due want)
{
    assert_int_equal(tao__ka_next(k), at);
    assert_int_equal(tao__ka_due(k, at - 1), KA_NONE);
    assert_int_equal(tao__ka_due(k, at), want);
    assert_int_equal(tao__ka_due(k, at + 1), want);
}

static void test_all_off(void **state)
{
    tao__ka_clock_t k = {0};
    assert_int_equal(tao__ka_next(&k), UINT64_MAX);
    assert_int_equal(tao__ka_due(&k, 0), KA_NONE);
    assert_int_equal(tao__ka_due(&k, UINT64_MAX - 1), KA_NONE);

    k = (tao__ka_clock_t){.last_rx = 5, .last_out = 6, .last_tx = 7, .partial_since = 8};
    assert_int_equal(tao__ka_next(&k), UINT64_MAX);
    assert_int_equal(tao__ka_due(&k, UINT64_MAX - 1), KA_NONE);
}

static void test_idle_alone(void **state)
{
    tao__ka_clock_t k = {.idle_ms = 100, .last_rx = 1000};
    assert_due_at(&k, 1100, KA_IDLE);
}

/* Progress in either direction restarts the idle clock: the later counts. */
static void test_idle_uses_later_of_rx_and_out(void **state)
{
    tao__ka_clock_t k = {.idle_ms = 100, .last_rx = 1000, .last_out = 500};
    assert_due_at(&k, 1100, KA_IDLE);
    k.last_out = 2000;
    assert_due_at(&k, 2100, KA_IDLE);
    k.last_rx = 2000;
    assert_due_at(&k, 2100, KA_IDLE);
}

static void test_read_alone(void **state)
{
    tao__ka_clock_t k = {.read_ms = 50, .partial_since = 700};
    assert_due_at(&k, 750, KA_READ);
}

/* No frame started (partial_since 0): the read clock does not run. */
static void test_read_needs_partial(void **state)
{
    tao__ka_clock_t k = {.read_ms = 50, .last_rx = 10};
    assert_int_equal(tao__ka_next(&k), UINT64_MAX);
    assert_int_equal(tao__ka_due(&k, 1000000), KA_NONE);

    k.idle_ms = 300;
    assert_due_at(&k, 310, KA_IDLE);
}

static void test_heartbeat_alone(void **state)
{
    tao__ka_clock_t k = {.heartbeat_ms = 30, .last_tx = 10};
    assert_due_at(&k, 40, KA_HEARTBEAT);
    k.last_tx = 0; /* nothing sent yet is a time like any other */
    assert_due_at(&k, 30, KA_HEARTBEAT);
}

static void test_nearest_wins(void **state)
{
    tao__ka_clock_t k = {.idle_ms = 100,
                         .read_ms = 100,
                         .heartbeat_ms = 100,
                         .last_rx = 1000,
                         .partial_since = 1010,
                         .last_tx = 1020};
    assert_due_at(&k, 1100, KA_IDLE);

    k.last_rx = 1050;
    assert_due_at(&k, 1110, KA_READ);

    k.partial_since = 1060;
    assert_due_at(&k, 1120, KA_HEARTBEAT);

    k.partial_since = 0; /* read off: heartbeat is still the nearest */
    assert_due_at(&k, 1120, KA_HEARTBEAT);
    k.heartbeat_ms = 0;
    assert_due_at(&k, 1150, KA_IDLE);
}

/* Several due at once: idle ends the connection, then read; a heartbeat
 * only when neither has. */
static void test_order_when_several_due(void **state)
{
    tao__ka_clock_t k = {.idle_ms = 10,
                         .read_ms = 10,
                         .heartbeat_ms = 10,
                         .last_rx = 100,
                         .partial_since = 100,
                         .last_tx = 100};
    assert_int_equal(tao__ka_next(&k), 110);
    assert_int_equal(tao__ka_due(&k, 110), KA_IDLE);

    k.last_out = 500; /* idle not due at 200 */
    assert_int_equal(tao__ka_due(&k, 200), KA_READ);

    k.partial_since = 0;
    assert_int_equal(tao__ka_due(&k, 200), KA_HEARTBEAT);
    assert_int_equal(tao__ka_due(&k, 510), KA_IDLE);
}

/* Equal deadlines: next is that time, and the order above decides. */
static void test_ties(void **state)
{
    tao__ka_clock_t k = {.idle_ms = 40, .heartbeat_ms = 20, .last_rx = 60, .last_tx = 80};
    assert_due_at(&k, 100, KA_IDLE);

    k = (tao__ka_clock_t){.read_ms = 5, .heartbeat_ms = 10, .partial_since = 95, .last_tx = 90};
    assert_due_at(&k, 100, KA_READ);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_off),
        cmocka_unit_test(test_idle_alone),
        cmocka_unit_test(test_idle_uses_later_of_rx_and_out),
        cmocka_unit_test(test_read_alone),
        cmocka_unit_test(test_read_needs_partial),
        cmocka_unit_test(test_heartbeat_alone),
        cmocka_unit_test(test_nearest_wins),
        cmocka_unit_test(test_order_when_several_due),
        cmocka_unit_test(test_ties),
    };
    return cmocka_run_group_tests_name("keepalive", tests, NULL, NULL);
}
