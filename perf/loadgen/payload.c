/* tao-loadgen payloads: built from (connection id, sequence number) alone,
 * so a reply is checked byte for byte without a copy of what was sent.
 *
 * The filler is an arithmetic sequence of 64-bit words seeded by a hash of
 * the two numbers: distinct for every frame, and cheap enough to write and
 * check at millions of messages per second (one add per 8 bytes). Words are
 * stored in host order; both ends of the check run on this host. */
#include <errno.h>
#include <string.h>

#include "perf/loadgen/lg.h"

#define STEP 0x9e3779b97f4a7c15ull

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t seed(uint32_t cid, uint64_t seq)
{
    return mix64(seq * STEP + cid);
}

/* Guards the header itself: a flipped bit in the sequence number must read
 * as corruption, not as a reply from elsewhere in the stream. */
static uint32_t header_check(uint32_t cid, uint64_t seq)
{
    return (uint32_t)(mix64(((uint64_t)cid << 32) ^ seq ^ 0x5a5a5a5aull) >> 32);
}

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void lg_payload_fill(uint8_t *p, size_t len, uint32_t cid, uint64_t seq)
{
    if (len < LG_PAYLOAD_MIN) {
        memset(p, 0, len);
        return;
    }
    put_le(p, seq, 8);
    put_le(p + 8, cid, 4);
    put_le(p + 12, header_check(cid, seq), 4);
    uint64_t x = seed(cid, seq);
    size_t off = LG_PAYLOAD_MIN;
    for (; off + 8 <= len; off += 8, x += STEP)
        memcpy(p + off, &x, 8);
    if (off < len)
        memcpy(p + off, &x, len - off);
}

int lg_payload_check(const uint8_t *p, size_t len, uint32_t *cid_out, uint64_t *seq_out)
{
    if (len < LG_PAYLOAD_MIN)
        return -EBADMSG;
    uint64_t seq = get_le(p, 8);
    uint32_t cid = (uint32_t)get_le(p + 8, 4);
    if ((uint32_t)get_le(p + 12, 4) != header_check(cid, seq))
        return -EBADMSG;
    uint64_t x = seed(cid, seq), diff = 0;
    size_t off = LG_PAYLOAD_MIN;
    for (; off + 8 <= len; off += 8, x += STEP) {
        uint64_t w;
        memcpy(&w, p + off, 8);
        diff |= w ^ x;
    }
    if (off < len && memcmp(p + off, &x, len - off) != 0)
        diff = 1;
    if (diff)
        return -EBADMSG;
    *cid_out = cid;
    *seq_out = seq;
    return 0;
}
