/* The hierarchical timing wheel: six levels of 64 slots, 1 ms apart at the
 * bottom, and an overflow list for what lies beyond 64^6 ms.
 *
 * A timer sits at the level of the highest bit where its due time differs
 * from the wheel's cursor (six bits per level), in the slot named by its
 * due's bits at that level. Every timer at level L thus shares the cursor's
 * bits above L and lies after the cursor's slot there, which gives two facts
 * the rest relies on: every timer of a lower level is due before any slot of
 * a higher level begins, and inside a level the lowest occupied slot comes
 * first. So the next event is one ctz on the lowest non-empty occupancy
 * bitmap. Advancing moves the cursor straight to that slot's start: a level-0
 * slot holds exactly the timers due at that millisecond and fires them; a
 * higher slot is emptied and its timers placed again relative to the new
 * cursor, which drops each at least one level. Empty stretches cost nothing,
 * so a jump costs the timers due plus the non-empty slots met on the way,
 * and each timer cascades at most once per level. The overflow list is
 * looked at again when the cursor reaches the 2^36 ms block of its earliest
 * timer, and only then.
 *
 * Lists are intrusive and circular, with a sentinel per list; a slot's
 * sentinel carries the slot's number in its due field, so cancel can clear
 * the occupancy bit of the slot it empties without knowing where t was. */
#include "engine/timerwheel.h"

#include <assert.h>

#define SLOT_MASK (TAO__WHEEL_SLOTS - 1)
#define SPAN(level) ((uint64_t)1 << (TAO__WHEEL_BITS * (level)))
#define BIT(slot) ((uint64_t)1 << (slot))
#define NO_SLOT UINT64_MAX /* sentinel due of lists without an occupancy bit */

/* The next thing advance has to do: fire or cascade one slot. */
typedef struct expiry {
    uint64_t at;    /* when: the slot's start */
    unsigned level; /* TAO__WHEEL_LEVELS: the overflow list */
    unsigned slot;
} expiry_t;

static void list_init(tao__timer_list_t *l, uint64_t code)
{
    l->head.next = l->head.prev = &l->head;
    l->head.due = code;
    l->head.period = 0;
    l->head.fn = NULL;
}

static bool list_empty(const tao__timer_list_t *l)
{
    return l->head.next == &l->head;
}

static void link_tail(tao__timer_list_t *l, tao__timer_t *t)
{
    t->prev = l->head.prev;
    t->next = &l->head;
    l->head.prev->next = t;
    l->head.prev = t;
}

/* Move all of src, in order, to the end of dst. */
static void splice(tao__timer_list_t *dst, tao__timer_list_t *src)
{
    if (list_empty(src))
        return;
    tao__timer_t *first = src->head.next, *last = src->head.prev;
    first->prev = dst->head.prev;
    dst->head.prev->next = first;
    last->next = &dst->head;
    dst->head.prev = last;
    src->head.next = src->head.prev = &src->head;
}

/* When t was the last timer of its list, both neighbours are that list's
 * sentinel, which says whether a slot just became empty. */
static void unlink_timer(tao__wheel_t *w, tao__timer_t *t)
{
    tao__timer_t *p = t->prev, *n = t->next;
    p->next = n;
    n->prev = p;
    t->next = t->prev = NULL;
    if (p == n && p->due != NO_SLOT)
        w->occupied[p->due / TAO__WHEEL_SLOTS] &= ~BIT(p->due % TAO__WHEEL_SLOTS);
}

/* Levels past the top one (up to 10) mean the overflow list. Or-ing in the
 * low bits makes equal times level 0 instead of a clz of zero. */
static unsigned level_of(uint64_t cursor, uint64_t due)
{
    uint64_t diff = (cursor ^ due) | SLOT_MASK;
    return (unsigned)(63 - __builtin_clzll(diff)) / TAO__WHEEL_BITS;
}

/* File t relative to the cursor. A due in the past is filed as due at the
 * cursor, which is what keeps "lower level means earlier" true. */
static void place(tao__wheel_t *w, tao__timer_t *t)
{
    uint64_t due = t->due > w->cursor ? t->due : w->cursor;
    unsigned level = level_of(w->cursor, due);
    if (level >= TAO__WHEEL_LEVELS) {
        link_tail(&w->overflow, t);
        if (due < w->overflow_min)
            w->overflow_min = due;
        return;
    }
    unsigned slot = (unsigned)(due >> (TAO__WHEEL_BITS * level)) & SLOT_MASK;
    link_tail(&w->slots[level][slot], t);
    w->occupied[level] |= BIT(slot);
}

void tao__wheel_init(tao__wheel_t *w, uint64_t now)
{
    w->now = w->cursor = now;
    w->count = 0;
    w->advancing = false;
    w->overflow_min = UINT64_MAX;
    for (unsigned level = 0; level < TAO__WHEEL_LEVELS; level++) {
        w->occupied[level] = 0;
        for (unsigned slot = 0; slot < TAO__WHEEL_SLOTS; slot++)
            list_init(&w->slots[level][slot], level * TAO__WHEEL_SLOTS + slot);
    }
    list_init(&w->overflow, NO_SLOT);
    list_init(&w->firing, NO_SLOT);
    list_init(&w->deferred, NO_SLOT);
}

void tao__timer_init(tao__timer_t *t, tao__timer_fn fn)
{
    t->next = t->prev = NULL;
    t->due = 0;
    t->period = 0;
    t->fn = fn;
}

