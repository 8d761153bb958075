/* tao-loadgen reports: a few lines for people, one JSON line for scripts.
 *
 * The figure that matters most on a small machine is the server's CPU time
 * per message: when the load generator saturates its own core, messages
 * per second measure the load generator, while the server's CPU per
 * message still compares servers fairly. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "perf/loadgen/lg.h"

static const char *mode_name(lg_mode_t m)
{
    return m == LG_STORM ? "storm" : m == LG_IDLE ? "idle" : "echo";
}

uint64_t lg_result_errors(const lg_result_t *res)
{
    return res->corrupted + res->lost + res->dup + res->reordered + res->closed + res->stalled +
           res->connect + res->send;
}

static double per_s(double v, double secs)
{
    return secs > 0 ? v / secs : 0;
}

static double us_per(double secs, uint64_t n)
{
    return n ? secs * 1e6 / (double)n : 0;
}

static double q_us(const lg_result_t *res, double q)
{
    return (double)lg_hist_quantile(&res->hist, q) / 1e3;
}

static void text_traffic(const lg_opts_t *o, const lg_result_t *res)
{
    double w = res->window_s;
    if (o->mode == LG_STORM)
        printf("  conns/s      %.0f (connect, echo one frame, close)\n", per_s(res->msgs, w));
    else
        printf("  msgs/s       %.0f (payload %.1f MB/s each way)\n", per_s(res->msgs, w),
               per_s(res->bytes, w) / 1e6);
    printf("  latency us   p50 %.1f  p99 %.1f  p999 %.1f  max %.1f%s\n", q_us(res, 0.5),
           q_us(res, 0.99), q_us(res, 0.999), (double)res->hist.max / 1e3,
           o->mode == LG_STORM ? " (whole cycle)" : "");
}

static void text_cpu(const lg_opts_t *o, const lg_result_t *res)
{
    double w = res->window_s;
    const char *unit = o->mode == LG_STORM ? "conn" : "msg";
    printf("  loadgen CPU  %.2f s (%.0f%% of a core), %.2f us/%s\n", res->client_cpu_s,
           100 * per_s(res->client_cpu_s, w), us_per(res->client_cpu_s, res->msgs), unit);
    if (res->server_cpu_s >= 0)
        printf("  server CPU   %.2f s (%.0f%% of a core), %.2f us/%s  <- server CPU per %s\n",
               res->server_cpu_s, 100 * per_s(res->server_cpu_s, w),
               us_per(res->server_cpu_s, res->msgs), unit,
               o->mode == LG_STORM ? "connection" : "message");
    if (res->other_cpu_s >= 0)
        printf("  other CPU    %.2f s (%.0f%% of a core) used by other processes meanwhile\n",
               res->other_cpu_s, 100 * per_s(res->other_cpu_s, w));
}

void lg_report_text(const lg_opts_t *o, const lg_result_t *res)
{
    printf("tao-loadgen %s %s: C=%u D=%u S=%zu type=%d loops=%u, ", mode_name(o->mode), o->addr,
           o->conns, o->depth, o->size, (int)o->type, o->loops);
    if (o->mode == LG_IDLE)
        printf("held %.2f s\n", res->window_s);
    else
        printf("%.2f s measured after %.2f s warmup\n", res->window_s, o->warmup);
    if (o->mode == LG_IDLE) {
        printf("  idle conns   %u held\n", res->idle_conns);
        if (res->rss_before_kb >= 0 && res->idle_conns)
            printf("  server RSS   %ld KiB -> %ld KiB: %.0f bytes per idle connection\n",
                   res->rss_before_kb, res->rss_after_kb,
                   (double)(res->rss_after_kb - res->rss_before_kb) * 1024 / res->idle_conns);
    } else {
        text_traffic(o, res);
        text_cpu(o, res);
    }
    printf("  errors       corrupted %llu  lost %llu  duplicated %llu  reordered %llu  "
           "closed %llu  stalled %llu  connect %llu  send %llu\n",
           (unsigned long long)res->corrupted, (unsigned long long)res->lost,
           (unsigned long long)res->dup, (unsigned long long)res->reordered,
           (unsigned long long)res->closed, (unsigned long long)res->stalled,
           (unsigned long long)res->connect, (unsigned long long)res->send);
    if (o->allow_lost)
        printf("  lost conns   %llu closed by the server, %llu frames unanswered on them "
               "(allowed)\n",
               (unsigned long long)res->lost_conns, (unsigned long long)res->lost_frames);
    printf("  result       %s\n", lg_result_errors(res) ? "FAILED" : "OK");
    fflush(stdout);
}

/* JSON strings: the label comes from the command line, so escape it. */
static void json_str(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    out[n++] = '"';
    for (; s && *s && n + 8 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            n += (size_t)snprintf(out + n, cap - n, "\\%c", ch);
        else if (ch < 0x20)
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", ch);
        else
            out[n++] = (char)ch;
    }
    out[n++] = '"';
    out[n] = '\0';
}

