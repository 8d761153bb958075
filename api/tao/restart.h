/* Tao-C: restarts that refuse no connection.
 *
 * A listening socket outlives the process that serves it when someone else
 * holds it too. Two ways to get there:
 *
 * Socket activation (systemd, or systemd-socket-activate): the service
 * manager binds the socket and starts the server with it as descriptor 3.
 *
 *     int fds[8];
 *     int n = tao_listen_fds(fds, 8);          // 0: not activated
 *     tao_server_config_t cfg = {.listen_fds = fds, .listen_fd_count = n};
 *
 * Hand-over (HAProxy's seamless reload): a running server with
 * cfg.handover = PATH offers its sockets there. Its successor takes them,
 * starts serving, then says so; only then the old server stops accepting
 * (on_handover tells it, and it drains with tao_server_stop). Between the
 * two, both accept on the same sockets, so no connection finds nobody.
 *
 *     tao_handover_t *h;
 *     int n = tao_handover_take(PATH, fds, 8, &h);  // the old server's sockets
 *     cfg.listen_fds = fds; cfg.listen_fd_count = n; cfg.handover = PATH;
 *     tao_server_create(&cfg, &srv); tao_server_start(srv);
 *     tao_handover_done(h);                         // the old one stops accepting
 *
 * If the successor goes away before tao_handover_done (it crashed, or
 * called tao_handover_abort), the old server keeps serving and offers
 * hand-over again: a failed upgrade loses nothing. */
#ifndef TAO_RESTART_H
#define TAO_RESTART_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most sockets a hand-over passes. */
#define TAO_HANDOVER_MAX_FDS 64

/* systemd's protocol: when LISTEN_PID is this process and LISTEN_FDS is n,
 * store the n descriptors from 3 (SD_LISTEN_FDS_START) in fds, mark them
 * close-on-exec, and unset LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES (so a
 * child does not take them for its own). Returns n, 0 when the process was
 * not activated (the variables are unset if they were for another one), or
 * -EINVAL for a malformed environment, -ENOBUFS when n > max, -EBADF when a
 * descriptor is not open. The descriptors are the caller's. */
TAO_API int tao_listen_fds(int *fds, unsigned max);

/* A hand-over in progress, on the successor's side. */
typedef struct tao_handover tao_handover_t;

/* Connect to the server offering hand-over at path and take its listening
 * sockets: at most max into fds (close-on-exec; the caller's, to pass as
 * listen_fds and close when done with them). Returns their count, with *h
 * set; or -ENOENT / -ECONNREFUSED when nothing offers hand-over there,
 * -ETIMEDOUT, -EPROTO, -ENOBUFS (more than max), -ENOMEM, with *h NULL.
 * Blocks for at most 10 s. */
TAO_API int tao_handover_take(const char *path, int *fds, unsigned max, tao_handover_t **h);

/* Once the successor's server has started on the sockets: tell the old
 * server, which stops accepting on every loop and answers when it has.
 * Returns 0 when it did, -ETIMEDOUT when no answer came within 10 s, or
 * -ECONNRESET when it went away first (it stops accepting either way, or
 * is gone). Frees h. */
TAO_API int tao_handover_done(tao_handover_t *h);

/* Give up (the successor could not start): the old server keeps serving.
 * Frees h; NULL is a no-op. */
TAO_API void tao_handover_abort(tao_handover_t *h);

#ifdef __cplusplus
}
#endif
#endif
