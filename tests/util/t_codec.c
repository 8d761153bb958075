/* Codec test helpers: the engine's receive loop in miniature. */
#include "util/t_codec.h"

#include <stdlib.h>
#include <string.h>

#include "util/t_util.h"

ssize_t t_codec_decode(const tao_codec_t *codec, const uint8_t *buf, size_t len, tao_frame_t *out)
{
    /* malloc(0) may return NULL; a one-byte block still bounds reads at 0. */
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, buf, len);
    tao_frame_t f = {0};
    ssize_t rc = codec->decode(codec, copy, len, &f);
    if (rc > 0) {
        assert_true((size_t)rc <= len);
        assert_true(f.payload >= copy && f.payload + f.len <= copy + rc);
        /* Report the payload in the caller's buffer, not the copy. */
        f.payload = buf + (f.payload - copy);
    }
    free(copy);
    if (out)
        *out = f;
    return rc;
}

void t_codec_prefixes(const tao_codec_t *codec, const uint8_t *buf, size_t frame_len)
{
    tao_frame_t f;
    for (size_t i = 0; i < frame_len; i++) {
        ssize_t rc = t_codec_decode(codec, buf, i, &f);
        if (rc != 0)
            fail_msg("prefix of %zu/%zu bytes decoded to %zd", i, frame_len, rc);
    }
    assert_int_equal(t_codec_decode(codec, buf, frame_len, &f), (ssize_t)frame_len);
}

/* Decode the pending bytes until the codec wants more. pending[0..*plen) sits
 * at stream offset *base. Returns frames recorded so far or a decode error. */
static long drain(const tao_codec_t *codec, uint8_t *pending, size_t *plen, size_t *base,
                  t_frame_rec_t *out, size_t max, long n)
{
    for (;;) {
        tao_frame_t f;
        ssize_t rc = t_codec_decode(codec, pending, *plen, &f);
        if (rc <= 0)
            return rc < 0 ? rc : n;
        if ((size_t)n < max)
            out[n] = (t_frame_rec_t){f.type, *base + (size_t)(f.payload - pending), f.len};
        n++;
        memmove(pending, pending + rc, *plen - (size_t)rc);
        *plen -= (size_t)rc;
        *base += (size_t)rc;
    }
}

long t_codec_feed(const tao_codec_t *codec, const uint8_t *stream, size_t len, size_t chunk,
                  t_frame_rec_t *out, size_t max, size_t *left)
{
    uint8_t *pending = malloc(len ? len : 1);
    assert_non_null(pending);
    size_t plen = 0, base = 0, fed = 0;
    long n = 0;
    while (fed < len && n >= 0) {
        size_t k = len - fed < chunk ? len - fed : chunk;
        memcpy(pending + plen, stream + fed, k);
        plen += k;
        fed += k;
        n = drain(codec, pending, &plen, &base, out, max, n);
    }
    free(pending);
    if (left)
        *left = plen;
    return n;
}

void t_codec_feed_all_chunks(const tao_codec_t *codec, const uint8_t *stream, size_t len,
                             const t_frame_rec_t *want, size_t n)
{
    t_frame_rec_t *got = calloc(n + 1, sizeof(*got));
    assert_non_null(got);
    for (size_t chunk = 1; chunk <= len; chunk++) {
        size_t left = 99;
        long rc = t_codec_feed(codec, stream, len, chunk, got, n + 1, &left);
        if (rc != (long)n || left != 0)
            fail_msg("chunk %zu: %ld frames, %zu bytes left; want %zu, 0", chunk, rc, left, n);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(got[i].type, want[i].type);
            assert_int_equal(got[i].off, want[i].off);
            assert_int_equal(got[i].len, want[i].len);
        }
    }
    free(got);
}
