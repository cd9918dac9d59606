/* rounds.c - see rounds.h. */
#include "rounds.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "buf.h"
#include "ckpt.h"
#include "cli.h"
#include "err.h"
#include "hmap.h"
#include "local.h"
#include "reward_scorer_opts.h"
#include "rm.h"
#include "rmset.h"
#include "trainer_opts.h"

static const char verb[] = "oaif run";

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

pid_t rounds_spawn(char *const *av, const char *log)
{
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        cli_error(verb, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        local_stop_with_parent(parent); /* `oaif run` killed: the child stops cleanly */
        if (log) {
            int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
            if (fd < 0) {
                fprintf(stderr, "%s: %s: %s\n", verb, log, strerror(errno));
                _exit(127);
            }
            dup2(fd, 1);
            dup2(fd, 2);
            unsetenv("LOG_FILE"); /* its log lines on its stderr, not in the trainer's log */
        }
        execv(av[0], av);
        fprintf(stderr, "%s: cannot start %s: %s\n", verb, av[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* The exit status of a wait status. */
static int exit_status(int st)
{
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

int rounds_wait(pid_t pid)
{
    int st = 0;
    bool told = false;
    for (;;) {
        if (stop_requested && !told) /* a SIGINT for this process alone: the child's too */
            told = kill(pid, SIGINT) == 0;
        if (waitpid(pid, &st, 0) >= 0)
            break;
        if (errno != EINTR)
            return 1;
    }
    return exit_status(st);
}

/* ---- what the rounds read ------------------------------------------------------------------ */

/* The settings the rounds take from the other tables, as the services would read them. */
struct settings {
    struct trainer_online_config tc;   /* the trainer's: run, steps, reference */
    struct reward_scorer_config sc;    /* the ensemble the reward-scorer serves */
    struct trainer_rm_eval_opts ev;    /* oaif rm eval's: checkpoint root, holdout, max_len */
    struct cli_conn conn;              /* the ledger's address and keys */
    bool tc_ok, sc_ok, ev_ok, conn_ok; /* what to release */
};

static void settings_release(struct settings *s)
{
    if (s->tc_ok)
        trainer_opts_release(&s->tc);
    if (s->sc_ok)
        reward_scorer_config_release(&s->sc);
    if (s->ev_ok)
        cfg_release(&trainer_rm_eval_opts_spec, &s->ev);
    if (s->conn_ok)
        cfg_release(&cli_conn_spec, &s->conn);
}

/* Loads them: each table from the run file and the environment, the trainer's with the command
 * line's options too. The exit status (2: a bad value, each named on stderr). */
static int settings_load(struct settings *s, const struct rounds_run *run)
{
    memset(s, 0, sizeof *s);
    char *file[] = {"oaif run", "--config", (char *)run->config, "--clients", (char *)run->clients};
    char **targv = calloc((size_t)run->ntargs + 6, sizeof *targv);
    buf_t errs = {0};
    if (!targv) {
        cli_error(verb, "out of memory");
        return 1;
    }
    memcpy(targv, file, sizeof file);
    memcpy(targv + 5, run->targs, (size_t)run->ntargs * sizeof *targv);
    int rc = trainer_opts_load(&s->tc, 5 + run->ntargs, targv, &errs, NULL);
    s->tc_ok = rc == ERR_OK;
    if (!rc) {
        rc = reward_scorer_config_load(&s->sc, 3, file, &errs);
        s->sc_ok = rc == ERR_OK;
    }
    if (!rc) {
        rc = cfg_load(&trainer_rm_eval_opts_spec, &s->ev, 3, file, &errs);
        s->ev_ok = rc == ERR_OK;
    }
    if (!rc) {
        rc = cfg_load(&cli_conn_spec, &s->conn, 5, file, &errs);
        s->conn_ok = rc == ERR_OK;
    }
    free(targv);
    if (rc) {
        cli_print_lines("oaif run: ", &errs);
        buf_free(&errs);
        return rc == ERR_NOMEM ? 1 : 2;
    }
    buf_free(&errs);
    return 0;
}

/* ---- files ------------------------------------------------------------------------------- */

/* <data>/rounds/<name> into out. */
static void rounds_path(char *out, size_t len, const struct rounds_run *run, const char *name)
{
    snprintf(out, len, "%s/rounds/%s", run->data_dir, name);
}

/* Writes j (taken) to path through a temporary file and a rename. ERR_OK or ERR_IO (said). */
static int write_json_file(const char *path, json_t *j)
{
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = json_dump_file(j, tmp, JSON_COMPACT) == 0 && rename(tmp, path) == 0 ? ERR_OK : ERR_IO;
    if (rc)
        cli_error(verb, "%s: cannot write: %s", path, strerror(errno));
    json_decref(j);
    return rc;
}

/* The finished rounds: the objects of rounds.jsonl in order, as a JSON array (new reference).
 * A line that is not a round's object (a write cut short) ends the list. */
static json_t *read_done(const struct rounds_run *run)
{
    char path[4200];
    rounds_path(path, sizeof path, run, "rounds.jsonl");
    json_t *done = json_array();
    FILE *f = fopen(path, "r");
    if (!f || !done)
        return done;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, 0, NULL);
        if (!json_is_object(j) ||
            json_integer_value(json_object_get(j, "round")) != (json_int_t)json_array_size(done)) {
            json_decref(j);
            break;
        }
        json_array_append_new(done, j);
    }
    free(line);
    fclose(f);
    return done;
}

/* Appends j (taken) as one line of rounds.jsonl. ERR_OK or ERR_IO (said). */
static int append_done(const struct rounds_run *run, json_t *j)
{
    char path[4200];
    rounds_path(path, sizeof path, run, "rounds.jsonl");
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    FILE *f = text ? fopen(path, "a") : NULL;
    int rc = f && fprintf(f, "%s\n", text) > 0 ? ERR_OK : ERR_IO;
    if (f && fclose(f))
        rc = ERR_IO;
    if (rc)
        cli_error(verb, "%s: cannot append: %s", path, strerror(errno));
    free(text);
    return rc;
}

/* ---- step 2: the members, one process each ------------------------------------------------- */

struct member_job {
    const char *ensemble;
    bool meta;
    int member;
    pid_t pid;
    char log[4300];
};

/* Starts `oaif rm train` for job j of round r on the pinned version. ERR_OK or ERR_IO. */
static int start_member(struct member_job *j, int r, uint32_t version, const char *self,
                        const struct rounds_run *run, const struct settings *s)
{
    char member[16], pv[16], meta[16];
    snprintf(member, sizeof member, "%d", j->member);
    snprintf(pv, sizeof pv, "%u", version);
    snprintf(meta, sizeof meta, "--meta=%s", j->meta ? "true" : "false");
    snprintf(j->log, sizeof j->log, "%s/logs/rounds-r%d-%s-m%d.log", run->data_dir, r, j->ensemble,
             j->member);
    char *av[] = {(char *)self,
                  "rm",
                  "train",
                  "--config",
                  (char *)run->config,
                  "--clients",
                  (char *)run->clients,
                  "--run",
                  s->tc.run,
                  "--ensemble",
                  (char *)j->ensemble,
                  "--member",
                  member,
                  meta,
                  j->meta ? "--meta-policy-version" : NULL, /* the meta set: the pinned policy */
                  pv,
                  NULL};
    j->pid = rounds_spawn(av, j->log);
    return j->pid > 0 ? ERR_OK : ERR_IO;
}

/* Retrains every member of every ensemble, o->jobs processes at a time. The exit status. */
static int retrain(const struct rounds_opts *o, const struct rounds_run *run,
                   const struct settings *s, int r, uint32_t version)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        cli_error(verb, "/proc/self/exe: %s", strerror(errno));
        return 1;
    }
    self[n] = '\0';
    int nens = o->baseline ? 2 : 1, njobs = nens * o->members;
    struct member_job *jobs = calloc((size_t)njobs, sizeof *jobs);
    if (!jobs) {
        cli_error(verb, "out of memory");
        return 1;
    }
    /* member-major: a member and its baseline (same seed, same data) train side by side */
    for (int k = 0; k < njobs; k++) {
        bool base = k % nens == 1;
        jobs[k] = (struct member_job){.ensemble = base ? o->baseline : s->sc.ensemble,
                                      .meta = base ? !o->meta : o->meta,
                                      .member = k / nens};
    }
    int next = 0, running = 0, status = 0;
    bool told = false;
    while (next < njobs || running > 0) {
        while (!status && !stop_requested && next < njobs && running < o->jobs) {
            if (start_member(&jobs[next], r, version, self, run, s)) {
                status = 1;
                break;
            }
            next++;
            running++;
        }
        if (!running)
            break;
        if (stop_requested && !told) { /* the members stop after their step, resumable */
            for (int k = 0; k < next; k++)
                if (jobs[k].pid > 0)
                    kill(jobs[k].pid, SIGINT);
            told = true;
        }
        int st = 0;
        pid_t pid = waitpid(-1, &st, 0);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            cli_error(verb, "waitpid: %s", strerror(errno));
            status = 1;
            break;
        }
        for (int k = 0; k < next; k++) {
            if (jobs[k].pid != pid)
                continue;
            running--;
            jobs[k].pid = 0;
            if (exit_status(st) != 0 && !stop_requested) {
                cli_error(verb,
                          "round %d: oaif rm train of member %d of '%s' failed (exit %d); "
                          "its log: %s",
                          r, jobs[k].member, jobs[k].ensemble, exit_status(st), jobs[k].log);
                status = 1;
            }
        }
    }
    free(jobs);
    if (!status && stop_requested) {
        cli_error(verb, "stopped in round %d's reward-model training; run it again to resume", r);
        status = 1;
    }
    return status;
}

