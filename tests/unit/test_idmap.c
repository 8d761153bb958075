/* Unit tests for engine/idmap.c: many sequential ids and some sparse ones
 * (colliding on the low bits, 0, UINT64_MAX) inserted, each found through
 * every growth of the table (each node in the slot its id names), half
 * removed, and the misses: a missing id finds NULL, and a node not in the
 * map (even one whose id is) is not removed. */
#include "engine/idmap.c"

#include "util/t_util.h"

#define N 10000

typedef struct item {
    tao__idnode_t node;
    uint64_t tag; /* tells the node found from another with its id */
} item_t;

static item_t *items;
static tao__idmap_t M;

static item_t *find(uint64_t id)
{
    return (item_t *)tao__idmap_find(&M, id);
}

static void insert(item_t *it, uint64_t id)
{
    it->node.id = id;
    it->tag = id ^ 0x5555;
    tao__idmap_insert(&M, &it->node);
    /* the table is a power of two and never fuller than one node a slot */
    assert_int_equal(M.mask & (M.mask + 1), 0);
    assert_true(M.count <= M.mask + 1);
}

/* Every node sits in the slot its id names, and the chains hold count
 * nodes in all. */
static void check_chains(void)
{
    size_t n = 0;
    for (size_t i = 0; i <= M.mask; i++) {
        for (const tao__idnode_t *p = M.slots[i]; p; p = p->next, n++) {
            assert_int_equal(p->id & M.mask, i);
            assert_true(n < M.count);
        }
    }
    assert_int_equal(n, M.count);
}

static void assert_found(const item_t *it)
{
    assert_ptr_equal(find(it->node.id), it);
}

static int setup(void **state)
{
    items = calloc(N, sizeof *items);
    assert_non_null(items);
    assert_int_equal(tao__idmap_init(&M, 16), 0);
    return 0;
}

static int teardown(void **state)
{
    tao__idmap_deinit(&M);
    free(items);
    return 0;
}

static void test_empty(void **state)
{
    item_t stray = {.node.id = 7};
    assert_int_equal(M.count, 0);
    assert_int_equal(M.mask + 1, 64);
    assert_null(find(0));
    assert_null(find(7));
    assert_false(tao__idmap_remove(&M, &stray.node));
}

static void test_init_sizes(void **state)
{
    tao__idmap_t m;
    assert_int_equal(tao__idmap_init(&m, 0), 0);
    assert_int_equal(m.mask + 1, 64);
    tao__idmap_deinit(&m);
    assert_int_equal(tao__idmap_init(&m, 1000), 0);
    assert_int_equal(m.mask + 1, 2048);
    tao__idmap_deinit(&m);
}

/* Every node stays findable across each doubling of the table. */
static void test_sequential_through_growth(void **state)
{
    for (size_t i = 0; i < N; i++) {
        size_t slots = M.mask + 1;
        insert(&items[i], i + 1);
        if (M.mask + 1 == slots)
            continue;
        check_chains();
        for (size_t j = 0; j <= i; j++)
            assert_found(&items[j]);
    }
    assert_int_equal(M.count, N);
    assert_true(M.mask + 1 >= N);
    for (size_t i = 0; i < N; i++)
        assert_found(&items[i]);
    assert_null(find(0));
    assert_null(find(N + 1));
}

/* Ids far apart, and ids sharing their low bits (one chain in any table
 * smaller than 2^20 slots). */
static void test_sparse(void **state)
{
    const uint64_t ids[] = {0,          UINT64_MAX,    1ull << 40, (1ull << 40) + 1,
                            1ull << 63, 12345678901ull};
    size_t n = 0;
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        insert(&items[n++], ids[i]);
    for (uint64_t i = 1; i <= 500; i++)
        insert(&items[n++], i << 20);
    check_chains();
    for (size_t i = 0; i < n; i++)
        assert_found(&items[i]);
    assert_int_equal(find(UINT64_MAX)->tag, UINT64_MAX ^ 0x5555);
    assert_null(find(1ull << 41));
    assert_null(find(501ull << 20));
    assert_null(find(UINT64_MAX - 1));
}

/* Random ids share slots, so each doubling splits chains: both halves must
 * land where their ids say. */
static void test_random_ids_through_growth(void **state)
{
    uint64_t x = 0x2545f4914f6cdd1dull;
    for (size_t i = 0; i < N; i++) {
        size_t slots = M.mask + 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        insert(&items[i], x);
        if (M.mask + 1 != slots)
            check_chains();
    }
    check_chains();
    for (size_t i = 0; i < N; i++)
        assert_found(&items[i]);
}

static void test_remove_half(void **state)
{
    for (size_t i = 0; i < N; i++)
        insert(&items[i], i + 1);
    for (size_t i = 0; i < N; i += 2)
        assert_true(tao__idmap_remove(&M, &items[i].node));
    assert_int_equal(M.count, N / 2);
    check_chains();
    for (size_t i = 0; i < N; i++) {
        if (i % 2)
            assert_found(&items[i]);
        else
            assert_null(find(i + 1));
    }
    /* removed twice: no longer there */
    assert_false(tao__idmap_remove(&M, &items[0].node));
    assert_int_equal(M.count, N / 2);

    for (size_t i = 0; i < N; i += 2)
        insert(&items[i], i + 1);
    check_chains();
    for (size_t i = 0; i < N; i++)
        assert_found(&items[i]);
}

/* A node is removed by identity: another with the same id is not in the
 * map, and removing it leaves the real one. */
static void test_remove_not_in_map(void **state)
{
    item_t twin = {0};
    for (size_t i = 0; i < 100; i++)
        insert(&items[i], i + 1);
    twin.node.id = 50;
    assert_false(tao__idmap_remove(&M, &twin.node));
    twin.node.id = 1000;
    assert_false(tao__idmap_remove(&M, &twin.node));
    assert_int_equal(M.count, 100);
    assert_found(&items[49]);
}

/* Removing from the middle and the end of a chain keeps the rest linked. */
static void test_remove_in_chain(void **state)
{
    for (uint64_t i = 0; i < 8; i++)
        insert(&items[i], i << 32); /* all in slot 0 */
    assert_true(tao__idmap_remove(&M, &items[3].node));
    assert_true(tao__idmap_remove(&M, &items[0].node));
    assert_true(tao__idmap_remove(&M, &items[7].node));
    for (size_t i = 0; i < 8; i++) {
        if (i == 0 || i == 3 || i == 7)
            assert_null(find(items[i].node.id));
        else
            assert_found(&items[i]);
    }
    assert_int_equal(M.count, 5);
    check_chains();
}

/* After deinit the map is empty, not dangling. */
static void test_deinit(void **state)
{
    insert(&items[0], 1);
    tao__idmap_deinit(&M);
    assert_null(find(1));
    assert_false(tao__idmap_remove(&M, &items[0].node));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_init_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sequential_through_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sparse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_ids_through_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_half, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_not_in_map, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_in_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deinit, setup, teardown),
    };
    return cmocka_run_group_tests_name("idmap", tests, NULL, NULL);
}
