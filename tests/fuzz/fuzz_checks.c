/* Fuzz invariants for the codecs.
 *
 * For every position in the stream the check decodes from an exact-size heap
 * copy, so AddressSanitizer sees any read past the bytes the decoder was
 * given, and compares the result with a model written independently of the
 * codec (128-bit arithmetic for the length field, a naive scan for lines).
 * A complete frame must also decode identically from exactly its own bytes,
 * a strict prefix of it must ask for more, and encode must reproduce its
 * header. */
#include "fuzz/fuzz_checks.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tao/codec.h"
#include "tao/proxy.h"

static char why[256];

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(why, sizeof(why), __VA_ARGS__);                                               \
            return why;                                                                            \
        }                                                                                          \
    } while (0)

/* The model's verdict on buf[0..len): a frame size, 0, or -errno, and where
 * the payload sits in the frame. */
typedef struct verdict {
    long long rc;
    size_t skip;
    size_t len;
    int32_t type;
} verdict_t;

typedef verdict_t (*model_fn)(const tao_codec_t *c, const uint8_t *buf, size_t len);
typedef const char *(*reencode_fn)(const tao_codec_t *c, const uint8_t *frame,
                                   const tao_frame_t *f);

/* decode on a heap copy of exactly len bytes; the payload pointer is mapped
 * back into buf. */
static ssize_t decode_exact(const tao_codec_t *c, const uint8_t *buf, size_t len, tao_frame_t *f)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL)
        abort();
    if (len)
        memcpy(copy, buf, len);
    *f = (tao_frame_t){0};
    ssize_t rc = c->decode(c, copy, len, f);
    if (f->payload)
        f->payload = buf + (f->payload - copy);
    free(copy);
    return rc;
}

static const char *check_one(const tao_codec_t *c, model_fn model, const uint8_t *buf, size_t len,
                             tao_frame_t *f, ssize_t *rc)
{
    verdict_t want = model(c, buf, len);
    *rc = decode_exact(c, buf, len, f);
    CHECK(*rc == want.rc, "decode of %zu bytes: %zd, model says %lld", len, *rc, want.rc);
    if (*rc <= 0)
        return NULL;
    CHECK((size_t)*rc <= len, "consumed %zd of %zu", *rc, len);
    CHECK(f->payload >= buf && f->len <= (size_t)*rc &&
              (size_t)(f->payload - buf) <= (size_t)*rc - f->len,
          "payload outside the frame");
    CHECK(f->len <= c->max_payload, "payload %zu > max %zu", f->len, c->max_payload);
    CHECK((size_t)(f->payload - buf) == want.skip && f->len == want.len && f->type == want.type,
          "frame (%zu, %zu, %d), model (%zu, %zu, %d)", (size_t)(f->payload - buf), f->len, f->type,
          want.skip, want.len, want.type);
    return NULL;
}

