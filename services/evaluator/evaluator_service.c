/* evaluator_service.c - see evaluator_service.h. */
#include "evaluator_service.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "busclient.h"
#include "busworker.h"
#include "ckpt.h"
#include "err.h"
#include "hmap.h"
#include "log.h"
#include "rm.h"
#include "rm_data.h"

#define QUERY_MS    5000 /* a record query (scan, get, put) */
#define RETRY_MS    1000 /* a job that could not start (no prompts, no baseline) waits this long */
#define ID_MAX      512
#define REPLY_POLL  50 /* poll cap while requests of ours are in flight */
#define LOAD_SLICE_MS 100 /* prompt pages read in one poll turn, at most this long */
#define KIND_POLICY 0u /* what a submitted id stands for (hmap value: index << 3 | kind, + 1) */
#define KIND_BASE   1u
#define KIND_JUDGE  2u
#define KIND_REF    3u /* the reference's log-probabilities of the policy's answers */
#define KIND_RM     4u /* the reward ensemble's scores of a held-out pair */

/* A version to evaluate, and the evaluate request that asked for it (NULL: an event). */
struct job {
    uint32_t version;
    char run[128]; /* the run it belongs to: evaluator.run, or the checkpoint's */
    struct bus_req *req;
    struct job *next;
};

/* The evaluation in progress. */
struct current {
    struct job *job;
    int phase; /* 1 sampling, 2 judging */
    size_t n;  /* prompts */
    char **pol, **base;
    Oaif__V1__Response **pol_resp; /* the policy's answers as the sampler gave them (tokens) */
    double *lp_pol, *lp_ref;       /* log pi and log pi_ref of the policy's answers */
    bool *have_ref;
    char kl_failed[300];                    /* why KL is missing ("": not) */
    size_t rm_asked, rm_scored, rm_correct; /* held-out pairs scored by the reward ensemble */
    char rm_failed[300];                    /* why rm_accuracy is missing ("": not) */
    Oaif__V1__Winner *winner;
    bool *judged;
    hmap_t *ids; /* outstanding request id -> (index << 2 | kind) + 1 */
    size_t outstanding;
    char judge[128]; /* Label.judge of the first judgement */
    char failed[600];
    uint64_t t0;
};

struct series {
    metrics_counter_t *evaluations, *failed, *judgements, *judge_failures;
    metrics_gauge_t *last_version, *last_win_rate, *last_lc, *last_lo, *last_hi;
};

struct evaluator_service {
    const struct evaluator_config *cfg;
    struct bus_curve curve;
    bus_worker_t *worker;
    bus_client_t *client;
    void *sub;
    struct job *head, *tail;
    struct current cur;
    uint32_t max_queued; /* the highest version queued from the checkpoints */
    uint64_t ckpt_seq;   /* scan cursor over the checkpoint records */
    uint64_t prompt_seq; /* scan cursor over the prompt records (load_prompts) */
    struct bus_rescan rescan; /* events are hints: the ledger's records say what is new */
    uint64_t not_before;
    Oaif__V1__Prompt **prompts; /* the held-out prompts (unpacked, owned) */
    size_t nprompts;
    char base_sha[65];    /* the baseline checkpoint's sha256 ("" until read) */
    bool few_logged;      /* "only K prompts" was said */
    uint32_t wait_logged; /* the version whose "cannot start yet" was said last */
    struct evaluator_service_stats st;
    struct series m;
};

/* ---- the queue ---------------------------------------------------------------------------- */

/* evaluator.run when set, else `theirs` (the checkpoint's or the request's run); NULL when
 * neither names one. */
static const char *run_of(const evaluator_service_t *s, const char *theirs)
{
    const char *mine = s->cfg->run;
    if (mine && *mine)
        return mine;
    return theirs && *theirs ? theirs : NULL;
}

static void enqueue(evaluator_service_t *s, uint32_t version, const char *run, struct bus_req *req)
{
    struct job *j = calloc(1, sizeof *j);
    if (!j) {
        if (req)
            bus_worker_fail(s->worker, req->id, "evaluator: out of memory", false);
        bus_req_free(&req);
        return;
    }
    j->version = version;
    snprintf(j->run, sizeof j->run, "%s", run);
    j->req = req;
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
}

static void job_free(struct job *j)
{
    if (!j)
        return;
    bus_req_free(&j->req);
    free(j);
}

/* ---- records ------------------------------------------------------------------------------ */

/* Queues the policy versions published since the last scan that are due (every E-th, above the
 * baseline, of this run or of none). Returns false when the ledger could not be read. */
static bool rescan(evaluator_service_t *s)
{
    const struct evaluator_config *c = s->cfg;
    for (bool more = true; more;) {
        Oaif__V1__Envelope *env = NULL;
        int rc = bus_client_scan(s->client, OAIF__V1__RECORD_KIND__RECORD_KIND_CHECKPOINT,
                                 s->ckpt_seq, 1000, QUERY_MS, &env);
        if (rc) {
            log_warn("reading the ledger's checkpoints: %s", err_str(rc));
            return false;
        }
        const Oaif__V1__Records *r = env->records;
        for (size_t i = 0; i < r->n_records; i++) {
            const Oaif__V1__Record *rec = r->records[i];
            Oaif__V1__Checkpoint *ck =
                oaif__v1__checkpoint__unpack(NULL, rec->data.len, rec->data.data);
            if (!ck)
                continue;
            uint32_t v = ck->version;
            const char *run = run_of(s, ck->run);
            bool ours = !*ck->run || !c->run || !*c->run || !strcmp(ck->run, c->run);
            if (ck->kind == OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_POLICY && ours && run &&
                v > (uint32_t)c->baseline && v % (uint32_t)c->every == 0 && v > s->max_queued) {
                enqueue(s, v, run, NULL);
                s->max_queued = v;
            }
            oaif__v1__checkpoint__free_unpacked(ck, NULL);
        }
        more = r->more;
        s->ckpt_seq = r->next_seq;
        oaif__v1__envelope__free_unpacked(env, NULL);
    }
    return true;
}