void tao__wheel_add(tao__wheel_t *w, tao__timer_t *t, uint64_t due, uint64_t period)
{
    tao__wheel_cancel(w, t);
    t->due = due;
    t->period = period;
    w->count++;
    /* Filing it at the millisecond being fired would let a callback that
     * re-adds itself keep advance busy forever. */
    if (w->advancing && due <= w->cursor)
        link_tail(&w->deferred, t);
    else
        place(w, t);
}

void tao__wheel_cancel(tao__wheel_t *w, tao__timer_t *t)
{
    if (!tao__timer_armed(t))
        return;
    unlink_timer(w, t);
    w->count--;
}

/* The overflow is due when the cursor reaches the 2^36 ms block of its
 * earliest timer; overflow_min may be stale-low after a cancel, which only
 * costs an early look. The wheel is empty whenever this is asked. */
static uint64_t overflow_at(const tao__wheel_t *w)
{
    uint64_t top = SPAN(TAO__WHEEL_LEVELS);
    uint64_t next_block = (w->cursor | (top - 1)) + 1;
    uint64_t min_block = w->overflow_min & ~(top - 1);
    return min_block > next_block ? min_block : next_block;
}

static bool next_expiry(const tao__wheel_t *w, expiry_t *e)
{
    for (unsigned level = 0; level < TAO__WHEEL_LEVELS; level++) {
        uint64_t bits = w->occupied[level];
        if (!bits)
            continue;
        unsigned slot = (unsigned)__builtin_ctzll(bits);
        assert(slot >= ((w->cursor >> (TAO__WHEEL_BITS * level)) & SLOT_MASK));
        e->at = (w->cursor & ~(SPAN(level + 1) - 1)) + slot * SPAN(level);
        e->level = level;
        e->slot = slot;
        return true;
    }
    if (list_empty(&w->overflow))
        return false;
    e->at = overflow_at(w);
    e->level = TAO__WHEEL_LEVELS;
    e->slot = 0;
    return true;
}

/* Re-file every timer of a slot (or of the overflow list) relative to the
 * cursor, now at the slot's start; each lands on a lower level, or back in
 * the overflow list when it is still too far away. */
static void cascade(tao__wheel_t *w, unsigned level, unsigned slot)
{
    tao__timer_list_t moving;
    list_init(&moving, NO_SLOT);
    if (level < TAO__WHEEL_LEVELS) {
        splice(&moving, &w->slots[level][slot]);
        w->occupied[level] &= ~BIT(slot);
    } else {
        splice(&moving, &w->overflow);
        w->overflow_min = UINT64_MAX;
    }
    while (!list_empty(&moving)) {
        tao__timer_t *t = moving.head.next;
        unlink_timer(w, t);
        place(w, t);
    }
}

/* Next due of a repeating timer that fired during advance(now). */
static uint64_t next_due(const tao__timer_t *t, uint64_t now)
{
    uint64_t next, periods = 1, skip;
    if (t->due < now)
        periods = (now - t->due) / t->period + 1;
    if (__builtin_mul_overflow(periods, t->period, &skip) ||
        __builtin_add_overflow(t->due, skip, &next))
        return UINT64_MAX;
    return next;
}

/* The slot is moved to w->firing first so that a callback can cancel a timer
 * still waiting its turn, and so that anything added meanwhile goes
 * elsewhere. A repeating timer is re-armed before its callback runs, so the
 * callback can stop it with a cancel or move it with an add. */
static size_t fire_slot(tao__wheel_t *w, unsigned slot, uint64_t now)
{
    size_t fired = 0;
    splice(&w->firing, &w->slots[0][slot]);
    w->occupied[0] &= ~BIT(slot);
    while (!list_empty(&w->firing)) {
        tao__timer_t *t = w->firing.head.next;
        tao__wheel_cancel(w, t);
        if (t->period)
            tao__wheel_add(w, t, next_due(t, now), t->period);
        fired++;
        t->fn(t, now);
    }
    return fired;
}

size_t tao__wheel_advance(tao__wheel_t *w, uint64_t now)
{
    size_t fired = 0;
    expiry_t e;

    if (w->advancing)
        return 0;
    if (now < w->now)
        now = w->now;
    w->now = now;
    w->advancing = true;
    while (next_expiry(w, &e) && e.at <= now) {
        w->cursor = e.at;
        if (e.level == 0)
            fired += fire_slot(w, e.slot, now);
        else
            cascade(w, e.level, e.slot);
    }
    w->cursor = now;
    w->advancing = false;
    /* Everything due by now has fired, so this slot is empty: the deferred
     * timers become the first due at the next advance. */
    if (!list_empty(&w->deferred)) {
        splice(&w->slots[0][now & SLOT_MASK], &w->deferred);
        w->occupied[0] |= BIT(now & SLOT_MASK);
    }
    return fired;
}

int64_t tao__wheel_next(const tao__wheel_t *w)
{
    expiry_t e;

    if (w->count == 0)
        return -1;
    if (!list_empty(&w->deferred) || !list_empty(&w->firing))
        return 0;
    if (!next_expiry(w, &e))
        return -1;
    if (e.at <= w->now)
        return 0;
    return e.at - w->now > INT64_MAX ? INT64_MAX : (int64_t)(e.at - w->now);
}