/* Decode data as a stream under one codec. */
static const char *walk(const tao_codec_t *c, model_fn model, reencode_fn reencode,
                        const uint8_t *data, size_t size)
{
    size_t at = 0;
    for (;;) {
        tao_frame_t f, g;
        ssize_t rc, rc2;
        const char *err = check_one(c, model, data + at, size - at, &f, &rc);
        if (err || rc <= 0)
            return err;
        err = check_one(c, model, data + at, (size_t)rc, &g, &rc2);
        if (err)
            return err;
        CHECK(rc2 == rc && g.payload == f.payload && g.len == f.len,
              "frame changes when decoded from its own bytes");
        CHECK(decode_exact(c, data + at, (size_t)rc - 1, &g) == 0,
              "a strict prefix of a %zd-byte frame does not ask for more", rc);
        err = reencode(c, data + at, &f);
        if (err)
            return err;
        at += (size_t)rc;
    }
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- TLV ---------------------------------------------------------------- */

static verdict_t tlv_model(const tao_codec_t *c, const uint8_t *buf, size_t len)
{
    verdict_t v = {0};
    if (len < 8)
        return v;
    unsigned long long n = le32(buf + 4);
    if (n > c->max_payload)
        v.rc = -EMSGSIZE;
    else if (len >= 8 + n)
        v = (verdict_t){(long long)(8 + n), 8, (size_t)n, (int32_t)le32(buf)};
    return v;
}

static const char *tlv_reencode(const tao_codec_t *c, const uint8_t *frame, const tao_frame_t *f)
{
    tao_frame_hdr_t h;
    CHECK(c->encode(c, f->type, f->len, &h) == 0, "encode refused a decoded frame");
    CHECK(h.pre_len == 8 && h.post_len == 0 && memcmp(h.pre, frame, 8) == 0,
          "re-encoded TLV header differs");
    CHECK(c->encode(c, f->type, c->max_payload + 1, &h) == -EMSGSIZE, "encode over max");
    return NULL;
}

const char *t_fuzz_tlv(const uint8_t *data, size_t size)
{
    const size_t maxes[] = {0, 16};
    for (size_t i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
        tao_codec_t c;
        tao_codec_tlv(&c, maxes[i]);
        const char *err = walk(&c, tlv_model, tlv_reencode, data, size);
        if (err)
            return err;
    }
    return NULL;
}

/* ---- length field ------------------------------------------------------- */

__extension__ typedef __int128 i128;

static verdict_t lf_model(const tao_codec_t *c, const uint8_t *buf, size_t len)
{
    size_t off = c->u.lenfield.length_offset, size = c->u.lenfield.length_size;
    verdict_t v = {0};
    if (len < off + size)
        return v;
    unsigned long long l = 0;
    for (size_t i = 0; i < size; i++) {
        size_t at = c->u.lenfield.order == TAO_BIG_ENDIAN ? i : size - 1 - i;
        l = l << 8 | buf[off + at];
    }
    i128 frame = (i128)(off + size) + (i128)l + (i128)c->u.lenfield.length_adjust;
    if (frame < (i128)(off + size))
        v.rc = -EBADMSG;
    else if (frame > (i128)c->u.lenfield.max_frame)
        v.rc = -EMSGSIZE;
    else if (frame < (i128)c->u.lenfield.strip)
        v.rc = -EBADMSG;
    else if (frame <= (i128)len)
        v = (verdict_t){(long long)frame, c->u.lenfield.strip, (size_t)frame - c->u.lenfield.strip,
                        c->u.lenfield.type};
    return v;
}

static const char *lf_reencode(const tao_codec_t *c, const uint8_t *frame, const tao_frame_t *f)
{
    size_t off = c->u.lenfield.length_offset, header = off + c->u.lenfield.length_size;
    tao_frame_hdr_t h;
    int rc = c->encode(c, f->type, f->len, &h);
    if (c->u.lenfield.strip != header || header > TAO_FRAME_PRE_MAX) {
        CHECK(rc == -ENOTSUP, "encode without an inverse: %d", rc);
        return NULL;
    }
    CHECK(rc == 0, "encode refused a decoded frame: %d", rc);
    CHECK(h.pre_len == header && h.post_len == 0, "re-encoded header length");
    for (size_t i = 0; i < off; i++)
        CHECK(h.pre[i] == 0, "offset bytes not zero");
    CHECK(memcmp(h.pre + off, frame + off, header - off) == 0, "re-encoded length differs");
    return NULL;
}

/* Byte 0: offset (bits 0-3), field size 1/2/4/8 (bits 4-5), little-endian
 * (bit 6), strip exactly the header (bit 7; else byte 3 is strip).
 * Byte 1: adjust seed. Byte 2: adjust mode (bits 6-7: small, near INT64_MIN,
 * near INT64_MAX, scaled) and max_frame (bits 0-5: 0 = default, 63 =
 * SIZE_MAX, else 4 * n). Byte 4: message type. */
static void lf_config(const uint8_t *p, tao_lenfield_opts_t *o)
{
    static const size_t sizes[] = {1, 2, 4, 8};
    int8_t seed = (int8_t)p[1];
    const int64_t adjusts[] = {seed, INT64_MIN + (p[1] & 0x7f), INT64_MAX - (p[1] & 0x7f),
                               (int64_t)seed * 1000003};
    size_t m = p[2] & 63u;
    *o = (tao_lenfield_opts_t){.length_offset = p[0] & 15u,
                               .length_size = sizes[(p[0] >> 4) & 3u],
                               .order = (p[0] & 0x40u) ? TAO_LITTLE_ENDIAN : TAO_BIG_ENDIAN,
                               .length_adjust = adjusts[p[2] >> 6],
                               .max_frame = m == 63 ? SIZE_MAX : m * 4,
                               .type = (int8_t)p[4]};
    o->strip = (p[0] & 0x80u) ? o->length_offset + o->length_size : p[3];
}

const char *t_fuzz_lenfield(const uint8_t *data, size_t size)
{
    if (size < 5)
        return NULL;
    tao_lenfield_opts_t o;
    tao_codec_t c;
    lf_config(data, &o);
    int rc = tao_codec_lenfield(&c, &o);
    size_t max = o.max_frame == 0 ? 8u << 20 : o.max_frame;
    int valid = o.length_offset + o.length_size <= max && o.strip <= max;
    CHECK(valid ? rc == 0 : rc == -EINVAL, "settings accepted %d, valid %d", rc, valid);
    if (rc < 0)
        return NULL;
    return walk(&c, lf_model, lf_reencode, data + 5, size - 5);
}

/* ---- line --------------------------------------------------------------- */

static verdict_t line_model(const tao_codec_t *c, const uint8_t *buf, size_t len)
{
    const uint8_t *d = c->u.line.delim;
    size_t dlen = c->u.line.delim_len, max = c->max_payload;
    verdict_t v = {0};
    for (size_t i = 0; i + dlen <= len; i++) {
        if (memcmp(buf + i, d, dlen) != 0)
            continue;
        if (i > max)
            break;
        return (verdict_t){(long long)(i + dlen), 0, i, c->u.line.type};
    }
    /* No delimiter ends a line of at most max bytes: one will only come, if
     * at all, after more bytes, unless enough are here to rule it out. */
    if (len >= max + dlen)
        v.rc = -EMSGSIZE;
    return v;
}

static const char *line_reencode(const tao_codec_t *c, const uint8_t *frame, const tao_frame_t *f)
{
    tao_frame_hdr_t h;
    size_t dlen = c->u.line.delim_len;
    CHECK(c->encode(c, f->type, f->len, &h) == 0, "encode refused a decoded line");
    CHECK(h.pre_len == 0 && h.post_len == dlen && memcmp(h.post, frame + f->len, dlen) == 0,
          "re-encoded delimiter differs");
    CHECK(c->encode(c, f->type, c->max_payload + 1, &h) == -EMSGSIZE, "encode over max");
    return NULL;
}

const char *t_fuzz_line(const uint8_t *data, size_t size)
{
    /* "ABABABAC" overlaps itself: a naive search that skips ahead after a
     * partial match misses it. */
    const tao_line_opts_t opts[] = {
        {NULL, 0, 1}, {"\r\n", 8, 2}, {"<END>", 3, 3}, {"ABABABAC", 1, 4}};
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        tao_codec_t c;
        CHECK(tao_codec_line(&c, &opts[i]) == 0, "line settings refused");
        const char *err = walk(&c, line_model, line_reencode, data, size);
        if (err)
            return err;
    }
    return NULL;
}

