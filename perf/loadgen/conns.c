/* tao-loadgen connections: everything that runs on Tao-C's client loops.
 *
 * Handlers run inline on the loops (no worker hop), so one loop can drive
 * thousands of connections. Each reply is judged (type, length, every
 * payload byte, then its place in the connection's sequence), timed against
 * the send time kept in the connection's ring, and answered by the next
 * frame, which keeps `depth` frames in flight per connection.
 *
 * A custom codec hands the handler whole TLV frames, header included, under
 * one message type: a reply whose type was corrupted must still reach the
 * judge instead of being skipped as an unknown type. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perf/loadgen/lg.h"

static tao_decode_fn tlv_decode;
static int32_t all_as; /* the type every frame is delivered as */

static ssize_t whole_frame_decode(const tao_codec_t *codec, const uint8_t *buf, size_t len,
                                  tao_frame_t *out)
{
    ssize_t n = tlv_decode(codec, buf, len, out);
    if (n > 0) {
        out->type = all_as;
        out->payload = buf;
        out->len = (size_t)n;
    }
    return n;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The calling loop thread's counters, made on its first callback. */
static lg_thread_t *thread_state(lg_run_t *r)
{
    static _Thread_local lg_thread_t *mine;
    if (mine)
        return mine;
    lg_thread_t *t = calloc(1, sizeof *t);
    uint8_t *scratch = t ? malloc(r->o->size) : NULL;
    unsigned i = atomic_fetch_add(&r->nthreads, 1);
    if (!scratch || i >= LG_MAX_THREADS) {
        fprintf(stderr, "tao-loadgen: out of memory for a loop's counters\n");
        exit(1);
    }
    t->scratch = scratch;
    r->threads[i] = t;
    mine = t;
    return t;
}

static void count(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

static int phase(const lg_run_t *r)
{
    return atomic_load_explicit(&r->phase, memory_order_relaxed);
}

static void publish(lg_conn_t *c, uint64_t now)
{
    atomic_store_explicit(&c->inflight_pub, c->inflight, memory_order_relaxed);
    atomic_store_explicit(&c->last_ns, now, memory_order_relaxed);
}

/* ---- sending -------------------------------------------------------------- */

static int send_next(lg_conn_t *c, tao_conn_t *conn, lg_thread_t *t, uint64_t now)
{
    const lg_opts_t *o = c->run->o;
    uint64_t seq = c->next_seq;
    lg_payload_fill(t->scratch, o->size, c->cid, seq);
    int rc = tao_conn_send(conn, o->type, t->scratch, o->size);
    if (rc < 0) {
        count(&c->run->err.send, 1);
        return rc;
    }
    c->sent_ns[seq % o->depth] = now;
    c->next_seq++;
    c->inflight++;
    return 0;
}

/* Top the connection up to depth frames in flight. */
static void refill(lg_conn_t *c, tao_conn_t *conn, lg_thread_t *t, uint64_t now)
{
    while (c->inflight < c->run->o->depth && send_next(c, conn, t, now) == 0)
        ;
    publish(c, now);
}

/* ---- judging a reply ------------------------------------------------------ */

/* Frames the server skipped are given up as missing, which frees their
 * places in the window so the connection keeps its depth. */
static void settle(lg_conn_t *c, uint32_t n)
{
    c->inflight = n < c->inflight ? c->inflight - n : 0;
}

/* Returns true when the reply counts as an answered message. */
static bool judge(lg_conn_t *c, lg_thread_t *t, const tao_msg_t *msg, uint64_t now)
{
    lg_run_t *r = c->run;
    const lg_opts_t *o = r->o;
    const uint8_t *f = msg->payload;
    uint32_t cid;
    uint64_t seq, skipped;

    if ((int32_t)le32(f) != o->type || le32(f + 4) != o->size ||
        lg_payload_check(f + TAO_TLV_HEADER_LEN, msg->len - TAO_TLV_HEADER_LEN, &cid, &seq) < 0 ||
        cid != c->cid) {
        /* Nothing in it can be trusted: take it for the reply that was
         * due, which keeps one bad byte from looking like lost frames. */
        count(&r->err.corrupted, 1);
        c->seq.expect++;
        settle(c, 1);
        return false;
    }
    switch (lg_seq_reply(&c->seq, seq, c->next_seq, &skipped)) {
    case LG_GAP:
        /* The frames skipped are missing; this reply itself is fine. */
        count(&r->err.skipped, skipped);
        settle(c, (uint32_t)skipped);
        /* fall through */
    case LG_IN_ORDER:
        settle(c, 1);
        if (phase(r) == LG_MEASURE) {
            uint64_t sent = o->mode == LG_STORM ? c->start_ns : c->sent_ns[seq % o->depth];
            lg_hist_record(&t->hist, now - sent);
        }
        return true;
    case LG_LATE:
        count(&r->err.late, 1);
        return false;
    case LG_DUP:
        count(&r->err.dup, 1);
        return false;
    case LG_BOGUS:
    default:
        count(&r->err.corrupted, 1);
        return false;
    }
}

static void on_reply(tao_conn_t *conn, const tao_msg_t *msg)
{
    lg_conn_t *c = tao_conn_data(conn);
    lg_run_t *r = c->run;
    lg_thread_t *t = thread_state(r);
    uint64_t now = lg_now_ns();
    int ph = phase(r);

    bool ok = judge(c, t, msg, now);
    __atomic_store_n(&t->replies, t->replies + 1, __ATOMIC_RELAXED);
    if (ok && ph == LG_MEASURE) {
        __atomic_store_n(&t->msgs, t->msgs + 1, __ATOMIC_RELAXED);
        __atomic_store_n(&t->bytes, t->bytes + r->o->size, __ATOMIC_RELAXED);
    }
    switch (r->o->mode) {
    case LG_ECHO:
        if (ph < LG_DRAIN)
            refill(c, conn, t, now);
        else
            publish(c, now);
        break;
    case LG_STORM:
        publish(c, now);
        atomic_store(&c->state, LG_CLOSING);
        tao_conn_close(conn);
        break;
    case LG_IDLE:
        publish(c, now);
        atomic_fetch_add(&r->echoed, 1);
        break;
    }
}

/* ---- connection events ------------------------------------------------------ */

static int on_connect(tao_conn_t *conn)
{
    lg_conn_t *c = tao_conn_data(conn);
    lg_run_t *r = c->run;
    lg_thread_t *t = thread_state(r);
    uint64_t now = lg_now_ns();

    atomic_store(&c->state, LG_UP);
    atomic_fetch_add(&r->up, 1);
    if (r->o->mode == LG_ECHO && phase(r) < LG_DRAIN) {
        refill(c, conn, t, now);
    } else if (r->o->mode != LG_ECHO) {
        send_next(c, conn, t, now);
        publish(c, now);
    }
    return 0;
}

static void on_close(tao_conn_t *conn)
{
    lg_conn_t *c = tao_conn_data(conn);
    lg_run_t *r = c->run;
    int st = atomic_load(&c->state);

    if (st == LG_CLOSING || phase(r) == LG_DONE) {
        /* Ours; what is still outstanding was counted when the run ended. */
        atomic_store(&c->state, LG_CLOSED);
    } else if (st == LG_UP && r->o->allow_lost) {
        /* A server behind a balancer went away: its connections go with
         * it. Counted apart, so that the run still judges the others. */
        count(&r->err.lost_conns, 1);
        count(&r->err.lost_frames, c->inflight);
        atomic_store(&c->state, LG_DROPPED);
    } else if (st == LG_UP) {
        /* The server closed or reset it while we were talking. */
        count(&r->err.closed, 1);
        count(&r->err.unanswered, c->inflight);
        atomic_store(&c->state, LG_DROPPED);
    } else {
        atomic_store(&c->state, LG_FAILED); /* on_error counted the connect */
        atomic_fetch_add(&r->failed, 1);
    }
    c->inflight = 0;
    publish(c, lg_now_ns());
    atomic_fetch_add(&r->finished, 1);
    /* Storm: this cycle is over, the next begins, on this same slot. */
    if (r->o->mode == LG_STORM && st == LG_CLOSING && phase(r) < LG_DRAIN)
        lg_conn_open(r, c);
}

static void on_error(tao_client_t *cl, tao_conn_t *conn, int err, const char *what)
{
    lg_run_t *r = tao_client_data(cl);
    lg_conn_t *c = conn ? tao_conn_data(conn) : NULL;
    static _Atomic unsigned shown;

    if (c && atomic_load(&c->state) == LG_CONNECTING)
        count(&r->err.connect, 1);
    else if (err == -EMSGSIZE || err == -EBADMSG)
        count(&r->err.corrupted, 1); /* a frame header the decoder refused */
    if (atomic_fetch_add(&shown, 1) < 5)
        fprintf(stderr, "tao-loadgen: %s: %s\n", what, tao_strerror(err));
}

/* ---- the client group --------------------------------------------------------- */

void lg_conn_open(lg_run_t *r, lg_conn_t *c)
{
    uint64_t now = lg_now_ns();
    c->cid = atomic_fetch_add(&r->next_cid, 1);
    c->next_seq = 0;
    c->inflight = 0;
    memset(&c->seq, 0, sizeof c->seq);
    c->start_ns = now;
    atomic_store(&c->state, LG_CONNECTING);
    publish(c, now);
    int64_t id = tao_client_connect(r->cl, r->o->addr, c);
    if (id < 0) {
        count(&r->err.connect, 1);
        atomic_store(&c->state, LG_FAILED);
        atomic_fetch_add(&r->failed, 1);
        atomic_fetch_add(&r->finished, 1);
        return;
    }
    c->id = id;
}

int lg_client_start(lg_run_t *r)
{
    const lg_opts_t *o = r->o;
    tao_codec_t codec;
    tao_codec_tlv(&codec, 0);
    tlv_decode = codec.decode;
    codec.decode = whole_frame_decode;
    all_as = o->type;

    tao_client_config_t cfg = {
        .loops = o->loops,
        .workers = TAO_WORKERS_INLINE,
        .codec = &codec,
        .max_conns = o->conns,
        .connect_timeout_ms = 5000,
        .no_pin = true, /* the caller pins us (taskset); do not undo it */
        .on_connect = on_connect,
        .on_close = on_close,
        .on_error = on_error,
        .user = r,
    };
    int rc = tao_client_create(&cfg, &r->cl);
    if (rc < 0)
        return rc;
    rc = tao_client_handle(r->cl, o->type, on_reply, NULL, NULL);
    if (rc == 0)
        rc = tao_client_start(r->cl);
    if (rc < 0) {
        tao_client_destroy(r->cl);
        r->cl = NULL;
    }
    return rc;
}

void lg_client_finish(lg_run_t *r)
{
    atomic_store(&r->phase, LG_DONE);
    tao_client_stop(r->cl, 1000);
    tao_client_destroy(r->cl);
    r->cl = NULL;
}
