/* Internal: a loop's receive buffers (the provided-buffer ring) and who
 * holds them. The ownership rule is written once, in bufring.c. */
#ifndef TAO_ENGINE_BUFRING_H
#define TAO_ENGINE_BUFRING_H

#include <stdbool.h>
#include <stdint.h>

typedef struct tao__loop tao__loop_t;
typedef struct tao__cqe tao__cqe_t;

/* Allocate the buffers and give them all to the backend (after its
 * setup). */
int tao__bufs_setup(tao__loop_t *loop);
void tao__bufs_teardown(tao__loop_t *loop);

/* A receive completion (cqe->res bytes in buffer cqe->bid) takes what the
 * kernel filled: the whole buffer, or with TAO__CQ_BUF_MORE a slice of it,
 * while the kernel goes on filling the rest. Returns where the bytes are;
 * the completion holds the buffer until it puts it. */
const uint8_t *tao__buf_take(tao__loop_t *loop, const tao__cqe_t *cqe);
/* One more holder: a send chunk that lends its payload from bid. Returns
 * false (and adds none) when no more buffers may be out on loan. */
bool tao__buf_lend(tao__loop_t *loop, unsigned bid);
/* A holder lets go; the last one returns the buffer to the ring. */
void tao__buf_put(tao__loop_t *loop, unsigned bid);

#endif