/* The first N prompts of the split, read on from a cursor a few pages a turn: at most
 * LOAD_SLICE_MS of the poll loop, since a ledger of millions of prompts would otherwise hold it
 * for seconds, and a worker silent for three heartbeat intervals reconnects and loses its leases.
 * ERR_AGAIN: pages remain (call again next turn); ERR_OK: N held, or the ledger had no more:
 * fewer will do (said once), and later calls read on from the cursor, so prompts added later
 * join the evaluations that start after them; ERR_NOTFOUND: none of the split yet. */
static int load_prompts(evaluator_service_t *s)
{
    const struct evaluator_config *c = s->cfg;
    size_t want = (size_t)c->prompts;
    if (s->nprompts == want)
        return ERR_OK;
    if (!s->prompts && !(s->prompts = calloc(want, sizeof(Oaif__V1__Prompt *))))
        return ERR_NOMEM;
    uint64_t t0 = bus_mono_ms();
    for (;;) {
        Oaif__V1__Envelope *env = NULL;
        int rc = bus_client_scan(s->client, OAIF__V1__RECORD_KIND__RECORD_KIND_PROMPT,
                                 s->prompt_seq, 1000, QUERY_MS, &env);
        if (rc)
            return rc;
        const Oaif__V1__Records *r = env->records;
        size_t i = 0;
        for (; i < r->n_records && s->nprompts < want; i++) {
            Oaif__V1__Prompt *p =
                oaif__v1__prompt__unpack(NULL, r->records[i]->data.len, r->records[i]->data.data);
            if (p && !strcmp(p->split, c->split))
                s->prompts[s->nprompts++] = p;
            else if (p)
                oaif__v1__prompt__free_unpacked(p, NULL);
        }
        /* the cursor: past the last record looked at (all of the page, unless N came first) */
        s->prompt_seq = i < r->n_records ? r->records[i - 1]->seq : r->next_seq;
        bool more = r->more;
        oaif__v1__envelope__free_unpacked(env, NULL);
        if (s->nprompts == want)
            return ERR_OK;
        if (!more)
            break;
        if (bus_mono_ms() - t0 >= LOAD_SLICE_MS)
            return ERR_AGAIN;
    }
    if (s->nprompts == 0)
        return ERR_NOTFOUND;
    if (!s->few_logged) {
        log_warn("only %zu prompts of split '%s' in the ledger (evaluator.prompts is %d): "
                 "evaluating on those; versions evaluated after more arrive use more",
                 s->nprompts, c->split, c->prompts);
        s->few_logged = true;
    }
    return ERR_OK;
}

/* The stored EvalResult of `version`, or NULL (not there, or the ledger could not say: *rc). */
static Oaif__V1__EvalResult *stored_result(evaluator_service_t *s, const struct job *j, int *rc)
{
    char id[ID_MAX];
    *rc = evaluator_result_id(id, sizeof id, s->cfg, j->run, j->version);
    if (*rc)
        return NULL;
    const char *ids[1] = {id};
    Oaif__V1__Envelope *env = NULL;
    *rc =
        bus_client_get(s->client, OAIF__V1__RECORD_KIND__RECORD_KIND_EVAL, ids, 1, QUERY_MS, &env);
    if (*rc)
        return NULL;
    Oaif__V1__EvalResult *r = NULL;
    if (env->records->n_records == 1) {
        const Oaif__V1__Record *rec = env->records->records[0];
        r = oaif__v1__eval_result__unpack(NULL, rec->data.len, rec->data.data);
    }
    oaif__v1__envelope__free_unpacked(env, NULL);
    return r;
}

/* ---- replies to evaluate requests -------------------------------------------------------- */

static void reply_result(evaluator_service_t *s, struct bus_req *req, Oaif__V1__EvalResult *r)
{
    if (!req)
        return;
    Oaif__V1__EvaluateReply rep = OAIF__V1__EVALUATE_REPLY__INIT;
    rep.result = r;
    size_t n = oaif__v1__evaluate_reply__get_packed_size(&rep);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf) {
        bus_worker_fail(s->worker, req->id, "evaluator: out of memory", false);
        return;
    }
    oaif__v1__evaluate_reply__pack(&rep, buf);
    int rc = bus_worker_reply(s->worker, req->id, buf, n, NULL, 0);
    if (rc)
        log_warn("replying to %s: %s (the ledger re-leases it)", req->id, err_str(rc));
    free(buf);
}

/* An evaluate request from the worker socket: checked, then queued (or answered from the
 * ledger when that version was evaluated already, once its turn comes). */