/* ---- RESP ----------------------------------------------------------------- */

/* No second parser here: the checks are properties every correct framer
 * of a self-delimiting format has. A frame decodes the same from exactly
 * its own bytes, each strict prefix of it asks for more, and a request's
 * arguments, written back out as an array of bulk strings, decode to the
 * same arguments. An error must not turn into a frame when more bytes
 * come. */
static const char *resp_request_roundtrip(const tao_codec_t *c, const uint8_t *frame, size_t n)
{
    enum { MAXA = 64 };
    tao_resp_arg_t a[MAXA], b[MAXA];
    long na = tao_resp_args(frame, n, a, MAXA);
    if (frame[0] != '*') {
        CHECK(na >= 0 || na == -EBADMSG, "inline args: %ld", na);
        return NULL;
    }
    CHECK(na >= 0, "the arguments of a decoded request do not split: %ld", na);
    if (na > MAXA)
        return NULL;
    size_t cap = 32;
    for (long i = 0; i < na; i++)
        cap += a[i].len + 32;
    char *out = malloc(cap);
    if (out == NULL)
        abort();
    size_t len = tao_resp_header(out, cap, '*', na);
    for (long i = 0; i < na; i++) {
        len += tao_resp_header(out + len, cap - len, '$', (long long)a[i].len);
        memcpy(out + len, a[i].p, a[i].len);
        len += a[i].len;
        memcpy(out + len, "\r\n", 2);
        len += 2;
    }
    tao_frame_t f;
    ssize_t rc = decode_exact(c, (const uint8_t *)out, len, &f);
    long nb = rc > 0 ? tao_resp_args(out, len, b, MAXA) : -1;
    bool same = rc == (ssize_t)len && nb == na;
    for (long i = 0; same && i < na; i++)
        same = a[i].len == b[i].len && memcmp(a[i].p, b[i].p, a[i].len) == 0;
    free(out);
    CHECK(same, "a request written back out decodes differently (%zd of %zu)", rc, len);
    return NULL;
}

