/* Invariant checks shared by the libFuzzer targets and the corpus replay
 * test (t_fuzz_*). Each one decodes its input as a stream, frame after frame,
 * and compares every result with an independent model of the codec. */
#ifndef TAO_TESTS_FUZZ_CHECKS_H
#define TAO_TESTS_FUZZ_CHECKS_H

#include <stddef.h>
#include <stdint.h>

/* The whole input is a TLV stream, decoded with the default maximum and with
 * a 16-byte one. */
const char *t_fuzz_tlv(const uint8_t *data, size_t size);

/* The first 5 bytes choose the length-field settings (see fuzz_checks.c),
 * the rest is the stream. */
const char *t_fuzz_lenfield(const uint8_t *data, size_t size);

/* The whole input is a text stream, decoded with several delimiters and
 * line limits. */
const char *t_fuzz_line(const uint8_t *data, size_t size);

/* The whole input is a RESP stream, decoded as requests and as replies,
 * with the default limits and with tiny ones. */
const char *t_fuzz_resp(const uint8_t *data, size_t size);

/* The whole input is a stream of HTTP/1.1 requests, decoded with the
 * default limits and with tiny ones. */
const char *t_fuzz_http(const uint8_t *data, size_t size);

/* The input starts with a PROXY header (or not), and headers follow each
 * other. */
const char *t_fuzz_proxy(const uint8_t *data, size_t size);

/* Each returns NULL when every invariant holds, or a static description of
 * the first one broken. */

#endif
