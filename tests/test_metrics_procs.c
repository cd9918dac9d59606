/* test_metrics_procs - every service's /metrics and /healthz on a tiny live run: a ledger, a
 * sampler, an annotator-proxy (the rules judge), a reward-scorer, a strength-estimator, an
 * evaluator and a trainer training a tiny random policy on the built-in task's prompts, each
 * started with --metrics-port 0 against the real ledger. For each: /healthz answers 200 "ok",
 * /metrics passes `promtool check metrics` (Debian's prometheus package; its lint included), and
 * holds the series a dashboard needs: the trainer's step, loss, pairs, staleness (the step and the
 * pairs moving while it trains), the judge's tokens, cost, latency and retries, the evaluator's
 * last win rate, the ledger's queues and workers; every oaif_* series that the Grafana dashboard
 * deploy/grafana-oaif.json queries is served by one of them. And `oaif up --metrics-port BASE`:
 * each child on its own port, listed in a prometheus.yml that `promtool check config` accepts.
 * Skipped, saying why, only when promtool is not installed (deploy/setup.sh installs it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "err.h"
#include "rmfixture.h"
#include "testproc.h"

enum { LEDGER, SAMPLER, JUDGE, SCORER, ESTIMATOR, EVALUATOR, TRAINER, NSVC };
static const char *const names[NSVC] = {
    "ledger",    "sampler", "annotator-proxy", "reward-scorer", "strength-estimator",
    "evaluator", "trainer"};

struct fx {
    char dir[256], ep[300], ckpt[300], sft[320], cep[256], wep[256], eep[256];
    char logs[NSVC][300];
    pid_t pid[NSVC];
    int port[NSVC];
};

/* Service k with its bus options, --metrics-port 0 and the extra words (NULL-terminated). */
static void start(struct fx *f, int k, const char *bin, bool events, const char *const *extra)
{
    char *argv[48] = {(char *)tp_bin(bin), "--clients", f->cep,           "--workers", f->wep,
                      "--heartbeat",       "200ms",     "--metrics-port", "0"};
    int n = 9;
    if (events) {
        argv[n++] = "--events";
        argv[n++] = f->eep;
    }
    for (int i = 0; extra[i] && n < 46; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    f->pid[k] = tp_spawn(argv, f->logs[k]);
    assert_true(f->pid[k] > 0);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-metrics-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->ep, sizeof f->ep, "%s/endpoints", f->dir);
    snprintf(f->ckpt, sizeof f->ckpt, "%s/ckpt", f->dir);
    snprintf(f->sft, sizeof f->sft, "%s/sft-v000000", f->ckpt);
    for (int k = 0; k < NSVC; k++)
        snprintf(f->logs[k], sizeof f->logs[k], "%s/%s.log", f->dir, names[k]);
    setenv("OMP_NUM_THREADS", "1", 1);
    assert_int_equal(mkdir(f->ckpt, 0755), 0);
    rmfx_tiny_model(f->sft, 96, 5, 0.02f); /* the loop needs room for prompt and answer */
    tp_watchdog(240, "metrics_procs", f->logs[TRAINER]);
    char db[320];
    snprintf(db, sizeof db, "%s/db", f->dir);
    char *argv[] = {(char *)tp_bin("services/ledger/ledger"),
                    "--db",
                    db,
                    "--clients",
                    "tcp://127.0.0.1:*",
                    "--workers",
                    "tcp://127.0.0.1:*",
                    "--events",
                    "tcp://127.0.0.1:*",
                    "--heartbeat",
                    "200ms",
                    "--metrics-port",
                    "0",
                    "--endpoints-file",
                    f->ep,
                    NULL};
    f->pid[LEDGER] = tp_spawn(argv, f->logs[LEDGER]);
    char port[16];
    assert_true(tp_read_kv(f->ep, "clients", f->cep, sizeof f->cep, 10000));
    assert_true(tp_read_kv(f->ep, "workers", f->wep, sizeof f->wep, 1000));
    assert_true(tp_read_kv(f->ep, "events", f->eep, sizeof f->eep, 1000));
    assert_true(tp_read_kv(f->ep, "metrics_port", port, sizeof port, 1000));
    f->port[LEDGER] = atoi(port);
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "%s task prompts --n 40 | %s import prompts - --clients %s >/dev/null 2>&1",
             tp_bin("services/oaif/oaif"), tp_bin("services/oaif/oaif"), f->cep);
    assert_int_equal(system(cmd), 0);
    start(f, SAMPLER, "services/sampler/sampler", true,
          (const char *const[]){"--checkpoint-dir", f->ckpt, "--threads", "1", NULL});
    start(f, JUDGE, "services/annotator-proxy/annotator-proxy", false,
          (const char *const[]){"--backend", "rules", NULL});
    start(f, SCORER, "services/reward-scorer/reward-scorer", true,
          (const char *const[]){"--checkpoint-dir", f->ckpt, "--threads", "1", NULL});
    start(f, ESTIMATOR, "services/strength-estimator/strength-estimator", true,
          (const char *const[]){NULL});
    start(f, EVALUATOR, "services/evaluator/evaluator", true,
          (const char *const[]){"--prompts", "4", NULL});
    /* The trainer's own flags (it is not a bus worker): a long run, scraped while it trains. */
    char *targv[] = {(char *)tp_bin("services/trainer/trainer"),
                     "--ledger",
                     f->cep,
                     "--reference",
                     f->sft,
                     "--checkpoints",
                     f->ckpt,
                     "--run",
                     "m",
                     "--steps",
                     "1000",
                     "--batch",
                     "4",
                     "--prompts-per-request",
                     "4",
                     "--checkpoint-every",
                     "2",
                     "--max-new-tokens",
                     "8",
                     "--warmup",
                     "0",
                     "--metrics-port",
                     "0",
                     NULL};
    f->pid[TRAINER] = tp_spawn(targv, f->logs[TRAINER]);
    assert_true(f->pid[TRAINER] > 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    for (int k = NSVC - 1; k >= 0; k--)
        if (f->pid[k] > 0)
            tp_stop(f->pid[k], SIGTERM);
    if (!getenv("KEEP_LOGS")) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "left %s\n", f->dir);
    } else {
        fprintf(stderr, "logs kept in %s\n", f->dir);
    }
    free(f);
    tp_watchdog(0, NULL, NULL);
    return 0;
}