/* ---- step 4: the records ----------------------------------------------------------------- */

/* The ids of the run's pairs sampled from `version` or a newer one. */
struct round_pairs {
    const char *run;
    uint32_t version;
    hmap_t *ids;
};

static int on_pair(void *ctx, const Oaif__V1__Record *rec)
{
    struct round_pairs *rp = ctx;
    Oaif__V1__Pair *p = oaif__v1__pair__unpack(NULL, rec->data.len, rec->data.data);
    int rc = ERR_OK;
    if (p && p->run && !strcmp(p->run, rp->run) && p->policy_version >= rp->version && p->id)
        rc = hmap_put(rp->ids, p->id, strlen(p->id), rp);
    oaif__v1__pair__free_unpacked(p, NULL);
    return rc;
}

/* One model's tally on the round's pairs. */
struct tally {
    size_t n, correct;
};

static void tally_add(struct tally *t, const struct rmset *s, size_t i, double d)
{
    t->n++;
    if (s->noise_known) /* against the noise-free label */
        t->correct += rmset_chosen_truly_better(s, i) ? d > 0 : d < 0;
    else
        t->correct += d > 0;
}

static json_t *accuracy(const struct tally *t)
{
    return t->n ? json_real((double)t->correct / (double)t->n) : json_null();
}

