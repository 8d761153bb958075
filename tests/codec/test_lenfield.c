/* Length-field codec: options, every field size and order, adjust, strip,
 * offset, limits, and encode as decode's inverse. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "tao/codec.h"
#include "util/t_codec.h"
#include "util/t_util.h"

static const size_t sizes[] = {1, 2, 4, 8};
static const tao_byte_order_t orders[] = {TAO_BIG_ENDIAN, TAO_LITTLE_ENDIAN};

static tao_codec_t make(size_t off, size_t size, tao_byte_order_t order, int64_t adjust,
                        size_t strip, size_t max)
{
    tao_codec_t c;
    tao_lenfield_opts_t o = {.length_offset = off,
                             .length_size = size,
                             .order = order,
                             .length_adjust = adjust,
                             .strip = strip,
                             .max_frame = max,
                             .type = 77};
    assert_int_equal(tao_codec_lenfield(&c, &o), 0);
    return c;
}

/* Write v into size bytes at p, in order. */
static void put(uint8_t *p, size_t size, tao_byte_order_t order, uint64_t v)
{
    for (size_t i = 0; i < size; i++)
        p[order == TAO_BIG_ENDIAN ? size - 1 - i : i] = (uint8_t)(v >> (8 * i));
}

static void test_options(void **state)
{
    tao_codec_t c, before;
    memset(&c, 0x5A, sizeof(c));
    before = c;
    tao_lenfield_opts_t o = {.length_size = 2};
    const size_t bad_sizes[] = {0, 3, 5, 6, 7, 9, 16};
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        o.length_size = bad_sizes[i];
        assert_int_equal(tao_codec_lenfield(&c, &o), -EINVAL);
    }
    o = (tao_lenfield_opts_t){.length_size = 2, .order = (tao_byte_order_t)2};
    assert_int_equal(tao_codec_lenfield(&c, &o), -EINVAL);
    o = (tao_lenfield_opts_t){.length_size = 4, .length_offset = 13, .max_frame = 16};
    assert_int_equal(tao_codec_lenfield(&c, &o), -EINVAL);
    o = (tao_lenfield_opts_t){.length_size = 8, .max_frame = 4};
    assert_int_equal(tao_codec_lenfield(&c, &o), -EINVAL);
    o = (tao_lenfield_opts_t){.length_size = 2, .length_offset = SIZE_MAX};
    assert_int_equal(tao_codec_lenfield(&c, &o), -EINVAL);
    o = (tao_lenfield_opts_t){.length_size = 2, .strip = 17, .max_frame = 16};
    assert_int_equal(tao_codec_lenfield(&c, &o), -EINVAL);
    assert_int_equal(tao_codec_lenfield(&c, NULL), -EINVAL);
    assert_memory_equal(&c, &before, sizeof(c));

    /* The edges that are still valid. */
    o = (tao_lenfield_opts_t){.length_size = 4, .length_offset = 12, .strip = 16, .max_frame = 16};
    assert_int_equal(tao_codec_lenfield(&c, &o), 0);
    assert_int_equal(c.max_payload, 0);
    o = (tao_lenfield_opts_t){.length_size = 2};
    assert_int_equal(tao_codec_lenfield(&c, &o), 0);
    assert_int_equal(c.u.lenfield.max_frame, 8u << 20);
    assert_int_equal(c.max_payload, 8u << 20);
    o.max_frame = SIZE_MAX;
    assert_int_equal(tao_codec_lenfield(&c, &o), 0);
    assert_int_equal(c.u.lenfield.max_frame, SSIZE_MAX);
}

/* Every size and order: decode a known frame, split it at every byte, and
 * encode its header back. */
