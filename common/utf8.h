/* utf8.h - UTF-8 validation shared by everything that passes model text on: a model writes bytes,
 * and JSON, protobuf strings and the ledger want valid UTF-8.
 *
 *     char *t = utf8_clean(bytes, n);    // every bad byte and NUL becomes U+FFFD
 */
#ifndef OAIF_UTF8_H
#define OAIF_UTF8_H

#include <stddef.h>

/* The length (1-4) of the valid UTF-8 sequence at t[0..len), or 0 when t[0] does not start one:
 * a stray continuation byte, an overlong form, a surrogate, past U+10FFFF, or cut short. NUL is
 * a valid one-byte sequence here; len 0 gives 0. */
size_t utf8_seq(const unsigned char *t, size_t len);

/* Copy len bytes of text into a malloc'd NUL-terminated string that is valid UTF-8: every byte
 * that does not start a valid sequence, and every NUL, becomes U+FFFD. NULL when out of memory. */
char *utf8_clean(const char *text, size_t len);

#endif /* OAIF_UTF8_H */
