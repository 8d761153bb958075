/* Shared test helpers. */
#include "util/t_util.h"

#include "engine/uring_why.h"

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

bool t_on_epoll(void)
{
    const char *v = getenv("TAO_BACKEND");
    return v && strcmp(v, "epoll") == 0;
}

void t_require_backend(void)
{
    if (t_on_epoll())
        return;
    struct io_uring ring;
    int rc = io_uring_queue_init(4, &ring, 0);
    if (rc == 0) {
        io_uring_queue_exit(&ring);
        return;
    }
    fprintf(stderr, "SKIP: io_uring unavailable (%s): %s\n", strerror(-rc), tao__uring_why(rc));
    exit(77);
}

uint64_t t_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

long t_read_file(const char *path, uint8_t **out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *n = realloc(buf, cap);
            if (!n) {
                free(buf);
                fclose(f);
                return -ENOMEM;
            }
            buf = n;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    *out = buf;
    return (long)len;
}
