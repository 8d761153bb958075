/* Unit tests for engine/outq.c, included so its static helpers and CHUNK_MIN
 * are in reach: the byte layout of copied and owned chunks, packing of small
 * copied frames, gathering (head_off inside each part of a chunk, the
 * TAO__IOV_MAX cap, the stop before a registered-buffer chunk), advancing
 * (inside a chunk, across chunks, to the very end), that an owned payload's
 * free_fn runs exactly once, and -EMSGSIZE. Every byte gathered is compared
 * with a reference copy of the stream. No sockets, no ring: zc and lent
 * chunks are never freed here, since that would reach a loop. */
#include "engine/outq.c"

#include "util/t_util.h"

/* ---- the reference stream ---------------------------------------------------- */

/* Every byte queued, in wire order; sent counts the ones advanced past. */
static uint8_t *ref;
static size_t ref_len, ref_cap, sent;

static void ref_add(const void *p, size_t n)
{
    if (ref_len + n > ref_cap) {
        ref_cap = (ref_len + n) * 2;
        ref = realloc(ref, ref_cap);
        assert_non_null(ref);
    }
    if (n)
        memcpy(ref + ref_len, p, n);
    ref_len += n;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(uint32_t below)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % below);
}

/* Bytes that tell frames and parts apart: a stride-7 run from seed. */
static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 7);
}

static tao_frame_hdr_t hdr(uint8_t pre_len, uint8_t post_len, uint8_t seed)
{
    tao_frame_hdr_t h;
    memset(&h, 0xEE, sizeof h);
    h.pre_len = pre_len;
    h.post_len = post_len;
    fill(h.pre, pre_len, seed);
    fill(h.post, post_len, (uint8_t)(seed + 100));
    return h;
}

static void ref_frame(const tao_frame_hdr_t *h, const void *payload, size_t len)
{
    ref_add(h->pre, h->pre_len);
    ref_add(payload, len);
    ref_add(h->post, h->post_len);
}

/* Push a copied frame of len payload bytes and record it. */
static void push(tao__outq_t *q, uint8_t pre, uint8_t post, size_t len)
{
    static uint8_t seed;
    uint8_t *payload = malloc(len ? len : 1);
    assert_non_null(payload);
    tao_frame_hdr_t h = hdr(pre, post, ++seed);
    fill(payload, len, (uint8_t)(seed + 50));
    assert_int_equal(tao__outq_push_copy(q, &h, payload, len), 0);
    ref_frame(&h, payload, len);
    free(payload);
}

/* ---- owned payloads ---------------------------------------------------------- */

/* One counter per owned payload: free_fn must run exactly once. */
static void count_free(void *payload, void *user)
{
    (*(int *)user)++;
    free(payload);
}

static tao__chunk_t *owned(uint8_t pre, size_t len, uint8_t post, int *freed)
{
    static uint8_t seed = 200;
    uint8_t *payload = malloc(len ? len : 1);
    assert_non_null(payload);
    tao_frame_hdr_t h = hdr(pre, post, ++seed);
    fill(payload, len, (uint8_t)(seed + 50));
    tao__chunk_t *k = tao__chunk_owned(&h, payload, len, count_free, freed);
    assert_non_null(k);
    ref_frame(&h, payload, len);
    return k;
}

/* ---- checks ------------------------------------------------------------------ */

/* Gather and compare every byte with the reference from `sent` on. Returns
 * the bytes gathered. */
