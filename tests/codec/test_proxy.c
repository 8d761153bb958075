/* PROXY protocol parser: golden headers of each form, byte for byte, as
 * HAProxy's send-proxy and send-proxy-v2 write them; every strict prefix
 * asks for more; trailing protocol bytes are not taken; each malformed
 * form is refused, as early as its bytes allow; what is not a signature is
 * told at its first differing byte; TAO_PROXY_MAX and one byte more. */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "tao/proxy.h"
#include "util/t_util.h"

/* v2's signature: \r\n\r\n\0\r\nQUIT\n. */
#define SIG 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a

/* What follows a header on the wire: must be left alone. */
static const char after[] = "GET / HTTP/1.1\r\n\r\n";

/* Parse from an exact-size heap copy, so that AddressSanitizer sees any
 * read past n. */
static ssize_t parse(const void *s, size_t n, tao_proxy_hdr_t *h)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n)
        memcpy(copy, s, n);
    ssize_t rc = tao_proxy_parse(copy, n, h);
    free(copy);
    return rc;
}

static ssize_t str(const char *s)
{
    tao_proxy_hdr_t h;
    return parse(s, strlen(s), &h);
}

/* s[0..n) is one whole header: each strict prefix asks for more and leaves
 * *h alone, and bytes after it change nothing. */
static void whole(const void *s, size_t n, tao_proxy_hdr_t *h)
{
    tao_proxy_hdr_t g;
    for (size_t k = 0; k < n; k++) {
        memset(&g, 0xa5, sizeof(g));
        assert_int_equal(parse(s, k, &g), 0);
        for (size_t i = 0; i < sizeof(g); i++)
            assert_int_equal(((uint8_t *)&g)[i], 0xa5);
    }
    assert_int_equal(parse(s, n, h), (ssize_t)n);
    uint8_t *more = malloc(n + sizeof(after));
    assert_non_null(more);
    memcpy(more, s, n);
    memcpy(more + n, after, sizeof(after));
    assert_int_equal(parse(more, n + sizeof(after), &g), (ssize_t)n);
    free(more);
    assert_memory_equal(&g, h, sizeof(g));
}

static void whole_str(const char *s, tao_proxy_hdr_t *h)
{
    whole(s, strlen(s), h);
}

/* s[0..n) is refused with err, and stays refused with more bytes. */
static void refused(const void *s, size_t n, ssize_t err)
{
    tao_proxy_hdr_t h;
    assert_int_equal(parse(s, n, &h), err);
    uint8_t *more = malloc(n + sizeof(after));
    assert_non_null(more);
    memcpy(more, s, n);
    memcpy(more + n, after, sizeof(after));
    assert_int_equal(parse(more, n + sizeof(after), &h), err);
    free(more);
}

static void bad(const char *s)
{
    refused(s, strlen(s), -EPROTO);
}

/* The address and port of an IPv4 side, byte for byte. */
static void is_in(const struct sockaddr_storage *ss, socklen_t len, const uint8_t a[4],
                  const uint8_t port[2])
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
    assert_int_equal(len, sizeof(*in));
    assert_int_equal(in->sin_family, AF_INET);
    assert_memory_equal(&in->sin_addr, a, 4);
    assert_memory_equal(&in->sin_port, port, 2);
}

static void is_in6(const struct sockaddr_storage *ss, socklen_t len, const uint8_t a[16],
                   const uint8_t port[2])
{
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    assert_int_equal(len, sizeof(*in6));
    assert_int_equal(in6->sin6_family, AF_INET6);
    assert_memory_equal(&in6->sin6_addr, a, 16);
    assert_memory_equal(&in6->sin6_port, port, 2);
}

static void is_local(const tao_proxy_hdr_t *h, uint8_t version)
{
    assert_int_equal(h->version, version);
    assert_true(h->local);
    assert_int_equal(h->src_len, 0);
    assert_int_equal(h->dst_len, 0);
}

