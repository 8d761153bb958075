/* The public server object: configuration defaults, handler registration,
 * listeners, the id map for unicast, broadcast, stop and statistics. The
 * threads themselves belong to the server's runtime (engine/runtime.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/addr.h"
#include "engine/conn.h"
#include "engine/fault.h"
#include "engine/handover.h"
#include "engine/listener.h"
#include "engine/loop.h"
#include "engine/server.h"
#include "engine/tls.h"
#include "engine/transport.h"
#include "engine/worker.h"

static unsigned cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

static void server_error(tao__endpoint_t *ep, tao_conn_t *c, int err, const char *what)
{
    tao_server_t *srv = ep->srv;
    if (srv->cfg.on_error)
        srv->cfg.on_error(srv, c, err, what);
}

static int apply_defaults(tao_server_t *srv, const tao_server_config_t *in)
{
    tao_server_config_t *cfg = &srv->cfg;
    *cfg = *in;
    if (!cfg->listen)
        cfg->listen = "127.0.0.1:12345";
    if (!cfg->loops)
        cfg->loops = cpus();
    if (cfg->workers == 0)
        cfg->workers = cpus() < 2 ? 2 : (int)cpus();
    if (!cfg->backlog)
        cfg->backlog = 4096;
    if (!cfg->proxy_timeout_ms)
        cfg->proxy_timeout_ms = cfg->read_timeout_ms ? cfg->read_timeout_ms : 5000;
    if ((unsigned)cfg->proxy_protocol > TAO_PROXY_REQUIRED ||
        (cfg->listen_fd_count && !cfg->listen_fds))
        return -EINVAL;
    tao__settings_t set = TAO__SETTINGS_OF(cfg);
    cfg->codec = NULL;
    int rc = tao__settings_defaults(&set);
    if (rc == 0)
        rc = tao__ep_init(&srv->ep, &set);
    return rc < 0 ? rc : tao__parse_addr(cfg->listen, &srv->addr, &srv->addr_len);
}

TAO_API int tao_server_create(const tao_server_config_t *cfg, tao_server_t **out)
{
    static const tao_server_config_t zero;
    *out = NULL; /* a failed create leaves nothing to destroy */
    tao_server_t *srv = tao__calloc(1, sizeof *srv);
    if (!srv)
        return -ENOMEM;
    srv->ep.srv = srv;
    srv->ep.on_error = server_error;
    int rc = apply_defaults(srv, cfg ? cfg : &zero);
    if (rc == 0 && srv->cfg.tls)
        rc = tao__tls_endpoint(&srv->ep, srv->cfg.tls, true);
    if (rc == 0) {
        unsigned workers = srv->cfg.workers > 0 ? (unsigned)srv->cfg.workers : 0;
        rc = tao__runtime_init(&srv->rt, &srv->ep.set, srv->cfg.loops, workers);
    }
    if (rc < 0) {
        tao_server_destroy(srv);
        return rc;
    }
    srv->port =
        (int)ntohs(srv->addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&srv->addr)->sin6_port
                                                   : ((struct sockaddr_in *)&srv->addr)->sin_port);
    *out = srv;
    return 0;
}

TAO_API int tao_server_handle(tao_server_t *srv, int32_t type, tao_handler_cb handler,
                              tao_unmarshal_fn unmarshal, tao_value_free_fn free_value)
{
    if (atomic_load(&srv->rt.state) != RT_CREATED)
        return -EBUSY;
    return tao__registry_add(srv->ep.reg, type, handler, unmarshal, free_value);
}

