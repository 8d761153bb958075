/* libFuzzer target for the RESP codec: the invariants live in fuzz_checks.c,
 * shared with the corpus replay test, so a crash found here is replayed by
 * every ordinary build once its input is added to corpus/resp/. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz/fuzz_checks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *err = t_fuzz_resp(data, size);
    if (err != NULL) {
        fprintf(stderr, "resp invariant broken: %s\n", err);
        abort();
    }
    return 0;
}
