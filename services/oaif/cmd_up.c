/* cmd_up.c - `oaif up`: a local deployment as child processes (the embedded default).
 *
 * It starts the ledger (store and logs under --data), waits for its endpoints, then the samplers,
 * annotator-proxies, reward-scorers and strength-estimators connected to it (and with --train the
 * trainer, which runs the run file's run), writes <data>/endpoints for the other commands, and
 * supervises: a service that exits unexpectedly is started again (after 1 s, doubling to 30 s); one
 * that exits with status 2 (bad configuration) stops everything with its log's last line. The
 * trainer exits 0 when its run is done and is not started again; the deployment stays up for `oaif
 * eval`, `oaif export` and the like. Ctrl-C (SIGINT) or SIGTERM stops the services in reverse
 * order: SIGTERM, then SIGKILL after 10 s.
 *
 * Thread budgets: the services that compute (the trainer, the samplers, the reward-scorers) get
 * engine threads by their shares (--trainer-share, ...) of the machine's cores (--threads): by
 * default each the share of the largest share (so, all shares equal, every one all the cores: the
 * trainer and the sampler mostly take turns, and measured so the loop ran 1.06-3x faster than
 * divided), with --divide the cores divided by the sum of the shares; each at least one thread.
 * Each is started with --threads N and OMP_NUM_THREADS=N, idle threads sleeping
 * (OMP_WAIT_POLICY=PASSIVE unless set), and <data>/threads records them for `oaif run`, which gives
 * the trainer its budget. Spinning on all the cores, the sampler and the trainer slowed each other
 * down 10x and more (README, Performance). */
#define _GNU_SOURCE /* sched_getaffinity: the CPUs this process may run on */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "cli.h"
#include "cmd.h"
#include "local.h"

#define UP_MAX      32 /* children: the ledger, the trainer, and the workers */
#define UP_PASS_MAX 16 /* --annotator-arg or --trainer-arg words */

struct up_opts {
    char *data_dir;
    char *clients, *workers, *events; /* where the ledger listens */
    int samplers, annotators, scorers, estimators;
    int evaluators; /* and with them one evaluation judge */
    bool train;
    int metrics_port; /* -1: none; else the ledger's /metrics port, the others' the next ones */
    int threads;      /* cores the computing services share (0: the CPUs this process may use) */
    int trainer_share, sampler_share, scorer_share;
    bool divide; /* the cores divided among them, not shared */
};

