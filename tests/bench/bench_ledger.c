/* bench_ledger - requests per second and round-trip latency through the durable ledger, next to
 * a raw ZeroMQ ROUTER/DEALER echo measured in the same run, plaintext and with CURVE.
 *
 * Ledger: a real `ledger` process (fsync on: every request and reply is in a synced RocksDB
 * WriteBatch before it is acknowledged, leased or answered; the store lives in a temporary
 * directory) and W `echo_worker` processes with credit C each; this process is the client,
 * keeping N requests in flight through busclient. A round trip is submit -> reply: client ->
 * ledger (commit) -> worker -> ledger (commit) -> client.
 * Raw: a DEALER in this thread and a ROUTER echo server in another thread (each with its own
 * ZeroMQ context, like two processes), over loopback TCP, N messages in flight; one hop and
 * no storage. It is the ceiling the ledger is compared with. With CURVE the raw server sets
 * ZMQ_CURVE_SERVER and no ZAP handler is installed (libzmq then accepts any client key); the
 * ledger runs its ZAP handler with an allow-list, as in production.
 *
 * Each measurement warms up, then counts the replies that arrive during a fixed window;
 * latencies are those of the replies counted. Not a ctest test: numbers depend on the machine.
 * Usage: bench_ledger [--inflight N] [--seconds S] [--warmup S] [--workers W] [--credit C]
 *                     [--payload BYTES] [--modes plain,curve] [--dir BASE] [--keep]
 *                     [--no-sync] [--ledger-bin PATH] [--worker-bin PATH]
 * --no-sync and --ledger-bin are for diagnosis (how much is fsync; a patched ledger): a run with
 * --no-sync is not durable and its target line says so. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "bus.h"
#include "busclient.h"
#include "err.h"
#include "testproc.h"

#define TARGET_RPS      30000.0
#define TARGET_INFLIGHT 64
#define MAX_CHILDREN    64

struct bench_opts {
    int inflight;   /* requests kept in flight by the client */
    double seconds; /* measured window per system */
    double warmup;  /* seconds before the window opens */
    int workers;    /* echo worker processes */
    int credit;     /* credit of each worker */
    size_t payload; /* request payload bytes */
    bool modes[2];  /* [0] plain, [1] curve */
    char base[512]; /* where the temporary directory goes */
    bool keep;      /* keep the temporary directory (logs, store) */
    bool no_sync;   /* pass --no-sync to the ledger (diagnosis only: not durable) */
    char ledger_bin[512], worker_bin[512];
};

/* One measurement. */
struct result {
    bool ran;
    double rps;
    double p50_ms, p99_ms;
    uint64_t replies;     /* counted in the window */
    uint64_t bad;         /* failed outcome or wrong echo */
    uint64_t resends;     /* busclient resends (ledger only) */
    double commit_p50_ms; /* the ledger's own commit latency, from its status */
    double commit_p99_ms;
    /* CPU time per counted reply in microseconds (ledger run only; -1 unknown): less noisy
     * than req/s on a shared machine, and it says which process the time goes to. */
    double cpu_ledger_us, cpu_workers_us, cpu_client_us;
};

/* Growable array of latencies in microseconds. */
struct lat {
    uint32_t *us;
    size_t n, cap;
};

