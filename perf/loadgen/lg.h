/* tao-loadgen: the pieces shared by the load generator's files.
 *
 * Pure parts (payload, sequence tracking, histogram) know nothing of
 * sockets or clocks, so the tests drive them directly; the client part
 * (conns.c) runs on Tao-C's client loops; loadgen.c holds the command line
 * and the run's phases on the main thread. */
#ifndef TAO_PERF_LG_H
#define TAO_PERF_LG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <tao.h>

/* ---- payload (payload.c) ----------------------------------------------------
 * Every payload starts with a 16-byte header: sequence number (LE u64),
 * connection id (LE u32) and a check word over both (LE u32); the rest is
 * filler computed from (connection id, sequence), so every byte of a reply
 * can be checked without keeping a copy of what was sent. */
#define LG_PAYLOAD_MIN 16

void lg_payload_fill(uint8_t *p, size_t len, uint32_t cid, uint64_t seq);
/* Returns 0 and the header's fields when every byte is what lg_payload_fill
 * wrote, -EBADMSG otherwise (fields then untouched). */
int lg_payload_check(const uint8_t *p, size_t len, uint32_t *cid, uint64_t *seq);

/* ---- sequence tracking (seqtrack.c) -----------------------------------------
 * Replies on one connection come back in the order they were sent. A reply
 * ahead of the one expected means the ones skipped are missing: presumed
 * lost, unless one of them turns up later (then it was reordered). */
#define LG_MISSING_MAX 16

typedef struct lg_seq {
    uint64_t expect;                  /* the reply due next, in order */
    uint64_t missing[LG_MISSING_MAX]; /* skipped over and may still come */
    unsigned nmissing;
} lg_seq_t;

typedef enum lg_verdict {
    LG_IN_ORDER, /* the one expected */
    LG_GAP,      /* ahead of the one expected: *skipped replies are missing */
    LG_LATE,     /* one that had been skipped: it was reordered, not lost */
    LG_DUP,      /* already seen */
    LG_BOGUS,    /* never sent */
} lg_verdict_t;

/* sent: sequence numbers below it have been sent. */
lg_verdict_t lg_seq_reply(lg_seq_t *s, uint64_t seq, uint64_t sent, uint64_t *skipped);

/* ---- latency histogram (hist.c) ---------------------------------------------
 * Log-linear: 32 buckets per power of two (3% resolution), in nanoseconds. */
#define LG_HIST_SUB_BITS 5
#define LG_HIST_SUB (1u << LG_HIST_SUB_BITS)
#define LG_HIST_BUCKETS ((64 - LG_HIST_SUB_BITS + 1) * LG_HIST_SUB)

typedef struct lg_hist {
    uint64_t count[LG_HIST_BUCKETS];
    uint64_t total, max;
} lg_hist_t;

void lg_hist_record(lg_hist_t *h, uint64_t ns);
void lg_hist_merge(lg_hist_t *dst, const lg_hist_t *src);
/* The value at quantile q (0..1): the top of its bucket, capped at the
 * largest value seen; 0 when empty. */
uint64_t lg_hist_quantile(const lg_hist_t *h, double q);

/* ---- the process and its server (proc.c) ------------------------------------ */
uint64_t lg_now_ns(void);
/* utime + stime of a process in seconds, or -1 when it cannot be read. */
double lg_proc_cpu_s(pid_t pid);
/* VmRSS of a process in KiB, or -1. */
long lg_proc_rss_kb(pid_t pid);
/* This process's user + system CPU seconds so far. */
double lg_self_cpu_s(void);
/* CPU seconds every CPU of the machine has been busy so far (/proc/stat),
 * or -1: with the server's and our own, it shows how much other processes
 * took while we measured. */
double lg_machine_busy_s(void);
/* Raise the soft RLIMIT_NOFILE to at least need (up to the hard limit).
 * Returns the limit now in force. */
unsigned long lg_raise_nofile(unsigned long need);

/* ---- the run (conns.c) ------------------------------------------------------ */
typedef enum lg_mode { LG_ECHO, LG_STORM, LG_IDLE } lg_mode_t;

typedef struct lg_opts {
    const char *addr;
    unsigned conns, depth, loops;
    size_t size;
    double duration, warmup, stall;
    int32_t type;
    lg_mode_t mode;
    pid_t server_pid; /* 0: none */
    bool allow_lost;  /* a connection the server closes is lost, not an error */
    const char *json, *label;
} lg_opts_t;