#define O struct up_opts
static const struct cfg_option options[] = {
    CFG_STRING_OPT(O, data_dir, .key = "oaif.up.data_dir", .def = "data/local", .flag = "--data",
                   .help = "The deployment's directory (the ledger's store, logs, endpoints)."),
    CFG_INT_OPT(O, samplers, .key = "oaif.up.samplers", .def = "1", .min = 0, .max = UP_MAX - 2,
                .flag = "--samplers", .help = "Sampler processes."),
    CFG_INT_OPT(O, annotators, .key = "oaif.up.annotators", .def = "2", .min = 0, .max = UP_MAX - 2,
                .flag = "--annotators", .help = "Annotator-proxy processes."),
    CFG_INT_OPT(O, scorers, .key = "oaif.up.scorers", .def = "0", .min = 0, .max = UP_MAX - 2,
                .flag = "--scorers",
                .help = "Reward-scorer processes (the ensemble and its members come from the run "
                        "file's reward_scorer section)."),
    CFG_INT_OPT(O, estimators, .key = "oaif.up.estimators", .def = "0", .min = 0, .max = UP_MAX - 2,
                .flag = "--estimators",
                .help = "Strength-estimator processes (the estimate service; its policy comes "
                        "from the run file's strength_estimator section)."),
    CFG_INT_OPT(O, evaluators, .key = "oaif.up.evaluators", .def = "0", .min = 0, .max = 4,
                .flag = "--evaluators",
                .help = "Evaluator processes (the run file's evaluator section), and with them "
                        "one annotator-proxy serving annotate-eval without noise, the evaluation "
                        "judge."),
    CFG_BOOL_OPT(O, train, .key = "oaif.up.train", .flag = "--train",
                 .help = "Also the trainer, which runs the run file's run, then exits."),
    CFG_INT_OPT(O, metrics_port, .key = "oaif.up.metrics_port", .def = "-1", .min = -1,
                .max = 65535 - UP_MAX, .flag = "--metrics-port",
                .help = "/metrics and /healthz on 127.0.0.1: the ledger on this port, each other "
                        "service on the next ones, in <data>/prometheus.yml (-1: none)."),
    CFG_INT_OPT(O, threads, .key = "oaif.up.threads", .def = "0", .min = 0, .max = 4096,
                .flag = "--threads",
                .help = "Cores the services that compute (trainer, samplers, reward-scorers) "
                        "get threads of: each its share's part of the largest share (with "
                        "--divide: of the sum), at least 1 (0: the CPUs this process may run "
                        "on)."),
    CFG_BOOL_OPT(O, divide, .key = "oaif.up.divide", .flag = "--divide",
                 .help = "Divide --threads among the services that compute by their shares (for "
                         "processes busy at the same time) instead of giving each its share of "
                         "all of them, idle threads sleeping (they mostly take turns)."),
    CFG_INT_OPT(O, trainer_share, .key = "oaif.up.trainer_share", .def = "1", .min = 0, .max = 1000,
                .flag = "--trainer-share",
                .help = "The trainer's share of --threads (`oaif run`'s or --train's; counted "
                        "whether or not it runs yet)."),
    CFG_INT_OPT(O, sampler_share, .key = "oaif.up.sampler_share", .def = "1", .min = 0, .max = 1000,
                .flag = "--sampler-share", .help = "Each sampler's share."),
    CFG_INT_OPT(O, scorer_share, .key = "oaif.up.scorer_share", .def = "1", .min = 0, .max = 1000,
                .flag = "--scorer-share", .help = "Each reward-scorer's share."),
    CFG_STRING_OPT(O, clients, .key = "oaif.up.clients_bind", .def = BUS_DEFAULT_CLIENTS,
                   .flag = "--clients",
                   .help = "Where the ledger listens for callers (port * picks a free one)."),
    CFG_STRING_OPT(O, workers, .key = "oaif.up.workers_bind", .def = BUS_DEFAULT_WORKERS,
                   .flag = "--workers", .help = "Where the ledger listens for workers."),
    CFG_STRING_OPT(O, events, .key = "oaif.up.events_bind", .def = BUS_DEFAULT_EVENTS,
                   .flag = "--events", .help = "Where the ledger publishes its events."),
};
#undef O

static const struct cfg_spec spec = {
    .name = "oaif up",
    .summary = "A local deployment: the ledger, samplers, annotator-proxies, reward-scorers and\n"
               "strength-estimators (with --train the trainer too) as child processes, restarted "
               "when they die; Ctrl-C stops them.\n"
               "The run file (--config) goes to every service. Also: --annotator-arg ARG and\n"
               "--trainer-arg ARG (repeatable) pass ARG to every annotator-proxy / the trainer.",
    .options = options,
    .n_options = sizeof options / sizeof options[0],
    .conf_size = sizeof(struct up_opts),
};

struct child {
    const char *name;
    char label[48];
    char *argv[48];
    int argc;
    pid_t pid;
    uint64_t started_ms, backoff_ms, restart_at_ms;
    int restarts;
    bool finishes;    /* exit 0 means done (the trainer), not a crash */
    char mport[12];   /* its --metrics-port, with oaif up --metrics-port */
    char threads[12]; /* its --threads and OMP_NUM_THREADS, for one that computes; else "" */
};

/* Words given to every annotator-proxy or to the trainer as they are. */
struct passthrough {
    char *words[UP_PASS_MAX];
    int n;
};

struct deployment {
    const struct up_opts *o;
    const char *config; /* the run file, or NULL */
    char logdir[4096], db[4096], epfile[4096];
    char bins[7][4400];                /* ledger, sampler, annotator-proxy, trainer, reward-scorer,
                                        * strength-estimator, evaluator */
    char cep[256], wep[256], eep[256]; /* the endpoints the ledger bound */
    int cores;                         /* --threads, or the CPUs this process may run on */
    int budget[3];                     /* threads of the trainer, a sampler, a reward-scorer */
    struct child cs[UP_MAX];
    int n;
};

static volatile sig_atomic_t up_stop;

static void up_on_signal(int sig)
{
    (void)sig;
    up_stop = 1;
}

static pid_t spawn(struct child *c, const char *logdir)
{
    char log[4200];
    snprintf(log, sizeof log, "%s/%s.log", logdir, c->label);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    setpgid(0, 0);       /* Ctrl-C reaches `oaif up`, which stops the children in order */
    if (c->threads[0]) { /* libgomp reads these as it loads: the child need not execute again */
        setenv("OMP_NUM_THREADS", c->threads, 1);
        setenv("OMP_WAIT_POLICY", getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "PASSIVE",
               1);
    }
    local_stop_with_parent(parent);
    execvp(c->argv[0], c->argv);
    fprintf(stderr, "oaif up: cannot start %s: %s\n", c->argv[0], strerror(errno));
    _exit(127);
}

