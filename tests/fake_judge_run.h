/* fake_judge_run.h - start and stop tests/fake_judge as a child process on 127.0.0.1 with an
 * ephemeral port, and read its /stats (for the judge tests and the benchmark). */
#ifndef FAKE_JUDGE_RUN_H
#define FAKE_JUDGE_RUN_H

#include <jansson.h>
#include <sys/types.h>

struct fake_judge {
    pid_t pid;
    int port;
    char base_url[64]; /* "http://127.0.0.1:<port>/v1" */
};

/* Starts FAKE_JUDGE_BIN with the NULL-terminated extra flags (may be NULL); waits for its port.
 * Returns 0 or -1 (message on stderr). */
int fake_judge_start(struct fake_judge *fj, const char *const *flags);

/* SIGTERM and reap. Safe on a judge that never started (pid 0). */
void fake_judge_stop(struct fake_judge *fj);

/* GET /stats (blocking); NULL on failure. The caller json_decref()s it. */
json_t *fake_judge_stats(const struct fake_judge *fj);

/* POST /reset (blocking); 0 or -1. */
int fake_judge_reset(const struct fake_judge *fj);

#endif /* FAKE_JUDGE_RUN_H */
