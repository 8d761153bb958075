/* Internal: why io_uring was refused, in words a user can act on. */
#ifndef TAO_ENGINE_URING_WHY_H
#define TAO_ENGINE_URING_WHY_H

/* err is what io_uring_setup returned (-EPERM, -ENOSYS, ...). The answer
 * looks at the facts that tell the causes apart: a seccomp filter on this
 * process (Docker answers EPERM, Podman ENOSYS), the sysctl
 * kernel.io_uring_disabled, or a kernel without io_uring. */
const char *tao__uring_why(int err);

#endif
