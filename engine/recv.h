/* Internal: a connection's receive path (recv.c): completion, decode,
 * deliver (inline, or to the connection's worker), back-pressure and
 * resume. */
#ifndef TAO_ENGINE_RECV_H
#define TAO_ENGINE_RECV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"
#include "tao/codec.h"

void tao__recv_arm(tao_conn_t *c);
void tao__recv_cancel(tao_conn_t *c);
void tao__recv_complete(tao__loop_t *loop, tao__op_t *op, const tao__cqe_t *cqe);
/* Plaintext bytes from the transport: decode and deliver. */
void tao__conn_input(tao_conn_t *c, const uint8_t *buf, size_t len);
/* Run the handler for a frame whose route exists (the loop, or the
 * connection's worker): the one place handlers are called. */
void tao__frame_handle(tao_conn_t *c, const tao_frame_t *f);
/* The peer sent bytes that wait in the socket, not yet received. */
bool tao__conn_unread(const tao_conn_t *c);
void tao__conn_pause(tao_conn_t *c);
void tao__conn_drained(tao_conn_t *c);
void tao__conn_resume_worker(tao_conn_t *c);

#endif
