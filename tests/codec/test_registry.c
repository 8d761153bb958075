/* Message registry: routes for any int32, duplicates, hash growth, and
 * dispatch through unmarshal, handler or fallback, and free. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "codec/registry.h"
#include "util/t_util.h"

static int handled, fell_back, freed, unmarshalled;
static tao_conn_t *seen_conn;
static tao_msg_t seen;

static void reset(void)
{
    handled = fell_back = freed = unmarshalled = 0;
    seen_conn = NULL;
    memset(&seen, 0, sizeof(seen));
}

static void handler(tao_conn_t *conn, const tao_msg_t *msg)
{
    handled++;
    seen_conn = conn;
    seen = *msg;
}

static void fallback(tao_conn_t *conn, const tao_msg_t *msg)
{
    fell_back++;
    seen_conn = conn;
    seen = *msg;
}

/* Parses a payload that starts with 'V' into a heap int holding its length. */
static int unmarshal(const uint8_t *payload, size_t len, void **value)
{
    unmarshalled++;
    if (len == 0 || payload[0] != 'V')
        return -EBADMSG;
    int *v = malloc(sizeof(*v));
    if (v == NULL)
        return -ENOMEM;
    *v = (int)len;
    *value = v;
    return 0;
}

static int unmarshal_null(const uint8_t *payload, size_t len, void **value)
{
    unmarshalled++;
    *value = NULL;
    return 0;
}

static int unmarshal_positive(const uint8_t *payload, size_t len, void **value)
{
    return EPROTO;
}

static void free_value(void *value)
{
    freed++;
    free(value);
}

static tao__registry_t *make(void)
{
    tao__registry_t *reg = NULL;
    assert_int_equal(tao__registry_create(&reg), 0);
    assert_non_null(reg);
    reset();
    return reg;
}

static tao_frame_t frame(int32_t type, const char *payload)
{
    return (tao_frame_t){type, (const uint8_t *)payload, strlen(payload)};
}

static void test_add_find(void **state)
{
    tao__registry_t *reg = make();
    const int32_t types[] = {0, 1, 255, 256, -1, INT32_MIN, INT32_MAX, 1 << 20};
    const size_t n = sizeof(types) / sizeof(types[0]);
    assert_int_equal(tao__registry_count(reg), 0);
    for (size_t i = 0; i < n; i++)
        assert_null(tao__registry_find(reg, types[i]));
    for (size_t i = 0; i < n; i++)
        assert_int_equal(tao__registry_add(reg, types[i], handler, NULL, NULL), 0);
    assert_int_equal(tao__registry_count(reg), n);
    for (size_t i = 0; i < n; i++) {
        const tao__route_t *r = tao__registry_find(reg, types[i]);
        assert_non_null(r);
        assert_int_equal(r->type, types[i]);
        assert_true(r->used);
        assert_ptr_equal(r->handler, handler);
    }
    const int32_t absent[] = {2, 254, 257, -2, INT32_MIN + 1, INT32_MAX - 1};
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
        assert_null(tao__registry_find(reg, absent[i]));
    tao__registry_destroy(reg);
    tao__registry_destroy(NULL);
}

static void test_duplicates_and_args(void **state)
{
    tao__registry_t *reg = make();
    const int32_t types[] = {7, -7, 100000};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(tao__registry_add(reg, types[i], handler, NULL, NULL), 0);
        assert_int_equal(tao__registry_add(reg, types[i], fallback, NULL, NULL), -EEXIST);
        assert_ptr_equal(tao__registry_find(reg, types[i])->handler, handler);
    }
    assert_int_equal(tao__registry_add(reg, 8, handler, NULL, free_value), -EINVAL);
    assert_int_equal(tao__registry_add(reg, -8, handler, NULL, free_value), -EINVAL);
    assert_null(tao__registry_find(reg, 8));
    assert_int_equal(tao__registry_add(NULL, 8, handler, NULL, NULL), -EINVAL);
    assert_int_equal(tao__registry_count(reg), 3);
    tao__registry_destroy(reg);
}

/* Sparse and adversarial types push the table through many doublings;
 * every route must survive each rehash. */
static void test_hash_growth(void **state)
{
    tao__registry_t *reg = make();
    enum { N = 5000 };
    int32_t *types = malloc(N * sizeof(*types));
    assert_non_null(types);
    uint32_t x = 2463534242u;
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0) {
            types[i] = -(i + 1);
        } else if (i % 3 == 1) {
            /* Same low 16 bits: clusters under a naive mask. */
            types[i] = (int32_t)(((uint32_t)i << 16) | 0x100u);
        } else {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            types[i] = (int32_t)(x | 0x80000000u);
        }
        int rc = tao__registry_add(reg, types[i], handler, NULL, NULL);
        if (rc == -EEXIST) { /* the random stream repeated itself */
            types[i] = INT32_MIN + i;
            rc = tao__registry_add(reg, types[i], handler, NULL, NULL);
        }
        assert_int_equal(rc, 0);
        assert_non_null(tao__registry_find(reg, types[i]));
    }
    assert_int_equal(tao__registry_count(reg), N);
    for (int i = 0; i < N; i++) {
        const tao__route_t *r = tao__registry_find(reg, types[i]);
        assert_non_null(r);
        assert_int_equal(r->type, types[i]);
        assert_int_equal(tao__registry_add(reg, types[i], handler, NULL, NULL), -EEXIST);
    }
    for (int32_t t = 0; t < TAO__REG_DENSE; t++)
        assert_null(tao__registry_find(reg, t));
    free(types);
    tao__registry_destroy(reg);
}

