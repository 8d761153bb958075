/* Tao-C: framing codecs.
 *
 * A codec turns a byte stream into frames and back. It is pure: no I/O, no
 * allocation, no state between calls. The engine keeps the bytes of a frame
 * that has not fully arrived and calls decode again when more come, so a
 * decoder only ever looks at one contiguous buffer.
 *
 * Three codecs ship with Tao-C:
 *   - TLV, byte-compatible with Go Tao: int32 LE type, uint32 LE length,
 *     payload. The default.
 *   - length-field: a length prefix at any offset, 1/2/4/8 bytes, either byte
 *     order, with adjustment and stripping, for device protocols.
 *   - line: frames end with a delimiter (default "\n").
 * A custom codec fills a tao_codec_t with its own two functions. */
#ifndef TAO_CODEC_H
#define TAO_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Go Tao's limit: 8 MiB of payload. */
#define TAO_TLV_MAX_PAYLOAD_DEFAULT (8u * 1024u * 1024u)
#define TAO_TLV_HEADER_LEN 8
/* Go Tao's heartbeat: type 0 with an 8-byte little-endian int64 payload. */
#define TAO_MSG_HEARTBEAT 0
#define TAO_HEARTBEAT_LEN 8

/* A decoded frame: a view into the buffer given to decode, valid as long as
 * that buffer is. */
typedef struct tao_frame {
    int32_t type;
    const uint8_t *payload;
    size_t len;
} tao_frame_t;

/* What encode produces for one frame: bytes that go before the payload and
 * bytes that go after it, so a sender can gather pre + payload + post without
 * copying the payload. */
#define TAO_FRAME_PRE_MAX 24
#define TAO_FRAME_POST_MAX 8
typedef struct tao_frame_hdr {
    uint8_t pre[TAO_FRAME_PRE_MAX];
    uint8_t post[TAO_FRAME_POST_MAX];
    uint8_t pre_len;
    uint8_t post_len;
} tao_frame_hdr_t;

typedef struct tao_codec tao_codec_t;

/* Look at buf[0..len). Returns the number of bytes the first frame occupies
 * (> 0) and fills *out; 0 when the frame is not complete yet; -EMSGSIZE when
 * the frame announces more than the codec's maximum (known as soon as its
 * header is there); -EBADMSG for bytes that can never become a valid frame.
 * With 0, a decoder that already knows the whole frame's size (its header
 * is complete) may store it in out->len, and leaves it alone otherwise: the
 * engine then copies only the rest of that frame, never a whole buffer,
 * to complete it. */
typedef ssize_t (*tao_decode_fn)(const tao_codec_t *codec, const uint8_t *buf, size_t len,
                                 tao_frame_t *out);

/* Fill *hdr for a frame of the given type and payload length. Returns 0, or
 * -EMSGSIZE when len exceeds the codec's maximum, -ENOTSUP when the codec
 * cannot encode with its current settings, or -ERANGE when len cannot be
 * expressed in the frame's header (length-field codec, see below). */
typedef int (*tao_encode_fn)(const tao_codec_t *codec, int32_t type, size_t len,
                             tao_frame_hdr_t *hdr);

typedef enum tao_byte_order {
    TAO_BIG_ENDIAN = 0, /* network order, the usual one on the wire */
    TAO_LITTLE_ENDIAN = 1,
} tao_byte_order_t;

/* Length-field framing, after the classic "length field based frame decoder":
 * a frame is length_offset bytes, the length field (length_size bytes, holding
 * L, unsigned), then L + length_adjust more bytes. The first strip bytes of
 * the frame are removed and the rest is the payload. Every frame decodes as
 * message type `type`.
 *
 * Decode returns -EMSGSIZE as soon as the length field shows a frame larger
 * than max_frame, and -EBADMSG when L + length_adjust is negative or the frame
 * is shorter than strip.
 *
 * Encode works only when strip == length_offset + length_size, i.e. when the
 * payload is exactly what follows the length field (-ENOTSUP otherwise, and
 * also when length_offset + length_size > TAO_FRAME_PRE_MAX). It writes
 * length_offset zero bytes, then L = len - length_adjust in the configured
 * byte order. It returns -EMSGSIZE when the frame would exceed max_frame or L
 * does not fit in length_size bytes, and -ERANGE when L would be negative
 * (len < length_adjust). */