static void take_request(evaluator_service_t *s, struct bus_req *req)
{
    const struct evaluator_config *c = s->cfg;
    s->st.requests++;
    Oaif__V1__EvaluateRequest *pb =
        oaif__v1__evaluate_request__unpack(NULL, req->len, req->payload);
    char why[600] = "";
    if (!pb) {
        bus_worker_fail(s->worker, req->id, "EvaluateRequest: not a valid message", true);
        bus_req_free(&req);
        return;
    }
    const char *run = run_of(s, pb->run);
    if (c->run && *c->run && *pb->run && strcmp(pb->run, c->run) != 0)
        snprintf(why, sizeof why, "run: this evaluator serves run '%s', not '%s'", c->run, pb->run);
    else if (!run)
        snprintf(why, sizeof why, "run: missing (this evaluator serves every run: name one)");
    else if (pb->baseline_version != (uint32_t)c->baseline)
        snprintf(why, sizeof why,
                 "baseline_version: this evaluator compares with version %d, not %u", c->baseline,
                 pb->baseline_version);
    else if (pb->version <= (uint32_t)c->baseline)
        snprintf(why, sizeof why, "version: %u is not above the baseline's (%d)", pb->version,
                 c->baseline);
    if (why[0]) {
        bus_worker_fail(s->worker, req->id, why, true);
        bus_req_free(&req);
    } else {
        enqueue(s, pb->version, run, req);
    }
    oaif__v1__evaluate_request__free_unpacked(pb, NULL);
}

/* ---- one evaluation ------------------------------------------------------------------------ */

static void current_clear(evaluator_service_t *s)
{
    struct current *cu = &s->cur;
    for (size_t i = 0; i < cu->n; i++) {
        if (cu->pol)
            free(cu->pol[i]);
        if (cu->base)
            free(cu->base[i]);
        if (cu->pol_resp && cu->pol_resp[i])
            oaif__v1__response__free_unpacked(cu->pol_resp[i], NULL);
    }
    free(cu->pol_resp);
    free(cu->lp_pol);
    free(cu->lp_ref);
    free(cu->have_ref);
    free(cu->pol);
    free(cu->base);
    free(cu->winner);
    free(cu->judged);
    hmap_destroy(&cu->ids);
    job_free(cu->job);
    memset(cu, 0, sizeof *cu);
}

static int submit(evaluator_service_t *s, const char *service, const char *id,
                  const ProtobufCMessage *m, size_t index, unsigned kind)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return ERR_NOMEM;
    protobuf_c_message_pack(m, buf);
    int rc = hmap_put(s->cur.ids, id, strlen(id), (void *)(uintptr_t)(((index << 3) | kind) + 1));
    if (!rc)
        rc = bus_client_submit(s->client, service, id, buf, n, 0, 0);
    free(buf);
    if (!rc)
        s->cur.outstanding++;
    else
        hmap_del(s->cur.ids, id, strlen(id));
    return rc;
}

/* The sample requests of one side, a batch each. */
static int submit_samples(evaluator_service_t *s, bool baseline)
{
    const struct evaluator_config *c = s->cfg;
    uint32_t v = baseline ? (uint32_t)c->baseline : s->cur.job->version;
    Oaif__V1__SamplingParams sp = OAIF__V1__SAMPLING_PARAMS__INIT;
    sp.temperature = (float)c->temperature;
    sp.top_p = (float)c->top_p;
    sp.top_k = (uint32_t)c->top_k;
    sp.max_new_tokens = (uint32_t)c->max_new_tokens;
    sp.seed = c->sample_seed;
    sp.n = 1;
    for (size_t b = 0; b < s->nprompts; b += (size_t)c->batch) {
        size_t k = s->nprompts - b < (size_t)c->batch ? s->nprompts - b : (size_t)c->batch;
        Oaif__V1__SampleRequest rq = OAIF__V1__SAMPLE_REQUEST__INIT;
        rq.prompts = s->prompts + b;
        rq.n_prompts = k;
        rq.sampling = &sp;
        rq.policy_version = v;
        rq.pin_version = true;
        rq.run = baseline ? (char *)"" : s->cur.job->run;
        char id[ID_MAX];
        int rc = evaluator_sample_id(id, sizeof id, c, s->cur.job->run, baseline, v, s->base_sha,
                                     (const Oaif__V1__Prompt *const *)(s->prompts + b), k);
        if (!rc)
            rc = submit(s, c->sample_service, id, &rq.base, b, baseline ? KIND_BASE : KIND_POLICY);
        if (rc)
            return rc;
    }
    return ERR_OK;
}

/* The reference (the baseline version) scores the policy's answers, a batch a request, so that KL
 * is estimated on the policy's own samples: log pi from the sampler's reply, log pi_ref from this
 * teacher-forced scoring of the same tokens. */
static int submit_ref_scoring(evaluator_service_t *s)
{
    const struct evaluator_config *c = s->cfg;
    struct current *cu = &s->cur;
    for (size_t b = 0; b < cu->n; b += (size_t)c->batch) {
        size_t k = cu->n - b < (size_t)c->batch ? cu->n - b : (size_t)c->batch;
        for (size_t i = b; i < b + k; i++)
            if (!cu->pol_resp[i])
                return ERR_NOTFOUND; /* an answer without its tokens: no KL */
        Oaif__V1__SampleRequest rq = OAIF__V1__SAMPLE_REQUEST__INIT;
        rq.prompts = s->prompts + b;
        rq.n_prompts = k;
        rq.policy_version = (uint32_t)c->baseline;
        rq.pin_version = true;
        rq.run = cu->job->run;
        rq.score = cu->pol_resp + b;
        rq.n_score = k;
        char id[ID_MAX];
        int rc =
            evaluator_sample_id(id, sizeof id, c, cu->job->run, false, cu->job->version,
                                s->base_sha, (const Oaif__V1__Prompt *const *)(s->prompts + b), k);
        size_t len = strlen(id);
        if (!rc && len + 5 > sizeof id)
            rc = ERR_TOOBIG;
        if (!rc) {
            memcpy(id + len, "-ref", 5);
            rc = submit(s, c->sample_service, id, &rq.base, b, KIND_REF);
        }
        if (rc)
            return rc;
    }
    return ERR_OK;
}