static volatile sig_atomic_t stop_requested;
static pid_t children[MAX_CHILDREN];
static int nchildren;
static char tmpdir[600];
static bool keep_tmpdir;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int lat_add(struct lat *l, uint64_t ns)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 65536;
        uint32_t *p = realloc(l->us, cap * sizeof *p);
        if (!p)
            return ERR_NOMEM;
        l->us = p;
        l->cap = cap;
    }
    uint64_t us = ns / 1000;
    l->us[l->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    return ERR_OK;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile `q` (0..1) in milliseconds; sorts l. */
static double lat_pct_ms(struct lat *l, double q)
{
    if (!l->n)
        return 0;
    qsort(l->us, l->n, sizeof *l->us, cmp_u32);
    size_t rank = (size_t)(q * (double)l->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > l->n)
        rank = l->n;
    return l->us[rank - 1] / 1000.0;
}

/* ---- processes ---------------------------------------------------------------------------- */

/* Start argv with stderr appended to `log`; the child gets SIGTERM if we die (even by SIGKILL),
 * so a killed benchmark leaves no ledger or worker behind. */
static pid_t spawn(char *const argv[], const char *log)
{
    if (nchildren == MAX_CHILDREN)
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(127); /* the parent died before prctl */
        int fd = log ? open(log, O_WRONLY | O_CREAT | O_APPEND, 0644) : -1;
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        fprintf(stderr, "bench_ledger: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    children[nchildren++] = pid;
    return pid;
}

/* SIGTERM every child, wait up to 3 s in all, then SIGKILL what is left. */
static void stop_children(void)
{
    for (int i = 0; i < nchildren; i++)
        if (children[i] > 0) /* 0: reaped already; kill(0, ...) would hit our own group */
            kill(children[i], SIGTERM);
    uint64_t deadline = now_ns() + 3000000000u;
    int left = nchildren;
    while (left > 0 && now_ns() < deadline) {
        left = 0;
        for (int i = 0; i < nchildren; i++) {
            if (children[i] <= 0)
                continue;
            if (waitpid(children[i], NULL, WNOHANG) == children[i])
                children[i] = 0;
            else
                left++;
        }
        if (left)
            sleep_ms(10);
    }
    for (int i = 0; i < nchildren; i++) {
        if (children[i] > 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
        }
    }
    nchildren = 0;
}

/* True if child `pid` has exited (it is reaped and forgotten). */
static bool child_exited(pid_t pid)
{
    if (waitpid(pid, NULL, WNOHANG) != pid)
        return false;
    for (int i = 0; i < nchildren; i++)
        if (children[i] == pid)
            children[i] = 0;
    return true;
}

/* Wait up to timeout_ms for `key` in the endpoints file, giving up early if `pid` exits. */
static bool wait_endpoint(const char *path, const char *key, char *out, size_t outlen, pid_t pid,
                          int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms && !stop_requested; waited += 100) {
        if (tp_read_kv(path, key, out, outlen, 100))
            return true;
        if (child_exited(pid))
            return false;
    }
    return false;
}

static void remove_tmpdir(void)
{
    if (!tmpdir[0])
        return;
    if (keep_tmpdir) {
        fprintf(stderr, "bench_ledger: kept %s\n", tmpdir);
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        execlp("rm", "rm", "-rf", "--", tmpdir, (char *)NULL);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
    tmpdir[0] = '\0';
}

/* Print the last lines of a log (a failed start is explained there). */
static void show_log_tail(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char lines[8][512];
    int n = 0;
    while (fgets(lines[n % 8], sizeof lines[0], f))
        n++;
    fclose(f);
    fprintf(stderr, "bench_ledger: last lines of %s:\n", path);
    for (int i = n > 8 ? n - 8 : 0; i < n; i++)
        fprintf(stderr, "  %s", lines[i % 8]);
}

/* CPU time (user + system, all threads) of process `pid` in microseconds, or -1. */
static double proc_cpu_us(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the command name (which may hold spaces) start after the last ')'. */
    char *p = strrchr(buf, ')');
    unsigned long ut = 0, st = 0;
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) * 1e6 / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* CPU of the ledger (pids[0]), the workers (pids[1..n-1]) and this process, at one moment. */
struct cpu_snap {
    double ledger, workers, client;
};

static void cpu_snap(struct cpu_snap *s, const pid_t *pids, int n)
{
    s->ledger = proc_cpu_us(pids[0]);
    s->workers = 0;
    for (int i = 1; i < n; i++) {
        double w = proc_cpu_us(pids[i]);
        s->workers = w < 0 || s->workers < 0 ? -1 : s->workers + w;
    }
    s->client = self_cpu_us();
}

/* ---- keys --------------------------------------------------------------------------------- */

struct keys {
    struct bus_curve server; /* the ledger's (and raw server's) pair */
    struct bus_curve client; /* clients' and workers' pair; server_key = server.public_key */
    char server_secret[700]; /* files for the processes */
    char server_public[710];
    char client_secret[700];
    char allow_dir[650];
};

static int make_keys(struct keys *k)
{
    char err[512];
    if (bus_curve_generate(&k->server) || bus_curve_generate(&k->client)) {
        fprintf(stderr, "bench_ledger: this libzmq has no CURVE support\n");
        return ERR_INVAL;
    }
    memcpy(k->client.server_key, k->server.public_key, sizeof k->client.server_key);
    snprintf(k->allow_dir, sizeof k->allow_dir, "%s/allow", tmpdir);
    if (mkdir(k->allow_dir, 0700) != 0) {
        fprintf(stderr, "bench_ledger: mkdir %s: %s\n", k->allow_dir, strerror(errno));
        return ERR_IO;
    }
    snprintf(k->server_secret, sizeof k->server_secret, "%s/server.key", tmpdir);
    snprintf(k->server_public, sizeof k->server_public, "%s.pub", k->server_secret);
    /* The client's pair goes into the allow dir: its .pub is what the ledger allows. */
    snprintf(k->client_secret, sizeof k->client_secret, "%s/client.key", k->allow_dir);
    if (bus_curve_save(&k->server, k->server_secret, err, sizeof err) ||
        bus_curve_save(&k->client, k->client_secret, err, sizeof err)) {
        fprintf(stderr, "bench_ledger: %s\n", err);
        return ERR_IO;
    }
    return ERR_OK;
}

/* ---- the ledger --------------------------------------------------------------------------- */

struct lrun {
    const struct bench_opts *o;
    const uint8_t *pattern; /* the payload every request carries */
    uint64_t *t_submit;     /* by sequence number */
    size_t cap_submit;
    uint64_t window_start, window_end;
    struct lat lat;
    uint64_t replies, bad, late;
};

static void on_reply(void *ctx, const Oaif__V1__Reply *r)
{
    struct lrun *run = ctx;
    uint64_t t = now_ns();
    char *end = NULL;
    uint64_t seq = r->id && r->id[0] == 'r' ? strtoull(r->id + 1, &end, 10) : UINT64_MAX;
    if (!end || *end || seq >= run->cap_submit) {
        run->bad++;
        return;
    }
    if (t < run->window_start || t >= run->window_end) {
        run->late++;
        return;
    }
    run->replies++;
    if (r->outcome != OAIF__V1__OUTCOME__OUTCOME_OK || r->payload.len != run->o->payload ||
        (run->o->payload && memcmp(r->payload.data, run->pattern, run->o->payload) != 0)) {
        run->bad++;
        return;
    }
    lat_add(&run->lat, t - run->t_submit[seq]);
}

/* Wait until the ledger reports `want` workers for "echo" (they connect at their own pace). */
static int wait_workers(bus_client_t *c, int want, int timeout_ms)
{
    uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
    unsigned seen = 0;
    while (!stop_requested && now_ns() < deadline) {
        Oaif__V1__Envelope *env = NULL;
        if (bus_client_status(c, 2000, &env) == ERR_OK && env->status) {
            for (size_t i = 0; i < env->status->n_services; i++)
                if (!strcmp(env->status->services[i]->name, "echo"))
                    seen = env->status->services[i]->workers;
        }
        oaif__v1__envelope__free_unpacked(env, NULL);
        if (seen >= (unsigned)want)
            return ERR_OK;
        sleep_ms(50);
    }
    fprintf(stderr, "bench_ledger: only %u of %d echo workers connected to the ledger\n", seen,
            want);
    return ERR_TIMEOUT;
}

static int bench_ledger(const struct bench_opts *o, const struct keys *k, bool curve,
                        const uint8_t *pattern, struct result *res)
{
    const char *mode = curve ? "curve" : "plain";
    char db[700], epf[700], log[700], cep[256], wep[256];
    snprintf(db, sizeof db, "%s/db-%s", tmpdir, mode);
    snprintf(epf, sizeof epf, "%s/endpoints-%s", tmpdir, mode);
    snprintf(log, sizeof log, "%s/%s.log", tmpdir, mode);
    char *largv[24] = {(char *)o->ledger_bin,
                       "--db",
                       db,
                       "--clients",
                       "tcp://127.0.0.1:*",
                       "--workers",
                       "tcp://127.0.0.1:*",
                       "--events",
                       "",
                       "--endpoints-file",
                       epf};
    int n = 11;
    if (o->no_sync)
        largv[n++] = "--no-sync";
    if (curve) {
        largv[n++] = "--curve-secret";
        largv[n++] = (char *)k->server_secret;
        largv[n++] = "--curve-allow";
        largv[n++] = (char *)k->allow_dir;
    }
    largv[n] = NULL;
    pid_t pids[MAX_CHILDREN];
    int npids = 0;
    if ((pids[npids++] = spawn(largv, log)) < 0) {
        fprintf(stderr, "bench_ledger: cannot start %s\n", largv[0]);
        return ERR_IO;
    }
    if (!wait_endpoint(epf, "clients", cep, sizeof cep, pids[0], 10000) ||
        !wait_endpoint(epf, "workers", wep, sizeof wep, pids[0], 1000)) {
        fprintf(stderr, "bench_ledger: the ledger did not start (no %s)\n", epf);
        show_log_tail(log);
        stop_children();
        return ERR_IO;
    }
    char credit[32];
    snprintf(credit, sizeof credit, "%d", o->credit);
    for (int i = 0; i < o->workers; i++) {
        char *wargv[16] = {(char *)o->worker_bin, "--endpoint", wep, "--credit", credit};
        int m = 5;
        if (curve) {
            wargv[m++] = "--curve-secret";
            wargv[m++] = (char *)k->client_secret;
            wargv[m++] = "--server-key";
            wargv[m++] = (char *)k->server_public;
        }
        wargv[m] = NULL;
        if ((pids[npids++] = spawn(wargv, log)) < 0) {
            fprintf(stderr, "bench_ledger: cannot start %s\n", wargv[0]);
            stop_children();
            return ERR_IO;
        }
    }

    void *zctx = zmq_ctx_new();
    bus_client_t *c = NULL;
    struct bus_client_opts co = {.endpoint = cep, .curve = curve ? &k->client : NULL};
    struct lrun run = {.o = o, .pattern = pattern};
    int rc = zctx ? bus_client_new(&c, zctx, &co) : ERR_NOMEM;
    if (!rc)
        rc = wait_workers(c, o->workers, 15000);
    if (rc) {
        show_log_tail(log);
        goto out_client;
    }
    run.cap_submit = 1u << 16;
    run.t_submit = malloc(run.cap_submit * sizeof *run.t_submit);
    if (!run.t_submit) {
        rc = ERR_NOMEM;
        goto out_client;
    }
    uint64_t seq = 0, t0 = now_ns();
    run.window_start = t0 + (uint64_t)(o->warmup * 1e9);
    run.window_end = run.window_start + (uint64_t)(o->seconds * 1e9);
    uint64_t last_progress = t0, last_replies = 0;
    struct cpu_snap cpu0 = {0}, cpu1;
    bool window_open = false;
    for (;;) {
        uint64_t t = now_ns();
        if (t >= run.window_end || stop_requested)
            break;
        if (!window_open && t >= run.window_start) {
            window_open = true;
            cpu_snap(&cpu0, pids, npids);
        }
        while (bus_client_pending(c) < (size_t)o->inflight) {
            if (seq == run.cap_submit) {
                size_t ncap = 2 * run.cap_submit;
                uint64_t *p = ncap > run.cap_submit && ncap < SIZE_MAX / sizeof *p
                                  ? realloc(run.t_submit, ncap * sizeof *p)
                                  : NULL;
                if (!p) {
                    rc = ERR_NOMEM;
                    goto out_client;
                }
                run.t_submit = p;
                run.cap_submit = ncap;
            }
            char id[32];
            snprintf(id, sizeof id, "r%" PRIu64, seq);
            run.t_submit[seq] = now_ns();
            rc = bus_client_submit(c, "echo", id, pattern, o->payload, 0, 0);
            if (rc) {
                fprintf(stderr, "bench_ledger: submit: %s\n", err_str(rc));
                goto out_client;
            }
            seq++;
        }
        int got = bus_client_poll(c, 10, on_reply, &run);
        if (got < 0 && got != ERR_INTR) {
            fprintf(stderr, "bench_ledger: client poll: %s\n", err_str(got));
            rc = got;
            goto out_client;
        }
        if (got > 0 || run.replies != last_replies) {
            last_progress = now_ns();
            last_replies = run.replies;
        } else if (now_ns() - last_progress > 10000000000u) {
            fprintf(stderr, "bench_ledger: no reply for 10 s (%s ledger)\n", mode);
            show_log_tail(log);
            rc = ERR_TIMEOUT;
            goto out_client;
        }
    }
    cpu_snap(&cpu1, pids, npids);
    double window_s = o->seconds;
    double nrep = run.replies ? (double)run.replies : 1;
    res->cpu_ledger_us =
        cpu0.ledger < 0 || cpu1.ledger < 0 ? -1 : (cpu1.ledger - cpu0.ledger) / nrep;
    res->cpu_workers_us =
        cpu0.workers < 0 || cpu1.workers < 0 ? -1 : (cpu1.workers - cpu0.workers) / nrep;
    res->cpu_client_us = (cpu1.client - cpu0.client) / nrep;
    res->ran = true;
    res->replies = run.replies;
    res->bad = run.bad;
    res->rps = (double)run.replies / window_s;
    res->p50_ms = lat_pct_ms(&run.lat, 0.50);
    res->p99_ms = lat_pct_ms(&run.lat, 0.99);
    res->resends = bus_client_resends(c);
    Oaif__V1__Envelope *env = NULL;
    if (bus_client_status(c, 2000, &env) == ERR_OK && env->status) {
        res->commit_p50_ms = env->status->commit_p50_ms;
        res->commit_p99_ms = env->status->commit_p99_ms;
    }
    oaif__v1__envelope__free_unpacked(env, NULL);
    /* Let what is in flight finish (bounded), so the ledger stops idle. */
    uint64_t drain_end = now_ns() + 2000000000u;
    while (bus_client_pending(c) && now_ns() < drain_end && !stop_requested)
        bus_client_poll(c, 50, NULL, NULL);
out_client:
    bus_client_destroy(&c);
    if (zctx)
        zmq_ctx_term(zctx);
    stop_children();
    free(run.t_submit);
    free(run.lat.us);
    return rc;
}

/* ---- raw ZeroMQ --------------------------------------------------------------------------- */

struct echo_server {
    void *zctx;
    void *router;
    atomic_bool stop;
    uint64_t echoed;
};

static void *echo_server_main(void *arg)
{
    struct echo_server *s = arg;
    while (!atomic_load(&s->stop)) {
        zmq_pollitem_t it = {s->router, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 50) <= 0)
            continue;
        for (;;) {
            zmq_msg_t rid, body;
            zmq_msg_init(&rid);
            if (zmq_msg_recv(&rid, s->router, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&rid);
                break;
            }
            zmq_msg_init(&body);
            if (!zmq_msg_more(&rid) || zmq_msg_recv(&body, s->router, 0) < 0) {
                zmq_msg_close(&rid);
                zmq_msg_close(&body);
                continue;
            }
            if (zmq_msg_send(&rid, s->router, ZMQ_SNDMORE) < 0)
                zmq_msg_close(&rid);
            if (zmq_msg_send(&body, s->router, 0) < 0)
                zmq_msg_close(&body);
            else
                s->echoed++;
        }
    }
    return NULL;
}

static int set_curve(void *sock, bool server, const struct bus_curve *pair, const char *server_pub)
{
    int one = 1;
    if (server)
        return zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
               zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, pair->secret_key, 40);
    return zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_pub, 40) ||
           zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pair->public_key, 40) ||
           zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, pair->secret_key, 40);
}

