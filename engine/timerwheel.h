/* Internal: a hierarchical timing wheel with 1 ms resolution.
 *
 * Pure: the caller passes `now` (monotonic milliseconds) and embeds a
 * tao__timer_t in whatever owns the timer, so adding, cancelling and firing
 * never allocate. Add and cancel are O(1); advance fires every timer whose due
 * time is <= now, in due order (FIFO among timers due in the same
 * millisecond), never early, and skips empty stretches quickly, so a jump of
 * hours costs little. One thread owns a wheel; it is not thread-safe.
 *
 * Rules worth knowing:
 *   - A due already in the past when added counts as due at the wheel's
 *     current time: it fires at the next advance, after the timers already
 *     due then.
 *   - A repeating timer fires at most once per advance. It is re-armed before
 *     its callback runs (so t->due already holds the next due there) at
 *     due + period, or, when a late advance has already passed that, at the
 *     first due + k * period after now: missed periods are skipped, not
 *     replayed, and the phase is kept.
 *   - While advance runs, a callback may add or cancel any timer. A timer it
 *     adds (or re-adds) with a due later than the millisecond being fired but
 *     <= now fires in this same advance, in order; one due at or before the
 *     millisecond being fired waits for the next advance (tao__wheel_next
 *     then returns 0). So no callback can make advance loop forever. */
#ifndef TAO_ENGINE_TIMERWHEEL_H
#define TAO_ENGINE_TIMERWHEEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TAO__WHEEL_BITS 6
#define TAO__WHEEL_SLOTS (1u << TAO__WHEEL_BITS)
#define TAO__WHEEL_LEVELS 6 /* 64^6 ms ~ 2.2 years; beyond: an overflow list */

typedef struct tao__timer tao__timer_t;

/* Runs when t is due, on the thread calling advance. now is the time advance
 * was called with. The callback may add or cancel any timer of the same
 * wheel, t included (re-adding t reschedules it; for a repeating timer,
 * cancelling t stops it), and may free t once it is not armed. It must not
 * call tao__wheel_advance. */
typedef void (*tao__timer_fn)(tao__timer_t *t, uint64_t now);

struct tao__timer {
    tao__timer_t *next, *prev; /* slot list; prev == NULL when not armed */
    uint64_t due;              /* absolute ms */
    uint64_t period;           /* 0: one-shot; else re-armed at due + period */
    tao__timer_fn fn;
};

typedef struct tao__timer_list {
    tao__timer_t head; /* sentinel; its due names the wheel slot, if any */
} tao__timer_list_t;

typedef struct tao__wheel {
    uint64_t now;          /* time of the last advance (or init) */
    uint64_t cursor;       /* the wheel's position: timers are filed relative to it */
    uint64_t overflow_min; /* earliest due in the overflow list (may be stale-low) */
    bool advancing;        /* inside tao__wheel_advance */
    size_t count;          /* armed timers */
    uint64_t occupied[TAO__WHEEL_LEVELS]; /* bit s set: slot s of that level non-empty */
    tao__timer_list_t slots[TAO__WHEEL_LEVELS][TAO__WHEEL_SLOTS];
    tao__timer_list_t overflow;
    tao__timer_list_t firing;   /* timers being fired by the current advance */
    tao__timer_list_t deferred; /* added during an advance, due at or before the cursor */
} tao__wheel_t;

void tao__wheel_init(tao__wheel_t *w, uint64_t now);

/* Prepare a timer before its first use. */
void tao__timer_init(tao__timer_t *t, tao__timer_fn fn);

/* Arm t to fire at absolute time due (a due in the past fires at the next
 * advance), then every period ms if period > 0. Re-arming an armed timer
 * moves it. */
void tao__wheel_add(tao__wheel_t *w, tao__timer_t *t, uint64_t due, uint64_t period);

/* Disarm t; a no-op when it is not armed. */
void tao__wheel_cancel(tao__wheel_t *w, tao__timer_t *t);

static inline bool tao__timer_armed(const tao__timer_t *t)
{
    return t->prev != NULL;
}

/* Fire every timer due at or before now. Returns how many callbacks ran.
 * now below the wheel's current time is treated as the current time. Called
 * from inside a callback, it does nothing and returns 0. */
size_t tao__wheel_advance(tao__wheel_t *w, uint64_t now);

/* Milliseconds from the wheel's current time until it next needs advancing:
 * 0 when a timer is already due, -1 when no timer is armed. May be earlier
 * than the next due time (when a higher level must cascade), never later. */
int64_t tao__wheel_next(const tao__wheel_t *w);

static inline size_t tao__wheel_count(const tao__wheel_t *w)
{
    return w->count;
}

#endif