/* 192.168.1.10:54321 -> 10.0.0.1:443, and 2001:db8::1:1234 -> 2001:db8::2:80. */
static const uint8_t a4_src[4] = {0xc0, 0xa8, 0x01, 0x0a}, a4_dst[4] = {0x0a, 0x00, 0x00, 0x01};
static const uint8_t p4_src[2] = {0xd4, 0x31}, p4_dst[2] = {0x01, 0xbb};
static const uint8_t a6_src[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01};
static const uint8_t a6_dst[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02};
static const uint8_t p6_src[2] = {0x04, 0xd2}, p6_dst[2] = {0x00, 0x50};

/* ---- v1 ------------------------------------------------------------------- */

static void test_v1(void **state)
{
    tao_proxy_hdr_t h;
    whole_str("PROXY TCP4 192.168.1.10 10.0.0.1 54321 443\r\n", &h);
    assert_int_equal(h.version, 1);
    assert_false(h.local);
    is_in(&h.src, h.src_len, a4_src, p4_src);
    is_in(&h.dst, h.dst_len, a4_dst, p4_dst);

    whole_str("PROXY TCP6 2001:db8::1 2001:db8::2 1234 80\r\n", &h);
    assert_int_equal(h.version, 1);
    assert_false(h.local);
    is_in6(&h.src, h.src_len, a6_src, p6_src);
    is_in6(&h.dst, h.dst_len, a6_dst, p6_dst);

    /* The longest line the spec names (104 bytes), and port 0. */
    whole_str("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
              "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
              &h);
    whole_str("PROXY TCP4 0.0.0.0 255.255.255.255 0 0\r\n", &h);
    static const uint8_t zero[4], ones[4] = {0xff, 0xff, 0xff, 0xff}, p0[2];
    is_in(&h.src, h.src_len, zero, p0);
    is_in(&h.dst, h.dst_len, ones, p0);

    /* UNKNOWN: whatever follows it up to the CRLF is ignored. */
    whole_str("PROXY UNKNOWN\r\n", &h);
    is_local(&h, 1);
    whole_str("PROXY UNKNOWN ffff:f::1 ffff:f::2 1 2\r\n", &h);
    is_local(&h, 1);
}

static void test_v1_length(void **state)
{
    /* 107 bytes with the CRLF are accepted, 108 are not; at 107 bytes
     * without an LF the answer is known. */
    char line[200] = "PROXY UNKNOWN";
    memset(line + 13, 'x', 105 - 13);
    memcpy(line + 105, "\r\n", 3);
    tao_proxy_hdr_t h;
    whole_str(line, &h);
    is_local(&h, 1);
    memset(line + 13, 'x', 106 - 13);
    memcpy(line + 106, "\r\n", 3);
    bad(line);
    line[106] = '\0';
    assert_int_equal(str(line), 0);
    line[106] = 'x';
    line[107] = '\0';
    assert_int_equal(str(line), -EPROTO);
}