static void add(struct child *c, const char *a)
{
    if (c->argc < 46)
        c->argv[c->argc++] = (char *)a;
    c->argv[c->argc] = NULL;
}

/* A new child named `name`, labelled label (its log's name), running bin with the run file. */
static struct child *new_child(struct deployment *d, const char *name, const char *label,
                               const char *bin)
{
    struct child *c = &d->cs[d->n++];
    c->name = name;
    snprintf(c->label, sizeof c->label, "%s", label);
    add(c, bin);
    if (d->config) {
        add(c, "--config");
        add(c, d->config);
    }
    if (d->o->metrics_port >= 0) { /* the ledger on the base port, the others after it */
        snprintf(c->mport, sizeof c->mport, "%d", d->o->metrics_port + d->n - 1);
        add(c, "--metrics-port");
        add(c, c->mport);
    }
    return c;
}

/* A child that computes gets its budget of engine threads: --threads N (and, in spawn, the
 * environment libgomp reads). */
static void give_threads(struct child *c, int threads)
{
    snprintf(c->threads, sizeof c->threads, "%d", threads);
    add(c, "--threads");
    add(c, c->threads);
}

/* The budgets: the cores times each share over the largest share, or with --divide over the sum
 * of the shares of the processes that compute (the trainer counted whether `oaif run` or --train
 * starts it), rounded down, each at least 1 thread. */
static void divide_cores(struct deployment *d)
{
    const struct up_opts *o = d->o;
    cpu_set_t set;
    d->cores = o->threads;
    if (d->cores <= 0)
        d->cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    const int share[3] = {o->trainer_share, o->sampler_share, o->scorer_share};
    long total = share[0] + (long)o->samplers * share[1] + (long)o->scorers * share[2];
    if (!o->divide) {
        total = 0;
        for (int k = 0; k < 3; k++)
            total = share[k] > total ? share[k] : total;
    }
    for (int k = 0; k < 3; k++) {
        long b = total > 0 ? (long)d->cores * share[k] / total : 0;
        d->budget[k] = b < 1 ? 1 : (int)b;
    }
}

/* <data>/threads: the budgets, "service=threads" a line, for `oaif run` (the trainer's). */
static void write_threads(const struct deployment *d)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/threads", d->o->data_dir);
    FILE *f = fopen(path, "w");
    if (!f ||
        fprintf(f, "cores=%d\ntrainer=%d\nsampler=%d\nreward-scorer=%d\n", d->cores, d->budget[0],
                d->budget[1], d->budget[2]) < 0 ||
        fclose(f) != 0)
        cli_error("oaif up", "warning: %s: %s", path, strerror(errno));
}

/* <data>/prometheus.yml: a scrape job of every child's /metrics, labelled by service and name,
 * for Prometheus and the dashboard deploy/grafana-oaif.json. Written through a temporary file. */
static void write_prometheus(const struct deployment *d)
{
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/prometheus.yml", d->o->data_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        cli_error("oaif up", "warning: %s: %s", tmp, strerror(errno));
        return;
    }
    fprintf(f, "# Written by oaif up --metrics-port: this deployment's /metrics.\n"
               "scrape_configs:\n  - job_name: oaif\n    scrape_interval: 5s\n"
               "    static_configs:\n");
    for (int i = 0; i < d->n; i++)
        fprintf(f,
                "      - targets: [\"127.0.0.1:%s\"]\n"
                "        labels: {service: \"%s\", name: \"%s\"}\n",
                d->cs[i].mport, d->cs[i].name, d->cs[i].label);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        cli_error("oaif up", "warning: %s: %s", path, strerror(errno));
}

static void started(struct child *c)
{
    c->started_ms = bus_mono_ms();
    c->backoff_ms = 1000;
}

/* The log's last ERROR line, else its first line. */
static void last_line(const char *path, char *out, size_t len)
{
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    char line[1024];
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "ERROR") || out[0] == '\0')
            snprintf(out, len, "%s", line);
    if (f)
        fclose(f);
}

