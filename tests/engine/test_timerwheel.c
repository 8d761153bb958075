/* Tests for engine/timerwheel.c: order, never early, FIFO, cancel and add from
 * callbacks, repeats, large jumps, cascading on level boundaries, next()
 * against a brute-force minimum, and a million-timer run. The wheel is pure,
 * so every test drives it with made-up times. */
#include "util/t_util.h"
#include "engine/timerwheel.h"

#include <stdlib.h>
#include <string.h>

#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

#define HOUR_MS (3600ull * 1000)
#define YEAR_MS (365ull * 24 * HOUR_MS)

typedef struct rec rec_t;
typedef void (*action_fn)(rec_t *r, uint64_t now);

struct rec {
    tao__timer_t t;
    size_t id;      /* insertion order */
    uint64_t due;   /* the due it was armed with */
    unsigned fired; /* callback runs */
    uint64_t fire_now;
    action_fn action; /* run from the callback, may be NULL */
    rec_t *other;     /* whatever the action works on */
    uint64_t arg;
};

/* What the callbacks saw, in order. */
#define LOG_MAX 200000
static rec_t *log_rec[LOG_MAX];
static uint64_t log_due[LOG_MAX];
static uint64_t log_now[LOG_MAX];
static size_t log_len;

static tao__wheel_t W;
static uint64_t prev_now; /* now of the advance before the current one */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rnd_in(uint64_t lo, uint64_t hi)
{
    return lo + rnd() % (hi - lo + 1);
}

static void on_fire(tao__timer_t *t, uint64_t now)
{
    rec_t *r = container_of(t, rec_t, t);
    assert_true(log_len < LOG_MAX);
    log_rec[log_len] = r;
    log_due[log_len] = t->due;
    log_now[log_len] = now;
    log_len++;
    r->fired++;
    r->fire_now = now;
    if (r->action)
        r->action(r, now);
}

static int setup(void **state)
{
    log_len = 0;
    prev_now = 0;
    rng_state = 0x7a0c;
    return 0;
}

static void start(uint64_t now)
{
    tao__wheel_init(&W, now);
    prev_now = now;
}

/* Re-arming an armed timer must not init it: that would cut it loose from
 * its list. */
static void arm(rec_t *r, size_t id, uint64_t due, uint64_t period)
{
    if (!tao__timer_armed(&r->t))
        tao__timer_init(&r->t, on_fire);
    r->id = id;
    r->due = due;
    tao__wheel_add(&W, &r->t, due, period);
}

static size_t advance(uint64_t now)
{
    size_t n = tao__wheel_advance(&W, now);
    prev_now = now;
    return n;
}

/* Everything logged since `from` came in due order, FIFO among equal dues,
 * never early, and at the first advance that reached its due. */
static void check_log_order(size_t from)
{
    for (size_t i = from; i < log_len; i++) {
        assert_true(log_due[i] <= log_now[i]);
        if (i > from) {
            assert_true(log_due[i - 1] <= log_due[i]);
            if (log_due[i - 1] == log_due[i])
                assert_true(log_rec[i - 1]->id < log_rec[i]->id);
        }
    }
}

/* ---- basics ------------------------------------------------------------- */

static void test_empty(void **state)
{
    start(1000);
    assert_int_equal(tao__wheel_next(&W), -1);
    assert_int_equal(advance(5000), 0);
    assert_int_equal(tao__wheel_count(&W), 0);
    assert_int_equal(W.now, 5000);
    assert_int_equal(advance(10), 0); /* going back is ignored */
    assert_int_equal(W.now, 5000);
}

static void test_order_random(void **state)
{
    enum { N = 3000 };
    rec_t *r = calloc(N, sizeof *r);
    uint64_t t0 = 987654321;

    start(t0);
    for (size_t i = 0; i < N; i++)
        arm(&r[i], i, t0 + rnd_in(1, 300000), 0);
    assert_int_equal(tao__wheel_count(&W), N);
    for (uint64_t now = t0; now < t0 + 300000;) {
        uint64_t before = now;
        size_t from = log_len;
        now += rnd_in(1, 5000);
        size_t n = advance(now);
        assert_int_equal(n, log_len - from);
        for (size_t i = from; i < log_len; i++)
            assert_true(log_due[i] > before && log_due[i] <= now);
    }
    assert_int_equal(log_len, N);
    check_log_order(0);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(r[i].fired, 1);
    assert_int_equal(tao__wheel_count(&W), 0);
    assert_int_equal(tao__wheel_next(&W), -1);
    free(r);
}