static int json_errors(char *p, size_t cap, const lg_result_t *res)
{
    return snprintf(p, cap,
                    "\"errors\":%llu,\"corrupted\":%llu,\"lost\":%llu,\"duplicated\":%llu,"
                    "\"reordered\":%llu,\"closed\":%llu,\"stalled\":%llu,\"connect_errors\":%llu,"
                    "\"send_errors\":%llu,\"lost_conns\":%llu,\"lost_conn_frames\":%llu",
                    (unsigned long long)lg_result_errors(res), (unsigned long long)res->corrupted,
                    (unsigned long long)res->lost, (unsigned long long)res->dup,
                    (unsigned long long)res->reordered, (unsigned long long)res->closed,
                    (unsigned long long)res->stalled, (unsigned long long)res->connect,
                    (unsigned long long)res->send, (unsigned long long)res->lost_conns,
                    (unsigned long long)res->lost_frames);
}

static int json_numbers(char *p, size_t cap, const lg_opts_t *o, const lg_result_t *res)
{
    double w = res->window_s;
    double srv = res->server_cpu_s;
    long growth = res->rss_after_kb - res->rss_before_kb;
    return snprintf(
        p, cap,
        "\"window_s\":%.4f,\"msgs\":%llu,\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,"
        "\"p50_us\":%.2f,\"p99_us\":%.2f,\"p999_us\":%.2f,\"max_us\":%.2f,"
        "\"client_cpu_s\":%.4f,\"client_cpu_us_per_msg\":%.4f,\"server_cpu_s\":%.4f,"
        "\"server_cpu_us_per_msg\":%.4f,\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,"
        "\"other_cpu_s\":%.4f,\"idle_conns\":%u,\"bytes_per_idle_conn\":%.1f",
        w, (unsigned long long)res->msgs, per_s(res->msgs, w), per_s(res->bytes, w) / 1e6,
        q_us(res, 0.5), q_us(res, 0.99), q_us(res, 0.999), (double)res->hist.max / 1e3,
        res->client_cpu_s, us_per(res->client_cpu_s, res->msgs), srv,
        srv >= 0 ? us_per(srv, res->msgs) : -1.0, res->rss_before_kb, res->rss_after_kb,
        res->other_cpu_s, res->idle_conns,
        res->idle_conns && res->rss_before_kb >= 0 ? (double)growth * 1024 / res->idle_conns
                                                   : -1.0);
}

int lg_report_json(const lg_opts_t *o, const lg_result_t *res)
{
    char label[512], line[2048];
    json_str(label, sizeof label, o->label ? o->label : "");
    int n = snprintf(line, sizeof line,
                     "{\"label\":%s,\"mode\":\"%s\",\"conns\":%u,\"depth\":%u,\"size\":%zu,"
                     "\"loops\":%u,\"duration_s\":%.3f,\"warmup_s\":%.3f,",
                     label, mode_name(o->mode), o->conns, o->depth, o->size, o->loops, o->duration,
                     o->warmup);
    n += json_numbers(line + n, sizeof line - (size_t)n, o, res);
    line[n++] = ',';
    n += json_errors(line + n, sizeof line - (size_t)n, res);
    n += snprintf(line + n, sizeof line - (size_t)n, ",\"ok\":%s}\n",
                  lg_result_errors(res) ? "false" : "true");

    int fd = open(o->json, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    /* One write with O_APPEND: lines from concurrent runs never interleave. */
    ssize_t w = write(fd, line, (size_t)n);
    int err = w == n ? 0 : (w < 0 ? -errno : -EIO);
    close(fd);
    return err;
}
