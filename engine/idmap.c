/* The id map: see idmap.h. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "engine/fault.h"
#include "engine/idmap.h"

static size_t slots_for(size_t expect)
{
    size_t cap = 64;
    while (cap < 2 * expect)
        cap *= 2;
    return cap;
}

int tao__idmap_init(tao__idmap_t *m, size_t expect)
{
    size_t cap = slots_for(expect);
    m->count = 0;
    m->slots = tao__calloc(cap, sizeof *m->slots);
    m->mask = m->slots ? cap - 1 : 0;
    return m->slots ? 0 : -ENOMEM;
}

void tao__idmap_deinit(tao__idmap_t *m)
{
    free(m->slots);
    m->slots = NULL;
    m->mask = m->count = 0;
}

/* Double the table; on failure keep the old one. */
static void grow(tao__idmap_t *m)
{
    size_t cap = 2 * (m->mask + 1);
    tao__idnode_t **s = tao__calloc(cap, sizeof *s);
    if (!s)
        return;
    for (size_t i = 0; i <= m->mask; i++) {
        for (tao__idnode_t *n = m->slots[i], *next; n; n = next) {
            next = n->next;
            n->next = s[n->id & (cap - 1)];
            s[n->id & (cap - 1)] = n;
        }
    }
    free(m->slots);
    m->slots = s;
    m->mask = cap - 1;
}

void tao__idmap_insert(tao__idmap_t *m, tao__idnode_t *n)
{
    if (m->count >= m->mask + 1)
        grow(m);
    tao__idnode_t **slot = &m->slots[n->id & m->mask];
    n->next = *slot;
    *slot = n;
    m->count++;
}

tao__idnode_t *tao__idmap_find(const tao__idmap_t *m, uint64_t id)
{
    tao__idnode_t *n = m->slots ? m->slots[id & m->mask] : NULL;
    while (n && n->id != id)
        n = n->next;
    return n;
}

bool tao__idmap_remove(tao__idmap_t *m, tao__idnode_t *n)
{
    for (tao__idnode_t **p = m->slots ? &m->slots[n->id & m->mask] : NULL; p && *p;
         p = &(*p)->next) {
        if (*p == n) {
            *p = n->next;
            m->count--;
            return true;
        }
    }
    return false;
}
