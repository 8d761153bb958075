/* Internal: the per-server message registry (type -> route).
 *
 * Dense small types (0 .. TAO__REG_DENSE-1) live in a direct table, so the
 * common lookup is one index; any other int32 goes to an open-addressing hash
 * table. Pure: no I/O, no threads. Not thread-safe for writes: routes are
 * added before a server starts and only read afterwards. */
#ifndef TAO_CODEC_REGISTRY_H
#define TAO_CODEC_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "tao/codec.h"
#include "tao/message.h"

#define TAO__REG_DENSE 256

typedef struct tao__route {
    tao_handler_cb handler;       /* NULL: the fallback (on_message) gets it */
    tao_unmarshal_fn unmarshal;   /* NULL: handler sees the raw payload */
    tao_value_free_fn free_value; /* frees what unmarshal made; may be NULL */
    int32_t type;
    bool used;
} tao__route_t;

typedef struct tao__registry tao__registry_t;

/* Returns 0 and a new empty registry, or -ENOMEM. */
int tao__registry_create(tao__registry_t **out);
void tao__registry_destroy(tao__registry_t *reg);

/* Returns 0, -EEXIST when type already has a route, -EINVAL when free_value
 * is given without unmarshal, -ENOMEM. */
int tao__registry_add(tao__registry_t *reg, int32_t type, tao_handler_cb handler,
                      tao_unmarshal_fn unmarshal, tao_value_free_fn free_value);

/* The route for type, or NULL. O(1). */
const tao__route_t *tao__registry_find(const tao__registry_t *reg, int32_t type);

/* Number of routes. */
size_t tao__registry_count(const tao__registry_t *reg);

/* Deliver one frame: unmarshal if the route asks for it, call the handler
 * (or fallback when the route has none), then free the value: free_value runs
 * exactly once for every non-NULL value unmarshal made, after the handler
 * returns. Returns 0 when a handler ran, -ENOENT for a type with no route (or
 * a route with no handler and no fallback; nothing is unmarshalled then), or
 * the unmarshal error as a negative errno (no handler runs then). */
int tao__registry_dispatch(const tao__registry_t *reg, tao_conn_t *conn, const tao_frame_t *frame,
                           tao_handler_cb fallback);

#endif
