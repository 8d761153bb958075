/* Tao-C: TLS through wolfSSL, on the io_uring path.
 *
 * Ciphertext arrives through the connection's normal io_uring receive and
 * leaves through its normal send queue: no socket is ever handed to a
 * blocking library call. on_connect runs once the handshake is complete;
 * a graceful close sends close_notify after the queued replies.
 *
 * Built only with TAO_WITH_TLS (on when wolfSSL is found). Debian's wolfSSL
 * is GPL-2.0-or-later: a program linking it is covered by the GPL. Without
 * it, tao_tls_available() is false and configs with TLS fail with
 * -ENOTSUP. */
#ifndef TAO_TLS_H
#define TAO_TLS_H

#include <stdbool.h>

#include "common.h"
#include "conn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TAO_TLS_1_2 12
#define TAO_TLS_1_3 13

/* Zero means default for every field. Files are PEM or DER (by content). */
typedef struct tao_tls_config {
    const char *cert_file;         /* certificate chain: the server's; a client's
                                      own, optional (for client authentication) */
    const char *key_file;          /* its private key */
    const char *ca_file;           /* client: trust anchors for the server (needed
                                      unless insecure); server: CAs for client
                                      certificates, with verify_client */
    bool verify_client;            /* server: require and verify a client cert */
    const char *server_name;       /* client: SNI and the name the server's
                                      certificate must match (verified by default) */
    bool insecure;                 /* client: skip verifying the server (tests only) */
    int min_version;               /* TAO_TLS_1_2 (default) or TAO_TLS_1_3 */
    int max_version;               /* TAO_TLS_1_3 (default) or TAO_TLS_1_2 */
    const char *alpn;              /* comma-separated protocols, e.g. "h2,http/1.1" */
    const char *ciphers;           /* a wolfSSL cipher list; NULL: the library's */
    bool prefer_chacha;            /* put ChaCha20-Poly1305 first: Debian's wolfSSL
                                      has no AES-NI, ChaCha is about twice as fast */
    bool no_tickets;               /* server: no session tickets (no resumption) */
    unsigned handshake_timeout_ms; /* 0 = 10,000 */
} tao_tls_config_t;

/* True when Tao-C was built with TLS. */
TAO_API bool tao_tls_available(void);

/* On a TLS connection after its handshake: the protocol ("TLSv1.3"), the
 * negotiated ALPN protocol (NULL when none), whether the session was
 * resumed. NULL / false on plain connections. Loop or handler thread. */
TAO_API const char *tao_conn_tls_version(const tao_conn_t *conn);
TAO_API const char *tao_conn_tls_alpn(const tao_conn_t *conn);
TAO_API bool tao_conn_tls_resumed(const tao_conn_t *conn);

#ifdef __cplusplus
}
#endif
#endif
