/* Why io_uring_setup failed. The same errno has several causes that need
 * different fixes: Docker's default seccomp profile answers EPERM, Podman's
 * ENOSYS (as a kernel built without io_uring does), and the sysctl
 * kernel.io_uring_disabled answers EPERM. /proc tells them apart. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine/uring_why.h"

/* The first number after key in a /proc file, or -1. */
static long proc_number(const char *path, const char *key)
{
    char line[256];
    long v = -1;
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && sscanf(line + klen, " %ld", &v) == 1)
            break;
        v = -1;
    }
    fclose(f);
    return v;
}

const char *tao__uring_why(int err)
{
    long disabled = proc_number("/proc/sys/kernel/io_uring_disabled", "");
    long seccomp = proc_number("/proc/self/status", "Seccomp:");

    if (err != -EPERM && err != -ENOSYS && err != -EACCES)
        return "io_uring_queue_init failed";
    if (disabled == 2)
        return "io_uring is disabled on this host (sysctl kernel.io_uring_disabled=2): set it "
               "to 0 to allow io_uring";
    if (disabled == 1 && err != -ENOSYS)
        return "io_uring is restricted to one group on this host (sysctl "
               "kernel.io_uring_disabled=1 and kernel.io_uring_group): run as a member of "
               "that group, or set the sysctl to 0";
    if (seccomp == 2)
        return "a seccomp filter blocks io_uring_setup for this process (a container's "
               "default profile, as Docker's and Podman's): allow io_uring_setup, "
               "io_uring_enter and io_uring_register in the seccomp profile";
    if (err == -ENOSYS)
        return "the kernel was built without io_uring (CONFIG_IO_URING): use a kernel that "
               "has it";
    return "io_uring is refused (EPERM) for a reason /proc does not show (an LSM policy?): "
           "check the host's security settings";
}