static void stop_all(struct child *cs, int n)
{
    for (int i = n - 1; i >= 0; i--)
        if (cs[i].pid > 0)
            kill(cs[i].pid, SIGTERM);
    for (int i = n - 1; i >= 0; i--) {
        if (cs[i].pid <= 0)
            continue;
        int st;
        bool gone = false;
        for (int k = 0; k < 1000 && !gone; k++) {
            gone = waitpid(cs[i].pid, &st, WNOHANG) == cs[i].pid;
            if (!gone) {
                struct timespec ts = {0, 10000000};
                nanosleep(&ts, NULL);
            }
        }
        if (!gone) {
            kill(cs[i].pid, SIGKILL);
            waitpid(cs[i].pid, &st, 0);
        }
        fprintf(stderr, "oaif up: stopped %s\n", cs[i].label);
        cs[i].pid = 0;
    }
}

/* Removes every "FLAG WORD" and "FLAG=WORD" from argv[0..*argc-1] into p. Returns 0, or 2 after
 * saying what is wrong (no word, more than UP_PASS_MAX). */
static int take_passthrough(const char *flag, int *argc, char **argv, struct passthrough *p)
{
    size_t fl = strlen(flag);
    int out = 0;
    for (int i = 0; i < *argc; i++) {
        const char *a = argv[i];
        bool joined = !strncmp(a, flag, fl) && a[fl] == '=';
        if (strcmp(a, flag) != 0 && !joined) {
            argv[out++] = argv[i];
            continue;
        }
        if (!joined && i + 1 >= *argc) {
            cli_error("oaif up", "flag %s: needs a value", flag);
            return 2;
        }
        if (p->n == UP_PASS_MAX) {
            cli_error("oaif up", "flag %s: at most %d of them", flag, UP_PASS_MAX);
            return 2;
        }
        p->words[p->n++] = joined ? argv[i] + fl + 1 : argv[++i];
    }
    *argc = out;
    return 0;
}

/* Starts the ledger and waits (10 s at most) for the endpoints it bound. Returns 0; 1 after
 * saying why it did not come up; -1 when a stop signal came first. */
static int start_ledger(struct deployment *d)
{
    struct child *l = new_child(d, "ledger", "ledger", d->bins[0]);
    add(l, "--db");
    add(l, d->db);
    add(l, "--clients");
    add(l, d->o->clients);
    add(l, "--workers");
    add(l, d->o->workers);
    add(l, "--events");
    add(l, d->o->events);
    add(l, "--endpoints-file");
    add(l, d->epfile);
    l->pid = spawn(l, d->logdir);
    bool up = false;
    for (int k = 0; k < 200 && !up && !up_stop; k++) {
        up = local_read_kv(d->epfile, "clients", d->cep, sizeof d->cep) &&
             local_read_kv(d->epfile, "workers", d->wep, sizeof d->wep) &&
             local_read_kv(d->epfile, "events", d->eep, sizeof d->eep);
        int st;
        if (!up && waitpid(l->pid, &st, WNOHANG) == l->pid) {
            char line[1024], path[4200];
            snprintf(path, sizeof path, "%s/ledger.log", d->logdir);
            last_line(path, line, sizeof line);
            l->pid = 0;
            fprintf(stderr, "oaif up: the ledger did not start: %s", line);
            return 1;
        }
        if (!up) {
            struct timespec ts = {0, 50000000};
            nanosleep(&ts, NULL);
        }
    }
    if (!up && up_stop) { /* Ctrl-C while it started: what was asked, not a failure */
        stop_all(d->cs, d->n);
        fprintf(stderr, "oaif up: stopped before the ledger was up\n");
        unlink(d->epfile);
        return -1;
    }
    if (!up) {
        stop_all(d->cs, d->n);
        fprintf(stderr, "oaif up: the ledger did not come up in 10 s (see %s/ledger.log)\n",
                d->logdir);
        return 1;
    }
    /* Started again, the ledger must listen where the others connect: on the ports it got now,
     * not on new ones a "tcp://...:*" would give it. */
    for (int a = 0; a + 1 < l->argc; a++) {
        if (!strcmp(l->argv[a], "--clients"))
            l->argv[a + 1] = d->cep;
        else if (!strcmp(l->argv[a], "--workers"))
            l->argv[a + 1] = d->wep;
        else if (!strcmp(l->argv[a], "--events"))
            l->argv[a + 1] = d->eep;
    }
    started(l);
    return 0;
}