/* Scores the round's pairs with the newest members of `ensemble`: {"ensemble", "meta",
 * "pairs", "accuracy" (the members' mean reward; null without pairs), "noise_free",
 * "members": [{"model", "accuracy"}]}, or with "error" when it cannot. */
static json_t *score_ensemble(struct cli_ledger *l, const struct settings *s, const char *ensemble,
                              bool meta, const hmap_t *ids)
{
    json_t *out = json_pack("{s:s, s:b}", "ensemble", ensemble, "meta", meta);
    const struct rmset_spec spec = {.run = s->tc.run,
                                    .holdout = s->ev.holdout,
                                    .ensemble = ensemble,
                                    .member = -1,
                                    .checkpoint_dir = s->ev.checkpoint_dir,
                                    .max_len = s->ev.max_len};
    char err[1024] = "";
    struct rmset set;
    int rc = rmset_open(&set, l->client, l->timeout_ms, &spec, err, sizeof err);
    struct tally *t = NULL, mean = {0};
    size_t nm = 0;
    json_t *members = json_array();
    for (size_t i = 0; !rc && i < set.data.n; i++) {
        const char *id = set.data.pairs[i].id;
        if (!hmap_get(ids, id, strlen(id)))
            continue;
        struct reward_scorer_result *res = NULL;
        rc = rmset_score(&set, i, &res, err, sizeof err);
        if (rc)
            break;
        if (!t) {
            nm = res->n_members;
            t = calloc(nm ? nm : 1, sizeof *t);
            for (size_t m = 0; t && m < nm; m++)
                json_array_append_new(members, json_pack("{s:s}", "model", res->members[m]));
        }
        double mc = 0, mr = 0;
        for (size_t m = 0; t && m < nm && m < res->n_members; m++) {
            double c = res->scores[m * 2], r = res->scores[m * 2 + 1];
            tally_add(&t[m], &set, i, c - r);
            mc += c;
            mr += r;
        }
        if (t && nm)
            tally_add(&mean, &set, i, (mc - mr) / (double)nm);
        reward_scorer_result_free(&res);
        if (!t)
            rc = ERR_NOMEM;
    }
    for (size_t m = 0; !rc && t && m < nm; m++)
        json_object_set_new(json_array_get(members, m), "accuracy", accuracy(&t[m]));
    json_object_set_new(out, "pairs", json_integer((json_int_t)mean.n));
    json_object_set_new(out, "accuracy", accuracy(&mean));
    json_object_set_new(out, "noise_free", json_boolean(!rc && set.noise_known));
    json_object_set_new(out, "members", members);
    if (rc)
        json_object_set_new(out, "error", json_string(*err ? err : err_str(rc)));
    free(t);
    rmset_close(&set);
    return out;
}

