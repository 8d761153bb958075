/* The line codec: a frame is everything up to a delimiter of 1 to 8 bytes.
 *
 * Decode is stateless, so it rescans from the start of the buffer on every
 * call; the scan is bounded by max_line + delimiter bytes, which is also the
 * point at which a line without a delimiter is known to be too long. */
/* memmem is a GNU extension; the build defines this too, but the file should
 * not depend on it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "tao/codec.h"

#define LINE_MAX_DEFAULT (64u * 1024u)

static ssize_t line_decode(const tao_codec_t *codec, const uint8_t *buf, size_t len,
                           tao_frame_t *out)
{
    const uint8_t *delim = codec->u.line.delim;
    size_t dlen = codec->u.line.delim_len;
    if (len < dlen)
        return 0;
    /* A delimiter starting after max_line would end an oversized line, so
     * nothing past max_line + dlen can matter. */
    size_t limit = codec->max_payload + dlen;
    size_t scan = len < limit ? len : limit;
    const uint8_t *hit = dlen == 1 ? memchr(buf, delim[0], scan) : memmem(buf, scan, delim, dlen);
    if (hit == NULL)
        return len >= limit ? -EMSGSIZE : 0;
    size_t n = (size_t)(hit - buf);
    out->type = codec->u.line.type;
    out->payload = buf;
    out->len = n;
    return (ssize_t)(n + dlen);
}

static int line_encode(const tao_codec_t *codec, int32_t type, size_t len, tao_frame_hdr_t *hdr)
{
    if (len > codec->max_payload)
        return -EMSGSIZE;
    hdr->pre_len = 0;
    memcpy(hdr->post, codec->u.line.delim, codec->u.line.delim_len);
    hdr->post_len = (uint8_t)codec->u.line.delim_len;
    return 0;
}

TAO_API int tao_codec_line(tao_codec_t *codec, const tao_line_opts_t *opts)
{
    static const tao_line_opts_t defaults = {0};
    if (codec == NULL)
        return -EINVAL;
    if (opts == NULL)
        opts = &defaults;
    const char *delim = opts->delimiter ? opts->delimiter : "\n";
    size_t dlen = strnlen(delim, TAO_FRAME_POST_MAX + 1);
    if (dlen == 0 || dlen > TAO_FRAME_POST_MAX)
        return -EINVAL;
    size_t max = opts->max_line == 0 ? LINE_MAX_DEFAULT : opts->max_line;
    /* decode returns line + delimiter as a ssize_t. */
    if (max > (size_t)SSIZE_MAX - dlen)
        max = (size_t)SSIZE_MAX - dlen;
    memset(codec, 0, sizeof(*codec));
    codec->decode = line_decode;
    codec->encode = line_encode;
    codec->max_payload = max;
    memcpy(codec->u.line.delim, delim, dlen);
    codec->u.line.delim_len = dlen;
    codec->u.line.type = opts->type;
    return 0;
}
