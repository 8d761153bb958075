/* Test helpers for talking to a Tao-C server over 127.0.0.1 with plain
 * blocking sockets, and for running a server inside the test process. */
#ifndef TAO_TESTS_T_NET_H
#define TAO_TESTS_T_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tao.h>

/* Connect to 127.0.0.1:port (TCP_NODELAY on); asserts on failure. */
int t_connect(int port);

/* Write everything or fail the test. */
void t_write_all(int fd, const void *buf, size_t len);

/* Read exactly len bytes within timeout_ms. Returns 0, -ETIMEDOUT, -EPIPE
 * when the peer closed first (FIN), or -ECONNRESET when it reset. */
int t_read_exact(int fd, void *buf, size_t len, int timeout_ms);

/* Encode one TLV frame into out (8 + len bytes). Returns its size. */
size_t t_tlv(uint8_t *out, int32_t type, const void *payload, size_t len);

/* Send one TLV frame. */
void t_send_frame(int fd, int32_t type, const void *payload, size_t len);

/* Read one TLV frame; *payload is malloc'd (free it). Returns 0 or as
 * t_read_exact. */
int t_read_frame(int fd, int32_t *type, uint8_t **payload, size_t *len, int timeout_ms);

/* Send one 32-byte frame of type (made by t_fill from seed) and check its
 * echo byte for byte, within 10 s; fails the test otherwise. */
void t_echo_once(int fd, int32_t type, uint32_t seed);

/* Wait until the peer closes: returns 1 for a FIN (read gives 0), 2 for an
 * RST (ECONNRESET), 0 on timeout. Data that arrives first is discarded and
 * its size added to *discarded when not NULL. */
int t_wait_closed(int fd, int timeout_ms, size_t *discarded);

/* Poll cond every millisecond for up to timeout_ms; true when it held. */
#define T_WAIT(cond, timeout_ms)                                                                   \
    ({                                                                                             \
        uint64_t t_end_ = t_now_ms() + (timeout_ms);                                               \
        while (!(cond) && t_now_ms() < t_end_)                                                     \
            usleep(1000);                                                                          \
        (cond);                                                                                    \
    })

/* Create (not start) a server on 127.0.0.1 port 0 (loops default 2),
 * asserting success. */
tao_server_t *t_server_create(tao_server_config_t *cfg);

/* Fill buf with bytes derived from seed (reproducible). */
void t_fill(uint8_t *buf, size_t len, uint32_t seed);

/* ---- checked echo streams ------------------------------------------------
 * A client connection that writes numbered TLV frames of one type and checks
 * the echoes as they come back, in order, byte for byte. Frame seq of stream
 * idx carries size(idx, seq) bytes made by t_fill(.., t_seed(idx, seq)), so
 * nothing sent needs to be kept. The socket is non-blocking; the caller
 * drives it (or lets t_pipeline do it). Failures fail the test. */
typedef size_t (*t_size_fn)(unsigned idx, uint32_t seq);

typedef struct t_stream {
    int fd;
    unsigned idx;
    int32_t type;
    uint32_t frames;  /* frames to send in all */
    uint32_t queued;  /* frames put into tx so far */
    uint32_t checked; /* echoes read and verified */
    t_size_fn size;
    size_t max_payload;
    uint8_t *tx, *rx, *scratch;
    size_t tx_len, tx_off, rx_len, tx_cap, rx_cap;
} t_stream_t;

/* The t_fill seed of frame seq of stream idx. */
uint32_t t_seed(unsigned idx, uint32_t seq);

/* Take over fd (made non-blocking) for a stream of frames frames; sizes must
 * not exceed max_payload. */
void t_stream_init(t_stream_t *s, int fd, unsigned idx, int32_t type, uint32_t frames,
                   t_size_fn size, size_t max_payload);
/* Close the socket and free the buffers. */
void t_stream_deinit(t_stream_t *s);

/* True when bytes are waiting to be written (tx is refilled first). */
bool t_stream_want_write(t_stream_t *s);

/* Write what the socket takes; returns the bytes written (0: it took none). */
size_t t_stream_write(t_stream_t *s);

/* Read what is there and check every complete echo; false once the peer has
 * closed (or reset) the connection. */
bool t_stream_read(t_stream_t *s);

/* Every echo has been checked. */
bool t_stream_done(const t_stream_t *s);

/* Connect n streams to 127.0.0.1:port and drive them all from this thread
 * with poll(), writing and reading at the same time, until every echo has
 * been checked; fail the test after timeout_ms. Closes the sockets. */
void t_pipeline(int port, unsigned n, int32_t type, uint32_t frames, t_size_fn size,
                size_t max_payload, int timeout_ms);

/* ---- each test in both handler modes -------------------------------------
 * T_BOTH(fn) registers fn twice, as "fn/workers" (2 worker threads) and
 * "fn/inline"; the test reads the mode from t_workers for its config. */
extern int t_workers;
int t_setup_workers(void **state);
int t_setup_inline(void **state);
#define T_IN_MODE(fn, setup, mode)                                                                 \
    {                                                                                              \
        .name = #fn "/" mode, .test_func = fn, .setup_func = setup                                 \
    }
#define T_BOTH(fn)                                                                                 \
    T_IN_MODE(fn, t_setup_workers, "workers"), T_IN_MODE(fn, t_setup_inline, "inline")

#endif
