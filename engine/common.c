/* Version, error strings and the process-wide logging hook. */
#include <errno.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#include "tao/common.h"

#define STR2(x) #x
#define STR(x) STR2(x)

TAO_API const char *tao_version(void)
{
    return STR(TAO_VERSION_MAJOR) "." STR(TAO_VERSION_MINOR) "." STR(TAO_VERSION_PATCH);
}

TAO_API const char *tao_strerror(int err)
{
    if (err < 0)
        err = -err;
    switch (err) {
    case 0:
        return "success";
    case EMSGSIZE:
        return "frame larger than the configured maximum";
    case EBADMSG:
        return "malformed frame";
    case EAGAIN:
        return "output queue full (back-pressure): retry after on_writable";
    case ECANCELED:
        return "operation cancelled";
    case ETIMEDOUT:
        return "timed out";
    case ENOTCONN:
        return "not connected";
    case ESHUTDOWN:
        return "connection or server is closing";
    case EEXIST:
        return "already registered";
    case ENOENT:
        return "not found";
    default:
        /* strerrordesc_np is thread-safe and static, unlike strerror. */
        {
            const char *s = strerrordesc_np(err);
            return s ? s : "unknown error";
        }
    }
}

static tao_log_cb log_cb;
static void *log_user;
static tao_log_level_t log_min = TAO_LOG_WARN;

TAO_API void tao_log_set(tao_log_cb cb, void *user, tao_log_level_t min_level)
{
    tao__log_enabled(TAO_LOG_OFF); /* read TAO_LOG first, so this call wins */
    log_cb = cb;
    log_user = user;
    log_min = min_level;
}

/* TAO_LOG=debug|info|warn|error|off in the environment sets the default
 * level, so a deployed program can be made talkative without a rebuild. */
static void log_env(void)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "off"};
    const char *v = getenv("TAO_LOG");
    for (int i = 0; v && i <= TAO_LOG_OFF; i++)
        if (strcmp(v, names[i]) == 0)
            log_min = (tao_log_level_t)i;
}

int tao__log_enabled(tao_log_level_t level)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, log_env);
    return level >= log_min && level < TAO_LOG_OFF;
}

void tao__log(tao_log_level_t level, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    char line[512];
    va_list ap;

    if (!tao__log_enabled(level))
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (log_cb)
        log_cb(level, line, log_user);
    else
        fprintf(stderr, "tao %s: %s\n", names[level], line);
}
