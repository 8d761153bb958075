/* tao-loadgen sequence tracking: tells loss, reordering and duplication
 * apart on one connection.
 *
 * An echo over TCP answers in order, so the reply due is always the oldest
 * one outstanding. A reply ahead of it marks the ones in between missing;
 * they count as lost unless they turn up later, which makes them reordered.
 * Only the most recent LG_MISSING_MAX missing ones are remembered: a stream
 * that skips more than that is losing replies, not shuffling them. */
#include "perf/loadgen/lg.h"

static void remember(lg_seq_t *s, uint64_t seq)
{
    if (s->nmissing == LG_MISSING_MAX) {
        /* Forget the oldest: it stays counted as lost. */
        for (unsigned i = 1; i < LG_MISSING_MAX; i++)
            s->missing[i - 1] = s->missing[i];
        s->nmissing--;
    }
    s->missing[s->nmissing++] = seq;
}

static bool take_missing(lg_seq_t *s, uint64_t seq)
{
    for (unsigned i = 0; i < s->nmissing; i++) {
        if (s->missing[i] == seq) {
            s->missing[i] = s->missing[--s->nmissing];
            return true;
        }
    }
    return false;
}

lg_verdict_t lg_seq_reply(lg_seq_t *s, uint64_t seq, uint64_t sent, uint64_t *skipped)
{
    *skipped = 0;
    if (seq >= sent)
        return LG_BOGUS;
    if (seq == s->expect) {
        s->expect++;
        return LG_IN_ORDER;
    }
    if (seq > s->expect) {
        *skipped = seq - s->expect;
        uint64_t from = seq - s->expect > LG_MISSING_MAX ? seq - LG_MISSING_MAX : s->expect;
        for (uint64_t m = from; m < seq; m++)
            remember(s, m);
        s->expect = seq + 1;
        return LG_GAP;
    }
    return take_missing(s, seq) ? LG_LATE : LG_DUP;
}
