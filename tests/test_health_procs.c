/* test_health_procs - `oaif health`, the container image's HEALTHCHECK, against a real ledger's
 * /healthz: 0 when it answers 200, 1 for another status or nothing listening, 2 for bad usage;
 * the URL from the argument, else from $OAIF_HEALTH_URL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testproc.h"

struct fx {
    char dir[256], log[300], mport[16];
    pid_t ledger;
};

/* Runs `oaif health` with argv's words (NULL-terminated) and returns its exit status. */
static int health(struct fx *f, const char *const *words)
{
    char *argv[8] = {(char *)tp_bin("services/oaif/oaif"), "health"};
    int n = 2;
    for (int i = 0; words[i]; i++)
        argv[n++] = (char *)words[i];
    argv[n] = NULL;
    pid_t p = tp_spawn(argv, f->log);
    assert_true(p > 0);
    int st = 0;
    assert_int_equal(waitpid(p, &st, 0), p);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-health-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->log, sizeof f->log, "%s/log", f->dir);
    f->ledger = tp_ledger(f->dir, f->log, (const char *[]){"--metrics-port", "0", NULL},
                          "metrics_port", f->mport, sizeof f->mport);
    if (f->ledger <= 0) {
        free(f);
        return -1;
    }
    tp_watchdog(60, "health", f->log);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    if (f->ledger > 0)
        tp_stop(f->ledger, SIGTERM);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static void test_health(void **state)
{
    struct fx *f = *state;
    char ok[128], missing[128];
    snprintf(ok, sizeof ok, "http://127.0.0.1:%s/healthz", f->mport);
    snprintf(missing, sizeof missing, "http://127.0.0.1:%s/nothing-here", f->mport);
    /* the ledger answers 503 until its loop has turned: retried, as HEALTHCHECK --retries does */
    int rc = 1;
    for (int i = 0; i < 50 && rc != 0; i++) {
        rc = health(f, (const char *[]){ok, NULL});
        if (rc != 0)
            usleep(100 * 1000);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(health(f, (const char *[]){ok, NULL}), 0);
    assert_int_equal(health(f, (const char *[]){missing, NULL}), 1); /* 404 */
    assert_int_equal(health(f, (const char *[]){ok, ok, NULL}), 2);  /* one URL at most */
    assert_int_equal(health(f, (const char *[]){ok, "--timeout", "soon", NULL}), 2);

    /* no argument: $OAIF_HEALTH_URL */
    setenv("OAIF_HEALTH_URL", ok, 1);
    assert_int_equal(health(f, (const char *[]){NULL}), 0);
    setenv("OAIF_HEALTH_URL", missing, 1);
    assert_int_equal(health(f, (const char *[]){NULL}), 1);
    unsetenv("OAIF_HEALTH_URL");

    /* nothing listening any more: refused, not a hang */
    tp_stop(f->ledger, SIGTERM);
    f->ledger = 0;
    assert_int_equal(health(f, (const char *[]){ok, "--timeout", "2s", NULL}), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_health, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
