/* The HTTP/1.1 request codec (a server's side).
 *
 * A hand-written, strict parser, not Debian's libhttp-parser (the archived
 * nodejs parser, unmaintained since 2020): the grammar a server must accept
 * is small, and strictness is what keeps requests from being smuggled. A
 * frame is one whole request, head and body, its bytes as they came:
 *
 *   request-line: method SP request-target SP "HTTP/1." DIGIT CRLF, where
 *   the method is a token and the target has no space or control byte;
 *   header fields: name ":" OWS value OWS CRLF, the name a token, no
 *   obsolete line folding; an empty line ends the head;
 *   body: Content-Length bytes, or chunked (hex sizes, extensions ignored,
 *   trailer fields); neither: none. Both, two different Content-Lengths, or
 *   a Transfer-Encoding other than chunked: malformed.
 *
 * Empty lines before a request line are skipped, as RFC 9112 asks. Decode
 * is stateless and rescans from the start; a chunked body is walked one
 * chunk per step, so a rescan costs one step per chunk, not per byte.
 *
 * Every limit is checked as soon as the bytes that break it are there, and
 * each failure has its own error, which the server turns into a status:
 * -ENAMETOOLONG (414) for a request line over max_line, -EOVERFLOW (431)
 * for a head over max_head or more than max_headers fields, -EMSGSIZE (413)
 * for a body over max_body, -EBADMSG (400) for anything else. */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

#include "tao/codec.h"

#define LINE_MAX_DEFAULT (8u * 1024u)
#define HEAD_MAX_DEFAULT (16u * 1024u)
#define HEADERS_MAX_DEFAULT 100u
#define BODY_MAX_DEFAULT (1024u * 1024u)

typedef struct limits {
    size_t max_line, max_head, max_headers, max_body;
} limits_t;

