/* local.h - the local deployment that `oaif up` starts as child processes and `oaif run` joins:
 * where the services' executables are, the deployment's endpoints file, and children that stop
 * when the oaif process that started them dies.
 *
 * Not here: supervising the children (cmd_up.c), the trainer's run (cmd_run.c). */
#ifndef LOCAL_H
#define LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The executable of service `svc` ("ledger", "trainer"): beside this executable (installed side
 * by side), else in the build tree's services/<svc>/, else the bare name (looked up in PATH). */
void local_bin_path(char *out, size_t len, const char *svc);

/* The value of `key` in a "key=value" lines file such as <data>/endpoints (the ledger's
 * --endpoints-file: clients=..., workers=..., events=...). False when the file or the key is
 * missing. */
bool local_read_kv(const char *path, const char *key, char *out, size_t len);

/* In a child just forked from `parent`: SIGTERM when the parent dies (kill -9, the terminal
 * closed), so the child stops cleanly instead of running on orphaned, holding the ports and the
 * store's lock; exits at once if the parent died before this took hold. */
void local_stop_with_parent(pid_t parent);

#endif /* LOCAL_H */
