/* Socket activation: systemd's LISTEN_FDS protocol (sd_listen_fds(3)),
 * without linking libsystemd. The service manager binds the sockets,
 * passes them from descriptor 3 on, and names the process they are for in
 * LISTEN_PID, so that a child which inherits the environment does not take
 * them too. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "tao/restart.h"

#define LISTEN_FDS_START 3

/* A whole decimal number, or -1. */
static long number(const char *s)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    return *s && !*end && errno == 0 && v >= 0 ? v : -1;
}

static int take(int *fds, unsigned max)
{
    const char *pid_s = getenv("LISTEN_PID"), *n_s = getenv("LISTEN_FDS");
    if (!pid_s || !n_s)
        return 0;
    long pid = number(pid_s), n = number(n_s);
    if (pid <= 0 || n < 0 || n > INT32_MAX - LISTEN_FDS_START)
        return -EINVAL;
    if (pid != (long)getpid())
        return 0; /* for another process */
    if ((unsigned long)n > max)
        return -ENOBUFS;
    for (int i = 0; i < (int)n; i++) {
        int fd = LISTEN_FDS_START + i;
        int fl = fcntl(fd, F_GETFD);
        if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
            return -errno;
        fds[i] = fd;
    }
    return (int)n;
}

TAO_API int tao_listen_fds(int *fds, unsigned max)
{
    int rc = take(fds, max);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return rc;
}
