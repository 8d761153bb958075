/* The public server object: configuration defaults, handler registration,
 * listeners, the id map for unicast, broadcast, stop and statistics. The
 * threads themselves belong to the server's runtime (engine/runtime.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"

static unsigned cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
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
    if (cfg->workers < TAO_WORKERS_INLINE || cfg->workers > TAO_WORKERS_MAX || cfg->loops > 1024)
        return -EINVAL;
    if (!cfg->max_conns)
        cfg->max_conns = 10000;
    if (!cfg->out_high)
        cfg->out_high = 4u << 20;
    if (!cfg->out_low || cfg->out_low > cfg->out_high)
        cfg->out_low = cfg->out_high / 4;
    if (!cfg->buf_count)
        cfg->buf_count = 512;
    if (!cfg->buf_size)
        cfg->buf_size = 16384;
    if (cfg->buf_count & (cfg->buf_count - 1) || cfg->buf_count > 32768)
        return -EINVAL;
    if (!cfg->backlog)
        cfg->backlog = 4096;
    if (cfg->codec)
        srv->ep.codec = *cfg->codec;
    else
        tao_codec_tlv(&srv->ep.codec, cfg->max_frame);
    cfg->codec = NULL;
    if (!srv->ep.codec.decode || !srv->ep.codec.encode)
        return -EINVAL;
    return tao__parse_addr(cfg->listen, &srv->addr, &srv->addr_len);
}

static void server_error(tao__endpoint_t *ep, tao_conn_t *c, int err, const char *what)
{
    tao_server_t *srv = ep->srv;
    if (srv->cfg.on_error)
        srv->cfg.on_error(srv, c, err, what);
}

static void endpoint_init(tao_server_t *srv)
{
    tao__endpoint_t *ep = &srv->ep;
    const tao_server_config_t *cfg = &srv->cfg;
    ep->srv = srv;
    ep->out_high = cfg->out_high;
    ep->out_low = cfg->out_low;
    ep->idle_ms = cfg->idle_timeout_ms;
    ep->read_ms = cfg->read_timeout_ms;
    ep->heartbeat_ms = cfg->heartbeat_ms;
    ep->workers = cfg->workers > 0;
    ep->on_connect = cfg->on_connect;
    ep->on_message = cfg->on_message;
    ep->on_close = cfg->on_close;
    ep->on_writable = cfg->on_writable;
    ep->on_error = server_error;
}

static int map_init(tao_server_t *srv)
{
    size_t cap = 64;
    while (cap < 2 * (size_t)srv->cfg.max_conns)
        cap *= 2;
    srv->map = calloc(cap, sizeof *srv->map);
    srv->map_mask = cap - 1;
    pthread_mutex_init(&srv->map_lock, NULL);
    return srv->map ? 0 : -ENOMEM;
}

TAO_API int tao_server_create(const tao_server_config_t *cfg, tao_server_t **out)
{
    static const tao_server_config_t zero;
    tao_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return -ENOMEM;
    int rc = apply_defaults(srv, cfg ? cfg : &zero);
    if (rc == 0)
        rc = tao__registry_create(&srv->ep.reg);
    if (rc == 0)
        rc = map_init(srv);
    if (rc == 0) {
        unsigned workers = srv->cfg.workers > 0 ? (unsigned)srv->cfg.workers : 0;
        rc = tao__runtime_init(&srv->rt, srv->cfg.loops, workers, srv->cfg.buf_count,
                               srv->cfg.buf_size, srv->cfg.no_pin);
    }
    if (rc < 0) {
        tao_server_destroy(srv);
        return rc;
    }
    endpoint_init(srv);
    srv->port =
        (int)ntohs(srv->addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&srv->addr)->sin6_port
                                                   : ((struct sockaddr_in *)&srv->addr)->sin_port);
    atomic_init(&srv->next_id, 1);
    *out = srv;
    return 0;
}

TAO_API int tao_server_handle(tao_server_t *srv, int32_t type, tao_handler_cb handler,
                              tao_unmarshal_fn unmarshal, tao_value_free_fn free_value)
{
    if (atomic_load(&srv->rt.state) != 0)
        return -EBUSY;
    return tao__registry_add(srv->ep.reg, type, handler, unmarshal, free_value);
}

static int listen_on(tao__loop_t *loop, void *arg)
{
    tao_server_t *srv = arg;
    loop->srv = srv;
    return tao__listener_open(srv, &loop->listen_fd);
}

TAO_API int tao_server_start(tao_server_t *srv)
{
    return tao__runtime_start(&srv->rt, listen_on, srv);
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
    if (atomic_load(&srv->rt.state) == 0) {
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
    tao__runtime_deinit(&srv->rt);
    tao__registry_destroy(srv->ep.reg);
    if (srv->map)
        pthread_mutex_destroy(&srv->map_lock);
    free(srv->map);
    free(srv);
}

TAO_API int tao_server_port(const tao_server_t *srv)
{
    return atomic_load(&srv->rt.state) == 0 ? -ENOTCONN : srv->port;
}

TAO_API void *tao_server_data(const tao_server_t *srv)
{
    return srv->cfg.user;
}

TAO_API size_t tao_server_conn_count(const tao_server_t *srv)
{
    return atomic_load(&srv->nconns);
}

/* ---- the id map ------------------------------------------------------------ */

