/* Client groups and client connections: connect through io_uring with a
 * timeout from the timing wheel, and reconnect with backoff.
 *
 * A client connection keeps its tao_conn_t (and id, and user data) across
 * reconnects; each new socket gets new op generations, so completions of
 * the old one are stale. Its states: offline (connecting, or waiting out a
 * backoff), connected, closing; it is finished (on_close, then freed) when
 * the user closes it, it gives up, or the loop stops. */
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/addr.h"
#include "engine/client.h"
#include "engine/conn.h"
#include "engine/fault.h"
#include "engine/log.h"
#include "engine/loop.h"
#include "engine/server.h"
#include "engine/tls.h"
#include "engine/transport.h"

#define CONNECT_TIMEOUT_MS 10000

static void timer_fire(tao__timer_t *t, uint64_t now);

static tao__cstate_t *cs(tao_conn_t *c)
{
    return c->client;
}

static void client_error(tao__endpoint_t *ep, tao_conn_t *c, int err, const char *what)
{
    tao_client_t *cl = ep->client;
    if (cl->cfg.on_error)
        cl->cfg.on_error(cl, c, err, what);
}

/* ---- on the loop ------------------------------------------------------------- */

static void start_connect(tao_conn_t *c)
{
    tao__cstate_t *s = cs(c);
    tao__loop_t *loop = c->loop;
    int one = 1;

    tao__conn_reset(c);
    s->connect_op.gen = c->recv_op.gen;
    int fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int err = -errno;
        tao__conn_error(c, err, "socket");
        s->connecting = false;
        if (!tao__client_closed(c))
            tao__conn_finish(c);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    loop->be->connect(c, &s->connect_op, (struct sockaddr *)&s->addr, s->addr_len);
    s->connecting = true;
    s->timed_out = false;
    unsigned ms = s->cl->cfg.connect_timeout_ms;
    tao__wheel_add(&loop->wheel, &s->timer, loop->now + ms, 0);
}

void tao__client_connect_item(tao_conn_t *c)
{
    tao__loop_t *loop = c->loop;
    TAO__ON_LOOP(loop);
    tao__conn_attach(c);
    if (loop->stopping || atomic_load(&cs(c)->user_closed)) {
        c->flags |= C_OFFLINE;
        tao__conn_finish(c);
        return;
    }
    start_connect(c);
}

static void connected(tao_conn_t *c)
{
    cs(c)->failures = 0;
    c->flags &= ~(uint32_t)C_OFFLINE;
    c->last_rx = c->last_tx = c->loop->now;
    tao__conn_start(c);
}

void tao__connect_complete(tao__loop_t *loop, tao__op_t *op, const tao__cqe_t *cqe)
{
    tao__cstate_t *s = container_of(op, tao__cstate_t, connect_op);
    tao_conn_t *c = (tao_conn_t *)((char *)s - sizeof(tao_conn_t));
    int res = cqe->res;
    TAO__ON_LOOP(loop);

    s->connecting = false;
    tao__wheel_cancel(&loop->wheel, &s->timer);
    if (res == 0 && !atomic_load(&s->user_closed) && !loop->stopping) {
        connected(c);
        return;
    }
    close(c->fd);
    c->fd = -1;
    if (res == 0 || atomic_load(&s->user_closed) || loop->stopping) {
        tao__conn_finish(c);
        return;
    }
    if (s->timed_out)
        res = -ETIMEDOUT;
    tao__conn_error(c, res, "connect");
    if (!tao__client_closed(c))
        tao__conn_finish(c);
}

/* Exponential backoff with "equal jitter": half fixed, half random, so a
 * crowd of clients that lost the same server does not return in step. */
static unsigned backoff_ms(const tao__cstate_t *s)
{
    const tao_client_config_t *cfg = &s->cl->cfg;
    uint64_t d = cfg->reconnect_initial_ms;
    for (unsigned i = 1; i < s->failures && d < cfg->reconnect_max_ms; i++)
        d *= 2;
    if (d > cfg->reconnect_max_ms)
        d = cfg->reconnect_max_ms;
    uint64_t half = d / 2;
    return (unsigned)(half + (half ? (uint64_t)random() % (half + 1) : 0));
}

/* The socket is gone (closed, or the connect failed). Returns true when a
 * reconnect is scheduled (the connection stays), false when it is done. */