static int submit_judgements(evaluator_service_t *s)
{
    const struct evaluator_config *c = s->cfg;
    struct current *cu = &s->cur;
    for (size_t i = 0; i < cu->n; i++) {
        const Oaif__V1__Prompt *p = s->prompts[i];
        char id[ID_MAX];
        int rc = evaluator_judge_id(id, sizeof id, c, cu->job->run, cu->job->version, p->id);
        if (rc)
            return rc;
        Oaif__V1__Response r0 = OAIF__V1__RESPONSE__INIT, r1 = OAIF__V1__RESPONSE__INIT;
        Oaif__V1__Response *rs[2] = {&r0, &r1};
        r0.text = cu->pol[i];
        r0.policy_version = cu->job->version;
        r1.text = cu->base[i];
        r1.policy_version = (uint32_t)c->baseline;
        Oaif__V1__Pair pair = OAIF__V1__PAIR__INIT;
        pair.id = id;
        pair.prompt_id = p->id;
        pair.prompt = p->text;
        pair.responses = rs;
        pair.n_responses = 2;
        pair.policy_version = cu->job->version;
        pair.run = cu->job->run;
        Oaif__V1__AnnotateRequest rq = OAIF__V1__ANNOTATE_REQUEST__INIT;
        rq.pair = &pair;
        rq.instruction = c->instruction && *c->instruction ? c->instruction : p->instruction;
        rq.reference = p->reference;
        rq.seed = c->sample_seed;
        rc = submit(s, c->judge_service, id, &rq.base, i, KIND_JUDGE);
        if (rc)
            return rc;
    }
    return ERR_OK;
}

/* The reward ensemble scores the run's labeled pairs it held out (read as `oaif rm train` reads
 * them: trainer_rm_data_load, the same hash of the pair id), the first rm_pairs by id, one score
 * request a pair. What stops this leaves rm_accuracy out (the reason in rm_failed), not the
 * evaluation. */
static void submit_rm(evaluator_service_t *s)
{
    const struct evaluator_config *c = s->cfg;
    struct current *cu = &s->cur;
    struct trainer_rm_opts o;
    memset(&o, 0, sizeof o);
    o.run = cu->job->run;
    o.holdout = c->rm_holdout;
    struct trainer_rm_data d;
    memset(&d, 0, sizeof d);
    char err[256] = "";
    int rc = trainer_rm_data_load(s->client, &o, QUERY_MS, &d, err, sizeof err);
    if (rc) {
        snprintf(cu->rm_failed, sizeof cu->rm_failed, "reading the run's labeled pairs: %s",
                 err[0] ? err : err_str(rc));
        return;
    }
    for (size_t i = 0; i < d.n && cu->rm_asked < (size_t)c->rm_pairs; i++) {
        const struct trainer_rm_pair *p = &d.pairs[i];
        if (!p->heldout)
            continue;
        char id[ID_MAX];
        rc = evaluator_rm_id(id, sizeof id, c, cu->job->run, cu->job->version, p->id);
        char *texts[2] = {p->chosen, p->rejected};
        Oaif__V1__ScoreRequest rq = OAIF__V1__SCORE_REQUEST__INIT;
        rq.prompt = p->prompt;
        rq.texts = texts;
        rq.n_texts = 2;
        rq.pair_id = p->id;
        if (!rc)
            rc = submit(s, c->score_service, id, &rq.base, 0, KIND_RM);
        if (rc) {
            snprintf(cu->rm_failed, sizeof cu->rm_failed, "scoring pair %s: %s", p->id,
                     err_str(rc));
            break;
        }
        cu->rm_asked++;
    }
    if (!cu->rm_asked && !cu->rm_failed[0])
        snprintf(cu->rm_failed, sizeof cu->rm_failed,
                 "none of the run's %zu labeled pairs is held out at %.3f", d.n, c->rm_holdout);
    trainer_rm_data_free(&d);
}

/* The evaluation's first failure ("what: detail") is kept; it fails once its requests are in. */
static void fail_current(evaluator_service_t *s, const char *what, const char *detail)
{
    if (!s->cur.failed[0])
        snprintf(s->cur.failed, sizeof s->cur.failed, "%s: %s", what, detail);
}

/* A copy of the policy's answer i (its tokens, for the reference to score) and its log-prob. */
static int keep_response(struct current *cu, size_t i, const Oaif__V1__Response *r)
{
    size_t n = oaif__v1__response__get_packed_size(r);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return ERR_NOMEM;
    oaif__v1__response__pack(r, buf);
    if (cu->pol_resp[i])
        oaif__v1__response__free_unpacked(cu->pol_resp[i], NULL);
    cu->pol_resp[i] = oaif__v1__response__unpack(NULL, n, buf);
    free(buf);
    cu->lp_pol[i] = r->logprob;
    return cu->pol_resp[i] ? ERR_OK : ERR_NOMEM;
}

/* The reference's log-probabilities of the policy's answers b.. (a scoring reply). A failure is
 * not the evaluation's: KL is left out, with the reason. */
