/* Tao-C: a connection.
 *
 * A tao_conn_t is created by Tao-C when a connection is accepted and stays
 * valid until its on_close callback returns; after that the pointer must not
 * be used (keep tao_conn_id() instead); a thread other than the one running
 * the connection's callbacks must hold no tao_conn_t pointer past that
 * (use tao_server_unicast with the id). */
#ifndef TAO_CONN_H
#define TAO_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common.h"
#include "message.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tao_server tao_server_t;

/* Frees a payload given to tao_conn_send_owned once Tao-C is done with it. */
typedef void (*tao_payload_free_fn)(void *payload, void *user);

/* Unique within its server for the server's whole life; never 0. */
TAO_API uint64_t tao_conn_id(const tao_conn_t *conn);

TAO_API tao_server_t *tao_conn_server(const tao_conn_t *conn);

/* Copy the peer's address into *addr: any thread, until on_close returns
 * (on_close included). The local address needs the socket: -ENOTCONN once
 * the connection is closing. Return 0 or -errno. */
TAO_API int tao_conn_peer(const tao_conn_t *conn, struct sockaddr_storage *addr, socklen_t *len);
TAO_API int tao_conn_local(const tao_conn_t *conn, struct sockaddr_storage *addr, socklen_t *len);

/* Behind a proxy (the server's proxy_protocol option), tao_conn_peer gives
 * the client's address from the PROXY header; this gives the proxy's own,
 * the socket's peer. -ENOENT when no header named a client. Any thread,
 * from on_connect until on_close returns. */
TAO_API int tao_conn_proxy(const tao_conn_t *conn, struct sockaddr_storage *addr, socklen_t *len);

/* Per-connection user pointer; NULL until set. */
TAO_API void *tao_conn_data(const tao_conn_t *conn);
TAO_API void tao_conn_set_data(tao_conn_t *conn, void *data);

/* Queue one message: the codec's header, then len bytes copied from payload.
 * Any thread. Returns 0; -EAGAIN when the connection's output queue is full
 * (nothing is queued: on_writable follows once it drains); -EMSGSIZE when
 * len is above the codec's maximum; -ESHUTDOWN when the connection is
 * closing; -ENOMEM. Messages from one thread reach the peer in the order
 * they were sent.
 *
 * Back-pressure: once the queue passes the server's high watermark, Tao-C
 * stops reading the connection until it falls below the low watermark.
 * Sends are refused only past twice the high watermark plus one largest
 * frame, which leaves room for the replies to frames already received, so
 * a handler answering each request once never sees -EAGAIN from its own
 * connection. -EAGAIN also comes when the output of every connection
 * together would pass the server's max_queued_bytes; on_writable then
 * follows only if this connection had output of its own to drain, so a
 * sender that must retry does so from a timer. */
TAO_API int tao_conn_send(tao_conn_t *conn, int32_t type, const void *payload, size_t len);

/* As tao_conn_send, without copying: Tao-C takes payload and calls
 * free_fn(payload, user) once it has been written (or the connection is
 * gone). On failure nothing is taken and free_fn is not called. */
TAO_API int tao_conn_send_owned(tao_conn_t *conn, int32_t type, void *payload, size_t len,
                                tao_payload_free_fn free_fn, void *user);

/* Graceful close: stop reading, write every queued message, then send FIN.
 * on_close follows once the socket is closed. Any thread, and any callback;
 * calling it again (or after abort) does nothing. */
TAO_API void tao_conn_close(tao_conn_t *conn);

/* Abort: drop queued output and reset the connection (RST). on_close
 * follows. Any thread, and any callback. */
TAO_API void tao_conn_abort(tao_conn_t *conn);

/* Bytes queued for output and not yet written to the socket. */
TAO_API size_t tao_conn_queued(const tao_conn_t *conn);

#ifdef __cplusplus
}
#endif
#endif
