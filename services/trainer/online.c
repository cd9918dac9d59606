/* online.c - see online.h. */
#include "online.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buscheck.h"
#include "busclient.h"
#include "checkpoint.h"
#include "ckpt.h"
#include "ckptfiles.h"
#include "err.h"
#include "evaluate.h"
#include "hmap.h"
#include "log.h"
#include "nn_threads.h"
#include "policy.h"
#include "skip.h"
#include "strength.h"
#include "task.h"
#include "tokenizer.h"

/* ---- state ------------------------------------------------------------------------------ */

struct waiting { /* a sampled pair waiting for its label */
    char *pair_id;
    int *prompt, *resp[2];
    int plen, rlen[2];
    float ref[2];
    uint32_t version;
    uint8_t *rec; /* the Pair, with its reference log-probs, packed: re-put at the checkpoint */
    size_t rec_len;
};

struct labeled { /* a pair with a winner, ready to train */
    struct waiting *w;
    int chosen; /* 0 or 1: which response won */
    double disagreement;
    struct trainer_strength_effect strength; /* its estimate's effect (all 0: as labeled) */
    bool strength_failed; /* advisory: trains as labeled because its estimate failed */
};

struct estimating { /* a labeled pair waiting for its estimate (strength.enabled) */
    struct labeled l;
    char *req_id; /* malloc'd: the key in run.estimating */
    uint64_t since_ms;
};

struct skipped {   /* a pair set aside since the last step */
    char *pair_id; /* malloc'd */
    enum trainer_skip why;
};

struct kept_record { /* a record to put with the next checkpoint */
    Oaif__V1__RecordKind kind;
    char *id;      /* malloc'd */
    uint8_t *data; /* malloc'd, packed */
    size_t len;
};

enum phase { PHASE_COMPUTE, PHASE_WAIT_SAMPLES, PHASE_WAIT_LABELS, PHASE_WAIT_STRENGTH, PHASES };
static const char *const phase_names[PHASES] = {"compute", "wait_samples", "wait_labels",
                                                "wait_strength"};

struct run {
    const struct trainer_online_config *cfg;
    bus_client_t *cl;
    nn_model_t *policy, *ref;
    nn_adamw_t *opt;
    tok_t *tok;
    /* prompts */
    Oaif__V1__Prompt **prompts;
    size_t nprompts, aprompts;
    hmap_t *prompt_by_id; /* id -> Oaif__V1__Prompt (its reference answer, for the judge) */
    /* progress of the run (saved in checkpoints) */
    int step;
    uint32_t version;
    uint64_t sample_seq;
    /* pipeline */
    int samples_inflight;
    /* Sample requests that failed in a row (dead letters), and when the next may go out: each
     * failure doubles the wait (SAMPLE_BACKOFF_*), a success resets it. */
    unsigned sample_failures;
    uint64_t sample_after_ms;
    /* Labels in a row that gave no pair (ties, no verdict, failed judgements): a judge that
     * always ties or always fails would otherwise be paid forever for a run that never steps.
     * Warned about at 4 batches and each doubling after; the run stops at max_unusable_labels. */
    uint64_t unusable, unusable_next_warn;
    bool unusable_warned;
    hmap_t *waiting;    /* pair id -> struct waiting (label pending) */
    hmap_t *estimating; /* estimate request id -> struct estimating */
    struct labeled *ready;
    size_t nready, aready;
    /* since the last checkpoint: step records and pair records to put with it */
    struct kept_record *recs;
    size_t nrecs, arecs;
    /* set aside since the last step */
    struct skipped *skipped;
    size_t nskipped, askipped;
    struct trainer_online_summary sum;
    /* /metrics (NULL without a registry) */
    metrics_counter_t *m_actions[7], *m_strength_failed;
    /* the loop's progress (register_progress_metrics): the last step's numbers, pairs trained
     * and set aside by reason, the mean staleness (versions behind) of the last step's pairs */
    metrics_gauge_t *m_step, *m_version, *m_loss, *m_margin, *m_accuracy, *m_kl, *m_staleness,
        *m_pairs_s;
    metrics_counter_t *m_pairs, *m_skipped[TRAINER_SKIP_COUNT];
    /* Where the time since the last step went, by phase (enum phase): the engine's work (the
     * reference log-probs of new pairs, the step; a checkpoint counts in the step after it),
     * and the waits, each charged to the stage that held the pairs the next step lacked. */
    double phase_s[PHASES];
    metrics_counter_t *m_phase_s[PHASES];    /* their totals */
    metrics_gauge_t *m_step_phase_s[PHASES]; /* the last step's */
    metrics_gauge_t *m_threads;
    uint64_t t0_ms, last_print_ms;
    int rc; /* a fatal error seen in a callback */
};

/* An info line of the run: with the progress bar on the terminal, to LOG_FILE only (log_detail),
 * not through the bar. */
#define run_log(r, ...)                                                                            \
    ((r)->cfg->progress ? log_write_file : log_write)(LOG_LVL_INFO, __FILE__, __LINE__, __VA_ARGS__)

static uint64_t now_ms(void)
{
    return bus_mono_ms();
}

/* A run whose sample requests all fail must neither spin (before: 190,528 failed requests in 10
 * minutes, resubmitted at once) nor wait forever: back off, and stop with the error. */
#define SAMPLE_BACKOFF_BASE_MS 100
#define SAMPLE_BACKOFF_CAP_MS  10000
#define SAMPLE_FAILURES_MAX    8 /* in a row, no sample between: about 35 s of backing off */
/* The sampler's (and the reward-scorer's) words for weights that are not the ones the ledger's
 * checkpoint record names: the same request can never succeed, stop at the first. */
#define CKPT_MISMATCH "the ledger's record says"

/* `p` made absolute (it exists) into buf, for the ledger's records: a service started from
 * another directory reads the same files. `p` itself when it cannot be resolved. */
static const char *abs_path(const char *p, char *buf)
{
    return realpath(p, buf) ? buf : p;
}

/* Seconds on the monotonic clock, finer than now_ms: a step's phases add up from many short
 * intervals (each poll, each reply's reference log-probs). */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* What the next step waits for while the trainer polls: the furthest stage that holds enough of
 * the pairs it lacks (their estimates, else their labels), else the sampler. */
static enum phase waiting_for(const struct run *r)
{
    size_t need = (size_t)r->cfg->batch > r->nready ? (size_t)r->cfg->batch - r->nready : 0;
    size_t estimating = hmap_count(r->estimating), labeling = hmap_count(r->waiting);
    if (need > 0 && estimating >= need)
        return PHASE_WAIT_STRENGTH;
    if (need > 0 && estimating + labeling >= need)
        return PHASE_WAIT_LABELS;
    return PHASE_WAIT_SAMPLES;
}

static int grow(void **arr, size_t *alloc, size_t need, size_t elem)
{
    if (need <= *alloc)
        return ERR_OK;
    size_t n = *alloc ? *alloc * 2 : 64;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p)
        return ERR_NOMEM;
    *arr = p;
    *alloc = n;
    return ERR_OK;
}

static void waiting_free(struct waiting *w)
{
    if (!w)
        return;
    free(w->pair_id);
    free(w->prompt);
    free(w->resp[0]);
    free(w->resp[1]);
    free(w->rec);
    free(w);
}

/* Set pair_id aside for `why`: listed in the next step's record (skipped_pair_ids, and
 * skip_reasons by trainer_skip_name) and counted in the summary (ties, stale, failed; any other
 * reason as dropped). Out of memory, the pair is counted but not listed. */
static void skip(struct run *r, const char *pair_id, enum trainer_skip why)
{
    char *id = strdup(pair_id);
    if (id && !grow((void **)&r->skipped, &r->askipped, r->nskipped + 1, sizeof *r->skipped))
        r->skipped[r->nskipped++] = (struct skipped){.pair_id = id, .why = why};
    else
        free(id);
    metrics_counter_inc(r->m_skipped[why]);
    switch (why) {
    case TRAINER_SKIP_TIE:
        r->sum.ties++;
        break;
    case TRAINER_SKIP_STALE:
        r->sum.stale++;
        break;
    case TRAINER_SKIP_FAILED:
        r->sum.failed++;
        break;
    default:
        r->sum.dropped++;
        break;
    }
}

static void clear_skipped(struct run *r)
{
    for (size_t i = 0; i < r->nskipped; i++)
        free(r->skipped[i].pair_id);
    r->nskipped = 0;
}

/* Keep a record to put with the next checkpoint. `data` is taken. ERR_NOMEM. */
static int keep_record(struct run *r, Oaif__V1__RecordKind kind, const char *id, uint8_t *data,
                       size_t len)
{
    char *idc = strdup(id);
    if (!idc || grow((void **)&r->recs, &r->arecs, r->nrecs + 1, sizeof *r->recs)) {
        free(idc);
        free(data);
        return ERR_NOMEM;
    }
    r->recs[r->nrecs++] = (struct kept_record){.kind = kind, .id = idc, .data = data, .len = len};
    return ERR_OK;
}

static void kept_record_free(struct kept_record *k)
{
    free(k->id);
    free(k->data);
    *k = (struct kept_record){0};
}