/* The newest policy checkpoint against the SFT model, as `oaif eval --json` with the run file's
 * oaif.eval settings; its JSON in <data>/rounds/eval-r<r>.json. {"version", "win_rate",
 * "policy_accuracy", "sft_accuracy"}, or {"error"}. */
static json_t *eval_policy(struct cli_ledger *l, const struct rounds_run *run,
                           const struct settings *s, int r)
{
    Oaif__V1__Checkpoint *ck = NULL;
    int rc = ckpt_find_policy(l->client, -1, l->timeout_ms, &ck);
    if (rc)
        return json_pack("{s:s}", "error",
                         rc == ERR_NOTFOUND ? "no policy checkpoint" : err_str(rc));
    char name[64], path[4200], err[4400] = "";
    snprintf(name, sizeof name, "eval-r%d.json", r);
    rounds_path(path, sizeof path, run, name);
    char *argv[] = {"oaif eval", "--config", (char *)run->config, "--policy",
                    ck->path,    "--sft",    s->tc.sft_dir,       "--json"};
    struct trainer_eval_opts eo;
    memset(&eo, 0, sizeof eo);
    buf_t errs = {0};
    rc = cfg_load(&trainer_eval_opts_spec, &eo, 8, argv, &errs);
    if (rc) {
        snprintf(err, sizeof err, "%.*s", (int)errs.len, errs.data ? (char *)errs.data : "");
    } else {
        FILE *f = fopen(path, "w");
        if (!f) {
            snprintf(err, sizeof err, "%s: %s", path, strerror(errno));
            rc = ERR_IO;
        } else {
            rc = trainer_eval_run(&eo, f, err, sizeof err);
            if (fclose(f) && !rc) {
                snprintf(err, sizeof err, "%s: write error", path);
                rc = ERR_IO;
            }
        }
        trainer_eval_release(&eo);
    }
    buf_free(&errs);
    json_t *out = NULL;
    if (!rc) {
        json_t *e = json_load_file(path, 0, NULL);
        out = json_pack("{s:I, s:O?, s:O?, s:O?}", "version", (json_int_t)ck->version, "win_rate",
                        json_object_get(e, "win_rate"), "policy_accuracy",
                        json_object_get(e, "policy_accuracy"), "sft_accuracy",
                        json_object_get(e, "sft_accuracy"));
        json_decref(e);
    }
    if (!out)
        out = json_pack("{s:s}", "error", *err ? err : err_str(rc ? rc : ERR_IO));
    oaif__v1__checkpoint__free_unpacked(ck, NULL);
    return out;
}

/* ---- printing ---------------------------------------------------------------------------- */

/* "61.2%", or "-" for null, into out. */
static const char *pct(char *out, size_t len, const json_t *v)
{
    if (json_is_number(v))
        snprintf(out, len, "%.1f%%", 100 * json_number_value(v));
    else
        snprintf(out, len, "-");
    return out;
}

/* An ensemble's cell: "61.2% v3" (the accuracy, the newest member version scored). */
static void ens_cell(char *out, size_t len, const json_t *e)
{
    char a[32], v[32] = "";
    const json_t *m = json_array_get(json_object_get(e, "members"), 0);
    const char *model = json_string_value(json_object_get(m, "model"));
    const char *at = model ? strrchr(model, '@') : NULL;
    if (at)
        snprintf(v, sizeof v, " %s", at + 1);
    snprintf(out, len, "%s%s", pct(a, sizeof a, json_object_get(e, "accuracy")), v);
}

