/* tao-loadgen reports: connections lost with --allow-lost are reported,
 * in the text and in the JSON line, and are not errors; every other
 * counter still is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "perf/loadgen/lg.h"
#include "util/t_util.h"

static void test_lost_conns_are_not_errors(void **state)
{
    lg_result_t res = {.lost_conns = 3, .lost_frames = 10};
    assert_int_equal(lg_result_errors(&res), 0);
    res.closed = 1;
    assert_int_equal(lg_result_errors(&res), 1);
    res.closed = 0;
    res.corrupted = 2;
    assert_int_equal(lg_result_errors(&res), 2);
}

/* The JSON line a script reads: the lost connections and their frames,
 * and "ok" unless something else went wrong. */
static void test_json_names_lost_conns(void **state)
{
    char path[] = "/tmp/tao-test-report-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    lg_opts_t o = {.addr = "10.0.0.1:1",
                   .conns = 9,
                   .depth = 1,
                   .size = 64,
                   .allow_lost = true,
                   .json = path,
                   .label = "lost"};
    lg_result_t res = {.window_s = 1,
                       .msgs = 100,
                       .lost_conns = 3,
                       .lost_frames = 10,
                       .server_cpu_s = -1,
                       .other_cpu_s = -1};
    assert_int_equal(lg_report_json(&o, &res), 0);
    res.corrupted = 1;
    assert_int_equal(lg_report_json(&o, &res), 0);

    uint8_t *text = NULL;
    long n = t_read_file(path, &text);
    unlink(path);
    assert_true(n > 0);
    text = realloc(text, (size_t)n + 1); /* a string, for strstr */
    assert_non_null(text);
    text[n] = '\0';
    char *first = (char *)text, *second = strchr(first, '\n');
    assert_non_null(second);
    *second++ = '\0';
    assert_non_null(strstr(first, "\"lost_conns\":3,\"lost_conn_frames\":10"));
    assert_non_null(strstr(first, "\"errors\":0,"));
    assert_non_null(strstr(first, "\"ok\":true}"));
    assert_non_null(strstr(second, "\"ok\":false}"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lost_conns_are_not_errors),
        cmocka_unit_test(test_json_names_lost_conns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
