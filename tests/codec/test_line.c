/* Line codec: delimiters of every length, splits inside the delimiter, empty
 * lines, max_line and the moment an overlong line is refused. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tao/codec.h"
#include "util/t_codec.h"
#include "util/t_util.h"

static tao_codec_t make(const char *delim, size_t max)
{
    tao_codec_t c;
    tao_line_opts_t o = {.delimiter = delim, .max_line = max, .type = 3};
    assert_int_equal(tao_codec_line(&c, &o), 0);
    return c;
}

static const uint8_t *u8(const char *s)
{
    return (const uint8_t *)s;
}

static void test_options(void **state)
{
    tao_codec_t c, before;
    memset(&c, 0x5A, sizeof(c));
    before = c;
    tao_line_opts_t o = {.delimiter = ""};
    assert_int_equal(tao_codec_line(&c, &o), -EINVAL);
    o.delimiter = "123456789";
    assert_int_equal(tao_codec_line(&c, &o), -EINVAL);
    assert_int_equal(tao_codec_line(NULL, &o), -EINVAL);
    assert_memory_equal(&c, &before, sizeof(c));

    assert_int_equal(tao_codec_line(&c, NULL), 0);
    assert_int_equal(c.u.line.delim_len, 1);
    assert_int_equal(c.u.line.delim[0], '\n');
    assert_int_equal(c.max_payload, 64 * 1024);
    o.delimiter = "12345678";
    assert_int_equal(tao_codec_line(&c, &o), 0);
    assert_int_equal(c.u.line.delim_len, 8);
}

static void test_default_newline(void **state)
{
    tao_codec_t c = make(NULL, 0);
    tao_frame_t f;
    assert_int_equal(t_codec_decode(&c, u8("hello\nworld\n"), 12, &f), 6);
    assert_int_equal(f.type, 3);
    assert_int_equal(f.len, 5);
    assert_memory_equal(f.payload, "hello", 5);
    assert_int_equal(t_codec_decode(&c, u8("hello"), 5, &f), 0);
    /* A "\r" stays in the payload: only the delimiter is removed. */
    assert_int_equal(t_codec_decode(&c, u8("hi\r\n"), 4, &f), 4);
    assert_int_equal(f.len, 3);
    t_codec_prefixes(&c, u8("hello\n"), 6);

    tao_frame_hdr_t h;
    memset(&h, 0xff, sizeof(h));
    assert_int_equal(c.encode(&c, 3, 5, &h), 0);
    assert_int_equal(h.pre_len, 0);
    assert_int_equal(h.post_len, 1);
    assert_int_equal(h.post[0], '\n');
}

static void test_empty_line(void **state)
{
    tao_codec_t c = make("\r\n", 0);
    tao_frame_t f;
    assert_int_equal(t_codec_decode(&c, u8("\r\nx"), 3, &f), 2);
    assert_int_equal(f.len, 0);
    c = make(NULL, 0);
    assert_int_equal(t_codec_decode(&c, u8("\n"), 1, &f), 1);
    assert_int_equal(f.len, 0);
    assert_int_equal(c.decode(&c, NULL, 0, &f), 0);
    const t_frame_rec_t want[] = {{3, 0, 0}, {3, 1, 0}, {3, 2, 1}, {3, 4, 0}};
    t_codec_feed_all_chunks(&c, u8("\n\nx\n\n"), 5, want, 4);
}

/* A multi-byte delimiter split across feeds, and partial delimiters that turn
 * out to be payload. */
