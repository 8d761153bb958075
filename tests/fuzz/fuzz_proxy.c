/* libFuzzer target for the PROXY parser: the invariants live in fuzz_checks.c,
 * shared with the corpus replay test, so a crash found here is replayed by
 * every ordinary build once its input is added to corpus/proxy/. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz/fuzz_checks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *err = t_fuzz_proxy(data, size);
    if (err != NULL) {
        fprintf(stderr, "proxy invariant broken: %s\n", err);
        abort();
    }
    return 0;
}
