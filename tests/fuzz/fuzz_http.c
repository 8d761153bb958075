/* libFuzzer target for the HTTP/1.1 codec: the invariants live in fuzz_checks.c,
 * shared with the corpus replay test, so a crash found here is replayed by
 * every ordinary build once its input is added to corpus/http/. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz/fuzz_checks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *err = t_fuzz_http(data, size);
    if (err != NULL) {
        fprintf(stderr, "http invariant broken: %s\n", err);
        abort();
    }
    return 0;
}
