/* Helpers shared by the examples: command line, signals, debug logging. */
#ifndef TAO_EXAMPLES_COMMON_H
#define TAO_EXAMPLES_COMMON_H

#include <tao.h>

typedef struct ex_opts {
    const char *addr; /* --listen or --connect */
    unsigned loops;   /* --loops; 0 = one per CPU */
    int workers;      /* --workers; 0 = handlers inline */
    int debug;        /* --debug: log at debug level */
} ex_opts_t;

/* Parse the common options; prints --help and returns 1, or -1 on a bad
 * option (after printing why), 0 otherwise. */
int ex_parse(int argc, char **argv, ex_opts_t *o, const char *prog, const char *what);

/* Install handler for SIGINT and SIGTERM. */
void ex_on_stop_signals(void (*handler)(int));

/* "connected 127.0.0.1:5555 (#3)", at debug level only. */
void ex_log_conn(const char *event, tao_conn_t *conn);

/* The allocator in use ("jemalloc 5.3.0" or "libc"). */
const char *ex_allocator(void);

#endif
