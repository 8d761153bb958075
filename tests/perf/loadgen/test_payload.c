/* tao-loadgen payloads: every byte is checked, and the header is guarded. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "perf/loadgen/lg.h"
#include "util/t_util.h"

static const size_t sizes[] = {16, 17, 23, 24, 64, 65, 512, 16384};

static void test_round_trip(void **state)
{
    uint8_t p[16384];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint32_t cid = 0;
        uint64_t seq = 0;
        lg_payload_fill(p, sizes[i], 7, 123456789012ull);
        assert_int_equal(lg_payload_check(p, sizes[i], &cid, &seq), 0);
        assert_int_equal(cid, 7);
        assert_true(seq == 123456789012ull);
    }
}

/* Flipping any single bit anywhere makes the payload fail its check. */
static void test_every_bit_matters(void **state)
{
    uint8_t p[65];
    uint32_t cid;
    uint64_t seq;
    for (size_t byte = 0; byte < sizeof p; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            lg_payload_fill(p, sizeof p, 3, 99);
            p[byte] ^= (uint8_t)(1u << bit);
            assert_int_equal(lg_payload_check(p, sizeof p, &cid, &seq), -EBADMSG);
        }
    }
}

/* Frames of other connections and sequence numbers differ in their filler,
 * so a misplaced payload cannot pass for another one by its bytes. */
static void test_distinct(void **state)
{
    uint8_t a[64], b[64];
    lg_payload_fill(a, sizeof a, 1, 5);
    lg_payload_fill(b, sizeof b, 1, 6);
    assert_memory_not_equal(a + 16, b + 16, 48);
    lg_payload_fill(b, sizeof b, 2, 5);
    assert_memory_not_equal(a + 16, b + 16, 48);
}

static void test_too_short(void **state)
{
    uint8_t p[15] = {0};
    uint32_t cid;
    uint64_t seq;
    assert_int_equal(lg_payload_check(p, sizeof p, &cid, &seq), -EBADMSG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_every_bit_matters),
        cmocka_unit_test(test_distinct),
        cmocka_unit_test(test_too_short),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
