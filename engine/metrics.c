/* Statistics as Prometheus text, and a tiny HTTP endpoint serving them.
 *
 * The endpoint is itself a Tao-C server: one inline loop with the HTTP/1.1
 * codec (codec/http1.c), answering every request with the metrics, keeping
 * the connection when the client asks. It listens where it is told
 * (loopback by default), unlike Go Tao's monitor, which listened on every
 * interface. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#include "tao.h"

TAO_API int tao_stats_format(const tao_stats_t *st, char *buf, size_t cap)
{
    static const struct {
        const char *name, *type, *help;
        size_t off;
    } rows[] = {
#define ROW(f, t, h) {"tao_" #f, t, h, offsetof(tao_stats_t, f)}
        ROW(conns_open, "gauge", "Connections open now."),
        ROW(conns_accepted, "counter", "Connections accepted and kept."),
        ROW(conns_refused, "counter", "Connections refused (limit or on_connect)."),
        ROW(conns_closed, "counter", "Connections closed."),
        ROW(frames_in, "counter", "Frames received."),
        ROW(frames_out, "counter", "Frames sent."),
        ROW(bytes_in, "counter", "Bytes received."),
        ROW(bytes_out, "counter", "Bytes sent."),
        ROW(unknown_types, "counter", "Frames of unregistered types, skipped."),
        ROW(decode_errors, "counter", "Oversized or malformed frames."),
        ROW(unmarshal_errors, "counter", "Payloads the unmarshal function refused."),
        ROW(send_rejected, "counter", "Sends refused with EAGAIN (back-pressure)."),
        ROW(accept_backoffs, "counter", "Accept pauses for EMFILE/ENFILE."),
        ROW(enobufs, "counter", "Receive re-arms after the buffer ring ran dry."),
        ROW(queued_bytes, "gauge", "Output bytes queued now."),
        ROW(timeouts, "counter", "Idle, read and handshake timeouts."),
        ROW(worker_queue, "gauge", "Items waiting for workers now."),
        ROW(broadcast_skipped, "counter", "Connections a broadcast could not reach."),
        ROW(timers_armed, "gauge", "User timers pending now."),
        ROW(zc_sends, "counter", "Sends made with SEND_ZC."),
        ROW(proxy_errors, "counter", "PROXY headers malformed, truncated, missing or late."),
#undef ROW
    };
    size_t len = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        uint64_t v;
        memcpy(&v, (const char *)st + rows[i].off, sizeof v);
        int n = snprintf(buf + len, cap > len ? cap - len : 0,
                         "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", rows[i].name, rows[i].help,
                         rows[i].name, rows[i].type, rows[i].name, (unsigned long long)v);
        if (n < 0)
            return -EINVAL;
        len += (size_t)n;
    }
    if (st->backend) {
        int n = snprintf(buf + len, cap > len ? cap - len : 0,
                         "# HELP tao_backend_info The backend the loops run on.\n"
                         "# TYPE tao_backend_info gauge\ntao_backend_info{backend=\"%s\"} 1\n",
                         st->backend);
        if (n < 0)
            return -EINVAL;
        len += (size_t)n;
    }
    return len < cap ? (int)len : -ENOSPC;
}

/* ---- the HTTP endpoint ---------------------------------------------------- */

/* Every request on the HTTP/1.1 codec gets the metrics, whatever its path;
 * keep-alive as the client asks (Prometheus keeps its connection). */
static void on_request(tao_conn_t *c, const tao_msg_t *m)
{
    static const tao_http_opts_t opts = {0};
    tao_codec_t codec;
    tao_codec_http(&codec, &opts);
    tao_http_req_t q;
    tao_http_header_t h[32];
    bool keep = tao_http_parse(&codec, m->payload, m->len, &q, h, 32) == 0 && q.keep_alive;
    bool head = q.method_len == 4 && memcmp(q.method, "HEAD", 4) == 0;
    tao_server_t *target = tao_server_data(tao_conn_server(c));
    tao_stats_t st;
    char body[8192], resp[8400];
    tao_server_stats(target, &st);
    int n = tao_stats_format(&st, body, sizeof body);
    if (n < 0)
        n = 0;
    int r = snprintf(resp, sizeof resp,
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
                     "Content-Length: %d\r\n%s\r\n%.*s",
                     n, keep ? "" : "Connection: close\r\n", head ? 0 : n, body);
    tao_conn_send(c, 0, resp, (size_t)r);
    if (!keep)
        tao_conn_close(c);
}

/* A request the codec refused: its status, then the close. */
static void on_error(tao_server_t *srv, tao_conn_t *c, int err, const char *what)
{
    if (!c || err >= 0 || err == -ECONNRESET)
        return;
    int status = tao_http_status_of(err);
    if (status == 400 && err != -EBADMSG)
        return; /* not the codec's */
    char resp[160];
    int r = snprintf(resp, sizeof resp,
                     "HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status,
                     tao_http_reason(status));
    tao_conn_send(c, 0, resp, (size_t)r);
}

TAO_API int tao_metrics_start(tao_server_t *srv, const char *listen, tao_server_t **out)
{
    static const tao_http_opts_t opts = {.max_line = 4096, .max_head = 8192, .max_body = 4096};
    tao_codec_t codec;
    int rc = tao_codec_http(&codec, &opts);
    if (rc < 0)
        return rc;
    tao_server_config_t cfg = {
        .listen = listen ? listen : "127.0.0.1:9100",
        .loops = 1,
        .workers = TAO_WORKERS_INLINE,
        .codec = &codec,
        .on_error = on_error,
        .max_conns = 64,
        .idle_timeout_ms = 10000,
        .buf_count = 16,
        .buf_size = 4096,
        .no_pin = true,
        .user = srv,
    };
    tao_server_t *m;
    rc = tao_server_create(&cfg, &m);
    if (rc < 0)
        return rc;
    rc = tao_server_handle(m, opts.type, on_request, NULL, NULL);
    if (rc == 0)
        rc = tao_server_start(m);
    if (rc < 0) {
        tao_server_destroy(m);
        return rc;
    }
    *out = m;
    return 0;
}
