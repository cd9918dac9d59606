/* up.c - `oaif up`: a local deployment as child processes (the embedded default), and
 * `oaif run`: the trainer for one run against a deployment, in the foreground.
 *
 * `oaif up` starts the ledger (store and logs under --data), waits for its endpoints, then the
 * samplers and annotator-proxies connected to it (and with --train the trainer, which runs the
 * run file's run), writes <data>/endpoints for the other commands, and supervises: a service
 * that exits unexpectedly is started again (after 1 s, doubling to 30 s); one that exits with
 * status 2 (bad configuration) stops everything with its log's last line. The trainer exits 0
 * when its run is done and is not started again; the deployment stays up for `oaif eval`,
 * `oaif export` and the like. Ctrl-C (SIGINT) or SIGTERM stops the services in reverse order:
 * SIGTERM, then SIGKILL after 10 s. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "err.h"
#include "log.h"
#include "oaif.h"

#define UP_MAX 32

struct child {
    const char *name;
    char label[48];
    char *argv[48];
    int argc;
    pid_t pid;
    uint64_t started_ms, backoff_ms, restart_at_ms;
    int restarts;
    bool finishes; /* exit 0 means done (the trainer), not a crash */
};

static volatile sig_atomic_t up_stop;

static void up_on_signal(int sig)
{
    (void)sig;
    up_stop = 1;
}

/* The directory of this executable's siblings: build/services/oaif/oaif -> build/services. */
static void bin_path(char *out, size_t len, const char *argv0, const char *svc)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *s = strrchr(self, '/');
        if (s) {
            *s = '\0';
            /* Installed side by side (/usr/local/bin) or in the build tree (services/oaif). */
            char cand[4200];
            snprintf(cand, sizeof cand, "%s/%s", self, svc);
            if (access(cand, X_OK) == 0) {
                snprintf(out, len, "%s", cand);
                return;
            }
            snprintf(cand, sizeof cand, "%s/../%s/%s", self, svc, svc);
            if (access(cand, X_OK) == 0) {
                snprintf(out, len, "%s", cand);
                return;
            }
        }
    }
    (void)argv0;
    snprintf(out, len, "%s", svc); /* from PATH */
}

/* In a child just forked from `parent`: get SIGTERM when the parent dies (kill -9, the terminal
 * closed), so the child makes its clean stop instead of running on orphaned, holding the ports
 * and the store's lock; exit if the parent died before this took hold. */
static void stop_with_parent(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(127);
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
    setpgid(0, 0); /* Ctrl-C reaches `oaif up`, which stops the children in order */
    stop_with_parent(parent);
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

static bool read_kv(const char *path, const char *key, char *out, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[1024];
    size_t kl = strlen(key);
    bool ok = false;
    while (!ok && fgets(line, sizeof line, f)) {
        if (!strncmp(line, key, kl) && line[kl] == '=') {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out, len, "%s", line + kl + 1);
            ok = true;
        }
    }
    fclose(f);
    return ok;
}

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

