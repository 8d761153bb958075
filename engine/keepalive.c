/* Idle, read and heartbeat timeouts: one embedded timer per connection,
 * armed for the nearest of the three deadlines and re-checked when it
 * fires. Traffic only updates timestamps, never the wheel.
 *
 * What each one measures:
 *   - idle: no progress in either direction for idle_ms: no byte received
 *     (last_rx), and no byte of a waiting output queue taken by the peer
 *     (last_out). A connection paused by back-pressure is not reading, so
 *     only its output can show that the peer is alive.
 *   - read: a frame the server is waiting for (its first bytes came, the
 *     rest did not) for read_ms. The clock (partial_since) runs only while
 *     the connection reads: whole frames parked behind back-pressure are
 *     not slow, and the clock starts again when reading resumes.
 *   - heartbeat: nothing sent for heartbeat_ms.
 *
 * A timeout that finds the connection owing the peer something (whole
 * frames received and not answered, or output not yet written) aborts it:
 * an RST tells the peer that replies are missing, where a FIN would say
 * that all was said.
 *
 * Before an idle or read timeout fires on a connection that is reading,
 * the socket is asked whether bytes wait in it: then the loop is behind
 * (a long batch on a starved machine), not the peer, and the check comes
 * again shortly. */
#include <errno.h>
#include <time.h>

#include "engine/conn.h"
#include "engine/endpoint.h"
#include "engine/keepalive.h"
#include "engine/loop.h"
#include "engine/recv.h"
#include "engine/send.h"

/* ---- the deadlines (pure) ------------------------------------------------------ */

static uint64_t idle_at(const tao__ka_clock_t *k)
{
    return (k->last_rx > k->last_out ? k->last_rx : k->last_out) + k->idle_ms;
}

uint64_t tao__ka_next(const tao__ka_clock_t *k)
{
    uint64_t next = UINT64_MAX;
    if (k->idle_ms)
        next = idle_at(k);
    if (k->read_ms && k->partial_since && k->partial_since + k->read_ms < next)
        next = k->partial_since + k->read_ms;
    if (k->heartbeat_ms && k->last_tx + k->heartbeat_ms < next)
        next = k->last_tx + k->heartbeat_ms;
    return next;
}

/* Idle first, then read: either ends the connection; a heartbeat only when
 * neither has. */
enum tao__ka_due tao__ka_due(const tao__ka_clock_t *k, uint64_t now)
{
    if (k->idle_ms && now >= idle_at(k))
        return KA_IDLE;
    if (k->read_ms && k->partial_since && now >= k->partial_since + k->read_ms)
        return KA_READ;
    if (k->heartbeat_ms && now >= k->last_tx + k->heartbeat_ms)
        return KA_HEARTBEAT;
    return KA_NONE;
}

/* ---- on a connection --------------------------------------------------------- */

static tao__ka_clock_t clock_of(const tao_conn_t *c)
{
    const tao__endpoint_t *ep = c->ep;
    return (tao__ka_clock_t){.idle_ms = ep->set.idle_timeout_ms,
                             .read_ms = ep->set.read_timeout_ms,
                             .heartbeat_ms = ep->set.heartbeat_ms,
                             .last_rx = c->last_rx,
                             .last_out = c->last_out,
                             .last_tx = c->last_tx,
                             .partial_since = c->partial_since};
}

void tao__ka_arm(tao_conn_t *c)
{
    TAO__ON_LOOP(c->loop);
    tao__ka_clock_t k = clock_of(c);
    uint64_t next = tao__ka_next(&k);
    if (next != UINT64_MAX && !(c->flags & C_CLOSING))
        tao__wheel_add(&c->loop->wheel, &c->ka, next, 0);
}

/* c->in or the pause changed: is the connection now waiting for the rest of
 * a frame? Only while reading; unpaused, consume() has taken every whole
 * frame, so what is left in c->in is the start of one. */
void tao__ka_input(tao_conn_t *c)
{
    TAO__ON_LOOP(c->loop);
    if (!c->in_len || (c->flags & (C_PAUSED | C_WPAUSED))) {
        c->partial_since = 0;
        return;
    }
    if (c->partial_since)
        return;
    /* A frame started: its read timeout may be the nearest deadline. */
    c->partial_since = c->loop->now;
    if (c->ep->set.read_timeout_ms && !(c->flags & C_CLOSING) &&
        (!tao__timer_armed(&c->ka) || c->ka.due > c->partial_since + c->ep->set.read_timeout_ms))
        tao__ka_arm(c);
}

/* Replies the peer would miss if the connection ended now. */
static bool owes_peer(const tao_conn_t *c)
{
    if (tao__queued_now(c) || (c->flags & C_SEND_INFLIGHT))
        return true;
    tao_frame_t f;
    const tao_codec_t *codec = &c->ep->codec;
    return c->in_len && codec->decode(codec, c->in, c->in_len, &f) > 0;
}

/* The peer sent bytes this loop has not read yet. */
static bool loop_behind(const tao_conn_t *c)
{
    if (c->flags & (C_PAUSED | C_WPAUSED))
        return false; /* not reading: the bytes wait for us on purpose */
    return tao__loop_behind(c->loop) || tao__conn_unread(c);
}

static void timed_out(tao_conn_t *c, const char *what)
{
    STAT_ADD(c->loop, timeouts, 1);
    tao__conn_error(c, -ETIMEDOUT, what);
    if (owes_peer(c))
        tao__conn_abort_local(c);
    else
        tao__conn_close_local(c, false);
}

void tao__ka_fire(tao__timer_t *t, uint64_t now)
{
    tao_conn_t *c = container_of(t, tao_conn_t, ka);

    if (c->flags & (C_CLOSING | C_FENCING))
        return;
    tao__ka_clock_t k = clock_of(c);
    enum tao__ka_due due = tao__ka_due(&k, now);
    if ((due == KA_IDLE || due == KA_READ) && loop_behind(c)) {
        tao__wheel_add(&c->loop->wheel, &c->ka, now + 10, 0);
        return;
    }
    if (due == KA_IDLE) {
        timed_out(c, "idle timeout");
        return;
    }
    if (due == KA_READ) {
        timed_out(c, "read timeout: a frame started and did not finish");
        return;
    }
    if (due == KA_HEARTBEAT) {
        /* Go Tao's heartbeat: type 0, an 8-byte LE int64 timestamp in ns. */
        struct timespec ts;
        uint8_t hb[TAO_HEARTBEAT_LEN];
        clock_gettime(CLOCK_REALTIME, &ts);
        tao_heartbeat_encode((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec, hb);
        tao__conn_send_local(c, TAO_MSG_HEARTBEAT, hb, sizeof hb);
        c->last_tx = now;
    }
    tao__ka_arm(c);
}

void tao__conn_touch_tx(tao_conn_t *c)
{
    c->last_tx = c->loop->now;
}
