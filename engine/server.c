/* The public server object: configuration defaults, handler registration,
 * starting and joining the loops, stop, and statistics. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"

static int apply_defaults(tao_server_t *srv, const tao_server_config_t *in)
{
    tao_server_config_t *cfg = &srv->cfg;
    *cfg = *in;
    if (!cfg->listen)
        cfg->listen = "127.0.0.1:12345";
    if (!cfg->loops) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->loops = n > 0 ? (unsigned)n : 1;
    }
    if (cfg->workers > 0)
        return -ENOTSUP; /* worker threads: not in this build yet */
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
        srv->codec = *cfg->codec;
    else
        tao_codec_tlv(&srv->codec, cfg->max_frame);
    cfg->codec = NULL;
    if (!srv->codec.decode || !srv->codec.encode)
        return -EINVAL;
    return tao__parse_addr(cfg->listen, &srv->addr, &srv->addr_len);
}

TAO_API int tao_server_create(const tao_server_config_t *cfg, tao_server_t **out)
{
    static const tao_server_config_t zero;
    tao_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return -ENOMEM;
    int rc = apply_defaults(srv, cfg ? cfg : &zero);
    if (rc == 0)
        rc = tao__registry_create(&srv->reg);
    if (rc < 0) {
        free(srv);
        return rc;
    }
    srv->port =
        (int)ntohs(srv->addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&srv->addr)->sin6_port
                                                   : ((struct sockaddr_in *)&srv->addr)->sin_port);
    atomic_init(&srv->next_id, 1);
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->cond, NULL);
    *out = srv;
    return 0;
}

TAO_API int tao_server_handle(tao_server_t *srv, int32_t type, tao_handler_cb handler,
                              tao_unmarshal_fn unmarshal, tao_value_free_fn free_value)
{
    if (atomic_load(&srv->state) != 0)
        return -EBUSY;
    return tao__registry_add(srv->reg, type, handler, unmarshal, free_value);
}

static void join_all(tao_server_t *srv)
{
    for (unsigned i = 0; i < srv->nloops; i++) {
        tao__loop_t *loop = &srv->loops[i];
        if (loop->thread_started)
            pthread_join(loop->thread, NULL);
        loop->thread_started = false;
        tao__loop_deinit(loop);
    }
}

static int spawn(tao_server_t *srv)
{
    for (unsigned i = 0; i < srv->nloops; i++) {
        tao__loop_t *loop = &srv->loops[i];
        int rc = pthread_create(&loop->thread, NULL, tao__loop_main, loop);
        if (rc != 0)
            return -rc;
        loop->thread_started = true;
    }
    /* Wait until every ring is up, so start can report io_uring errors. */
    int err = 0;
    pthread_mutex_lock(&srv->lock);
    for (unsigned i = 0; i < srv->nloops; i++) {
        while (!srv->loops[i].ring_ready)
            pthread_cond_wait(&srv->cond, &srv->lock);
        if (srv->loops[i].setup_err && !err)
            err = srv->loops[i].setup_err;
    }
    pthread_mutex_unlock(&srv->lock);
    return err;
}

TAO_API int tao_server_start(tao_server_t *srv)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&srv->state, &expected, 1))
        return -EBUSY;
    srv->nloops = srv->cfg.loops;
    srv->loops = calloc(srv->nloops, sizeof *srv->loops);
    if (!srv->loops)
        return -ENOMEM;
    int rc = 0;
    for (unsigned i = 0; i < srv->nloops && rc == 0; i++)
        rc = tao__loop_init(&srv->loops[i], srv, i);
    if (rc == 0)
        rc = spawn(srv);
    if (rc < 0) {
        tao_server_stop(srv, 0);
        join_all(srv);
        atomic_store(&srv->state, 2);
        return rc;
    }
    return 0;
}

TAO_API void tao_server_stop(tao_server_t *srv, unsigned deadline_ms)
{
    /* Only atomics and write(2): callable from a signal handler. */
    atomic_store(&srv->stop_deadline_ms, deadline_ms ? deadline_ms : 5000);
    atomic_store(&srv->stop_requested, true);
    if (atomic_load(&srv->state) != 1 || !srv->loops)
        return;
    for (unsigned i = 0; i < srv->nloops; i++)
        if (srv->loops[i].wake_fd >= 0)
            tao__loop_wake(&srv->loops[i]);
}

TAO_API int tao_server_wait(tao_server_t *srv)
{
    int expected = 1;
    pthread_mutex_lock(&srv->lock);
    if (atomic_load(&srv->state) == 1) {
        join_all(srv);
        atomic_compare_exchange_strong(&srv->state, &expected, 2);
    }
    pthread_mutex_unlock(&srv->lock);
    return 0;
}

TAO_API int tao_server_run(tao_server_t *srv)
{
    if (atomic_load(&srv->state) == 0) {
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
    if (atomic_load(&srv->state) == 1) {
        tao_server_stop(srv, 0);
        tao_server_wait(srv);
    }
    free(srv->loops);
    tao__registry_destroy(srv->reg);
    pthread_mutex_destroy(&srv->lock);
    pthread_cond_destroy(&srv->cond);
    free(srv);
}

TAO_API int tao_server_port(const tao_server_t *srv)
{
    return atomic_load(&srv->state) == 0 ? -ENOTCONN : srv->port;
}

TAO_API void *tao_server_data(const tao_server_t *srv)
{
    return srv->cfg.user;
}

TAO_API size_t tao_server_conn_count(const tao_server_t *srv)
{
    return atomic_load(&srv->nconns);
}

#define LOAD(loop, f) __atomic_load_n(&(loop)->stats.f, __ATOMIC_RELAXED)

TAO_API void tao_server_stats(const tao_server_t *srv, tao_stats_t *st)
{
    memset(st, 0, sizeof *st);
    for (unsigned i = 0; i < srv->nloops && srv->loops; i++) {
        const tao__loop_t *l = &srv->loops[i];
        st->conns_accepted += LOAD(l, accepted);
        st->conns_refused += LOAD(l, refused);
        st->conns_closed += LOAD(l, closed);
        st->frames_in += LOAD(l, frames_in);
        st->frames_out += LOAD(l, frames_out);
        st->bytes_in += LOAD(l, bytes_in);
        st->bytes_out += LOAD(l, bytes_out);
        st->unknown_types += LOAD(l, unknown);
        st->decode_errors += LOAD(l, decode_err);
        st->unmarshal_errors += LOAD(l, unmarshal_err);
        st->send_rejected += LOAD(l, send_rejected);
        st->accept_backoffs += LOAD(l, backoffs);
        st->enobufs += LOAD(l, enobufs);
        st->queued_bytes += LOAD(l, queued);
    }
    st->conns_open = atomic_load(&srv->nconns);
}