/* Loop 0 first: the server's copies of the sockets every loop will use. */
static int inherit(tao_server_t *srv)
{
    const tao_server_config_t *cfg = &srv->cfg;
    srv->lfds = tao__calloc(cfg->listen_fd_count, sizeof *srv->lfds);
    if (!srv->lfds)
        return -ENOMEM;
    atomic_store(&srv->shared, true);
    for (unsigned i = 0; i < cfg->listen_fd_count; i++) {
        int rc = tao__listener_inherit(cfg->listen_fds[i], i);
        if (rc < 0)
            return rc;
        int fd = fcntl(cfg->listen_fds[i], F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
            return -errno;
        srv->lfds[srv->nlfds++] = fd;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(srv->lfds[0], (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    memcpy(&srv->addr, &ss, len);
    srv->addr_len = len;
    srv->port = (int)ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                    : ((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

static int listen_on(tao__loop_t *loop, void *arg)
{
    tao_server_t *srv = arg;
    loop->srv = srv;
    if (srv->cfg.listen_fd_count) {
        int rc = loop->idx == 0 ? inherit(srv) : 0;
        return rc < 0 ? rc : tao__listeners_attach(loop, srv->lfds, srv->nlfds, false);
    }
    if (loop->idx == 0) {
        srv->lfds = tao__calloc(srv->rt.nloops, sizeof *srv->lfds);
        if (!srv->lfds)
            return -ENOMEM;
    }
    if (loop->idx == 0 && srv->port != 0) {
        /* The listeners of a process killed a moment ago linger while the
         * kernel tears its rings down (tens of ms): give them that long. */
        int rc = tao__port_free(srv);
        for (int i = 0; rc == -EADDRINUSE && i < 10; i++) {
            usleep(25 * 1000);
            rc = tao__port_free(srv);
        }
        if (rc < 0)
            return rc;
    }
    int fd, rc = tao__listener_open(srv, &fd);
    if (rc < 0)
        return rc;
    srv->lfds[srv->nlfds++] = fd;
    return tao__listeners_attach(loop, &fd, 1, true);
}

TAO_API int tao_server_start(tao_server_t *srv)
{
    int rc = 0;
    if (srv->cfg.handover && !srv->offer && (rc = tao__handover_init(srv)) < 0)
        return rc;
    rc = tao__runtime_start(&srv->rt, listen_on, srv);
    if (rc == 0 && srv->offer && (rc = tao__handover_offer(srv)) < 0) {
        tao__runtime_stop(&srv->rt, 1);
        tao__runtime_wait(&srv->rt);
    }
    return rc;
}

TAO_API void tao_server_stop(tao_server_t *srv, unsigned deadline_ms)
{
    tao__runtime_stop(&srv->rt, deadline_ms);
}

TAO_API int tao_server_wait(tao_server_t *srv)
{
    tao__runtime_wait(&srv->rt);
    return 0;
}

TAO_API int tao_server_run(tao_server_t *srv)
{
    if (atomic_load(&srv->rt.state) == RT_CREATED) {
        int rc = tao_server_start(srv);
        if (rc < 0)
            return rc;
    }
    return tao_server_wait(srv);
}

TAO_API void tao_server_destroy(tao_server_t *srv)
{
    if (!srv)
        return;
    tao__handover_withdraw(srv);
    tao__runtime_deinit(&srv->rt);
    for (unsigned i = 0; i < srv->nlfds; i++)
        close(srv->lfds[i]);
    free(srv->lfds);
    tao__ep_deinit(&srv->ep);
    tao__tls_ctx_destroy(srv->ep.tls);
    free(srv);
}

TAO_API int tao_server_port(const tao_server_t *srv)
{
    return atomic_load(&srv->rt.state) == RT_CREATED ? -ENOTCONN : srv->port;
}

TAO_API const char *tao_server_backend(const tao_server_t *srv)
{
    return srv->rt.be ? srv->rt.be->name : NULL;
}

TAO_API const char *tao_server_features(const tao_server_t *srv)
{
    return srv->rt.be ? srv->rt.features : NULL;
}

TAO_API void *tao_server_data(const tao_server_t *srv)
{
    return srv->cfg.user;
}

TAO_API size_t tao_server_conn_count(const tao_server_t *srv)
{
    return atomic_load(&srv->ep.nconns);
}

/* ---- unicast and broadcast ------------------------------------------------- */

TAO_API int tao_server_unicast(tao_server_t *srv, uint64_t id, int32_t type, const void *payload,
                               size_t len)
{
    tao_conn_t *c = tao__ep_lookup(&srv->ep, id);
    if (!c)
        return -ENOENT;
    int rc = tao_conn_send(c, type, payload, len);
    tao__conn_unref(c);
    return rc;
}

TAO_API bool tao_server_has_conn(tao_server_t *srv, uint64_t id)
{
    tao_conn_t *c = tao__ep_lookup(&srv->ep, id);
    if (c)
        tao__conn_unref(c);
    return c != NULL;
}

TAO_API int tao_server_broadcast(tao_server_t *srv, int32_t type, const void *payload, size_t len)
{
    return tao__ep_broadcast(&srv->ep, &srv->rt, type, payload, len);
}

/* ---- statistics ------------------------------------------------------------ */

#define LOAD(loop, f) __atomic_load_n(&(loop)->stats.f, __ATOMIC_RELAXED)

TAO_API void tao_server_stats(const tao_server_t *srv, tao_stats_t *st)
{
    const tao__runtime_t *rt = &srv->rt;
    memset(st, 0, sizeof *st);
    for (unsigned i = 0; i < rt->nloops && rt->loops; i++) {
        const tao__loop_t *l = &rt->loops[i];
        st->conns_accepted += LOAD(l, accepted);
        st->conns_refused += LOAD(l, refused);
        st->conns_closed += LOAD(l, closed);
        st->frames_in += LOAD(l, frames_in);
        st->frames_out += LOAD(l, frames_out);
        st->bytes_in += LOAD(l, bytes_in);
        st->bytes_out += LOAD(l, bytes_out);
        st->unknown_types += LOAD(l, unknown);
        st->decode_errors += LOAD(l, decode_err);
        st->accept_backoffs += LOAD(l, backoffs);
        st->enobufs += LOAD(l, enobufs);
        st->queued_bytes += LOAD(l, queued);
        st->timeouts += LOAD(l, timeouts);
        st->timers_armed += LOAD(l, timers);
        st->zc_sends += LOAD(l, zc_sends);
        st->proxy_errors += LOAD(l, proxy_err);
    }
    for (unsigned i = 0; i < rt->nworkers && rt->workers; i++)
        st->worker_queue += atomic_load(&rt->workers[i].wq.depth);
    st->conns_open = atomic_load(&srv->ep.nconns);
    st->broadcast_skipped = atomic_load(&srv->ep.bcast_skipped);
    st->unmarshal_errors = atomic_load(&srv->ep.unmarshal_err);
    st->send_rejected = atomic_load(&srv->ep.send_rejected);
    st->backend = tao_server_backend(srv);
}