static void test_sizes_and_orders(void **state)
{
    for (size_t si = 0; si < 4; si++) {
        for (size_t oi = 0; oi < 2; oi++) {
            size_t size = sizes[si];
            tao_codec_t c = make(0, size, orders[oi], 0, size, 0);
            uint8_t s[8 + 5];
            put(s, size, orders[oi], 5);
            memcpy(s + size, "abcde", 5);
            tao_frame_t f;
            assert_int_equal(t_codec_decode(&c, s, size + 5, &f), size + 5);
            assert_int_equal(f.type, 77);
            assert_int_equal(f.len, 5);
            assert_memory_equal(f.payload, "abcde", 5);
            t_codec_prefixes(&c, s, size + 5);

            tao_frame_hdr_t h;
            assert_int_equal(c.encode(&c, 77, 5, &h), 0);
            assert_int_equal(h.pre_len, size);
            assert_int_equal(h.post_len, 0);
            assert_memory_equal(h.pre, s, size);
        }
    }
    /* Byte order shown on the wire. */
    tao_codec_t be = make(0, 4, TAO_BIG_ENDIAN, 0, 4, 0),
                le = make(0, 4, TAO_LITTLE_ENDIAN, 0, 4, 0);
    tao_frame_hdr_t h;
    assert_int_equal(be.encode(&be, 0, 0x010203, &h), 0);
    assert_memory_equal(h.pre, "\x00\x01\x02\x03", 4);
    assert_int_equal(le.encode(&le, 0, 0x010203, &h), 0);
    assert_memory_equal(h.pre, "\x03\x02\x01\x00", 4);
}

/* The examples of Netty's LengthFieldBasedFrameDecoder documentation. */
static void test_netty_examples(void **state)
{
    static const uint8_t ex1[] = "\x00\x0c"
                                 "HELLO, WORLD";
    static const uint8_t ex3[] = "\x00\x0e"
                                 "HELLO, WORLD";
    static const uint8_t ex6[] = "\xca\x00\x0c\xfe"
                                 "HELLO, WORLD";
    static const uint8_t ex7[] = "\xca\x00\x10\xfe"
                                 "HELLO, WORLD";
    tao_frame_t f;
    tao_codec_t c = make(0, 2, TAO_BIG_ENDIAN, 0, 0, 0);
    assert_int_equal(t_codec_decode(&c, ex1, 14, &f), 14);
    assert_ptr_equal(f.payload, ex1);
    assert_int_equal(f.len, 14);

    c = make(0, 2, TAO_BIG_ENDIAN, 0, 2, 0);
    assert_int_equal(t_codec_decode(&c, ex1, 14, &f), 14);
    assert_int_equal(f.len, 12);
    assert_memory_equal(f.payload, "HELLO, WORLD", 12);

    /* The length counts the header too. */
    c = make(0, 2, TAO_BIG_ENDIAN, -2, 0, 0);
    assert_int_equal(t_codec_decode(&c, ex3, 14, &f), 14);
    assert_int_equal(f.len, 14);

    /* A header byte before the field and one after it, both stripped. */
    c = make(1, 2, TAO_BIG_ENDIAN, 1, 3, 0);
    assert_int_equal(t_codec_decode(&c, ex6, 16, &f), 16);
    assert_int_equal(f.len, 13);
    assert_memory_equal(f.payload, "\xfeHELLO, WORLD", 13);
    t_codec_prefixes(&c, ex6, 16);

    c = make(1, 2, TAO_BIG_ENDIAN, -3, 3, 0);
    assert_int_equal(t_codec_decode(&c, ex7, 16, &f), 16);
    assert_int_equal(f.len, 13);
    assert_memory_equal(f.payload, "\xfeHELLO, WORLD", 13);
}

