/* A connection's output queue: chunks of bytes in wire order, and the
 * arithmetic of gathering them into iovecs and dropping what was sent.
 *
 * Copied messages are packed back to back into chunks (header, payload,
 * trailer), so a burst of small replies is a few iovecs; an owned, lent or
 * registered payload gets a chunk of its own that points at it. Pure:
 * send.c does the sending, and tests/unit/test_outq.c includes this file.
 *
 * Spare chunks: a packing chunk (CHUNK_MIN bytes in all) that the queue
 * has sent is not freed but kept on its loop's cache (q->cache), up to
 * CACHE_MAX of them, and the next packing chunk of any queue of that loop
 * is taken from there: a burst of small replies then costs no malloc and
 * no free. The cache belongs to the loop's thread, as the queues do; a
 * chunk on it is owned by the cache alone (no queue points at it, its
 * payload fields are reset when it is taken), and only chunk_drop puts one
 * there, after letting go of what the chunk carried. The loop frees the
 * cache at its end (tao__chunk_cache_drain). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bufring.h"
#include "engine/fault.h"
#include "engine/outq.h"
#include "engine/send.h"

#define CHUNK_MIN 4096
#define CACHE_MAX 128 /* 512 KiB per loop at most */
#define CACHE_CAP (CHUNK_MIN - sizeof(tao__chunk_t))

size_t tao__chunk_bytes(const tao__chunk_t *k)
{
    return k->len + k->ext_len + k->post_len;
}

static void chunk_let_go(tao__chunk_t *k)
{
    if (k->zc_loop)
        tao__zc_put(k->zc_loop, k->zc_slot);
    else if (k->lent)
        tao__buf_put(k->lent, k->lent_bid);
    else if (k->free_fn)
        k->free_fn(k->ext, k->free_user);
}

void tao__chunk_free(tao__chunk_t *k)
{
    chunk_let_go(k);
    free(k);
}

/* A chunk leaves q: onto the loop's cache when it is a packing chunk and
 * there is room, else freed. */
static void chunk_drop(tao__outq_t *q, tao__chunk_t *k)
{
    tao__chunk_cache_t *cache = q->cache;
    bool plain = k->cap == CACHE_CAP && !k->ext && !k->zc_loop && !k->lent && !k->free_fn;
    if (!cache || !plain || cache->n >= CACHE_MAX) {
        tao__chunk_free(k);
        return;
    }
    k->next = cache->free;
    cache->free = k;
    cache->n++;
}

void tao__chunk_cache_drain(tao__chunk_cache_t *cache)
{
    while (cache->free) {
        tao__chunk_t *k = cache->free;
        cache->free = k->next;
        free(k);
    }
    cache->n = 0;
}

void tao__outq_append(tao__outq_t *q, tao__chunk_t *k)
{
    k->next = NULL;
    if (q->tail)
        q->tail->next = k;
    else
        q->head = k;
    q->tail = k;
    q->bytes += tao__chunk_bytes(k);
}

tao__chunk_t *tao__chunk_new(size_t cap)
{
    tao__chunk_t *k = tao__malloc(sizeof *k + cap);
    if (!k)
        return NULL;
    memset(k, 0, sizeof *k);
    k->cap = (uint32_t)cap;
    return k;
}

static void put_frame(tao__chunk_t *k, const tao_frame_hdr_t *h, const void *payload, size_t len)
{
    uint8_t *p = k->data + k->len;
    memcpy(p, h->pre, h->pre_len);
    if (len)
        memcpy(p + h->pre_len, payload, len);
    memcpy(p + h->pre_len + len, h->post, h->post_len);
    k->len += (uint32_t)(h->pre_len + len + h->post_len);
}

/* Copy a frame into the queue, packed behind the previous one when the tail
 * chunk has room. */
int tao__outq_push_copy(tao__outq_t *q, const tao_frame_hdr_t *h, const void *payload, size_t len)
{
    size_t total = h->pre_len + len + h->post_len;
    tao__chunk_t *k = q->tail;

    if (total > UINT32_MAX - CHUNK_MIN)
        return -EMSGSIZE;
    if (k && !k->ext && k->cap - k->len >= total) {
        put_frame(k, h, payload, len);
        q->bytes += total;
        return 0;
    }
    if (total <= CACHE_CAP && q->cache && q->cache->free) {
        k = q->cache->free;
        q->cache->free = k->next;
        q->cache->n--;
        memset(k, 0, sizeof *k);
        k->cap = (uint32_t)CACHE_CAP;
    } else {
        k = tao__chunk_new(total < CACHE_CAP ? CACHE_CAP : total);
    }
    if (!k)
        return -ENOMEM;
    put_frame(k, h, payload, len);
    tao__outq_append(q, k);
    return 0;
}

/* A chunk holding one copied frame, for a send from another thread. */
tao__chunk_t *tao__chunk_copy(const tao_frame_hdr_t *h, const void *payload, size_t len)
{
    size_t total = h->pre_len + len + h->post_len;
    if (total > UINT32_MAX)
        return NULL;
    tao__chunk_t *k = tao__chunk_new(total);
    if (k)
        put_frame(k, h, payload, len);
    return k;
}

tao__chunk_t *tao__chunk_owned(const tao_frame_hdr_t *h, void *payload, size_t len,
                               tao_payload_free_fn free_fn, void *user)
{
    tao__chunk_t *k = tao__chunk_new(h->pre_len);
    if (!k)
        return NULL;
    memcpy(k->data, h->pre, h->pre_len);
    k->len = h->pre_len;
    k->ext = payload;
    k->ext_len = len;
    k->free_fn = free_fn;
    k->free_user = user;
    memcpy(k->post, h->post, h->post_len);
    k->post_len = h->post_len;
    return k;
}

void tao__outq_clear(tao__outq_t *q)
{
    while (q->head) {
        tao__chunk_t *k = q->head;
        q->head = k->next;
        chunk_drop(q, k);
    }
    q->tail = NULL;
    q->bytes = 0;
    q->head_off = 0;
}

void tao__outq_advance(tao__outq_t *q, size_t n)
{
    q->bytes -= n;
    n += q->head_off;
    while (q->head && n >= tao__chunk_bytes(q->head)) {
        tao__chunk_t *k = q->head;
        n -= tao__chunk_bytes(k);
        q->head = k->next;
        chunk_drop(q, k);
    }
    if (!q->head)
        q->tail = NULL;
    q->head_off = n;
}

static int put_iov(struct iovec *iov, int n, const void *base, size_t len, size_t *skip)
{
    if (len <= *skip) {
        *skip -= len;
        return n;
    }
    if (n == TAO__IOV_MAX)
        return n;
    iov[n].iov_base = (uint8_t *)base + *skip;
    iov[n].iov_len = len - *skip;
    *skip = 0;
    return n + 1;
}

int tao__outq_gather(const tao__outq_t *q, struct iovec *iov)
{
    size_t skip = q->head_off;
    int n = 0;
    for (const tao__chunk_t *k = q->head; k && n < TAO__IOV_MAX && !k->zc_loop; k = k->next) {
        n = put_iov(iov, n, k->data, k->len, &skip);
        if (k->ext_len)
            n = put_iov(iov, n, k->ext, k->ext_len, &skip);
        if (k->post_len)
            n = put_iov(iov, n, k->post, k->post_len, &skip);
    }
    return n;
}
