/* The TLV codec, byte-compatible with Go Tao's TypeLengthValueCodec, and the
 * Go Tao heartbeat payload.
 *
 * Every multi-byte field is assembled byte by byte: the wire is little-endian
 * whatever the host is, and a frame header may sit at any alignment inside a
 * receive buffer, so casting it to an integer pointer would be undefined. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "tao/codec.h"

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Two's complement by value: converting an out-of-range uint32_t to int32_t
 * is implementation-defined, this is not. */
static int32_t to_i32(uint32_t v)
{
    return v <= INT32_MAX ? (int32_t)v : (int32_t)(v - 0x80000000u) + INT32_MIN;
}

static ssize_t tlv_decode(const tao_codec_t *codec, const uint8_t *buf, size_t len,
                          tao_frame_t *out)
{
    if (len < TAO_TLV_HEADER_LEN)
        return 0;
    uint32_t n = get_le32(buf + 4);
    /* Refuse before a single body byte is waited for: a peer announcing 4 GiB
     * must not make the engine buffer anything. */
    if (n > codec->max_payload)
        return -EMSGSIZE;
    if (len - TAO_TLV_HEADER_LEN < n) {
        out->len = TAO_TLV_HEADER_LEN + (size_t)n; /* the whole frame, for the caller */
        return 0;
    }
    out->type = to_i32(get_le32(buf));
    out->payload = buf + TAO_TLV_HEADER_LEN;
    out->len = n;
    return (ssize_t)(TAO_TLV_HEADER_LEN + (size_t)n);
}

static int tlv_encode(const tao_codec_t *codec, int32_t type, size_t len, tao_frame_hdr_t *hdr)
{
    /* Go Tao sends whatever it is given and lets the receiver refuse it; we
     * refuse here, where the caller can still do something about it. */
    if (len > codec->max_payload)
        return -EMSGSIZE;
    put_le32(hdr->pre, (uint32_t)type);
    put_le32(hdr->pre + 4, (uint32_t)len);
    hdr->pre_len = TAO_TLV_HEADER_LEN;
    hdr->post_len = 0;
    return 0;
}

TAO_API void tao_codec_tlv(tao_codec_t *codec, size_t max_payload)
{
    /* The length field is a uint32 and decode returns header + payload as a
     * ssize_t: a larger maximum could be neither sent nor reported. */
    size_t cap = UINT32_MAX;
    if (cap > (size_t)SSIZE_MAX - TAO_TLV_HEADER_LEN)
        cap = (size_t)SSIZE_MAX - TAO_TLV_HEADER_LEN;
    memset(codec, 0, sizeof(*codec));
    codec->decode = tlv_decode;
    codec->encode = tlv_encode;
    codec->max_payload = max_payload == 0 ? TAO_TLV_MAX_PAYLOAD_DEFAULT : max_payload;
    if (codec->max_payload > cap)
        codec->max_payload = cap;
}

TAO_API void tao_heartbeat_encode(int64_t timestamp, uint8_t out[TAO_HEARTBEAT_LEN])
{
    uint64_t v = (uint64_t)timestamp;
    put_le32(out, (uint32_t)v);
    put_le32(out + 4, (uint32_t)(v >> 32));
}

TAO_API int tao_heartbeat_decode(const void *payload, size_t len, int64_t *timestamp)
{
    if (payload == NULL || len != TAO_HEARTBEAT_LEN)
        return -EBADMSG;
    const uint8_t *p = payload;
    uint64_t v = (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
    *timestamp = v <= INT64_MAX ? (int64_t)v : (int64_t)(v - 0x8000000000000000u) + INT64_MIN;
    return 0;
}
