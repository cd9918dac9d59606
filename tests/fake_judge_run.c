/* fake_judge_run.c - see fake_judge_run.h. */
#include "fake_judge_run.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http.h"

int fake_judge_start(struct fake_judge *fj, const char *const *flags)
{
    memset(fj, 0, sizeof *fj);
    const char *argv[40] = {FAKE_JUDGE_BIN, "0"};
    int n = 2;
    for (int i = 0; flags && flags[i] && n < 39; i++)
        argv[n++] = flags[i];
    argv[n] = NULL;
    int pfd[2];
    if (pipe(pfd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pfd[1]);
    FILE *f = fdopen(pfd[0], "r");
    char line[64] = "";
    int port = 0;
    if (f && fgets(line, sizeof line, f))
        sscanf(line, "PORT %d", &port);
    if (f)
        fclose(f);
    else
        close(pfd[0]);
    fj->pid = pid;
    if (port <= 0) {
        fprintf(stderr, "fake_judge did not report its port\n");
        fake_judge_stop(fj);
        return -1;
    }
    fj->port = port;
    snprintf(fj->base_url, sizeof fj->base_url, "http://127.0.0.1:%d/v1", port);
    return 0;
}

void fake_judge_stop(struct fake_judge *fj)
{
    if (fj->pid > 0) {
        kill(fj->pid, SIGTERM);
        waitpid(fj->pid, NULL, 0);
    }
    fj->pid = 0;
}

struct sync_result {
    int done;
    int rc;
    char *body;
};

static void on_done(void *user, const struct http_response *resp)
{
    struct sync_result *r = user;
    r->done = 1;
    r->rc = resp->rc;
    r->body = strdup(resp->body);
}

static char *fetch(const struct fake_judge *fj, const char *method, const char *path)
{
    http_client_t *c = NULL;
    struct http_config cfg = http_config_default();
    cfg.max_attempts = 1;
    if (http_client_new(&c, &cfg))
        return NULL;
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", fj->port, path);
    struct http_request req = {.method = method, .url = url};
    if (strcmp(method, "POST") == 0) {
        req.body = "{}";
        req.body_len = 2;
    }
    struct sync_result r = {0};
    if (http_client_submit(c, &req, on_done, &r) == 0)
        for (int i = 0; i < 1000 && !r.done; i++)
            http_client_poll(c, 10, NULL, 0);
    http_client_destroy(&c);
    if (r.rc) {
        free(r.body);
        return NULL;
    }
    return r.body;
}

json_t *fake_judge_stats(const struct fake_judge *fj)
{
    char *s = fetch(fj, "GET", "/stats");
    if (!s)
        return NULL;
    json_t *j = json_loads(s, 0, NULL);
    free(s);
    return j;
}

int fake_judge_reset(const struct fake_judge *fj)
{
    char *s = fetch(fj, "POST", "/reset");
    free(s);
    return s ? 0 : -1;
}