static void on_ref_reply(evaluator_service_t *s, const Oaif__V1__Reply *rp, size_t b)
{
    struct current *cu = &s->cur;
    Oaif__V1__SampleReply *sr =
        rp->outcome == OAIF__V1__OUTCOME__OUTCOME_OK
            ? oaif__v1__sample_reply__unpack(NULL, rp->payload.len, rp->payload.data)
            : NULL;
    if (!sr) {
        if (!cu->kl_failed[0])
            snprintf(cu->kl_failed, sizeof cu->kl_failed, "%s",
                     rp->outcome == OAIF__V1__OUTCOME__OUTCOME_OK ? "not a SampleReply"
                                                                  : rp->error);
        return;
    }
    for (size_t i = 0; i < sr->n_pairs && b + i < cu->n; i++) {
        if (!sr->pairs[i]->n_responses)
            continue;
        if (!sr->pairs[i]->responses[0]->logprob_known) { /* 0 would read as probability 1 */
            if (!cu->kl_failed[0])
                snprintf(cu->kl_failed, sizeof cu->kl_failed,
                         "the reference's score of answer %zu carries no log-prob", b + i);
            continue;
        }
        cu->lp_ref[b + i] = sr->pairs[i]->responses[0]->logprob;
        cu->have_ref[b + i] = true;
    }
    oaif__v1__sample_reply__free_unpacked(sr, NULL);
}

static void on_sample_reply(evaluator_service_t *s, const Oaif__V1__Reply *rp, size_t b, bool base)
{
    struct current *cu = &s->cur;
    if (rp->outcome != OAIF__V1__OUTCOME__OUTCOME_OK) {
        fail_current(s, "a sample request failed", rp->error);
        return;
    }
    Oaif__V1__SampleReply *sr =
        oaif__v1__sample_reply__unpack(NULL, rp->payload.len, rp->payload.data);
    if (!sr) {
        fail_current(s, "not a SampleReply", rp->id);
        return;
    }
    char **dst = base ? cu->base : cu->pol;
    for (size_t i = 0; i < sr->n_pairs && b + i < cu->n; i++) {
        const Oaif__V1__Pair *p = sr->pairs[i];
        const char *t = p->n_responses ? p->responses[0]->text : NULL;
        free(dst[b + i]);
        dst[b + i] = strdup(t ? t : "");
        if (!dst[b + i])
            fail_current(s, "copying an answer", "out of memory");
        if (!base && p->n_responses && keep_response(cu, b + i, p->responses[0]))
            fail_current(s, "copying an answer", "out of memory");
    }
    oaif__v1__sample_reply__free_unpacked(sr, NULL);
}

static void on_judge_reply(evaluator_service_t *s, const Oaif__V1__Reply *rp, size_t i)
{
    struct current *cu = &s->cur;
    s->st.judgements++;
    metrics_counter_inc(s->m.judgements);
    Oaif__V1__AnnotateReply *ar =
        rp->outcome == OAIF__V1__OUTCOME__OUTCOME_OK
            ? oaif__v1__annotate_reply__unpack(NULL, rp->payload.len, rp->payload.data)
            : NULL;
    if (!ar || !ar->label) {
        s->st.judge_failures++;
        metrics_counter_inc(s->m.judge_failures);
        log_warn("judgement %s failed: %s", rp->id,
                 rp->outcome == OAIF__V1__OUTCOME__OUTCOME_OK ? "not an AnnotateReply" : rp->error);
    } else {
        cu->judged[i] = true;
        cu->winner[i] = ar->label->winner;
        if (!cu->judge[0])
            snprintf(cu->judge, sizeof cu->judge, "%s", ar->label->judge);
    }
    if (ar)
        oaif__v1__annotate_reply__free_unpacked(ar, NULL);
}

/* The ensemble's rewards of one held-out pair's (chosen, rejected): correct when the members' mean
 * reward ranks chosen first, as `oaif rm eval`'s ensemble row counts it. A failure is not the
 * evaluation's: rm_accuracy is left out, with the reason. */
static void on_rm_reply(evaluator_service_t *s, const Oaif__V1__Reply *rp)
{
    struct current *cu = &s->cur;
    const char *ens = s->cfg->rm_ensemble;
    size_t el = strlen(ens);
    Oaif__V1__ScoreReply *sr =
        rp->outcome == OAIF__V1__OUTCOME__OUTCOME_OK
            ? oaif__v1__score_reply__unpack(NULL, rp->payload.len, rp->payload.data)
            : NULL;
    if (!sr) {
        if (!cu->rm_failed[0])
            snprintf(cu->rm_failed, sizeof cu->rm_failed, "%s: %s", rp->id,
                     rp->outcome == OAIF__V1__OUTCOME__OUTCOME_OK ? "not a ScoreReply" : rp->error);
        return;
    }
    size_t m = sr->n_members;
    bool ok = m > 0 && sr->n_scores == 2 * m;
    for (size_t k = 0; ok && k < m; k++) /* members are named "<ensemble>/m<i>@v<version>" */
        if (strncmp(sr->members[k], ens, el) != 0 || sr->members[k][el] != '/') {
            if (!cu->rm_failed[0])
                snprintf(cu->rm_failed, sizeof cu->rm_failed,
                         "%s: member '%s' is not of ensemble '%s' (the score service serves "
                         "another)",
                         rp->id, sr->members[k], ens);
            ok = false;
        }
    if (m > 0 && sr->n_scores != 2 * m && !cu->rm_failed[0])
        snprintf(cu->rm_failed, sizeof cu->rm_failed, "%s: %zu scores for %zu members of 2 texts",
                 rp->id, sr->n_scores, m);
    if (ok) {
        double d = 0;
        for (size_t k = 0; k < m; k++)
            d += sr->scores[k * 2] - sr->scores[k * 2 + 1];
        cu->rm_scored++;
        cu->rm_correct += d > 0;
    } else if (!cu->rm_failed[0]) {
        snprintf(cu->rm_failed, sizeof cu->rm_failed, "%s: a reply without members", rp->id);
    }
    oaif__v1__score_reply__free_unpacked(sr, NULL);
}

