/* Internal: the engine's allocation calls, and fault injection.
 *
 * The engine allocates through tao__malloc and friends (and frees with
 * free). In a build with the option TAO_FAULT_INJECTION (the asan preset
 * has it), faults are chosen by the environment, read once per process:
 *
 *   TAO_FAULT_ALLOC=N       the Nth allocation fails (counted from 1 over the
 *                           whole process; 0 counts without failing)
 *   TAO_FAULT_SHORT_SEND=1  every send is cut to a few bytes, so every
 *                           reply goes out in many short sends
 *   TAO_FAULT_SQ_FULL=N     every Nth request for an SQE finds the queue
 *                           full, and every Nth submit fails with -EBUSY
 *   TAO_FAULT_TRACE=1       print a backtrace where the allocation fails
 *
 * Without the option the calls are the C library's and the checks are
 * constant false, so release code pays nothing. */
#ifndef TAO_ENGINE_FAULT_H
#define TAO_ENGINE_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

enum tao__fault_kind {
    TAO_FAULT_SHORT_SEND,
    TAO_FAULT_SQ_FULL,
    TAO_FAULT_SUBMIT,
};

#ifdef TAO_FAULT_INJECTION
void *tao__malloc(size_t n);
void *tao__calloc(size_t n, size_t size);
void *tao__realloc(void *p, size_t n);
void *tao__aligned_alloc(size_t align, size_t n);
/* This occurrence of kind k should fail. */
bool tao__fault(enum tao__fault_kind k);
/* Allocations made so far (whether or not one failed). */
uint64_t tao__fault_allocs(void);
#else
#define tao__malloc malloc
#define tao__calloc calloc
#define tao__realloc realloc
#define tao__aligned_alloc aligned_alloc
#define tao__fault(k) false
#endif

#endif
