/* Internal: an endpoint is what a connection was made by, a server or a
 * client group (endpoint.c). It holds the codec, the registry, the
 * callbacks, the limits, the id map behind unicast, and broadcast. */
#ifndef TAO_ENGINE_ENDPOINT_H
#define TAO_ENGINE_ENDPOINT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "codec/registry.h"
#include "engine/idmap.h"
#include "tao/client.h"
#include "tao/server.h"

typedef struct tao__loop tao__loop_t;
typedef struct tao__runtime tao__runtime_t;
typedef struct tao__tls_ctx tao__tls_ctx_t;
typedef struct tao__transport tao__transport_t;

/* The settings server and client configs share by name, defaults applied
 * by tao__settings_defaults. */
typedef struct tao__settings {
    unsigned loops, max_conns, buf_count, buf_size;
    int workers;
    size_t max_frame, out_high, out_low, max_queued_bytes, zc_threshold;
    unsigned idle_timeout_ms, read_timeout_ms, heartbeat_ms, close_timeout_ms;
    unsigned zc_buffers, zc_buffer_size;
    bool no_pin;
    tao_backend_t backend;
    const tao_codec_t *codec;
    tao_connect_cb on_connect;
    tao_handler_cb on_message;
    tao_close_cb on_close;
    tao_writable_cb on_writable;
} tao__settings_t;

/* The shared fields of a server or client config (they have the same
 * names in both). */
#define TAO__SETTINGS_OF(cfg)                                                                      \
    ((tao__settings_t){.loops = (cfg)->loops,                                                      \
                       .max_conns = (cfg)->max_conns,                                              \
                       .buf_count = (cfg)->buf_count,                                              \
                       .buf_size = (cfg)->buf_size,                                                \
                       .workers = (cfg)->workers,                                                  \
                       .max_frame = (cfg)->max_frame,                                              \
                       .out_high = (cfg)->out_high,                                                \
                       .out_low = (cfg)->out_low,                                                  \
                       .max_queued_bytes = (cfg)->max_queued_bytes,                                \
                       .zc_threshold = (cfg)->zc_threshold,                                        \
                       .idle_timeout_ms = (cfg)->idle_timeout_ms,                                  \
                       .read_timeout_ms = (cfg)->read_timeout_ms,                                  \
                       .heartbeat_ms = (cfg)->heartbeat_ms,                                        \
                       .close_timeout_ms = (cfg)->close_timeout_ms,                                \
                       .zc_buffers = (cfg)->zc_buffers,                                            \
                       .zc_buffer_size = (cfg)->zc_buffer_size,                                    \
                       .no_pin = (cfg)->no_pin,                                                    \
                       .backend = (cfg)->backend,                                                  \
                       .codec = (cfg)->codec,                                                      \
                       .on_connect = (cfg)->on_connect,                                            \
                       .on_message = (cfg)->on_message,                                            \
                       .on_close = (cfg)->on_close,                                                \
                       .on_writable = (cfg)->on_writable})

/* A shared broadcast payload: one copy, referenced by every loop. */
typedef struct tao__bcast {
    atomic_uint refs;
    struct tao__endpoint *ep; /* whose connections get it */
    int32_t type;
    size_t len;
    uint8_t data[];
} tao__bcast_t;

typedef struct tao__endpoint {
    tao_server_t *srv;   /* NULL for client groups */
    void *client;        /* the client group, NULL for servers */
    tao__settings_t set; /* defaults applied; its codec is in codec */
    tao_codec_t codec;
    tao__registry_t *reg;
    bool workers; /* set.workers > 0: handlers run on the runtime's workers */
    void (*on_error)(struct tao__endpoint *ep, tao_conn_t *c, int err, const char *what);
    const tao__transport_t *xport; /* every connection's transport */
    tao__tls_ctx_t *tls;           /* the TLS transport's settings, when TLS */
    _Atomic size_t queued;         /* any thread: output bytes queued, all connections,
                                      and broadcast payloads not yet delivered */
    atomic_uint_fast64_t bcast_skipped;
    atomic_uint_fast64_t unmarshal_err;
    atomic_uint_fast64_t send_rejected;
    atomic_uint nconns;           /* open connections (any thread) */
    atomic_uint_fast64_t next_id; /* connection ids (any thread) */
    pthread_mutex_t map_lock;     /* guards map */
    tao__idmap_t map;             /* id -> connection, for unicast */
} tao__endpoint_t;

/* Defaults for zero fields; 0, or -EINVAL for values out of range. */
int tao__settings_defaults(tao__settings_t *s);
size_t tao__default_max_queued(void);

/* Create: settings with defaults applied, the codec (or TLV). */
int tao__ep_init(tao__endpoint_t *ep, const tao__settings_t *s);
void tao__ep_deinit(tao__endpoint_t *ep);
void tao__ep_add(tao__endpoint_t *ep, tao_conn_t *c);
void tao__ep_remove(tao__endpoint_t *ep, tao_conn_t *c);
void tao__ep_done(tao__endpoint_t *ep);
void tao__ep_each(tao__endpoint_t *ep, void (*fn)(tao_conn_t *c));
tao_conn_t *tao__ep_lookup(tao__endpoint_t *ep, uint64_t id);
int tao__ep_broadcast(tao__endpoint_t *ep, tao__runtime_t *rt, int32_t type, const void *payload,
                      size_t len);
void tao__broadcast_local(tao__loop_t *loop, tao__bcast_t *b);
void tao__bcast_unref(tao__bcast_t *b);

#endif