typedef struct tao_lenfield_opts {
    size_t length_offset;
    size_t length_size; /* 1, 2, 4 or 8 */
    tao_byte_order_t order;
    int64_t length_adjust; /* added to L to get the bytes that follow the field */
    size_t strip;          /* bytes removed from the front of each frame */
    size_t max_frame;      /* whole frame, header included; 0 = 8 MiB;
                              values above SSIZE_MAX count as SSIZE_MAX */
    int32_t type;          /* message type given to every frame */
} tao_lenfield_opts_t;

/* Line framing: a frame is every byte up to the first delimiter; the
 * delimiter is not part of the payload, and an empty line is a frame with an
 * empty payload. Decode returns -EMSGSIZE as soon as max_line + delimiter
 * bytes have arrived without a delimiter (or the first delimiter starts after
 * max_line). Encode puts the delimiter in hdr->post; it cannot see the
 * payload, so a payload holding the delimiter arrives as several lines. */
typedef struct tao_line_opts {
    const char *delimiter; /* NULL = "\n"; 1 to TAO_FRAME_POST_MAX bytes */
    size_t max_line;       /* payload bytes; 0 = 64 KiB */
    int32_t type;          /* message type given to every frame */
} tao_line_opts_t;

/* RESP, the Redis protocol (version 2). A frame is one whole value, its
 * bytes as they came (frame.payload): in TAO_RESP_REQUESTS mode a request,
 * an array of bulk strings or an inline command line ("SET k v\r\n", as
 * redis-cli and telnet send), split with tao_resp_args; in
 * TAO_RESP_REPLIES mode any value (+simple, -error, :integer, $bulk or
 * nil, *array, nested). Encoding adds nothing: the payload sent is the
 * reply's wire bytes (see tao_resp_simple and friends). Decode returns
 * -EMSGSIZE for a bulk string, an array or an inline line over its limit
 * as soon as its header shows it, and -EBADMSG for anything else that is
 * not RESP (a server answers "-ERR Protocol error" from on_error, then the
 * connection closes). Every request decodes as message type `type`. */
typedef enum tao_resp_mode {
    TAO_RESP_REQUESTS = 0,
    TAO_RESP_REPLIES = 1,
} tao_resp_mode_t;

typedef struct tao_resp_opts {
    tao_resp_mode_t mode;
    size_t max_bulk;   /* bytes of one bulk string; 0 = 8 MiB */
    size_t max_args;   /* elements of one array; 0 = 1,048,576 (Redis's) */
    size_t max_inline; /* an inline command or simple value line; 0 = 64 KiB */
    int32_t type;      /* message type given to every frame */
} tao_resp_opts_t;

/* One argument of a request: a view into the payload. */
typedef struct tao_resp_arg {
    const uint8_t *p;
    size_t len;
} tao_resp_arg_t;

/* HTTP/1.1 requests, for a server (codec/http1.c says what is accepted).
 * A frame is one whole request, head and body (Content-Length or chunked),
 * its bytes as they came; tao_http_parse tells its parts. Encoding adds
 * nothing: a handler sends the response's bytes. Decode's errors name the
 * status to answer with (tao_http_status_of): -EBADMSG 400, -EMSGSIZE 413
 * (body over max_body), -ENAMETOOLONG 414 (request line over max_line),
 * -EOVERFLOW 431 (head over max_head, or more than max_headers fields). */
typedef struct tao_http_opts {
    size_t max_line;    /* request line bytes; 0 = 8 KiB */
    size_t max_head;    /* request line and header fields; 0 = 16 KiB */
    size_t max_headers; /* header fields; 0 = 100 */
    size_t max_body;    /* body bytes (decoded, when chunked); 0 = 1 MiB */
    int32_t type;       /* message type given to every request */
} tao_http_opts_t;

typedef struct tao_http_header {
    const char *name; /* views into the frame, not NUL-terminated */
    size_t name_len;
    const char *value; /* surrounding spaces removed */
    size_t value_len;
} tao_http_header_t;

typedef struct tao_http_req {
    const char *method, *target; /* views into the frame */
    size_t method_len, target_len;
    int minor; /* HTTP/1.minor */
    tao_http_header_t *headers;
    size_t nheaders;
    const uint8_t *body; /* Content-Length: the body; chunked: its wire form */
    size_t body_len;     /* the body's decoded length either way */
    bool chunked;        /* tao_http_body decodes it */
    bool keep_alive;     /* 1.1 without "Connection: close", or 1.0 with keep-alive */
} tao_http_req_t;

