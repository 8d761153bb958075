/* The PROXY protocol header (HAProxy's proxy-protocol.txt), versions 1 and 2.
 *
 * Pure and stateless like the codecs: each call looks at the bytes from the
 * start, and the caller calls again when more have come. It never reads
 * past len, never allocates, and costs one step per byte at most.
 *
 * The answer is decided by a fixed prefix of the bytes and never changes
 * once given: "not a signature" at the first byte that differs from both
 * (v1's is "PROXY " with its space, as HAProxy reads it; v2's the 12 bytes
 * below), a malformed v2 header at the first byte that shows it (version
 * and command, family, length) or once its whole length is there (the
 * TLVs), and a v1 line once its LF has come or 107 bytes without one.
 * A v1 line is judged whole, not byte by byte: it is at most 107 bytes, so
 * refusing it sooner would save nothing.
 *
 * v1 is read as the spec writes it: single spaces, addresses of the
 * protocol's family in their canonical text (inet_pton's), ports in
 * decimal without sign or leading zero (the spec forbids them, so that
 * nobody reads "080" as octal; "0" itself is a port), CRLF and nothing
 * else at the end. "UNKNOWN" may be followed by anything up to the CRLF.
 * v2's TLVs must fill its length exactly; their values are skipped, and a
 * CRC32C TLV is not checked. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "tao/proxy.h"

#define V1_MAX 107 /* the spec's longest line, CRLF included */
#define V2_HEAD 16 /* signature, version and command, family, length */

static const uint8_t v1_sig[6] = {'P', 'R', 'O', 'X', 'Y', ' '};
static const uint8_t v2_sig[12] = {'\r', '\n', '\r', '\n', 0, '\r', '\n', 'Q', 'U', 'I', 'T', '\n'};

typedef struct span {
    const uint8_t *p;
    size_t n;
} span_t;

/* 1 when buf starts with sig, 0 when buf is a prefix of it, -ENOENT when
 * they differ. */
static int signature(const uint8_t *buf, size_t len, const uint8_t *sig, size_t n)
{
    size_t k = len < n ? len : n;
    if (memcmp(buf, sig, k) != 0)
        return -ENOENT;
    return k == n;
}

/* An address (4 or 16 bytes) and a port (2 bytes, network order) as a
 * sockaddr of family af. */
static socklen_t put(struct sockaddr_storage *ss, int af, const uint8_t *addr, const uint8_t *port)
{
    if (af == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, addr, 4);
        memcpy(&in->sin_port, port, 2);
        return sizeof(*in);
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    memcpy(&in6->sin6_addr, addr, 16);
    memcpy(&in6->sin6_port, port, 2);
    return sizeof(*in6);
}

/* *out for a header of this version: af is AF_UNSPEC when it names no
 * client (local), else the addresses and ports are given. */
static void fill(tao_proxy_hdr_t *out, uint8_t version, int af, const uint8_t *src,
                 const uint8_t *dst, const uint8_t *sport, const uint8_t *dport)
{
    memset(out, 0, sizeof(*out));
    out->version = version;
    out->local = af == AF_UNSPEC;
    if (out->local)
        return;
    out->src_len = put(&out->src, af, src, sport);
    out->dst_len = put(&out->dst, af, dst, dport);
}

/* ---- v1 ------------------------------------------------------------------- */

/* Splits s at single spaces into exactly n non-empty fields. */
static bool fields(span_t s, span_t *f, size_t n)
{
    size_t i = 0;
    const uint8_t *p = s.p, *end = s.p + s.n;
    for (;;) {
        const uint8_t *sp = memchr(p, ' ', (size_t)(end - p));
        const uint8_t *e = sp ? sp : end;
        if (e == p || i == n)
            return false;
        f[i++] = (span_t){p, (size_t)(e - p)};
        if (!sp)
            return i == n;
        p = sp + 1;
    }
}

/* A textual address of family af into a (4 or 16 bytes). inet_pton wants a
 * string, so the field is copied out; only the bytes an address can hold
 * are let through, so that a NUL cannot end it early. */
static bool address(span_t f, int af, uint8_t *a)
{
    static const char digits[] = "0123456789abcdefABCDEF.:";
    char text[INET6_ADDRSTRLEN];
    if (f.n >= sizeof(text))
        return false;
    for (size_t i = 0; i < f.n; i++)
        if (!memchr(digits, f.p[i], sizeof(digits) - 1))
            return false;
    memcpy(text, f.p, f.n);
    text[f.n] = '\0';
    return inet_pton(af, text, a) == 1;
}

/* A port, 0..65535 in decimal, into 2 bytes in network order. */
static bool port(span_t f, uint8_t *be)
{
    if (f.n == 0 || f.n > 5 || (f.p[0] == '0' && f.n > 1))
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < f.n; i++) {
        if (f.p[i] < '0' || f.p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(f.p[i] - '0');
    }
    if (v > 65535)
        return false;
    be[0] = (uint8_t)(v >> 8);
    be[1] = (uint8_t)v;
    return true;
}

