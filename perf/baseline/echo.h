/* What perf/'s hand-written echo servers (epoll and liburing) share: a
 * growable byte buffer and the echo of TLV frames out of received bytes. */
#ifndef TAO_PERF_ECHO_H
#define TAO_PERF_ECHO_H

#include <stddef.h>
#include <stdint.h>

#define PB_HDR 8
#define PB_MAX_PAYLOAD (8u << 20) /* as Tao-C's default */
#define PB_KEEP (64u << 10)       /* a drained buffer larger than this is freed */

typedef struct pb_buf {
    uint8_t *p;
    size_t off, len, cap; /* bytes [off, len) are pending */
} pb_buf_t;

/* Append n bytes. 0, or -1 when out of memory. */
int pb_buf_append(pb_buf_t *b, const uint8_t *p, size_t n);
/* Reset b once all of it is used, freeing it when larger than PB_KEEP. */
void pb_buf_consumed(pb_buf_t *b);
void pb_buf_free(pb_buf_t *b);

/* New bytes p[0..n) of a connection: every complete frame is copied into
 * out (the reply: the same header and payload), a partial frame's start is
 * kept in in. Straight from p when no partial frame waits. 0, or -1 for a
 * frame over PB_MAX_PAYLOAD or no memory. */
int pb_echo(pb_buf_t *in, pb_buf_t *out, const uint8_t *p, size_t n);

#endif
