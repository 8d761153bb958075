/* Tao-C: messages and handlers.
 *
 * A server (or client group) keeps a registry: message type -> handler, with
 * an optional unmarshal step that turns the payload into a user struct before
 * the handler runs, and a free function for that struct. */
#ifndef TAO_MESSAGE_H
#define TAO_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tao_conn tao_conn_t;

/* One received message. payload points into Tao-C's buffers and value (the
 * unmarshalled struct, or NULL without unmarshal) is freed after the handler
 * returns: both are borrowed for the duration of the handler call only. */
typedef struct tao_msg {
    int32_t type;
    uint32_t reserved;
    const uint8_t *payload;
    size_t len;
    void *value;
} tao_msg_t;

/* Runs for each message of its type, on the connection's worker thread (or
 * on its I/O loop when the server runs handlers inline). The connection may
 * be closed from inside. */
typedef void (*tao_handler_cb)(tao_conn_t *conn, const tao_msg_t *msg);

/* Turn a payload into a user value. Returns 0 and sets *value, or -errno
 * (-EBADMSG for a payload it cannot parse); on failure *value is ignored. */
typedef int (*tao_unmarshal_fn)(const uint8_t *payload, size_t len, void **value);

/* Frees what an unmarshal function returned. */
typedef void (*tao_value_free_fn)(void *value);

#ifdef __cplusplus
}
#endif
#endif
