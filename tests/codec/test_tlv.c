/* TLV codec: Go Tao wire compatibility, streaming, limits, heartbeat. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "tao/codec.h"
#include "util/t_codec.h"
#include "util/t_util.h"

static const uint8_t hello[] = {0x01, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x68, 0x65,
                                0x6c, 0x6c, 0x6f, 0x2c, 0x20, 0x77, 0x6f, 0x72, 0x6c, 0x64};
static const uint8_t empty[] = {0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};

static size_t put_frame(uint8_t *at, int32_t type, const void *payload, size_t len)
{
    tao_codec_t c;
    tao_frame_hdr_t h;
    tao_codec_tlv(&c, 0);
    assert_int_equal(c.encode(&c, type, len, &h), 0);
    memcpy(at, h.pre, h.pre_len);
    if (len)
        memcpy(at + h.pre_len, payload, len);
    return h.pre_len + len;
}

static void test_golden_decode(void **state)
{
    tao_codec_t c;
    tao_frame_t f;
    tao_codec_tlv(&c, 0);
    assert_int_equal(c.max_payload, 8388608);
    assert_int_equal(c.decode(&c, hello, sizeof(hello), &f), sizeof(hello));
    assert_int_equal(f.type, 1);
    assert_int_equal(f.len, 12);
    assert_ptr_equal(f.payload, hello + 8);
    assert_memory_equal(f.payload, "hello, world", 12);

    assert_int_equal(c.decode(&c, empty, sizeof(empty), &f), 8);
    assert_int_equal(f.type, 1);
    assert_int_equal(f.len, 0);
}

static void test_golden_encode(void **state)
{
    tao_codec_t c;
    tao_frame_hdr_t h;
    tao_codec_tlv(&c, 0);
    memset(&h, 0xAA, sizeof(h));
    assert_int_equal(c.encode(&c, 1, 12, &h), 0);
    assert_int_equal(h.pre_len, 8);
    assert_int_equal(h.post_len, 0);
    assert_memory_equal(h.pre, hello, 8);
    assert_int_equal(c.encode(&c, 1, 0, &h), 0);
    assert_memory_equal(h.pre, empty, 8);
}

static void test_split_every_byte(void **state)
{
    tao_codec_t c;
    tao_codec_tlv(&c, 0);
    t_codec_prefixes(&c, hello, sizeof(hello));
    t_codec_prefixes(&c, empty, sizeof(empty));

    uint8_t s[64];
    size_t n = 0;
    n += put_frame(s + n, 1, "hello, world", 12);
    n += put_frame(s + n, 0, NULL, 0);
    n += put_frame(s + n, -7, "xyz", 3);
    const t_frame_rec_t want[] = {{1, 8, 12}, {0, 28, 0}, {-7, 36, 3}};
    assert_int_equal(n, 39);
    t_codec_feed_all_chunks(&c, s, n, want, 3);
}

static void test_fifty_frames(void **state)
{
    tao_codec_t c;
    tao_codec_tlv(&c, 0);
    uint8_t payload[64], *s = malloc(50 * (8 + sizeof(payload)));
    t_frame_rec_t want[50];
    size_t n = 0;
    assert_non_null(s);
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7);
    for (int i = 0; i < 50; i++) {
        int32_t type = (i % 3 == 0) ? -i : i * 1000;
        size_t len = (size_t)(i * 13) % sizeof(payload);
        want[i] = (t_frame_rec_t){type, n + 8, len};
        n += put_frame(s + n, type, payload, len);
    }
    /* All in one buffer: frames come out back to back, payloads in place. */
    size_t at = 0;
    for (int i = 0; i < 50; i++) {
        tao_frame_t f;
        ssize_t rc = c.decode(&c, s + at, n - at, &f);
        assert_int_equal(rc, 8 + want[i].len);
        assert_int_equal(f.type, want[i].type);
        assert_ptr_equal(f.payload, s + want[i].off);
        assert_memory_equal(f.payload, payload, f.len);
        at += (size_t)rc;
    }
    assert_int_equal(at, n);
    const size_t chunks[] = {1, 2, 3, 7, 8, 9, 13, 100, 1000, n};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        t_frame_rec_t got[51];
        size_t left = 1;
        assert_int_equal(t_codec_feed(&c, s, n, chunks[i], got, 51, &left), 50);
        assert_int_equal(left, 0);
        for (int k = 0; k < 50; k++) {
            assert_int_equal(got[k].type, want[k].type);
            assert_int_equal(got[k].off, want[k].off);
            assert_int_equal(got[k].len, want[k].len);
        }
    }
    free(s);
}

static void test_default_max(void **state)
{
    const size_t max = 8388608;
    tao_codec_t c;
    tao_frame_t f;
    tao_frame_hdr_t h;
    tao_codec_tlv(&c, 0);
    uint8_t *s = calloc(1, 8 + max);
    assert_non_null(s);
    assert_int_equal(c.encode(&c, 5, max, &h), 0);
    memcpy(s, h.pre, 8);
    assert_int_equal(t_codec_decode(&c, s, 8, &f), 0);
    assert_int_equal(c.decode(&c, s, 8 + max - 1, &f), 0);
    assert_int_equal(c.decode(&c, s, 8 + max, &f), 8 + max);
    assert_int_equal(f.len, max);
    free(s);

    assert_int_equal(c.encode(&c, 5, max + 1, &h), -EMSGSIZE);
    const uint8_t over[8] = {5, 0, 0, 0, 0x01, 0x00, 0x80, 0x00};
    /* Refused with the header alone, before any body byte. */
    assert_int_equal(t_codec_decode(&c, over, 8, &f), -EMSGSIZE);
    assert_int_equal(t_codec_decode(&c, over, 7, &f), 0);
}