bool tao__client_closed(tao_conn_t *c)
{
    tao__cstate_t *s = cs(c);
    const tao_client_config_t *cfg = &s->cl->cfg;
    TAO__ON_LOOP(c->loop);
    bool was_up = !(c->flags & C_OFFLINE);

    if (!cfg->reconnect || atomic_load(&s->user_closed) || c->loop->stopping)
        return false;
    s->failures++;
    if (cfg->reconnect_attempts && s->failures > cfg->reconnect_attempts) {
        tao__conn_error(c, -ETIMEDOUT, "reconnect: giving up");
        return false;
    }
    if (was_up && s->last_err)
        tao__conn_error(c, s->last_err, "connection lost; reconnecting");
    else if (was_up)
        tao__conn_error(c, -ENOTCONN, "closed by the peer; reconnecting");
    s->last_err = 0;
    tao__conn_reset(c);
    unsigned ms = backoff_ms(s);
    tao__log(TAO_LOG_DEBUG, "conn %llu: reconnecting in %u ms", (unsigned long long)c->id, ms);
    tao__wheel_add(&c->loop->wheel, &s->timer, c->loop->now + ms, 0);
    return true;
}

static void timer_fire(tao__timer_t *t, uint64_t now)
{
    tao__cstate_t *s = container_of(t, tao__cstate_t, timer);
    tao_conn_t *c = (tao_conn_t *)((char *)s - sizeof(tao_conn_t));
    if (!s->connecting) {
        start_connect(c); /* the backoff is over */
        return;
    }
    /* The connect timed out: cancel it; its outcome finishes the job. */
    s->timed_out = true;
    c->loop->be->cancel(c->loop, &s->connect_op);
}

/* Close or abort while offline: no socket to drain. */
void tao__client_close_offline(tao_conn_t *c)
{
    tao__cstate_t *s = cs(c);
    TAO__ON_LOOP(c->loop);
    atomic_store(&s->user_closed, true);
    atomic_store(&c->closing, true);
    if (s->connecting) {
        /* The connect's outcome sees user_closed and finishes it. */
        s->timed_out = false;
        c->loop->be->cancel(c->loop, &s->connect_op);
        return;
    }
    if (tao__timer_armed(&s->timer)) {
        tao__wheel_cancel(&c->loop->wheel, &s->timer);
        tao__conn_finish(c);
    }
}

/* ---- the public calls -------------------------------------------------------- */

static int apply_defaults(tao_client_t *cl, const tao_client_config_t *in)
{
    tao_client_config_t *cfg = &cl->cfg;
    *cfg = *in;
    if (!cfg->loops)
        cfg->loops = 1;
    if (cfg->server && cfg->workers > 0 && cfg->server->rt.nworkers == 0)
        return -EINVAL;
    if (!cfg->connect_timeout_ms)
        cfg->connect_timeout_ms = CONNECT_TIMEOUT_MS;
    if (!cfg->reconnect_initial_ms)
        cfg->reconnect_initial_ms = 100;
    if (!cfg->reconnect_max_ms)
        cfg->reconnect_max_ms = 30000;
    if (cfg->reconnect_max_ms < cfg->reconnect_initial_ms)
        cfg->reconnect_max_ms = cfg->reconnect_initial_ms;
    tao__settings_t set = TAO__SETTINGS_OF(cfg);
    if (cfg->server)
        set.zc_threshold = 0; /* a shared server's loops have their own buffers, or none */
    cfg->codec = NULL;
    int rc = tao__settings_defaults(&set);
    return rc < 0 ? rc : tao__ep_init(&cl->ep, &set);
}

TAO_API int tao_client_create(const tao_client_config_t *cfg, tao_client_t **out)
{
    static const tao_client_config_t zero;
    *out = NULL; /* a failed create leaves nothing to destroy */
    tao_client_t *cl = tao__calloc(1, sizeof *cl);
    if (!cl)
        return -ENOMEM;
    cl->ep.client = cl;
    cl->ep.on_error = client_error;
    int rc = apply_defaults(cl, cfg ? cfg : &zero);
    if (rc == 0 && cl->cfg.tls)
        rc = tao__tls_endpoint(&cl->ep, cl->cfg.tls, false);
    if (rc == 0 && !cl->cfg.server) {
        unsigned workers = cl->cfg.workers > 0 ? (unsigned)cl->cfg.workers : 0;
        rc = tao__runtime_init(&cl->own, &cl->ep.set, cl->cfg.loops, workers);
    }
    if (rc < 0) {
        tao_client_destroy(cl);
        return rc;
    }
    cl->rt = cl->cfg.server ? &cl->cfg.server->rt : &cl->own;
    *out = cl;
    return 0;
}
TAO_API int tao_client_handle(tao_client_t *cl, int32_t type, tao_handler_cb handler,
                              tao_unmarshal_fn unmarshal, tao_value_free_fn free_value)
{
    if (cl->cfg.server ? atomic_load(&cl->ep.nconns) : atomic_load(&cl->own.state) != RT_CREATED)
        return -EBUSY;
    return tao__registry_add(cl->ep.reg, type, handler, unmarshal, free_value);
}

TAO_API int tao_client_start(tao_client_t *cl)
{
    if (cl->cfg.server)
        return atomic_load(&cl->rt->state) == RT_RUNNING ? 0 : -ESHUTDOWN;
    return tao__runtime_start(&cl->own, NULL, NULL);
}