static void test_multibyte_split(void **state)
{
    tao_codec_t c = make("\r\n", 0);
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\nx\ry\r\n";
    const t_frame_rec_t want[] = {{3, 0, 14}, {3, 16, 7}, {3, 25, 0}, {3, 27, 3}};
    t_codec_feed_all_chunks(&c, u8(s), strlen(s), want, 4);
    t_codec_prefixes(&c, u8(s), 16);

    c = make("<END>", 0);
    s = "a<EN<END><E<END>b<END<END>";
    const t_frame_rec_t want5[] = {{3, 0, 4}, {3, 9, 2}, {3, 16, 5}};
    t_codec_feed_all_chunks(&c, u8(s), strlen(s), want5, 3);

    c = make("\x01\x02\x03\x04\x05\x06\x07\x08", 0);
    const uint8_t b[] = {'a', 1, 2, 3, 4, 5, 6, 7, 1, 2, 3, 4, 5, 6, 7, 8, 'z'};
    const t_frame_rec_t want8[] = {{3, 0, 8}};
    t_codec_feed_all_chunks(&c, b, 16, want8, 1);
    tao_frame_hdr_t h;
    assert_int_equal(c.encode(&c, 3, 0, &h), 0);
    assert_int_equal(h.post_len, 8);
    assert_memory_equal(h.post, b + 8, 8);
}

static void test_max_line(void **state)
{
    tao_codec_t c = make("\r\n", 4);
    tao_frame_t f;
    tao_frame_hdr_t h;
    assert_int_equal(t_codec_decode(&c, u8("abcd\r\n"), 6, &f), 6);
    assert_int_equal(f.len, 4);
    /* Without a delimiter, max + delimiter bytes prove the line too long. */
    assert_int_equal(t_codec_decode(&c, u8("abcd\r"), 5, &f), 0);
    assert_int_equal(t_codec_decode(&c, u8("abcde"), 5, &f), 0);
    assert_int_equal(t_codec_decode(&c, u8("abcde\r"), 6, &f), -EMSGSIZE);
    assert_int_equal(t_codec_decode(&c, u8("abcde\r\n"), 7, &f), -EMSGSIZE);
    assert_int_equal(t_codec_decode(&c, u8("abcdefghij\r\n"), 12, &f), -EMSGSIZE);
    assert_int_equal(c.encode(&c, 3, 4, &h), 0);
    assert_int_equal(c.encode(&c, 3, 5, &h), -EMSGSIZE);

    /* Default 64 KiB. */
    c = make(NULL, 0);
    const size_t max = 64 * 1024;
    uint8_t *s = malloc(max + 2);
    assert_non_null(s);
    memset(s, 'a', max + 2);
    s[max] = '\n';
    assert_int_equal(c.decode(&c, s, max + 1, &f), max + 1);
    assert_int_equal(f.len, max);
    s[max] = 'a';
    assert_int_equal(c.decode(&c, s, max, &f), 0);
    assert_int_equal(c.decode(&c, s, max + 1, &f), -EMSGSIZE);
    s[max + 1] = '\n';
    assert_int_equal(c.decode(&c, s, max + 2, &f), -EMSGSIZE);
    free(s);
}

static void test_fifty_lines(void **state)
{
    tao_codec_t c = make("\r\n", 0);
    char s[2048];
    t_frame_rec_t want[50];
    size_t n = 0;
    for (int i = 0; i < 50; i++) {
        size_t len = (size_t)(i * 7) % 23;
        memset(s + n, 'a' + i % 26, len);
        want[i] = (t_frame_rec_t){3, n, len};
        n += len;
        memcpy(s + n, "\r\n", 2);
        n += 2;
    }
    size_t at = 0;
    for (int i = 0; i < 50; i++) {
        tao_frame_t f;
        ssize_t rc = c.decode(&c, u8(s) + at, n - at, &f);
        assert_int_equal(rc, want[i].len + 2);
        assert_ptr_equal(f.payload, u8(s) + want[i].off);
        at += (size_t)rc;
    }
    assert_int_equal(at, n);
    const size_t chunks[] = {1, 2, 3, 5, 64, n};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        t_frame_rec_t got[50];
        size_t left = 1;
        assert_int_equal(t_codec_feed(&c, u8(s), n, chunks[i], got, 50, &left), 50);
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
        cmocka_unit_test(test_options),    cmocka_unit_test(test_default_newline),
        cmocka_unit_test(test_empty_line), cmocka_unit_test(test_multibyte_split),
        cmocka_unit_test(test_max_line),   cmocka_unit_test(test_fifty_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