/* tchar of RFC 9110: the bytes of a token. */
static bool tchar(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* The line at buf: its length without CRLF in *n; returns its length with
 * CRLF, 0 when its end has not come within max (-err once it cannot), or
 * -EBADMSG for an LF without CR. */
static ssize_t line_end(const uint8_t *buf, size_t len, size_t max, int err, size_t *n)
{
    size_t scan = len < max + 2 ? len : max + 2;
    const uint8_t *lf = memchr(buf, '\n', scan);
    if (!lf)
        return len >= max + 2 ? err : 0;
    size_t at = (size_t)(lf - buf);
    if (at == 0 || buf[at - 1] != '\r')
        return -EBADMSG;
    *n = at - 1;
    return (ssize_t)(at + 1);
}

static bool is_ows(uint8_t c)
{
    return c == ' ' || c == '\t';
}

/* What a head says; views into the buffer. */
typedef struct head {
    size_t len; /* head bytes, leading empty lines and the final empty line included */
    const uint8_t *method, *target;
    size_t method_len, target_len;
    int minor;
    size_t nheaders;
    bool has_length, chunked, close, keep_alive;
    unsigned long long length;
} head_t;

static int request_line(const uint8_t *p, size_t n, head_t *h)
{
    size_t i = 0;
    while (i < n && tchar(p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ' ')
        return -EBADMSG;
    h->method = p;
    h->method_len = i++;
    size_t t = i;
    while (i < n && p[i] > ' ' && p[i] != 0x7f)
        i++;
    if (i == t || i == n || p[i] != ' ')
        return -EBADMSG;
    h->target = p + t;
    h->target_len = i - t;
    i++;
    if (n - i != 8 || memcmp(p + i, "HTTP/1.", 7) != 0 || p[i + 7] < '0' || p[i + 7] > '9')
        return -EBADMSG;
    h->minor = p[i + 7] - '0';
    return 0;
}

/* Does the comma-separated list in v hold token tok (any case)? */
static bool list_has(const uint8_t *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    for (size_t i = 0; i < n;) {
        while (i < n && (is_ows(v[i]) || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && is_ows(v[e - 1]))
            e--;
        if (e - s == tl && strncasecmp((const char *)v + s, tok, tl) == 0)
            return true;
    }
    return false;
}

static int field(const uint8_t *p, size_t n, head_t *h, tao_http_header_t *out)
{
    size_t i = 0;
    while (i < n && tchar(p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ':')
        return -EBADMSG; /* also a folded line, which starts with a space */
    size_t name_len = i++;
    while (i < n && is_ows(p[i]))
        i++;
    size_t e = n;
    while (e > i && is_ows(p[e - 1]))
        e--;
    for (size_t k = i; k < e; k++)
        if ((p[k] < ' ' && p[k] != '\t') || p[k] == 0x7f)
            return -EBADMSG;
    const uint8_t *v = p + i;
    size_t vl = e - i;
    if (out)
        *out = (tao_http_header_t){.name = (const char *)p,
                                   .name_len = name_len,
                                   .value = (const char *)v,
                                   .value_len = vl};
    if (name_len == 14 && strncasecmp((const char *)p, "content-length", 14) == 0) {
        unsigned long long len = 0;
        if (vl == 0 || vl > 19)
            return -EBADMSG;
        for (size_t k = 0; k < vl; k++) {
            if (v[k] < '0' || v[k] > '9')
                return -EBADMSG;
            len = len * 10 + (unsigned)(v[k] - '0');
        }
        if (h->has_length && h->length != len)
            return -EBADMSG;
        h->has_length = true;
        h->length = len;
    } else if (name_len == 17 && strncasecmp((const char *)p, "transfer-encoding", 17) == 0) {
        if (h->chunked || vl != 7 || strncasecmp((const char *)v, "chunked", 7) != 0)
            return -EBADMSG; /* only chunked, once: anything else is not ours to guess */
        h->chunked = true;
    } else if (name_len == 10 && strncasecmp((const char *)p, "connection", 10) == 0) {
        h->close |= list_has(v, vl, "close");
        h->keep_alive |= list_has(v, vl, "keep-alive");
    }
    return 0;
}

/* Parse the head at buf: 0 with *h filled, 0 with h->len 0 when it is not
 * complete, or -err. Fields go to out[0..max) when out is not NULL. */
static int parse_head(const limits_t *lim, const uint8_t *buf, size_t len, head_t *h,
                      tao_http_header_t *out, size_t max)
{
    memset(h, 0, sizeof *h);
    size_t off = 0, n;
    ssize_t r;
    /* Empty lines before the request line are skipped (RFC 9112, 2.2). */
    while (len - off >= 2 && buf[off] == '\r' && buf[off + 1] == '\n') {
        off += 2;
        if (off > lim->max_head)
            return -EOVERFLOW;
    }
    if (off == len || (len - off == 1 && buf[off] == '\r'))
        return 0;
    r = line_end(buf + off, len - off, lim->max_line, -ENAMETOOLONG, &n);
    if (r <= 0)
        return (int)r;
    int rc = request_line(buf + off, n, h);
    if (rc < 0)
        return rc;
    off += (size_t)r;
    for (;;) {
        size_t room = lim->max_head > off ? lim->max_head - off : 0;
        r = line_end(buf + off, len - off, room, -EOVERFLOW, &n);
        if (r <= 0)
            return (int)r;
        off += (size_t)r;
        if (n == 0)
            break;
        if (h->nheaders == lim->max_headers)
            return -EOVERFLOW;
        rc =
            field(buf + off - (size_t)r, n, h, out && h->nheaders < max ? &out[h->nheaders] : NULL);
        if (rc < 0)
            return rc;
        h->nheaders++;
    }
    if (h->chunked && h->has_length)
        return -EBADMSG; /* the classic smuggling pair */
    if (h->has_length && h->length > lim->max_body)
        return -EMSGSIZE;
    h->len = off;
    return 0;
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A chunked body at buf: its length on the wire, 0 when incomplete, or
 * -err; the decoded size in *size. With out, the data is copied there. */
static ssize_t chunked(const limits_t *lim, const uint8_t *buf, size_t len, size_t *size,
                       uint8_t *out)
{
    size_t off = 0, total = 0, n;
    for (;;) {
        ssize_t r = line_end(buf + off, len - off, 64 + 4096, -EBADMSG, &n);
        if (r <= 0)
            return r;
        unsigned long long sz = 0;
        size_t i = 0;
        for (; i < n && hexval(buf[off + i]) >= 0; i++) {
            if (i == 15)
                return -EMSGSIZE;
            sz = sz * 16 + (unsigned)hexval(buf[off + i]);
        }
        if (i == 0 || (i < n && buf[off + i] != ';' && !is_ows(buf[off + i])))
            return -EBADMSG;
        if (sz > lim->max_body - total)
            return -EMSGSIZE;
        off += (size_t)r;
        if (sz == 0)
            break;
        if (len - off < sz + 2)
            return 0;
        if (buf[off + sz] != '\r' || buf[off + sz + 1] != '\n')
            return -EBADMSG;
        if (out)
            memcpy(out + total, buf + off, sz);
        total += sz;
        off += sz + 2;
    }
    /* Trailer fields, then the empty line. */
    for (size_t fields = 0;; fields++) {
        ssize_t r = line_end(buf + off, len - off, lim->max_head, -EOVERFLOW, &n);
        if (r <= 0)
            return r;
        off += (size_t)r;
        if (n == 0)
            break;
        if (fields == lim->max_headers)
            return -EOVERFLOW;
    }
    *size = total;
    return (ssize_t)off;
}

static limits_t limits_of(const tao_codec_t *c)
{
    return (limits_t){.max_line = c->u.http.max_line,
                      .max_head = c->u.http.max_head,
                      .max_headers = c->u.http.max_headers,
                      .max_body = c->u.http.max_body};
}

static ssize_t http_decode(const tao_codec_t *codec, const uint8_t *buf, size_t len,
                           tao_frame_t *out)
{
    limits_t lim = limits_of(codec);
    head_t h;
    int rc = parse_head(&lim, buf, len, &h, NULL, 0);
    if (rc < 0 || h.len == 0)
        return rc;
    size_t total;
    if (h.chunked) {
        size_t size;
        ssize_t r = chunked(&lim, buf + h.len, len - h.len, &size, NULL);
        if (r <= 0)
            return r;
        total = h.len + (size_t)r;
    } else {
        total = h.len + (size_t)h.length;
        if (len < total) {
            out->len = total; /* the engine copies just the rest */
            return 0;
        }
    }
    out->type = codec->u.http.type;
    out->payload = buf;
    out->len = total;
    return (ssize_t)total;
}

static int http_encode(const tao_codec_t *codec, int32_t type, size_t len, tao_frame_hdr_t *hdr)
{
    if (len > codec->max_payload)
        return -EMSGSIZE;
    hdr->pre_len = 0;
    hdr->post_len = 0;
    return 0;
}

TAO_API int tao_codec_http(tao_codec_t *codec, const tao_http_opts_t *opts)
{
    static const tao_http_opts_t defaults = {0};
    if (codec == NULL)
        return -EINVAL;
    if (opts == NULL)
        opts = &defaults;
    memset(codec, 0, sizeof *codec);
    codec->decode = http_decode;
    codec->encode = http_encode;
    codec->u.http.max_line = opts->max_line ? opts->max_line : LINE_MAX_DEFAULT;
    codec->u.http.max_head = opts->max_head ? opts->max_head : HEAD_MAX_DEFAULT;
    codec->u.http.max_headers = opts->max_headers ? opts->max_headers : HEADERS_MAX_DEFAULT;
    codec->u.http.max_body = opts->max_body ? opts->max_body : BODY_MAX_DEFAULT;
    if (codec->u.http.max_body > (size_t)SSIZE_MAX / 4)
        codec->u.http.max_body = (size_t)SSIZE_MAX / 4;
    if (codec->u.http.max_head > (size_t)SSIZE_MAX / 4)
        codec->u.http.max_head = (size_t)SSIZE_MAX / 4;
    codec->u.http.type = opts->type;
    /* Responses go out as they are, files included. */
    codec->max_payload = (size_t)SSIZE_MAX / 2;
    return 0;
}

TAO_API int tao_http_parse(const tao_codec_t *codec, const void *frame, size_t len,
                           tao_http_req_t *req, tao_http_header_t *headers, size_t max)
{
    limits_t lim = limits_of(codec);
    head_t h;
    const uint8_t *p = frame;
    int rc = parse_head(&lim, p, len, &h, headers, max);
    if (rc < 0)
        return rc;
    if (h.len == 0)
        return -EBADMSG;
    *req = (tao_http_req_t){
        .method = (const char *)h.method,
        .method_len = h.method_len,
        .target = (const char *)h.target,
        .target_len = h.target_len,
        .minor = h.minor,
        .headers = headers,
        .nheaders = h.nheaders < max ? h.nheaders : max,
        .chunked = h.chunked,
        .keep_alive = h.minor >= 1 ? !h.close : (h.keep_alive && !h.close),
    };
    if (h.chunked) {
        size_t size;
        ssize_t r = chunked(&lim, p + h.len, len - h.len, &size, NULL);
        if (r <= 0)
            return r < 0 ? (int)r : -EBADMSG;
        req->body = p + h.len;
        req->body_len = size;
    } else {
        if (len - h.len < h.length)
            return -EBADMSG;
        req->body = p + h.len;
        req->body_len = (size_t)h.length;
    }
    return 0;
}

TAO_API long tao_http_body(const tao_codec_t *codec, const tao_http_req_t *req, const void *frame,
                           size_t len, uint8_t *out, size_t cap)
{
    if (!req->chunked) {
        if (req->body_len > cap)
            return -ENOSPC;
        memcpy(out, req->body, req->body_len);
        return (long)req->body_len;
    }
    if (req->body_len > cap)
        return -ENOSPC;
    limits_t lim = limits_of(codec);
    size_t size;
    const uint8_t *p = frame;
    ssize_t r = chunked(&lim, req->body, len - (size_t)(req->body - p), &size, out);
    return r < 0 ? (long)r : (long)size;
}

TAO_API int tao_http_status_of(int err)
{
    switch (err) {
    case -ENAMETOOLONG:
        return 414;
    case -EOVERFLOW:
        return 431;
    case -EMSGSIZE:
        return 413;
    default:
        return 400;
    }
}

TAO_API const char *tao_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    default:
        return "Error";
    }
}