/* Numeric first; a name goes through the resolver, here on the caller. */
static int resolve(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
    if (tao__parse_addr(addr, ss, len) == 0)
        return 0;
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof host)
        return -EINVAL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0)
        return -EHOSTUNREACH;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

TAO_API int64_t tao_client_connect(tao_client_t *cl, const char *addr, void *data)
{
    tao__runtime_t *rt = cl->rt;
    struct sockaddr_storage ss;
    socklen_t len;

    if (!addr)
        return -EINVAL;
    if (!tao__runtime_accepting(rt))
        return -ESHUTDOWN;
    int rc = resolve(addr, &ss, &len);
    if (rc < 0)
        return rc;
    tao__loop_t *loop = &rt->loops[atomic_fetch_add(&cl->next_loop, 1) % rt->nloops];
    uint64_t id = atomic_fetch_add(&cl->ep.next_id, 1);
    tao_conn_t *c = tao__conn_alloc(loop, &cl->ep, id, sizeof(tao__cstate_t));
    if (!c)
        return -ENOMEM;
    tao__cstate_t *s = (tao__cstate_t *)(c + 1);
    c->client = s;
    c->data = data;
    c->flags = C_OFFLINE;
    atomic_store(&c->connected, false);
    s->cl = cl;
    s->addr = ss;
    s->addr_len = len;
    s->connect_op.kind = OP_CONNECT;
    tao__timer_init(&s->timer, timer_fire);
    tao__conn_set_peer(c, (struct sockaddr *)&ss, len);

    tao__item_t *it = tao__item_new(LI_CONNECT, c, 0);
    if (!it) {
        free(c);
        return -ENOMEM;
    }
    atomic_fetch_add(&cl->ep.nconns, 1);
    tao__ep_add(&cl->ep, c);
    tao__post(loop, it);
    return (int64_t)id;
}

TAO_API int tao_client_send(tao_client_t *cl, int64_t id, int32_t type, const void *payload,
                            size_t len)
{
    tao_conn_t *c = id > 0 ? tao__ep_lookup(&cl->ep, (uint64_t)id) : NULL;
    if (!c)
        return -ENOENT;
    int rc = tao_conn_send(c, type, payload, len);
    tao__conn_unref(c);
    return rc;
}

TAO_API int tao_client_close(tao_client_t *cl, int64_t id)
{
    tao_conn_t *c = id > 0 ? tao__ep_lookup(&cl->ep, (uint64_t)id) : NULL;
    if (!c)
        return -ENOENT;
    tao_conn_close(c);
    tao__conn_unref(c);
    return 0;
}

TAO_API bool tao_client_connected(tao_client_t *cl, int64_t id)
{
    tao_conn_t *c = id > 0 ? tao__ep_lookup(&cl->ep, (uint64_t)id) : NULL;
    if (!c)
        return false;
    bool up = atomic_load(&c->connected) && !atomic_load(&c->closing);
    tao__conn_unref(c);
    return up;
}

TAO_API size_t tao_client_conn_count(const tao_client_t *cl)
{
    return atomic_load(&cl->ep.nconns);
}

/* Close every connection of the group, for good. */
static void close_all(tao_client_t *cl, bool abort)
{
    tao__ep_each(&cl->ep, abort ? tao_conn_abort : tao_conn_close);
}

TAO_API void tao_client_stop(tao_client_t *cl, unsigned deadline_ms)
{
    if (!cl->cfg.server) {
        tao__runtime_stop(&cl->own, deadline_ms);
        return;
    }
    close_all(cl, false);
}

TAO_API int tao_client_wait(tao_client_t *cl)
{
    if (!cl->cfg.server) {
        tao__runtime_wait(&cl->own);
        return 0;
    }
    /* On a shared server, wait for this group's connections to finish;
     * past the deadline, abort what is left. */
    uint64_t end = tao__now_ms() + 5000;
    while (atomic_load(&cl->ep.nconns) && atomic_load(&cl->rt->state) == RT_RUNNING) {
        if (tao__now_ms() > end) {
            close_all(cl, true);
            end = UINT64_MAX;
        }
        usleep(1000);
    }
    return 0;
}

TAO_API void tao_client_destroy(tao_client_t *cl)
{
    if (!cl)
        return;
    if (cl->cfg.server) {
        if (cl->ep.map.slots) {
            tao_client_stop(cl, 0);
            tao_client_wait(cl);
        }
    } else {
        tao__runtime_deinit(&cl->own);
    }
    tao__ep_deinit(&cl->ep);
    tao__tls_ctx_destroy(cl->ep.tls);
    free(cl);
}

TAO_API const char *tao_client_backend(const tao_client_t *cl)
{
    return cl->rt->be ? cl->rt->be->name : NULL;
}

TAO_API void *tao_client_data(const tao_client_t *cl)
{
    return cl->cfg.user;
}