static void on_reply(void *ctx, const Oaif__V1__Reply *rp)
{
    evaluator_service_t *s = ctx;
    struct current *cu = &s->cur;
    if (!cu->ids)
        return;
    uintptr_t v = (uintptr_t)hmap_del(cu->ids, rp->id, strlen(rp->id));
    if (!v)
        return; /* not ours (an earlier evaluation's) */
    cu->outstanding--;
    size_t index = (size_t)((v - 1) >> 3);
    unsigned kind = (unsigned)((v - 1) & 7);
    if (kind == KIND_RM)
        on_rm_reply(s, rp);
    else if (kind == KIND_JUDGE)
        on_judge_reply(s, rp, index);
    else if (kind == KIND_REF)
        on_ref_reply(s, rp, index);
    else
        on_sample_reply(s, rp, index, kind == KIND_BASE);
}

/* The evaluation's end: the numbers, the record, the reply. */
static void finish(evaluator_service_t *s)
{
    const struct evaluator_config *c = s->cfg;
    struct current *cu = &s->cur;
    uint32_t v = cu->job->version;
    struct evaluator_item *items = calloc(cu->n, sizeof *items);
    struct evaluator_summary sum;
    char why[600] = "";
    int rc = items ? ERR_OK : ERR_NOMEM;
    for (size_t i = 0; !rc && i < cu->n; i++) {
        items[i].reference = s->prompts[i]->reference;
        items[i].policy = cu->pol[i];
        items[i].baseline = cu->base[i];
        items[i].judged = cu->judged[i];
        items[i].winner = cu->winner[i];
        /* a remote policy's server may have sent no log-probs: then KL is not known */
        items[i].has_logprobs =
            cu->pol_resp[i] && cu->pol_resp[i]->logprob_known && cu->have_ref[i];
        if (cu->pol_resp[i] && !cu->pol_resp[i]->logprob_known && !cu->kl_failed[0])
            snprintf(cu->kl_failed, sizeof cu->kl_failed,
                     "the policy's answer %zu carries no log-prob (its sampler's server sent "
                     "none)",
                     i);
        items[i].lp_policy = cu->lp_pol[i];
        items[i].lp_ref = cu->lp_ref[i];
    }
    if (cu->kl_failed[0])
        log_warn("v%u: no KL: %s", v, cu->kl_failed);
    bool want_rm = c->rm_ensemble && *c->rm_ensemble;
    if (want_rm && cu->rm_failed[0])
        log_warn("v%u: no reward-model accuracy: %s", v, cu->rm_failed);
    if (!rc)
        rc = evaluator_summarize(items, cu->n, (unsigned)c->resamples, c->sample_seed ^ v, &sum,
                                 why, sizeof why);
    free(items);
    if (!rc && want_rm && !cu->rm_failed[0] && cu->rm_asked && cu->rm_scored == cu->rm_asked) {
        sum.has_rm = true;
        sum.rm_pairs = cu->rm_scored;
        sum.rm_accuracy = (double)cu->rm_correct / (double)cu->rm_scored;
        log_info("v%u: ensemble %s: accuracy %.4f on %zu held-out pairs", v, c->rm_ensemble,
                 sum.rm_accuracy, sum.rm_pairs);
    }
    char id[ID_MAX], judge[300];
    if (!rc)
        rc = evaluator_result_id(id, sizeof id, c, cu->job->run, v);
    Oaif__V1__EvalResult er;
    Oaif__V1__Metric ms[8], *mp[8];
    uint8_t *buf = NULL;
    if (!rc) {
        snprintf(judge, sizeof judge, "%s:%s", c->judge_service, cu->judge);
        evaluator_result(&er, ms, mp, 8, c, cu->job->run, id, judge, v, &sum, bus_now_ms());
        size_t n = oaif__v1__eval_result__get_packed_size(&er);
        buf = malloc(n ? n : 1);
        rc = buf ? ERR_OK : ERR_NOMEM;
        if (!rc) {
            oaif__v1__eval_result__pack(&er, buf);
            Oaif__V1__Record rec = OAIF__V1__RECORD__INIT;
            rec.kind = OAIF__V1__RECORD_KIND__RECORD_KIND_EVAL;
            rec.id = id;
            rec.data.data = buf;
            rec.data.len = n;
            Oaif__V1__Record *rp[1] = {&rec};
            rc = bus_client_put(s->client, id, rp, 1, false, QUERY_MS);
            if (rc)
                snprintf(why, sizeof why, "writing %s: %s", id, err_str(rc));
        }
    }
    if (rc) {
        s->st.failed++;
        metrics_counter_inc(s->m.failed);
        log_error("v%u: evaluation failed: %s", v, why[0] ? why : err_str(rc));
        if (cu->job->req)
            bus_worker_fail(s->worker, cu->job->req->id, why[0] ? why : err_str(rc), false);
    } else {
        s->st.evaluations++;
        s->st.last_version = v;
        s->st.last_win_rate = sum.win_rate;
        s->st.last_lc_win_rate = sum.lc_win_rate;
        log_info("v%u against v%d on %zu prompts by %s: win rate %.3f [%.3f, %.3f] (%u-%u-%u, %zu "
                 "failed), LC %.3f, accuracy %.3f (baseline %.3f), length %.1f (baseline %.1f), "
                 "KL %.3f%s in %.1f s",
                 v, c->baseline, sum.n, judge, sum.win_rate, sum.win_rate_lo, sum.win_rate_hi,
                 sum.wins, sum.ties, sum.losses, sum.n - sum.judged, sum.lc_win_rate, sum.accuracy,
                 sum.baseline_accuracy, sum.mean_length, sum.baseline_mean_length, sum.kl,
                 sum.has_kl ? "" : " (not known)", (double)(bus_mono_ms() - cu->t0) / 1000.0);
        reply_result(s, cu->job->req, &er);
        metrics_counter_inc(s->m.evaluations); /* the handles are NULL without metrics */
        metrics_gauge_set(s->m.last_version, v);
        metrics_gauge_set(s->m.last_win_rate, sum.win_rate);
        metrics_gauge_set(s->m.last_lc, sum.lc_win_rate);
        metrics_gauge_set(s->m.last_lo, sum.win_rate_lo);
        metrics_gauge_set(s->m.last_hi, sum.win_rate_hi);
    }
    free(buf);
    current_clear(s);
}