/* The table of the finished rounds to f. */
static void print_table(FILE *f, const json_t *done, const struct rounds_opts *o,
                        const struct settings *s)
{
    bool nf = false;
    size_t i;
    json_t *rec;
    json_array_foreach(done, i, rec)
    {
        const json_t *e0 = json_array_get(json_object_get(rec, "ensembles"), 0);
        nf = nf || json_is_true(json_object_get(e0, "noise_free"));
    }
    char h1[160], h2[160];
    snprintf(h1, sizeof h1, "%s (%s)", s->sc.ensemble, o->meta ? "MetaRM" : "vanilla");
    snprintf(h2, sizeof h2, "%s (%s)", o->baseline ? o->baseline : "-",
             o->meta ? "vanilla" : "MetaRM");
    fprintf(f,
            "Reward-model accuracy on each round's pairs (the run's labeled pairs sampled from the "
            "round's policy, against the %s labels; vN: the members' version) and the policy "
            "against SFT after the round:\n",
            nf ? "noise-free" : "stored");
    fprintf(f, "%-5s %-11s %-7s %6s  %-22s %-22s %8s %8s %8s\n", "round", "steps", "policy",
            "pairs", h1, o->baseline ? h2 : "", "win rate", "accuracy", "sft acc");
    json_array_foreach(done, i, rec)
    {
        const json_t *ens = json_object_get(rec, "ensembles"), *ev = json_object_get(rec, "eval");
        char steps[40], pol[24], c1[64], c2[64] = "", w[32], a[32], sa[32];
        snprintf(steps, sizeof steps, "%lld-%lld",
                 (long long)json_integer_value(json_object_get(rec, "step_from")),
                 (long long)json_integer_value(json_object_get(rec, "step_to")));
        snprintf(pol, sizeof pol, "v%lld",
                 (long long)json_integer_value(json_object_get(rec, "policy_version")));
        ens_cell(c1, sizeof c1, json_array_get(ens, 0));
        if (json_array_size(ens) > 1)
            ens_cell(c2, sizeof c2, json_array_get(ens, 1));
        fprintf(f, "%-5zu %-11s %-7s %6lld  %-22s %-22s %8s %8s %8s\n", i, steps, pol,
                (long long)json_integer_value(json_object_get(json_array_get(ens, 0), "pairs")), c1,
                c2, pct(w, sizeof w, json_object_get(ev, "win_rate")),
                pct(a, sizeof a, json_object_get(ev, "policy_accuracy")),
                pct(sa, sizeof sa, json_object_get(ev, "sft_accuracy")));
    }
}

/* Prints the table and writes it to summary.txt. */
static void summarize(const json_t *done, const struct rounds_opts *o, const struct settings *s,
                      const struct rounds_run *run)
{
    print_table(stdout, done, o, s);
    fflush(stdout);
    char path[4200];
    rounds_path(path, sizeof path, run, "summary.txt");
    FILE *f = fopen(path, "w");
    if (f) {
        print_table(f, done, o, s);
        if (fclose(f) == 0)
            return;
    }
    cli_error(verb, "%s: cannot write: %s", path, strerror(errno));
}

/* ---- the rounds -------------------------------------------------------------------------- */

/* Round r's step 1 and 2, or what an earlier process recorded of them: the pinned version, the
 * step it was published at, and whether the members were retrained. The exit status. */
