/* tao-http-server: a small HTTP/1.1 server on Tao-C.
 *
 *   GET /          "Hello, world!" (13 bytes, text/plain)
 *   GET /metrics   this server's statistics, Prometheus text
 *   POST /echo     the request's body back (Content-Length or chunked)
 *   GET /PATH      with --root DIR, the file DIR/PATH; a directory's
 *                  index.html. Nothing outside DIR: ".." and symbolic links
 *                  that lead out are refused by the kernel (openat2 with
 *                  RESOLVE_BENEATH).
 *   HEAD           as GET, without the body; anything else: 405.
 *
 * Keep-alive and pipelining come from the codec and the engine: requests
 * of one connection are answered in order, and "Connection: close" (or
 * HTTP/1.0 without keep-alive) closes after the response is written. A
 * request the codec refuses gets its status (400, 413, 414 or 431) and the
 * connection closes. Responses carry Date, Server, Content-Type and
 * Content-Length. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <tao.h>

#include "examples/common.h"

#define MAX_HEADERS 64
#define MAX_FILE (64u << 20)

static tao_codec_t codec;
static int root_fd = -1;

/* The Date header's value, made once a second per thread. */
static const char *http_date(void)
{
    static _Thread_local char buf[40];
    static _Thread_local time_t made = -1;
    time_t now = time(NULL);
    if (now != made) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        made = now;
    }
    return buf;
}

static void free_body(void *payload, void *user)
{
    free(payload);
}

/* Send a response: head, then (unless HEAD) the body, which is borrowed, or
 * owned (freed with free) when own is true. */
static void respond(tao_conn_t *conn, int status, const char *type, const void *body, size_t len,
                    bool head_only, bool close_after, const char *extra, bool own)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: tao-http-server\r\n"
                     "Content-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
                     status, tao_http_reason(status), http_date(), type, len, extra ? extra : "",
                     close_after ? "Connection: close\r\n" : "");
    tao_conn_send(conn, EX_MSG, head, (size_t)n);
    if (!head_only && len) {
        if (own && tao_conn_send_owned(conn, EX_MSG, (void *)body, len, free_body, NULL) < 0)
            free((void *)body); /* refused: it stays ours */
        else if (!own)
            tao_conn_send(conn, EX_MSG, body, len);
    } else if (own) {
        free((void *)body);
    }
    if (close_after)
        tao_conn_close(conn);
}

static void plain(tao_conn_t *conn, int status, bool head_only, bool close_after)
{
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, tao_http_reason(status));
    respond(conn, status, "text/plain", body, (size_t)n, head_only, close_after,
            status == 405 ? "Allow: GET, HEAD, POST\r\n" : NULL, false);
}

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".txt", "text/plain; charset=utf-8"},
        {".css", "text/css"},
        {".js", "text/javascript"},
        {".json", "application/json"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".svg", "image/svg+xml"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* The target's path, percent-decoded, without its query, relative to the
 * root ("" for "/"); false when it cannot name a file. */
static bool file_path(const char *target, size_t len, char *out, size_t cap)
{
    if (len == 0 || target[0] != '/')
        return false;
    size_t o = 0;
    for (size_t i = 1; i < len && target[i] != '?' && target[i] != '#'; i++) {
        char c = target[i];
        if (c == '%') {
            unsigned v;
            if (i + 2 >= len || sscanf(target + i + 1, "%2x", &v) != 1 || v == 0)
                return false;
            c = (char)v;
            i += 2;
        }
        if (o + 1 >= cap)
            return false;
        out[o++] = c;
    }
    out[o] = 0;
    return true;
}

/* Open path under the root, never beyond it. */
static int open_beneath(const char *path)
{
    struct open_how how = {.flags = O_RDONLY | O_CLOEXEC, .resolve = RESOLVE_BENEATH};
    return (int)syscall(SYS_openat2, root_fd, *path ? path : ".", &how, sizeof how);
}

static void serve_file(tao_conn_t *conn, const char *target, size_t tlen, bool head_only,
                       bool close_after)
{
    char path[1024];
    if (root_fd < 0 || !file_path(target, tlen, path, sizeof path - 16)) {
        plain(conn, 404, head_only, close_after);
        return;
    }
    int fd = open_beneath(path);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        size_t n = strlen(path);
        snprintf(path + n, sizeof path - n, "%sindex.html", n && path[n - 1] != '/' ? "/" : "");
        close(fd);
        fd = open_beneath(path);
    }
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > MAX_FILE) {
        if (fd >= 0)
            close(fd);
        plain(conn, 404, head_only, close_after);
        return;
    }
    size_t size = (size_t)st.st_size;
    char *body = malloc(size ? size : 1);
    size_t got = 0;
    while (body && got < size) {
        ssize_t r = pread(fd, body + got, size - got, (off_t)got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!body || got != size) {
        free(body);
        plain(conn, 500, head_only, close_after);
        return;
    }
    respond(conn, 200, content_type(path), body, size, head_only, close_after, NULL, true);
}

