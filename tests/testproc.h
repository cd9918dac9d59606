/* testproc.h - start and stop real processes from integration tests. */
#ifndef TESTPROC_H
#define TESTPROC_H

#include <stdbool.h>
#include <sys/types.h>

/* Start argv[0] with argv (NULL-terminated), stderr appended to `log` (NULL: inherited).
 * The child is killed when the test process dies. Returns the pid, or -1. */
pid_t tp_spawn(char *const argv[], const char *log);
/* Does the process still run (or has it exited and not been waited for)? Does not reap it. */
bool tp_alive(pid_t pid);
/* NULL while the process runs; else how it ended ("exited with status 1", "killed by signal
 * 11 (Segmentation fault)"), written to buf. Does not reap it. */
const char *tp_state(pid_t pid, char *buf, size_t len);
/* Send `sig` and wait for the process (SIGKILL after 5 s if it does not exit). Returns the
 * exit status as waitpid gives it. */
int tp_stop(pid_t pid, int sig);
/* Wait until `path` exists and holds "key=value" for `key`; copy the value. false on timeout. */
bool tp_read_kv(const char *path, const char *key, char *out, size_t outlen, int timeout_ms);
/* Path of a built binary below the build directory, e.g. "services/ledger/ledger". */
const char *tp_bin(const char *rel);
/* Starts the ledger on loopback with free ports, its store in dir/db, no events, stderr appended
 * to `log`, then `extra` flags (NULL-terminated; may be NULL); waits (10 s) for the endpoints
 * file dir/endpoints to name `key` ("clients", "metrics_port", ...) and copies its value to out.
 * Returns the pid, or -1 (a started ledger is killed). */
pid_t tp_ledger(const char *dir, const char *log, const char *const *extra, const char *key,
                char *out, size_t outlen);

/* Lines of the file at `path` that hold `needle` (0 if it cannot be read). */
int tp_log_count(const char *path, const char *needle);

/* Copy the last `bytes` of the file at `path` to stderr (nothing if it cannot be read).
 * Async-signal-safe. */
void tp_log_tail(const char *path, long bytes);
/* Arm (seconds > 0) or disarm (0) a watchdog: if the test still runs after `seconds`, it writes
 * which test (`what`) and the last 12 kB of `log` (the services' log; NULL: none) to stderr and
 * exits 99, so that a hang fails with what the services said instead of a silent ctest
 * timeout. Children started with tp_spawn die with the test. Uses SIGALRM. */
void tp_watchdog(int seconds, const char *what, const char *log);

#endif