static int begin_round(const struct rounds_opts *o, const struct rounds_run *run,
                       const struct settings *s, struct cli_ledger *l, int r, json_t **start)
{
    char name[64], path[4200];
    snprintf(name, sizeof name, "round-%d.json", r);
    rounds_path(path, sizeof path, run, name);
    *start = json_load_file(path, 0, NULL);
    if (json_is_object(*start))
        return 0;
    json_decref(*start);
    *start = NULL;
    Oaif__V1__Checkpoint *ck = NULL;
    uint32_t version = 0;
    uint64_t step = 0;
    int rc = ckpt_find_policy(l->client, -1, l->timeout_ms, &ck);
    if (rc && rc != ERR_NOTFOUND) /* none yet: the trainer publishes the SFT model first */
        return cli_ledger_failed(l, rc);
    if (!rc) {
        version = ck->version;
        step = ck->step;
        oaif__v1__checkpoint__free_unpacked(ck, NULL);
    }
    bool train = version > 0;
    if (train) {
        char also[300] = "";
        if (o->baseline)
            snprintf(also, sizeof also, " and of '%.200s' %s", o->baseline,
                     o->meta ? "the vanilla way" : "with MetaRM");
        printf("round %d/%d: retraining %d member(s) of '%s'%s%s on the run's pairs so far "
               "(policy v%u; logs: %s/logs/rounds-r%d-*)\n",
               r, o->rounds, o->members, s->sc.ensemble, o->meta ? " with MetaRM" : "", also,
               version, run->data_dir, r);
        fflush(stdout);
        int st = retrain(o, run, s, r, version);
        if (st)
            return st;
    } else {
        printf("round %d/%d: the policy is still the SFT model: the ensemble serves as published\n",
               r, o->rounds);
    }
    json_t *published = json_array();
    for (int k = 0; train && k < (o->baseline ? 2 : 1); k++) {
        const char *e = k ? o->baseline : s->sc.ensemble;
        for (int m = 0; m < o->members; m++) {
            uint32_t v = 0;
            rc = trainer_rm_ledger_version(l->client, e, m, l->timeout_ms, &v);
            if (rc) {
                json_decref(published);
                return cli_ledger_failed(l, rc);
            }
            char model[300];
            snprintf(model, sizeof model, "%s/m%d@v%u", e, m, v);
            json_array_append_new(published, json_string(model));
        }
    }
    *start = json_pack("{s:I, s:I, s:b, s:o}", "policy_version", (json_int_t)version, "step",
                       (json_int_t)step, "retrained", train, "published", published);
    if (!*start || write_json_file(path, json_incref(*start)))
        return 1;
    return 0;
}

/* The trainer to `steps`, as plain `oaif run` runs it. The exit status. */
static int train_to(const struct rounds_run *run, int steps)
{
    char bin[4400], nsteps[16];
    local_bin_path(bin, sizeof bin, "trainer");
    snprintf(nsteps, sizeof nsteps, "%d", steps);
    char **av = calloc((size_t)run->ntargs + 8, sizeof *av);
    if (!av) {
        cli_error(verb, "out of memory");
        return 1;
    }
    char *head[] = {bin, "--config", (char *)run->config, "--clients", (char *)run->clients};
    memcpy(av, head, sizeof head);
    memcpy(av + 5, run->targs, (size_t)run->ntargs * sizeof *av);
    av[5 + run->ntargs] = "--steps"; /* after the command line's: the last one counts */
    av[6 + run->ntargs] = nsteps;
    pid_t pid = rounds_spawn(av, NULL);
    free(av);
    return pid > 0 ? rounds_wait(pid) : 1;
}