static void test_offset_and_strip(void **state)
{
    /* A 3-byte preamble, then a 4-byte LE length, all stripped. */
    tao_codec_t c = make(3, 4, TAO_LITTLE_ENDIAN, 0, 7, 0);
    const uint8_t s[] = {'x', 'y', 'z', 2, 0, 0, 0, 'o', 'k'};
    tao_frame_t f;
    assert_int_equal(t_codec_decode(&c, s, sizeof(s), &f), 9);
    assert_memory_equal(f.payload, "ok", 2);
    t_codec_prefixes(&c, s, sizeof(s));
    tao_frame_hdr_t h;
    assert_int_equal(c.encode(&c, 0, 2, &h), 0);
    assert_memory_equal(h.pre, "\0\0\0\x02\0\0\0", 7);

    /* Strip only the preamble: the field stays in the payload. */
    c = make(3, 4, TAO_LITTLE_ENDIAN, 0, 3, 0);
    assert_int_equal(t_codec_decode(&c, s, sizeof(s), &f), 9);
    assert_int_equal(f.len, 6);
    assert_ptr_equal(f.payload, s + 3);
    assert_int_equal(c.encode(&c, 0, 2, &h), -ENOTSUP);

    /* Strip past the field: legal, but a frame shorter than strip is not. */
    c = make(0, 1, TAO_BIG_ENDIAN, 0, 3, 0);
    assert_int_equal(t_codec_decode(&c, (const uint8_t *)"\x02xy", 3, &f), 3);
    assert_int_equal(f.len, 0);
    assert_int_equal(t_codec_decode(&c, (const uint8_t *)"\x01x", 1, &f), -EBADMSG);
    assert_int_equal(c.encode(&c, 0, 0, &h), -ENOTSUP);
}

static void test_adjust(void **state)
{
    tao_frame_t f;
    /* Length counts the whole frame (offset 2 + 2-byte field): adjust -4. */
    tao_codec_t c = make(2, 2, TAO_BIG_ENDIAN, -4, 4, 0);
    const uint8_t s[] = {0xAB, 0xCD, 0x00, 0x07, 'a', 'b', 'c'};
    assert_int_equal(t_codec_decode(&c, s, 7, &f), 7);
    assert_memory_equal(f.payload, "abc", 3);
    tao_frame_hdr_t h;
    assert_int_equal(c.encode(&c, 0, 3, &h), 0);
    assert_memory_equal(h.pre, "\0\0\0\x07", 4);

    /* L + adjust < 0 can never be a frame. */
    const uint8_t short_len[] = {0, 0, 0x00, 0x03};
    assert_int_equal(t_codec_decode(&c, short_len, 4, &f), -EBADMSG);
    const uint8_t exact[] = {0, 0, 0x00, 0x04};
    assert_int_equal(t_codec_decode(&c, exact, 4, &f), 4);
    assert_int_equal(f.len, 0);

    /* Positive adjust: a trailer (e.g. a 2-byte checksum) not counted in L. */
    c = make(0, 1, TAO_BIG_ENDIAN, 2, 1, 0);
    assert_int_equal(t_codec_decode(&c, (const uint8_t *)"\x01xCS", 4, &f), 4);
    assert_int_equal(f.len, 3);
    assert_int_equal(c.encode(&c, 0, 3, &h), 0);
    assert_int_equal(h.pre[0], 1);
    /* L would be negative. */
    assert_int_equal(c.encode(&c, 0, 1, &h), -ERANGE);
    assert_int_equal(c.encode(&c, 0, 2, &h), 0);
    assert_int_equal(h.pre[0], 0);
}

static void test_max_frame(void **state)
{
    tao_frame_t f;
    tao_frame_hdr_t h;
    tao_codec_t c = make(0, 2, TAO_BIG_ENDIAN, 0, 2, 16);
    assert_int_equal(c.max_payload, 14);
    uint8_t s[16] = {0x00, 0x0e};
    assert_int_equal(t_codec_decode(&c, s, 16, &f), 16);
    assert_int_equal(f.len, 14);
    s[1] = 0x0f;
    /* Refused with the length field alone. */
    assert_int_equal(t_codec_decode(&c, s, 2, &f), -EMSGSIZE);
    assert_int_equal(t_codec_decode(&c, s, 1, &f), 0);
    assert_int_equal(c.encode(&c, 0, 14, &h), 0);
    assert_int_equal(c.encode(&c, 0, 15, &h), -EMSGSIZE);

    /* The adjustment counts toward the frame size. */
    c = make(0, 2, TAO_BIG_ENDIAN, 3, 2, 16);
    s[1] = 11;
    assert_int_equal(t_codec_decode(&c, s, 16, &f), 16);
    s[1] = 12;
    assert_int_equal(t_codec_decode(&c, s, 2, &f), -EMSGSIZE);

    /* Default: 8 MiB whole frame. */
    c = make(0, 4, TAO_BIG_ENDIAN, 0, 4, 0);
    const uint8_t at_max[4] = {0x00, 0x7f, 0xff, 0xfc}, over[4] = {0x00, 0x7f, 0xff, 0xfd};
    assert_int_equal(t_codec_decode(&c, at_max, 4, &f), 0);
    assert_int_equal(t_codec_decode(&c, over, 4, &f), -EMSGSIZE);
}

