/* A loop's receive buffers: buf_count buffers of buf_size bytes, provided to
 * the kernel through one buffer ring, shared by every receive of the loop.
 *
 * The ownership rule, for every path (receive, send, close, abort):
 *
 *   The KERNEL may fill a buffer while it is in the ring. Each receive
 *   completion takes what the kernel filled (tao__buf_take) and holds it
 *   while its bytes are decoded or copied out; each send chunk that lends
 *   its payload from there (send.c) holds it too, until that chunk is
 *   written or dropped. tao__buf_put drops one hold. A buffer goes back in
 *   the ring exactly when the kernel has let go of it and the last hold is
 *   dropped. Nothing else returns a buffer.
 *
 *   Usually the kernel lets go of a buffer at the completion that filled
 *   it. With incremental consumption (IOU_PBUF_RING_INC, Linux 6.12) it
 *   fills a buffer a slice at a time, one slice per completion, each right
 *   after the previous one, and says TAO__CQ_BUF_MORE while it keeps the
 *   rest: then slices already taken are held while the kernel writes
 *   behind them, and the buffer goes back only after the kernel's last
 *   slice and the last hold. The offset of the next slice is counted here
 *   (buf_off), from the bytes each completion reports.
 *
 * So the order of recv completion, send completion, close and abort does
 * not matter: an abort that drops a lent chunk while its receive is still
 * being decoded leaves the receive's own hold, and the buffer goes back
 * once, when the receive lets go. A buffer in the ring twice would be
 * handed to two receives at once and cross their bytes; debug builds
 * assert on each buffer's state at every take and put, and
 * tests/engine/test_bufring.c breaks the rule on purpose to see them fire.
 *
 * At most half the buffers have a lender among their holders at a time, so
 * slow peers cannot starve every receive of the loop. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "engine/backend.h"
#include "engine/bufring.h"
#include "engine/fault.h"
#include "engine/loop.h"

enum {
    BUF_KERNEL = 1 << 0, /* in the ring: the kernel may fill it, or its rest */
    BUF_LENT = 1 << 1,   /* a lender is among its holders */
};

static void to_ring(tao__loop_t *loop, unsigned bid)
{
    assert(!(loop->buf_state[bid] & BUF_KERNEL) && loop->buf_refs[bid] == 0);
    loop->buf_state[bid] = BUF_KERNEL;
    loop->buf_off[bid] = 0;
    loop->bufs_avail++;
    loop->be->give_buf(loop, bid);
}

int tao__bufs_setup(tao__loop_t *loop)
{
    TAO__ON_LOOP(loop);
    size_t total = (size_t)loop->buf_count * loop->buf_size;

    loop->bufs = tao__aligned_alloc(4096, (total + 4095) & ~(size_t)4095);
    loop->buf_refs = tao__calloc(loop->buf_count, sizeof *loop->buf_refs);
    loop->buf_state = tao__calloc(loop->buf_count, sizeof *loop->buf_state);
    loop->buf_off = tao__calloc(loop->buf_count, sizeof *loop->buf_off);
    if (!loop->bufs || !loop->buf_refs || !loop->buf_state || !loop->buf_off)
        return -ENOMEM;
    for (unsigned i = 0; i < loop->buf_count; i++)
        to_ring(loop, i);
    return 0;
}

void tao__bufs_teardown(tao__loop_t *loop)
{
    free(loop->bufs);
    free(loop->buf_refs);
    free(loop->buf_state);
    free(loop->buf_off);
    loop->bufs = NULL;
    loop->buf_refs = NULL;
    loop->buf_state = NULL;
    loop->buf_off = NULL;
}

const uint8_t *tao__buf_take(tao__loop_t *loop, const tao__cqe_t *cqe)
{
    TAO__ON_LOOP(loop);
    unsigned bid = cqe->bid;
    size_t len = cqe->res > 0 ? (size_t)cqe->res : 0;
    assert(bid < loop->buf_count && (loop->buf_state[bid] & BUF_KERNEL));
    assert(loop->buf_off[bid] + len <= loop->buf_size);
    const uint8_t *p = loop->bufs + (size_t)bid * loop->buf_size + loop->buf_off[bid];
    if (cqe->flags & TAO__CQ_BUF_MORE) {
        loop->buf_off[bid] += (uint32_t)len; /* the kernel's next slice starts there */
    } else {
        loop->buf_state[bid] &= (uint8_t)~BUF_KERNEL; /* to_ring starts its offset over */
        loop->bufs_avail--;
    }
    loop->buf_refs[bid]++;
    return p;
}

bool tao__buf_lend(tao__loop_t *loop, unsigned bid)
{
    TAO__ON_LOOP(loop);
    assert(bid < loop->buf_count && loop->buf_refs[bid] > 0);
    if (!(loop->buf_state[bid] & BUF_LENT)) {
        if (loop->bufs_lent >= loop->buf_count / 2)
            return false;
        loop->buf_state[bid] |= BUF_LENT;
        loop->bufs_lent++;
    }
    loop->buf_refs[bid]++;
    return true;
}

void tao__buf_put(tao__loop_t *loop, unsigned bid)
{
    TAO__ON_LOOP(loop);
    assert(bid < loop->buf_count && loop->buf_refs[bid] > 0);
    if (--loop->buf_refs[bid])
        return;
    if (loop->buf_state[bid] & BUF_LENT) {
        loop->buf_state[bid] &= (uint8_t)~BUF_LENT;
        loop->bufs_lent--;
    }
    if (!(loop->buf_state[bid] & BUF_KERNEL))
        to_ring(loop, bid);
}