/* The port a service logged ("metrics on 127.0.0.1:PORT"), waiting up to 20 s for the line. */
static int logged_port(const struct fx *f, int k)
{
    static const char needle[] = "metrics on 127.0.0.1:";
    for (int tries = 0; tries < 400; tries++) {
        FILE *fp = fopen(f->logs[k], "r");
        char line[1024];
        int port = 0;
        while (fp && fgets(line, sizeof line, fp))
            if (strstr(line, needle))
                port = atoi(strstr(line, needle) + strlen(needle));
        if (fp)
            fclose(fp);
        if (port > 0)
            return port;
        char st[200];
        if (tp_state(f->pid[k], st, sizeof st)) {
            tp_log_tail(f->logs[k], 3000);
            fail_msg("%s %s before serving its metrics", names[k], st);
        }
        usleep(50000);
    }
    tp_log_tail(f->logs[k], 3000);
    fail_msg("%s never said its metrics port", names[k]);
    return -1;
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *ud)
{
    return buf_append(ud, ptr, size * nmemb) ? 0 : size * nmemb;
}

/* GET http://127.0.0.1:port/path: the body (malloc'd) and the status. */
static char *get(int port, const char *path, long *status)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    buf_t b;
    buf_init(&b, 0);
    CURL *h = curl_easy_init();
    assert_non_null(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK)
        fail_msg("GET %s: %s", url, curl_easy_strerror(rc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(h);
    char *s = buf_steal(&b);
    return s ? s : strdup("");
}

/* Whether family `name` has a sample (any labels) in text; its first value into *v. */
static bool sample(const char *text, const char *name, double *v)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, name, n) && (p[n] == ' ' || p[n] == '{')) {
            const char *sp = strchr(p + n, ' ');
            *v = sp ? atof(sp + 1) : 0;
            return sp != NULL;
        }
    return false;
}

/* `promtool check metrics` on text: its output when it finds a problem, else NULL. */
static char *promtool(const struct fx *f, int k, const char *text)
{
    char path[400], cmd[900];
    snprintf(path, sizeof path, "%s/%s.prom", f->dir, names[k]);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    static char out[8192];
    size_t got = fread(out, 1, sizeof out - 1, p);
    out[got] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? NULL : out;
}

/* Every oaif_* family that deploy/grafana-oaif.json queries has a sample in `served` (a
 * histogram's by its _bucket series). */
static void dashboard_names_are_served(const char *served)
{
    char path[512];
    snprintf(path, sizeof path, "%s/../../deploy/grafana-oaif.json", OAIF_FIXTURES);
    FILE *fp = fopen(path, "r");
    if (!fp)
        fail_msg("%s: cannot open", path);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, fp);
    text[n] = '\0';
    fclose(fp);
    int queried = 0;
    for (const char *p = strstr(text, "oaif_"); p; p = strstr(p, "oaif_")) {
        char name[128];
        size_t k = 0;
        while (k + 1 < sizeof name &&
               (p[k] == '_' || (p[k] >= 'a' && p[k] <= 'z') || (p[k] >= '0' && p[k] <= '9')))
            name[k] = p[k], k++;
        name[k] = '\0';
        p += k;
        double v;
        if (!sample(served, name, &v))
            fail_msg("deploy/grafana-oaif.json queries %s, which no service serves", name);
        queried++;
    }
    assert_true(queried >= 30);
}