/* Starts the next job, unless it needs nothing (evaluated already). Returns a local fault. */
static int start_next(evaluator_service_t *s)
{
    const struct evaluator_config *c = s->cfg;
    if (!s->head || bus_mono_ms() < s->not_before)
        return ERR_OK;
    struct job *j = s->head;
    int prc = load_prompts(s);
    if (prc == ERR_AGAIN)
        return ERR_OK; /* more pages to read: the job waits at the front for the next turn */
    int rc;
    Oaif__V1__EvalResult *have = stored_result(s, j, &rc);
    if (rc) {
        log_warn("v%u: asking the ledger for its EvalResult: %s", j->version, err_str(rc));
        s->not_before = bus_mono_ms() + RETRY_MS;
        return ERR_OK;
    }
    s->head = j->next;
    if (!s->head)
        s->tail = NULL;
    j->next = NULL;
    if (have) {
        s->st.skipped++;
        log_info("v%u: evaluated already (win rate %.3f)", j->version, have->win_rate);
        reply_result(s, j->req, have);
        oaif__v1__eval_result__free_unpacked(have, NULL);
        job_free(j);
        return ERR_OK;
    }
    rc = prc;
    if (!rc && !s->base_sha[0]) {
        Oaif__V1__Checkpoint *ck = NULL;
        rc = ckpt_find_policy(s->client, c->baseline, QUERY_MS, &ck);
        if (!rc) {
            snprintf(s->base_sha, sizeof s->base_sha, "%s", ck->sha256);
            oaif__v1__checkpoint__free_unpacked(ck, NULL);
        }
    }
    if (rc) { /* back to the front of the queue: tried again shortly (said once a version) */
        if (s->wait_logged != j->version)
            log_warn("v%u: cannot start yet: %s (%zu of %d prompts of split '%s'; baseline v%d %s)",
                     j->version, err_str(rc), s->nprompts, c->prompts, c->split, c->baseline,
                     s->base_sha[0] ? "known" : "not found");
        s->wait_logged = j->version;
        j->next = s->head;
        s->head = j;
        if (!s->tail)
            s->tail = j;
        s->not_before = bus_mono_ms() + RETRY_MS;
        return rc == ERR_NOMEM ? rc : ERR_OK;
    }
    struct current *cu = &s->cur;
    cu->job = j;
    cu->n = s->nprompts;
    cu->t0 = bus_mono_ms();
    cu->pol = calloc(cu->n, sizeof *cu->pol);
    cu->base = calloc(cu->n, sizeof *cu->base);
    cu->winner = calloc(cu->n, sizeof *cu->winner);
    cu->judged = calloc(cu->n, sizeof *cu->judged);
    cu->pol_resp = calloc(cu->n, sizeof(Oaif__V1__Response *));
    cu->lp_pol = calloc(cu->n, sizeof *cu->lp_pol);
    cu->lp_ref = calloc(cu->n, sizeof *cu->lp_ref);
    cu->have_ref = calloc(cu->n, sizeof *cu->have_ref);
    cu->ids = hmap_new();
    if (!cu->pol || !cu->base || !cu->winner || !cu->judged || !cu->pol_resp || !cu->lp_pol ||
        !cu->lp_ref || !cu->have_ref || !cu->ids)
        return ERR_NOMEM;
    cu->phase = 1;
    log_info("%s v%u: evaluating against v%d on %zu prompts (judge service '%s')", j->run,
             j->version, c->baseline, cu->n, c->judge_service);
    rc = submit_samples(s, false);
    if (!rc)
        rc = submit_samples(s, true);
    if (rc)
        fail_current(s, "submitting the sample requests", err_str(rc));
    else if (c->rm_ensemble && *c->rm_ensemble)
        submit_rm(s);
    return ERR_OK;
}

/* Moves the evaluation in progress on when its requests are all answered. */
static void advance(evaluator_service_t *s)
{
    struct current *cu = &s->cur;
    if (!cu->job || cu->outstanding)
        return;
    if (cu->failed[0]) {
        s->st.failed++;
        metrics_counter_inc(s->m.failed);
        log_error("v%u: evaluation failed: %s", cu->job->version, cu->failed);
        if (cu->job->req)
            bus_worker_fail(s->worker, cu->job->req->id, cu->failed, false);
        current_clear(s);
        return;
    }
    if (cu->phase == 1) {
        cu->phase = 2;
        int rc = submit_judgements(s);
        if (rc)
            fail_current(s, "submitting the judgements", err_str(rc));
        else if ((rc = submit_ref_scoring(s)) != ERR_OK)
            snprintf(cu->kl_failed, sizeof cu->kl_failed, "scoring the answers: %s", err_str(rc));
        return;
    }
    finish(s);
}

/* ---- the loop ----------------------------------------------------------------------------- */

