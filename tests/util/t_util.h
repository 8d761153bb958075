/* Shared test helpers (t_*): cmocka glue, io_uring availability, sockets. */
#ifndef TAO_TESTS_T_UTIL_H
#define TAO_TESTS_T_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* Exit 77 (ctest "skipped") with the reason when io_uring cannot be set up. */
void t_require_io_uring(void);

/* Monotonic milliseconds. */
uint64_t t_now_ms(void);

/* Read a whole file into a malloc'd buffer; returns its length or -errno. */
long t_read_file(const char *path, uint8_t **out);

#endif