static int bench_raw(const struct bench_opts *o, const struct keys *k, bool curve,
                     const uint8_t *pattern, struct result *res)
{
    struct echo_server srv = {0};
    atomic_init(&srv.stop, false);
    void *cctx = NULL, *dealer = NULL;
    uint8_t *frame = NULL;
    struct lat lat = {0};
    pthread_t thr;
    bool started = false;
    int rc = ERR_IO, zero = 0;
    char ep[256];
    size_t eplen = sizeof ep;
    srv.zctx = zmq_ctx_new();
    cctx = zmq_ctx_new();
    if (!srv.zctx || !cctx)
        goto out;
    srv.router = zmq_socket(srv.zctx, ZMQ_ROUTER);
    dealer = zmq_socket(cctx, ZMQ_DEALER);
    if (!srv.router || !dealer)
        goto out;
    zmq_setsockopt(srv.router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof zero);
    if (curve && (set_curve(srv.router, true, &k->server, NULL) ||
                  set_curve(dealer, false, &k->client, k->server.public_key))) {
        fprintf(stderr, "bench_ledger: raw CURVE options: %s\n", zmq_strerror(zmq_errno()));
        goto out;
    }
    if (zmq_bind(srv.router, "tcp://127.0.0.1:*") != 0 ||
        zmq_getsockopt(srv.router, ZMQ_LAST_ENDPOINT, ep, &eplen) != 0 ||
        zmq_connect(dealer, ep) != 0) {
        fprintf(stderr, "bench_ledger: raw bind/connect: %s\n", zmq_strerror(zmq_errno()));
        goto out;
    }
    /* The router moves to the server thread here; pthread_create is the memory barrier. */
    if (pthread_create(&thr, NULL, echo_server_main, &srv) != 0)
        goto out;
    started = true;

    /* Frame: 8-byte sequence number, then the payload. */
    size_t flen = 8 + o->payload;
    frame = malloc(flen);
    if (!frame) {
        rc = ERR_NOMEM;
        goto out;
    }
    memcpy(frame + 8, pattern, o->payload);
    uint64_t *t_submit = NULL;
    size_t cap = 1u << 16;
    t_submit = malloc(cap * sizeof *t_submit);
    if (!t_submit) {
        rc = ERR_NOMEM;
        goto out;
    }
    uint64_t seq = 0, inflight = 0, replies = 0, bad = 0;
    uint64_t t0 = now_ns(), ws = t0 + (uint64_t)(o->warmup * 1e9);
    uint64_t we = ws + (uint64_t)(o->seconds * 1e9), last_progress = t0;
    rc = ERR_OK;
    while (!stop_requested) {
        uint64_t t = now_ns();
        if (t >= we)
            break;
        while (inflight < (uint64_t)o->inflight) {
            if (seq == cap) {
                uint64_t *p = 2 * cap > cap && 2 * cap < SIZE_MAX / sizeof *p
                                  ? realloc(t_submit, 2 * cap * sizeof *p)
                                  : NULL;
                if (!p) {
                    rc = ERR_NOMEM;
                    break;
                }
                t_submit = p;
                cap *= 2;
            }
            memcpy(frame, &seq, 8);
            t_submit[seq] = now_ns();
            if (zmq_send(dealer, frame, flen, ZMQ_DONTWAIT) < 0)
                break; /* not connected yet or HWM: poll and retry */
            seq++;
            inflight++;
        }
        if (rc)
            break;
        zmq_pollitem_t it = {dealer, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 10) < 0 && zmq_errno() != EINTR) {
            rc = ERR_IO;
            break;
        }
        for (;;) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, dealer, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                break;
            }
            uint64_t tr = now_ns(), rseq = UINT64_MAX;
            size_t len = zmq_msg_size(&m);
            if (len == flen)
                memcpy(&rseq, zmq_msg_data(&m), 8);
            inflight--;
            last_progress = tr;
            if (tr >= ws && tr < we) {
                replies++;
                if (rseq >= seq ||
                    memcmp((uint8_t *)zmq_msg_data(&m) + 8, pattern, o->payload) != 0)
                    bad++;
                else
                    lat_add(&lat, tr - t_submit[rseq]);
            }
            zmq_msg_close(&m);
        }
        if (now_ns() - last_progress > 10000000000u) {
            fprintf(stderr, "bench_ledger: raw %s echo: no reply for 10 s\n",
                    curve ? "curve" : "plain");
            rc = ERR_TIMEOUT;
            break;
        }
    }
    free(t_submit);
    if (!rc) {
        res->ran = true;
        res->replies = replies;
        res->bad = bad;
        res->rps = (double)replies / o->seconds;
        res->p50_ms = lat_pct_ms(&lat, 0.50);
        res->p99_ms = lat_pct_ms(&lat, 0.99);
    }