static void start_workers(struct deployment *d, const struct passthrough *annot)
{
    /* samplers, then annotator-proxies, then reward-scorers, then strength-estimators */
    static const char *const names[4] = {"sampler", "annotator-proxy", "reward-scorer",
                                         "strength-estimator"};
    static const int bin_of[4] = {1, 2, 4, 5};
    int count[4] = {d->o->samplers, d->o->annotators, d->o->scorers, d->o->estimators};
    for (int kind = 0; kind < 4; kind++)
        for (int k = 0; k < count[kind]; k++) {
            char label[48];
            snprintf(label, sizeof label, "%s-%d", names[kind], k + 1);
            struct child *c = new_child(d, names[kind], label, d->bins[bin_of[kind]]);
            add(c, "--clients");
            add(c, d->cep);
            add(c, "--workers");
            add(c, d->wep);
            if (kind != 1) { /* the others follow checkpoints as they are published */
                add(c, "--events");
                add(c, d->eep);
            }
            if (kind == 0 || kind == 2) /* the sampler and the reward-scorer compute */
                give_threads(c, d->budget[kind == 0 ? 1 : 2]);
            if (kind >= 2) {
                add(c, "--worker-name");
                add(c, c->label);
            } else if (kind == 1) {
                add(c, "--worker-name");
                add(c, c->label);
                for (int e = 0; e < annot->n; e++)
                    add(c, annot->words[e]);
            }
            c->pid = spawn(c, d->logdir);
            started(c);
        }
}

/* The evaluation judge (the run file's annotator section, the --annotator-arg words, then its own
 * service name and no label noise: evaluation labels are never flipped), then the evaluators. */
static void start_evaluators(struct deployment *d, const struct passthrough *annot)
{
    if (d->o->evaluators < 1)
        return;
    struct child *j = new_child(d, "annotator-proxy", "annotator-eval-1", d->bins[2]);
    const char *const jargs[] = {"--clients", d->cep,          "--workers",
                                 d->wep,      "--worker-name", j->label};
    for (size_t a = 0; a < sizeof jargs / sizeof jargs[0]; a++)
        add(j, jargs[a]);
    for (int e = 0; e < annot->n; e++)
        add(j, annot->words[e]);
    add(j, "--service");
    add(j, "annotate-eval");
    add(j, "--noise");
    add(j, "0");
    j->pid = spawn(j, d->logdir);
    started(j);
    for (int k = 0; k < d->o->evaluators; k++) {
        char label[48];
        snprintf(label, sizeof label, "evaluator-%d", k + 1);
        struct child *c = new_child(d, "evaluator", label, d->bins[6]);
        const char *const args[] = {"--clients", d->cep, "--workers",     d->wep,
                                    "--events",  d->eep, "--worker-name", c->label};
        for (size_t a = 0; a < sizeof args / sizeof args[0]; a++)
            add(c, args[a]);
        c->pid = spawn(c, d->logdir);
        started(c);
    }
}

static void start_trainer(struct deployment *d, const struct passthrough *train)
{
    struct child *c = new_child(d, "trainer", "trainer", d->bins[3]);
    c->finishes = true;
    add(c, "--clients");
    add(c, d->cep);
    give_threads(c, d->budget[0]);
    for (int e = 0; e < train->n; e++)
        add(c, train->words[e]);
    c->pid = spawn(c, d->logdir);
    started(c);
}

/* Handles the exit of child i with wait status st: done (the trainer), refused its configuration
 * (stop everything: returns 2), or crashed (started again after its back-off). */
static int child_exited(struct deployment *d, int i, int st, uint64_t now)
{
    struct child *c = &d->cs[i];
    c->pid = 0;
    char path[4200], line[1024];
    snprintf(path, sizeof path, "%s/%s.log", d->logdir, c->label);
    last_line(path, line, sizeof line);
    if (c->finishes && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        fprintf(stderr, "oaif up: %s finished: %s", c->label, line);
        return 0;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 2) {
        fprintf(stderr, "oaif up: %s refused its configuration: %s", c->label, line);
        return 2;
    }
    if (now - c->started_ms > 60000)
        c->backoff_ms = 1000; /* it ran a while: start the back-off over */
    c->restart_at_ms = now + c->backoff_ms;
    fprintf(stderr, "oaif up: %s exited (%s %d); starting it again in %.0f s\n", c->label,
            WIFEXITED(st) ? "status" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
            (double)c->backoff_ms / 1000.0);
    c->backoff_ms = c->backoff_ms * 2 > 30000 ? 30000 : c->backoff_ms * 2;
    return 0;
}

/* Until a signal, or a child that refuses its configuration: restarts what dies. Returns the
 * exit status. */
