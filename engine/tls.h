/* Internal: the TLS transport (engine/tls.c), or its absence.
 *
 * A connection with TLS keeps a wolfSSL object whose I/O callbacks read the
 * ciphertext the loop received and append what wolfSSL writes to the
 * connection's send queue. */
#ifndef TAO_ENGINE_TLS_H
#define TAO_ENGINE_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "tao/codec.h"
#include "tao/tls.h"

typedef struct tao__tls_ctx tao__tls_ctx_t;
struct tao_conn;
struct tao__chunk;

/* -ENOTSUP without TLS in the build; -EINVAL, -ENOENT (a file) or -EPROTO
 * (wolfSSL refused a setting), with a log line saying which. */
int tao__tls_ctx_create(const tao_tls_config_t *cfg, bool server, tao__tls_ctx_t **out);
void tao__tls_ctx_destroy(tao__tls_ctx_t *ctx);

/* Start the handshake on a new socket (a client writes its hello). */
int tao__tls_begin(struct tao_conn *c);
/* Ciphertext from the socket: handshake, then plaintext to the decoder. */
void tao__tls_input(struct tao_conn *c, const uint8_t *data, size_t len);
/* Encrypt one frame (header, payload, trailer) into the send queue. */
int tao__tls_write(struct tao_conn *c, const tao_frame_hdr_t *h, const void *payload, size_t len);
/* Encrypt a chunk queued from another thread, then free it. */
int tao__tls_write_chunk(struct tao_conn *c, struct tao__chunk *k);
/* True once the handshake is complete. */
bool tao__tls_ready(const struct tao_conn *c);
/* Queue close_notify (graceful close). */
void tao__tls_shutdown(struct tao_conn *c);
/* The socket is gone: free the wolfSSL object (a client keeps the session
 * for resumption). */
void tao__tls_end(struct tao_conn *c);
/* Free this thread's wolfSSL caches (loop threads call it on exit). */
void tao__tls_thread_exit(void);

#endif