struct tao_codec {
    tao_decode_fn decode;
    tao_encode_fn encode;
    size_t max_payload; /* largest payload decode accepts and encode writes */
    union {
        struct {
            size_t length_offset, length_size, strip, max_frame;
            int64_t length_adjust;
            tao_byte_order_t order;
            int32_t type;
        } lenfield;
        struct {
            uint8_t delim[TAO_FRAME_POST_MAX];
            size_t delim_len;
            int32_t type;
        } line;
        struct {
            size_t max_bulk, max_args, max_inline;
            int mode;
            int32_t type;
        } resp;
        struct {
            size_t max_line, max_head, max_headers, max_body;
            int32_t type;
        } http;
        void *user; /* for custom codecs */
    } u;
};

/* TLV with max_payload bytes at most (0 = TAO_TLV_MAX_PAYLOAD_DEFAULT;
 * larger than the uint32 length field can hold counts as UINT32_MAX). Exactly
 * max_payload is accepted; decode returns -EMSGSIZE for a larger length as
 * soon as the 8-byte header is there. Negative types are legal. */
TAO_API void tao_codec_tlv(tao_codec_t *codec, size_t max_payload);

/* Return 0, or -EINVAL (codec left untouched) for settings that cannot
 * describe a frame: for length-field, opts NULL, length_size not 1/2/4/8, an
 * unknown order, length_offset + length_size > max_frame or strip >
 * max_frame; for line, a delimiter of 0 or more than TAO_FRAME_POST_MAX
 * bytes. opts == NULL gives the line defaults. */
TAO_API int tao_codec_lenfield(tao_codec_t *codec, const tao_lenfield_opts_t *opts);
TAO_API int tao_codec_line(tao_codec_t *codec, const tao_line_opts_t *opts);

/* 0, or -EINVAL for an unknown mode. opts == NULL: requests, defaults. */
TAO_API int tao_codec_resp(tao_codec_t *codec, const tao_resp_opts_t *opts);

/* The arguments of a request frame (either form) into args[0..max): returns
 * how many it has (more than max: only max filled), or -EBADMSG (inline
 * quotes that do not close). */
TAO_API long tao_resp_args(const void *payload, size_t len, tao_resp_arg_t *args, size_t max);

/* Reply pieces, written like snprintf (returns the length the whole piece
 * needs; out gets at most cap - 1 bytes and a NUL):
 *   tao_resp_simple(out, cap, '+', "OK") or ('-', "ERR unknown command")
 *   tao_resp_int(out, cap, 42)                      ":42\r\n"
 *   tao_resp_header(out, cap, '$', 5) then 5 bytes and "\r\n": a bulk
 *   string; ('$', -1) nil; ('*', n) an array of the n values that follow. */
TAO_API size_t tao_resp_simple(char *out, size_t cap, char kind, const char *text);
TAO_API size_t tao_resp_int(char *out, size_t cap, long long v);
TAO_API size_t tao_resp_header(char *out, size_t cap, char kind, long long n);

/* 0, or -EINVAL for codec NULL. opts == NULL: the defaults. */
TAO_API int tao_codec_http(tao_codec_t *codec, const tao_http_opts_t *opts);

/* The parts of a request frame the codec decoded: 0, or a decode error.
 * Header fields go to headers[0..max) (req->nheaders says how many). */
TAO_API int tao_http_parse(const tao_codec_t *codec, const void *frame, size_t len,
                           tao_http_req_t *req, tao_http_header_t *headers, size_t max);

/* The body, decoded, into out: its length, or -ENOSPC when cap is less
 * than req->body_len. */
TAO_API long tao_http_body(const tao_codec_t *codec, const tao_http_req_t *req, const void *frame,
                           size_t len, uint8_t *out, size_t cap);

/* The status for a decode error (400, 413, 414 or 431). */
TAO_API int tao_http_status_of(int err);

/* The reason phrase of a status this codec's servers answer with (200,
 * 400, 404, 405, 413, 414, 431, 500); "Error" for others. */
TAO_API const char *tao_http_reason(int status);

/* Encode a Go Tao heartbeat payload (8 bytes, LE int64) into out. */
TAO_API void tao_heartbeat_encode(int64_t timestamp, uint8_t out[TAO_HEARTBEAT_LEN]);
/* Returns 0 and the timestamp, or -EBADMSG when len is not 8 (or payload is
 * NULL). */
TAO_API int tao_heartbeat_decode(const void *payload, size_t len, int64_t *timestamp);

#ifdef __cplusplus
}
#endif
#endif
