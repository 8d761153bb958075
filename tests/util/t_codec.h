/* Test helpers for framing codecs (t_codec_*): feed a stream to a decoder the
 * way the engine does, with every buffer allocated to its exact length so
 * that AddressSanitizer catches a decoder reading past what it was given. */
#ifndef TAO_TESTS_T_CODEC_H
#define TAO_TESTS_T_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tao/codec.h"

/* One decoded frame, its payload given as an offset into the whole stream. */
typedef struct t_frame_rec {
    int32_t type;
    size_t off;
    size_t len;
} t_frame_rec_t;

/* Decode buf[0..len) from an exact-size copy. */
ssize_t t_codec_decode(const tao_codec_t *codec, const uint8_t *buf, size_t len, tao_frame_t *out);

/* Assert that every proper prefix of buf[0..frame_len) decodes to 0 (need
 * more) and that the whole decodes to exactly frame_len. */
void t_codec_prefixes(const tao_codec_t *codec, const uint8_t *buf, size_t frame_len);

/* Feed stream[0..len) in chunks of `chunk` bytes, keeping undecoded bytes
 * between chunks and decoding after each until 0, like the engine does.
 * Records up to max frames in out. Returns the number of frames, or the first
 * negative decode result. *left gets the bytes still undecoded at the end. */
long t_codec_feed(const tao_codec_t *codec, const uint8_t *stream, size_t len, size_t chunk,
                  t_frame_rec_t *out, size_t max, size_t *left);

/* Assert that feeding stream in every chunk size from 1 to len yields exactly
 * the n frames of want and no bytes left over. */
void t_codec_feed_all_chunks(const tao_codec_t *codec, const uint8_t *stream, size_t len,
                             const t_frame_rec_t *want, size_t n);

#endif
