/* Internal: idle, read and heartbeat timeouts (keepalive.c). */
#ifndef TAO_ENGINE_KEEPALIVE_H
#define TAO_ENGINE_KEEPALIVE_H

#include <stdint.h>

#include "engine/timerwheel.h"
#include "tao/conn.h"

/* What decides a connection's next check: pure, so it is tested alone. */
typedef struct tao__ka_clock {
    unsigned idle_ms, read_ms, heartbeat_ms; /* 0 = off */
    uint64_t last_rx, last_out, last_tx;     /* ms */
    uint64_t partial_since;                  /* 0 = no frame started */
} tao__ka_clock_t;

/* The earliest deadline, or UINT64_MAX when none is on. */
uint64_t tao__ka_next(const tao__ka_clock_t *k);
/* Which deadline has passed at now: */
enum tao__ka_due { KA_NONE, KA_IDLE, KA_READ, KA_HEARTBEAT };
enum tao__ka_due tao__ka_due(const tao__ka_clock_t *k, uint64_t now);

void tao__ka_arm(tao_conn_t *c);
void tao__ka_fire(tao__timer_t *t, uint64_t now);
/* c->in or the pause changed: start or stop the read clock. */
void tao__ka_input(tao_conn_t *c);
void tao__conn_touch_tx(tao_conn_t *c);

#endif
