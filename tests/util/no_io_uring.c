/* tao-no-io-uring ERRNO PROGRAM [ARGS...]: run PROGRAM where io_uring is
 * refused, as in a container under Docker's default seccomp profile
 * (ERRNO EPERM) or Podman's (ENOSYS): a seccomp filter makes
 * io_uring_setup, io_uring_enter and io_uring_register fail with ERRNO.
 * The filter outlives exec and cannot be removed. Exit 2 when it cannot be
 * installed, 127 when PROGRAM cannot be run. */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "EPERM") != 0 && strcmp(argv[1], "ENOSYS") != 0)) {
        fprintf(stderr, "usage: tao-no-io-uring EPERM|ENOSYS PROGRAM [ARGS...]\n");
        return 2;
    }
    unsigned err = strcmp(argv[1], "EPERM") == 0 ? EPERM : ENOSYS;
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_enter, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_register, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0) {
        perror("tao-no-io-uring: seccomp");
        return 2;
    }
    execvp(argv[2], argv + 2);
    fprintf(stderr, "tao-no-io-uring: %s: %s\n", argv[2], strerror(errno));
    return 127;
}