static void test_fired_at_first_advance(void **state)
{
    enum { N = 2000 };
    rec_t *r = calloc(N, sizeof *r);
    uint64_t now = 77;

    start(now);
    for (size_t i = 0; i < N; i++)
        arm(&r[i], i, now + rnd_in(1, 20000), 0);
    while (log_len < N) {
        uint64_t before = now;
        size_t from = log_len;
        now += rnd_in(1, 300);
        advance(now);
        /* Fired now, so not due at the previous advance. */
        for (size_t i = from; i < log_len; i++) {
            assert_true(log_due[i] > before);
            assert_true(log_due[i] <= now);
            assert_int_equal(log_now[i], now);
        }
        /* Not fired, so not due yet. */
        for (size_t i = 0; i < N; i++)
            if (!r[i].fired)
                assert_true(r[i].due > now);
    }
    check_log_order(0);
    free(r);
}

static void test_fifo_equal_dues(void **state)
{
    enum { N = 600 };
    static const uint64_t dues[] = {5, 70, 4100, 300000};
    rec_t *r = calloc(N, sizeof *r);

    start(0);
    /* Half now, half after the cursor has moved closer, so the two halves
     * were first filed on different levels. */
    for (size_t i = 0; i < N / 2; i++)
        arm(&r[i], i, dues[i % 4], 0);
    advance(3);
    for (size_t i = N / 2; i < N; i++)
        arm(&r[i], i, dues[i % 4], 0);
    advance(4099);
    advance(4100);
    advance(300000);
    assert_int_equal(log_len, N);
    check_log_order(0);
    free(r);
}

static void test_past_due_and_readd(void **state)
{
    rec_t a = {0}, b = {0}, c = {0};

    start(100);
    arm(&a, 0, 100, 0); /* due now */
    arm(&b, 1, 20, 0);  /* in the past: counts as due now, after a */
    assert_int_equal(tao__wheel_next(&W), 0);
    arm(&c, 2, 500, 0);
    arm(&c, 2, 150, 0); /* re-adding moves it */
    assert_int_equal(tao__wheel_count(&W), 3);
    assert_int_equal(advance(100), 2);
    assert_ptr_equal(log_rec[0], &a);
    assert_ptr_equal(log_rec[1], &b);
    assert_int_equal(advance(149), 0);
    assert_int_equal(advance(150), 1);
    assert_int_equal(advance(1000), 0);
    assert_int_equal(c.fired, 1);
}

/* ---- cancel ------------------------------------------------------------- */

static void test_cancel_before_fire(void **state)
{
    rec_t a = {0}, b = {0}, c = {0};

    start(0);
    arm(&a, 0, 10, 0);
    arm(&b, 1, 10, 0);
    arm(&c, 2, 100000, 0);
    tao__wheel_cancel(&W, &a.t);
    tao__wheel_cancel(&W, &c.t);
    tao__wheel_cancel(&W, &c.t); /* not armed: a no-op */
    assert_false(tao__timer_armed(&a.t));
    assert_int_equal(tao__wheel_count(&W), 1);
    assert_int_equal(advance(200000), 1);
    assert_int_equal(b.fired, 1);
    assert_int_equal(a.fired + c.fired, 0);
    assert_int_equal(tao__wheel_next(&W), -1);
}

static void cancel_self_and_other(rec_t *r, uint64_t now)
{
    tao__wheel_cancel(&W, &r->t);
    if (r->other)
        tao__wheel_cancel(&W, &r->other->t);
}

static void check_cancel_in_callback(uint64_t other_due, uint64_t advance_to)
{
    rec_t a = {0}, b = {0};

    log_len = 0;
    start(0);
    arm(&a, 0, 10, 0);
    arm(&b, 1, other_due, 0);
    a.action = cancel_self_and_other;
    a.other = &b;
    assert_int_equal(advance(advance_to), 1);
    assert_int_equal(advance(advance_to + 100000), 0);
    assert_int_equal(a.fired, 1);
    assert_int_equal(b.fired, 0);
    assert_int_equal(tao__wheel_count(&W), 0);
}

