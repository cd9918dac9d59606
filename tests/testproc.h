/* testproc.h - start and stop real processes from integration tests. */
#ifndef TESTPROC_H
#define TESTPROC_H

#include <stdbool.h>
#include <sys/types.h>

/* Start argv[0] with argv (NULL-terminated), stderr appended to `log` (NULL: inherited).
 * Returns the pid, or -1. */
pid_t tp_spawn(char *const argv[], const char *log);
/* Send `sig` and wait for the process (SIGKILL after 5 s if it does not exit). Returns the
 * exit status as waitpid gives it. */
int tp_stop(pid_t pid, int sig);
/* Wait until `path` exists and holds "key=value" for `key`; copy the value. false on timeout. */
bool tp_read_kv(const char *path, const char *key, char *out, size_t outlen, int timeout_ms);
/* Path of a built binary below the build directory, e.g. "services/ledger/ledger". */
const char *tp_bin(const char *rel);

#endif
