/* Internal: an intrusive doubly linked list, and container_of.
 *
 * A list is a sentinel node; an element embeds a node and is found again
 * with container_of, so queueing never allocates. Not thread-safe: each
 * list has one owner thread, named where the list is declared. */
#ifndef TAO_ENGINE_LIST_H
#define TAO_ENGINE_LIST_H

#include <stdbool.h>
#include <stddef.h>

#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

typedef struct tao__list {
    struct tao__list *next, *prev;
} tao__list_t;

static inline void tao__list_init(tao__list_t *l)
{
    l->next = l->prev = l;
}

static inline bool tao__list_empty(const tao__list_t *l)
{
    return l->next == l;
}

static inline void tao__list_push(tao__list_t *l, tao__list_t *n)
{
    n->next = l;
    n->prev = l->prev;
    l->prev->next = n;
    l->prev = n;
}

/* Removing an element twice is harmless: it points at itself after. */
static inline void tao__list_remove(tao__list_t *n)
{
    n->next->prev = n->prev;
    n->prev->next = n->next;
    n->next = n->prev = n;
}

/* Every element, safe against removing the current one. */
#define tao__list_each(it, nx, l)                                                                  \
    for ((it) = (l)->next; (nx) = (it)->next, (it) != (l); (it) = (nx))

#endif