typedef const char *(*frame_check_fn)(const tao_codec_t *c, const uint8_t *frame, size_t n);

/* Decode data as a stream of self-delimiting frames whose payload is the
 * whole frame, checking the properties above and, per frame, check. */
static const char *prop_walk(const tao_codec_t *c, const uint8_t *data, size_t size,
                             frame_check_fn check)
{
    size_t at = 0;
    while (at < size) {
        tao_frame_t f, g;
        ssize_t rc = decode_exact(c, data + at, size - at, &f);
        if (rc < 0) {
            CHECK(rc == -EBADMSG || rc == -EMSGSIZE || rc == -ENAMETOOLONG || rc == -EOVERFLOW,
                  "decode error %zd", rc);
            /* More bytes cannot make it valid. */
            uint8_t *more = malloc(size - at + 4);
            if (more == NULL)
                abort();
            memcpy(more, data + at, size - at);
            memcpy(more + size - at, "\r\n\r\n", 4);
            ssize_t rc2 = decode_exact(c, more, size - at + 4, &g);
            free(more);
            CHECK(rc2 < 0, "an error (%zd) became %zd with more bytes", rc, rc2);
            return NULL;
        }
        if (rc == 0)
            return NULL;
        CHECK((size_t)rc <= size - at, "consumed %zd of %zu", rc, size - at);
        CHECK(f.payload == data + at && f.len == (size_t)rc, "the frame is not its own bytes");
        CHECK(decode_exact(c, data + at, (size_t)rc, &g) == rc, "differs from its own bytes");
        CHECK(decode_exact(c, data + at, (size_t)rc - 1, &g) == 0,
              "a strict prefix of a %zd-byte frame does not ask for more", rc);
        if (check) {
            const char *err = check(c, data + at, (size_t)rc);
            if (err)
                return err;
        }
        at += (size_t)rc;
    }
    return NULL;
}

const char *t_fuzz_resp(const uint8_t *data, size_t size)
{
    const tao_resp_opts_t opts[] = {
        {TAO_RESP_REQUESTS, 0, 0, 0, 1},
        {TAO_RESP_REQUESTS, 8, 4, 16, 1},
        {TAO_RESP_REPLIES, 0, 0, 0, 1},
        {TAO_RESP_REPLIES, 8, 4, 16, 1},
    };
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        tao_codec_t c;
        CHECK(tao_codec_resp(&c, &opts[i]) == 0, "resp settings refused");
        const char *err = prop_walk(
            &c, data, size, opts[i].mode == TAO_RESP_REQUESTS ? resp_request_roundtrip : NULL);
        if (err)
            return err;
    }
    return NULL;
}

/* ---- HTTP/1.1 ---------------------------------------------------------------- */

/* A decoded request parses, and its body decodes to the length it says. */
static const char *http_parts(const tao_codec_t *c, const uint8_t *frame, size_t n)
{
    tao_http_req_t q;
    tao_http_header_t h[8];
    int rc = tao_http_parse(c, frame, n, &q, h, 8);
    CHECK(rc == 0, "a decoded request does not parse: %d", rc);
    CHECK(q.method_len > 0 && q.target_len > 0, "empty method or target");
    uint8_t *body = malloc(q.body_len ? q.body_len : 1);
    if (body == NULL)
        abort();
    long got = tao_http_body(c, &q, frame, n, body, q.body_len);
    free(body);
    CHECK(got == (long)q.body_len, "the body decodes to %ld bytes, not %zu", got, q.body_len);
    return NULL;
}

const char *t_fuzz_http(const uint8_t *data, size_t size)
{
    const tao_http_opts_t opts[] = {{0, 0, 0, 0, 1}, {24, 64, 3, 16, 1}};
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        tao_codec_t c;
        CHECK(tao_codec_http(&c, &opts[i]) == 0, "http settings refused");
        const char *err = prop_walk(&c, data, size, http_parts);
        if (err)
            return err;
    }
    return NULL;
}

/* ---- PROXY ---------------------------------------------------------------- */

