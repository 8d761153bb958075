/* Internal: the logging hook behind tao_log_set. */
#ifndef TAO_ENGINE_LOG_H
#define TAO_ENGINE_LOG_H

#include "tao/common.h"

/* True when a line at level would be written: test it before building an
 * expensive message. */
int tao__log_enabled(tao_log_level_t level);

void tao__log(tao_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