static void test_every_service_serves_checked_metrics_and_health(void **state)
{
    struct fx *f = *state;
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        fprintf(stderr, "SKIPPED: no promtool (Debian's prometheus package; deploy/setup.sh "
                        "installs it): the services' /metrics are not checked\n");
        skip();
    }
    for (int k = SAMPLER; k < NSVC; k++)
        f->port[k] = logged_port(f, k);
    /* The trainer trains: its step moves past 2 (the judge has judged by then). */
    long st = 0;
    double step = -1;
    for (int tries = 0; tries < 1800 && step < 2; tries++) {
        char *m = get(f->port[TRAINER], "/metrics", &st);
        if (!sample(m, "oaif_trainer_step", &step))
            step = -1;
        free(m);
        if (step < 2)
            usleep(50000);
    }
    if (step < 2) {
        tp_log_tail(f->logs[TRAINER], 4000);
        fail_msg("the trainer's oaif_trainer_step is %g after 90 s", step);
    }
    /* The ledger renders its services' gauges every 500 ms: wait for the five workers'
     * services (sample, annotate, score, estimate, evaluate). */
    int services = 0;
    for (int tries = 0; tries < 200 && services < 5; tries++) {
        char *m = get(f->port[LEDGER], "/metrics", &st);
        services = 0;
        for (const char *p = strstr(m, "\noaif_ledger_workers{"); p;
             p = strstr(p + 1, "\noaif_ledger_workers{"))
            services++;
        free(m);
        if (services < 5)
            usleep(50000);
    }
    assert_int_equal(services, 5);
    static const struct {
        int k;
        const char *name;
        double at_least; /* NAN: only present */
    } want[] = {
        {LEDGER, "oaif_ledger_queued", NAN},
        {LEDGER, "oaif_ledger_workers", 1},
        {SAMPLER, "oaif_sampler_policy_version", NAN},
        {SAMPLER, "oaif_sampler_responses_total", NAN},
        {JUDGE, "oaif_judge_judgements_total", NAN},
        {JUDGE, "oaif_judge_tokens_total", NAN},
        {JUDGE, "oaif_judge_cost_total", NAN},
        {JUDGE, "oaif_judge_latency_seconds_total", NAN},
        {JUDGE, "oaif_judge_http_retries_total", NAN},
        {SCORER, "oaif_reward_scorer_requests_total", NAN},
        {ESTIMATOR, "oaif_strength_estimator_requests_total", NAN},
        {EVALUATOR, "oaif_evaluator_last_win_rate", NAN},
        {EVALUATOR, "oaif_evaluator_evaluations_total", NAN},
        {TRAINER, "oaif_trainer_step", 2},
        {TRAINER, "oaif_trainer_loss", NAN},
        {TRAINER, "oaif_trainer_pairs_total", 8},
        {TRAINER, "oaif_trainer_staleness", NAN},
        {TRAINER, "oaif_trainer_pairs_set_aside_total", NAN},
        {TRAINER, "oaif_trainer_pairs_per_second", NAN},
    };
    buf_t all; /* every service's /metrics, for the dashboard's names */
    buf_init(&all, 0);
    for (int k = 0; k < NSVC; k++) {
        char *h = get(f->port[k], "/healthz", &st);
        if (st != 200 || strcmp(h, "ok\n") != 0)
            fail_msg("%s /healthz: %ld '%s'", names[k], st, h);
        free(h);
        char *m = get(f->port[k], "/metrics", &st);
        assert_int_equal(st, 200);
        const char *problem = promtool(f, k, m);
        if (problem)
            fail_msg("promtool check metrics on %s's /metrics:\n%s", names[k], problem);
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            if (want[i].k != k)
                continue;
            double v = 0;
            if (!sample(m, want[i].name, &v))
                fail_msg("%s: no %s in its /metrics", names[k], want[i].name);
            if (!isnan(want[i].at_least) && v < want[i].at_least)
                fail_msg("%s: %s is %g, expected at least %g", names[k], want[i].name, v,
                         want[i].at_least);
        }
        assert_int_equal(buf_append_str(&all, m), ERR_OK);
        free(m);
    }
    dashboard_names_are_served(all.data);
    buf_free(&all);
    /* promtool is not lenient: a name it lints is refused. */
    assert_non_null(promtool(f, LEDGER, "# HELP x_count c\n# TYPE x_count counter\nx_count 1\n"));
}

