/* Internal: a connection's output (send.c): counting queued bytes, putting
 * frames into the output queue, the one send in flight, and the public
 * send calls. */
#ifndef TAO_ENGINE_SEND_H
#define TAO_ENGINE_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "engine/backend.h"
#include "engine/mailbox.h"
#include "engine/outq.h"

/* One send in flight: its op, and what the backend sends. */
struct tao__sendctx {
    tao__sendctx_t *next_free;
    tao__op_t op;
    tao_conn_t *conn;
    int zc_slot; /* registered buffer of a zero-copy send, else -1 */
    struct msghdr msg;
    struct iovec iov[TAO__IOV_MAX];
};

/* Output bytes from the moment a send is accepted (any thread) until they
 * are written or dropped: the only two functions that count them. The
 * loop defers its counts (send.c says how far): tao__queued_now is the
 * connection's exact count on its loop, tao__queued_publish hands the
 * loop's deferred endpoint count over (the end of a batch, a connection
 * finishing). */
#define TAO__QUEUED_SLACK (16 << 10)
void tao__queued_add(tao_conn_t *c, size_t n);
void tao__queued_sub(tao_conn_t *c, size_t n);
size_t tao__queued_now(const tao_conn_t *c);
void tao__queued_publish(tao__loop_t *loop);

/* The loop: into c's output queue, counted (unless the chunk already is),
 * and flushed at the end of the batch. */
int tao__out_copy(tao_conn_t *c, const tao_frame_hdr_t *h, const void *payload, size_t len);
void tao__out_chunk(tao_conn_t *c, tao__chunk_t *k, bool counted);
/* One frame, sent from a registered buffer or the receive buffer it lies
 * in when that pays, else copied (the plain transport's write). */
int tao__out_frame(tao_conn_t *c, const tao_frame_hdr_t *h, const void *payload, size_t len);
/* Drop all unsent output (abort, close). */
void tao__out_clear(tao_conn_t *c);

void tao__conn_flush(tao_conn_t *c);
void tao__send_complete(tao__loop_t *loop, tao__op_t *op, const tao__cqe_t *cqe);
void tao__sendctx_free_all(tao__loop_t *loop);
void tao__zc_put(tao__loop_t *loop, unsigned slot);
/* A chunk posted from another thread reaches the loop. */
void tao__conn_queue_chunk(tao_conn_t *c, tao__chunk_t *k);
/* So does a small frame carried in its item (LI_FRAME), and the bytes it
 * counts as queued. */
void tao__conn_queue_frame(tao_conn_t *c, const tao__item_t *it);
size_t tao__item_frame_bytes(const tao__item_t *it);
int tao__conn_send_local(tao_conn_t *c, int32_t type, const void *payload, size_t len);

#endif
