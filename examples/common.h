/* Helpers shared by the examples: command line, signals, messages, debug
 * logging. Each program fills an ex_opts_t with its defaults, names the
 * options it takes, and lets ex_parse() overwrite what the user gave. */
#ifndef TAO_EXAMPLES_COMMON_H
#define TAO_EXAMPLES_COMMON_H

#include <stdbool.h>

#include <tao.h>

/* Every example speaks Go Tao's wire format with this one message type,
 * the raw text as payload. */
#define EX_MSG 1

/* The options a program takes, besides --help and --debug. */
enum {
    EX_LISTEN = 1 << 0,     /* --listen HOST:PORT */
    EX_CONNECT = 1 << 1,    /* --connect HOST:PORT */
    EX_LOOPS = 1 << 2,      /* --loops N */
    EX_WORKERS = 1 << 3,    /* --workers N */
    EX_COUNT = 1 << 4,      /* --count N */
    EX_CONNS = 1 << 5,      /* --conns N */
    EX_INTERVAL = 1 << 6,   /* --interval MS */
    EX_RECONNECT = 1 << 7,  /* --reconnect */
    EX_TLS_SERVER = 1 << 8, /* --tls-cert FILE --tls-key FILE */
    EX_TLS_CLIENT = 1 << 9, /* --tls --ca FILE [--server-name NAME] */
    EX_BUFS = 1 << 10,      /* --buf-count N --buf-size BYTES */
    EX_BUDGET = 1 << 11,    /* --max-queued BYTES */
    EX_TIMEOUTS = 1 << 12,  /* --idle-timeout MS --read-timeout MS */
    EX_METRICS = 1 << 13,   /* --metrics HOST:PORT */
    EX_ROOT = 1 << 14,      /* --root DIR */
    EX_PROXY = 1 << 15,     /* --proxy-protocol off|optional|required */
    EX_RESTART = 1 << 16,   /* --listen-fd N --handover PATH */
    EX_SERVER = EX_LISTEN | EX_LOOPS | EX_WORKERS | EX_BUDGET | EX_TIMEOUTS | EX_METRICS |
                EX_PROXY | EX_RESTART,
};

typedef struct ex_opts {
    const char *prog;        /* "tao-echo-server", for --help and messages */
    const char *what;        /* one line for --help */
    unsigned takes;          /* EX_* options accepted */
    const char *addr;        /* --listen or --connect */
    unsigned loops;          /* --loops; 0 = the library's default */
    int workers;             /* 0 = the library's default; "--workers 0"
                                becomes TAO_WORKERS_INLINE */
    unsigned count;          /* --count */
    const char *count_what;  /* what --count counts, for --help */
    unsigned conns;          /* --conns */
    unsigned interval_ms;    /* --interval */
    bool reconnect;          /* --reconnect */
    const char *tls_cert;    /* --tls-cert: serve TLS with this chain */
    const char *tls_key;     /* --tls-key */
    bool tls;                /* --tls: connect with TLS */
    const char *ca;          /* --ca: trust anchors for --tls */
    const char *server_name; /* --server-name (default localhost) */
    unsigned buf_count;      /* --buf-count: receive buffers per loop */
    unsigned buf_size;       /* --buf-size: bytes each */
    size_t max_queued;       /* --max-queued: the server's output budget */
    unsigned idle_ms;        /* --idle-timeout: close connections quiet this long */
    unsigned read_ms;        /* --read-timeout: close a frame unfinished this long */
    const char *metrics;     /* --metrics: serve statistics here */
    const char *root;        /* --root: serve the files under this directory */
    tao_proxy_mode_t proxy;  /* --proxy-protocol */
    int listen_fd;           /* --listen-fd: an inherited listening socket (+1;
                                0 = none) */
    const char *handover;    /* --handover: take over from the server there,
                                and offer hand-over there */
    bool debug;              /* --debug: log at debug level */
} ex_opts_t;

/* Parse argv into *o, which holds the defaults. Prints the help and exits 0
 * on --help; returns -1 on a bad option (after saying why), 0 otherwise. */
int ex_parse(int argc, char **argv, ex_opts_t *o);

/* The TLS settings the options asked for, or NULL for plain TCP. */
const tao_tls_config_t *ex_tls(const ex_opts_t *o);

/* Create a server from cfg (listen, loops, workers, budget, timeouts and
 * TLS from o), route EX_MSG to handler, start it, print where it listens
 * (and its metrics), stop on SIGINT or SIGTERM, and return the exit status
 * once it has stopped. The listening sockets: systemd's when the process
 * was socket-activated, else --listen-fd, else the predecessor's at
 * --handover when one answers there, else --listen. With --handover it
 * offers hand-over there too, and stops gracefully once a successor took
 * over. */
int ex_serve(const ex_opts_t *o, tao_server_config_t *cfg, tao_handler_cb handler);

/* With --metrics, serve srv's statistics over HTTP and print "PROG metrics
 * on HOST:PORT" (the real port). Returns 0 with *out set (NULL without
 * --metrics), or -1 after saying why. Destroy *out before srv. */
int ex_metrics(const ex_opts_t *o, tao_server_t *srv, tao_server_t **out);

/* Create and start a client group from cfg (TLS from o), route EX_MSG to
 * handler, and connect to o->addr. Returns the connection's id, or -1
 * after saying why (nothing is left to clean up then). */
int64_t ex_dial(const ex_opts_t *o, tao_client_config_t *cfg, tao_handler_cb handler,
                tao_client_t **out);

/* Install handler for SIGINT and SIGTERM, and ignore SIGPIPE. */
void ex_on_stop_signals(void (*handler)(int));

/* "tao-echo-server listening on 127.0.0.1:40123": the real port, also when
 * the address asked for port 0. Scripts wait for this line. */
void ex_print_listening(const char *prog, const char *addr, tao_server_t *srv);

/* At debug level only, on stderr: a new connection, "PROG: conn 3 from
 * 10.0.0.7:5555", with " via 10.0.0.2:4321" when a PROXY header named the
 * client; then any later event, "PROG: conn 3 closed". */
void ex_log_open(tao_conn_t *conn);
void ex_log_conn(const char *event, tao_conn_t *conn);

/* The allocator in use ("jemalloc 5.3.0" or "libc"). */
const char *ex_allocator(void);

#endif