static void test_dispatch_raw(void **state)
{
    tao__registry_t *reg = make();
    tao_conn_t *conn = (tao_conn_t *)(uintptr_t)0x1234;
    assert_int_equal(tao__registry_add(reg, 1, handler, NULL, NULL), 0);
    tao_frame_t f = frame(1, "hello");
    assert_int_equal(tao__registry_dispatch(reg, conn, &f, fallback), 0);
    assert_int_equal(handled, 1);
    assert_int_equal(fell_back, 0);
    assert_ptr_equal(seen_conn, conn);
    assert_int_equal(seen.type, 1);
    assert_ptr_equal(seen.payload, f.payload);
    assert_int_equal(seen.len, 5);
    assert_null(seen.value);
    tao__registry_destroy(reg);
}

static void test_dispatch_unknown(void **state)
{
    tao__registry_t *reg = make();
    assert_int_equal(tao__registry_add(reg, 1, handler, NULL, NULL), 0);
    const int32_t unknown[] = {2, -1, 300, INT32_MIN};
    for (size_t i = 0; i < 4; i++) {
        tao_frame_t f = frame(unknown[i], "x");
        assert_int_equal(tao__registry_dispatch(reg, NULL, &f, fallback), -ENOENT);
    }
    assert_int_equal(handled + fell_back, 0);
    tao__registry_destroy(reg);
}

static void test_dispatch_fallback(void **state)
{
    tao__registry_t *reg = make();
    assert_int_equal(tao__registry_add(reg, -5, NULL, unmarshal, free_value), 0);
    tao_frame_t f = frame(-5, "Vabc");
    assert_int_equal(tao__registry_dispatch(reg, NULL, &f, fallback), 0);
    assert_int_equal(fell_back, 1);
    assert_int_equal(handled, 0);
    assert_int_equal(seen.type, -5);
    assert_int_equal(freed, 1);
    /* No one to deliver to: nothing is built. */
    assert_int_equal(tao__registry_dispatch(reg, NULL, &f, NULL), -ENOENT);
    assert_int_equal(unmarshalled, 1);
    assert_int_equal(freed, 1);
    tao__registry_destroy(reg);
}

static void test_dispatch_unmarshal(void **state)
{
    tao__registry_t *reg = make();
    const int32_t types[] = {3, 70000, -70000};
    for (size_t i = 0; i < 3; i++) {
        reset();
        assert_int_equal(tao__registry_add(reg, types[i], handler, unmarshal, free_value), 0);
        tao_frame_t f = frame(types[i], "Vxyz");
        for (int k = 1; k <= 10; k++) {
            assert_int_equal(tao__registry_dispatch(reg, NULL, &f, fallback), 0);
            assert_int_equal(handled, k);
            assert_int_equal(freed, k);
            assert_non_null(seen.value);
        }
        /* Unmarshal failure: no handler, nothing to free. */
        f = frame(types[i], "bad");
        assert_int_equal(tao__registry_dispatch(reg, NULL, &f, fallback), -EBADMSG);
        assert_int_equal(handled, 10);
        assert_int_equal(fell_back, 0);
        assert_int_equal(freed, 10);
        assert_int_equal(unmarshalled, 11);
    }
    tao__registry_destroy(reg);
}

/* The value the handler sees is the one unmarshal made, and it is freed only
 * after the handler returns. */
static int value_seen_in_handler = -1;
static void value_handler(tao_conn_t *conn, const tao_msg_t *msg)
{
    assert_int_equal(freed, 0);
    value_seen_in_handler = *(int *)msg->value;
}

static void test_dispatch_value(void **state)
{
    tao__registry_t *reg = make();
    assert_int_equal(tao__registry_add(reg, 9, value_handler, unmarshal, free_value), 0);
    tao_frame_t f = frame(9, "V12345");
    assert_int_equal(tao__registry_dispatch(reg, NULL, &f, NULL), 0);
    assert_int_equal(value_seen_in_handler, 6);
    assert_int_equal(freed, 1);

    /* Unmarshal without free_value: whatever it makes is the handler's. */
    assert_int_equal(tao__registry_add(reg, 10, handler, unmarshal_null, NULL), 0);
    f = frame(10, "anything");
    assert_int_equal(tao__registry_dispatch(reg, NULL, &f, NULL), 0);
    assert_null(seen.value);

    /* A NULL value is not handed to free_value. */
    reset();
    assert_int_equal(tao__registry_add(reg, 11, handler, unmarshal_null, free_value), 0);
    f = frame(11, "");
    assert_int_equal(tao__registry_dispatch(reg, NULL, &f, NULL), 0);
    assert_int_equal(handled, 1);
    assert_int_equal(freed, 0);

    /* A positive error from a sloppy unmarshal is still an error. */
    assert_int_equal(tao__registry_add(reg, 12, handler, unmarshal_positive, NULL), 0);
    f = frame(12, "x");
    assert_int_equal(tao__registry_dispatch(reg, NULL, &f, NULL), -EPROTO);
    assert_int_equal(handled, 1);
    tao__registry_destroy(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_find),           cmocka_unit_test(test_duplicates_and_args),
        cmocka_unit_test(test_hash_growth),        cmocka_unit_test(test_dispatch_raw),
        cmocka_unit_test(test_dispatch_unknown),   cmocka_unit_test(test_dispatch_fallback),
        cmocka_unit_test(test_dispatch_unmarshal), cmocka_unit_test(test_dispatch_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
