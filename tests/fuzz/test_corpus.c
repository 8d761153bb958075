/* Replays every committed fuzz corpus file through the fuzz invariants, so
 * that each past crash stays a regression test in every build, fuzzer or
 * not. The corpus is found through TAO_SOURCE_DIR, which ctest sets. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_checks.h"
#include "util/t_util.h"

typedef const char *(*check_fn)(const uint8_t *data, size_t size);

/* Returns the number of files replayed. */
static int replay(const char *name, check_fn check)
{
    const char *root = getenv("TAO_SOURCE_DIR");
    if (root == NULL)
        fail_msg("TAO_SOURCE_DIR is not set: run through ctest");
    char dir[4096], path[4096 + 256];
    snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", root, name);
    DIR *d = opendir(dir);
    if (d == NULL)
        fail_msg("cannot open %s", dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        uint8_t *data = NULL;
        long len = t_read_file(path, &data);
        if (len < 0)
            fail_msg("cannot read %s", path);
        const char *err = check(data, (size_t)len);
        free(data);
        if (err != NULL)
            fail_msg("%s: %s", path, err);
        n++;
    }
    closedir(d);
    return n;
}

static void test_tlv(void **state)
{
    assert_true(replay("tlv", t_fuzz_tlv) >= 10);
}

static void test_lenfield(void **state)
{
    assert_true(replay("lenfield", t_fuzz_lenfield) >= 10);
}

static void test_line(void **state)
{
    assert_true(replay("line", t_fuzz_line) >= 10);
}

static void test_resp(void **state)
{
    assert_true(replay("resp", t_fuzz_resp) >= 10);
}

static void test_http(void **state)
{
    assert_true(replay("http", t_fuzz_http) >= 10);
}

static void test_proxy(void **state)
{
    assert_true(replay("proxy", t_fuzz_proxy) >= 10);
}

/* Empty and tiny inputs take the early returns a corpus may not reach. */
static void test_trivial_inputs(void **state)
{
    static const uint8_t zero[16];
    for (size_t n = 0; n <= sizeof(zero); n++) {
        assert_null(t_fuzz_tlv(zero, n));
        assert_null(t_fuzz_lenfield(zero, n));
        assert_null(t_fuzz_line(zero, n));
        assert_null(t_fuzz_resp(zero, n));
        assert_null(t_fuzz_http(zero, n));
        assert_null(t_fuzz_proxy(zero, n));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tlv),
        cmocka_unit_test(test_lenfield),
        cmocka_unit_test(test_line),
        cmocka_unit_test(test_resp),
        cmocka_unit_test(test_http),
        cmocka_unit_test(test_proxy),
        cmocka_unit_test(test_trivial_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