static int supervise(struct deployment *d)
{
    int status = 0;
    while (!up_stop) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        uint64_t now = bus_mono_ms();
        for (int i = 0; pid > 0 && i < d->n; i++) {
            if (d->cs[i].pid == pid && (status = child_exited(d, i, st, now)) != 0)
                up_stop = 1;
        }
        for (int i = 0; i < d->n; i++) {
            struct child *c = &d->cs[i];
            if (c->pid == 0 && c->restart_at_ms && now >= c->restart_at_ms) {
                c->restart_at_ms = 0;
                c->restarts++;
                c->pid = spawn(c, d->logdir);
                c->started_ms = now;
            }
        }
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    return status;
}

static int up(struct deployment *d, const struct passthrough *annot,
              const struct passthrough *train)
{
    const char *data = d->o->data_dir;
    snprintf(d->logdir, sizeof d->logdir, "%s/logs", data);
    snprintf(d->db, sizeof d->db, "%s/ledger", data);
    snprintf(d->epfile, sizeof d->epfile, "%s/endpoints", data);
    mkdir(data, 0755);
    if (mkdir(d->logdir, 0755) != 0 && errno != EEXIST) {
        cli_error("oaif up", "%s: %s", d->logdir, strerror(errno));
        return 1;
    }
    unlink(d->epfile);
    struct sigaction sa = {.sa_handler = up_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    static const char *const names[7] = {"ledger",   "sampler",       "annotator-proxy",
                                         "trainer",  "reward-scorer", "strength-estimator",
                                         "evaluator"};
    for (int i = 0; i < 7; i++)
        local_bin_path(d->bins[i], sizeof d->bins[i], names[i]);
    divide_cores(d);
    write_threads(d);
    int lrc = start_ledger(d);
    if (lrc)
        return lrc < 0 ? 0 : 1;
    start_workers(d, annot);
    start_evaluators(d, annot);
    if (d->o->train)
        start_trainer(d, train);
    if (d->o->metrics_port >= 0)
        write_prometheus(d);
    printf("oaif up: ledger %s with %d sampler(s), %d annotator-proxy(s), %d reward-scorer(s), %d "
           "strength-estimator(s), %d evaluator(s)%s; logs in %s; Ctrl-C stops them\n",
           d->cep, d->o->samplers, d->o->annotators, d->o->scorers, d->o->estimators,
           d->o->evaluators, d->o->train ? " and the trainer" : "", d->logdir);
    printf("oaif up: engine threads of %d cores: the trainer %d, each sampler %d, each "
           "reward-scorer %d\n",
           d->cores, d->budget[0], d->budget[1], d->budget[2]);
    fflush(stdout);
    int status = supervise(d);
    fprintf(stderr, "oaif up: stopping\n");
    stop_all(d->cs, d->n);
    unlink(d->epfile);
    return status;
}

int cmd_up(int argc, char **argv)
{
    static const char verb[] = "oaif up";
    struct passthrough annot = {0}, train = {0};
    if (take_passthrough("--annotator-arg", &argc, argv, &annot) ||
        take_passthrough("--trainer-arg", &argc, argv, &train))
        return 2;
    const char *config = cli_config_path(argc, argv); /* before cli_load reorders argv */
    struct up_opts o = {0};
    int npos, rc = cli_load(verb, &spec, &o, argc, argv, 0, &npos);
    if (rc)
        return cli_exit_status(rc);
    int status = 0;
    if (o.metrics_port == 0) {
        cli_error(verb, "--metrics-port 0: give the first of the ports the services take one "
                        "after the other (or -1 for none)");
        status = 2;
    } else if (o.train && !config) {
        cli_error(verb, "--train needs the run file (--config RUN.yaml or OAIF_CONFIG)");
        status = 2;
    } else if (o.samplers + o.annotators + o.scorers + o.estimators + 2 +
                   (o.evaluators ? o.evaluators + 1 : 0) >
               UP_MAX) {
        cli_error(verb,
                  "--samplers, --annotators, --scorers and --estimators: at most %d together, "
                  "got %d",
                  UP_MAX - 2, o.samplers + o.annotators + o.scorers + o.estimators);
        status = 2;
    }
    struct deployment *d = status ? NULL : calloc(1, sizeof *d);
    if (!status && !d) {
        cli_error(verb, "out of memory");
        status = 1;
    }
    if (d) {
        d->o = &o;
        d->config = config;
        status = up(d, &annot, &train);
    }
    free(d);
    cfg_release(&spec, &o);
    return status;
}