/* The parser's answer is decided by a fixed prefix: over the prefixes of
 * the input it is 0 up to some length, then one answer for good, and a
 * header is exactly the prefix that decided it. Around that: what is not a
 * signature is told apart by a plain comparison here, a header's shape
 * (CRLF at the end of v1, v2's announced length, the addresses in v2's
 * bytes) is checked from the bytes, and v1 addresses, written back out,
 * parse to the same header. */

static const uint8_t proxy_v2_sig[12] = {'\r', '\n', '\r', '\n', 0,   '\r',
                                         '\n', 'Q',  'U',  'I',  'T', '\n'};

/* Parse an exact-size heap copy of buf[0..len); *h is zeroed first, so
 * that two answers compare with memcmp. */
static ssize_t proxy_exact(const uint8_t *buf, size_t len, tao_proxy_hdr_t *h)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL)
        abort();
    if (len)
        memcpy(copy, buf, len);
    memset(h, 0, sizeof(*h));
    ssize_t rc = tao_proxy_parse(copy, len, h);
    free(copy);
    return rc;
}

static bool proxy_signature_prefix(const uint8_t *b, size_t n)
{
    return memcmp(b, "PROXY ", n < 6 ? n : 6) == 0 || memcmp(b, proxy_v2_sig, n < 12 ? n : 12) == 0;
}

/* One side's address; addr and port are the header's bytes in v2. */
static const char *proxy_side(const struct sockaddr_storage *ss, socklen_t len, const uint8_t *addr,
                              const uint8_t *port)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        CHECK(len == sizeof(*in), "IPv4 address of length %u", (unsigned)len);
        CHECK(!addr || (memcmp(&in->sin_addr, addr, 4) == 0 && memcmp(&in->sin_port, port, 2) == 0),
              "IPv4 address differs from the header's bytes");
        return NULL;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
    CHECK(ss->ss_family == AF_INET6, "address family %d", ss->ss_family);
    CHECK(len == sizeof(*in6), "IPv6 address of length %u", (unsigned)len);
    CHECK(!addr ||
              (memcmp(&in6->sin6_addr, addr, 16) == 0 && memcmp(&in6->sin6_port, port, 2) == 0),
          "IPv6 address differs from the header's bytes");
    return NULL;
}

/* A v1 header with addresses, written back out, parses to the same. */
static const char *proxy_v1_rewrite(const tao_proxy_hdr_t *h)
{
    char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN], line[128];
    bool v4 = h->src.ss_family == AF_INET;
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)&h->src;
    const struct sockaddr_in *d4 = (const struct sockaddr_in *)&h->dst;
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&h->src;
    const struct sockaddr_in6 *d6 = (const struct sockaddr_in6 *)&h->dst;
    inet_ntop(h->src.ss_family, v4 ? (const void *)&s4->sin_addr : &s6->sin6_addr, src,
              sizeof(src));
    inet_ntop(h->dst.ss_family, v4 ? (const void *)&d4->sin_addr : &d6->sin6_addr, dst,
              sizeof(dst));
    int n = snprintf(line, sizeof(line), "PROXY TCP%c %s %s %u %u\r\n", v4 ? '4' : '6', src, dst,
                     ntohs(v4 ? s4->sin_port : s6->sin6_port),
                     ntohs(v4 ? d4->sin_port : d6->sin6_port));
    tao_proxy_hdr_t g;
    CHECK(proxy_exact((const uint8_t *)line, (size_t)n, &g) == n, "rewritten v1 line refused");
    CHECK(memcmp(&g, h, sizeof(g)) == 0, "rewritten v1 line parses differently");
    return NULL;
}

/* The header h parsed from b[0..n). */
static const char *proxy_header(const uint8_t *b, size_t n, const tao_proxy_hdr_t *h)
{
    CHECK(n <= TAO_PROXY_MAX, "a header of %zu bytes", n);
    const uint8_t *a = b + 16, *sa = NULL, *da = NULL, *sp = NULL, *dp = NULL;
    if (h->version == 1) {
        CHECK(n <= 107 && memcmp(b, "PROXY ", 6) == 0, "v1 header of %zu bytes", n);
        CHECK(b[n - 2] == '\r' && b[n - 1] == '\n', "v1 header does not end in CRLF");
        CHECK(memchr(b, '\n', n - 1) == NULL, "v1 header holds an LF before its end");
    } else {
        CHECK(h->version == 2 && n >= 16 && memcmp(b, proxy_v2_sig, 12) == 0, "version %u",
              h->version);
        CHECK(n == 16 + ((size_t)b[14] << 8 | b[15]), "v2 header of %zu bytes", n);
        bool six = h->src.ss_family == AF_INET6;
        sa = a, da = a + (six ? 16 : 4), sp = a + (six ? 32 : 8), dp = sp + 2;
    }
    if (h->local) {
        CHECK(h->src_len == 0 && h->dst_len == 0, "local with addresses");
        return NULL;
    }
    CHECK(h->version == 1 || (b[12] == 0x21 && (b[13] == 0x11 || b[13] == 0x21)),
          "v2 addresses from command %#x, family %#x", b[12], b[13]);
    CHECK(h->src.ss_family == h->dst.ss_family, "address families %d and %d", h->src.ss_family,
          h->dst.ss_family);
    const char *err = proxy_side(&h->src, h->src_len, sa, sp);
    if (!err)
        err = proxy_side(&h->dst, h->dst_len, da, dp);
    if (!err && h->version == 1)
        err = proxy_v1_rewrite(h);
    return err;
}