out:
    if (dealer)
        zmq_close(dealer);
    if (started) {
        atomic_store(&srv.stop, true);
        pthread_join(thr, NULL); /* within one 50 ms poll */
    }
    if (srv.router)
        zmq_close(srv.router);
    if (srv.zctx)
        zmq_ctx_term(srv.zctx);
    if (cctx)
        zmq_ctx_term(cctx);
    free(frame);
    free(lat.us);
    return rc;
}

/* ---- main --------------------------------------------------------------------------------- */

static const char usage[] =
    "usage: bench_ledger [options]\n"
    "  --inflight N      requests in flight (64)\n"
    "  --seconds S       measured seconds per system and mode (3)\n"
    "  --warmup S        warm-up seconds before each measurement (1)\n"
    "  --workers W       echo worker processes (2)\n"
    "  --credit C        credit of each worker (32)\n"
    "  --payload BYTES   request payload (64)\n"
    "  --modes LIST      plain, curve or plain,curve (plain,curve)\n"
    "  --dir BASE        where the temporary store goes ($TMPDIR or /tmp); fsync is measured\n"
    "                    there, so pick the disk the ledger would use\n"
    "  --keep            keep the temporary directory (store, logs)\n"
    "  --no-sync         diagnosis: run the ledger without fsync (not durable, no verdict)\n"
    "  --ledger-bin PATH the ledger binary (default: the one in this build)\n"
    "  --worker-bin PATH the echo worker binary (default: the one in this build)\n";

