/* nn_threads.c - see nn_threads.h. */
#include "nn_threads.h"

#include <cblas.h>
#include <fcntl.h>
#include <omp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Set in the environment of the program executed again, so that it does not do it once more. */
#define REEXEC_MARK "OAIF_THREADS_REEXEC"

void nn_threads_apply(int threads)
{
    if (threads <= 0)
        return;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
}

int nn_threads_count(void)
{
    return omp_get_max_threads();
}

/* This process's argv as it started, from /proc/self/cmdline (its words NUL-terminated, one
 * after the other): NULL-terminated, in one allocation; NULL when it cannot be read. */
static char **own_argv(void)
{
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    ssize_t got = 1;
    while (text && got > 0) {
        if (len == cap) {
            char *t = realloc(text, cap *= 2);
            if (!t) {
                free(text);
                text = NULL;
                break;
            }
            text = t;
        }
        got = read(fd, text + len, cap - len);
        if (got > 0)
            len += (size_t)got;
    }
    close(fd);
    if (!text || got < 0 || len == 0 || text[len - 1] != '\0') {
        free(text);
        return NULL;
    }
    size_t words = 0;
    for (size_t i = 0; i < len; i++)
        words += text[i] == '\0';
    char **argv = malloc((words + 1) * sizeof *argv + len); /* the pointers, then the words */
    if (argv) {
        char *w = memcpy((char *)(argv + words + 1), text, len);
        for (size_t k = 0; k < words; k++, w += strlen(w) + 1)
            argv[k] = w;
        argv[words] = NULL;
    }
    free(text);
    return argv;
}

void nn_threads_setup(const char *who, int threads)
{
    char want[16] = "";
    if (threads > 0)
        snprintf(want, sizeof want, "%d", threads);
    const char *n = getenv("OMP_NUM_THREADS"), *policy = getenv("OMP_WAIT_POLICY");
    /* what libgomp read at start (the environment as it was) */
    const char *started = policy ? policy : "unset (libgomp spins, then sleeps)";
    bool stale = (want[0] && (!n || strcmp(n, want) != 0)) || !policy;
    char **argv = stale && !getenv(REEXEC_MARK) ? own_argv() : NULL;
    if (argv) {
        if (want[0])
            setenv("OMP_NUM_THREADS", want, 1);
        if (!policy)
            setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
        setenv(REEXEC_MARK, "1", 1);
        fflush(NULL);
        execv("/proc/self/exe", argv);
        log_warn("%s: executing /proc/self/exe again for OMP_NUM_THREADS=%s "
                 "OMP_WAIT_POLICY=PASSIVE failed (%m): the wait policy stays as it started",
                 who, want[0] ? want : "(unset)");
        free(argv);
    }
    unsetenv(REEXEC_MARK); /* the processes this one starts decide for themselves */
    nn_threads_apply(threads);
    log_info("%s: threads: %d OpenMP (OMP_WAIT_POLICY %s)", who, nn_threads_count(), started);
}
