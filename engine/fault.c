/* Fault injection for tests (see fault.h); compiled to nothing without
 * TAO_FAULT_INJECTION. */
#include "engine/fault.h"

#ifdef TAO_FAULT_INJECTION
#include <execinfo.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static uint64_t fail_alloc, sq_every;
static bool short_sends;
static atomic_uint_fast64_t allocs, sq_calls, submits;

static uint64_t env(const char *name)
{
    const char *v = getenv(name);
    return v ? strtoull(v, NULL, 10) : 0;
}

static void read_env(void)
{
    fail_alloc = env("TAO_FAULT_ALLOC");
    short_sends = env("TAO_FAULT_SHORT_SEND") != 0;
    sq_every = env("TAO_FAULT_SQ_FULL");
}

/* This allocation is the one that fails. With TAO_FAULT_TRACE set, say
 * where, to look into one fault by hand. */
static bool alloc_fails(void)
{
    pthread_once(&once, read_env);
    if (atomic_fetch_add(&allocs, 1) + 1 != fail_alloc)
        return false;
    if (getenv("TAO_FAULT_TRACE")) {
        void *frames[16];
        backtrace_symbols_fd(frames, backtrace(frames, 16), 2);
    }
    return true;
}

void *tao__malloc(size_t n)
{
    return alloc_fails() ? NULL : malloc(n);
}

void *tao__calloc(size_t n, size_t size)
{
    return alloc_fails() ? NULL : calloc(n, size);
}

void *tao__realloc(void *p, size_t n)
{
    return alloc_fails() ? NULL : realloc(p, n);
}

void *tao__aligned_alloc(size_t align, size_t n)
{
    return alloc_fails() ? NULL : aligned_alloc(align, n);
}

bool tao__fault(enum tao__fault_kind k)
{
    pthread_once(&once, read_env);
    switch (k) {
    case TAO_FAULT_SHORT_SEND:
        return short_sends;
    case TAO_FAULT_SQ_FULL:
        return sq_every && (atomic_fetch_add(&sq_calls, 1) + 1) % sq_every == 0;
    case TAO_FAULT_SUBMIT:
        return sq_every && (atomic_fetch_add(&submits, 1) + 1) % sq_every == 0;
    }
    return false;
}

uint64_t tao__fault_allocs(void)
{
    return atomic_load(&allocs);
}
#else
/* ISO C wants something in every translation unit. */
typedef int tao__fault_unused;
#endif