static void test_configurable_max(void **state)
{
    tao_codec_t c;
    tao_frame_t f;
    tao_frame_hdr_t h;
    uint8_t s[8 + 17] = {0};
    tao_codec_tlv(&c, 16);
    assert_int_equal(c.max_payload, 16);
    assert_int_equal(c.encode(&c, 2, 16, &h), 0);
    memcpy(s, h.pre, 8);
    assert_int_equal(t_codec_decode(&c, s, 24, &f), 24);
    assert_int_equal(c.encode(&c, 2, 17, &h), -EMSGSIZE);
    s[4] = 17;
    assert_int_equal(t_codec_decode(&c, s, 8, &f), -EMSGSIZE);

    /* Beyond what the uint32 field can say, the field itself is the limit. */
    tao_codec_tlv(&c, SIZE_MAX);
    assert_int_equal(c.max_payload, UINT32_MAX);
    const uint8_t top[8] = {0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(t_codec_decode(&c, top, 8, &f), 0);
    assert_int_equal(c.encode(&c, 0, UINT32_MAX, &h), 0);
    assert_memory_equal(h.pre, top, 8);
    assert_int_equal(c.encode(&c, 0, (size_t)UINT32_MAX + 1, &h), -EMSGSIZE);
}

static void test_negative_types(void **state)
{
    tao_codec_t c;
    tao_frame_t f;
    tao_frame_hdr_t h;
    tao_codec_tlv(&c, 0);
    const int32_t types[] = {-1, INT32_MIN, INT32_MAX, -256, 0x7f000000};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        assert_int_equal(c.encode(&c, types[i], 0, &h), 0);
        assert_int_equal(t_codec_decode(&c, h.pre, 8, &f), 8);
        assert_int_equal(f.type, types[i]);
    }
    const uint8_t minus_one[8] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
    const uint8_t int_min[8] = {0, 0, 0, 0x80, 0, 0, 0, 0};
    assert_int_equal(t_codec_decode(&c, minus_one, 8, &f), 8);
    assert_int_equal(f.type, -1);
    assert_int_equal(t_codec_decode(&c, int_min, 8, &f), 8);
    assert_int_equal(f.type, INT32_MIN);
}

static void test_garbage_header(void **state)
{
    tao_codec_t c;
    tao_frame_t f;
    tao_codec_tlv(&c, 0);
    const uint8_t junk[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    const uint8_t http[16] = "GET / HTTP/1.1\r\n";
    assert_int_equal(t_codec_decode(&c, junk, 8, &f), -EMSGSIZE);
    assert_int_equal(t_codec_decode(&c, http, sizeof(http), &f), -EMSGSIZE);
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(t_codec_decode(&c, junk, i, &f), 0);
    assert_int_equal(c.decode(&c, NULL, 0, &f), 0);
}

static void test_heartbeat(void **state)
{
    uint8_t b[8];
    int64_t ts = 0;
    const uint8_t want[8] = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};
    tao_heartbeat_encode(0x0102030405060708, b);
    assert_memory_equal(b, want, 8);
    assert_int_equal(tao_heartbeat_decode(b, 8, &ts), 0);
    assert_int_equal(ts, 0x0102030405060708);

    const int64_t edge[] = {0, -1, INT64_MIN, INT64_MAX, 1700000000123456789};
    for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++) {
        tao_heartbeat_encode(edge[i], b);
        assert_int_equal(tao_heartbeat_decode(b, 8, &ts), 0);
        assert_true(ts == edge[i]);
    }
    tao_heartbeat_encode(-1, b);
    assert_memory_equal(b, "\xff\xff\xff\xff\xff\xff\xff\xff", 8);
    assert_int_equal(tao_heartbeat_decode(b, 7, &ts), -EBADMSG);
    assert_int_equal(tao_heartbeat_decode(b, 9, &ts), -EBADMSG);
    assert_int_equal(tao_heartbeat_decode(NULL, 8, &ts), -EBADMSG);
}

static void test_heartbeat_frame(void **state)
{
    tao_codec_t c;
    tao_frame_t f;
    tao_frame_hdr_t h;
    uint8_t s[16];
    int64_t ts;
    tao_codec_tlv(&c, 0);
    assert_int_equal(c.encode(&c, TAO_MSG_HEARTBEAT, TAO_HEARTBEAT_LEN, &h), 0);
    memcpy(s, h.pre, 8);
    tao_heartbeat_encode(42, s + 8);
    assert_memory_equal(s, "\0\0\0\0\x08\0\0\0\x2a\0\0\0\0\0\0\0", 16);
    assert_int_equal(t_codec_decode(&c, s, 16, &f), 16);
    assert_int_equal(f.type, TAO_MSG_HEARTBEAT);
    assert_int_equal(tao_heartbeat_decode(f.payload, f.len, &ts), 0);
    assert_int_equal(ts, 42);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_decode),    cmocka_unit_test(test_golden_encode),
        cmocka_unit_test(test_split_every_byte), cmocka_unit_test(test_fifty_frames),
        cmocka_unit_test(test_default_max),      cmocka_unit_test(test_configurable_max),
        cmocka_unit_test(test_negative_types),   cmocka_unit_test(test_garbage_header),
        cmocka_unit_test(test_heartbeat),        cmocka_unit_test(test_heartbeat_frame),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
