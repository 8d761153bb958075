/* Tao-C: shared definitions: export macro, error strings, logging hook.
 *
 * Every public function returns 0 or a non-negative count on success and a
 * negative errno value on failure. Tao-C never sets the global errno for its
 * callers, never aborts on bad input and never exits the process. */
#ifndef TAO_COMMON_H
#define TAO_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TAO_STATIC_DEFINE) || !defined(__GNUC__)
#define TAO_API
#else
#define TAO_API __attribute__((visibility("default")))
#endif

#define TAO_VERSION_MAJOR 0
#define TAO_VERSION_MINOR 1
#define TAO_VERSION_PATCH 0

/* "0.1.0": the version of the library actually linked. */
TAO_API const char *tao_version(void);

/* A static description of a negative errno value returned by a Tao-C call
 * (positive values are accepted too). Never NULL. */
TAO_API const char *tao_strerror(int err);

typedef enum tao_log_level {
    TAO_LOG_DEBUG = 0,
    TAO_LOG_INFO = 1,
    TAO_LOG_WARN = 2,
    TAO_LOG_ERROR = 3,
    TAO_LOG_OFF = 4,
} tao_log_level_t;

/* Receives every log line at or above the configured level. May run on any
 * Tao-C thread, concurrently; msg is borrowed for the duration of the call. */
typedef void (*tao_log_cb)(tao_log_level_t level, const char *msg, void *user);

/* Replace the process-wide log sink. cb == NULL restores the default, which
 * writes lines at min_level or above to stderr (the default min_level is
 * TAO_LOG_WARN). Call it before starting servers: it is not synchronized
 * with logging threads. */
TAO_API void tao_log_set(tao_log_cb cb, void *user, tao_log_level_t min_level);

/* What a server's or client group's loops ask the kernel through.
 * TAO_BACKEND in the environment (auto, io_uring or epoll) overrides the
 * config, so a deployed program can be switched without a rebuild. */
typedef enum tao_backend {
    TAO_BACKEND_AUTO = 0, /* io_uring; epoll where io_uring is refused (a
                             container's seccomp profile, the sysctl
                             kernel.io_uring_disabled, a kernel without it),
                             said in one log line */
    TAO_BACKEND_IO_URING, /* io_uring only: start fails where it is refused */
    TAO_BACKEND_EPOLL,    /* epoll: no SEND_ZC, no registered buffers */
} tao_backend_t;

#ifdef __cplusplus
}
#endif
#endif
