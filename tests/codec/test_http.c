/* HTTP/1.1 request codec: requests as curl and wrk send them, bodies by
 * length and chunked, pipelining at every split point, each limit with its
 * own error (and status), and the malformed requests a strict server must
 * refuse (smuggling pairs, folding, bare LF). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tao/codec.h"
#include "util/t_codec.h"
#include "util/t_util.h"

static tao_codec_t make(size_t line, size_t head, size_t headers, size_t body)
{
    tao_codec_t c;
    tao_http_opts_t o = {
        .max_line = line, .max_head = head, .max_headers = headers, .max_body = body, .type = 9};
    assert_int_equal(tao_codec_http(&c, &o), 0);
    return c;
}

static ssize_t dec(const tao_codec_t *c, const char *s)
{
    tao_frame_t f;
    return t_codec_decode(c, (const uint8_t *)s, strlen(s), &f);
}

/* s is one whole request; each prefix asks for more. */
static void whole(const tao_codec_t *c, const char *s)
{
    size_t n = strlen(s);
    tao_frame_t f;
    assert_int_equal(t_codec_decode(c, (const uint8_t *)s, n, &f), (ssize_t)n);
    assert_int_equal(f.type, 9);
    assert_int_equal(f.len, n);
    t_codec_prefixes(c, (const uint8_t *)s, n);
}

static void test_get(void **state)
{
    tao_codec_t c = make(0, 0, 0, 0);
    const char *r = "GET /index.html?x=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/7.88.1\r\n"
                    "Accept: */*\r\n\r\n";
    whole(&c, r);
    tao_http_req_t q;
    tao_http_header_t h[8];
    assert_int_equal(tao_http_parse(&c, r, strlen(r), &q, h, 8), 0);
    assert_int_equal(q.method_len, 3);
    assert_memory_equal(q.method, "GET", 3);
    assert_int_equal(q.target_len, 15);
    assert_memory_equal(q.target, "/index.html?x=1", 15);
    assert_int_equal(q.minor, 1);
    assert_int_equal(q.nheaders, 3);
    assert_int_equal(h[1].name_len, 10);
    assert_memory_equal(h[1].value, "curl/7.88.1", 11);
    assert_true(q.keep_alive);
    assert_int_equal(q.body_len, 0);

    /* Connection: close, and HTTP/1.0's default. */
    const char *cl = "GET / HTTP/1.1\r\nConnection: Close\r\n\r\n";
    assert_int_equal(tao_http_parse(&c, cl, strlen(cl), &q, h, 8), 0);
    assert_false(q.keep_alive);
    const char *old = "GET / HTTP/1.0\r\n\r\n";
    assert_int_equal(tao_http_parse(&c, old, strlen(old), &q, h, 8), 0);
    assert_false(q.keep_alive);
    const char *oldka = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    assert_int_equal(tao_http_parse(&c, oldka, strlen(oldka), &q, h, 8), 0);
    assert_true(q.keep_alive);
}

static void test_bodies(void **state)
{
    tao_codec_t c = make(0, 0, 0, 0);
    const char *r = "POST /up HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
    whole(&c, r);
    /* Knowing the whole size from the head, decode says it. */
    tao_frame_t f = {0};
    assert_int_equal(t_codec_decode(&c, (const uint8_t *)r, strlen(r) - 2, &f), 0);
    assert_int_equal(f.len, strlen(r));

    const char *ch = "POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-T: 1\r\n\r\n";
    whole(&c, ch);
    tao_http_req_t q;
    tao_http_header_t h[4];
    assert_int_equal(tao_http_parse(&c, ch, strlen(ch), &q, h, 4), 0);
    assert_true(q.chunked);
    assert_int_equal(q.body_len, 31);
    uint8_t out[64];
    assert_int_equal(tao_http_body(&c, &q, ch, strlen(ch), out, sizeof out), 31);
    assert_memory_equal(out, "helloabcdefghijklmnopqrstuvwxyz", 31);
    assert_int_equal(tao_http_body(&c, &q, ch, strlen(ch), out, 30), -ENOSPC);
}

static void test_pipelined(void **state)
{
    tao_codec_t c = make(0, 0, 0, 0);
    static const char s[] = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                            "POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                            "\r\nGET /c HTTP/1.1\r\n\r\n";
    /* The stray CRLF before the third request line belongs to it. */
    t_frame_rec_t want[] = {{9, 0, 28}, {9, 28, 42}, {9, 70, 21}};
    t_codec_feed_all_chunks(&c, (const uint8_t *)s, strlen(s), want, 3);
}

static void test_limits(void **state)
{
    tao_codec_t c = make(24, 64, 2, 10);
    whole(&c, "GET /0123456789 HTTP/1.1\r\n\r\n"); /* 24 bytes of request line */
    assert_int_equal(dec(&c, "GET /01234567890 HTTP/1.1\r\n\r\n"), -ENAMETOOLONG);
    assert_int_equal(dec(&c, "GET /0123456789012345678901234"), -ENAMETOOLONG);
    assert_int_equal(dec(&c, "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), -EOVERFLOW);
    assert_int_equal(
        dec(&c, "GET / HTTP/1.1\r\nA: 012345678901234567890123456789012345678901234567\r\n"),
        -EOVERFLOW);
    assert_int_equal(dec(&c, "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n"), -EMSGSIZE);
    assert_int_equal(dec(&c, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nB\r\n"),
                     -EMSGSIZE);
    assert_int_equal(dec(&c, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "6\r\nabcdef\r\n5\r\n"),
                     -EMSGSIZE); /* the sum, not each chunk */
    assert_int_equal(tao_http_status_of(-ENAMETOOLONG), 414);
    assert_int_equal(tao_http_status_of(-EOVERFLOW), 431);
    assert_int_equal(tao_http_status_of(-EMSGSIZE), 413);
    assert_int_equal(tao_http_status_of(-EBADMSG), 400);
    assert_string_equal(tao_http_reason(413), "Content Too Large");
    assert_string_equal(tao_http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(tao_http_reason(200), "OK");
    assert_string_equal(tao_http_reason(299), "Error");
}

static void test_malformed(void **state)
{
    tao_codec_t c = make(0, 0, 0, 0);
    static const char *bad[] = {
        "GET / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
        "GET / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nA: 1\r\n folded\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Name: 1\r\n\r\n",
        "GET / HTTP/1.1\r\n: empty\r\n\r\n",
        "GET / HTTP/1.1\nHost: x\n\n",
        "GET  / HTTP/1.1\r\n\r\n",
        "GET / HTTP/2.0\r\n\r\n",
        "GET / HTTP/1.1 \r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nA: a\x01b\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZ\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (dec(&c, bad[i]) != -EBADMSG)
            fail_msg("accepted or misjudged: %s", bad[i]);
    }
    /* Lenient where the RFC asks: a CRLF before the request line. */
    whole(&c, "\r\n\r\nGET / HTTP/1.1\r\n\r\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get),       cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_pipelined), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
