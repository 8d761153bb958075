/* tao-kv-server: a small Redis-compatible key-value server on Tao-C.
 *
 * It speaks RESP (codec/resp.c), so redis-cli and redis-benchmark drive it
 * as they would redis-server: PING, ECHO, SET (EX, PX, NX, XX), GET, DEL,
 * EXISTS, INCR, MGET, MSET, EXPIRE, TTL, DBSIZE, FLUSHALL, COMMAND, and
 * CONFIG GET (what redis-benchmark asks at start). Replies and errors are
 * Redis's, byte for byte.
 *
 * The keyspace: every connection sees one, as with Redis, and connections
 * are spread over loops (and handlers over workers), so it cannot belong to
 * one thread. It is cut into 64 shards by key hash, each a chained hash
 * table behind its own mutex: a request locks one shard (MSET, MGET, DEL
 * and EXISTS lock each key's in turn; MSET locks all it touches, in shard
 * order, so it stays atomic). With one loop and handlers inline, the
 * benchmark's setup, no lock is ever contended. Expired keys are removed
 * when a request touches them. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <tao.h>

#include "examples/common.h"

#define SHARDS 64
#define MAXARGS 1024

/* ---- the keyspace ----------------------------------------------------------- */

typedef struct entry {
    struct entry *next;
    uint64_t hash;
    int64_t expire_at; /* tao_now_ms() at which it expires; 0 = never */
    uint32_t klen, vlen;
    uint8_t data[]; /* key, then value */
} entry_t;

typedef struct shard {
    pthread_mutex_t lock;
    entry_t **slots;
    size_t nslots, count;
} shard_t;

static shard_t shards[SHARDS];

