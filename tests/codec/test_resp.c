/* RESP codec: requests in both forms as redis-cli, redis-benchmark and
 * telnet send them, replies of every kind, every split point, the limits
 * (refused as soon as a header shows them), malformed input, and the
 * argument splitter. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tao/codec.h"
#include "util/t_codec.h"
#include "util/t_util.h"

static tao_codec_t make(tao_resp_mode_t mode, size_t max_bulk, size_t max_args, size_t max_inline)
{
    tao_codec_t c;
    tao_resp_opts_t o = {.mode = mode,
                         .max_bulk = max_bulk,
                         .max_args = max_args,
                         .max_inline = max_inline,
                         .type = 7};
    assert_int_equal(tao_codec_resp(&c, &o), 0);
    return c;
}

static const uint8_t *u8(const char *s)
{
    return (const uint8_t *)s;
}

/* The whole of s is one frame, and each of its prefixes needs more. */
static void whole(const tao_codec_t *c, const char *s)
{
    size_t n = strlen(s);
    tao_frame_t f;
    assert_int_equal(t_codec_decode(c, u8(s), n, &f), (ssize_t)n);
    assert_int_equal(f.type, 7);
    assert_int_equal(f.len, n);
    assert_memory_equal(f.payload, s, n);
    t_codec_prefixes(c, u8(s), n);
}

static ssize_t dec(const tao_codec_t *c, const char *s)
{
    tao_frame_t f;
    return t_codec_decode(c, u8(s), strlen(s), &f);
}

static void test_options(void **state)
{
    tao_codec_t c;
    assert_int_equal(tao_codec_resp(NULL, NULL), -EINVAL);
    tao_resp_opts_t o = {.mode = 9};
    assert_int_equal(tao_codec_resp(&c, &o), -EINVAL);
    assert_int_equal(tao_codec_resp(&c, NULL), 0);
    assert_int_equal(c.u.resp.mode, TAO_RESP_REQUESTS);
    assert_int_equal(c.u.resp.max_bulk, 8u << 20);
    assert_int_equal(c.u.resp.max_args, 1u << 20);
    assert_int_equal(c.u.resp.max_inline, 64u << 10);
    /* Replies go out as they are: nothing before or after. */
    tao_frame_hdr_t h;
    memset(&h, 0xff, sizeof h);
    assert_int_equal(c.encode(&c, 7, 5, &h), 0);
    assert_int_equal(h.pre_len, 0);
    assert_int_equal(h.post_len, 0);
}

static void test_requests(void **state)
{
    tao_codec_t c = make(TAO_RESP_REQUESTS, 0, 0, 0);
    whole(&c, "*1\r\n$4\r\nPING\r\n");
    whole(&c, "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n");
    whole(&c, "*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"); /* an empty argument */
    whole(&c, "*0\r\n");
    /* A value holding CRLF: skipped by its length, not scanned. */
    whole(&c, "*2\r\n$4\r\nECHO\r\n$4\r\n\r\n\r\n\r\n");
    /* Inline, as telnet and redis-cli's inline mode send. */
    whole(&c, "PING\r\n");
    whole(&c, "SET k \"two words\"\n");

    /* Pipelined: one frame at a time, in order, at every chunk size. */
    static const char stream[] = "*1\r\n$4\r\nPING\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n";
    t_frame_rec_t want[] = {{7, 0, 14}, {7, 14, 6}, {7, 20, 20}};
    t_codec_feed_all_chunks(&c, u8(stream), strlen(stream), want, 3);
}

static void test_requests_malformed(void **state)
{
    tao_codec_t c = make(TAO_RESP_REQUESTS, 0, 0, 0);
    assert_int_equal(dec(&c, "*1\r\n:1\r\n"), -EBADMSG);            /* not a bulk string */
    assert_int_equal(dec(&c, "*1\r\n*1\r\n$1\r\na\r\n"), -EBADMSG); /* nested */
    assert_int_equal(dec(&c, "*-1\r\n"), -EBADMSG);                 /* nil request */
    assert_int_equal(dec(&c, "*1\r\n$-1\r\n"), -EBADMSG);           /* nil argument */
    assert_int_equal(dec(&c, "*x\r\n"), -EBADMSG);
    assert_int_equal(dec(&c, "*1\n"), -EBADMSG);                  /* LF without CR */
    assert_int_equal(dec(&c, "*1\r\n$3\r\nabcde\r\n"), -EBADMSG); /* longer than said */
    assert_int_equal(dec(&c, "*1\r\n$+3\r\nabc\r\n"), -EBADMSG);
    /* A header line that never ends is refused once it cannot be one. */
    assert_int_equal(dec(&c, "*11111111111111111111111111111111111"), -EBADMSG);
    assert_int_equal(dec(&c, "*1111"), 0);
}

