/* Internal: what liburing 2.3 (Debian 12) lacks and newer kernels have.
 *
 * Kept in one place so a newer liburing can replace it wholesale. */
#ifndef TAO_ENGINE_COMPAT_H
#define TAO_ENGINE_COMPAT_H

#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_TASKRUN_FLAG
#define IORING_SETUP_TASKRUN_FLAG (1U << 9)
#endif

/* Incremental consumption of provided buffers (Linux 6.12, liburing 2.8):
 * the ring's registration flag, and the completion flag saying the kernel
 * keeps the rest of the buffer. */
#ifndef IOU_PBUF_RING_INC
#define IOU_PBUF_RING_INC 2
#endif
#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4)
#endif

/* io_uring_setup_buf_ring() appeared in liburing 2.4: map the ring memory
 * ourselves (page aligned, as the kernel requires) and register it, with
 * flags (IOU_PBUF_RING_INC; in liburing 2.3 the field is io_uring_buf_reg's
 * pad). Returns the ring or NULL with *err set: -EINVAL when the kernel
 * does not know a flag. */
static inline struct io_uring_buf_ring *tao__buf_ring_setup(struct io_uring *ring, unsigned entries,
                                                            int bgid, unsigned flags,
                                                            size_t *map_len, int *err)
{
    size_t len = (size_t)entries * sizeof(struct io_uring_buf);
    void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) {
        *err = -errno;
        return NULL;
    }
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)mem;
    reg.ring_entries = entries;
    reg.bgid = (uint16_t)bgid;
    reg.pad = (uint16_t)flags;
    int rc = io_uring_register_buf_ring(ring, &reg, 0);
    if (rc < 0) {
        munmap(mem, len);
        *err = rc;
        return NULL;
    }
    struct io_uring_buf_ring *br = mem;
    io_uring_buf_ring_init(br);
    *map_len = len;
    return br;
}

#endif