/* Peer-controlled 8-byte lengths and extreme adjustments must not wrap. */
static void test_huge_lengths(void **state)
{
    tao_frame_t f;
    uint8_t s[8];
    tao_codec_t c = make(0, 8, TAO_BIG_ENDIAN, 0, 8, 0);
    memset(s, 0xff, 8);
    assert_int_equal(t_codec_decode(&c, s, 8, &f), -EMSGSIZE);
    put(s, 8, TAO_BIG_ENDIAN, (uint64_t)1 << 63);
    assert_int_equal(t_codec_decode(&c, s, 8, &f), -EMSGSIZE);

    c = make(0, 8, TAO_LITTLE_ENDIAN, INT64_MAX, 8, SIZE_MAX);
    put(s, 8, TAO_LITTLE_ENDIAN, UINT64_MAX);
    assert_int_equal(t_codec_decode(&c, s, 8, &f), -EMSGSIZE);
    put(s, 8, TAO_LITTLE_ENDIAN, 0);
    assert_int_equal(t_codec_decode(&c, s, 8, &f), -EMSGSIZE);

    c = make(0, 8, TAO_LITTLE_ENDIAN, INT64_MIN, 8, 0);
    put(s, 8, TAO_LITTLE_ENDIAN, (uint64_t)1 << 63);
    assert_int_equal(t_codec_decode(&c, s, 8, &f), 8);
    assert_int_equal(f.len, 0);
    put(s, 8, TAO_LITTLE_ENDIAN, ((uint64_t)1 << 63) - 1);
    assert_int_equal(t_codec_decode(&c, s, 8, &f), -EBADMSG);
    put(s, 8, TAO_LITTLE_ENDIAN, UINT64_MAX);
    assert_int_equal(t_codec_decode(&c, s, 8, &f), -EMSGSIZE);
    tao_frame_hdr_t h;
    assert_int_equal(c.encode(&c, 0, 0, &h), 0);
    assert_memory_equal(h.pre, "\0\0\0\0\0\0\0\x80", 8);
    assert_int_equal(c.encode(&c, 0, 1, &h), 0);
    assert_memory_equal(h.pre, "\x01\0\0\0\0\0\0\x80", 8);
}

