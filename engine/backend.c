/* Picking a backend for a runtime, when it starts.
 *
 * io_uring is the engine's own; epoll is for where io_uring is refused:
 * Docker's default seccomp profile answers EPERM, Podman's ENOSYS, the
 * sysctl kernel.io_uring_disabled EPERM or EACCES. Auto asks for a small
 * ring each time a runtime starts (not once per process: a seccomp filter
 * can arrive later, in a forked child) and falls back on exactly those
 * answers. Any other failure is io_uring's to report, where the loop sets
 * its ring up. */
#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/log.h"
#include "engine/uring_why.h"

static int from_env(tao_backend_t *want)
{
    const char *v = getenv("TAO_BACKEND");
    if (!v || !*v)
        return 0;
    if (strcmp(v, "auto") == 0)
        *want = TAO_BACKEND_AUTO;
    else if (strcmp(v, "io_uring") == 0)
        *want = TAO_BACKEND_IO_URING;
    else if (strcmp(v, "epoll") == 0)
        *want = TAO_BACKEND_EPOLL;
    else {
        tao__log(TAO_LOG_ERROR, "TAO_BACKEND=%s: expected auto, io_uring or epoll", v);
        return -EINVAL;
    }
    return 0;
}

int tao__backend_pick(tao_backend_t want, const tao__backend_t **out)
{
    int rc = from_env(&want);
    if (rc < 0)
        return rc;
    switch (want) {
    case TAO_BACKEND_IO_URING:
        *out = &tao__backend_uring;
        return 0;
    case TAO_BACKEND_EPOLL:
        *out = &tao__backend_epoll;
        return 0;
    case TAO_BACKEND_AUTO:
        break;
    default:
        return -EINVAL;
    }
    struct io_uring ring;
    rc = io_uring_queue_init(2, &ring, 0);
    if (rc == 0) {
        io_uring_queue_exit(&ring);
        *out = &tao__backend_uring;
    } else if (rc == -EPERM || rc == -ENOSYS || rc == -EACCES) {
        tao__log(TAO_LOG_WARN, "running on epoll: %s (%s)", tao__uring_why(rc), strerror(-rc));
        *out = &tao__backend_epoll;
    } else {
        *out = &tao__backend_uring; /* its setup says what went wrong */
    }
    return 0;
}
