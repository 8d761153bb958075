/* Tao-C: clients.
 *
 * A client group holds what its connections share (codec, handlers,
 * callbacks, limits, reconnect policy) and runs them either on loops of its
 * own or on a running server's loops, for a program that is both. Client
 * connections are tao_conn_t like a server's: the same send, close, abort,
 * timers and heartbeat, and handlers get them the same way.
 *
 *     tao_client_config_t cfg = {.on_connect = hello};
 *     tao_client_t *cl;
 *     tao_client_create(&cfg, &cl);
 *     tao_client_handle(cl, 1, on_reply, NULL, NULL);
 *     tao_client_start(cl);
 *     int64_t id = tao_client_connect(cl, "127.0.0.1:12345", NULL);
 *     ...
 *     tao_client_destroy(cl);
 *
 * Reconnect (opt-in) follows only an unexpected close or a failed connect,
 * never the user's own close, with exponential backoff and jitter;
 * on_connect runs again on every successful connect. While disconnected,
 * sends fail with -ENOTCONN. on_close runs once per tao_client_connect,
 * when the connection is finished for good (closed by the user, given up,
 * or not reconnecting); the tao_conn_t is valid until then. */
#ifndef TAO_CLIENT_H
#define TAO_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "common.h"
#include "conn.h"
#include "message.h"
#include "server.h"
#include "tls.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tao_client tao_client_t;

/* err is a negative errno (-ECONNREFUSED, -ETIMEDOUT for a connect
 * timeout; for a connection lost while reconnect is on, -ENOTCONN when the
 * peer closed it or the socket's error such as -ECONNRESET, ...). */
typedef void (*tao_client_error_cb)(tao_client_t *cl, tao_conn_t *conn, int err, const char *what);

/* Zero means default for every field. Callbacks run on the connection's I/O
 * loop, or for handlers, on_message, connection timers and on_close on a
 * worker when workers > 0. */
typedef struct tao_client_config {
    tao_server_t *server;        /* share this started server's loops (and its
                                    workers, with workers > 0); NULL: own loops */
    unsigned loops;              /* own loops; 0 = 1 */
    int workers;                 /* 0 or TAO_WORKERS_INLINE: handlers inline on
                                    the loop, as Go Tao's client; N > 0: workers */
    const tao_codec_t *codec;    /* copied; NULL = TLV with max_frame */
    size_t max_frame;            /* TLV max payload; 0 = 8 MiB */
    size_t out_high, out_low;    /* output watermarks; 0 = 4 MiB, high / 4 */
    unsigned buf_count;          /* own loops: receive buffers, power of two; 0 = 64 */
    unsigned buf_size;           /* own loops: bytes per buffer; 0 = 64 KiB */
    unsigned max_conns;          /* sizing hint for the id map; 0 = 10,000 */
    unsigned connect_timeout_ms; /* 0 = 10,000 */
    unsigned idle_timeout_ms, read_timeout_ms, heartbeat_ms; /* as for servers */
    unsigned close_timeout_ms;                               /* as for servers; 0 = 5,000 */
    size_t max_queued_bytes;       /* as for servers: the group's output budget */
    bool reconnect;                /* reconnect after unexpected closes */
    unsigned reconnect_initial_ms; /* first backoff; 0 = 100 */
    unsigned reconnect_max_ms;     /* backoff cap; 0 = 30,000 */
    unsigned reconnect_attempts;   /* failed attempts in a row before giving up;
                                      0 = never give up */
    const tao_tls_config_t *tls;   /* TLS on every connection; NULL = plain */
    size_t zc_threshold;           /* send payloads of at least this many bytes with
                                      SEND_ZC from registered buffers, when sent
                                      on the loop (inline handlers, timers); 0 =
                                      never (on loopback the kernel copies anyway) */
    unsigned zc_buffers;           /* registered buffers per loop; 0 = 32 */
    unsigned zc_buffer_size;       /* bytes each; 0 = 64 KiB (bigger frames are
                                      sent the ordinary way) */
    bool no_pin;                   /* own loops: do not pin them to CPUs */
    tao_backend_t backend;         /* own loops: 0 = TAO_BACKEND_AUTO (tao/common.h) */
    tao_connect_cb on_connect;     /* returning < 0 closes (no reconnect) */
    tao_handler_cb on_message;
    tao_close_cb on_close;
    tao_client_error_cb on_error;
    tao_writable_cb on_writable;
    void *user;
} tao_client_config_t;

/* Returns 0 and a client group, or -EINVAL (bad config; with server set,
 * workers > 0 needs a server with workers), -ENOMEM. */
TAO_API int tao_client_create(const tao_client_config_t *cfg, tao_client_t **out);

/* As tao_server_handle: only before start. */
TAO_API int tao_client_handle(tao_client_t *cl, int32_t type, tao_handler_cb handler,
                              tao_unmarshal_fn unmarshal, tao_value_free_fn free_value);

/* Start the client's own loops (io_uring errors as for tao_server_start), or
 * check that the shared server runs (-ESHUTDOWN if not). */
TAO_API int tao_client_start(tao_client_t *cl);

/* Connect to "HOST:PORT" or "[v6]:PORT". A host name is resolved here, on
 * the calling thread, before the engine sees it (so call it from your own
 * thread when it is a name: it may block); numeric addresses never block.
 * data becomes the connection's user data before on_connect. Returns the
 * connection's id (> 0; see tao_client_send) or -EINVAL, -ESHUTDOWN,
 * -ENOMEM, or the resolver's failure as -EHOSTUNREACH. The outcome of the
 * connect itself arrives as on_connect or on_error. Any thread. */
TAO_API int64_t tao_client_connect(tao_client_t *cl, const char *addr, void *data);

/* Send to the client connection with this id: as tao_conn_send, or
 * -ENOTCONN while it is disconnected (connecting or waiting to reconnect),
 * -ENOENT once it is finished. Any thread. */
TAO_API int tao_client_send(tao_client_t *cl, int64_t id, int32_t type, const void *payload,
                            size_t len);

/* Close that connection gracefully, for good (no reconnect). Returns 0 or
 * -ENOENT. Any thread. */
TAO_API int tao_client_close(tao_client_t *cl, int64_t id);

/* True while that connection is connected. Any thread. */
TAO_API bool tao_client_connected(tao_client_t *cl, int64_t id);

/* Connections not yet finished. Any thread. */
TAO_API size_t tao_client_conn_count(const tao_client_t *cl);

/* Close every connection (for good), and with own loops, stop them; past
 * deadline_ms (0 = 5000) connections are aborted. Returns at once. */
TAO_API void tao_client_stop(tao_client_t *cl, unsigned deadline_ms);

/* Block until stopped: every connection finished and own loops joined. Not
 * from a loop or worker thread. */
TAO_API int tao_client_wait(tao_client_t *cl);

/* Stop, wait and free. Not from a loop or worker thread. */
TAO_API void tao_client_destroy(tao_client_t *cl);

/* The backend the group's loops run on (a shared server's, or its own),
 * "io_uring" or "epoll"; NULL before start. */
TAO_API const char *tao_client_backend(const tao_client_t *cl);

/* The config's user pointer. */
TAO_API void *tao_client_data(const tao_client_t *cl);

/* The client group of a client connection, or NULL for a server's. */
TAO_API tao_client_t *tao_conn_client(const tao_conn_t *conn);

#ifdef __cplusplus
}
#endif
#endif