static void test_cancel_in_callback(void **state)
{
    check_cancel_in_callback(10, 10);   /* same ms, already in the firing batch */
    check_cancel_in_callback(11, 20);   /* later, same advance */
    check_cancel_in_callback(5000, 10); /* later advance, another level */
}

/* ---- add from a callback ------------------------------------------------ */

static void add_three(rec_t *r, uint64_t now)
{
    rec_t *o = r->other; /* o[0]: due now, o[1]: in the past, o[2]: later */
    arm(&o[0], 10, now, 0);
    arm(&o[1], 11, 1, 0);
    arm(&o[2], 12, r->arg, 0);
}

static void test_add_in_callback_same_ms(void **state)
{
    rec_t a = {0}, o[3] = {0};

    start(0);
    arm(&a, 0, 10, 0);
    a.action = add_three;
    a.other = o;
    a.arg = 15;
    /* Fired at 10 == now: the two due by now wait for the next advance. */
    assert_int_equal(advance(10), 1);
    assert_int_equal(tao__wheel_count(&W), 3);
    assert_int_equal(tao__wheel_next(&W), 0);
    assert_int_equal(advance(10), 2);
    assert_ptr_equal(log_rec[1], &o[0]);
    assert_ptr_equal(log_rec[2], &o[1]);
    assert_int_equal(advance(14), 0);
    assert_int_equal(advance(15), 1);
    assert_ptr_equal(log_rec[3], &o[2]);
}

static void test_add_in_callback_jump(void **state)
{
    rec_t a = {0}, o[3] = {0}, z = {0};

    start(0);
    arm(&a, 0, 10, 0);
    arm(&z, 1, 18, 0);
    a.action = add_three;
    a.other = o;
    a.arg = 15;
    /* Fired at 10 during advance(20): "now" (20) and 15 still come in this
     * advance, in order; the past one (1) waits for the next. */
    assert_int_equal(advance(20), 4);
    assert_ptr_equal(log_rec[0], &a);
    assert_ptr_equal(log_rec[1], &o[2]);
    assert_ptr_equal(log_rec[2], &z);
    assert_ptr_equal(log_rec[3], &o[0]);
    assert_int_equal(tao__wheel_next(&W), 0);
    assert_int_equal(advance(20), 1);
    assert_ptr_equal(log_rec[4], &o[1]);
    assert_int_equal(tao__wheel_count(&W), 0);
}

static void readd_self_at_now(rec_t *r, uint64_t now)
{
    tao__wheel_add(&W, &r->t, now, 0);
}

static void readd_self_next_ms(rec_t *r, uint64_t now)
{
    if (r->t.due < r->arg)
        tao__wheel_add(&W, &r->t, r->t.due + 1, 0);
}

static void test_readd_self_in_callback(void **state)
{
    rec_t a = {0}, b = {0};

    start(0);
    /* Re-adding at the millisecond being fired cannot loop: once per advance. */
    arm(&a, 0, 5, 0);
    a.action = readd_self_at_now;
    assert_int_equal(advance(5), 1);
    assert_int_equal(advance(5), 1);
    /* Fired at 5 (deferred), re-added at 6: later than 5, so again now. */
    assert_int_equal(advance(6), 2);
    tao__wheel_cancel(&W, &a.t);
    /* Re-adding one ms later fires again in the same advance, each ms once. */
    arm(&b, 1, 10, 0);
    b.action = readd_self_next_ms;
    b.arg = 1009;
    assert_int_equal(advance(2000), 1000);
    check_log_order(3);
    assert_false(tao__timer_armed(&b.t));
}

/* ---- repeat ------------------------------------------------------------- */

static void cancel_after_three(rec_t *r, uint64_t now)
{
    if (r->fired == 3)
        tao__wheel_cancel(&W, &r->t);
}

static void test_repeat_every_ms(void **state)
{
    rec_t a = {0};

    start(0);
    arm(&a, 0, 5, 7);
    for (uint64_t now = 1; now <= 1000; now++) {
        size_t n = advance(now);
        assert_int_equal(n, now >= 5 && (now - 5) % 7 == 0);
        /* Re-armed before its callback ran, so due is already the next. */
        if (n)
            assert_int_equal(a.t.due, now + 7);
    }
    assert_int_equal(a.fired, (1000 - 5) / 7 + 1);
    assert_true(tao__timer_armed(&a.t));
    assert_int_equal(tao__wheel_count(&W), 1);
}

