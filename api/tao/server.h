/* Tao-C: a server.
 *
 * A server runs N I/O loops, each a thread with its own io_uring, listening
 * socket (SO_REUSEPORT), buffer ring and timing wheel. Register handlers,
 * start it, and it accepts, receives, decodes, dispatches, encodes and sends.
 *
 *     tao_server_config_t cfg = {.listen = "127.0.0.1:12345"};
 *     tao_server_t *srv;
 *     tao_server_create(&cfg, &srv);
 *     tao_server_handle(srv, 1, on_echo, NULL, NULL);
 *     tao_server_run(srv);          // until tao_server_stop()
 *     tao_server_destroy(srv);
 */
#ifndef TAO_SERVER_H
#define TAO_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "common.h"
#include "conn.h"
#include "message.h"
#include "proxy.h"
#include "tls.h"

#ifdef __cplusplus
extern "C" {
#endif

/* workers: run handlers on the I/O loop itself (no thread hop; handlers
 * must not block). */
#define TAO_WORKERS_INLINE (-1)
/* The most worker threads a server may have. */
#define TAO_WORKERS_MAX 1024

/* Called once a connection is accepted, before any of its messages are
 * handled. Return 0 to keep it, or a negative value to refuse it (it is
 * closed at once; on_close still follows). */
typedef int (*tao_connect_cb)(tao_conn_t *conn);
/* Called exactly once per accepted connection, when it is closed; the last
 * callback for conn. */
typedef void (*tao_close_cb)(tao_conn_t *conn);
/* Something went wrong: err is a negative errno (-EMSGSIZE: oversized frame,
 * -EBADMSG: malformed, -ETIMEDOUT, -EMFILE: accept backing off, ...) and what
 * says where. conn is NULL for server-level errors. */
typedef void (*tao_error_cb)(tao_server_t *srv, tao_conn_t *conn, int err, const char *what);
/* The output queue fell below the low watermark after a send returned
 * -EAGAIN: sending works again. */
typedef void (*tao_writable_cb)(tao_conn_t *conn);
/* The server handed its listening sockets to a successor (see handover
 * below and tao/restart.h): it accepts no more, and the successor serves
 * every new connection. Runs once, on the server's hand-over thread; the
 * usual answer is tao_server_stop(srv, ...), which drains as always. */
typedef void (*tao_handover_cb)(tao_server_t *srv);

/* Zero means default for every field.
 *
 * Where callbacks run: with workers (the default), handlers, on_message,
 * connection timers and on_close run on the connection's worker thread, in
 * order, one at a time; with TAO_WORKERS_INLINE they run on its I/O loop.
 * on_connect, on_error and on_writable run on the I/O loop and must not
 * block (on_error for an unmarshal failure runs where the handler would). */
typedef struct tao_server_config {
    const char *listen;          /* "HOST:PORT", "[v6]:PORT"; NULL = "127.0.0.1:12345";
                                    port 0 picks a free port (see tao_server_port) */
    unsigned loops;              /* I/O loops; 0 = online CPUs */
    int workers;                 /* worker threads for handlers; 0 = one per CPU
                                    (at least 2); TAO_WORKERS_INLINE: none, run
                                    handlers on the I/O loop */
    const tao_codec_t *codec;    /* copied; NULL = TLV with max_frame */
    size_t max_frame;            /* TLV max payload; 0 = 8 MiB */
    unsigned max_conns;          /* across all loops; 0 = 10,000 */
    size_t out_high;             /* output queue high watermark; 0 = 4 MiB */
    size_t out_low;              /* low watermark; 0 = out_high / 4 */
    unsigned buf_count;          /* receive buffers per loop, power of two; 0 = 64 */
    unsigned buf_size;           /* bytes per receive buffer; 0 = 64 KiB */
    unsigned backlog;            /* listen backlog; 0 = 4096 */
    unsigned idle_timeout_ms;    /* close a connection that made no progress this
                                    long, with on_error(-ETIMEDOUT): no byte
                                    received, and no byte of its waiting output
                                    taken by the peer; 0 = never */
    unsigned read_timeout_ms;    /* close a connection whose started frame does
                                    not finish within this (slowloris); whole
                                    frames waiting behind back-pressure do not
                                    count; 0 = never. A timeout that finds
                                    requests unanswered or output unsent aborts
                                    (RST), so the peer can tell; else it closes
                                    gracefully (FIN) */
    unsigned heartbeat_ms;       /* send Go Tao's heartbeat (type 0, LE int64 ns
                                    timestamp) after this long without sending;
                                    0 = never */
    size_t max_queued_bytes;     /* output queued for every connection together
                                    (and broadcasts on their way): past it, sends
                                    and broadcasts fail with -EAGAIN. A send
                                    counts its own loop's output exactly and
                                    another loop's to within 16 KiB, until that
                                    loop's batch ends; 0 = a quarter of RAM, at
                                    most 1 GiB */
    unsigned close_timeout_ms;   /* a graceful close whose queued output the peer
                                    has not taken within this is aborted (RST),
                                    with on_error(-ETIMEDOUT); 0 = 5,000 */
    const tao_tls_config_t *tls; /* TLS on every connection; NULL = plain */
    size_t zc_threshold;         /* send payloads of at least this many bytes with
                                    SEND_ZC from registered buffers, when sent
                                    on the loop (inline handlers, timers); 0 =
                                    never (on loopback the kernel copies anyway) */
    unsigned zc_buffers;         /* registered buffers per loop; 0 = 32 */
    unsigned zc_buffer_size;     /* bytes each; 0 = 64 KiB (bigger frames are
                                    sent the ordinary way) */
    bool no_pin;                 /* do not pin loops to CPUs (they are pinned
                                    when there is one loop per CPU) */
    tao_backend_t backend;       /* 0 = TAO_BACKEND_AUTO; see tao/common.h */

    /* Read a PROXY header (v1 or v2, tao/proxy.h) before each connection's
     * first byte: TAO_PROXY_OFF (the default), _OPTIONAL or _REQUIRED.
     * on_connect runs once it is read, and TLS starts after it. A
     * malformed, truncated or missing (required) header closes the
     * connection with on_error(-EPROTO), a late one with -ETIMEDOUT. */
    tao_proxy_mode_t proxy_protocol;
    /* The header must arrive within this; 0 = read_timeout_ms, or 5,000
     * without one. */
    unsigned proxy_timeout_ms;

    /* Sockets already bound and listening (TCP), taken instead of binding
     * listen: every loop accepts on every one (systemd's, see
     * tao_listen_fds, or a predecessor's, see tao_handover_take). The
     * descriptors stay the caller's: the server uses copies, and never
     * shuts the sockets down, so whoever else holds them keeps them
     * working. Checked at start: -ENOTSOCK, -EBADF, or -EINVAL (not a
     * listening TCP socket), logged. 0 = bind listen. */
    const int *listen_fds;
    unsigned listen_fd_count;
    /* A unix socket path: once started, offer the listening sockets to a
     * successor there (tao/restart.h), and call on_handover once one took
     * them over. NULL = none. */
    const char *handover;
    tao_handover_cb on_handover;

    tao_connect_cb on_connect;
    tao_handler_cb on_message; /* frames of types registered with a NULL handler */
    tao_close_cb on_close;
    tao_error_cb on_error;
    tao_writable_cb on_writable;
    void *user;
} tao_server_config_t;

/* Counters summed over every loop when read. */
typedef struct tao_stats {
    uint64_t conns_open;     /* connections alive now */
    uint64_t conns_accepted; /* accepted and kept */
    uint64_t conns_refused;  /* over max_conns, or refused by on_connect */
    uint64_t conns_closed;
    uint64_t frames_in, frames_out;
    uint64_t bytes_in, bytes_out;
    uint64_t unknown_types; /* frames with no route, skipped */
    uint64_t decode_errors; /* oversized or malformed frames */
    uint64_t unmarshal_errors;
    uint64_t send_rejected;     /* sends refused with -EAGAIN */
    uint64_t accept_backoffs;   /* EMFILE/ENFILE pauses */
    uint64_t enobufs;           /* receive re-arms after the buffer ring ran dry */
    uint64_t queued_bytes;      /* output bytes queued now */
    uint64_t timeouts;          /* idle and read timeouts */
    uint64_t worker_queue;      /* items waiting for workers now */
    uint64_t broadcast_skipped; /* connections a broadcast could not reach */
    uint64_t timers_armed;      /* user timers pending now */
    uint64_t zc_sends;          /* sends made with SEND_ZC */
    uint64_t proxy_errors;      /* PROXY headers malformed, truncated, missing or late */
    const char *backend;        /* "io_uring" or "epoll"; NULL before start */
} tao_stats_t;

/* Returns 0 and a server, or -EINVAL for a bad config (an unparsable listen
 * address, a bad codec), -ENOMEM; *out is NULL then (destroying NULL is a
 * no-op). Nothing runs until start. */
TAO_API int tao_server_create(const tao_server_config_t *cfg, tao_server_t **out);

/* Route messages of type to handler (see tao/message.h). Only before start.
 * Returns 0, -EEXIST, -EBUSY (already started), -ENOMEM. */
TAO_API int tao_server_handle(tao_server_t *srv, int32_t type, tao_handler_cb handler,
                              tao_unmarshal_fn unmarshal, tao_value_free_fn free_value);

/* Bind, listen (or take listen_fds) and start the loops; returns at once.
 * With handover set, it then offers hand-over at that path. Returns 0, or
 * -errno: -EADDRINUSE, -EINVAL / -ENOTSOCK / -EBADF for a bad listen_fds
 * entry, -EPERM / -ENOSYS when io_uring is blocked or missing (a log line
 * says which and how to allow it), -EBUSY when already started. */
TAO_API int tao_server_start(tao_server_t *srv);

/* Start if needed, then block until the server has stopped and every loop
 * thread has been joined. Returns 0 or the error of start. */
TAO_API int tao_server_run(tao_server_t *srv);

/* Ask the server to stop: stop accepting, answer what the peers already
 * sent, close every connection gracefully, run every on_close, and end the
 * loops. Returns at once; tao_server_run (or tao_server_wait) returns when
 * all is done. Safe from any thread, from a callback, and from a signal
 * handler.
 *
 * The rule: every complete frame that reached the server before the
 * deadline (deadline_ms, 0 = 5000) is handled and its replies written. A
 * connection keeps reading (back-pressure included) until it is quiet:
 * nothing unread in its socket, no frame waiting behind back-pressure or
 * started; then it closes with a FIN. A connection still busy at the
 * deadline, or one whose peer sends more after its close began, is aborted
 * (RST), so its peer can tell that replies are missing. A connection an
 * accept returns after the stop began is served the same way. Connections
 * the kernel completed but the server had not yet accepted when the stop
 * closed its listeners are reset by the kernel, except on inherited or
 * handed-over sockets: those are never shut down, so the connections wait
 * in their queue for the other process that listens on them. */
TAO_API void tao_server_stop(tao_server_t *srv, unsigned deadline_ms);

/* Block until a started server has stopped (after tao_server_stop). Not from
 * a loop thread. Returns 0. */
TAO_API int tao_server_wait(tao_server_t *srv);

/* Stop (if running), wait, and free everything. Not from a loop thread. */
TAO_API void tao_server_destroy(tao_server_t *srv);

/* The bound port (useful with port 0; with listen_fds, the first one's),
 * or -ENOTCONN before start. */
TAO_API int tao_server_port(const tao_server_t *srv);

/* The backend the server's loops run on, "io_uring" or "epoll"; NULL
 * before start (see tao_backend_t). */
TAO_API const char *tao_server_backend(const tao_server_t *srv);

/* The io_uring features the backend uses, as a comma-separated list
 * ("defer-taskrun, registered-ring, incremental-buffers", and "send-zc"
 * with zc_threshold, on Linux 6.12 or later), "" for epoll; NULL before
 * start. */
TAO_API const char *tao_server_features(const tao_server_t *srv);

/* The config's user pointer. */
TAO_API void *tao_server_data(const tao_server_t *srv);

/* Connections alive now, in O(1). Any thread. */
TAO_API size_t tao_server_conn_count(const tao_server_t *srv);

/* Fill *st with the sum of every loop's counters. Any thread. */
TAO_API void tao_server_stats(const tao_server_t *srv, tao_stats_t *st);

/* Send a message to every connection of the server. Each connection gets
 * its own copy in order with its other messages; a connection that is full
 * (-EAGAIN) or closing is skipped and counted (stats.broadcast_skipped),
 * and the others still get it. Returns 0 once queued, -EAGAIN when a copy
 * for every connection would pass max_queued_bytes (nothing is queued;
 * counted in stats.send_rejected), -EMSGSIZE, -ENOMEM, -ESHUTDOWN when the
 * server is not running. Any thread. */
TAO_API int tao_server_broadcast(tao_server_t *srv, int32_t type, const void *payload, size_t len);

/* Send to the connection with this id. Returns as tao_conn_send, or -ENOENT
 * when no such connection is open. Any thread. */
TAO_API int tao_server_unicast(tao_server_t *srv, uint64_t id, int32_t type, const void *payload,
                               size_t len);

/* True when a connection with this id is open. Any thread. */
TAO_API bool tao_server_has_conn(tao_server_t *srv, uint64_t id);

/* Write *st as Prometheus text (HELP, TYPE and value per counter) into buf.
 * Returns the length, or -ENOSPC when cap is too small (8 KiB is plenty). */
TAO_API int tao_stats_format(const tao_stats_t *st, char *buf, size_t cap);

/* Serve srv's statistics over HTTP (any path, Prometheus text) on listen
 * (NULL = "127.0.0.1:9100"; give an address: nothing listens on every
 * interface unless asked). The endpoint is a small server of its own:
 * stop it with tao_server_destroy(*metrics) before destroying srv. */
TAO_API int tao_metrics_start(tao_server_t *srv, const char *listen, tao_server_t **metrics);

#ifdef __cplusplus
}
#endif
#endif