/* The first of `n` consecutive ports on 127.0.0.1 that are free now. */
static int free_ports(int n)
{
    for (int base = 20000 + (int)(getpid() % 2000) * 16; base < 60000; base += 16) {
        int ok = 0;
        for (int k = 0; k < n; k++) {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in a = {.sin_family = AF_INET,
                                    .sin_port = htons((uint16_t)(base + k)),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            ok += fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
            if (fd >= 0)
                close(fd);
        }
        if (ok == n)
            return base;
    }
    fail_msg("no %d free ports in a row", n);
    return -1;
}

/* `oaif up --metrics-port BASE` with one of each worker and an evaluator: every child serves
 * /metrics on its own port, listed in <data>/prometheus.yml, which `promtool check config`
 * accepts; each target answers /healthz and passes `promtool check metrics`. */
static void test_oaif_up_serves_every_childs_metrics(void **state)
{
    (void)state;
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        fprintf(stderr, "SKIPPED: no promtool (Debian's prometheus package)\n");
        skip();
    }
    struct fx f = {0};
    snprintf(f.dir, sizeof f.dir, "/tmp/oaif-test-metrics-up-XXXXXX");
    assert_non_null(mkdtemp(f.dir));
    char log[320], port[16], yml[320], cmd[800];
    snprintf(log, sizeof log, "%s/up.log", f.dir);
    snprintf(yml, sizeof yml, "%s/prometheus.yml", f.dir);
    int base = free_ports(8);
    snprintf(port, sizeof port, "%d", base);
    char *argv[] = {(char *)tp_bin("services/oaif/oaif"),
                    "up",
                    "--data",
                    f.dir,
                    "--clients",
                    "tcp://127.0.0.1:*",
                    "--workers",
                    "tcp://127.0.0.1:*",
                    "--events",
                    "tcp://127.0.0.1:*",
                    "--samplers",
                    "1",
                    "--annotators",
                    "1",
                    "--scorers",
                    "1",
                    "--estimators",
                    "1",
                    "--evaluators",
                    "1",
                    "--metrics-port",
                    port,
                    NULL};
    pid_t up = tp_spawn(argv, log);
    assert_true(up > 0);
    for (int tries = 0; tries < 200 && access(yml, R_OK) != 0; tries++)
        usleep(50000);
    snprintf(cmd, sizeof cmd, "promtool check config %s >%s/check-config.txt 2>&1", yml, f.dir);
    if (system(cmd) != 0) {
        snprintf(log, sizeof log, "%s/check-config.txt", f.dir);
        tp_log_tail(log, 2000);
        fail_msg("promtool check config %s failed", yml);
    }
    /* seven children: the ledger, a sampler, a judge, a scorer, an estimator, the evaluation
     * judge and an evaluator, on base .. base + 6, each named in the file */
    FILE *fp = fopen(yml, "r");
    assert_non_null(fp);
    static char text[8192];
    text[fread(text, 1, sizeof text - 1, fp)] = '\0';
    fclose(fp);
    for (int k = 0; k < 7; k++) {
        char target[64];
        snprintf(target, sizeof target, "\"127.0.0.1:%d\"", base + k);
        if (!strstr(text, target))
            fail_msg("%s lacks %s:\n%s", yml, target, text);
        long st = 0;
        char *h = NULL;
        for (int tries = 0; tries < 200; tries++) { /* the child may still be starting */
            CURL *c = curl_easy_init();
            char url[64];
            snprintf(url, sizeof url, "http://127.0.0.1:%d/healthz", base + k);
            curl_easy_setopt(c, CURLOPT_URL, url);
            curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
            CURLcode rc = curl_easy_perform(c);
            curl_easy_cleanup(c);
            if (rc == CURLE_OK)
                break;
            usleep(50000);
        }
        h = get(base + k, "/healthz", &st);
        if (st != 200)
            fail_msg("127.0.0.1:%d/healthz: %ld", base + k, st);
        free(h);
        char *m = get(base + k, "/metrics", &st);
        assert_int_equal(st, 200);
        const char *problem = promtool(&f, LEDGER, m);
        if (problem)
            fail_msg("promtool check metrics on 127.0.0.1:%d:\n%s", base + k, problem);
        free(m);
    }
    assert_non_null(strstr(text, "service: \"evaluator\", name: \"evaluator-1\""));
    assert_int_equal(tp_stop(up, SIGINT), 0);
    if (!getenv("KEEP_LOGS")) {
        snprintf(cmd, sizeof cmd, "rm -rf %s", f.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "left %s\n", f.dir);
    }
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_service_serves_checked_metrics_and_health, setup,
                                        teardown),
        cmocka_unit_test(test_oaif_up_serves_every_childs_metrics),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