static size_t check_gather(const tao__outq_t *q, int want_iovs)
{
    struct iovec iov[TAO__IOV_MAX];
    int n = tao__outq_gather(q, iov);
    size_t at = sent;

    if (want_iovs >= 0)
        assert_int_equal(n, want_iovs);
    assert_true(n >= 0 && n <= TAO__IOV_MAX);
    for (int i = 0; i < n; i++) {
        assert_true(iov[i].iov_len > 0);
        assert_true(at + iov[i].iov_len <= ref_len);
        assert_memory_equal(iov[i].iov_base, ref + at, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    assert_true(at - sent <= q->bytes);
    return at - sent;
}

static void advance(tao__outq_t *q, size_t n)
{
    tao__outq_advance(q, n);
    sent += n;
    assert_int_equal(q->bytes, ref_len - sent);
}

static void assert_empty(const tao__outq_t *q)
{
    assert_null(q->head);
    assert_null(q->tail);
    assert_int_equal(q->bytes, 0);
    assert_int_equal(q->head_off, 0);
}

static int setup(void **state)
{
    ref_len = sent = 0;
    return 0;
}

static int teardown(void **state)
{
    free(ref);
    ref = NULL;
    ref_cap = 0;
    return 0;
}

/* ---- chunk layout ------------------------------------------------------------ */

static void test_chunk_copy_layout(void **state)
{
    tao_frame_hdr_t h = hdr(5, 3, 1);
    uint8_t payload[10], want[18];
    fill(payload, sizeof payload, 77);
    memcpy(want, h.pre, 5);
    memcpy(want + 5, payload, 10);
    memcpy(want + 15, h.post, 3);

    tao__chunk_t *k = tao__chunk_copy(&h, payload, sizeof payload);
    assert_non_null(k);
    assert_int_equal(k->len, 18);
    assert_int_equal(k->cap, 18);
    assert_memory_equal(k->data, want, 18);
    assert_null(k->ext);
    assert_int_equal(k->ext_len, 0);
    assert_int_equal(k->post_len, 0);
    assert_null(k->free_fn);
    assert_null(k->zc_loop);
    assert_null(k->lent);
    assert_int_equal(tao__chunk_bytes(k), 18);
    tao__chunk_free(k);
}

static void test_chunk_copy_empty_payload(void **state)
{
    tao_frame_hdr_t h = hdr(4, 2, 9);
    tao__chunk_t *k = tao__chunk_copy(&h, NULL, 0);
    assert_non_null(k);
    assert_int_equal(k->len, 6);
    assert_memory_equal(k->data, h.pre, 4);
    assert_memory_equal(k->data + 4, h.post, 2);
    tao__chunk_free(k);
}

static void test_chunk_owned_layout(void **state)
{
    int freed = 0;
    tao_frame_hdr_t h = hdr(6, 4, 3);
    uint8_t *payload = malloc(20);
    assert_non_null(payload);

    tao__chunk_t *k = tao__chunk_owned(&h, payload, 20, count_free, &freed);
    assert_non_null(k);
    assert_int_equal(k->len, 6);
    assert_memory_equal(k->data, h.pre, 6);
    assert_ptr_equal(k->ext, payload);
    assert_int_equal(k->ext_len, 20);
    assert_int_equal(k->post_len, 4);
    assert_memory_equal(k->post, h.post, 4);
    assert_ptr_equal(k->free_user, &freed);
    assert_int_equal(tao__chunk_bytes(k), 30);
    assert_int_equal(freed, 0);
    tao__chunk_free(k);
    assert_int_equal(freed, 1);
}

/* ---- push_copy ----------------------------------------------------------------- */

static void test_push_packs_small_frames(void **state)
{
    tao__outq_t q = {0};
    for (int i = 0; i < 100; i++)
        push(&q, 4, 2, (size_t)i % 17);

    assert_non_null(q.head);
    assert_ptr_equal(q.head, q.tail);
    assert_int_equal(q.bytes, ref_len);
    assert_int_equal(q.head->len, ref_len);
    assert_int_equal(q.head->cap, CHUNK_MIN - sizeof(tao__chunk_t));
    assert_memory_equal(q.head->data, ref, ref_len);
    check_gather(&q, 1);
    tao__outq_clear(&q);
    assert_empty(&q);
}

/* Frames fill a chunk to the last byte; the next one starts a new chunk. */
static void test_push_fills_chunk_exactly(void **state)
{
    tao__outq_t q = {0};
    size_t cap = CHUNK_MIN - sizeof(tao__chunk_t);

    push(&q, 8, 4, cap / 2 - 12);
    push(&q, 8, 4, cap - cap / 2 - 12);
    assert_ptr_equal(q.head, q.tail);
    assert_int_equal(q.head->len, cap);
    push(&q, 0, 0, 1);
    assert_ptr_not_equal(q.head, q.tail);
    assert_int_equal(q.tail->len, 1);
    check_gather(&q, 2);
    tao__outq_clear(&q);
}

/* A frame that does not fit behind the last one starts a new chunk. */
static void test_push_starts_new_chunk_when_full(void **state)
{
    tao__outq_t q = {0};
    size_t cap = CHUNK_MIN - sizeof(tao__chunk_t), per = cap / 1000;

    for (size_t i = 0; i <= per; i++)
        push(&q, 0, 0, 1000);
    assert_ptr_not_equal(q.head, q.tail);
    assert_ptr_equal(q.head->next, q.tail);
    assert_int_equal(q.head->len, per * 1000);
    assert_int_equal(q.tail->len, 1000);
    check_gather(&q, 2);
    tao__outq_clear(&q);
}

/* A frame bigger than a packing chunk gets one of exactly its size, and the
 * next frame cannot join it. */
static void test_push_large_frame(void **state)
{
    tao__outq_t q = {0};
    push(&q, 8, 4, 3 * CHUNK_MIN);
    assert_int_equal(q.head->cap, 3 * CHUNK_MIN + 12);
    assert_int_equal(q.head->len, q.head->cap);
    push(&q, 8, 0, 5);
    assert_ptr_not_equal(q.head, q.tail);
    assert_int_equal(q.tail->len, 13);
    check_gather(&q, 2);
    tao__outq_clear(&q);
}

/* Copied frames never pack into a chunk with an external payload, even
 * with room left in its data[]: they would go out before its payload. */
static void test_push_after_owned(void **state)
{
    tao__outq_t q = {0};
    int freed[2] = {0};
    tao__outq_append(&q, owned(4, 30, 2, &freed[0]));
    push(&q, 4, 2, 10);
    assert_ptr_not_equal(q.head, q.tail);
    assert_int_equal(q.tail->len, 16);

    tao__chunk_t *roomy = tao__chunk_new(256);
    uint8_t *payload = malloc(5);
    assert_non_null(roomy);
    assert_non_null(payload);
    fill(payload, 5, 33);
    roomy->ext = payload;
    roomy->ext_len = 5;
    roomy->free_fn = count_free;
    roomy->free_user = &freed[1];
    tao__outq_append(&q, roomy);
    ref_add(payload, 5);
    push(&q, 4, 2, 10);
    assert_ptr_not_equal(q.tail, roomy);
    assert_int_equal(roomy->len, 0);

    check_gather(&q, 3 + 1 + 1 + 1); /* pre ext post, copied, ext, copied */
    tao__outq_clear(&q);
    assert_int_equal(freed[0], 1);
    assert_int_equal(freed[1], 1);
}

static void test_push_emsgsize(void **state)
{
    tao__outq_t q = {0};
    tao_frame_hdr_t h = hdr(8, 0, 1);
    static uint8_t never_read;
    size_t len = (size_t)UINT32_MAX - CHUNK_MIN - 8 + 1;

    assert_int_equal(tao__outq_push_copy(&q, &h, &never_read, len), -EMSGSIZE);
    assert_int_equal(tao__outq_push_copy(&q, &h, &never_read, SIZE_MAX - 64), -EMSGSIZE);
    assert_empty(&q);
    assert_null(tao__chunk_copy(&h, &never_read, UINT32_MAX));
}

/* ---- gather -------------------------------------------------------------------- */

static void test_gather_empty(void **state)
{
    tao__outq_t q = {0};
    struct iovec iov[TAO__IOV_MAX];
    assert_int_equal(tao__outq_gather(&q, iov), 0);
}

/* head_off lands inside the data, the payload and the trailer in turn. */
static void test_gather_head_off_in_each_part(void **state)
{
    tao__outq_t q = {0};
    int freed = 0;
    tao__chunk_t *k = owned(6, 20, 4, &freed);
    struct iovec iov[TAO__IOV_MAX];
    tao__outq_append(&q, k);

    check_gather(&q, 3);
    advance(&q, 3); /* inside data */
    assert_int_equal(tao__outq_gather(&q, iov), 3);
    assert_ptr_equal(iov[0].iov_base, k->data + 3);
    assert_int_equal(iov[0].iov_len, 3);
    check_gather(&q, 3);

    advance(&q, 3); /* data done: the payload comes first */
    assert_int_equal(tao__outq_gather(&q, iov), 2);
    assert_ptr_equal(iov[0].iov_base, k->ext);
    check_gather(&q, 2);

    advance(&q, 5); /* inside the payload */
    assert_int_equal(tao__outq_gather(&q, iov), 2);
    assert_ptr_equal(iov[0].iov_base, k->ext + 5);
    assert_int_equal(iov[0].iov_len, 15);

    advance(&q, 15); /* at the trailer */
    assert_int_equal(tao__outq_gather(&q, iov), 1);
    assert_ptr_equal(iov[0].iov_base, k->post);

    advance(&q, 2); /* inside the trailer */
    assert_int_equal(tao__outq_gather(&q, iov), 1);
    assert_ptr_equal(iov[0].iov_base, k->post + 2);
    assert_int_equal(iov[0].iov_len, 2);
    assert_int_equal(freed, 0);

    advance(&q, 2);
    assert_int_equal(freed, 1);
    assert_empty(&q);
}

/* Parts of zero length never become iovecs: an owned chunk without header
 * or trailer is one iovec. */
static void test_gather_skips_empty_parts(void **state)
{
    tao__outq_t q = {0};
    int freed = 0;
    tao__outq_append(&q, owned(0, 9, 0, &freed));
    tao__outq_append(&q, owned(3, 9, 0, &freed));
    tao__outq_append(&q, owned(0, 9, 2, &freed));
    check_gather(&q, 1 + 2 + 2);
    tao__outq_clear(&q);
    assert_int_equal(freed, 3);
}

/* 40 owned chunks are 120 iovecs: a gather takes the first 64, the next
 * one the rest, starting inside the chunk where the first stopped. */
static void test_gather_iov_max(void **state)
{
    tao__outq_t q = {0};
    int freed[40] = {0};
    struct iovec iov[TAO__IOV_MAX];

    for (int i = 0; i < 40; i++)
        tao__outq_append(&q, owned(4, 8, 2, &freed[i]));
    assert_int_equal(tao__outq_gather(&q, iov), TAO__IOV_MAX);
    /* 64 = 21 whole chunks and the header of the 22nd */
    size_t n = check_gather(&q, TAO__IOV_MAX);
    assert_int_equal(n, 21 * 14 + 4);
    assert_int_equal(iov[TAO__IOV_MAX - 1].iov_len, 4);

    advance(&q, n);
    for (int i = 0; i < 40; i++)
        assert_int_equal(freed[i], i < 21);
    assert_int_equal(q.head_off, 4);
    assert_int_equal(check_gather(&q, 120 - TAO__IOV_MAX), q.bytes);
    advance(&q, q.bytes);
    for (int i = 0; i < 40; i++)
        assert_int_equal(freed[i], 1);
    assert_empty(&q);
}

/* A chunk in a registered buffer is sent alone: gather stops before it,
 * and gives nothing while it is the head. */
static void test_gather_stops_at_zc(void **state)
{
    tao__outq_t q = {0};
    int freed[2] = {0};
    static int not_a_loop;
    tao_frame_hdr_t h = hdr(4, 0, 5);

    tao__outq_append(&q, owned(2, 10, 1, &freed[0]));
    push(&q, 3, 1, 7);
    tao__chunk_t *zc = tao__chunk_copy(&h, "0123456789", 10);
    assert_non_null(zc);
    zc->zc_loop = (tao__loop_t *)&not_a_loop;
    tao__outq_append(&q, zc);
    ref_frame(&h, "0123456789", 10);
    tao__outq_append(&q, owned(2, 10, 1, &freed[1]));

    size_t n = check_gather(&q, 4);
    assert_int_equal(n, 13 + 11);
    advance(&q, n);
    assert_ptr_equal(q.head, zc);
    assert_int_equal(freed[0], 1);
    check_gather(&q, 0);
    assert_int_equal(freed[1], 0);

    zc->zc_loop = NULL; /* tao__chunk_free would hand the slot back to a loop */
    tao__outq_clear(&q);
    assert_int_equal(freed[1], 1);
    assert_empty(&q);
}

/* ---- advance and clear --------------------------------------------------------- */

static void test_advance_within_chunk(void **state)
{
    tao__outq_t q = {0};
    push(&q, 4, 0, 40);
    tao__chunk_t *head = q.head;

    advance(&q, 5);
    assert_ptr_equal(q.head, head);
    assert_int_equal(q.head_off, 5);
    advance(&q, 0);
    assert_int_equal(q.head_off, 5);
    advance(&q, 30);
    assert_int_equal(q.head_off, 35);
    check_gather(&q, 1);
    tao__outq_clear(&q);
}

static void test_advance_across_chunks(void **state)
{
    tao__outq_t q = {0};
    int freed[3] = {0};
    for (int i = 0; i < 3; i++)
        tao__outq_append(&q, owned(4, 10, 2, &freed[i])); /* 16 bytes each */
    tao__chunk_t *last = q.tail;

    advance(&q, 10);
    advance(&q, 10); /* over the first boundary, 4 bytes into the second */
    assert_int_equal(freed[0], 1);
    assert_int_equal(freed[1], 0);
    assert_int_equal(q.head_off, 4);
    check_gather(&q, 5);

    advance(&q, 12 + 3); /* the rest of the second, 3 into the third */
    assert_int_equal(freed[1], 1);
    assert_ptr_equal(q.head, last);
    assert_ptr_equal(q.tail, last);
    assert_int_equal(q.head_off, 3);
    check_gather(&q, 3);

    advance(&q, 13);
    assert_int_equal(freed[2], 1);
    assert_empty(&q);
}

/* Advancing exactly to the end frees everything; the queue is then as new
 * and takes frames again. */
static void test_advance_to_end(void **state)
{
    tao__outq_t q = {0};
    int freed[2] = {0};
    push(&q, 4, 2, 100);
    tao__outq_append(&q, owned(4, 50, 2, &freed[0]));
    push(&q, 4, 2, 100);
    tao__outq_append(&q, owned(4, 50, 2, &freed[1]));

    advance(&q, 7);
    advance(&q, ref_len - sent);
    assert_int_equal(freed[0], 1);
    assert_int_equal(freed[1], 1);
    assert_empty(&q);

    push(&q, 4, 2, 10);
    assert_non_null(q.head);
    assert_ptr_equal(q.head, q.tail);
    check_gather(&q, 1);
    advance(&q, q.bytes);
    assert_empty(&q);
}

/* Clearing a partly sent queue frees each owned payload once, and leaves
 * the queue empty and reusable. */
static void test_clear_frees_once(void **state)
{
    tao__outq_t q = {0};
    int freed[5] = {0};
    for (int i = 0; i < 5; i++) {
        tao__outq_append(&q, owned(4, 30, 0, &freed[i]));
        push(&q, 4, 0, 8);
    }
    advance(&q, 34 + 12 + 20); /* one owned chunk, one copied, into the next */
    assert_int_equal(freed[0], 1);

    tao__outq_clear(&q);
    for (int i = 0; i < 5; i++)
        assert_int_equal(freed[i], 1);
    assert_empty(&q);
    tao__outq_clear(&q);
    assert_empty(&q);
}

/* ---- a long random run ----------------------------------------------------------- */

/* Queue a random frame; true when it was an owned one that took *freed. */
static bool add_random(tao__outq_t *q, int *freed)
{
    switch (rnd(6)) {
    case 0:
        tao__outq_append(q, owned((uint8_t)rnd(9), 1 + rnd(300), (uint8_t)rnd(5), freed));
        return true;
    case 1:
        push(q, (uint8_t)rnd(TAO_FRAME_PRE_MAX + 1), 0, rnd(3) ? rnd(200) : CHUNK_MIN + rnd(900));
        return false;
    default:
        push(q, (uint8_t)rnd(9), (uint8_t)rnd(TAO_FRAME_POST_MAX + 1), rnd(64));
        return false;
    }
}

/* Frames join while others leave in sends of random sizes (often shorter
 * than one iovec, sometimes all that was gathered), in phases that let the
 * queue grow past TAO__IOV_MAX iovecs and phases that empty it: every
 * gathered byte must match the reference, and every owned payload is freed
 * once. */
static void test_random_splits(void **state)
{
    enum { OWNED_MAX = 4000 };
    static int freed[OWNED_MAX];
    int n_owned = 0, capped = 0, emptied = 0;
    tao__outq_t q = {0};
    struct iovec iov[TAO__IOV_MAX];

    memset(freed, 0, sizeof freed);
    for (int round = 0; round < 3000; round++) {
        for (int i = rnd(4); i > 0 && n_owned < OWNED_MAX; i--)
            n_owned += add_random(&q, &freed[n_owned]);
        size_t avail = check_gather(&q, -1);
        assert_true(avail > 0 || q.bytes == 0);
        capped += tao__outq_gather(&q, iov) == TAO__IOV_MAX;
        bool filling = round / 500 % 2 == 0; /* phases where the queue grows */
        size_t n = rnd(4) == 0 && !filling ? avail : rnd((uint32_t)avail + 1) / (1 + rnd(8));
        if (filling)
            n /= 16;
        advance(&q, n);
        emptied += n && !q.head;
    }
    /* the run met both a full iovec array and an empty queue */
    assert_true(capped > 0);
    assert_true(emptied > 0);
    while (q.bytes)
        advance(&q, check_gather(&q, -1));
    assert_empty(&q);
    for (int i = 0; i < n_owned; i++)
        if (freed[i] != 1)
            fail_msg("owned payload %d freed %d times", i, freed[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chunk_copy_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunk_copy_empty_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunk_owned_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_packs_small_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_fills_chunk_exactly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_starts_new_chunk_when_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_large_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_after_owned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_emsgsize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gather_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gather_head_off_in_each_part, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gather_skips_empty_parts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gather_iov_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gather_stops_at_zc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_advance_within_chunk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_advance_across_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_advance_to_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clear_frees_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_splits, setup, teardown),
    };
    return cmocka_run_group_tests_name("outq", tests, NULL, NULL);
}