/* Round r from start to record. The exit status. */
static int one_round(const struct rounds_opts *o, const struct rounds_run *run,
                     const struct settings *s, struct cli_ledger *l, int r, json_t *done)
{
    json_t *start = NULL;
    int status = begin_round(o, run, s, l, r, &start);
    int to = (int)((long long)s->tc.steps * (r + 1) / o->rounds);
    if (!status && stop_requested) {
        cli_error(verb, "stopped before round %d's training; run it again to resume", r);
        status = 1;
    }
    if (!status) {
        printf("round %d/%d: online training to step %d\n", r, o->rounds, to);
        fflush(stdout);
        status = train_to(run, to);
        if (status)
            cli_error(verb, "round %d: the trainer stopped (exit %d); run it again to resume", r,
                      status);
    }
    if (status) {
        json_decref(start);
        return status;
    }
    uint32_t version = (uint32_t)json_integer_value(json_object_get(start, "policy_version"));
    struct round_pairs rp = {.run = s->tc.run, .version = version, .ids = hmap_new()};
    int rc = rp.ids ? bus_client_scan_each(l->client, OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR,
                                           l->timeout_ms, on_pair, &rp)
                    : ERR_NOMEM;
    if (rc) {
        hmap_destroy(&rp.ids);
        json_decref(start);
        return cli_ledger_failed(l, rc);
    }
    json_t *ens = json_array();
    json_array_append_new(ens, score_ensemble(l, s, s->sc.ensemble, o->meta, rp.ids));
    if (o->baseline)
        json_array_append_new(ens, score_ensemble(l, s, o->baseline, !o->meta, rp.ids));
    hmap_destroy(&rp.ids);
    json_t *ev = eval_policy(l, run, s, r);
    json_t *rec = json_pack("{s:i, s:i, s:I, s:I, s:i, s:O, s:O, s:o, s:o}", "round", r, "rounds",
                            o->rounds, "policy_version", (json_int_t)version, "step_from",
                            json_integer_value(json_object_get(start, "step")), "step_to", to,
                            "retrained", json_object_get(start, "retrained"), "published",
                            json_object_get(start, "published"), "ensembles", ens, "eval", ev);
    json_decref(start);
    if (!rec) {
        cli_error(verb, "out of memory");
        return 1;
    }
    /* the round's lines, then the record (kept for the table) */
    char w[32], a[32];
    for (size_t k = 0; k < json_array_size(ens); k++) {
        const json_t *e = json_array_get(ens, k);
        const char *why = json_string_value(json_object_get(e, "error"));
        char cell[64];
        ens_cell(cell, sizeof cell, e);
        if (why)
            printf("round %d/%d: '%s' not scored: %s\n", r, o->rounds,
                   json_string_value(json_object_get(e, "ensemble")), why);
        else
            printf("round %d/%d: '%s' (%s, members %s): %s on the %lld pairs from policy v%u and "
                   "newer (%s labels)\n",
                   r, o->rounds, json_string_value(json_object_get(e, "ensemble")),
                   json_is_true(json_object_get(e, "meta")) ? "MetaRM" : "vanilla",
                   strchr(cell, ' ') ? strchr(cell, ' ') + 1 : "-",
                   pct(w, sizeof w, json_object_get(e, "accuracy")),
                   (long long)json_integer_value(json_object_get(e, "pairs")), version,
                   json_is_true(json_object_get(e, "noise_free")) ? "noise-free" : "stored");
    }
    const char *why = json_string_value(json_object_get(ev, "error"));
    if (why)
        printf("round %d/%d: the policy not evaluated: %s\n", r, o->rounds, why);
    else
        printf("round %d/%d: policy v%lld: win rate %s against SFT, accuracy %s\n", r, o->rounds,
               (long long)json_integer_value(json_object_get(ev, "version")),
               pct(w, sizeof w, json_object_get(ev, "win_rate")),
               pct(a, sizeof a, json_object_get(ev, "policy_accuracy")));
    fflush(stdout);
    json_array_append(done, rec);
    return append_done(run, rec) ? 1 : 0;
}

int rounds_run(const struct rounds_opts *o, const struct rounds_run *run)
{
    struct settings s;
    int status = settings_load(&s, run);
    if (status)
        return status;
    if (s.tc.steps < o->rounds) {
        cli_error(verb, "oaif.run.rounds is %d but trainer.steps is %d: at least a step a round",
                  o->rounds, s.tc.steps);
        settings_release(&s);
        return 2;
    }
    if (o->baseline && !strcmp(o->baseline, s.sc.ensemble)) {
        cli_error(verb,
                  "oaif.run.rounds_baseline '%s' is the served ensemble "
                  "(reward_scorer.ensemble): name another",
                  o->baseline);
        settings_release(&s);
        return 2;
    }
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/rounds", run->data_dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        cli_error(verb, "%s: %s", dir, strerror(errno));
        settings_release(&s);
        return 1;
    }
    snprintf(dir, sizeof dir, "%s/logs", run->data_dir);
    (void)mkdir(dir, 0755);
    free(s.conn.clients_endpoint); /* the deployment's, as the children get it */
    s.conn.clients_endpoint = strdup(run->clients);
    struct cli_ledger l;
    status = s.conn.clients_endpoint ? cli_ledger_open(&l, verb, &s.conn) : 1;
    struct sigaction sa = {.sa_handler = on_stop_signal}, old_int;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    json_t *done = read_done(run);
    if (!status && !done) {
        cli_error(verb, "out of memory");
        status = 1;
    }
    if (!status && json_array_size(done))
        printf("rounds: %zu of %d done (%s/rounds/rounds.jsonl)\n", json_array_size(done),
               o->rounds, run->data_dir);
    for (int r = (int)json_array_size(done); !status && r < o->rounds; r++)
        status = one_round(o, run, &s, &l, r, done);
    if (done && json_array_size(done))
        summarize(done, o, &s, run);
    json_decref(done);
    sigaction(SIGINT, &old_int, NULL);
    cli_ledger_close(&l);
    settings_release(&s);
    return status;
}
