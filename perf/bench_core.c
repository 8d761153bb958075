/* tao-bench-core: micro-benchmarks of the pure core, no sockets.
 *
 * Measures the timing wheel (add, re-arm, cancel, and firing through advance
 * both a millisecond at a time and in one long jump) and the TLV decoder
 * over a buffer of back-to-back frames. Each measurement repeats whole rounds
 * until it has done --ops operations or spent --seconds, whichever comes
 * first, so a run is always bounded in time. Prints one table. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/timerwheel.h"
#include "tao/codec.h"

typedef struct opts {
    double seconds; /* per measurement */
    uint64_t ops;   /* per measurement */
    size_t timers;  /* armed at once */
} opts_t;

typedef struct result {
    uint64_t ops;
    double secs;
    uint64_t bytes; /* 0 when the measurement is not about bytes */
} result_t;

static uint64_t rng_state = 0x5eed;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool done(const opts_t *o, const result_t *r, double t0)
{
    return r->ops >= o->ops || now_s() - t0 >= o->seconds;
}

static void print_row(const char *name, const result_t *r)
{
    double rate = r->secs > 0 ? (double)r->ops / r->secs : 0;
    printf("%-34s %12llu %8.3f %10.2f M/s", name, (unsigned long long)r->ops, r->secs, rate / 1e6);
    if (r->bytes)
        printf(" %9.0f MB/s", (double)r->bytes / r->secs / 1e6);
    printf("\n");
}

/* ---- timing wheel ---------------------------------------------------------- */

static size_t fired;

static void on_fire(tao__timer_t *t, uint64_t now)
{
    fired++;
}

typedef struct wheel_bench {
    tao__wheel_t *w;
    tao__timer_t *t;
    uint64_t *due; /* offsets within 10 minutes, like connection timeouts */
    size_t n;
} wheel_bench_t;

/* Time only the phase selected by which: 0 add, 1 re-arm (add an armed
 * timer elsewhere), 2 cancel. The other phases run untimed so every round
 * starts from the same state. */
static result_t wheel_ops(const opts_t *o, wheel_bench_t *b, int which)
{
    result_t r = {0};
    double start = now_s();
    while (!done(o, &r, start)) {
        uint64_t base = b->w->now;
        double t0 = now_s(), t1, t2, t3;
        for (size_t i = 0; i < b->n; i++)
            tao__wheel_add(b->w, &b->t[i], base + b->due[i], 0);
        t1 = now_s();
        for (size_t i = 0; i < b->n; i++)
            tao__wheel_add(b->w, &b->t[i], base + b->due[b->n - 1 - i], 0);
        t2 = now_s();
        for (size_t i = 0; i < b->n; i++)
            tao__wheel_cancel(b->w, &b->t[i]);
        t3 = now_s();
        r.secs += which == 0 ? t1 - t0 : which == 1 ? t2 - t1 : t3 - t2;
        r.ops += b->n;
        tao__wheel_advance(b->w, base + 1);
    }
    return r;
}

/* Arm every timer, then advance to the last due either one millisecond at a
 * time (what a busy loop does) or in one call (a loop that slept). */
static result_t wheel_fire(const opts_t *o, wheel_bench_t *b, bool one_jump)
{
    result_t r = {0};
    double start = now_s();
    while (!done(o, &r, start)) {
        uint64_t base = b->w->now, end = base + 10 * 60 * 1000;
        double t0 = now_s();
        for (size_t i = 0; i < b->n; i++)
            tao__wheel_add(b->w, &b->t[i], base + 1 + b->due[i], 0);
        fired = 0;
        if (one_jump)
            tao__wheel_advance(b->w, end + 1);
        for (uint64_t now = base + 1; !one_jump && now <= end + 1; now++)
            tao__wheel_advance(b->w, now);
        r.secs += now_s() - t0;
        r.ops += fired;
    }
    return r;
}

static int bench_wheel(const opts_t *o)
{
    wheel_bench_t b = {.n = o->timers};
    b.w = malloc(sizeof *b.w);
    b.t = calloc(b.n, sizeof *b.t);
    b.due = malloc(b.n * sizeof *b.due);
    if (!b.w || !b.t || !b.due) {
        fprintf(stderr, "tao-bench-core: out of memory for %zu timers\n", b.n);
        return -ENOMEM;
    }
    tao__wheel_init(b.w, 1000);
    for (size_t i = 0; i < b.n; i++) {
        tao__timer_init(&b.t[i], on_fire);
        b.due[i] = rnd() % (10 * 60 * 1000);
    }
    char name[64];
    result_t r = wheel_ops(o, &b, 0);
    snprintf(name, sizeof name, "wheel add (%zu armed)", b.n);
    print_row(name, &r);
    r = wheel_ops(o, &b, 1);
    print_row("wheel re-arm (move armed timer)", &r);
    r = wheel_ops(o, &b, 2);
    print_row("wheel cancel", &r);
    r = wheel_fire(o, &b, false);
    print_row("wheel add+fire, advance per ms", &r);
    r = wheel_fire(o, &b, true);
    print_row("wheel add+fire, one 10 min jump", &r);
    free(b.due);
    free(b.t);
    free(b.w);
    return 0;
}