static bool parse_num(const char *name, const char *v, double lo, double hi, double *out)
{
    char *end = NULL;
    double x = v ? strtod(v, &end) : 0;
    if (!v || !*v || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "bench_ledger: %s: expected a number in [%g, %g], got '%s'\n", name, lo, hi,
                v ? v : "");
        return false;
    }
    *out = x;
    return true;
}

static int parse_args(struct bench_opts *o, int argc, char **argv)
{
    const char *tmp = getenv("TMPDIR");
    *o = (struct bench_opts){.inflight = 64,
                             .seconds = 3,
                             .warmup = 1,
                             .workers = 2,
                             .credit = 32,
                             .payload = 64,
                             .modes = {true, true}};
    snprintf(o->base, sizeof o->base, "%s", tmp && *tmp ? tmp : "/tmp");
    snprintf(o->ledger_bin, sizeof o->ledger_bin, "%s", tp_bin("services/ledger/ledger"));
    snprintf(o->worker_bin, sizeof o->worker_bin, "%s", tp_bin("tests/echo_worker"));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double x = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(usage, stdout);
            exit(0);
        } else if (!strcmp(a, "--keep")) {
            o->keep = true;
            continue;
        } else if (!strcmp(a, "--no-sync")) {
            o->no_sync = true;
            continue;
        }
        i++;
        if (!strcmp(a, "--inflight") && parse_num(a, v, 1, 100000, &x))
            o->inflight = (int)x;
        else if (!strcmp(a, "--seconds") && parse_num(a, v, 0.1, 60, &x))
            o->seconds = x;
        else if (!strcmp(a, "--warmup") && parse_num(a, v, 0, 60, &x))
            o->warmup = x;
        else if (!strcmp(a, "--workers") && parse_num(a, v, 1, MAX_CHILDREN - 2, &x))
            o->workers = (int)x;
        else if (!strcmp(a, "--credit") && parse_num(a, v, 1, 100000, &x))
            o->credit = (int)x;
        else if (!strcmp(a, "--payload") && parse_num(a, v, 0, 16 << 20, &x))
            o->payload = (size_t)x;
        else if (!strcmp(a, "--modes") && v) {
            o->modes[0] = o->modes[1] = false;
            char list[64];
            snprintf(list, sizeof list, "%s", v);
            char *save = NULL;
            for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (!strcmp(t, "plain"))
                    o->modes[0] = true;
                else if (!strcmp(t, "curve"))
                    o->modes[1] = true;
                else {
                    fprintf(stderr, "bench_ledger: --modes: unknown mode '%s'\n", t);
                    return ERR_INVAL;
                }
            }
        } else if (!strcmp(a, "--dir") && v)
            snprintf(o->base, sizeof o->base, "%s", v);
        else if (!strcmp(a, "--ledger-bin") && v)
            snprintf(o->ledger_bin, sizeof o->ledger_bin, "%s", v);
        else if (!strcmp(a, "--worker-bin") && v)
            snprintf(o->worker_bin, sizeof o->worker_bin, "%s", v);
        else {
            static const char *const numeric[] = {"--inflight", "--seconds", "--warmup",
                                                  "--workers",  "--credit",  "--payload"};
            bool known = false; /* parse_num has said what is wrong with a known option */
            for (size_t j = 0; j < sizeof numeric / sizeof numeric[0]; j++)
                known |= strcmp(a, numeric[j]) == 0;
            if (!known)
                fprintf(stderr, "bench_ledger: unknown option or missing value: %s\n%s", a, usage);
            return ERR_INVAL;
        }
    }
    if (!o->modes[0] && !o->modes[1]) {
        fprintf(stderr, "bench_ledger: --modes names no mode\n");
        return ERR_INVAL;
    }
    return ERR_OK;
}

