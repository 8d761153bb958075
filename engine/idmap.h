/* Internal: a map from 64-bit ids to intrusive nodes (chained hashing on
 * the id's low bits; ids are sequential, so they spread evenly).
 *
 * Not thread-safe: the owner locks around every call (the endpoint's map of
 * connections, the runtime's map of timers). Inserting never fails: when
 * the table cannot grow, chains just get longer. */
#ifndef TAO_ENGINE_IDMAP_H
#define TAO_ENGINE_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct tao__idnode {
    uint64_t id;
    struct tao__idnode *next;
} tao__idnode_t;

typedef struct tao__idmap {
    tao__idnode_t **slots;
    size_t mask;  /* slots - 1; slots is a power of two */
    size_t count; /* nodes in the map */
} tao__idmap_t;

/* Room for about `expect` nodes before it grows. 0 or -ENOMEM. */
int tao__idmap_init(tao__idmap_t *m, size_t expect);
void tao__idmap_deinit(tao__idmap_t *m);
void tao__idmap_insert(tao__idmap_t *m, tao__idnode_t *n);
/* The first node with this id, or NULL. */
tao__idnode_t *tao__idmap_find(const tao__idmap_t *m, uint64_t id);
/* Unlink n; false when it was not in the map. */
_Bool tao__idmap_remove(tao__idmap_t *m, tao__idnode_t *n);

#endif