/* The run's phases, in order: replies are measured only in LG_MEASURE; from
 * LG_DRAIN on, nothing new is sent; in LG_DONE closes are ours. */
enum { LG_WARMUP, LG_MEASURE, LG_DRAIN, LG_DONE };

/* Connection states. */
enum { LG_NEW, LG_CONNECTING, LG_UP, LG_CLOSING, LG_CLOSED, LG_DROPPED, LG_FAILED };

typedef struct lg_run lg_run_t;

/* One client connection (one cycle of it in storm mode). Fields without
 * _Atomic belong to the loop thread running it; the atomics are what the
 * main thread looks at to spot a stalled server. */
typedef struct lg_conn {
    lg_run_t *run;
    uint32_t cid;
    int64_t id;
    uint64_t next_seq; /* the next sequence number to send */
    lg_seq_t seq;
    uint64_t *sent_ns; /* send times by seq % depth, for latency */
    uint64_t start_ns; /* storm: when this cycle's connect began */
    uint32_t inflight;
    bool stalled; /* main thread: already reported */
    _Atomic uint32_t inflight_pub;
    _Atomic uint64_t last_ns; /* the last sign of life */
    _Atomic int state;
} lg_conn_t;

/* Counters of one loop thread: written by it alone, read by the main thread
 * with relaxed loads for progress, and in full after the loops are joined. */
typedef struct lg_thread {
    uint64_t msgs, bytes; /* in the measured window */
    uint64_t replies;     /* all of them, for progress */
    lg_hist_t hist;
    uint8_t *scratch; /* one payload, built before it is sent */
} lg_thread_t;

#define LG_MAX_THREADS 1024

/* Errors: rare, so plain shared atomics. */
typedef struct lg_errors {
    _Atomic uint64_t corrupted;  /* bad type, length, header or byte */
    _Atomic uint64_t skipped;    /* presumed lost when a later reply came */
    _Atomic uint64_t late;       /* ...and then came after all: reordered */
    _Atomic uint64_t unanswered; /* outstanding at a close or at the end */
    _Atomic uint64_t dup;
    _Atomic uint64_t closed;      /* connections the server closed or reset */
    _Atomic uint64_t lost_conns;  /* ... the same, with --allow-lost */
    _Atomic uint64_t lost_frames; /* unanswered on those connections */
    _Atomic uint64_t stalled;
    _Atomic uint64_t connect;
    _Atomic uint64_t send;
} lg_errors_t;

struct lg_run {
    const lg_opts_t *o;
    tao_client_t *cl;
    lg_conn_t *conns;
    _Atomic int phase;
    _Atomic uint32_t next_cid;
    _Atomic unsigned up;       /* connections (or storm cycles) connected */
    _Atomic unsigned failed;   /* connects that failed */
    _Atomic unsigned finished; /* ... and over: closed, dropped or failed */
    _Atomic unsigned echoed;   /* idle mode: first echo received */
    lg_errors_t err;
    lg_thread_t *threads[LG_MAX_THREADS];
    _Atomic unsigned nthreads;
};

/* Create and start the client group. Returns 0 or -errno (-EPERM, -ENOSYS:
 * no io_uring here). */
int lg_client_start(lg_run_t *r);
/* Begin a connection (or a storm cycle) on c. */
void lg_conn_open(lg_run_t *r, lg_conn_t *c);
/* Close every connection and free the client group; the loops are joined
 * when it returns. */
void lg_client_finish(lg_run_t *r);

/* ---- reporting (report.c) ------------------------------------------------------ */
typedef struct lg_result {
    double window_s;
    uint64_t msgs, bytes;
    lg_hist_t hist;
    uint64_t corrupted, lost, dup, reordered, closed, stalled, connect, send;
    /* --allow-lost: connections the server closed mid-run and the frames
     * left unanswered on them. Not errors: every other byte is still
     * checked, and the report says how many were lost. */
    uint64_t lost_conns, lost_frames;
    double client_cpu_s;
    double server_cpu_s; /* < 0: not measured */
    double other_cpu_s;  /* the machine's busy time less ours and the server's; < 0: unknown */
    long rss_before_kb, rss_after_kb;
    unsigned idle_conns;
} lg_result_t;

uint64_t lg_result_errors(const lg_result_t *res);
void lg_report_text(const lg_opts_t *o, const lg_result_t *res);
/* Append one JSON line to o->json. Returns 0 or -errno. */
int lg_report_json(const lg_opts_t *o, const lg_result_t *res);

#endif