static uint64_t hash_of(const uint8_t *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static shard_t *shard_of(uint64_t h)
{
    return &shards[h % SHARDS];
}

static bool expired(const entry_t *e, uint64_t now)
{
    return e->expire_at && (uint64_t)e->expire_at <= now;
}

/* The entry's link for key in s (locked), dropping it if it has expired;
 * *where is the link to replace or to insert at. */
static entry_t **find(shard_t *s, uint64_t h, const tao_resp_arg_t *k)
{
    if (!s->nslots)
        return NULL;
    entry_t **pp = &s->slots[(h / SHARDS) % s->nslots];
    for (; *pp; pp = &(*pp)->next) {
        entry_t *e = *pp;
        if (e->hash == h && e->klen == k->len && memcmp(e->data, k->p, k->len) == 0) {
            if (expired(e, tao_now_ms())) {
                *pp = e->next;
                free(e);
                s->count--;
                return NULL;
            }
            return pp;
        }
    }
    return NULL;
}

static entry_t *lookup(shard_t *s, uint64_t h, const tao_resp_arg_t *k)
{
    entry_t **pp = find(s, h, k);
    return pp ? *pp : NULL;
}

static int grow(shard_t *s)
{
    size_t n = s->nslots ? s->nslots * 2 : 64;
    entry_t **slots = calloc(n, sizeof *slots);
    if (!slots)
        return -ENOMEM;
    for (size_t i = 0; i < s->nslots; i++) {
        for (entry_t *e = s->slots[i], *next; e; e = next) {
            next = e->next;
            entry_t **head = &slots[(e->hash / SHARDS) % n];
            e->next = *head;
            *head = e;
        }
    }
    free(s->slots);
    s->slots = slots;
    s->nslots = n;
    return 0;
}

/* Set key to value in s (locked), keeping or replacing its expiry. */
static int put(shard_t *s, uint64_t h, const tao_resp_arg_t *k, const void *v, size_t vlen,
               int64_t expire_at)
{
    if (s->count >= s->nslots && grow(s) < 0)
        return -ENOMEM;
    entry_t *e = malloc(sizeof *e + k->len + vlen);
    if (!e)
        return -ENOMEM;
    e->hash = h;
    e->expire_at = expire_at;
    e->klen = (uint32_t)k->len;
    e->vlen = (uint32_t)vlen;
    memcpy(e->data, k->p, k->len);
    memcpy(e->data + k->len, v, vlen);
    entry_t **pp = find(s, h, k);
    if (pp) {
        e->next = (*pp)->next;
        free(*pp);
        *pp = e;
    } else {
        entry_t **head = &s->slots[(h / SHARDS) % s->nslots];
        e->next = *head;
        *head = e;
        s->count++;
    }
    return 0;
}

static bool del(shard_t *s, uint64_t h, const tao_resp_arg_t *k)
{
    entry_t **pp = find(s, h, k);
    if (!pp)
        return false;
    entry_t *e = *pp;
    *pp = e->next;
    free(e);
    s->count--;
    return true;
}

/* ---- replies ---------------------------------------------------------------- */

/* A reply built in one buffer and sent as one message. */
typedef struct reply {
    char *p;
    size_t len, cap;
    bool oom;
    char small[512];
} reply_t;

static void r_init(reply_t *r)
{
    r->p = r->small;
    r->len = 0;
    r->cap = sizeof r->small;
    r->oom = false;
}

static void r_room(reply_t *r, size_t n)
{
    if (r->len + n <= r->cap || r->oom)
        return;
    size_t cap = r->cap * 2 > r->len + n ? r->cap * 2 : r->len + n;
    char *p = r->p == r->small ? malloc(cap) : realloc(r->p, cap);
    if (!p) {
        r->oom = true;
        return;
    }
    if (r->p == r->small)
        memcpy(p, r->small, r->len);
    r->p = p;
    r->cap = cap;
}

static void r_bytes(reply_t *r, const void *p, size_t n)
{
    r_room(r, n);
    if (!r->oom) {
        memcpy(r->p + r->len, p, n);
        r->len += n;
    }
}

static void r_simple(reply_t *r, char kind, const char *text)
{
    size_t n = tao_resp_simple(NULL, 0, kind, text);
    r_room(r, n + 1);
    if (!r->oom)
        r->len += tao_resp_simple(r->p + r->len, n + 1, kind, text);
}

static void r_header(reply_t *r, char kind, long long n)
{
    r_room(r, 24);
    if (!r->oom)
        r->len += tao_resp_header(r->p + r->len, 24, kind, n);
}

static void r_int(reply_t *r, long long v)
{
    r_room(r, 24);
    if (!r->oom)
        r->len += tao_resp_int(r->p + r->len, 24, v);
}

static void r_bulk(reply_t *r, const void *p, size_t n)
{
    r_header(r, '$', (long long)n);
    r_bytes(r, p, n);
    r_bytes(r, "\r\n", 2);
}

static void r_send(tao_conn_t *conn, reply_t *r)
{
    if (r->oom) {
        static const char e[] = "-OOM command not allowed when used memory > 'maxmemory'.\r\n";
        tao_conn_send(conn, EX_MSG, e, sizeof e - 1);
    } else {
        tao_conn_send(conn, EX_MSG, r->p, r->len);
    }
    if (r->p != r->small)
        free(r->p);
}

/* ---- commands ----------------------------------------------------------------- */

typedef struct cmd {
    const char *name;
    int arity; /* as Redis: N exactly, or -N at least N (the name counts) */
    void (*run)(reply_t *r, const tao_resp_arg_t *a, long n);
} cmd_t;

static bool is(const tao_resp_arg_t *a, const char *s)
{
    return a->len == strlen(s) && strncasecmp((const char *)a->p, s, a->len) == 0;
}

/* Redis's string2ll: an optional '-', digits, no leading zero, no sign on
 * zero, in range. */
static bool to_ll(const uint8_t *p, size_t n, long long *out)
{
    if (n == 0 || n > 20)
        return false;
    bool neg = p[0] == '-';
    size_t i = neg;
    if (i == n || (p[i] == '0' && (n - i > 1 || neg)))
        return false;
    unsigned long long v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        unsigned d = p[i] - '0';
        if (v > (ULLONG_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (neg ? v > (unsigned long long)LLONG_MAX + 1 : v > (unsigned long long)LLONG_MAX)
        return false;
    *out = neg ? (long long)(0 - v) : (long long)v;
    return true;
}

static void c_ping(reply_t *r, const tao_resp_arg_t *a, long n)
{
    if (n > 2) {
        r_simple(r, '-', "ERR wrong number of arguments for 'ping' command");
        return;
    }
    if (n == 2)
        r_bulk(r, a[1].p, a[1].len);
    else
        r_simple(r, '+', "PONG");
}

static void c_echo(reply_t *r, const tao_resp_arg_t *a, long n)
{
    r_bulk(r, a[1].p, a[1].len);
}

static void get_one(reply_t *r, const tao_resp_arg_t *k)
{
    uint64_t h = hash_of(k->p, k->len);
    shard_t *s = shard_of(h);
    pthread_mutex_lock(&s->lock);
    entry_t *e = lookup(s, h, k);
    if (e)
        r_bulk(r, e->data + e->klen, e->vlen);
    else
        r_header(r, '$', -1);
    pthread_mutex_unlock(&s->lock);
}

static void c_get(reply_t *r, const tao_resp_arg_t *a, long n)
{
    get_one(r, &a[1]);
}

static void c_set(reply_t *r, const tao_resp_arg_t *a, long n)
{
    int64_t expire_at = 0;
    bool nx = false, xx = false;
    for (long i = 3; i < n; i++) {
        long long v;
        if ((is(&a[i], "EX") || is(&a[i], "PX")) && i + 1 < n && !expire_at) {
            if (!to_ll(a[i + 1].p, a[i + 1].len, &v)) {
                r_simple(r, '-', "ERR value is not an integer or out of range");
                return;
            }
            if (v <= 0 || (is(&a[i], "EX") && v > INT64_MAX / 1000 - (int64_t)tao_now_ms())) {
                r_simple(r, '-', "ERR invalid expire time in 'set' command");
                return;
            }
            expire_at = (int64_t)tao_now_ms() + (is(&a[i], "EX") ? v * 1000 : v);
            i++;
        } else if (is(&a[i], "NX") && !xx) {
            nx = true;
        } else if (is(&a[i], "XX") && !nx) {
            xx = true;
        } else {
            r_simple(r, '-', "ERR syntax error");
            return;
        }
    }
    uint64_t h = hash_of(a[1].p, a[1].len);
    shard_t *s = shard_of(h);
    pthread_mutex_lock(&s->lock);
    bool there = lookup(s, h, &a[1]) != NULL;
    if ((nx && there) || (xx && !there))
        r_header(r, '$', -1);
    else if (put(s, h, &a[1], a[2].p, a[2].len, expire_at) < 0)
        r->oom = true;
    else
        r_simple(r, '+', "OK");
    pthread_mutex_unlock(&s->lock);
}

/* DEL and EXISTS: one key at a time, each under its shard's lock. */
static void count_keys(reply_t *r, const tao_resp_arg_t *a, long n, bool remove)
{
    long long found = 0;
    for (long i = 1; i < n; i++) {
        uint64_t h = hash_of(a[i].p, a[i].len);
        shard_t *s = shard_of(h);
        pthread_mutex_lock(&s->lock);
        found += remove ? del(s, h, &a[i]) : lookup(s, h, &a[i]) != NULL;
        pthread_mutex_unlock(&s->lock);
    }
    r_int(r, found);
}

static void c_del(reply_t *r, const tao_resp_arg_t *a, long n)
{
    count_keys(r, a, n, true);
}

static void c_exists(reply_t *r, const tao_resp_arg_t *a, long n)
{
    count_keys(r, a, n, false);
}

static void c_incr(reply_t *r, const tao_resp_arg_t *a, long n)
{
    uint64_t h = hash_of(a[1].p, a[1].len);
    shard_t *s = shard_of(h);
    pthread_mutex_lock(&s->lock);
    entry_t *e = lookup(s, h, &a[1]);
    long long v = 0;
    if (e && !to_ll(e->data + e->klen, e->vlen, &v)) {
        r_simple(r, '-', "ERR value is not an integer or out of range");
    } else if (v == LLONG_MAX) {
        r_simple(r, '-', "ERR increment or decrement would overflow");
    } else {
        char buf[24];
        int len = snprintf(buf, sizeof buf, "%lld", ++v);
        if (put(s, h, &a[1], buf, (size_t)len, e ? e->expire_at : 0) < 0)
            r->oom = true;
        else
            r_int(r, v);
    }
    pthread_mutex_unlock(&s->lock);
}

static void c_mget(reply_t *r, const tao_resp_arg_t *a, long n)
{
    r_header(r, '*', n - 1);
    for (long i = 1; i < n; i++)
        get_one(r, &a[i]);
}

static int by_shard(const void *x, const void *y)
{
    uintptr_t a = (uintptr_t) * (shard_t *const *)x, b = (uintptr_t) * (shard_t *const *)y;
    return a < b ? -1 : a > b;
}

static void c_mset(reply_t *r, const tao_resp_arg_t *a, long n)
{
    if (n % 2 == 0) {
        r_simple(r, '-', "ERR wrong number of arguments for 'mset' command");
        return;
    }
    /* Every shard touched, locked in one order: atomic, and no deadlock
     * with another MSET. */
    shard_t *locked[SHARDS];
    size_t nl = 0;
    for (long i = 1; i < n; i += 2) {
        shard_t *s = shard_of(hash_of(a[i].p, a[i].len));
        bool have = false;
        for (size_t j = 0; j < nl && !have; j++)
            have = locked[j] == s;
        if (!have)
            locked[nl++] = s;
    }
    qsort(locked, nl, sizeof *locked, by_shard);
    for (size_t j = 0; j < nl; j++)
        pthread_mutex_lock(&locked[j]->lock);
    for (long i = 1; i < n && !r->oom; i += 2) {
        uint64_t h = hash_of(a[i].p, a[i].len);
        if (put(shard_of(h), h, &a[i], a[i + 1].p, a[i + 1].len, 0) < 0)
            r->oom = true;
    }
    for (size_t j = nl; j-- > 0;)
        pthread_mutex_unlock(&locked[j]->lock);
    r_simple(r, '+', "OK");
}

static void c_expire(reply_t *r, const tao_resp_arg_t *a, long n)
{
    long long secs;
    if (!to_ll(a[2].p, a[2].len, &secs)) {
        r_simple(r, '-', "ERR value is not an integer or out of range");
        return;
    }
    if (secs > INT64_MAX / 1000 - (int64_t)tao_now_ms() || secs < INT64_MIN / 1000) {
        r_simple(r, '-', "ERR invalid expire time in 'expire' command");
        return;
    }
    uint64_t h = hash_of(a[1].p, a[1].len);
    shard_t *s = shard_of(h);
    pthread_mutex_lock(&s->lock);
    entry_t *e = lookup(s, h, &a[1]);
    if (e && secs <= 0)
        del(s, h, &a[1]); /* an expiry in the past deletes, as Redis does */
    else if (e)
        e->expire_at = (int64_t)tao_now_ms() + secs * 1000;
    r_int(r, e != NULL);
    pthread_mutex_unlock(&s->lock);
}

static void c_ttl(reply_t *r, const tao_resp_arg_t *a, long n)
{
    uint64_t h = hash_of(a[1].p, a[1].len);
    shard_t *s = shard_of(h);
    pthread_mutex_lock(&s->lock);
    entry_t *e = lookup(s, h, &a[1]);
    if (!e)
        r_int(r, -2);
    else if (!e->expire_at)
        r_int(r, -1);
    else
        r_int(r, (e->expire_at - (int64_t)tao_now_ms() + 500) / 1000);
    pthread_mutex_unlock(&s->lock);
}

static void c_dbsize(reply_t *r, const tao_resp_arg_t *a, long n)
{
    long long total = 0;
    uint64_t now = tao_now_ms();
    for (int i = 0; i < SHARDS; i++) {
        shard_t *s = &shards[i];
        pthread_mutex_lock(&s->lock);
        for (size_t j = 0; j < s->nslots; j++)
            for (entry_t *e = s->slots[j]; e; e = e->next)
                total += !expired(e, now);
        pthread_mutex_unlock(&s->lock);
    }
    r_int(r, total);
}

static void flush_all(void)
{
    for (int i = 0; i < SHARDS; i++) {
        shard_t *s = &shards[i];
        pthread_mutex_lock(&s->lock);
        for (size_t j = 0; j < s->nslots; j++) {
            for (entry_t *e = s->slots[j], *next; e; e = next) {
                next = e->next;
                free(e);
            }
            s->slots[j] = NULL;
        }
        s->count = 0;
        pthread_mutex_unlock(&s->lock);
    }
}

static void c_flushall(reply_t *r, const tao_resp_arg_t *a, long n)
{
    if (n > 2 || (n == 2 && !is(&a[1], "ASYNC") && !is(&a[1], "SYNC"))) {
        r_simple(r, '-', "ERR syntax error");
        return;
    }
    flush_all();
    r_simple(r, '+', "OK");
}

/* COMMAND (and COMMAND DOCS, which redis-cli asks for its hints): none to
 * describe. */
static void c_command(reply_t *r, const tao_resp_arg_t *a, long n)
{
    r_header(r, '*', 0);
}

/* CONFIG GET, as redis-benchmark asks for "save" and "appendonly": this
 * server keeps nothing on disk. */
static void c_config(reply_t *r, const tao_resp_arg_t *a, long n)
{
    if (!is(&a[1], "GET") || n != 3) {
        r_simple(r, '-', "ERR CONFIG subcommand not supported by tao-kv-server");
        return;
    }
    if (is(&a[2], "save") || is(&a[2], "appendonly")) {
        r_header(r, '*', 2);
        r_bulk(r, a[2].p, a[2].len);
        r_bulk(r, is(&a[2], "save") ? "" : "no", is(&a[2], "save") ? 0 : 2);
    } else {
        r_header(r, '*', 0);
    }
}

static const cmd_t commands[] = {
    {"ping", -1, c_ping},         {"echo", 2, c_echo},        {"get", 2, c_get},
    {"set", -3, c_set},           {"del", -2, c_del},         {"exists", -2, c_exists},
    {"incr", 2, c_incr},          {"mget", -2, c_mget},       {"mset", -3, c_mset},
    {"expire", 3, c_expire},      {"ttl", 2, c_ttl},          {"dbsize", 1, c_dbsize},
    {"flushall", -1, c_flushall}, {"command", -1, c_command}, {"config", -2, c_config},
};

static int upto(size_t len, size_t max)
{
    return (int)(len < max ? len : max);
}

/* Redis's words for a command it does not know, byte for byte: up to 128
 * bytes of arguments, each quoted, and CR or LF turned into spaces. */
static void unknown(reply_t *r, const tao_resp_arg_t *a, long n)
{
    char msg[512], args[160] = "";
    size_t used = 0;
    for (long i = 1; i < n && used < 128; i++) {
        int w = snprintf(args + used, sizeof args - used, "'%.*s' ", upto(a[i].len, 128 - used),
                         (const char *)a[i].p);
        if (w > 0)
            used += (size_t)w;
    }
    snprintf(msg, sizeof msg, "ERR unknown command '%.*s', with args beginning with: %s",
             upto(a[0].len, 128), (const char *)a[0].p, args);
    for (char *p = msg; *p; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    r_simple(r, '-', msg);
}

static void on_request(tao_conn_t *conn, const tao_msg_t *msg)
{
    static _Thread_local tao_resp_arg_t a[MAXARGS];
    long n = tao_resp_args(msg->payload, msg->len, a, MAXARGS);
    reply_t r;
    r_init(&r);
    if (n < 0) {
        r_simple(&r, '-', "ERR Protocol error: unbalanced quotes in request");
    } else if (n == 0) {
        return; /* an empty inline line: Redis says nothing */
    } else if (n > MAXARGS) {
        r_simple(&r, '-', "ERR too many arguments for tao-kv-server");
    } else {
        const cmd_t *c = NULL;
        for (size_t i = 0; i < sizeof commands / sizeof commands[0] && !c; i++)
            if (is(&a[0], commands[i].name))
                c = &commands[i];
        if (!c) {
            unknown(&r, a, n);
        } else if ((c->arity > 0 && n != c->arity) || (c->arity < 0 && n < -c->arity)) {
            char m[96];
            snprintf(m, sizeof m, "ERR wrong number of arguments for '%s' command", c->name);
            r_simple(&r, '-', m);
        } else {
            c->run(&r, a, n);
        }
    }
    r_send(conn, &r);
}

/* A request that is not RESP: say so, as Redis does, before the close. */
static void on_error(tao_server_t *srv, tao_conn_t *conn, int err, const char *what)
{
    static const char e[] = "-ERR Protocol error: invalid request\r\n";
    if (conn && (err == -EBADMSG || err == -EMSGSIZE))
        tao_conn_send(conn, EX_MSG, e, sizeof e - 1);
}

int main(int argc, char **argv)
{
    ex_opts_t o = {
        .prog = "tao-kv-server",
        .what = "a Redis-compatible key-value server (redis-cli, redis-benchmark)",
        .takes = EX_SERVER | EX_TLS_SERVER | EX_BUFS,
        .addr = "127.0.0.1:6380",
    };
    if (ex_parse(argc, argv, &o) < 0)
        return 2;
    for (int i = 0; i < SHARDS; i++)
        pthread_mutex_init(&shards[i].lock, NULL);

    tao_codec_t codec;
    tao_resp_opts_t ro = {.mode = TAO_RESP_REQUESTS, .type = EX_MSG};
    tao_codec_resp(&codec, &ro);
    tao_server_config_t cfg = {.codec = &codec, .on_error = on_error};
    int rc = ex_serve(&o, &cfg, on_request);
    flush_all();
    return rc;
}
