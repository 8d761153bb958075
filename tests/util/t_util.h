/* Shared test helpers (t_*): cmocka glue, io_uring availability, sockets. */
#ifndef TAO_TESTS_T_UTIL_H
#define TAO_TESTS_T_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* The tests run on the backend TAO_BACKEND names (ctest registers each
 * engine test once per backend). Exit 77 (ctest "skipped") with the reason
 * when it is io_uring, or unset, and io_uring cannot be set up here. */
void t_require_backend(void);

/* True when the tests run on epoll. */
bool t_on_epoll(void);

/* Monotonic milliseconds. */
uint64_t t_now_ms(void);

/* Read a whole file into a malloc'd buffer; returns its length or -errno. */
long t_read_file(const char *path, uint8_t **out);

#endif