void tao__server_conn_added(tao_server_t *srv, tao_conn_t *c)
{
    pthread_mutex_lock(&srv->map_lock);
    tao_conn_t **slot = &srv->map[c->id & srv->map_mask];
    c->map_next = *slot;
    *slot = c;
    pthread_mutex_unlock(&srv->map_lock);
}

void tao__server_conn_removed(tao_server_t *srv, tao_conn_t *c)
{
    pthread_mutex_lock(&srv->map_lock);
    for (tao_conn_t **p = &srv->map[c->id & srv->map_mask]; *p; p = &(*p)->map_next) {
        if (*p == c) {
            *p = c->map_next;
            break;
        }
    }
    pthread_mutex_unlock(&srv->map_lock);
    atomic_fetch_sub(&srv->nconns, 1);
}

/* The connection with this id, with a reference, or NULL. */
static tao_conn_t *lookup(tao_server_t *srv, uint64_t id)
{
    tao_conn_t *c;
    pthread_mutex_lock(&srv->map_lock);
    for (c = srv->map[id & srv->map_mask]; c && c->id != id; c = c->map_next)
        ;
    if (c)
        tao__conn_ref(c);
    pthread_mutex_unlock(&srv->map_lock);
    return c;
}

TAO_API int tao_server_unicast(tao_server_t *srv, uint64_t id, int32_t type, const void *payload,
                               size_t len)
{
    tao_conn_t *c = lookup(srv, id);
    if (!c)
        return -ENOENT;
    int rc = tao_conn_send(c, type, payload, len);
    tao__conn_unref(c);
    return rc;
}

TAO_API bool tao_server_has_conn(tao_server_t *srv, uint64_t id)
{
    tao_conn_t *c = lookup(srv, id);
    if (c)
        tao__conn_unref(c);
    return c != NULL;
}

/* ---- broadcast ----------------------------------------------------------- */

void tao__bcast_unref(tao__bcast_t *b)
{
    if (atomic_fetch_sub(&b->refs, 1) == 1)
        free(b);
}

void tao__broadcast_local(tao__loop_t *loop, tao__bcast_t *b)
{
    for (tao_conn_t *c = loop->conns.next; c != &loop->conns; c = c->next) {
        if (c->ep != b->ep)
            continue;
        if (tao__conn_send_local(c, b->type, b->data, b->len) < 0)
            atomic_fetch_add(&c->ep->bcast_skipped, 1);
    }
    tao__bcast_unref(b);
}

TAO_API int tao_server_broadcast(tao_server_t *srv, int32_t type, const void *payload, size_t len)
{
    tao__runtime_t *rt = &srv->rt;
    tao_frame_hdr_t h;
    if (atomic_load(&rt->state) != 1 || atomic_load(&rt->stop_requested))
        return -ESHUTDOWN;
    int rc = srv->ep.codec.encode(&srv->ep.codec, type, len, &h);
    if (rc < 0)
        return rc;
    tao__bcast_t *b = malloc(sizeof *b + len);
    if (!b)
        return -ENOMEM;
    atomic_init(&b->refs, rt->nloops);
    b->ep = &srv->ep;
    b->type = type;
    b->len = len;
    if (len)
        memcpy(b->data, payload, len);
    for (unsigned i = 0; i < rt->nloops; i++) {
        tao__item_t *it = tao__item_new(IT_BROADCAST, NULL, 0);
        if (!it) {
            tao__bcast_unref(b);
            continue;
        }
        it->u.bcast = b;
        tao__post(&rt->loops[i], it);
    }
    return 0;
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
    }
    for (unsigned i = 0; i < rt->nworkers && rt->workers; i++)
        st->worker_queue += atomic_load(&rt->workers[i].depth);
    st->conns_open = atomic_load(&srv->nconns);
    st->broadcast_skipped = atomic_load(&srv->ep.bcast_skipped);
    st->unmarshal_errors = atomic_load(&srv->ep.unmarshal_err);
    st->send_rejected = atomic_load(&srv->ep.send_rejected);
}
