/* The length-field codec: a length prefix at a fixed offset, 1 to 8 bytes in
 * either byte order, with Netty's adjustment and stripping rules, so that
 * most binary device protocols can be framed without writing a codec.
 *
 * The length field comes from the peer and may hold anything up to 2^64-1,
 * and length_adjust is any int64: all arithmetic on them is done in uint64_t
 * with explicit range checks, never by letting a sum wrap. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "tao/codec.h"

#define LENFIELD_MAX_FRAME_DEFAULT (8u * 1024u * 1024u)

static uint64_t get_field(const uint8_t *p, size_t size, tao_byte_order_t order)
{
    uint64_t v = 0;
    for (size_t i = 0; i < size; i++) {
        size_t at = order == TAO_BIG_ENDIAN ? i : size - 1 - i;
        v = v << 8 | p[at];
    }
    return v;
}

static void put_field(uint8_t *p, size_t size, tao_byte_order_t order, uint64_t v)
{
    for (size_t i = 0; i < size; i++) {
        size_t at = order == TAO_BIG_ENDIAN ? size - 1 - i : i;
        p[at] = (uint8_t)(v >> (8 * i));
    }
}

/* |adjust| as a uint64_t, defined even for INT64_MIN. */
static uint64_t magnitude(int64_t adjust)
{
    return adjust < 0 ? 0u - (uint64_t)adjust : (uint64_t)adjust;
}

/* Bytes that follow the length field for a field value of l: l + adjust,
 * -EBADMSG when that is negative (no frame can have it), -EMSGSIZE when it
 * exceeds room. */
static int body_len(uint64_t l, int64_t adjust, uint64_t room, uint64_t *body)
{
    uint64_t m = magnitude(adjust);
    if (adjust < 0) {
        if (l < m)
            return -EBADMSG;
        l -= m;
    } else {
        if (l > room || m > room - l)
            return -EMSGSIZE;
        l += m;
    }
    if (l > room)
        return -EMSGSIZE;
    *body = l;
    return 0;
}

static ssize_t lf_decode(const tao_codec_t *codec, const uint8_t *buf, size_t len, tao_frame_t *out)
{
    size_t off = codec->u.lenfield.length_offset, size = codec->u.lenfield.length_size;
    size_t header = off + size, max = codec->u.lenfield.max_frame;
    if (len < header)
        return 0;
    uint64_t l = get_field(buf + off, size, codec->u.lenfield.order);
    uint64_t body;
    int rc = body_len(l, codec->u.lenfield.length_adjust, max - header, &body);
    if (rc < 0)
        return rc;
    size_t frame = header + (size_t)body;
    /* Netty fails the same way: a frame too short to strip is malformed. */
    if (frame < codec->u.lenfield.strip)
        return -EBADMSG;
    if (len < frame) {
        out->len = frame; /* the whole frame, for the caller */
        return 0;
    }
    out->type = codec->u.lenfield.type;
    out->payload = buf + codec->u.lenfield.strip;
    out->len = frame - codec->u.lenfield.strip;
    return (ssize_t)frame;
}

/* Decode has an inverse only when it hands on exactly the bytes after the
 * length field (strip == header): then the payload is the L + length_adjust
 * bytes that follow the field, so L = len - length_adjust. The bytes before
 * the field mean nothing to this codec; they go out as zeros. */
static int lf_encode(const tao_codec_t *codec, int32_t type, size_t len, tao_frame_hdr_t *hdr)
{
    size_t off = codec->u.lenfield.length_offset, size = codec->u.lenfield.length_size;
    size_t header = off + size;
    int64_t adjust = codec->u.lenfield.length_adjust;
    if (codec->u.lenfield.strip != header || header > TAO_FRAME_PRE_MAX)
        return -ENOTSUP;
    if (len > codec->u.lenfield.max_frame - header)
        return -EMSGSIZE;
    uint64_t m = magnitude(adjust), l;
    if (adjust >= 0) {
        if ((uint64_t)len < m)
            return -ERANGE;
        l = (uint64_t)len - m;
    } else {
        /* len <= SSIZE_MAX and m <= 2^63: the sum fits in 64 bits. */
        l = (uint64_t)len + m;
    }
    if (size < 8 && l >> (8 * size) != 0)
        return -EMSGSIZE;
    memset(hdr->pre, 0, off);
    put_field(hdr->pre + off, size, codec->u.lenfield.order, l);
    hdr->pre_len = (uint8_t)header;
    hdr->post_len = 0;
    return 0;
}

static int check_opts(const tao_lenfield_opts_t *o, size_t max)
{
    if (o->length_size != 1 && o->length_size != 2 && o->length_size != 4 && o->length_size != 8)
        return -EINVAL;
    if (o->order != TAO_BIG_ENDIAN && o->order != TAO_LITTLE_ENDIAN)
        return -EINVAL;
    /* A header that cannot fit in max_frame, or a strip longer than any
     * allowed frame, would make every frame an error. */
    if (o->length_size > max || o->length_offset > max - o->length_size)
        return -EINVAL;
    if (o->strip > max)
        return -EINVAL;
    return 0;
}

TAO_API int tao_codec_lenfield(tao_codec_t *codec, const tao_lenfield_opts_t *opts)
{
    if (codec == NULL || opts == NULL)
        return -EINVAL;
    size_t max = opts->max_frame == 0 ? LENFIELD_MAX_FRAME_DEFAULT : opts->max_frame;
    /* decode reports a frame's size as a ssize_t. */
    if (max > (size_t)SSIZE_MAX)
        max = (size_t)SSIZE_MAX;
    int rc = check_opts(opts, max);
    if (rc < 0)
        return rc;
    memset(codec, 0, sizeof(*codec));
    codec->decode = lf_decode;
    codec->encode = lf_encode;
    codec->max_payload = max - opts->strip;
    codec->u.lenfield.length_offset = opts->length_offset;
    codec->u.lenfield.length_size = opts->length_size;
    codec->u.lenfield.strip = opts->strip;
    codec->u.lenfield.max_frame = max;
    codec->u.lenfield.length_adjust = opts->length_adjust;
    codec->u.lenfield.order = opts->order;
    codec->u.lenfield.type = opts->type;
    return 0;
}