/* ---- TLV decode ------------------------------------------------------------ */

/* A buffer of back-to-back TLV frames of one payload size, about 32 MiB so
 * it does not sit in cache any more than a stream of receives would. */
static uint8_t *tlv_buffer(const tao_codec_t *c, size_t payload, size_t *len)
{
    size_t frame = TAO_TLV_HEADER_LEN + payload, count = (32u << 20) / frame;
    uint8_t *buf = malloc(count * frame);
    if (!buf)
        return NULL;
    for (size_t i = 0; i < count; i++) {
        tao_frame_hdr_t hdr;
        uint8_t *p = buf + i * frame;
        c->encode(c, (int32_t)(i & 0xff), payload, &hdr);
        memcpy(p, hdr.pre, hdr.pre_len);
        memset(p + hdr.pre_len, (int)i, payload);
    }
    *len = count * frame;
    return buf;
}

static result_t tlv_decode_all(const opts_t *o, const tao_codec_t *c, const uint8_t *buf,
                               size_t len, uint64_t *check)
{
    result_t r = {0};
    double start = now_s();
    while (!done(o, &r, start)) {
        double t0 = now_s();
        for (size_t off = 0; off < len;) {
            tao_frame_t f;
            ssize_t n = c->decode(c, buf + off, len - off, &f);
            if (n <= 0)
                break;
            *check += (uint64_t)f.type + f.len + f.payload[0];
            off += (size_t)n;
            r.ops++;
        }
        r.secs += now_s() - t0;
        r.bytes += len;
    }
    return r;
}

static int bench_tlv(const opts_t *o)
{
    static const size_t sizes[] = {64, 4096};
    tao_codec_t codec;
    uint64_t check = 0;

    tao_codec_tlv(&codec, 0);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t len;
        uint8_t *buf = tlv_buffer(&codec, sizes[i], &len);
        if (!buf) {
            fprintf(stderr, "tao-bench-core: out of memory for the TLV buffer\n");
            return -ENOMEM;
        }
        result_t r = tlv_decode_all(o, &codec, buf, len, &check);
        char name[64];
        snprintf(name, sizeof name, "tlv decode, %zu B payload (frames)", sizes[i]);
        print_row(name, &r);
        free(buf);
    }
    /* The checksum is printed so the compiler cannot drop the decoding. */
    printf("(tlv MB/s counts stream bytes framed: decode reads the 8-byte header and hands\n"
           " the payload on in place, so it does not grow with payload size; checksum %llu)\n",
           (unsigned long long)check);
    return 0;
}

/* ---- main ------------------------------------------------------------------- */

static void usage(void)
{
    fprintf(stderr, "usage: tao-bench-core [--seconds S] [--ops N] [--timers N]\n"
                    "  --seconds S  at most S seconds per measurement (default 1)\n"
                    "  --ops N      at most N operations per measurement (default 10000000)\n"
                    "  --timers N   timers armed at once in the wheel runs (default 1000000)\n");
}

static int parse(int argc, char **argv, opts_t *o)
{
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return -EINVAL;
        if (strcmp(argv[i], "--seconds") == 0)
            o->seconds = strtod(v, NULL);
        else if (strcmp(argv[i], "--ops") == 0)
            o->ops = strtoull(v, NULL, 10);
        else if (strcmp(argv[i], "--timers") == 0)
            o->timers = strtoull(v, NULL, 10);
        else
            return -EINVAL;
        i++;
    }
    return o->seconds > 0 && o->ops > 0 && o->timers > 0 ? 0 : -EINVAL;
}

int main(int argc, char **argv)
{
    opts_t o = {.seconds = 1.0, .ops = 10000000, .timers = 1000000};
    if (parse(argc, argv, &o) < 0) {
        usage();
        return 2;
    }
    printf("%-34s %12s %8s %14s\n", "benchmark", "ops", "seconds", "rate");
    if (bench_wheel(&o) < 0 || bench_tlv(&o) < 0)
        return 1;
    return 0;
}