int evaluator_service_poll(evaluator_service_t *s, int timeout_ms)
{
    zmq_pollitem_t items[2];
    int n = 0;
    items[n++] = (zmq_pollitem_t){bus_worker_socket(s->worker), 0, ZMQ_POLLIN, 0};
    if (s->sub)
        items[n++] = (zmq_pollitem_t){s->sub, 0, ZMQ_POLLIN, 0};
    int t = timeout_ms;
    int tick = bus_worker_next_tick_ms(s->worker);
    if (t < 0 || tick < t)
        t = tick;
    t = bus_rescan_wait_ms(&s->rescan, t);
    if ((s->cur.job || s->head) && t > REPLY_POLL)
        t = REPLY_POLL; /* our own requests' replies arrive on the client socket */
    if (t < 0)
        t = 0;
    if (zmq_poll(items, n, t) < 0)
        return zmq_errno() == EINTR ? ERR_INTR : ERR_IO;
    bus_worker_tick(s->worker);
    bus_rescan_drain(&s->rescan, s->sub);
    if (bus_rescan_due(&s->rescan))
        bus_rescan_done(&s->rescan, rescan(s), (uint64_t)s->cfg->rescan_ms, RETRY_MS);
    int rc;
    for (;;) {
        struct bus_req *req = NULL;
        rc = bus_worker_recv(s->worker, 0, &req);
        if (rc != ERR_OK)
            break;
        take_request(s, req);
    }
    if (rc == ERR_TIMEOUT || rc == ERR_AGAIN)
        rc = ERR_OK;
    if (!rc && s->cur.job) {
        int got = bus_client_poll(s->client, 0, on_reply, s);
        if (got < 0 && got != ERR_INTR)
            rc = got;
    }
    if (!rc && s->cur.job)
        advance(s);
    if (!rc && !s->cur.job)
        rc = start_next(s);
    return rc;
}

/* ---- life cycle --------------------------------------------------------------------------- */

static int register_metrics(evaluator_service_t *s, metrics_t *reg)
{
    struct series *m = &s->m;
    const char *run = s->cfg->run ? s->cfg->run : ""; /* "": every run */
    int rc = 0;
#define C(field, name, help)                                                                       \
    if (!rc)                                                                                       \
    rc = metrics_counter_register(reg, &m->field, name, help, "run", run, NULL)
#define G(field, name, help)                                                                       \
    if (!rc)                                                                                       \
    rc = metrics_gauge_register(reg, &m->field, name, help, "run", run, NULL)
    C(evaluations, "oaif_evaluator_evaluations_total", "EvalResults written.");
    C(failed, "oaif_evaluator_failed_total", "Evaluations that failed.");
    C(judgements, "oaif_evaluator_judgements_total", "Judge replies received.");
    C(judge_failures, "oaif_evaluator_judge_failures_total", "Judgements that failed.");
    G(last_version, "oaif_evaluator_last_version", "The policy version evaluated last.");
    G(last_win_rate, "oaif_evaluator_last_win_rate", "Its win rate against the baseline.");
    G(last_lc, "oaif_evaluator_last_lc_win_rate", "Its length-controlled win rate.");
    G(last_lo, "oaif_evaluator_last_win_rate_lo", "Its win rate's 95% interval, low end.");
    G(last_hi, "oaif_evaluator_last_win_rate_hi", "Its win rate's 95% interval, high end.");
#undef C
#undef G
    return rc;
}

int evaluator_service_new(evaluator_service_t **out, const struct evaluator_config *cfg, void *zctx,
                          metrics_t *metrics, char *why, size_t whylen)
{
    *out = NULL;
    evaluator_service_t *s = calloc(1, sizeof *s);
    if (!s)
        return ERR_NOMEM;
    s->cfg = cfg;
    bus_rescan_init(&s->rescan);
    s->st.last_version = -1;
    const struct bus_opts *bus = &cfg->bus;
    int rc = bus_curve_client(&s->curve, bus->curve_secret_key, bus->ledger_public_key,
                              "evaluator.curve_secret_key", why, whylen);
    if (!rc && metrics) {
        rc = register_metrics(s, metrics);
        if (rc)
            snprintf(why, whylen, "metrics: cannot register the series (%s)", err_str(rc));
    }
    if (!rc)
        rc = bus_opts_client(bus, &s->curve, zctx, &s->client, why, whylen);
    if (!rc)
        rc = bus_opts_events(bus, &s->curve, zctx, "checkpoints", &s->sub, why, whylen);
    if (!rc)
        rc = bus_opts_worker(bus, &s->curve, zctx, "evaluate", (unsigned)cfg->credit,
                             cfg->worker_name, &s->worker, why, whylen);
    if (rc) {
        evaluator_service_destroy(&s);
        return rc;
    }
    *out = s;
    return ERR_OK;
}

void evaluator_service_destroy(evaluator_service_t **ps)
{
    if (!ps || !*ps)
        return;
    evaluator_service_t *s = *ps;
    current_clear(s);
    while (s->head) {
        struct job *j = s->head;
        s->head = j->next;
        job_free(j);
    }
    for (size_t i = 0; i < s->nprompts; i++)
        oaif__v1__prompt__free_unpacked(s->prompts[i], NULL);
    free(s->prompts);
    bus_worker_destroy(&s->worker);
    if (s->sub)
        zmq_close(s->sub);
    bus_client_destroy(&s->client);
    memset(&s->curve, 0, sizeof s->curve);
    free(s);
    *ps = NULL;
}

void evaluator_service_stats(const evaluator_service_t *s, struct evaluator_service_stats *out)
{
    *out = s->st;
}
