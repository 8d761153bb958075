/* Tao-C: timers.
 *
 * Timers live on the I/O loops' timing wheels (1 ms resolution), driven by
 * io_uring timeouts: nothing wakes up when nothing is due. A timer never
 * fires early and normally within a millisecond or two of its due time.
 *
 * Every function here may be called from any thread. A timer id is > 0 and
 * unique within its server (or client group); functions that return one
 * return a negative errno on failure instead. */
#ifndef TAO_TIMER_H
#define TAO_TIMER_H

#include <stdint.h>

#include "common.h"
#include "message.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tao_server tao_server_t;

/* Runs when the timer is due. conn is the connection the timer belongs to,
 * or NULL for a server timer. A connection's timers run serialized with its
 * handlers (on its worker, or on its loop when handlers run inline) and are
 * cancelled when it closes; server timers run on an I/O loop and must not
 * block. */
typedef void (*tao_timer_cb)(tao_conn_t *conn, void *arg);

/* CLOCK_MONOTONIC in milliseconds: the clock of the run_at functions. */
TAO_API uint64_t tao_now_ms(void);

/* Run cb once, delay_ms from now / once at when_ms (tao_now_ms() clock) /
 * every interval_ms (> 0) starting interval_ms from now. Return the timer's
 * id, or -EINVAL, -ENOMEM, -ESHUTDOWN (server stopping or not started). */
TAO_API int64_t tao_server_run_after(tao_server_t *srv, uint64_t delay_ms, tao_timer_cb cb,
                                     void *arg);
TAO_API int64_t tao_server_run_at(tao_server_t *srv, uint64_t when_ms, tao_timer_cb cb, void *arg);
TAO_API int64_t tao_server_run_every(tao_server_t *srv, uint64_t interval_ms, tao_timer_cb cb,
                                     void *arg);

/* The same for a connection's timers; -ESHUTDOWN once it is closing. */
TAO_API int64_t tao_conn_run_after(tao_conn_t *conn, uint64_t delay_ms, tao_timer_cb cb, void *arg);
TAO_API int64_t tao_conn_run_at(tao_conn_t *conn, uint64_t when_ms, tao_timer_cb cb, void *arg);
TAO_API int64_t tao_conn_run_every(tao_conn_t *conn, uint64_t interval_ms, tao_timer_cb cb,
                                   void *arg);

/* Cancel a timer of this server (server or connection timer). Returns 0 when
 * it will not run again, -ENOENT when the id is unknown, already fired (for
 * one-shot timers) or already cancelled. A callback already running on
 * another thread finishes. */
TAO_API int tao_server_cancel_timer(tao_server_t *srv, int64_t id);
/* The same, for a connection's timer. */
TAO_API int tao_conn_cancel_timer(tao_conn_t *conn, int64_t id);

#ifdef __cplusplus
}
#endif
#endif
