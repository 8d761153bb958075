/* What servers and client groups share: the registry, the id -> connection
 * map behind unicast, and broadcast. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/fault.h"

int tao__ep_init(tao__endpoint_t *ep, unsigned max_conns)
{
    size_t cap = 64;
    while (cap < 2 * (size_t)max_conns)
        cap *= 2;
    atomic_init(&ep->next_id, 1);
    pthread_mutex_init(&ep->map_lock, NULL);
    ep->map = tao__calloc(cap, sizeof *ep->map);
    ep->map_mask = cap - 1;
    if (!ep->map)
        return -ENOMEM;
    return tao__registry_create(&ep->reg);
}

/* The config's codec (copied), or TLV with max_frame. */
int tao__ep_codec(tao__endpoint_t *ep, const tao_codec_t *codec, size_t max_frame)
{
    if (codec)
        ep->codec = *codec;
    else
        tao_codec_tlv(&ep->codec, max_frame);
    return ep->codec.decode && ep->codec.encode ? 0 : -EINVAL;
}

void tao__ep_deinit(tao__endpoint_t *ep)
{
    tao__registry_destroy(ep->reg);
    ep->reg = NULL;
    pthread_mutex_destroy(&ep->map_lock);
    free(ep->map);
    ep->map = NULL;
}

void tao__ep_add(tao__endpoint_t *ep, tao_conn_t *c)
{
    pthread_mutex_lock(&ep->map_lock);
    tao_conn_t **slot = &ep->map[c->id & ep->map_mask];
    c->map_next = *slot;
    *slot = c;
    pthread_mutex_unlock(&ep->map_lock);
}

void tao__ep_remove(tao__endpoint_t *ep, tao_conn_t *c)
{
    pthread_mutex_lock(&ep->map_lock);
    for (tao_conn_t **p = &ep->map[c->id & ep->map_mask]; *p; p = &(*p)->map_next) {
        if (*p == c) {
            *p = c->map_next;
            break;
        }
    }
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
    tao_conn_t *c;
    pthread_mutex_lock(&ep->map_lock);
    for (c = ep->map[id & ep->map_mask]; c && c->id != id; c = c->map_next)
        ;
    if (c)
        tao__conn_ref(c);
    pthread_mutex_unlock(&ep->map_lock);
    return c;
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

void tao__bcast_unref(tao__bcast_t *b)
{
    if (atomic_fetch_sub(&b->refs, 1) == 1) {
        atomic_fetch_sub(&b->ep->queued, b->len);
        free(b);
    }
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

/* One shared copy of the payload; each loop sends it to its own
 * connections of this endpoint. The copy counts against the output budget
 * until every loop has sent it, and a broadcast that would take the budget
 * past its end once every connection has its copy is refused whole: the
 * backlog of broadcasts on their way to the loops stays bounded. */
int tao__ep_broadcast(tao__endpoint_t *ep, tao__runtime_t *rt, int32_t type, const void *payload,
                      size_t len)
{
    tao_frame_hdr_t h;
    if (atomic_load(&rt->state) != 1 || atomic_load(&rt->stop_requested))
        return -ESHUTDOWN;
    int rc = ep->codec.encode(&ep->codec, type, len, &h);
    if (rc < 0)
        return rc;
    size_t each = h.pre_len + len + h.post_len;
    if (atomic_load(&ep->queued) + len + atomic_load(&ep->nconns) * each > ep->max_queued) {
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