static void test_encode_limits(void **state)
{
    tao_frame_hdr_t h;
    /* The field width, not max_frame, is the limit here. */
    tao_codec_t c = make(0, 1, TAO_BIG_ENDIAN, 0, 1, 0);
    assert_int_equal(c.encode(&c, 0, 255, &h), 0);
    assert_int_equal(c.encode(&c, 0, 256, &h), -EMSGSIZE);
    c = make(0, 1, TAO_BIG_ENDIAN, -2, 1, 0);
    assert_int_equal(c.encode(&c, 0, 253, &h), 0);
    assert_int_equal(h.pre[0], 255);
    assert_int_equal(c.encode(&c, 0, 254, &h), -EMSGSIZE);
    c = make(0, 2, TAO_LITTLE_ENDIAN, 0, 2, 0);
    assert_int_equal(c.encode(&c, 0, 65535, &h), 0);
    assert_int_equal(c.encode(&c, 0, 65536, &h), -EMSGSIZE);

    /* A header longer than hdr->pre can hold. */
    c = make(17, 8, TAO_BIG_ENDIAN, 0, 25, 0);
    assert_int_equal(c.encode(&c, 0, 1, &h), -ENOTSUP);
    c = make(16, 8, TAO_BIG_ENDIAN, 0, 24, 0);
    memset(&h, 0xff, sizeof(h));
    assert_int_equal(c.encode(&c, 0, 1, &h), 0);
    assert_int_equal(h.pre_len, 24);
    assert_memory_equal(h.pre, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x01", 24);
}

/* Whatever encode writes, decode reads back, for a grid of settings. */
static void test_roundtrip(void **state)
{
    const int64_t adjusts[] = {-12, -3, 0, 2};
    const size_t offs[] = {0, 3};
    const size_t lens[] = {0, 1, 12, 200};
    uint8_t s[TAO_FRAME_PRE_MAX + 200];
    memset(s, 0xC3, sizeof(s));
    for (size_t si = 0; si < 4; si++)
        for (size_t oi = 0; oi < 2; oi++)
            for (size_t ai = 0; ai < 4; ai++)
                for (size_t fi = 0; fi < 2; fi++)
                    for (size_t li = 0; li < 4; li++) {
                        size_t header = offs[fi] + sizes[si];
                        tao_codec_t c =
                            make(offs[fi], sizes[si], orders[oi], adjusts[ai], header, 0);
                        tao_frame_hdr_t h;
                        int rc = c.encode(&c, 9, lens[li], &h);
                        if ((int64_t)lens[li] < adjusts[ai]) {
                            assert_int_equal(rc, -ERANGE);
                            continue;
                        }
                        if (sizes[si] == 1 && (int64_t)lens[li] - adjusts[ai] > 255) {
                            assert_int_equal(rc, -EMSGSIZE);
                            continue;
                        }
                        assert_int_equal(rc, 0);
                        assert_int_equal(h.pre_len, header);
                        memcpy(s, h.pre, h.pre_len);
                        tao_frame_t f;
                        ssize_t n = t_codec_decode(&c, s, header + lens[li] + 5, &f);
                        assert_int_equal(n, header + lens[li]);
                        assert_int_equal(f.len, lens[li]);
                        assert_ptr_equal(f.payload, s + header);
                    }
}

static void test_stream(void **state)
{
    tao_codec_t c = make(1, 2, TAO_LITTLE_ENDIAN, -3, 3, 0);
    uint8_t s[2048];
    t_frame_rec_t want[50];
    size_t n = 0;
    for (int i = 0; i < 50; i++) {
        size_t len = (size_t)(i * 11) % 37;
        tao_frame_hdr_t h;
        assert_int_equal(c.encode(&c, 77, len, &h), 0);
        memcpy(s + n, h.pre, h.pre_len);
        s[n] = (uint8_t)i; /* the preamble byte is ignored */
        memset(s + n + h.pre_len, 'a' + i % 26, len);
        want[i] = (t_frame_rec_t){77, n + h.pre_len, len};
        n += h.pre_len + len;
    }
    size_t at = 0;
    for (int i = 0; i < 50; i++) {
        tao_frame_t f;
        ssize_t rc = c.decode(&c, s + at, n - at, &f);
        assert_int_equal(rc, 3 + want[i].len);
        assert_ptr_equal(f.payload, s + want[i].off);
        at += (size_t)rc;
    }
    assert_int_equal(at, n);
    /* The first three frames in every split. */
    t_codec_feed_all_chunks(&c, s, want[3].off - 3, want, 3);
    const size_t chunks[] = {1, 2, 3, 4, 5, 64, n};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        t_frame_rec_t got[50];
        size_t left = 1;
        assert_int_equal(t_codec_feed(&c, s, n, chunks[i], got, 50, &left), 50);
        assert_int_equal(left, 0);
        for (int k = 0; k < 50; k++) {
            assert_int_equal(got[k].off, want[k].off);
            assert_int_equal(got[k].len, want[k].len);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),        cmocka_unit_test(test_sizes_and_orders),
        cmocka_unit_test(test_netty_examples), cmocka_unit_test(test_offset_and_strip),
        cmocka_unit_test(test_adjust),         cmocka_unit_test(test_max_frame),
        cmocka_unit_test(test_huge_lengths),   cmocka_unit_test(test_encode_limits),
        cmocka_unit_test(test_roundtrip),      cmocka_unit_test(test_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
