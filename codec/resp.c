/* The RESP codec (the Redis protocol, version 2).
 *
 * A frame is one whole RESP value, its bytes untouched: a request (an
 * array of bulk strings, or an inline command line as redis-cli and telnet
 * send it) in request mode, any value (simple string, error, integer, bulk
 * string or nil, array, nested) in reply mode. tao_resp_args splits a
 * request into its arguments. Encoding adds nothing: a handler sends the
 * reply's bytes as they go on the wire (tao_resp_* below build them).
 *
 * Decode is stateless and rescans from the start on each call; a bulk
 * string is skipped by its length, so a rescan costs one step per element,
 * not per byte. Every length is checked against its limit as soon as its
 * header line is there, before a byte of what it announces is kept. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "tao/codec.h"

#define BULK_MAX_DEFAULT (8u * 1024u * 1024u)
#define ARGS_MAX_DEFAULT (1024u * 1024u) /* Redis's limit on a request's arguments */
#define INLINE_MAX_DEFAULT (64u * 1024u) /* Redis's limit on an inline command */
#define HEADER_MAX 32                    /* "*", a 20-digit count, "\r\n" */
#define DEPTH_MAX 32

typedef struct limits {
    size_t max_bulk, max_args, max_inline;
} limits_t;

/* The line starting at buf (a header or a simple value): its length
 * without the CRLF in *n; returns the bytes it takes with the CRLF, 0 when
 * it has not all arrived, -EBADMSG when no CRLF comes within max or a CR
 * stands alone. */
static ssize_t line(const uint8_t *buf, size_t len, size_t max, size_t *n, bool overlong_is_size)
{
    size_t scan = len < max + 2 ? len : max + 2;
    const uint8_t *lf = memchr(buf, '\n', scan);
    if (!lf) {
        if (len >= max + 2)
            return overlong_is_size ? -EMSGSIZE : -EBADMSG;
        return 0;
    }
    size_t at = (size_t)(lf - buf);
    if (at == 0 || buf[at - 1] != '\r')
        return -EBADMSG;
    *n = at - 1;
    return (ssize_t)(at + 1);
}