/* Pack `msg` into *k, a record of `kind` with `id` (copied). ERR_NOMEM, *k then holding what
 * was allocated: the caller frees it (kept_record_free) either way. */
static int record_pack(struct kept_record *k, Oaif__V1__RecordKind kind, const char *id,
                       const ProtobufCMessage *msg)
{
    k->kind = kind;
    k->id = strdup(id);
    k->len = protobuf_c_message_get_packed_size(msg);
    k->data = malloc(k->len ? k->len : 1);
    if (!k->id || !k->data)
        return ERR_NOMEM;
    protobuf_c_message_pack(msg, k->data);
    return ERR_OK;
}

static void clear_records(struct run *r)
{
    for (size_t i = 0; i < r->nrecs; i++)
        kept_record_free(&r->recs[i]);
    r->nrecs = 0;
}

/* ---- start: models, prompts, resume ----------------------------------------------------- */

static int load_tokenizer(struct run *r, const char *dir)
{
    char path[2048], err[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (access(path, R_OK) == 0) {
        if (tok_load(&r->tok, path, err, sizeof err)) {
            log_error("trainer: %s", err);
            return ERR_INVAL;
        }
        const struct nn_config *c = nn_model_config(r->ref);
        tok_set_special_ids(r->tok, c->bos_token_id, c->eos_token_id, c->pad_token_id);
        return ERR_OK;
    }
    r->tok = tok_new_byte();
    return r->tok ? ERR_OK : ERR_NOMEM;
}

/* The built-in task's first n train prompts (TRAINER_TASK_SEED, as `oaif task prompts` writes
 * them) put into the ledger in one atomic put. The put id and the record ids depend on n alone,
 * so a trainer restarted halfway, or a second trainer, adds nothing twice. */
static int put_builtin_prompts(struct run *r, int n)
{
    struct task_prompt *ps = NULL;
    int rc = task_prompt_set(TRAINER_TASK_SEED, TASK_SPLIT_TRAIN, (size_t)n, &ps);
    if (rc) {
        log_error("trainer: the built-in task's %d train prompts: %s", n, err_str(rc));
        return rc;
    }
    Oaif__V1__Record *rv = calloc((size_t)n, sizeof *rv);
    Oaif__V1__Record **rp = calloc((size_t)n, sizeof *rp);
    uint8_t **bufs = calloc((size_t)n, sizeof *bufs);
    rc = rv && rp && bufs ? ERR_OK : ERR_NOMEM;
    for (int i = 0; i < n && !rc; i++) {
        Oaif__V1__Prompt pm = OAIF__V1__PROMPT__INIT;
        pm.id = ps[i].id;
        pm.text = ps[i].text;
        pm.reference = ps[i].answer;
        pm.family = (char *)task_family_name(ps[i].family);
        pm.split = "train";
        size_t len = oaif__v1__prompt__get_packed_size(&pm);
        bufs[i] = malloc(len ? len : 1);
        if (!bufs[i]) {
            rc = ERR_NOMEM;
            break;
        }
        oaif__v1__prompt__pack(&pm, bufs[i]);
        oaif__v1__record__init(&rv[i]);
        rv[i].kind = OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT;
        rv[i].id = ps[i].id;
        rv[i].data.data = bufs[i];
        rv[i].data.len = len;
        rp[i] = &rv[i];
    }
    if (!rc) {
        char put_id[64];
        snprintf(put_id, sizeof put_id, "trainer-builtin-prompts-%d", n);
        rc = bus_client_put(r->cl, put_id, rp, (size_t)n, true, 30000);
        if (rc)
            log_error("trainer: putting %d built-in prompts into the ledger: %s", n, err_str(rc));
        else
            log_info("trainer: the ledger held no train prompts; put %d of the built-in task's "
                     "there",
                     n);
    }
    for (int i = 0; bufs && i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(rp);
    free(rv);
    free(ps);
    return rc;
}

static int load_prompts(struct run *r)
{
    uint64_t after = 0;
    for (;;) {
        Oaif__V1__Envelope *env = NULL;
        int rc = bus_client_scan(r->cl, OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT, after, 1000,
                                 10000, &env);
        if (rc) {
            log_error("trainer: reading prompts from the ledger: %s", err_str(rc));
            return rc;
        }
        Oaif__V1__Records *rs = env->records;
        for (size_t i = 0; i < rs->n_records; i++) {
            Oaif__V1__Prompt *p =
                oaif__v1__prompt__unpack(NULL, rs->records[i]->data.len, rs->records[i]->data.data);
            if (!p)
                continue;
            bool train = !p->split || !*p->split || !strcmp(p->split, "train");
            bool room = !r->cfg->max_prompts || r->nprompts < (size_t)r->cfg->max_prompts;
            if (!train || !room ||
                grow((void **)&r->prompts, &r->aprompts, r->nprompts + 1, sizeof *r->prompts)) {
                oaif__v1__prompt__free_unpacked(p, NULL);
                continue;
            }
            r->prompts[r->nprompts++] = p;
        }
        bool more = rs->more;
        after = rs->next_seq;
        oaif__v1__envelope__free_unpacked(env, NULL);
        if (!more)
            break;
    }
    if (!r->nprompts) {
        if (!r->cfg->builtin_prompts) /* else the caller puts built-in ones there */
            log_error("trainer: the ledger holds no train prompts: import some first "
                      "(oaif task prompts | oaif import prompts -), or let the trainer put "
                      "built-in ones there (trainer.builtin_prompts)");
        return ERR_NOTFOUND;
    }
    /* A fixed shuffle by seed: request n takes the next prompts_per_request of this order. */
    uint64_t s = r->cfg->seed ^ 0x9e3779b97f4a7c15ULL;
    for (size_t i = r->nprompts - 1; i > 0; i--) {
        size_t j = (size_t)(nn_rng_next(&s) % (i + 1));
        Oaif__V1__Prompt *t = r->prompts[i];
        r->prompts[i] = r->prompts[j];
        r->prompts[j] = t;
    }
    for (size_t i = 0; i < r->nprompts; i++)
        hmap_put(r->prompt_by_id, r->prompts[i]->id, strlen(r->prompts[i]->id), r->prompts[i]);
    log_info("trainer: %zu train prompts", r->nprompts);
    return ERR_OK;
}

static double metric(const Oaif__V1__Checkpoint *c, const char *name, double dflt)
{
    for (size_t i = 0; i < c->n_metrics; i++)
        if (!strcmp(c->metrics[i]->name, name))
            return c->metrics[i]->value;
    return dflt;
}

static int start(struct run *r)
{
    const struct trainer_online_config *c = r->cfg;
    char err[512];
    int rc = nn_checkpoint_load(&r->ref, c->sft_dir, err, sizeof err);
    if (rc) {
        log_error("trainer: the SFT model (reference): %s (make it with oaif sft)", err);
        return rc == ERR_NOTFOUND ? ERR_NOTFOUND : rc;
    }
    rc = load_tokenizer(r, c->sft_dir);
    if (rc)
        return rc;
    /* The SFT model is policy version 0 of this run's ledger; offline from another model, that
     * model is (the sampler serves version 0 to offline sample requests). */
    const char *v0 = c->sft_dir;
    if (c->offline_from && *c->offline_from) {
        nn_model_t *other = NULL;
        if (!c->offline) {
            log_error("trainer: trainer.offline_from (%s) is for offline runs: add --offline",
                      c->offline_from);
            return ERR_INVAL;
        }
        rc = nn_checkpoint_load(&other, c->offline_from, err, sizeof err);
        if (!rc && nn_model_config(other)->vocab_size != nn_model_config(r->ref)->vocab_size) {
            snprintf(err, sizeof err,
                     "vocabulary of %d tokens, the SFT model's %d: not the same "
                     "tokenizer",
                     nn_model_config(other)->vocab_size, nn_model_config(r->ref)->vocab_size);
            rc = ERR_INVAL;
        }
        nn_model_destroy(&other);
        if (rc) {
            log_error("trainer: trainer.offline_from %s: %s", c->offline_from, err);
            return rc;
        }
        v0 = c->offline_from;
    }
    char v0_sha[65];
    {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", v0, NN_CKPT_WEIGHTS);
        if (ckpt_file_sha256(path, v0_sha, err, sizeof err)) {
            log_error("trainer: %s", err);
            return ERR_IO;
        }
    }
    Oaif__V1__Checkpoint *have = NULL;
    rc = ckpt_find_policy(r->cl, 0, 10000, &have);
    if (!rc && c->offline_from && *c->offline_from && strcmp(have->sha256, v0_sha) != 0) {
        /* Resumed, version 0 must be the model the earlier pairs came from. */
        log_error("trainer: this deployment's version 0 (%s) is not trainer.offline_from %s "
                  "(sha256 %.12s..., the ledger's %.12s...): offline from another model needs a "
                  "deployment of its own",
                  have->path, c->offline_from, v0_sha, have->sha256);
        oaif__v1__checkpoint__free_unpacked(have, NULL);
        return ERR_INVAL;
    }
    if (rc == ERR_NOTFOUND) {
        Oaif__V1__Checkpoint ck = OAIF__V1__CHECKPOINT__INIT;
        ck.version = 0;
        ck.kind = OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_SFT;
        char v0_abs[PATH_MAX];
        ck.path = (char *)abs_path(v0, v0_abs);
        ck.sha256 = v0_sha;
        ck.created_ms = bus_now_ms();
        ck.run = (char *)c->run;
        rc = ckpt_publish(r->cl, &ck, 10000);
        if (rc) {
            log_error("trainer: publishing the SFT checkpoint: %s", err_str(rc));
            return rc;
        }
    } else if (rc) {
        log_error("trainer: reading checkpoints from the ledger: %s", err_str(rc));
        return rc;
    }
    if (have)
        oaif__v1__checkpoint__free_unpacked(have, NULL);
    /* Resume from the newest policy checkpoint of this run, if there is one. */
    Oaif__V1__Checkpoint *last = NULL;
    rc = ckpt_find_policy(r->cl, -1, 10000, &last);
    if (rc)
        return rc;
    if (last->version > 0 && strcmp(last->run ? last->run : "", c->run) != 0) {
        /* Policy versions are the deployment's, one chain: a second run would continue the
         * first one's policy and count its steps. */
        log_error("trainer: this deployment's ledger holds run '%s' (policy v%u); it serves one "
                  "run: resume that one (--run %s) or start run '%s' on a deployment of its own "
                  "(oaif up --data ANOTHER_DIR)",
                  last->run ? last->run : "", last->version, last->run ? last->run : "", c->run);
        oaif__v1__checkpoint__free_unpacked(last, NULL);
        return ERR_INVAL;
    }
    const char *from = last->version > 0 ? last->path : c->sft_dir;
    rc = nn_checkpoint_load(&r->policy, from, err, sizeof err);
    if (!rc) {
        r->opt = nn_adamw_new(nn_model_num_params(r->policy));
        rc = r->opt ? ERR_OK : ERR_NOMEM;
    }
    if (!rc && last->version > 0) {
        rc = nn_checkpoint_load_optim(r->policy, r->opt, from, err, sizeof err);
        r->step = (int)metric(last, "step", 0);
        r->sample_seq = (uint64_t)metric(last, "sample_seq", 0);
        r->version = last->version;
        r->sum.best_version = (uint32_t)metric(last, "best_version", 0);
        r->sum.best_win_rate = metric(last, "best_win_rate", 0);
        r->sum.best_eval_accuracy = metric(last, "best_eval_accuracy", 0);
        if (!rc)
            log_info("trainer: resuming run '%s' at step %d from %s (version %u)", c->run, r->step,
                     from, r->version);
    }
    if (rc)
        log_error("trainer: loading the policy: %s", err);
    oaif__v1__checkpoint__free_unpacked(last, NULL);
    if (!rc) {
        /* Decay only matrices, as usual: not the norms. */
        size_t nt = nn_model_num_tensors(r->policy);
        for (size_t i = 0; i < nt; i++) {
            const struct nn_tensor *t = nn_model_tensor(r->policy, i);
            if (t->ndim == 1)
                nn_adamw_set_decay(r->opt, t->offset, t->numel, false);
        }
        rc = load_prompts(r);
        if (rc == ERR_NOTFOUND && r->cfg->builtin_prompts > 0) {
            rc = put_builtin_prompts(r, r->cfg->builtin_prompts);
            if (!rc && (rc = load_prompts(r)) == ERR_NOTFOUND)
                log_error("trainer: the built-in prompts put into the ledger do not read back");
        }
    }
    return rc;
}

/* ---- sampling ------------------------------------------------------------------------------ */

static int submit_sample(struct run *r)
{
    const struct trainer_online_config *c = r->cfg;
    size_t P = (size_t)c->prompts_per_request;
    Oaif__V1__Prompt **ps = calloc(P, sizeof *ps);
    if (!ps)
        return ERR_NOMEM;
    for (size_t i = 0; i < P; i++)
        ps[i] = r->prompts[(r->sample_seq * P + i) % r->nprompts];
    Oaif__V1__SamplingParams sp = OAIF__V1__SAMPLING_PARAMS__INIT;
    sp.temperature = c->temperature;
    sp.top_p = c->top_p;
    sp.top_k = (uint32_t)c->top_k;
    sp.max_new_tokens = (uint32_t)c->max_new_tokens;
    sp.n = 2;
    sp.seed = c->seed * 1000003ULL + r->sample_seq;
    Oaif__V1__SampleRequest req = OAIF__V1__SAMPLE_REQUEST__INIT;
    req.prompts = ps;
    req.n_prompts = P;
    req.sampling = &sp;
    req.policy_version = c->offline ? 0 : r->version;
    req.pin_version = 1;
    req.run = (char *)c->run;
    size_t n = oaif__v1__sample_request__get_packed_size(&req);
    uint8_t *buf = malloc(n);
    int rc = buf ? ERR_OK : ERR_NOMEM;
    if (!rc) {
        oaif__v1__sample_request__pack(&req, buf);
        char id[300];
        snprintf(id, sizeof id, "s-%s-%" PRIu64, c->run, r->sample_seq);
        rc = bus_client_submit(r->cl, "sample", id, buf, n, c->lease_ms, 0);
        if (!rc || rc == ERR_EXISTS) {
            r->sample_seq++;
            r->samples_inflight++;
            rc = ERR_OK;
        }
    }
    free(buf);
    free(ps);
    return rc;
}

static int *copy_ids(const int32_t *ids, size_t n)
{
    int *p = malloc((n ? n : 1) * sizeof *p);
    if (p)
        for (size_t i = 0; i < n; i++)
            p[i] = ids[i];
    return p;
}

static void on_sampled(struct run *r, const Oaif__V1__Reply *rep)
{
    r->samples_inflight--;
    if (rep->outcome != OAIF__V1__OUTCOME__OUTCOME_OK) {
        const char *e = rep->error ? rep->error : "";
        r->sample_failures++;
        bool mismatch = strstr(e, CKPT_MISMATCH) != NULL;
        if (mismatch || r->sample_failures >= SAMPLE_FAILURES_MAX) {
            if (!r->rc)
                log_error("trainer: stopping: %s: sample request %s failed: %s%s",
                          mismatch ? "a checkpoint's weights are not what the ledger's record "
                                     "names, so no sample request can succeed"
                                   : "sample requests keep failing",
                          rep->id, e,
                          mismatch ? " (the sampler reads another file than the trainer wrote: "
                                     "give every service of a deployment the same checkpoint "
                                     "directory, see README, Reliability)"
                                   : "");
            r->rc = mismatch ? ERR_INVAL : ERR_REMOTE;
            return;
        }
        unsigned shift = r->sample_failures - 1 < 16 ? r->sample_failures - 1 : 16;
        uint64_t wait = (uint64_t)SAMPLE_BACKOFF_BASE_MS << shift;
        if (wait > SAMPLE_BACKOFF_CAP_MS)
            wait = SAMPLE_BACKOFF_CAP_MS;
        r->sample_after_ms = now_ms() + wait;
        log_warn("trainer: sample request %s failed (%u in a row; the next in %.1f s): %s", rep->id,
                 r->sample_failures, (double)wait / 1000.0, e);
        return;
    }
    r->sample_failures = 0;
    Oaif__V1__SampleReply *sr =
        oaif__v1__sample_reply__unpack(NULL, rep->payload.len, rep->payload.data);
    if (!sr) {
        log_warn("trainer: sample reply %s is not a SampleReply", rep->id);
        return;
    }
    size_t np = sr->n_pairs;
    struct waiting **ws = calloc(np ? np : 1, sizeof *ws);
    struct trainer_pair *tp = calloc(np ? np : 1, sizeof *tp);
    float *rc0 = calloc(np ? np : 1, sizeof *rc0), *rc1 = calloc(np ? np : 1, sizeof *rc1);
    size_t k = 0;
    unsigned flags = tok_wants_bos(r->tok) ? TOK_ADD_BOS : 0;
    int ctx = nn_model_config(r->ref)->max_position_embeddings;
    for (size_t i = 0; ws && tp && rc0 && rc1 && i < np; i++) {
        Oaif__V1__Pair *p = sr->pairs[i];
        if (p->n_responses != 2 || p->responses[0]->n_token_ids == 0 ||
            p->responses[1]->n_token_ids == 0) {
            skip(r, p->id, TRAINER_SKIP_EMPTY_RESPONSE);
            continue;
        }
        struct waiting *w = calloc(1, sizeof *w);
        int *ids = NULL;
        size_t nids = 0;
        char err[256];
        if (!w || tok_encode_prompt(r->tok, p->prompt, flags, &ids, &nids, err, sizeof err)) {
            free(w);
            skip(r, p->id, TRAINER_SKIP_PROMPT_TOKENIZE);
            continue;
        }
        w->pair_id = strdup(p->id);
        w->prompt = ids;
        w->plen = (int)nids;
        for (int s = 0; s < 2; s++) {
            w->resp[s] = copy_ids(p->responses[s]->token_ids, p->responses[s]->n_token_ids);
            w->rlen[s] = (int)p->responses[s]->n_token_ids;
        }
        w->version = p->policy_version;
        if (!w->pair_id || !w->resp[0] || !w->resp[1] || w->plen + w->rlen[0] > ctx ||
            w->plen + w->rlen[1] > ctx) {
            skip(r, p->id, TRAINER_SKIP_TOO_LONG);
            waiting_free(w);
            continue;
        }
        tp[k] = (struct trainer_pair){.prompt = w->prompt,
                                      .prompt_len = w->plen,
                                      .chosen = w->resp[0],
                                      .chosen_len = w->rlen[0],
                                      .rejected = w->resp[1],
                                      .rejected_len = w->rlen[1]};
        ws[k++] = w;
    }
    /* Reference log-probs, once per pair, with the frozen SFT model. */
    double t_ref = now_s();
    int ref_rc = k ? trainer_logprobs(r->ref, tp, (int)k, r->cfg->step.micro, rc0, rc1) : ERR_OK;
    r->phase_s[PHASE_COMPUTE] += now_s() - t_ref;
    if (ref_rc) {
        log_error("trainer: reference log-probs for %s failed", rep->id);
        for (size_t i = 0; i < k; i++) {
            skip(r, ws[i]->pair_id, TRAINER_SKIP_REFERENCE_FAILED);
            waiting_free(ws[i]);
        }
        k = 0;
    }
    for (size_t i = 0, wi = 0; i < np && wi < k; i++) {
        Oaif__V1__Pair *p = sr->pairs[i];
        if (strcmp(p->id, ws[wi]->pair_id) != 0)
            continue;
        struct waiting *w = ws[wi++];
        w->ref[0] = rc0[wi - 1];
        w->ref[1] = rc1[wi - 1];
        for (int s = 0; s < 2; s++) {
            p->responses[s]->ref_logprob = w->ref[s];
            p->responses[s]->has_ref_logprob = 1;
        }
        w->rec_len = oaif__v1__pair__get_packed_size(p);
        w->rec = malloc(w->rec_len ? w->rec_len : 1);
        if (w->rec)
            oaif__v1__pair__pack(p, w->rec);
        /* Ask the judge. */
        Oaif__V1__Prompt *src =
            p->prompt_id ? hmap_get(r->prompt_by_id, p->prompt_id, strlen(p->prompt_id)) : NULL;
        Oaif__V1__AnnotateRequest ar = OAIF__V1__ANNOTATE_REQUEST__INIT;
        ar.pair = p;
        ar.instruction = (char *)(r->cfg->instruction ? r->cfg->instruction : "");
        ar.reference = src && src->reference ? src->reference : "";
        ar.seed = r->cfg->seed;
        size_t n = oaif__v1__annotate_request__get_packed_size(&ar);
        uint8_t *buf = malloc(n);
        char id[600];
        snprintf(id, sizeof id, "a-%s", p->id);
        if (!buf || hmap_put(r->waiting, w->pair_id, strlen(w->pair_id), w)) {
            free(buf);
            skip(r, w->pair_id, TRAINER_SKIP_NOMEM);
            waiting_free(w);
            continue;
        }
        oaif__v1__annotate_request__pack(&ar, buf);
        int rc = bus_client_submit(r->cl, "annotate", id, buf, n, r->cfg->lease_ms, 0);
        free(buf);
        if (rc && rc != ERR_EXISTS) {
            hmap_del(r->waiting, w->pair_id, strlen(w->pair_id));
            skip(r, w->pair_id, TRAINER_SKIP_NOT_SUBMITTED);
            waiting_free(w);
        }
    }
    free(ws);
    free(tp);
    free(rc0);
    free(rc1);
    oaif__v1__sample_reply__free_unpacked(sr, NULL);
}

/* Pair l goes to the batch being filled. */
static void make_ready(struct run *r, const struct labeled *l)
{
    if (grow((void **)&r->ready, &r->aready, r->nready + 1, sizeof *r->ready)) {
        skip(r, l->w->pair_id, TRAINER_SKIP_NOMEM);
        waiting_free(l->w);
        return;
    }
    r->ready[r->nready++] = *l;
}

/* The estimate of labeled pair l failed (`why`): required, it is set aside; advisory, it trains
 * as labeled and is counted. l->w is taken. */
static void estimate_failed(struct run *r, struct labeled *l, const char *why)
{
    if (r->cfg->strength.required) {
        log_warn("trainer: pair %s set aside: its estimate failed: %s", l->w->pair_id, why);
        skip(r, l->w->pair_id, TRAINER_SKIP_STRENGTH_FAILED);
        waiting_free(l->w);
        return;
    }
    log_warn("trainer: pair %s trains as labeled: its estimate failed: %s", l->w->pair_id, why);
    r->sum.strength_failed++;
    metrics_counter_inc(r->m_strength_failed);
    l->strength = (struct trainer_strength_effect){0};
    l->strength_failed = true;
    make_ready(r, l);
}

/* Ask the estimate service for labeled pair l (judged `label`) under an id derived from the pair
 * and its label (trainer_strength_request_id): a restarted trainer asks the same question and the
 * ledger answers from its store. l->w is taken: it waits in r->estimating, or, when the request
 * cannot go out, goes to estimate_failed. */
static void submit_estimate(struct run *r, struct labeled *l, Oaif__V1__Label *label)
{
    struct waiting *w = l->w;
    char why[160] = "";
    Oaif__V1__Pair *pair = w->rec ? oaif__v1__pair__unpack(NULL, w->rec_len, w->rec) : NULL;
    struct estimating *e = calloc(1, sizeof *e);
    size_t idlen = strlen(w->pair_id) + 8;
    char *id = malloc(idlen);
    uint8_t *buf = NULL;
    size_t n = 0;
    if (pair && e && id && trainer_strength_request_id(w->pair_id, label->winner, id, idlen)) {
        Oaif__V1__EstimateRequest req = OAIF__V1__ESTIMATE_REQUEST__INIT;
        req.pair = pair;
        req.label = label;
        n = oaif__v1__estimate_request__get_packed_size(&req);
        buf = malloc(n ? n : 1);
        if (buf)
            oaif__v1__estimate_request__pack(&req, buf);
    }
    int rc = buf ? ERR_OK : ERR_NOMEM;
    if (!rc)
        rc = bus_client_submit(r->cl, "estimate", id, buf, n, (unsigned)r->cfg->lease_ms,
                               (unsigned)r->cfg->strength.attempts);
    if (rc == ERR_EXISTS)
        rc = ERR_OK; /* asked already: its reply comes */
    if (!rc) {
        *e = (struct estimating){.l = *l, .req_id = id, .since_ms = now_ms()};
        rc = hmap_put(r->estimating, id, strlen(id), e);
    }
    free(buf);
    if (pair)
        oaif__v1__pair__free_unpacked(pair, NULL);
    if (!rc)
        return;
    snprintf(why, sizeof why, "the request did not go out: %s", err_str(rc));
    free(id);
    free(e);
    estimate_failed(r, l, why);
}

/* The estimate of a pair came back: apply its Strength (strength.h) or treat it as failed. */
static void on_estimated(struct run *r, const Oaif__V1__Reply *rep)
{
    struct estimating *e = hmap_del(r->estimating, rep->id, strlen(rep->id));
    if (!e)
        return; /* advisory and too late: the pair trained as labeled */
    struct labeled l = e->l;
    free(e->req_id);
    free(e);
    char why[300];
    if (rep->outcome != OAIF__V1__OUTCOME__OUTCOME_OK) {
        estimate_failed(r, &l, rep->error ? rep->error : "failed");
        return;
    }
    Oaif__V1__EstimateReply *er =
        oaif__v1__estimate_reply__unpack(NULL, rep->payload.len, rep->payload.data);
    struct trainer_strength_effect eff;
    int rc = ERR_INVAL;
    if (!er)
        snprintf(why, sizeof why, "the reply is not an EstimateReply");
    else if (er->strength && er->strength->pair_id && *er->strength->pair_id &&
             strcmp(er->strength->pair_id, l.w->pair_id) != 0)
        snprintf(why, sizeof why, "the reply's strength.pair_id is %.200s", er->strength->pair_id);
    else
        rc = trainer_strength_effect(er->strength, &eff, why, sizeof why);
    if (er)
        oaif__v1__estimate_reply__free_unpacked(er, NULL);
    if (rc) {
        estimate_failed(r, &l, why);
        return;
    }
    r->sum.strength_actions[eff.action]++;
    metrics_counter_inc(r->m_actions[eff.action]);
    if (eff.drop) {
        skip(r, l.w->pair_id, TRAINER_SKIP_STRENGTH_DROP);
        waiting_free(l.w);
        return;
    }
    l.strength = eff;
    make_ready(r, &l);
}

/* Advisory strength: pairs whose estimate has not come within strength.timeout train as
 * labeled. */
static void estimates_expire(struct run *r)
{
    const struct trainer_strength_config *sc = &r->cfg->strength;
    if (!sc->enabled || sc->required || !hmap_count(r->estimating))
        return;
    uint64_t now = now_ms();
    size_t pos = 0, n = 0;
    void *v;
    struct estimating **due = calloc(hmap_count(r->estimating), sizeof(struct estimating *));
    while (due && hmap_next(r->estimating, &pos, NULL, NULL, &v)) {
        struct estimating *e = v;
        if (now - e->since_ms >= (uint64_t)sc->timeout_ms)
            due[n++] = e;
    }
    for (size_t i = 0; i < n; i++) {
        struct estimating *e = due[i];
        hmap_del(r->estimating, e->req_id, strlen(e->req_id));
        char why[80];
        snprintf(why, sizeof why, "no reply within %.1f s", (double)sc->timeout_ms / 1000.0);
        struct labeled l = e->l;
        free(e->req_id);
        free(e);
        estimate_failed(r, &l, why);
    }
    free(due);
}

/* Counts a label that gave no pair (usable false) or resets the count; warns at 4 batches in a
 * row and each doubling after, and stops the run at the configured limit. */
static void count_unusable(struct run *r, bool usable, const char *why)
{
    if (usable) {
        if (r->unusable_warned)
            log_info("trainer: a label gave a pair again, after %" PRIu64 " that did not",
                     r->unusable);
        r->unusable = 0;
        r->unusable_next_warn = 0;
        r->unusable_warned = false;
        return;
    }
    r->unusable++;
    if (!r->unusable_next_warn)
        r->unusable_next_warn = 4 * (uint64_t)r->cfg->batch;
    uint64_t limit = (uint64_t)r->cfg->max_unusable_labels;
    if (limit && r->unusable >= limit) {
        if (!r->rc)
            log_error("trainer: stopping: the last %" PRIu64 " labels gave no pair to train on "
                      "(the last: %s; trainer.max_unusable_labels %" PRIu64 "). Check the judge: "
                      "`oaif judge try` shows what it answers",
                      r->unusable, why, limit);
        r->rc = ERR_REMOTE;
    } else if (r->unusable >= r->unusable_next_warn) {
        log_warn("trainer: the last %" PRIu64 " labels gave no pair to train on (the last: %s); "
                 "the run stops at %" PRIu64 " (trainer.max_unusable_labels; 0: never). Is the "
                 "judge answering? `oaif judge try` shows what it says",
                 r->unusable, why, limit);
        r->unusable_next_warn *= 2;
        r->unusable_warned = true;
    }
}

static void on_labeled(struct run *r, const Oaif__V1__Reply *rep)
{
    const char *pair_id = rep->id + 2; /* "a-<pair id>" */
    struct waiting *w = hmap_del(r->waiting, pair_id, strlen(pair_id));
    if (!w)
        return;
    if (rep->outcome != OAIF__V1__OUTCOME__OUTCOME_OK) {
        log_warn("trainer: judging %s failed: %s", pair_id, rep->error);
        skip(r, pair_id, TRAINER_SKIP_FAILED);
        waiting_free(w);
        count_unusable(r, false, "a failed judgement");
        return;
    }
    Oaif__V1__AnnotateReply *ar =
        oaif__v1__annotate_reply__unpack(NULL, rep->payload.len, rep->payload.data);
    Oaif__V1__Winner win =
        ar && ar->label ? ar->label->winner : OAIF__V1__WINNER__WINNER_UNSPECIFIED;
    double dis = ar && ar->label ? ar->label->disagreement : 0;
    r->sum.labeled++;
    if (win != OAIF__V1__WINNER__WINNER_FIRST && win != OAIF__V1__WINNER__WINNER_SECOND) {
        skip(r, pair_id,
             win == OAIF__V1__WINNER__WINNER_TIE ? TRAINER_SKIP_TIE : TRAINER_SKIP_NO_VERDICT);
        waiting_free(w);
        count_unusable(r, false, win == OAIF__V1__WINNER__WINNER_TIE ? "a tie" : "no verdict");
    } else {
        count_unusable(r, true, NULL);
        struct labeled l = {
            .w = w, .chosen = win == OAIF__V1__WINNER__WINNER_FIRST ? 0 : 1, .disagreement = dis};
        if (r->cfg->strength.enabled)
            submit_estimate(r, &l, ar->label);
        else
            make_ready(r, &l);
    }
    if (ar)
        oaif__v1__annotate_reply__free_unpacked(ar, NULL);
}

static void on_reply(void *ctx, const Oaif__V1__Reply *rep)
{
    struct run *r = ctx;
    if (rep->id[0] == 's')
        on_sampled(r, rep);
    else if (rep->id[0] == 'a')
        on_labeled(r, rep);
    else if (rep->id[0] == 'e')
        on_estimated(r, rep);
}

/* ---- checkpoints --------------------------------------------------------------------------- */

static void add_metric(Oaif__V1__Metric *ms, Oaif__V1__Metric **mp, size_t *n, const char *name,
                       double v)
{
    oaif__v1__metric__init(&ms[*n]);
    ms[*n].name = (char *)name;
    ms[*n].value = v;
    mp[*n] = &ms[*n];
    (*n)++;
}

/* The checkpoint's files: policy version v's weights, optimizer state and tokenizer (copied from
 * the SFT directory when it has one) written durably into dir (dirlen bytes: ckpt_dir of the
 * run's root), and the sha256 of the weights into sha (trainer_ckpt_write). Logs the error, with
 * the path and errno's reason, and returns it: the checkpoint must not be published then. */
static int checkpoint_files(struct run *r, uint32_t v, char *dir, size_t dirlen, char sha[65])
{
    char err[512];
    int rc = ckpt_dir(dir, dirlen, r->cfg->ckpt_root,
                      OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_POLICY, v);
    if (rc)
        snprintf(err, sizeof err, "%s: path too long", r->cfg->ckpt_root);
    else
        rc = trainer_ckpt_write(dir, r->policy, r->opt, r->cfg->sft_dir, sha, err, sizeof err);
    if (rc)
        log_error("trainer: checkpoint v%u: %s", v, err);
    return rc;
}

/* The evaluation of version v, when due: eval_n > 0, and v a multiple of eval_every or the run's
 * last step. Then *ev is the policy against the SFT model on the eval split (greedy, the
 * noise-free rules judge with the run's instruction), the run's best version is updated, and
 * *due is true; else *ev is zeroed and *due false. It comes before anything is published: its
 * record goes in the checkpoint's put, and the best version it decides in the checkpoint's
 * metrics. Logs the error and returns it. */
static int checkpoint_evaluate(struct run *r, uint32_t v, struct trainer_comparison *ev, bool *due)
{
    const struct trainer_online_config *c = r->cfg;
    memset(ev, 0, sizeof *ev);
    *due = c->eval_n > 0 &&
           (v % (uint32_t)(c->eval_every > 0 ? c->eval_every : 1) == 0 || r->step >= c->steps);
    if (!*due)
        return ERR_OK;
    char err[512];
    double t0 = (double)now_ms();
    int rc = trainer_compare(r->policy, r->ref, r->tok, TRAINER_TASK_SEED, c->eval_n,
                             c->max_new_tokens, NULL, c->instruction, NULL, ev, err, sizeof err);
    if (rc) {
        log_error("trainer: evaluating checkpoint v%u: %s", v, err);
        return rc;
    }
    bool better =
        r->sum.best_version == 0 || ev->win_rate > r->sum.best_win_rate ||
        (ev->win_rate == r->sum.best_win_rate && ev->policy.accuracy >= r->sum.best_eval_accuracy);
    if (better) {
        r->sum.best_version = v;
        r->sum.best_win_rate = ev->win_rate;
        r->sum.best_eval_accuracy = ev->policy.accuracy;
    }
    log_info("trainer: step %d: v%u against SFT on %d eval prompts: win rate %.1f%% (%d-%d-%d), "
             "accuracy %.1f%% (SFT %.1f%%), length %.1f (SFT %.1f)%s in %.1f s",
             r->step, v, ev->n, 100 * ev->win_rate, ev->wins, ev->ties, ev->losses,
             100 * ev->policy.accuracy, 100 * ev->sft.accuracy, ev->policy.mean_length,
             ev->sft.mean_length, better ? ", the best so far" : "",
             ((double)now_ms() - t0) / 1000.0);
    return ERR_OK;
}

/* The Checkpoint record of version v (at dir, weights sha; the run's progress, last step's
 * numbers, best version and this evaluation in its metrics, so that a resumed run knows them)
 * into *ck, and, when ev is not NULL, its EvalResult (id "eval-<checkpoint id>") into *er. Both
 * packed, created at the same time; the caller frees them (kept_record_free), on error too.
 * ERR_NOMEM. */
static int checkpoint_records(struct run *r, uint32_t v, const char *dir, const char *sha,
                              const struct trainer_comparison *ev, struct kept_record *ck,
                              struct kept_record *er)
{
    const struct trainer_online_config *c = r->cfg;
    Oaif__V1__Metric ms[16], *mp[16];
    size_t nm = 0;
    add_metric(ms, mp, &nm, "step", r->step);
    add_metric(ms, mp, &nm, "sample_seq", (double)r->sample_seq);
    add_metric(ms, mp, &nm, "loss", r->sum.last_loss);
    add_metric(ms, mp, &nm, "accuracy", r->sum.last_accuracy);
    add_metric(ms, mp, &nm, "kl", r->sum.last_kl);
    if (r->sum.best_version) {
        add_metric(ms, mp, &nm, "best_version", r->sum.best_version);
        add_metric(ms, mp, &nm, "best_win_rate", r->sum.best_win_rate);
        add_metric(ms, mp, &nm, "best_eval_accuracy", r->sum.best_eval_accuracy);
    }
    if (ev) {
        add_metric(ms, mp, &nm, "eval_win_rate", ev->win_rate);
        add_metric(ms, mp, &nm, "eval_accuracy", ev->policy.accuracy);
        add_metric(ms, mp, &nm, "eval_mean_length", ev->policy.mean_length);
    }
    char id[64];
    ckpt_record_id(id, sizeof id, OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_POLICY, v);
    Oaif__V1__Checkpoint cr = OAIF__V1__CHECKPOINT__INIT;
    cr.id = id;
    cr.version = v;
    cr.kind = OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_POLICY;
    cr.step = (uint64_t)r->step;
    char dir_abs[PATH_MAX];
    cr.path = (char *)abs_path(dir, dir_abs);
    cr.sha256 = (char *)sha;
    cr.parent = r->version;
    cr.metrics = mp;
    cr.n_metrics = nm;
    cr.created_ms = bus_now_ms();
    cr.run = (char *)c->run;
    int rc = record_pack(ck, OAIF__V1__RECORD_KIND__RECORD_KIND_CHECKPOINT, id, &cr.base);
    if (rc || !ev)
        return rc;
    char eid[80];
    snprintf(eid, sizeof eid, "eval-%s", id);
    Oaif__V1__Metric ems[3], *emp[3];
    size_t enm = 0;
    add_metric(ems, emp, &enm, "n", ev->n);
    add_metric(ems, emp, &enm, "baseline_accuracy", ev->sft.accuracy);
    add_metric(ems, emp, &enm, "baseline_mean_length", ev->sft.mean_length);
    Oaif__V1__EvalResult res = OAIF__V1__EVAL_RESULT__INIT;
    res.id = eid;
    res.version = v;
    res.baseline_version = 0;
    res.judge = (char *)"rules";
    res.win_rate = ev->win_rate;
    res.wins = (uint32_t)ev->wins;
    res.ties = (uint32_t)ev->ties;
    res.losses = (uint32_t)ev->losses;
    res.accuracy = ev->policy.accuracy;
    res.mean_length = ev->policy.mean_length;
    res.metrics = emp;
    res.n_metrics = enm;
    res.created_ms = cr.created_ms;
    res.run = (char *)c->run;
    return record_pack(er, OAIF__V1__RECORD_KIND__RECORD_KIND_EVAL, eid, &res.base);
}

/* Publish version v (weights sha): one atomic put of the records kept since the last checkpoint
 * (the steps and their pairs with reference log-probs) followed by extra[0..nextra) (the
 * evaluation if one was due, then the Checkpoint, last). The ledger commits all or none, and
 * committing the Checkpoint publishes it; the put id is a function of run, version and sha, so a
 * retried put is not applied twice. Logs the error and returns it. */
static int checkpoint_publish(struct run *r, uint32_t v, const char *sha,
                              const struct kept_record *extra, size_t nextra)
{
    size_t n = r->nrecs + nextra;
    Oaif__V1__Record *rv = calloc(n, sizeof *rv);
    Oaif__V1__Record **rp = calloc(n, sizeof *rp);
    int rc = rv && rp ? ERR_OK : ERR_NOMEM;
    for (size_t i = 0; !rc && i < n; i++) {
        const struct kept_record *k = i < r->nrecs ? &r->recs[i] : &extra[i - r->nrecs];
        oaif__v1__record__init(&rv[i]);
        rv[i].kind = k->kind;
        rv[i].id = k->id;
        rv[i].data.data = k->data;
        rv[i].data.len = k->len;
        rp[i] = &rv[i];
    }
    if (!rc) {
        char put_id[400];
        snprintf(put_id, sizeof put_id, "ckpt-%s-v%u-%.16s", r->cfg->run, v, sha);
        rc = bus_client_put(r->cl, put_id, rp, n, false, 30000);
    }
    if (rc)
        log_error("trainer: publishing checkpoint v%u: %s", v, err_str(rc));
    free(rv);
    free(rp);
    return rc;
}

/* Checkpoint version r->version + 1 with the steps since the last one: write its files, evaluate
 * it when due, build its records, publish them in one put, then prune old checkpoints. A step
 * counts only once the checkpoint holding it is published: on any error nothing is published, the
 * kept records stay, the error is logged and returned (the run stops; a restarted trainer redoes
 * the steps from the last published checkpoint). */
static int checkpoint(struct run *r)
{
    uint32_t v = r->version + 1;
    char dir[2048], sha[65];
    struct trainer_comparison ev;
    bool evaluated = false;
    struct kept_record recs[2] = {{0}}; /* the EvalResult (when evaluated), the Checkpoint */
    int rc = checkpoint_files(r, v, dir, sizeof dir, sha);
    if (!rc)
        rc = checkpoint_evaluate(r, v, &ev, &evaluated);
    if (!rc) {
        rc = checkpoint_records(r, v, dir, sha, evaluated ? &ev : NULL, &recs[1], &recs[0]);
        if (rc)
            log_error("trainer: checkpoint v%u: %s", v, err_str(rc));
    }
    if (!rc)
        rc = checkpoint_publish(r, v, sha, evaluated ? recs : recs + 1, evaluated ? 2 : 1);
    kept_record_free(&recs[0]);
    kept_record_free(&recs[1]);
    if (rc)
        return rc;
    clear_records(r);
    r->version = v;
    trainer_ckpt_prune(r->cfg->ckpt_root, v, r->cfg->keep_last, r->sum.best_version);
    run_log(r, "trainer: step %d: checkpoint v%u published (%s)", r->step, v, dir);
    return ERR_OK;
}

/* ---- training ------------------------------------------------------------------------------ */

static void progress(struct run *r, const struct trainer_step_stats *st, double pairs_s,
                     const double *phase_s)
{
    const struct trainer_online_config *c = r->cfg;
    uint64_t now = now_ms();
    /* A line every 10 steps; or the bar on the terminal and a line every step in LOG_FILE */
    bool tenth = r->step % 10 == 0 || r->step == c->steps;
    if (!c->progress && !tenth)
        return;
    double el = (double)(now - r->t0_ms) / 1000.0;
    int done = r->sum.steps_done ? r->sum.steps_done : 1;
    double eta = el / done * (c->steps - r->step);
    if (c->progress) {
        int w = 24, fill = (int)((double)w * r->step / (c->steps ? c->steps : 1));
        fprintf(stderr,
                "\r[%.*s%*s] step %d/%d  loss %.4f  acc %.2f  margin %+.3f  kl %+.2f  len %.0f/%.0f"
                "  %.1f pairs/s  ETA %.0fs   ",
                fill, "########################", w - fill, "", r->step, c->steps, st->pref.loss,
                st->pref.accuracy, st->pref.margin, st->kl, st->len_chosen, st->len_rejected,
                pairs_s, eta);
        if (r->step == c->steps)
            fputc('\n', stderr);
    }
    if (c->progress && !log_has_file())
        return;
    char strength[160] = "";
    if (c->strength.enabled) {
        const uint64_t *a = r->sum.strength_actions;
        snprintf(strength, sizeof strength,
                 " strength keep %" PRIu64 " flip %" PRIu64 " smooth %" PRIu64 " margin %" PRIu64
                 " soft %" PRIu64 " drop %" PRIu64 " failed %" PRIu64,
                 a[OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_KEEP],
                 a[OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_FLIP],
                 a[OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SMOOTH],
                 a[OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_MARGIN],
                 a[OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SOFT],
                 a[OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_DROP], r->sum.strength_failed);
    }
    char waited[64] = "";
    if (c->strength.enabled)
        snprintf(waited, sizeof waited, " strength %.2fs", phase_s[PHASE_WAIT_STRENGTH]);
    run_log(r,
            "step %d/%d loss %.4f acc %.2f margin %+.3f kl %+.2f len %.0f/%.0f ties %" PRIu64
            " stale %" PRIu64 " failed %" PRIu64 "%s %.1f pairs/s; compute %.2fs, waited for "
            "samples %.2fs labels %.2fs%s",
            r->step, c->steps, st->pref.loss, st->pref.accuracy, st->pref.margin, st->kl,
            st->len_chosen, st->len_rejected, r->sum.ties, r->sum.stale, r->sum.failed, strength,
            pairs_s, phase_s[PHASE_COMPUTE], phase_s[PHASE_WAIT_SAMPLES],
            phase_s[PHASE_WAIT_LABELS], waited);
}

static int train_step(struct run *r, double wait_s)
{
    const struct trainer_online_config *c = r->cfg;
    int B = c->batch;
    /* Stale pairs are set aside first. */
    size_t keep = 0;
    for (size_t i = 0; i < r->nready; i++) {
        struct labeled *l = &r->ready[i];
        if (!c->offline && l->w->version + (uint32_t)c->max_staleness < r->version) {
            skip(r, l->w->pair_id, TRAINER_SKIP_STALE);
            waiting_free(l->w);
            continue;
        }
        r->ready[keep++] = *l;
    }
    r->nready = keep;
    if (r->nready < (size_t)B)
        return ERR_AGAIN;
    struct trainer_pair *tp = calloc((size_t)B, sizeof *tp);
    if (!tp)
        return ERR_NOMEM;
    double dis = 0, stale = 0;
    int step_actions[7] = {0}, step_failed = 0; /* this step's pairs by their estimate */
    for (int i = 0; i < B; i++) {
        struct labeled *l = &r->ready[i];
        struct waiting *w = l->w;
        stale += ((double)r->version - (double)w->version) / B;
        int ch = l->chosen, rj = 1 - l->chosen;
        tp[i] = (struct trainer_pair){.prompt = w->prompt,
                                      .prompt_len = w->plen,
                                      .chosen = w->resp[ch],
                                      .chosen_len = w->rlen[ch],
                                      .rejected = w->resp[rj],
                                      .rejected_len = w->rlen[rj],
                                      .ref_chosen = w->ref[ch],
                                      .ref_rejected = w->ref[rj],
                                      .target = 1.0f};
        trainer_strength_shape(&l->strength, &tp[i]);
        dis += l->disagreement / B;
        step_actions[l->strength.action]++;
        step_failed += l->strength_failed;
    }
    struct trainer_step_opts so = c->step;
    so.lr = nn_sched_lr(&c->sched, r->step);
    struct trainer_step_stats st;
    uint64_t t0 = now_ms();
    double t_step = now_s();
    int rc = trainer_pref_step(r->policy, r->opt, tp, B, &so, &st);
    double train_s = (double)(now_ms() - t0) / 1000.0;
    /* this step's phases: since the last step, and this step's own work */
    r->phase_s[PHASE_COMPUTE] += now_s() - t_step;
    double phase_s[PHASES];
    for (int p = 0; p < PHASES; p++) {
        phase_s[p] = r->phase_s[p];
        r->phase_s[p] = 0;
        metrics_counter_add(r->m_phase_s[p], phase_s[p]);
        metrics_gauge_set(r->m_step_phase_s[p], phase_s[p]);
    }
    free(tp);
    if (rc) {
        log_error("trainer: step %d failed: %s", r->step + 1, err_str(rc));
        return rc;
    }
    r->step++;
    r->sum.steps_done++;
    r->sum.trained += (uint64_t)B;
    r->sum.last_loss = st.pref.loss;
    r->sum.last_accuracy = st.pref.accuracy;
    r->sum.last_margin = st.pref.margin;
    r->sum.last_kl = st.kl;
    metrics_gauge_set(r->m_step, r->step);
    metrics_gauge_set(r->m_version, r->version);
    metrics_gauge_set(r->m_loss, st.pref.loss);
    metrics_gauge_set(r->m_margin, st.pref.margin);
    metrics_gauge_set(r->m_accuracy, st.pref.accuracy);
    metrics_gauge_set(r->m_kl, st.kl);
    metrics_gauge_set(r->m_staleness, stale);
    metrics_counter_add(r->m_pairs, B);
    /* The step's record: its pairs, what was set aside since the last one, its numbers. */
    size_t nsk = r->nskipped;
    char **ids = calloc((size_t)B, sizeof *ids);
    char **sk_ids = calloc(nsk ? nsk : 1, sizeof *sk_ids),
         **sk_why = calloc(nsk ? nsk : 1, sizeof *sk_why);
    Oaif__V1__Metric ms[32], *mp[32];
    size_t nm = 0;
    double el = (double)(now_ms() - r->t0_ms) / 1000.0;
    double pairs_s = el > 0 ? (double)r->sum.trained / el : 0;
    add_metric(ms, mp, &nm, "loss", st.pref.loss);
    add_metric(ms, mp, &nm, "reward_chosen", st.pref.reward_chosen);
    add_metric(ms, mp, &nm, "reward_rejected", st.pref.reward_rejected);
    add_metric(ms, mp, &nm, "margin", st.pref.margin);
    add_metric(ms, mp, &nm, "accuracy", st.pref.accuracy);
    add_metric(ms, mp, &nm, "kl", st.kl);
    add_metric(ms, mp, &nm, "len_chosen", st.len_chosen);
    add_metric(ms, mp, &nm, "len_rejected", st.len_rejected);
    add_metric(ms, mp, &nm, "grad_norm", st.grad_norm);
    add_metric(ms, mp, &nm, "lr", so.lr);
    add_metric(ms, mp, &nm, "judge_disagreement", dis);
    add_metric(ms, mp, &nm, "ties", (double)r->sum.ties);
    add_metric(ms, mp, &nm, "failed", (double)r->sum.failed);
    add_metric(ms, mp, &nm, "stale", (double)r->sum.stale);
    add_metric(ms, mp, &nm, "dropped", (double)r->sum.dropped);
    add_metric(ms, mp, &nm, "pairs_per_s", pairs_s);
    metrics_gauge_set(r->m_pairs_s, pairs_s);
    add_metric(ms, mp, &nm, "seconds_train", train_s);
    add_metric(ms, mp, &nm, "seconds_wait", wait_s);
    add_metric(ms, mp, &nm, "seconds_compute", phase_s[PHASE_COMPUTE]);
    add_metric(ms, mp, &nm, "seconds_wait_samples", phase_s[PHASE_WAIT_SAMPLES]);
    add_metric(ms, mp, &nm, "seconds_wait_labels", phase_s[PHASE_WAIT_LABELS]);
    if (c->strength.enabled)
        add_metric(ms, mp, &nm, "seconds_wait_strength", phase_s[PHASE_WAIT_STRENGTH]);
    if (c->strength.enabled) {
        /* this step's pairs by the estimate applied to them (`oaif audit` adds them up), and
         * the run's pairs trained as labeled for want of one */
        static const char *const applied[7] = {
            [OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_KEEP] = "strength_keep",
            [OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_FLIP] = "strength_flip",
            [OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SMOOTH] = "strength_smooth",
            [OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_MARGIN] = "strength_margin",
            [OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SOFT] = "strength_soft",
        };
        for (int a = 0; a < 7; a++)
            if (applied[a])
                add_metric(ms, mp, &nm, applied[a], step_actions[a]);
        add_metric(ms, mp, &nm, "strength_unestimated", step_failed);
        add_metric(ms, mp, &nm, "strength_failed", (double)r->sum.strength_failed);
        add_metric(
            ms, mp, &nm, "strength_dropped",
            (double)r->sum.strength_actions[OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_DROP]);
    }
    Oaif__V1__TrainStep ts = OAIF__V1__TRAIN_STEP__INIT;
    char sid[300];
    snprintf(sid, sizeof sid, "step-%s-%06d", c->run, r->step);
    ts.id = sid;
    ts.run = (char *)c->run;
    ts.step = (uint64_t)r->step;
    ts.policy_version = r->version;
    ts.metrics = mp;
    ts.n_metrics = nm;
    ts.created_ms = bus_now_ms();
    uint8_t *buf = NULL;
    size_t n = 0;
    if (ids && sk_ids && sk_why) {
        for (int i = 0; i < B; i++)
            ids[i] = r->ready[i].w->pair_id;
        for (size_t i = 0; i < nsk; i++) {
            sk_ids[i] = r->skipped[i].pair_id;
            sk_why[i] = (char *)trainer_skip_name(r->skipped[i].why);
        }
        ts.pair_ids = ids;
        ts.n_pair_ids = (size_t)B;
        ts.skipped_pair_ids = sk_ids;
        ts.n_skipped_pair_ids = nsk;
        ts.skip_reasons = sk_why;
        ts.n_skip_reasons = nsk;
        n = oaif__v1__train_step__get_packed_size(&ts);
        buf = malloc(n);
    }
    if (buf) {
        oaif__v1__train_step__pack(&ts, buf);
        rc = keep_record(r, OAIF__V1__RECORD_KIND__RECORD_KIND_STEP, sid, buf, n);
    } else {
        rc = ERR_NOMEM; /* a step record without its pairs would hide them from the audit */
    }
    free(ids);
    free(sk_ids);
    free(sk_why);
    clear_skipped(r);
    /* The trained pairs' records (with reference log-probs) go with the checkpoint. */
    for (int i = 0; !rc && i < B; i++) {
        struct waiting *w = r->ready[i].w;
        if (w->rec) {
            rc = keep_record(r, OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR, w->pair_id, w->rec,
                             w->rec_len);
            w->rec = NULL;
        }
        waiting_free(w);
    }
    memmove(r->ready, r->ready + B, (r->nready - (size_t)B) * sizeof *r->ready);
    r->nready -= (size_t)B;
    progress(r, &st, pairs_s, phase_s);
    double t_ckpt = now_s();
    if (!rc &&
        (r->step % (c->checkpoint_every > 0 ? c->checkpoint_every : 1) == 0 || r->step >= c->steps))
        rc = checkpoint(r);
    r->phase_s[PHASE_COMPUTE] += now_s() - t_ckpt; /* counted in the next step */
    return rc;
}

/* ---- the loop ------------------------------------------------------------------------------ */

static void run_free(struct run *r)
{
    bus_client_destroy(&r->cl);
    nn_model_destroy(&r->policy);
    nn_model_destroy(&r->ref);
    nn_adamw_destroy(&r->opt);
    tok_destroy(&r->tok);
    for (size_t i = 0; i < r->nprompts; i++)
        oaif__v1__prompt__free_unpacked(r->prompts[i], NULL);
    free(r->prompts);
    hmap_destroy(&r->prompt_by_id);
    if (r->waiting) {
        size_t pos = 0;
        void *v;
        while (hmap_next(r->waiting, &pos, NULL, NULL, &v))
            waiting_free(v);
        hmap_destroy(&r->waiting);
    }
    if (r->estimating) {
        size_t pos = 0;
        void *v;
        while (hmap_next(r->estimating, &pos, NULL, NULL, &v)) {
            struct estimating *e = v;
            waiting_free(e->l.w);
            free(e->req_id);
            free(e);
        }
        hmap_destroy(&r->estimating);
    }
    for (size_t i = 0; i < r->nready; i++)
        waiting_free(r->ready[i].w);
    free(r->ready);
    clear_records(r);
    free(r->recs);
    clear_skipped(r);
    free(r->skipped);
}

/* The loop's progress on cfg->metrics: the last step's numbers, pairs trained and set aside.
 * ERR_NOMEM (or ERR_INVAL: a clash of names in the registry), logged. */
static int register_progress_metrics(struct run *r)
{
    static const struct {
        size_t off;
        const char *name, *help;
    } gauges[] = {
        {offsetof(struct run, m_step), "oaif_trainer_step", "The last training step done."},
        {offsetof(struct run, m_version), "oaif_trainer_policy_version",
         "The newest policy version when the last step trained."},
        {offsetof(struct run, m_loss), "oaif_trainer_loss", "The last step's loss."},
        {offsetof(struct run, m_margin), "oaif_trainer_margin",
         "The last step's mean reward margin (chosen - rejected)."},
        {offsetof(struct run, m_accuracy), "oaif_trainer_accuracy",
         "The last step's share of pairs with a positive margin."},
        {offsetof(struct run, m_kl), "oaif_trainer_kl", "The last step's KL estimate."},
        {offsetof(struct run, m_staleness), "oaif_trainer_staleness",
         "Mean policy versions between the last step's pairs' sampling and the step."},
        {offsetof(struct run, m_pairs_s), "oaif_trainer_pairs_per_second",
         "Pairs trained per second since the run started."},
    };
    metrics_t *m = r->cfg->metrics;
    int rc = ERR_OK;
    for (size_t i = 0; !rc && i < sizeof gauges / sizeof gauges[0]; i++)
        rc = metrics_gauge_register(m, (metrics_gauge_t **)((char *)r + gauges[i].off),
                                    gauges[i].name, gauges[i].help, NULL);
    if (!rc)
        rc = metrics_counter_register(m, &r->m_pairs, "oaif_trainer_pairs_total", "Pairs trained.",
                                      NULL);
    for (int w = 0; !rc && w < TRAINER_SKIP_COUNT; w++)
        rc = metrics_counter_register(m, &r->m_skipped[w], "oaif_trainer_pairs_set_aside_total",
                                      "Pairs set aside untrained, by reason.", "reason",
                                      trainer_skip_name((enum trainer_skip)w), NULL);
    for (int p = 0; !rc && p < PHASES; p++)
        rc = metrics_counter_register(
            m, &r->m_phase_s[p], "oaif_trainer_seconds_total",
            "Seconds of the loop by phase: compute (reference log-probs, steps, checkpoints), or "
            "waiting for the stage that held the pairs the next step lacked.",
            "phase", phase_names[p], NULL);
    for (int p = 0; !rc && p < PHASES; p++)
        rc = metrics_gauge_register(m, &r->m_step_phase_s[p], "oaif_trainer_step_seconds",
                                    "The last step's seconds by phase (as "
                                    "oaif_trainer_seconds_total), since the step before.",
                                    "phase", phase_names[p], NULL);
    if (!rc)
        rc = metrics_gauge_register(m, &r->m_threads, "oaif_trainer_threads",
                                    "OpenMP threads of the engine (trainer.threads).", NULL);
    metrics_gauge_set(r->m_threads, nn_threads_count());
    if (rc)
        log_error("trainer: registering the progress metrics: %s", err_str(rc));
    return rc;
}

/* The loop's series on cfg->metrics: estimates applied by action, and pairs trained as labeled
 * for want of one. ERR_NOMEM (or ERR_INVAL: a clash of names in the registry), logged. */
static int register_metrics(struct run *r)
{
    static const char *const names[7] = {
        [OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_KEEP] = "keep",
        [OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_FLIP] = "flip",
        [OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SMOOTH] = "smooth",
        [OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_MARGIN] = "margin",
        [OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_DROP] = "drop",
        [OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SOFT] = "soft",
    };
    metrics_t *m = r->cfg->metrics;
    int rc = ERR_OK;
    for (int a = 0; !rc && a < 7; a++)
        if (names[a])
            rc = metrics_counter_register(
                m, &r->m_actions[a], "oaif_trainer_strength_actions_total",
                "Labeled pairs whose estimate was applied, by action.", "action", names[a], NULL);
    if (!rc)
        rc = metrics_counter_register(
            m, &r->m_strength_failed, "oaif_trainer_strength_failed_total",
            "Labeled pairs trained as labeled because their estimate failed (advisory strength).",
            NULL);
    if (rc)
        log_error("trainer: registering the strength metrics: %s", err_str(rc));
    return rc;
}

int trainer_online_run(const struct trainer_online_config *cfg, void *zctx,
                       volatile sig_atomic_t *stop, struct trainer_online_summary *out)
{
    struct run r;
    memset(&r, 0, sizeof r);
    r.cfg = cfg;
    r.t0_ms = now_ms();
    if (cfg->batch < 1 || cfg->prompts_per_request < 1 || cfg->inflight < 1 || cfg->steps < 0) {
        log_error("trainer: batch, prompts_per_request and inflight must be at least 1");
        return ERR_INVAL;
    }
    /* A checkpoint is one atomic put of every step and trained pair since the last one, and the
     * ledger takes BUS_PUT_RECORDS_MAX records a put: refused here, before any work, rather than
     * at the first checkpoint after hours of training. */
    int apart = cfg->checkpoint_every < cfg->steps ? cfg->checkpoint_every : cfg->steps;
    uint64_t per_put = (uint64_t)apart * ((uint64_t)cfg->batch + 1) + 2; /* and one at the end */
    if (per_put > BUS_PUT_RECORDS_MAX) {
        log_error("trainer: %s %d x (trainer.batch %d + 1) + 2 = %" PRIu64
                  " records would go in one checkpoint's put, over the ledger's %d a put: "
                  "checkpoint at most every %d steps at this batch",
                  apart == cfg->checkpoint_every ? "trainer.checkpoint_every" : "trainer.steps",
                  apart, cfg->batch, per_put, BUS_PUT_RECORDS_MAX,
                  (BUS_PUT_RECORDS_MAX - 2) / (cfg->batch + 1));
        return ERR_INVAL;
    }
    struct bus_client_opts bo = {.endpoint = cfg->ledger, .curve = cfg->curve};
    r.prompt_by_id = hmap_new();
    r.waiting = hmap_new();
    r.estimating = hmap_new();
    int rc =
        r.prompt_by_id && r.waiting && r.estimating ? bus_client_new(&r.cl, zctx, &bo) : ERR_NOMEM;
    if (!rc && cfg->metrics)
        rc = register_progress_metrics(&r);
    if (!rc && cfg->metrics && cfg->strength.enabled)
        rc = register_metrics(&r);
    if (!rc)
        rc = start(&r);
    uint64_t wait_start = now_ms();
    while (!rc && r.step < cfg->steps && !(stop && *stop)) {
        if (cfg->stop_after_steps && r.sum.steps_done >= cfg->stop_after_steps)
            break;
        /* Keep sampling ahead, but not far: pairs sampled long before training go stale. */
        size_t pipeline = r.nready + hmap_count(r.waiting) + hmap_count(r.estimating) +
                          (size_t)r.samples_inflight * (size_t)cfg->prompts_per_request;
        while (!rc && now_ms() >= r.sample_after_ms && r.samples_inflight < cfg->inflight &&
               pipeline < (size_t)cfg->batch * 2 + (size_t)cfg->prompts_per_request) {
            rc = submit_sample(&r);
            pipeline += (size_t)cfg->prompts_per_request;
        }
        if (rc)
            break;
        enum phase waits = waiting_for(&r);
        double t_poll = now_s(), computed = r.phase_s[PHASE_COMPUTE];
        int got = bus_client_poll(r.cl, 200, on_reply, &r);
        /* the poll's time, less the reference log-probs its replies computed */
        r.phase_s[waits] += now_s() - t_poll - (r.phase_s[PHASE_COMPUTE] - computed);
        if (got == ERR_INTR)
            continue;
        if (got < 0) {
            rc = got;
            break;
        }
        if (r.rc) { /* a reply said the run cannot go on (logged) */
            rc = r.rc;
            break;
        }
        estimates_expire(&r);
        while (!rc && r.nready >= (size_t)cfg->batch && r.step < cfg->steps) {
            double wait_s = (double)(now_ms() - wait_start) / 1000.0;
            rc = train_step(&r, wait_s);
            if (rc == ERR_AGAIN) {
                rc = ERR_OK;
                break;
            }
            wait_start = now_ms();
        }
    }
    if (!rc && stop && *stop)
        rc = ERR_INTR;
    r.sum.step = r.step;
    r.sum.version = r.version;
    r.sum.seconds = (double)(now_ms() - r.t0_ms) / 1000.0;
    if (out)
        *out = r.sum;
    run_free(&r);
    return rc;
}
