/* tao-loadgen latency histogram: log-linear buckets over nanoseconds.
 *
 * Values below 32 have a bucket each; above, every power of two is split
 * into 32 equal buckets, so any value is known within about 3% at a fixed
 * 15 KiB per histogram, and recording is a shift and an add. */
#include "perf/loadgen/lg.h"

static unsigned bucket_of(uint64_t v)
{
    if (v < LG_HIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* e >= LG_HIST_SUB_BITS */
    unsigned sub = (unsigned)(v >> (e - LG_HIST_SUB_BITS)) & (LG_HIST_SUB - 1);
    return (e - LG_HIST_SUB_BITS + 1) * LG_HIST_SUB + sub;
}

/* The largest value that lands in bucket i. */
static uint64_t bucket_top(unsigned i)
{
    if (i < LG_HIST_SUB)
        return i;
    unsigned e = i / LG_HIST_SUB + LG_HIST_SUB_BITS - 1;
    uint64_t sub = i % LG_HIST_SUB;
    uint64_t width = 1ull << (e - LG_HIST_SUB_BITS);
    return ((LG_HIST_SUB + sub) << (e - LG_HIST_SUB_BITS)) + width - 1;
}

void lg_hist_record(lg_hist_t *h, uint64_t ns)
{
    h->count[bucket_of(ns)]++;
    h->total++;
    if (ns > h->max)
        h->max = ns;
}

void lg_hist_merge(lg_hist_t *dst, const lg_hist_t *src)
{
    for (unsigned i = 0; i < LG_HIST_BUCKETS; i++)
        dst->count[i] += src->count[i];
    dst->total += src->total;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t lg_hist_quantile(const lg_hist_t *h, double q)
{
    if (!h->total)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    /* The smallest value with at least q of the samples at or below it. */
    uint64_t rank = (uint64_t)(q * (double)h->total + 0.999999);
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < LG_HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= rank) {
            uint64_t top = bucket_top(i);
            return top < h->max ? top : h->max;
        }
    }
    return h->max;
}
