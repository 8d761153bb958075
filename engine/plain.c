/* The plain transport: bytes go straight between the socket and the codec.
 * Frames may be sent from registered buffers or lent from the receive
 * buffer they arrived in (send.c). */
#include "engine/conn.h"
#include "engine/recv.h"
#include "engine/send.h"
#include "engine/transport.h"

static int start(tao_conn_t *c)
{
    tao__conn_ready(c);
    return 0;
}

static int write_chunk(tao_conn_t *c, tao__chunk_t *k)
{
    tao__out_chunk(c, k, true);
    return 0;
}

static void nothing(tao_conn_t *c)
{
}

const tao__transport_t tao__transport_plain = {
    .name = "plain",
    .start = start,
    .input = tao__conn_input,
    .write = tao__out_frame,
    .write_chunk = write_chunk,
    .eof = nothing,
    .shutdown = nothing,
    .end = nothing,
};