/* The line after "PROXY ", without its CRLF. */
static int v1_line(span_t s, tao_proxy_hdr_t *out)
{
    if (s.n >= 7 && memcmp(s.p, "UNKNOWN", 7) == 0) {
        fill(out, 1, AF_UNSPEC, NULL, NULL, NULL, NULL);
        return 0;
    }
    span_t f[5];
    if (!fields(s, f, 5) || f[0].n != 4)
        return -EPROTO;
    int af;
    if (memcmp(f[0].p, "TCP4", 4) == 0)
        af = AF_INET;
    else if (memcmp(f[0].p, "TCP6", 4) == 0)
        af = AF_INET6;
    else
        return -EPROTO;
    uint8_t src[16], dst[16], sport[2], dport[2];
    if (!address(f[1], af, src) || !address(f[2], af, dst) || !port(f[3], sport) ||
        !port(f[4], dport))
        return -EPROTO;
    fill(out, 1, af, src, dst, sport, dport);
    return 0;
}

static ssize_t v1(const uint8_t *buf, size_t len, tao_proxy_hdr_t *out)
{
    int sig = signature(buf, len, v1_sig, sizeof(v1_sig));
    if (sig <= 0)
        return sig;
    const uint8_t *lf = memchr(buf, '\n', len < V1_MAX ? len : V1_MAX);
    if (!lf)
        return len >= V1_MAX ? -EPROTO : 0;
    size_t at = (size_t)(lf - buf); /* past the signature, which holds no LF */
    if (buf[at - 1] != '\r')
        return -EPROTO;
    span_t s = {buf + sizeof(v1_sig), at - 1 - sizeof(v1_sig)};
    int rc = v1_line(s, out);
    return rc < 0 ? rc : (ssize_t)(at + 1);
}

/* ---- v2 ------------------------------------------------------------------- */

/* The bytes of the address block for a family and protocol byte: UNSPEC,
 * then TCP and UDP over IPv4, over IPv6, and UNIX stream and datagram
 * (two paths of 108 bytes). -1 for any other value, which the spec says
 * must be refused. */
static int block_len(uint8_t fam)
{
    switch (fam) {
    case 0x00:
        return 0;
    case 0x11:
    case 0x12:
        return 12;
    case 0x21:
    case 0x22:
        return 36;
    case 0x31:
    case 0x32:
        return 216;
    default:
        return -1;
    }
}

/* TLVs (type, 2-byte length, value) that fill exactly n bytes. */
static bool tlvs(const uint8_t *p, size_t n)
{
    while (n > 0) {
        if (n < 3)
            return false;
        size_t v = (size_t)p[1] << 8 | p[2];
        if (v > n - 3)
            return false;
        p += 3 + v;
        n -= 3 + v;
    }
    return true;
}

static ssize_t v2(const uint8_t *buf, size_t len, tao_proxy_hdr_t *out)
{
    int sig = signature(buf, len, v2_sig, sizeof(v2_sig));
    if (sig <= 0)
        return sig;
    /* Version 2; command LOCAL (0) or PROXY (1). Under LOCAL (a health
     * check) the spec has the family and the block after it ignored: only
     * the length counts. */
    if (len > 12 && buf[12] != 0x20 && buf[12] != 0x21)
        return -EPROTO;
    bool local = len > 12 && buf[12] == 0x20;
    if (len > 13 && !local && block_len(buf[13]) < 0)
        return -EPROTO;
    if (len < V2_HEAD)
        return 0;
    size_t body = (size_t)buf[14] << 8 | buf[15];
    size_t block = local ? 0 : (size_t)block_len(buf[13]);
    if (V2_HEAD + body > TAO_PROXY_MAX || body < block)
        return -EPROTO;
    if (len < V2_HEAD + body)
        return 0;
    const uint8_t *a = buf + V2_HEAD;
    if (!local && !tlvs(a + block, body - block))
        return -EPROTO;
    /* LOCAL, and families other than TCP, leave the connection's own
     * addresses standing, as the spec asks. */
    if (local || (buf[13] != 0x11 && buf[13] != 0x21))
        fill(out, 2, AF_UNSPEC, NULL, NULL, NULL, NULL);
    else if (buf[13] == 0x11)
        fill(out, 2, AF_INET, a, a + 4, a + 8, a + 10);
    else
        fill(out, 2, AF_INET6, a, a + 16, a + 32, a + 34);
    return (ssize_t)(V2_HEAD + body);
}

ssize_t tao_proxy_parse(const void *buf, size_t len, tao_proxy_hdr_t *out)
{
    const uint8_t *p = buf;
    if (len == 0)
        return 0;
    /* The two signatures differ in their first byte. */
    return p[0] == v1_sig[0] ? v1(p, len, out) : v2(p, len, out);
}