static void test_limits(void **state)
{
    tao_codec_t c = make(TAO_RESP_REQUESTS, 10, 3, 16);
    whole(&c, "*1\r\n$10\r\n0123456789\r\n");
    /* Known from the header alone, before a byte of the value came. */
    assert_int_equal(dec(&c, "*1\r\n$11\r\n"), -EMSGSIZE);
    whole(&c, "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n");
    assert_int_equal(dec(&c, "*4\r\n"), -EMSGSIZE);
    assert_int_equal(dec(&c, "*99999999999\r\n"), -EMSGSIZE);
    whole(&c, "0123456789abcdef\r\n"); /* 16 bytes of inline line, and CRLF */
    assert_int_equal(dec(&c, "0123456789abcdefg\r\n"), -EMSGSIZE);
    assert_int_equal(dec(&c, "0123456789abcdefgh"), -EMSGSIZE);
    assert_int_equal(dec(&c, "0123456789abcdef\r"), 0);
}

static void test_replies(void **state)
{
    tao_codec_t c = make(TAO_RESP_REPLIES, 0, 0, 0);
    whole(&c, "+OK\r\n");
    whole(&c, "-ERR unknown command 'FOO'\r\n");
    whole(&c, ":1000\r\n");
    whole(&c, ":-2\r\n");
    whole(&c, "$5\r\nhello\r\n");
    whole(&c, "$-1\r\n");
    whole(&c, "*-1\r\n");
    whole(&c, "*3\r\n$1\r\na\r\n$-1\r\n:7\r\n");
    whole(&c, "*2\r\n*2\r\n+a\r\n:1\r\n*0\r\n");
    assert_int_equal(dec(&c, ":12a\r\n"), -EBADMSG);
    assert_int_equal(dec(&c, "?\r\n"), -EBADMSG);
    /* Nesting has a bound. */
    char deep[200] = "";
    for (int i = 0; i < 40; i++)
        strcat(deep, "*1\r\n");
    strcat(deep, ":1\r\n");
    assert_int_equal(dec(&c, deep), -EBADMSG);
}

static void test_args(void **state)
{
    tao_resp_arg_t a[4];
    const char *r = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\nv\r\nv\r\n";
    assert_int_equal(tao_resp_args(r, strlen(r), a, 4), 3);
    assert_int_equal(a[0].len, 3);
    assert_memory_equal(a[0].p, "SET", 3);
    assert_int_equal(a[2].len, 4);
    assert_memory_equal(a[2].p, "v\r\nv", 4);
    /* More than max: counted, max filled. */
    assert_int_equal(tao_resp_args(r, strlen(r), a, 1), 3);

    const char *in = "  set 'a key'  \"a value\"\t9\r\n";
    assert_int_equal(tao_resp_args(in, strlen(in), a, 4), 4);
    assert_int_equal(a[1].len, 5);
    assert_memory_equal(a[1].p, "a key", 5);
    assert_int_equal(a[2].len, 7);
    assert_memory_equal(a[3].p, "9", 1);
    assert_int_equal(tao_resp_args("\r\n", 2, a, 4), 0);
    assert_int_equal(tao_resp_args("get \"k\n", 7, a, 4), -EBADMSG);
}

static void test_builders(void **state)
{
    char b[64];
    assert_int_equal(tao_resp_simple(b, sizeof b, '+', "OK"), 5);
    assert_string_equal(b, "+OK\r\n");
    assert_int_equal(tao_resp_int(b, sizeof b, -12), 6);
    assert_string_equal(b, ":-12\r\n");
    assert_int_equal(tao_resp_header(b, sizeof b, '$', -1), 5);
    assert_string_equal(b, "$-1\r\n");
    /* snprintf's rule: the length needed, even when it does not fit. */
    assert_int_equal(tao_resp_header(b, 3, '*', 12345), 8);
    assert_string_equal(b, "*1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_requests_malformed),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_replies),
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_builders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
