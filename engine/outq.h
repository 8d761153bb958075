/* Internal: a connection's output queue (outq.c): chunks of bytes to send,
 * in order, and the arithmetic of gathering and advancing them. Pure: no
 * sockets, no threads; send.c drives it. */
#ifndef TAO_ENGINE_OUTQ_H
#define TAO_ENGINE_OUTQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "tao/codec.h"
#include "tao/conn.h"

typedef struct tao__loop tao__loop_t;

/* A chunk: data[] (copied frames packed back to back), then an external
 * payload (ext) and its trailer (post), in that order on the wire. The
 * external payload is owned (free_fn), lent from a receive buffer (lent),
 * or a registered send buffer (zc_loop). */
typedef struct tao__chunk tao__chunk_t;
struct tao__chunk {
    tao__chunk_t *next;
    uint32_t len; /* bytes used in data[] */
    uint32_t cap; /* bytes available in data[] */
    uint8_t *ext;
    size_t ext_len;
    tao_payload_free_fn free_fn;
    void *free_user;
    tao__loop_t *zc_loop; /* ext is this loop's registered buffer zc_slot */
    tao__loop_t *lent;    /* ext lies in this loop's receive buffer lent_bid */
    uint16_t lent_bid;
    uint32_t zc_slot;
    uint8_t post[TAO_FRAME_POST_MAX];
    uint8_t post_len;
    uint8_t data[];
};

/* A loop's spare packing chunks, for its connections' queues to reuse
 * (the rule is at the top of outq.c). */
typedef struct tao__chunk_cache {
    tao__chunk_t *free;
    unsigned n;
} tao__chunk_cache_t;

typedef struct tao__outq {
    tao__chunk_t *head, *tail;
    size_t bytes;              /* unsent bytes */
    size_t head_off;           /* bytes of head already sent */
    tao__chunk_cache_t *cache; /* the owning loop's, or NULL: malloc and free */
} tao__outq_t;

#define TAO__IOV_MAX 64

size_t tao__chunk_bytes(const tao__chunk_t *k);
tao__chunk_t *tao__chunk_new(size_t cap);
/* One copied frame in a chunk of its own (a send from another thread). */
tao__chunk_t *tao__chunk_copy(const tao_frame_hdr_t *h, const void *payload, size_t len);
tao__chunk_t *tao__chunk_owned(const tao_frame_hdr_t *h, void *payload, size_t len,
                               tao_payload_free_fn free_fn, void *user);
/* Frees the chunk and lets go of its payload (free_fn, the lent receive
 * buffer, or the registered buffer). */
void tao__chunk_free(tao__chunk_t *k);

void tao__outq_append(tao__outq_t *q, tao__chunk_t *k);
/* Copy a frame in, packed behind the last one when it fits. 0, -EMSGSIZE
 * or -ENOMEM. */
int tao__outq_push_copy(tao__outq_t *q, const tao_frame_hdr_t *h, const void *payload, size_t len);
/* iovecs for the unsent bytes from the head, at most TAO__IOV_MAX, stopping
 * before a chunk in a registered buffer (that one goes alone). */
int tao__outq_gather(const tao__outq_t *q, struct iovec *iov);
/* n bytes were sent: drop them from the front. */
void tao__outq_advance(tao__outq_t *q, size_t n);
void tao__outq_clear(tao__outq_t *q);
/* Free every spare chunk (the loop's end). */
void tao__chunk_cache_drain(tao__chunk_cache_t *cache);

#endif
