/* Idle, read and heartbeat timeouts: one embedded timer per connection,
 * armed for the nearest of the three deadlines and re-checked when it
 * fires. Traffic only updates timestamps, never the wheel. */
#include <errno.h>
#include <time.h>

#include "engine/engine.h"

static uint64_t ka_next(const tao_conn_t *c)
{
    const tao__endpoint_t *ep = c->ep;
    uint64_t next = UINT64_MAX;
    if (ep->idle_ms)
        next = c->last_rx + ep->idle_ms;
    if (ep->read_ms && c->partial_since && c->partial_since + ep->read_ms < next)
        next = c->partial_since + ep->read_ms;
    if (ep->heartbeat_ms && c->last_tx + ep->heartbeat_ms < next)
        next = c->last_tx + ep->heartbeat_ms;
    return next;
}

void tao__ka_arm(tao_conn_t *c)
{
    uint64_t next = ka_next(c);
    if (next != UINT64_MAX && !(c->flags & C_CLOSING))
        tao__wheel_add(&c->loop->wheel, &c->ka, next, 0);
}

static void timed_out(tao_conn_t *c, const char *what)
{
    STAT_ADD(c->loop, timeouts, 1);
    tao__conn_error(c, -ETIMEDOUT, what);
    tao__conn_close_local(c, false);
}

void tao__ka_fire(tao__timer_t *t, uint64_t now)
{
    tao_conn_t *c = container_of(t, tao_conn_t, ka);
    const tao__endpoint_t *ep = c->ep;

    if (c->flags & (C_CLOSING | C_FENCING))
        return;
    if (ep->idle_ms && now >= c->last_rx + ep->idle_ms) {
        timed_out(c, "idle timeout");
        return;
    }
    if (ep->read_ms && c->partial_since && now >= c->partial_since + ep->read_ms) {
        timed_out(c, "read timeout: a frame started and did not finish");
        return;
    }
    if (ep->heartbeat_ms && now >= c->last_tx + ep->heartbeat_ms) {
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
