/* A loop's receive buffers: buf_count buffers of buf_size bytes, provided to
 * the kernel through one buffer ring, shared by every receive of the loop.
 *
 * The ownership rule, for every path (receive, send, close, abort):
 *
 *   A buffer is either IN the ring (the backend's, to fill) or HELD. The
 *   receive completion the kernel filled it for takes it (tao__buf_take)
 *   and holds it while its bytes are decoded or copied out; each send chunk
 *   that lends its payload from it (send.c) holds it too, until that chunk
 *   is written or dropped. tao__buf_put drops one hold; the last one puts
 *   the buffer back in the ring. Nothing else returns a buffer.
 *
 * So the order of recv completion, send completion, close and abort does
 * not matter: an abort that drops a lent chunk while its receive is still
 * being decoded leaves the receive's own hold, and the buffer goes back
 * once, when the receive lets go. A buffer in the ring twice would be
 * handed to two receives at once and cross their bytes; debug builds
 * assert on each buffer's state at every take and put.
 *
 * At most half the ring is out on loan at a time, so slow peers cannot
 * starve every receive of the loop. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "engine/bufring.h"
#include "engine/fault.h"
#include "engine/loop.h"

enum { BUF_IN_RING, BUF_HELD, BUF_LENT /* held, with a lender among the holders */ };

static void to_ring(tao__loop_t *loop, unsigned bid)
{
    loop->buf_state[bid] = BUF_IN_RING;
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
    if (!loop->bufs || !loop->buf_refs || !loop->buf_state)
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
    loop->bufs = NULL;
    loop->buf_refs = NULL;
    loop->buf_state = NULL;
}

const uint8_t *tao__buf_take(tao__loop_t *loop, unsigned bid)
{
    TAO__ON_LOOP(loop);
    assert(bid < loop->buf_count && loop->buf_state[bid] == BUF_IN_RING);
    loop->buf_state[bid] = BUF_HELD;
    loop->buf_refs[bid] = 1;
    loop->bufs_avail--;
    return loop->bufs + (size_t)bid * loop->buf_size;
}

bool tao__buf_lend(tao__loop_t *loop, unsigned bid)
{
    TAO__ON_LOOP(loop);
    assert(loop->buf_state[bid] != BUF_IN_RING && loop->buf_refs[bid] > 0);
    if (loop->buf_state[bid] == BUF_HELD) {
        if (loop->bufs_lent >= loop->buf_count / 2)
            return false;
        loop->buf_state[bid] = BUF_LENT;
        loop->bufs_lent++;
    }
    loop->buf_refs[bid]++;
    return true;
}

void tao__buf_put(tao__loop_t *loop, unsigned bid)
{
    TAO__ON_LOOP(loop);
    assert(loop->buf_state[bid] != BUF_IN_RING && loop->buf_refs[bid] > 0);
    if (--loop->buf_refs[bid])
        return;
    if (loop->buf_state[bid] == BUF_LENT)
        loop->bufs_lent--;
    to_ring(loop, bid);
}