static void test_v1_malformed(void **state)
{
    bad("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n");     /* bare LF */
    bad("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n"); /* a CR too many */
    bad("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n");  /* double space */
    bad("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n");
    bad("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n"); /* trailing space */
    bad("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
    bad("PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n");
    /* Missing and extra fields. */
    bad("PROXY \r\n");
    bad("PROXY TCP4\r\n");
    bad("PROXY TCP4 1.2.3.4\r\n");
    bad("PROXY TCP4 1.2.3.4 5.6.7.8\r\n");
    bad("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n");
    bad("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n");
    /* Protocols. */
    bad("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n");
    bad("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n");
    bad("PROXY TCP 1.2.3.4 5.6.7.8 1 2\r\n");
    bad("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n");
    bad("PROXY UNKNOW\r\n");
    /* Addresses: malformed, of the other family, not canonical. */
    bad("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n");
    bad("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n");
    bad("PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n");
    bad("PROXY TCP4 1.2.3.4. 5.6.7.8 1 2\r\n");
    bad("PROXY TCP4 localhost 5.6.7.8 1 2\r\n");
    bad("PROXY TCP4 ::1 ::2 1 2\r\n");
    bad("PROXY TCP4 1.2.3.4 ::2 1 2\r\n");
    bad("PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n");
    bad("PROXY TCP6 ::1 5.6.7.8 1 2\r\n");
    bad("PROXY TCP6 ::1::2 ::3 1 2\r\n");
    bad("PROXY TCP6 fe80::1%eth0 ::2 1 2\r\n");
    bad("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::2 1 2\r\n");
    static const char nul[] = "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n";
    refused(nul, sizeof(nul) - 1, -EPROTO);
    /* Ports: range, sign, leading zero, not digits. */
    bad("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n");
    bad("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n");
    bad("PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n");
    bad("PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n");
    bad("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n");
    bad("PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n");
    bad("PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n");
    bad("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n");
    bad("PROXY TCP4 1.2.3.4 5.6.7.8 8o 2\r\n");
    bad("PROXY TCP4 1.2.3.4 5.6.7.8 0x50 2\r\n");
    /* A line that does not end within 107 bytes. */
    char line[120] = "PROXY TCP4 1.2.3.4 5.6.7.8 1 ";
    memset(line + strlen(line), '1', 107 - strlen(line));
    bad(line);
}

/* ---- v2 ------------------------------------------------------------------- */

static void test_v2_tcp(void **state)
{
    static const uint8_t tcp4[] = {SIG,  0x21, 0x11, 0x00, 0x0c, 0xc0, 0xa8, 0x01, 0x0a,
                                   0x0a, 0x00, 0x00, 0x01, 0xd4, 0x31, 0x01, 0xbb};
    tao_proxy_hdr_t h;
    whole(tcp4, sizeof(tcp4), &h);
    assert_int_equal(sizeof(tcp4), 28);
    assert_int_equal(h.version, 2);
    assert_false(h.local);
    is_in(&h.src, h.src_len, a4_src, p4_src);
    is_in(&h.dst, h.dst_len, a4_dst, p4_dst);

    static const uint8_t tcp6[] = {SIG,  0x21, 0x21, 0x00, 0x24, /* */
                                   0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, /* src 2001:db8::1 */
                                   0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, /* dst 2001:db8::2 */
                                   0x04, 0xd2, 0x00, 0x50};
    whole(tcp6, sizeof(tcp6), &h);
    assert_int_equal(sizeof(tcp6), 52);
    assert_int_equal(h.version, 2);
    assert_false(h.local);
    is_in6(&h.src, h.src_len, a6_src, p6_src);
    is_in6(&h.dst, h.dst_len, a6_dst, p6_dst);
}

static void test_v2_local(void **state)
{
    tao_proxy_hdr_t h;
    /* LOCAL, as HAProxy's health checks send it. */
    static const uint8_t local[] = {SIG, 0x20, 0x00, 0x00, 0x00};
    whole(local, sizeof(local), &h);
    is_local(&h, 2);
    /* LOCAL with addresses: they are ignored. */
    static const uint8_t local4[] = {SIG, 0x20, 0x11, 0x00, 0x0c, 1, 2, 3, 4,
                                     5,   6,    7,    8,    0x00, 1, 0, 2};
    whole(local4, sizeof(local4), &h);
    is_local(&h, 2);
    /* PROXY over UNSPEC, UDP over IPv4 and IPv6: no TCP client to name. */
    static const uint8_t unspec[] = {SIG, 0x21, 0x00, 0x00, 0x00};
    whole(unspec, sizeof(unspec), &h);
    is_local(&h, 2);
    static const uint8_t udp4[] = {SIG, 0x21, 0x12, 0x00, 0x0c, 1,  2, 3, 4,
                                   5,   6,    7,    8,    0,    53, 0, 53};
    whole(udp4, sizeof(udp4), &h);
    is_local(&h, 2);
    static const uint8_t udp6[] = {
        SIG, 0x21, 0x22, 0x00, 0x24, [16 + 15] = 1, [16 + 31] = 2, [16 + 33] = 53, [16 + 35] = 53};
    whole(udp6, sizeof(udp6), &h);
    is_local(&h, 2);
}

static void test_v2_unix(void **state)
{
    /* Two 108-byte paths, NUL-padded: 216 bytes of addresses. */
    static const uint8_t unix_stream[16 + 216] = {SIG, 0x21, 0x31, 0x00, 0xd8, '/',
                                                  'r', 'u',  'n',  '/',  'a',  [16 + 108] = '/',
                                                  'r', 'u',  'n',  '/',  'b'};
    tao_proxy_hdr_t h;
    whole(unix_stream, sizeof(unix_stream), &h);
    is_local(&h, 2);
    static const uint8_t unix_dgram[16 + 216] = {SIG, 0x21, 0x32, 0x00, 0xd8};
    whole(unix_dgram, sizeof(unix_dgram), &h);
    is_local(&h, 2);
}

static void test_v2_tlvs(void **state)
{
    /* ALPN "h2", AUTHORITY "example.com", NOOP with no value, UNIQUE_ID
     * with one byte, after the TCP4 addresses: 12 + 5 + 14 + 3 + 4 = 38. */
    static const uint8_t tlv[] = {SIG,  0x21, 0x11, 0x00, 0x26, 0xc0, 0xa8, 0x01, 0x0a,
                                  0x0a, 0x00, 0x00, 0x01, 0xd4, 0x31, 0x01, 0xbb, /* */
                                  0x01, 0x00, 0x02, 'h',  '2',                    /* */
                                  0x02, 0x00, 0x0b, 'e',  'x',  'a',  'm',  'p',  'l',
                                  'e',  '.',  'c',  'o',  'm', /* */
                                  0x04, 0x00, 0x00,            /* */
                                  0x05, 0x00, 0x01, 0x7f};
    assert_int_equal(sizeof(tlv), 16 + 38);
    tao_proxy_hdr_t h;
    whole(tlv, sizeof(tlv), &h);
    assert_false(h.local);
    is_in(&h.src, h.src_len, a4_src, p4_src);
    is_in(&h.dst, h.dst_len, a4_dst, p4_dst);
    /* TLVs after LOCAL are checked all the same. */
    static const uint8_t local[] = {SIG,  0x20, 0x00, 0x00, 0x06, 0x04,
                                    0x00, 0x00, 0xee, 0x00, 0x00};
    whole(local, sizeof(local), &h);
    is_local(&h, 2);
}

static void test_v2_malformed(void **state)
{
    /* Version and command are judged at byte 13, the family at byte 14,
     * the length against the family at byte 16. */
    static const uint8_t ver1[] = {SIG, 0x11}, ver3[] = {SIG, 0x31}, ver0[] = {SIG, 0x01};
    static const uint8_t cmd2[] = {SIG, 0x22}, cmdf[] = {SIG, 0x2f};
    refused(ver1, sizeof(ver1), -EPROTO);
    refused(ver3, sizeof(ver3), -EPROTO);
    refused(ver0, sizeof(ver0), -EPROTO);
    refused(cmd2, sizeof(cmd2), -EPROTO);
    refused(cmdf, sizeof(cmdf), -EPROTO);
    static const uint8_t fams[] = {0x01, 0x02, 0x10, 0x13, 0x20, 0x23, 0x30, 0x33, 0x41, 0xff};
    for (size_t i = 0; i < sizeof(fams); i++) {
        uint8_t fam[] = {SIG, 0x21, fams[i]};
        refused(fam, sizeof(fam), -EPROTO);
    }
    /* One byte short of each family's addresses. */
    static const uint8_t shorts[][2] = {{0x11, 11}, {0x12, 11},  {0x21, 35},
                                        {0x22, 35}, {0x31, 215}, {0x32, 215}};
    for (size_t i = 0; i < sizeof(shorts) / sizeof(shorts[0]); i++) {
        uint8_t s[] = {SIG, 0x21, shorts[i][0], 0x00, shorts[i][1]};
        refused(s, sizeof(s), -EPROTO);
    }
    /* Under LOCAL the family and the block are ignored, as the spec says
     * (a health check): only the length counts. */
    uint8_t local[16 + 11] = {SIG, 0x20, 0x11, 0x00, 11};
    tao_proxy_hdr_t l;
    whole(local, sizeof local, &l);
    is_local(&l, 2);
    local[13] = 0xff;
    whole(local, sizeof local, &l);
    is_local(&l, 2);
    /* A TLV past the end: its value, its length, its type. */
    static const uint8_t over1[] = {SIG, 0x21, 0x00, 0x00, 0x04, 0x01, 0x00, 0x02, 'h'};
    static const uint8_t over2[] = {SIG, 0x21, 0x00, 0x00, 0x02, 0x01, 0x00};
    static const uint8_t over3[] = {SIG, 0x21, 0x00, 0x00, 0x01, 0x01};
    static const uint8_t over4[] = {SIG, 0x21, 0x11, 0x00, 0x0f, 1, 2, 3,    4,    5,
                                    6,   7,    8,    0,    1,    0, 2, 0x04, 0xff, 0xff};
    refused(over1, sizeof(over1), -EPROTO);
    refused(over2, sizeof(over2), -EPROTO);
    refused(over3, sizeof(over3), -EPROTO);
    refused(over4, sizeof(over4), -EPROTO);
    /* An announced length past TAO_PROXY_MAX: known from the 16 bytes. */
    static const uint8_t huge[] = {SIG, 0x21, 0x11, 0xff, 0xff};
    refused(huge, sizeof(huge), -EPROTO);
    static const uint8_t v15[] = {SIG, 0x21, 0x11, 0xff};
    tao_proxy_hdr_t h;
    assert_int_equal(parse(v15, sizeof(v15), &h), 0);
}

static void test_v2_max(void **state)
{
    /* UNSPEC with one TLV filling the rest: exactly TAO_PROXY_MAX bytes. */
    size_t n = TAO_PROXY_MAX, body = n - 16, v = body - 3;
    uint8_t *b = calloc(1, n + 1);
    assert_non_null(b);
    static const uint8_t head[] = {SIG, 0x21, 0x00};
    memcpy(b, head, sizeof(head));
    b[14] = (uint8_t)(body >> 8);
    b[15] = (uint8_t)body;
    b[16] = 0xe0;
    b[17] = (uint8_t)(v >> 8);
    b[18] = (uint8_t)v;
    tao_proxy_hdr_t h;
    whole(b, n, &h);
    is_local(&h, 2);
    /* One more byte of TLV value: refused from the length alone. */
    body++, v++;
    b[14] = (uint8_t)(body >> 8);
    b[15] = (uint8_t)body;
    b[17] = (uint8_t)(v >> 8);
    b[18] = (uint8_t)v;
    refused(b, 16, -EPROTO);
    refused(b, n + 1, -EPROTO);
    free(b);
}

/* ---- signatures ------------------------------------------------------------ */

static void test_not_proxy(void **state)
{
    tao_proxy_hdr_t h;
    assert_int_equal(parse("", 0, &h), 0);
    refused("GET / HTTP/1.1\r\n", 16, -ENOENT);
    refused("PROXZ", 5, -ENOENT);
    refused("PROXY\r\n", 7, -ENOENT); /* the space belongs to the signature */
    refused("proxy TCP4", 10, -ENOENT);
    refused("\r\n\r\nX", 5, -ENOENT);
    refused("\r\n\r\n\0\r\nQUIT\r", 12, -ENOENT);
    refused("\x16\x03\x01\x02\x00", 5, -ENOENT); /* a TLS ClientHello */
    refused("*1\r\n$4\r\nPING\r\n", 14, -ENOENT);
    refused("\0", 1, -ENOENT);
    /* Every prefix of either signature may still become a header. */
    static const uint8_t v2[] = {SIG};
    for (size_t k = 1; k <= sizeof(v2); k++)
        assert_int_equal(parse(v2, k, &h), 0);
    for (size_t k = 1; k <= 6; k++)
        assert_int_equal(parse("PROXY ", k, &h), 0);
    assert_int_equal(parse("PROXY TCP4", 10, &h), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1),           cmocka_unit_test(test_v1_length),
        cmocka_unit_test(test_v1_malformed), cmocka_unit_test(test_v2_tcp),
        cmocka_unit_test(test_v2_local),     cmocka_unit_test(test_v2_unix),
        cmocka_unit_test(test_v2_tlvs),      cmocka_unit_test(test_v2_malformed),
        cmocka_unit_test(test_v2_max),       cmocka_unit_test(test_not_proxy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