static const char *fs_name(const char *path)
{
    struct statfs sf;
    if (statfs(path, &sf) != 0)
        return "unknown filesystem";
    switch ((unsigned long)sf.f_type) {
    case 0xEF53:
        return "ext4";
    case 0x58465342:
        return "xfs";
    case 0x9123683E:
        return "btrfs";
    case 0x01021994:
        return "tmpfs: fsync costs nothing here, use --dir on a disk";
    case 0x794C7630:
        return "overlayfs";
    default:
        return "other filesystem";
    }
}

static int usable_cores(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return -1;
    return CPU_COUNT(&set);
}

static void print_row(const char *mode, const char *system, const struct result *r,
                      const struct result *raw)
{
    if (!r->ran) {
        printf("%-6s %-15s %10s %9s %9s\n", mode, system, stop_requested ? "not run" : "failed",
               "-", "-");
        return;
    }
    printf("%-6s %-15s %10.0f %9.2f %9.2f", mode, system, r->rps, r->p50_ms, r->p99_ms);
    if (raw && raw->ran && raw->rps > 0)
        printf(" %10.3f", r->rps / raw->rps);
    if (r->bad)
        printf("   (%" PRIu64 " bad replies)", r->bad);
    printf("\n");
}

int main(int argc, char **argv)
{
    struct bench_opts o;
    if (parse_args(&o, argc, argv))
        return 2;
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (o.workers * o.credit < o.inflight)
        fprintf(stderr,
                "bench_ledger: note: %d workers x credit %d < %d in flight; the rest queue in "
                "the ledger\n",
                o.workers, o.credit, o.inflight);

    snprintf(tmpdir, sizeof tmpdir, "%s/oaif-bench-XXXXXX", o.base);
    if (!mkdtemp(tmpdir)) {
        fprintf(stderr, "bench_ledger: mkdtemp %s: %s\n", tmpdir, strerror(errno));
        return 1;
    }
    keep_tmpdir = o.keep;
    uint8_t *pattern = malloc(o.payload ? o.payload : 1);
    struct keys k = {0};
    int rc = pattern ? ERR_OK : ERR_NOMEM;
    for (size_t i = 0; pattern && i < o.payload; i++)
        pattern[i] = (uint8_t)('a' + i % 26);
    if (!rc && o.modes[1])
        rc = make_keys(&k);

    double load[3] = {0};
    if (getloadavg(load, 3) != 3)
        load[0] = load[1] = load[2] = -1;
    int maj = 0, min = 0, pat = 0;
    zmq_version(&maj, &min, &pat);
    printf("bench_ledger: %ld cores online, %d usable by this process; load average %.2f %.2f "
           "%.2f; libzmq %d.%d.%d\n",
           sysconf(_SC_NPROCESSORS_ONLN), usable_cores(), load[0], load[1], load[2], maj, min, pat);
    printf("ledger: %s, store in %s (%s); %d echo worker processes x credit %d\n",
           o.no_sync ? "NO FSYNC (--no-sync: diagnosis, not durable)" : "fsync on", tmpdir,
           fs_name(tmpdir), o.workers, o.credit);
    printf("binaries: %s, %s\n", o.ledger_bin, o.worker_bin);
    printf("load: %d in flight, %zu-byte payloads, %.1f s warm-up + %.1f s measured each\n",
           o.inflight, o.payload, o.warmup, o.seconds);
    printf("raw zmq: DEALER client and ROUTER echo thread in this process (own contexts), "
           "loopback TCP, 8-byte seq + payload; with CURVE no ZAP handler (libzmq accepts any "
           "client key), while the ledger checks its allow-list\n");
    fflush(stdout);

    struct result res[2][2] = {{{0}}}; /* [mode][0 ledger, 1 raw] */
    bool failed = rc != ERR_OK;
    for (int m = 0; m < 2 && !rc && !stop_requested; m++) {
        if (!o.modes[m])
            continue;
        if (bench_ledger(&o, &k, m == 1, pattern, &res[m][0]))
            failed = true;
        if (!stop_requested && bench_raw(&o, &k, m == 1, pattern, &res[m][1]))
            failed = true;
    }
    stop_children();

    printf("\n%-6s %-15s %10s %9s %9s %10s\n", "mode", "system", "req/s", "p50 ms", "p99 ms",
           "ledger/raw");
    for (int m = 0; m < 2; m++) {
        if (!o.modes[m])
            continue;
        const char *mode = m ? "curve" : "plain";
        print_row(mode, o.no_sync ? "ledger no-sync" : "ledger durable", &res[m][0], &res[m][1]);
        print_row(mode, "raw zmq", &res[m][1], NULL);
    }
    for (int m = 0; m < 2; m++) {
        const struct result *r = &res[m][0];
        if (!o.modes[m] || !r->ran)
            continue;
        printf("ledger %s: group commit (RocksDB write%s) p50 %.2f ms, p99 %.2f ms; %" PRIu64
               " client resends\n",
               m ? "curve" : "plain", o.no_sync ? "" : " + fsync", r->commit_p50_ms,
               r->commit_p99_ms, r->resends);
        printf("ledger %s: CPU per request: ledger %.0f us, workers %.0f us, client %.0f us "
               "(%.2f cores busy at this rate)\n",
               m ? "curve" : "plain", r->cpu_ledger_us, r->cpu_workers_us, r->cpu_client_us,
               (r->cpu_ledger_us + r->cpu_workers_us + r->cpu_client_us) * r->rps / 1e6);
    }
    printf("target: >= %.0f durable req/s with %d in flight", TARGET_RPS, TARGET_INFLIGHT);
    if (o.inflight != TARGET_INFLIGHT)
        printf(" (this run: %d in flight)", o.inflight);
    printf(":");
    for (int m = 0; m < 2 && !o.no_sync; m++) {
        if (!o.modes[m])
            continue;
        const struct result *r = &res[m][0];
        printf(" %s %s", m ? "curve" : "plain",
               !r->ran                ? (stop_requested ? "not-run" : "FAILED")
               : r->rps >= TARGET_RPS ? "PASS"
                                      : "BELOW");
    }
    printf("%s\n", o.no_sync ? " no verdict (--no-sync is not durable)" : "");
    for (int m = 0; m < 2; m++)
        for (int s = 0; s < 2; s++)
            failed |= o.modes[m] && (res[m][s].bad || res[m][s].replies == 0);
    if (stop_requested)
        fprintf(stderr, "bench_ledger: interrupted\n");
    free(pattern);
    if (failed && !o.keep)
        fprintf(stderr, "bench_ledger: a measurement failed (rerun with --keep for the logs)\n");
    remove_tmpdir();
    return failed || stop_requested ? 1 : 0;
}
