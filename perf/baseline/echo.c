/* The TLV echo of perf/'s hand-written servers: kept simple and honest,
 * as one writes it by hand. */
#include "perf/baseline/echo.h"

#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int pb_buf_append(pb_buf_t *b, const uint8_t *p, size_t n)
{
    if (b->len + n > b->cap) {
        if (b->off) {
            memmove(b->p, b->p + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        if (cap != b->cap) {
            uint8_t *np = realloc(b->p, cap);
            if (!np)
                return -1;
            b->p = np;
            b->cap = cap;
        }
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

void pb_buf_consumed(pb_buf_t *b)
{
    if (b->off < b->len)
        return;
    b->off = b->len = 0;
    if (b->cap > PB_KEEP)
        pb_buf_free(b);
}

void pb_buf_free(pb_buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->cap = 0;
}

/* Echo every complete frame of p[0..n) into out. Returns the bytes used,
 * or -1 for a frame over the limit. */
static ssize_t echo_frames(pb_buf_t *out, const uint8_t *p, size_t n)
{
    size_t off = 0;
    while (n - off >= PB_HDR) {
        uint32_t len = le32(p + off + 4);
        if (len > PB_MAX_PAYLOAD)
            return -1;
        if (n - off - PB_HDR < len)
            break;
        if (pb_buf_append(out, p + off, PB_HDR + (size_t)len) < 0)
            return -1;
        off += PB_HDR + (size_t)len;
    }
    return (ssize_t)off;
}

int pb_echo(pb_buf_t *in, pb_buf_t *out, const uint8_t *p, size_t n)
{
    if (in->len == in->off) {
        ssize_t used = echo_frames(out, p, n);
        if (used < 0)
            return -1;
        return (size_t)used < n ? pb_buf_append(in, p + used, n - (size_t)used) : 0;
    }
    if (pb_buf_append(in, p, n) < 0)
        return -1;
    ssize_t used = echo_frames(out, in->p + in->off, in->len - in->off);
    if (used < 0)
        return -1;
    in->off += (size_t)used;
    pb_buf_consumed(in);
    return 0;
}