static bool target_is(const tao_http_req_t *q, const char *path)
{
    size_t n = strlen(path);
    return q->target_len >= n && memcmp(q->target, path, n) == 0 &&
           (q->target_len == n || q->target[n] == '?');
}

static bool method_is(const tao_http_req_t *q, const char *m)
{
    return q->method_len == strlen(m) && memcmp(q->method, m, q->method_len) == 0;
}

static void on_request(tao_conn_t *conn, const tao_msg_t *msg)
{
    tao_http_req_t q;
    tao_http_header_t h[MAX_HEADERS];
    if (tao_http_parse(&codec, msg->payload, msg->len, &q, h, MAX_HEADERS) < 0) {
        plain(conn, 400, false, true);
        return;
    }
    bool head = method_is(&q, "HEAD"), close_after = !q.keep_alive;
    if (method_is(&q, "POST") && target_is(&q, "/echo")) {
        uint8_t *body = malloc(q.body_len ? q.body_len : 1);
        long n = body ? tao_http_body(&codec, &q, msg->payload, msg->len, body, q.body_len) : -1;
        if (n < 0) {
            free(body);
            plain(conn, 500, false, close_after);
            return;
        }
        respond(conn, 200, "application/octet-stream", body, (size_t)n, false, close_after, NULL,
                true);
        return;
    }
    if (!head && !method_is(&q, "GET")) {
        plain(conn, 405, false, close_after);
        return;
    }
    if (target_is(&q, "/")) {
        static const char hello[] = "Hello, world!";
        respond(conn, 200, "text/plain", hello, sizeof hello - 1, head, close_after, NULL, false);
    } else if (target_is(&q, "/metrics")) {
        tao_stats_t st;
        char body[8192];
        tao_server_stats(tao_conn_server(conn), &st);
        int n = tao_stats_format(&st, body, sizeof body);
        respond(conn, 200, "text/plain; version=0.0.4", body, n > 0 ? (size_t)n : 0, head,
                close_after, NULL, false);
    } else {
        serve_file(conn, q.target, q.target_len, head, close_after);
    }
}

/* A request the codec refused: its status, then the close. */
static void on_error(tao_server_t *srv, tao_conn_t *conn, int err, const char *what)
{
    if (conn && (err == -EBADMSG || err == -EMSGSIZE || err == -ENAMETOOLONG || err == -EOVERFLOW))
        plain(conn, tao_http_status_of(err), false, false);
}

int main(int argc, char **argv)
{
    ex_opts_t o = {
        .prog = "tao-http-server",
        .what = "a small HTTP/1.1 server: hello, metrics, echo, static files (curl, wrk)",
        .takes = EX_SERVER | EX_BUFS | EX_ROOT,
        .addr = "127.0.0.1:8080",
    };
    if (ex_parse(argc, argv, &o) < 0)
        return 2;
    if (o.root && (root_fd = open(o.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "%s: --root %s: %s\n", o.prog, o.root, strerror(errno));
        return 2;
    }
    tao_http_opts_t ho = {.type = EX_MSG};
    tao_codec_http(&codec, &ho);
    tao_server_config_t cfg = {.codec = &codec, .on_error = on_error};
    int rc = ex_serve(&o, &cfg, on_request);
    if (root_fd >= 0)
        close(root_fd);
    return rc;
}
