/* Internal: offering the listening sockets to a successor (handover.c). */
#ifndef TAO_ENGINE_HANDOVER_H
#define TAO_ENGINE_HANDOVER_H

typedef struct tao_server tao_server_t;

/* Before the loops start: what the loops report to (cfg.handover set). */
int tao__handover_init(tao_server_t *srv);
/* After the loops started: listen on cfg.handover. 0 or -errno, logged. */
int tao__handover_offer(tao_server_t *srv);
/* At destroy: end the offer, and remove the path if it is still ours. */
void tao__handover_withdraw(tao_server_t *srv);
/* A loop closed its listeners (stopping, or handed over). Any thread. */
void tao__handover_loop_closed(tao_server_t *srv);

#endif