int oaif_cmd_up(int argc, char **argv)
{
    const char *data = "data/local", *config = getenv("OAIF_CONFIG");
    int samplers = 1, annotators = 2;
    const char *clients = "tcp://127.0.0.1:5555", *workers = "tcp://127.0.0.1:5556",
               *events = "tcp://127.0.0.1:5557";
    const char *extra_annot[16], *extra_train[16];
    int nextra = 0, ntrain = 0;
    bool train = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--train")) {
            train = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "oaif up: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--data"))
            data = v;
        else if (!strcmp(a, "--config"))
            config = v;
        else if (!strcmp(a, "--samplers"))
            samplers = atoi(v);
        else if (!strcmp(a, "--annotators"))
            annotators = atoi(v);
        else if (!strcmp(a, "--clients"))
            clients = v;
        else if (!strcmp(a, "--workers"))
            workers = v;
        else if (!strcmp(a, "--events"))
            events = v;
        else if (!strcmp(a, "--annotator-arg") && nextra < 16)
            extra_annot[nextra++] = v;
        else if (!strcmp(a, "--trainer-arg") && ntrain < 16)
            extra_train[ntrain++] = v;
        else {
            fprintf(stderr,
                    "usage: oaif up [--data DIR] [--config RUN.yaml] [--samplers N] "
                    "[--annotators N] [--train]\n"
                    "               [--clients EP --workers EP --events EP] "
                    "[--annotator-arg ARG]... [--trainer-arg ARG]...\n"
                    "  --train   also the trainer: it runs the run file's run (and resumes it\n"
                    "            when restarted), then exits; the deployment stays up\n");
            return 2;
        }
    }
    if (train && !config) {
        fprintf(stderr, "oaif up: --train needs the run file (--config RUN.yaml or OAIF_CONFIG)\n");
        return 2;
    }
    if (samplers < 0 || annotators < 0 || samplers + annotators + 2 > UP_MAX) {
        fprintf(stderr, "oaif up: --samplers and --annotators must be 0 to %d together\n",
                UP_MAX - 2);
        return 2;
    }
    char logdir[4096], db[4096], epfile[4096];
    snprintf(logdir, sizeof logdir, "%s/logs", data);
    snprintf(db, sizeof db, "%s/ledger", data);
    snprintf(epfile, sizeof epfile, "%s/endpoints", data);
    mkdir(data, 0755);
    if (mkdir(logdir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "oaif up: %s: %s\n", logdir, strerror(errno));
        return 1;
    }
    unlink(epfile);
    struct sigaction sa = {.sa_handler = up_on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    static struct child cs[UP_MAX];
    static char bins[4][4400];
    bin_path(bins[0], sizeof bins[0], argv[0], "ledger");
    bin_path(bins[1], sizeof bins[1], argv[0], "sampler");
    bin_path(bins[2], sizeof bins[2], argv[0], "annotator-proxy");
    bin_path(bins[3], sizeof bins[3], argv[0], "trainer");
    int n = 0;
    struct child *l = &cs[n++];
    l->name = "ledger";
    snprintf(l->label, sizeof l->label, "ledger");
    add(l, bins[0]);
    if (config) {
        add(l, "--config");
        add(l, config);
    }
    add(l, "--db");
    add(l, db);
    add(l, "--clients");
    add(l, clients);
    add(l, "--workers");
    add(l, workers);
    add(l, "--events");
    add(l, events);
    add(l, "--endpoints-file");
    add(l, epfile);
    l->pid = spawn(l, logdir);
    static char cep[256], wep[256], eep[256];
    bool up = false;
    for (int k = 0; k < 200 && !up && !up_stop; k++) {
        up = read_kv(epfile, "clients", cep, sizeof cep) &&
             read_kv(epfile, "workers", wep, sizeof wep) &&
             read_kv(epfile, "events", eep, sizeof eep);
        int st;
        if (!up && waitpid(l->pid, &st, WNOHANG) == l->pid) {
            char line[1024], path[4200];
            snprintf(path, sizeof path, "%s/ledger.log", logdir);
            last_line(path, line, sizeof line);
            fprintf(stderr, "oaif up: the ledger did not start: %s", line);
            return 1;
        }
        if (!up) {
            struct timespec ts = {0, 50000000};
            nanosleep(&ts, NULL);
        }
    }
    if (!up) {
        stop_all(cs, n);
        fprintf(stderr, "oaif up: the ledger did not come up in 10 s (see %s/ledger.log)\n",
                logdir);
        return 1;
    }
    /* Started again, the ledger must listen where the others connect: on the ports it got
     * now, not on new ones a "tcp://...:*" would give it. */
    for (int a = 0; a + 1 < l->argc; a++) {
        if (!strcmp(l->argv[a], "--clients"))
            l->argv[a + 1] = cep;
        else if (!strcmp(l->argv[a], "--workers"))
            l->argv[a + 1] = wep;
        else if (!strcmp(l->argv[a], "--events"))
            l->argv[a + 1] = eep;
    }
    l->started_ms = bus_mono_ms();
    l->backoff_ms = 1000;
    for (int k = 0; k < samplers + annotators; k++) {
        bool smp = k < samplers;
        struct child *c = &cs[n++];
        c->name = smp ? "sampler" : "annotator-proxy";
        snprintf(c->label, sizeof c->label, "%s-%d", c->name, smp ? k + 1 : k - samplers + 1);
        add(c, smp ? bins[1] : bins[2]);
        if (config) {
            add(c, "--config");
            add(c, config);
        }
        add(c, "--clients");
        add(c, cep);
        add(c, "--workers");
        add(c, wep);
        if (smp) {
            add(c, "--events");
            add(c, eep);
        } else {
            add(c, "--worker-name");
            add(c, c->label);
            for (int e = 0; e < nextra; e++)
                add(c, extra_annot[e]);
        }
        c->pid = spawn(c, logdir);
        c->started_ms = bus_mono_ms();
        c->backoff_ms = 1000;
    }
    if (train) {
        struct child *c = &cs[n++];
        c->name = "trainer";
        c->finishes = true;
        snprintf(c->label, sizeof c->label, "trainer");
        add(c, bins[3]);
        add(c, "--config");
        add(c, config);
        add(c, "--ledger");
        add(c, cep);
        for (int e = 0; e < ntrain; e++)
            add(c, extra_train[e]);
        c->pid = spawn(c, logdir);
        c->started_ms = bus_mono_ms();
        c->backoff_ms = 1000;
    }
    printf("oaif up: ledger %s with %d sampler(s), %d annotator-proxy(s)%s; logs in %s; "
           "Ctrl-C stops them\n",
           cep, samplers, annotators, train ? " and the trainer" : "", logdir);
    fflush(stdout);
    int status = 0;
    while (!up_stop) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        uint64_t now = bus_mono_ms();
        for (int i = 0; pid > 0 && i < n; i++) {
            if (cs[i].pid != pid)
                continue;
            cs[i].pid = 0;
            char path[4200], line[1024];
            snprintf(path, sizeof path, "%s/%s.log", logdir, cs[i].label);
            last_line(path, line, sizeof line);
            if (cs[i].finishes && WIFEXITED(st) && WEXITSTATUS(st) == 0) {
                fprintf(stderr, "oaif up: %s finished: %s", cs[i].label, line);
                break;
            }
            if (WIFEXITED(st) && WEXITSTATUS(st) == 2) {
                fprintf(stderr, "oaif up: %s refused its configuration: %s", cs[i].label, line);
                status = 2;
                up_stop = 1;
                break;
            }
            if (now - cs[i].started_ms > 60000)
                cs[i].backoff_ms = 1000; /* it ran a while: start the back-off over */
            cs[i].restart_at_ms = now + cs[i].backoff_ms;
            fprintf(stderr, "oaif up: %s exited (%s %d); starting it again in %.0f s\n",
                    cs[i].label, WIFEXITED(st) ? "status" : "signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), cs[i].backoff_ms / 1000.0);
            cs[i].backoff_ms = cs[i].backoff_ms * 2 > 30000 ? 30000 : cs[i].backoff_ms * 2;
        }
        for (int i = 0; i < n; i++) {
            if (cs[i].pid == 0 && cs[i].restart_at_ms && now >= cs[i].restart_at_ms) {
                cs[i].restart_at_ms = 0;
                cs[i].restarts++;
                cs[i].pid = spawn(&cs[i], logdir);
                cs[i].started_ms = now;
            }
        }
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    fprintf(stderr, "oaif up: stopping\n");
    stop_all(cs, n);
    unlink(epfile);
    return status;
}

int oaif_cmd_run(int argc, char **argv)
{
    const char *data = "data/local", *config = NULL;
    char *targs[64];
    int nt = 0;
    for (int i = 0; i < argc && nt < 60; i++) {
        if (!strcmp(argv[i], "--data") && i + 1 < argc)
            data = argv[++i];
        else if (argv[i][0] != '-' && !config)
            config = argv[i];
        else
            targs[nt++] = argv[i]; /* passed to the trainer: --steps 20, --run name, ... */
    }
    if (!config) {
        fprintf(stderr, "usage: oaif run RUN.yaml [--data DIR] [trainer options...]\n"
                        "  runs (or resumes) the run on the deployment of `oaif up --data DIR`\n");
        return 2;
    }
    char epfile[4096], cep[256];
    snprintf(epfile, sizeof epfile, "%s/endpoints", data);
    if (!read_kv(epfile, "clients", cep, sizeof cep)) {
        fprintf(stderr, "oaif run: no deployment at %s (start one with oaif up --data %s)\n", data,
                data);
        return 1;
    }
    /* The trainer's log goes to the deployment's logs too, and its configuration there only. */
    char logdir[4200], logfile[4300];
    snprintf(logdir, sizeof logdir, "%s/logs", data);
    snprintf(logfile, sizeof logfile, "%s/trainer.log", logdir);
    if (!getenv("LOG_FILE") && (mkdir(logdir, 0755) == 0 || errno == EEXIST)) {
        setenv("LOG_FILE", logfile, 1);
        fprintf(stderr, "oaif run: the trainer's log (with its configuration): %s\n", logfile);
    }
    char bin[4400];
    bin_path(bin, sizeof bin, argv[0], "trainer");
    char *av[80];
    int k = 0;
    av[k++] = bin;
    av[k++] = "--config";
    av[k++] = (char *)config;
    av[k++] = "--ledger";
    av[k++] = cep;
    for (int i = 0; i < nt; i++)
        av[k++] = targs[i];
    av[k] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        stop_with_parent(parent); /* `oaif run` killed: the trainer stops cleanly */
        execv(av[0], av);
        fprintf(stderr, "oaif run: cannot start %s: %s\n", av[0], strerror(errno));
        _exit(127);
    }
    int st = 0;
    signal(SIGINT, SIG_IGN); /* the trainer gets Ctrl-C too, stops at a clean point */
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}
