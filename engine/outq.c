/* A connection's output queue: chunks of bytes in wire order, and the
 * arithmetic of gathering them into iovecs and dropping what was sent.
 *
 * Copied messages are packed back to back into chunks (header, payload,
 * trailer), so a burst of small replies is a few iovecs; an owned, lent or
 * registered payload gets a chunk of its own that points at it. Pure:
 * send.c does the sending, and tests/unit/test_outq.c includes this file. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bufring.h"
#include "engine/fault.h"
#include "engine/outq.h"
#include "engine/send.h"

#define CHUNK_MIN 4096

size_t tao__chunk_bytes(const tao__chunk_t *k)
{
    return k->len + k->ext_len + k->post_len;
}

void tao__chunk_free(tao__chunk_t *k)
{
    if (k->zc_loop)
        tao__zc_put(k->zc_loop, k->zc_slot);
    else if (k->lent)
        tao__buf_put(k->lent, k->lent_bid);
    else if (k->free_fn)
        k->free_fn(k->ext, k->free_user);
    free(k);
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
    k = tao__chunk_new(total < CHUNK_MIN - sizeof *k ? CHUNK_MIN - sizeof *k : total);
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
        tao__chunk_free(k);
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
        tao__chunk_free(k);
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
