/* What servers and client groups share: the registry, the id -> connection
 * map behind unicast, and broadcast. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/conn.h"
#include "engine/endpoint.h"
#include "engine/fault.h"
#include "engine/loop.h"
#include "engine/mailbox.h"
#include "engine/runtime.h"
#include "engine/send.h"
#include "engine/transport.h"

int tao__settings_defaults(tao__settings_t *s)
{
    if (!s->out_high)
        s->out_high = 4u << 20;
    if (!s->out_low || s->out_low > s->out_high)
        s->out_low = s->out_high / 4;
    if (!s->buf_count)
        s->buf_count = 64;
    if (!s->buf_size)
        s->buf_size = 65536;
    if (!s->max_conns)
        s->max_conns = 10000;
    if (!s->close_timeout_ms)
        s->close_timeout_ms = 5000;
    if (!s->max_queued_bytes)
        s->max_queued_bytes = tao__default_max_queued();
    if (!s->zc_buffers)
        s->zc_buffers = 32;
    if (!s->zc_buffer_size)
        s->zc_buffer_size = 65536;
    bool pow2 = (s->buf_count & (s->buf_count - 1)) == 0;
    if (!pow2 || s->buf_count > 32768 || s->zc_buffers > 65535 || s->loops > 1024 ||
        s->workers < TAO_WORKERS_INLINE || s->workers > TAO_WORKERS_MAX)
        return -EINVAL;
    return 0;
}

/* The default output budget: a quarter of the machine's memory, at most
 * 1 GiB. */
size_t tao__default_max_queued(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    size_t cap = (size_t)1 << 30;
    if (pages > 0 && psize > 0 && (size_t)pages / 4 < cap / (size_t)psize)
        cap = (size_t)pages / 4 * (size_t)psize;
    return cap;
}

/* The codec (copied), or TLV with max_frame. */
static int set_codec(tao__endpoint_t *ep, const tao_codec_t *codec, size_t max_frame)
{
    if (codec)
        ep->codec = *codec;
    else
        tao_codec_tlv(&ep->codec, max_frame);
    return ep->codec.decode && ep->codec.encode ? 0 : -EINVAL;
}

int tao__ep_init(tao__endpoint_t *ep, const tao__settings_t *s)
{
    ep->set = *s;
    ep->set.codec = NULL; /* copied into ep->codec */
    ep->workers = s->workers > 0;
    ep->xport = &tao__transport_plain;
    atomic_init(&ep->next_id, 1);
    pthread_mutex_init(&ep->map_lock, NULL);
    int rc = set_codec(ep, s->codec, s->max_frame);
    if (rc == 0)
        rc = tao__idmap_init(&ep->map, s->max_conns);
    return rc < 0 ? rc : tao__registry_create(&ep->reg);
}

void tao__ep_deinit(tao__endpoint_t *ep)
{
    tao__registry_destroy(ep->reg);
    ep->reg = NULL;
    pthread_mutex_destroy(&ep->map_lock);
    tao__idmap_deinit(&ep->map);
}

void tao__ep_add(tao__endpoint_t *ep, tao_conn_t *c)
{
    pthread_mutex_lock(&ep->map_lock);
    tao__idmap_insert(&ep->map, &c->idn);
    pthread_mutex_unlock(&ep->map_lock);
}

void tao__ep_remove(tao__endpoint_t *ep, tao_conn_t *c)
{
    pthread_mutex_lock(&ep->map_lock);
    tao__idmap_remove(&ep->map, &c->idn);
    pthread_mutex_unlock(&ep->map_lock);
}

/* fn for every connection, under the map's lock (fn must not take it). */
void tao__ep_each(tao__endpoint_t *ep, void (*fn)(tao_conn_t *c))
{
    pthread_mutex_lock(&ep->map_lock);
    for (size_t i = 0; ep->map.slots && i <= ep->map.mask; i++)
        for (tao__idnode_t *n = ep->map.slots[i]; n; n = n->next)
            fn(container_of(n, tao_conn_t, idn));
    pthread_mutex_unlock(&ep->map_lock);
}

/* The connection's last callback has run: the endpoint may go now (a
 * client group's destroy waits for this count to reach 0). */
void tao__ep_done(tao__endpoint_t *ep)
{
    atomic_fetch_sub_explicit(&ep->nconns, 1, memory_order_release);
}

/* The connection with this id, with a reference, or NULL. */
tao_conn_t *tao__ep_lookup(tao__endpoint_t *ep, uint64_t id)
{
    pthread_mutex_lock(&ep->map_lock);
    tao__idnode_t *n = tao__idmap_find(&ep->map, id);
    tao_conn_t *c = n ? container_of(n, tao_conn_t, idn) : NULL;
    if (c)
        tao__conn_ref(c);
    pthread_mutex_unlock(&ep->map_lock);
    return c;
}

void tao__bcast_unref(tao__bcast_t *b)
{
    if (atomic_fetch_sub(&b->refs, 1) == 1) {
        atomic_fetch_sub(&b->ep->queued, b->len);
        free(b);
    }
}

void tao__broadcast_local(tao__loop_t *loop, tao__bcast_t *b)
{
    TAO__ON_LOOP(loop);
    tao__list_t *it, *nx;
    tao__list_each(it, nx, &loop->conns)
    {
        tao_conn_t *c = container_of(it, tao_conn_t, node);
        if (c->ep != b->ep)
            continue;
        if (tao__conn_send_local(c, b->type, b->data, b->len) < 0)
            atomic_fetch_add(&c->ep->bcast_skipped, 1);
    }
    tao__bcast_unref(b);
}

/* One shared copy of the payload; each loop sends it to its own
 * connections of this endpoint. The copy counts against the output budget
 * until every loop has sent it, and a broadcast that would take the budget
 * past its end once every connection has its copy is refused whole: the
 * backlog of broadcasts on their way to the loops stays bounded. */
int tao__ep_broadcast(tao__endpoint_t *ep, tao__runtime_t *rt, int32_t type, const void *payload,
                      size_t len)
{
    tao_frame_hdr_t h;
    if (!tao__runtime_accepting(rt))
        return -ESHUTDOWN;
    int rc = ep->codec.encode(&ep->codec, type, len, &h);
    if (rc < 0)
        return rc;
    size_t each = h.pre_len + len + h.post_len;
    if (tao__cur_loop)
        tao__queued_publish(tao__cur_loop); /* its own output, exactly */
    if (atomic_load(&ep->queued) + len + atomic_load(&ep->nconns) * each >
        ep->set.max_queued_bytes) {
        atomic_fetch_add(&ep->send_rejected, 1);
        return -EAGAIN;
    }
    tao__bcast_t *b = tao__malloc(sizeof *b + len);
    if (!b)
        return -ENOMEM;
    atomic_fetch_add(&ep->queued, len);
    atomic_init(&b->refs, rt->nloops);
    b->ep = ep;
    b->type = type;
    b->len = len;
    if (len)
        memcpy(b->data, payload, len);
    for (unsigned i = 0; i < rt->nloops; i++) {
        tao__item_t *it = tao__item_new(LI_BROADCAST, NULL, 0);
        if (!it) {
            tao__bcast_unref(b);
            continue;
        }
        it->u.bcast = b;
        tao__post(&rt->loops[i], it);
    }
    return 0;
}
