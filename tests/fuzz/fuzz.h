/* fuzz.h - what every libFuzzer target of tests/fuzz defines, and the helpers they share.
 *
 * A target is one file fuzz_<name>.c defining LLVMFuzzerTestOneInput (and, when it needs set-up,
 * LLVMFuzzerInitialize). Built with clang and -DOAIF_FUZZ=ON it links libFuzzer's main
 * (fuzz_<name>); in every build it also links replay.c (test_fuzz_<name>, a ctest) which feeds
 * the committed seeds and crash regressions to the same function, so a crash once found stays
 * fixed in the plain and sanitizer builds. A target returns 0; a broken invariant it checks
 * (a round trip that does not give back what it wrote) is fuzz_fail(), which aborts. */
#ifndef FUZZ_H
#define FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Writes data to a file `name` in this process's scratch directory (made on first use under
 * $TMPDIR, else /dev/shm, else /tmp; removed at exit) and returns its path, valid until the next
 * call with the same name. Aborts when the file cannot be written: a fuzz run on a full disk is no
 * run. */
const char *fuzz_file(const char *name, const void *data, size_t size);

/* The scratch directory itself (made on first use). */
const char *fuzz_dir(void);

/* A NUL-terminated malloc'd copy of data (never NULL: aborts when out of memory). */
char *fuzz_strndup(const void *data, size_t size);

/* Is s (up to its NUL) valid UTF-8? */
bool fuzz_utf8(const char *s);

/* Prints "fuzz invariant broken: <what>" to stderr and aborts. */
void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif /* FUZZ_H */