static void test_repeat_after_jump(void **state)
{
    rec_t a = {0};

    start(0);
    arm(&a, 0, 5, 7);
    /* Hours late: fires once, the missed periods are skipped, phase kept. */
    assert_int_equal(advance(3 * HOUR_MS), 1);
    assert_true(a.t.due > 3 * HOUR_MS);
    assert_true(a.t.due <= 3 * HOUR_MS + 7);
    assert_int_equal((a.t.due - 5) % 7, 0);
    assert_int_equal(advance(a.t.due - 1), 0);
    assert_int_equal(advance(a.t.due), 1);
}

static void test_repeat_cancel_from_callback(void **state)
{
    rec_t a = {0};

    start(0);
    arm(&a, 0, 10, 10);
    a.action = cancel_after_three;
    for (uint64_t now = 0; now <= 200; now += 10)
        advance(now);
    assert_int_equal(a.fired, 3);
    assert_false(tao__timer_armed(&a.t));
    assert_int_equal(tao__wheel_count(&W), 0);
}

/* ---- levels, cascades, jumps -------------------------------------------- */

static uint64_t pow64(unsigned k)
{
    return (uint64_t)1 << (6 * k);
}

/* Dues on and around every level boundary, from an aligned and an unaligned
 * start: each must fire exactly at its due, neither a ms before nor after. */
static void check_boundaries(uint64_t t0)
{
    uint64_t off[64];
    size_t n = 0;
    rec_t r[64];

    static const uint64_t small[] = {1, 62, 63, 64, 65, 127, 128};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++)
        off[n++] = small[i];
    for (unsigned k = 2; k <= 7; k++) {
        off[n++] = pow64(k) - 1;
        off[n++] = pow64(k);
        off[n++] = pow64(k) + 1;
    }
    log_len = 0;
    memset(r, 0, sizeof r);
    start(t0);
    for (size_t i = 0; i < n; i++)
        arm(&r[i], i, t0 + off[i], 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(advance(t0 + off[i] - 1), 0);
        assert_int_equal(advance(t0 + off[i]), 1);
        assert_ptr_equal(log_rec[log_len - 1], &r[i]);
    }
    assert_int_equal(tao__wheel_count(&W), 0);
}

static void test_level_boundaries(void **state)
{
    check_boundaries(0);
    check_boundaries(1);
    check_boundaries(pow64(2) - 1);
    check_boundaries(pow64(3) * 5 + 4001);
}

static void test_boundaries_ms_by_ms(void **state)
{
    rec_t r[16] = {0};
    static const uint64_t dues[] = {63, 64, 65, 127, 128, 4095, 4096, 4097, 4160, 8191, 8192};
    size_t n = sizeof dues / sizeof dues[0];

    start(0);
    for (size_t i = 0; i < n; i++)
        arm(&r[i], i, dues[i], 0);
    for (uint64_t now = 1; now <= 9000; now++) {
        size_t from = log_len;
        advance(now);
        for (size_t i = from; i < log_len; i++)
            assert_int_equal(log_due[i], now);
    }
    assert_int_equal(log_len, n);
}

/* Timers on every level and in the overflow list, then a jump of hours and
 * one of three years: each fires once, in order, and only when due. */
static void test_large_jumps(void **state)
{
    enum { PER = 40, BANDS = TAO__WHEEL_LEVELS + 1 };
    rec_t *r = calloc(PER * BANDS, sizeof *r);
    uint64_t t0 = 5 * YEAR_MS + 12345, ids = 0;

    start(t0);
    for (unsigned band = 0; band < BANDS; band++) {
        uint64_t lo = band ? pow64(band) : 1, hi = pow64(band + 1) - 1;
        if (band == BANDS - 1)
            hi = 3 * YEAR_MS - 1;
        for (unsigned i = 0; i < PER; i++, ids++)
            arm(&r[ids], ids, t0 + rnd_in(lo, hi), 0);
    }
    advance(t0 + HOUR_MS);
    for (size_t i = 0; i < ids; i++)
        assert_int_equal(r[i].fired, r[i].due <= t0 + HOUR_MS);
    advance(t0 + 3 * YEAR_MS);
    assert_int_equal(log_len, ids);
    for (size_t i = 0; i < ids; i++)
        assert_int_equal(r[i].fired, 1);
    check_log_order(0);
    free(r);
}