/* A header's number: -1 or 0..LLONG_MAX, digits only. */
static int number(const uint8_t *p, size_t n, long long *out)
{
    if (n == 2 && p[0] == '-' && p[1] == '1') {
        *out = -1;
        return 0;
    }
    if (n == 0 || n > 19)
        return -EBADMSG;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -EBADMSG;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

/* One value at buf; only bulk strings inside arrays when bulk_only (a
 * request). Returns its length, 0, or a negative error. */
static ssize_t value(const limits_t *lim, const uint8_t *buf, size_t len, int depth, bool bulk_only)
{
    if (len == 0)
        return 0;
    size_t n;
    long long v;
    ssize_t h = line(buf + 1, len - 1, HEADER_MAX, &n, false);
    switch (buf[0]) {
    case '+':
    case '-':
    case ':':
        if (bulk_only)
            return -EBADMSG;
        h = line(buf + 1, len - 1, lim->max_inline, &n, true);
        if (h <= 0)
            return h;
        if (buf[0] == ':' && number(buf + 1, n, &v) < 0 &&
            !(n > 1 && buf[1] == '-' && number(buf + 2, n - 1, &v) == 0))
            return -EBADMSG;
        return h + 1;
    case '$':
        if (h <= 0)
            return h;
        if (number(buf + 1, n, &v) < 0)
            return -EBADMSG;
        if (v < 0)
            return bulk_only ? -EBADMSG : h + 1; /* nil */
        if ((unsigned long long)v > lim->max_bulk)
            return -EMSGSIZE;
        size_t total = 1 + (size_t)h + (size_t)v + 2;
        if (len < total)
            return 0;
        if (buf[total - 2] != '\r' || buf[total - 1] != '\n')
            return -EBADMSG;
        return (ssize_t)total;
    case '*': {
        if (bulk_only && depth > 0)
            return -EBADMSG;
        if (depth >= DEPTH_MAX)
            return -EBADMSG;
        if (h <= 0)
            return h;
        if (number(buf + 1, n, &v) < 0)
            return -EBADMSG;
        if (v < 0)
            return bulk_only ? -EBADMSG : h + 1; /* nil array */
        if ((unsigned long long)v > lim->max_args)
            return -EMSGSIZE;
        size_t off = 1 + (size_t)h;
        for (long long i = 0; i < v; i++) {
            if (bulk_only && off < len && buf[off] != '$')
                return -EBADMSG;
            ssize_t e = value(lim, buf + off, len - off, depth + 1, bulk_only);
            if (e <= 0)
                return e;
            off += (size_t)e;
        }
        return (ssize_t)off;
    }
    default:
        return -EBADMSG;
    }
}

static limits_t limits_of(const tao_codec_t *codec)
{
    return (limits_t){.max_bulk = codec->u.resp.max_bulk,
                      .max_args = codec->u.resp.max_args,
                      .max_inline = codec->u.resp.max_inline};
}

static ssize_t resp_decode(const tao_codec_t *codec, const uint8_t *buf, size_t len,
                           tao_frame_t *out)
{
    limits_t lim = limits_of(codec);
    bool request = codec->u.resp.mode == TAO_RESP_REQUESTS;
    ssize_t n;
    if (len == 0)
        return 0;
    if (request && buf[0] != '*') {
        /* An inline command: one line, LF or CRLF ended. */
        size_t scan = len < lim.max_inline + 2 ? len : lim.max_inline + 2;
        const uint8_t *lf = memchr(buf, '\n', scan);
        if (!lf)
            return len >= lim.max_inline + 2 ? -EMSGSIZE : 0;
        n = lf - buf + 1;
    } else {
        n = value(&lim, buf, len, 0, request);
        if (n <= 0)
            return n;
    }
    out->type = codec->u.resp.type;
    out->payload = buf;
    out->len = (size_t)n;
    return n;
}

static int resp_encode(const tao_codec_t *codec, int32_t type, size_t len, tao_frame_hdr_t *hdr)
{
    if (len > codec->max_payload)
        return -EMSGSIZE;
    hdr->pre_len = 0;
    hdr->post_len = 0;
    return 0;
}

TAO_API int tao_codec_resp(tao_codec_t *codec, const tao_resp_opts_t *opts)
{
    static const tao_resp_opts_t defaults = {0};
    if (codec == NULL)
        return -EINVAL;
    if (opts == NULL)
        opts = &defaults;
    if (opts->mode != TAO_RESP_REQUESTS && opts->mode != TAO_RESP_REPLIES)
        return -EINVAL;
    size_t bulk = opts->max_bulk ? opts->max_bulk : BULK_MAX_DEFAULT;
    if (bulk > (size_t)SSIZE_MAX / 4)
        bulk = (size_t)SSIZE_MAX / 4;
    memset(codec, 0, sizeof *codec);
    codec->decode = resp_decode;
    codec->encode = resp_encode;
    /* A reply may hold several values of max_bulk (MGET). */
    codec->max_payload = (size_t)SSIZE_MAX / 2;
    codec->u.resp.max_bulk = bulk;
    codec->u.resp.max_args = opts->max_args ? opts->max_args : ARGS_MAX_DEFAULT;
    codec->u.resp.max_inline = opts->max_inline ? opts->max_inline : INLINE_MAX_DEFAULT;
    codec->u.resp.mode = opts->mode;
    codec->u.resp.type = opts->type;
    return 0;
}

/* ---- requests ------------------------------------------------------------ */

/* Inline: words split on spaces and tabs; "double" and 'single' quotes
 * group words, as redis-cli and Redis itself do for the simple cases. */
static long inline_args(const uint8_t *p, size_t len, tao_resp_arg_t *args, size_t max)
{
    while (len && (p[len - 1] == '\n' || p[len - 1] == '\r'))
        len--;
    size_t i = 0;
    long count = 0;
    while (i < len) {
        while (i < len && (p[i] == ' ' || p[i] == '\t'))
            i++;
        if (i == len)
            break;
        size_t start = i, end;
        if (p[i] == '"' || p[i] == '\'') {
            uint8_t q = p[i++];
            start = i;
            while (i < len && p[i] != q)
                i++;
            if (i == len)
                return -EBADMSG; /* unbalanced quotes, as Redis says */
            end = i++;
            if (i < len && p[i] != ' ' && p[i] != '\t')
                return -EBADMSG;
        } else {
            while (i < len && p[i] != ' ' && p[i] != '\t')
                i++;
            end = i;
        }
        if ((size_t)count < max)
            args[count] = (tao_resp_arg_t){.p = p + start, .len = end - start};
        count++;
    }
    return count;
}

TAO_API long tao_resp_args(const void *payload, size_t len, tao_resp_arg_t *args, size_t max)
{
    const uint8_t *p = payload;
    if (len == 0)
        return 0;
    if (p[0] != '*')
        return inline_args(p, len, args, max);
    size_t n, off;
    long long count;
    ssize_t h = line(p + 1, len - 1, HEADER_MAX, &n, false);
    if (h <= 0 || number(p + 1, n, &count) < 0 || count < 0)
        return -EBADMSG;
    off = 1 + (size_t)h;
    for (long long i = 0; i < count; i++) {
        long long blen;
        if (off >= len || p[off] != '$')
            return -EBADMSG;
        h = line(p + off + 1, len - off - 1, HEADER_MAX, &n, false);
        if (h <= 0 || number(p + off + 1, n, &blen) < 0 || blen < 0)
            return -EBADMSG;
        off += 1 + (size_t)h;
        if ((size_t)blen > len - off || len - off - (size_t)blen < 2)
            return -EBADMSG;
        if ((size_t)i < max)
            args[i] = (tao_resp_arg_t){.p = p + off, .len = (size_t)blen};
        off += (size_t)blen + 2;
    }
    return (long)count;
}

/* ---- replies --------------------------------------------------------------- */

TAO_API size_t tao_resp_simple(char *out, size_t cap, char kind, const char *text)
{
    int n = snprintf(out, cap, "%c%s\r\n", kind, text);
    return n < 0 ? 0 : (size_t)n;
}

TAO_API size_t tao_resp_int(char *out, size_t cap, long long v)
{
    int n = snprintf(out, cap, ":%lld\r\n", v);
    return n < 0 ? 0 : (size_t)n;
}

TAO_API size_t tao_resp_header(char *out, size_t cap, char kind, long long n)
{
    int r = snprintf(out, cap, "%c%lld\r\n", kind, n);
    return r < 0 ? 0 : (size_t)r;
}
