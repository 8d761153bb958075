/* The message registry: message type -> route, and the delivery of one
 * decoded frame through unmarshal, handler and free.
 *
 * Go Tao programs number their messages from 0 upward, so types below
 * TAO__REG_DENSE are looked up by index. Any other int32 (negative, or a
 * hash-like number) goes to an open-addressing table with linear probing,
 * kept at most half full so probe runs stay short. Routes are never removed,
 * so the table needs no tombstones. */
#include <errno.h>
#include <stdlib.h>

#include "codec/registry.h"

#define HASH_MIN_CAP 16

struct tao__registry {
    tao__route_t dense[TAO__REG_DENSE];
    tao__route_t *slots; /* cap entries, cap a power of two, or NULL */
    size_t cap;
    size_t hashed; /* used slots */
    size_t count;  /* all routes, dense and hashed */
};

static bool is_dense(int32_t type)
{
    return type >= 0 && type < TAO__REG_DENSE;
}

/* Message types are often consecutive or share low bits; a full avalanche
 * mix keeps them from clustering under a power-of-two mask. */
static size_t slot_of(int32_t type, size_t cap)
{
    uint32_t h = (uint32_t)type;
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    return h & (cap - 1);
}

/* The slot holding type, or the empty slot where it would go. The table is
 * never full, so the probe always ends. */
static tao__route_t *probe(tao__route_t *slots, size_t cap, int32_t type)
{
    size_t i = slot_of(type, cap);
    while (slots[i].used && slots[i].type != type)
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

static int grow(tao__registry_t *reg)
{
    size_t cap = reg->cap ? reg->cap * 2 : HASH_MIN_CAP;
    if (cap < reg->cap)
        return -ENOMEM;
    tao__route_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < reg->cap; i++)
        if (reg->slots[i].used)
            *probe(slots, cap, reg->slots[i].type) = reg->slots[i];
    free(reg->slots);
    reg->slots = slots;
    reg->cap = cap;
    return 0;
}

int tao__registry_create(tao__registry_t **out)
{
    tao__registry_t *reg = calloc(1, sizeof(*reg));
    if (reg == NULL)
        return -ENOMEM;
    *out = reg;
    return 0;
}

void tao__registry_destroy(tao__registry_t *reg)
{
    if (reg == NULL)
        return;
    free(reg->slots);
    free(reg);
}

/* The slot for a new route of this type, growing the table first when one
 * more entry would make it more than half full. */
static int slot_for_add(tao__registry_t *reg, int32_t type, tao__route_t **slot)
{
    if (is_dense(type)) {
        *slot = &reg->dense[type];
        return 0;
    }
    if (reg->cap && probe(reg->slots, reg->cap, type)->used)
        return -EEXIST;
    if ((reg->hashed + 1) * 2 > reg->cap) {
        int rc = grow(reg);
        if (rc < 0)
            return rc;
    }
    *slot = probe(reg->slots, reg->cap, type);
    return 0;
}

int tao__registry_add(tao__registry_t *reg, int32_t type, tao_handler_cb handler,
                      tao_unmarshal_fn unmarshal, tao_value_free_fn free_value)
{
    if (reg == NULL || (free_value && !unmarshal))
        return -EINVAL;
    tao__route_t *slot;
    int rc = slot_for_add(reg, type, &slot);
    if (rc < 0)
        return rc;
    if (slot->used)
        return -EEXIST;
    *slot = (tao__route_t){.handler = handler,
                           .unmarshal = unmarshal,
                           .free_value = free_value,
                           .type = type,
                           .used = true};
    if (!is_dense(type))
        reg->hashed++;
    reg->count++;
    return 0;
}

const tao__route_t *tao__registry_find(const tao__registry_t *reg, int32_t type)
{
    if (is_dense(type))
        return reg->dense[type].used ? &reg->dense[type] : NULL;
    if (reg->cap == 0)
        return NULL;
    const tao__route_t *r = probe(reg->slots, reg->cap, type);
    return r->used ? r : NULL;
}

size_t tao__registry_count(const tao__registry_t *reg)
{
    return reg->count;
}

int tao__registry_dispatch(const tao__registry_t *reg, tao_conn_t *conn, const tao_frame_t *frame,
                           tao_handler_cb fallback)
{
    const tao__route_t *route = tao__registry_find(reg, frame->type);
    if (route == NULL)
        return -ENOENT;
    tao_handler_cb cb = route->handler ? route->handler : fallback;
    /* Nobody would see the value: do not build it. */
    if (cb == NULL)
        return -ENOENT;
    tao_msg_t msg = {.type = frame->type, .payload = frame->payload, .len = frame->len};
    if (route->unmarshal) {
        void *value = NULL;
        int rc = route->unmarshal(frame->payload, frame->len, &value);
        if (rc != 0)
            return rc < 0 ? rc : -rc;
        msg.value = value;
    }
    /* The handler may close the connection, but the registry outlives every
     * connection of its server, so the route is still valid afterwards. */
    cb(conn, &msg);
    if (route->free_value && msg.value)
        route->free_value(msg.value);
    return 0;
}