static void test_far_future(void **state)
{
    rec_t a = {0}, b = {0}, c = {0};

    start(1000);
    arm(&a, 0, 1000 + 100 * YEAR_MS, 0);
    arm(&b, 1, UINT64_MAX - 1, 0);
    arm(&c, 2, UINT64_MAX - 10, 3);
    assert_int_equal(advance(1000 + 3 * YEAR_MS), 0);
    int64_t n = tao__wheel_next(&W);
    assert_true(n > 0 && W.now + (uint64_t)n <= a.due);
    assert_int_equal(advance(a.due - 1), 0);
    assert_int_equal(advance(a.due), 1);
    assert_int_equal(advance(UINT64_MAX - 2), 1); /* c, re-armed at MAX - 1 */
    assert_int_equal(c.t.due, UINT64_MAX - 1);
    assert_int_equal(advance(UINT64_MAX - 1), 2); /* b then c */
    assert_ptr_equal(log_rec[2], &b);
    assert_ptr_equal(log_rec[3], &c);
    tao__wheel_cancel(&W, &c.t);
    assert_int_equal(tao__wheel_count(&W), 0);
}

/* ---- next() ------------------------------------------------------------- */

static uint64_t brute_min(const rec_t *r, size_t n, bool *any)
{
    uint64_t min = UINT64_MAX;
    *any = false;
    for (size_t i = 0; i < n; i++)
        if (tao__timer_armed(&r[i].t) && r[i].t.due < min) {
            min = r[i].t.due;
            *any = true;
        }
    return min;
}

static void check_next(const rec_t *r, size_t n)
{
    bool any;
    uint64_t min = brute_min(r, n, &any);
    int64_t next = tao__wheel_next(&W);
    if (!any) {
        assert_int_equal(next, -1);
        return;
    }
    if (min <= W.now)
        assert_int_equal(next, 0);
    assert_true(next >= 0);
    assert_true(W.now + (uint64_t)next <= min);
}

/* Drive the wheel the way the loop does, sleeping until next() each time,
 * with adds and cancels mixed in; next() is never late, and early wake-ups
 * stay few. */
static void test_next_brute_force(void **state)
{
    enum { N = 400 };
    rec_t *r = calloc(N, sizeof *r);

    start(4242);
    for (size_t i = 0; i < N; i++)
        tao__timer_init(&r[i].t, on_fire);
    check_next(r, N);
    for (int step = 0; step < 20000; step++) {
        rec_t *x = &r[rnd() % N];
        uint64_t span = pow64(rnd_in(1, 4));
        if (rnd() % 3)
            arm(x, (size_t)step + N, W.now + rnd_in(0, span), 0);
        else
            tao__wheel_cancel(&W, &x->t);
        check_next(r, N);
        if (rnd() % 4 == 0) {
            int64_t next = tao__wheel_next(&W);
            if (next >= 0) {
                advance(W.now + (uint64_t)next);
            }
            check_next(r, N);
        }
    }
    while (tao__wheel_next(&W) >= 0) {
        advance(W.now + (uint64_t)tao__wheel_next(&W));
        check_next(r, N);
    }
    assert_int_equal(tao__wheel_count(&W), 0);
    free(r);
}

/* One wake-up per level to cascade through, plus one for the overflow: a
 * timer a century away is not looked at every 2^36 ms on the way. */
static void check_wakeups(uint64_t t0, uint64_t due)
{
    rec_t a = {0};
    size_t wakeups = 0;

    start(t0);
    arm(&a, 0, due, 0);
    while (!a.fired) {
        int64_t next = tao__wheel_next(&W);
        assert_true(next >= 0);
        advance(W.now + (uint64_t)next);
        wakeups++;
    }
    assert_true(wakeups <= TAO__WHEEL_LEVELS + 2);
    assert_int_equal(a.fire_now, a.due);
}