#define TAIL(s)                                                                                    \
    {                                                                                              \
        (const uint8_t *)(s), sizeof(s) - 1                                                        \
    }

/* The answer for data[0..size) again with each tail in turn after it: an
 * answer other than 0 must not change. */
static const char *proxy_appended(const uint8_t *data, size_t size, ssize_t rc,
                                  const tao_proxy_hdr_t *h)
{
    uint8_t xs[300];
    memset(xs, 'x', sizeof(xs));
    const struct {
        const uint8_t *p;
        size_t n;
    } tails[] = {TAIL("\r\n"),
                 TAIL("\n"),
                 TAIL("\0"),
                 TAIL("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"),
                 TAIL("\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c"),
                 {xs, sizeof(xs)}};
    if (rc == 0)
        return NULL;
    for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
        size_t t = tails[i].n;
        uint8_t *more = malloc(size + t);
        if (more == NULL)
            abort();
        memcpy(more, data, size);
        memcpy(more + size, tails[i].p, t);
        tao_proxy_hdr_t g;
        ssize_t rc2 = proxy_exact(more, size + t, &g);
        free(more);
        CHECK(rc2 == rc, "%zd became %zd with %zu bytes more", rc, rc2, t);
        CHECK(rc < 0 || memcmp(&g, h, sizeof(g)) == 0, "a header changes with bytes after it");
    }
    return NULL;
}

/* The header, if any, at the start of data; *used gets its length. */
static const char *proxy_one(const uint8_t *data, size_t size, size_t *used)
{
    tao_proxy_hdr_t h, g;
    ssize_t rc = proxy_exact(data, size, &h);
    *used = 0;
    CHECK(rc >= 0 || rc == -ENOENT || rc == -EPROTO, "answer %zd", rc);
    CHECK((rc == -ENOENT) == !proxy_signature_prefix(data, size), "-ENOENT %s",
          rc == -ENOENT ? "for a signature" : "missing");
    CHECK(rc != 0 || size == 0 || size < (data[0] == 'P' ? 107u : (size_t)TAO_PROXY_MAX),
          "still undecided after %zu bytes", size);
    /* k: the shortest prefix with an answer (size when only the whole has
     * one). The 64 prefixes after it stand for the rest. */
    size_t k = 0;
    ssize_t r = 0;
    while (k < size && (r = proxy_exact(data, k, &g)) == 0)
        k++;
    if (k < size) {
        CHECK(r == rc, "%zd at %zu bytes, %zd at %zu", r, k, rc, size);
        for (size_t j = k + 1; j < size && j <= k + 64; j++) {
            r = proxy_exact(data, j, &g);
            CHECK(r == rc, "%zd at %zu bytes, %zd at %zu", r, j, rc, size);
        }
    }
    CHECK(rc <= 0 || (size_t)rc == k, "a %zd-byte header decided at %zu bytes", rc, k);
    const char *err = rc > 0 ? proxy_header(data, (size_t)rc, &h) : NULL;
    if (!err)
        err = proxy_appended(data, size, rc, &h);
    if (rc > 0)
        *used = (size_t)rc;
    return err;
}

const char *t_fuzz_proxy(const uint8_t *data, size_t size)
{
    /* Headers one after another, though a connection has one, so that a
     * corpus file can hold several. */
    size_t at = 0, used;
    do {
        const char *err = proxy_one(data + at, size - at, &used);
        if (err)
            return err;
        at += used;
    } while (used > 0 && at < size);
    return NULL;
}
