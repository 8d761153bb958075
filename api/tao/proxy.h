/* Tao-C: the PROXY protocol.
 *
 * A load balancer such as HAProxy that passes TCP connections on (with
 * send-proxy or send-proxy-v2) writes a PROXY header before the client's
 * first byte, saying who the client is. A server reads it with the listener
 * option proxy_protocol (tao/server.h); tao_conn_peer then returns the
 * client's address and tao_conn_proxy the balancer's.
 *
 * Both versions are read: v1 (text, "PROXY TCP4 ...\r\n", at most 107
 * bytes) and v2 (binary: TCP over IPv4 and IPv6, the LOCAL command, TLVs
 * checked and skipped). The parser is pure and takes any split of the
 * bytes. */
#ifndef TAO_PROXY_H
#define TAO_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A listener's proxy_protocol option. */
typedef enum tao_proxy_mode {
    TAO_PROXY_OFF = 0,  /* the bytes are the protocol's from the first */
    TAO_PROXY_OPTIONAL, /* a header if the first bytes are one, else none */
    TAO_PROXY_REQUIRED, /* a connection without a header is closed */
} tao_proxy_mode_t;

/* The longest header accepted, v2 TLVs included. */
#define TAO_PROXY_MAX 4096

typedef struct tao_proxy_hdr {
    uint8_t version; /* 1 or 2 */
    /* No client address to use: v2's LOCAL command (a health check), v1's
     * UNKNOWN, or an address family other than TCP over IPv4 or IPv6. The
     * connection's own addresses stand. */
    bool local;
    struct sockaddr_storage src; /* the client, unless local */
    struct sockaddr_storage dst; /* the address the client connected to */
    socklen_t src_len, dst_len;  /* 0 when local */
} tao_proxy_hdr_t;

/* Read a PROXY header at the start of buf, reading no byte past len and
 * allocating nothing. Returns:
 *   > 0       the header's length (the bytes after it are the protocol's);
 *             *out is filled;
 *   0         buf is the start of a header (or empty): more bytes needed;
 *   -ENOENT   buf does not start with a PROXY signature, "PROXY " (with its
 *             space) or v2's 12 bytes (a prefix of one returns 0, so the
 *             answer comes at the first byte that differs);
 *   -EPROTO   a malformed header, or one longer than TAO_PROXY_MAX (known
 *             as soon as v2's length field or v1's 107th byte arrives).
 * *out is left untouched unless a header is returned. An answer other than
 * 0 stays the same when more bytes are appended. v1 is strict: single
 * spaces, addresses of the named family, ports 0..65535 in decimal without
 * a leading zero, CRLF. */
TAO_API ssize_t tao_proxy_parse(const void *buf, size_t len, tao_proxy_hdr_t *out);

#ifdef __cplusplus
}
#endif
#endif