static void test_next_early_is_bounded(void **state)
{
    check_wakeups(0, 3 * YEAR_MS + 777);
    check_wakeups(12345, 100 * YEAR_MS + 1);
    check_wakeups(1, pow64(5) + pow64(4) + 1);
}

/* ---- a million timers ---------------------------------------------------- */

typedef struct big {
    tao__timer_t t;
    uint32_t fired;
    bool cancelled;
} big_t;

static uint64_t big_last_due;
static uintptr_t big_last_addr;
static size_t big_fired;

/* Checks order as it goes: the array is in insertion order, so FIFO among
 * equal dues means ascending addresses. */
static void big_fire(tao__timer_t *t, uint64_t now)
{
    big_t *b = container_of(t, big_t, t);
    assert_true(t->due <= now);
    assert_true(t->due >= big_last_due);
    if (t->due == big_last_due)
        assert_true((uintptr_t)b > big_last_addr);
    big_last_due = t->due;
    big_last_addr = (uintptr_t)b;
    b->fired++;
    big_fired++;
}

static void test_million(void **state)
{
    enum { N = 1000000 };
    const uint64_t t0 = 1000, end = t0 + 10 * 60 * 1000;
    big_t *b = calloc(N, sizeof *b);
    size_t live = 0;

    assert_non_null(b);
    start(t0);
    for (size_t i = 0; i < N; i++) {
        tao__timer_init(&b[i].t, big_fire);
        tao__wheel_add(&W, &b[i].t, rnd_in(t0 + 1, end), 0);
    }
    for (size_t i = 0; i < N; i++)
        if (rnd() % 3 == 0) {
            tao__wheel_cancel(&W, &b[i].t);
            b[i].cancelled = true;
        } else {
            live++;
        }
    assert_int_equal(tao__wheel_count(&W), live);
    big_last_due = 0;
    big_fired = 0;
    for (uint64_t now = t0; now < end;) {
        now += rnd_in(1, 2000);
        advance(now < end ? now : end);
    }
    assert_int_equal(big_fired, live);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(b[i].fired, !b[i].cancelled);
    assert_int_equal(tao__wheel_count(&W), 0);
    free(b);
}

/* ---- misuse ------------------------------------------------------------- */

static void advance_again(rec_t *r, uint64_t now)
{
    r->arg = tao__wheel_advance(&W, now + 1000);
}

static void test_advance_from_callback(void **state)
{
    rec_t a = {0}, b = {0};

    start(0);
    arm(&a, 0, 10, 0);
    arm(&b, 1, 500, 0);
    a.action = advance_again;
    a.arg = 99;
    assert_int_equal(advance(10), 1);
    assert_int_equal(a.arg, 0);
    assert_int_equal(b.fired, 0);
    assert_int_equal(W.now, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_empty, setup),
        cmocka_unit_test_setup(test_order_random, setup),
        cmocka_unit_test_setup(test_fired_at_first_advance, setup),
        cmocka_unit_test_setup(test_fifo_equal_dues, setup),
        cmocka_unit_test_setup(test_past_due_and_readd, setup),
        cmocka_unit_test_setup(test_cancel_before_fire, setup),
        cmocka_unit_test_setup(test_cancel_in_callback, setup),
        cmocka_unit_test_setup(test_add_in_callback_same_ms, setup),
        cmocka_unit_test_setup(test_add_in_callback_jump, setup),
        cmocka_unit_test_setup(test_readd_self_in_callback, setup),
        cmocka_unit_test_setup(test_advance_from_callback, setup),
        cmocka_unit_test_setup(test_repeat_every_ms, setup),
        cmocka_unit_test_setup(test_repeat_after_jump, setup),
        cmocka_unit_test_setup(test_repeat_cancel_from_callback, setup),
        cmocka_unit_test_setup(test_level_boundaries, setup),
        cmocka_unit_test_setup(test_boundaries_ms_by_ms, setup),
        cmocka_unit_test_setup(test_large_jumps, setup),
        cmocka_unit_test_setup(test_far_future, setup),
        cmocka_unit_test_setup(test_next_brute_force, setup),
        cmocka_unit_test_setup(test_next_early_is_bounded, setup),
        cmocka_unit_test_setup(test_million, setup),
    };
    return cmocka_run_group_tests_name("timerwheel", tests, NULL, NULL);
}
