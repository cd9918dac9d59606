/* test_reward_scorer - the score service's logic without sockets (reward_scorer.h) and its
 * options (reward_scorer_opts.h): which checkpoint records are members and where their files
 * are, the plan (newest version per member, refused versions skipped, falling back to the one
 * before), loading with the sha256 check (a corrupt member refused, the old version kept), every
 * member's reward of every text equal to the engine's own forward on the text as the policy sees
 * it (template, response, EOS), the reply's member names and member-major order, the Scores
 * record of a pair, truncation that keeps EOS last, and clear errors (no members, fewer than M,
 * bad requests, bad options). */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "checkpoint.h"
#include "ckpt.h"
#include "err.h"
#include "model.h"
#include "reward_scorer.h"
#include "reward_scorer_opts.h"
#include "tokenizer.h"

static char store[256];

/* ---- fixtures ----------------------------------------------------------------------------- */

static void small_config(struct nn_config *c, bool reward_head)
{
    nn_config_default(c);
    c->hidden_size = 32;
    c->intermediate_size = 64;
    c->num_hidden_layers = 2;
    c->num_attention_heads = 2;
    c->num_key_value_heads = 1;
    c->max_position_embeddings = 128;
    c->reward_head = reward_head;
}

/* Writes a random reward model into <store>/reward-<ens>-m<member>-v<version> (dir) and its
 * sha256 (hex). */
static void write_member(const char *ens, uint32_t member, uint32_t version, uint64_t seed,
                         bool reward_head, char *dir, size_t dirlen, char hex[65])
{
    struct nn_config c;
    small_config(&c, reward_head);
    nn_model_t *m = NULL;
    char err[256], file[PATH_MAX];
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    nn_model_init_random(m, seed, 0.5f);
    snprintf(dir, dirlen, "%s/reward-%s-m%u-v%06u", store, ens, member, version);
    assert_int_equal(nn_checkpoint_save(m, dir, err, sizeof err), ERR_OK);
    nn_model_destroy(&m);
    snprintf(file, sizeof file, "%s/%s", dir, NN_CKPT_WEIGHTS);
    assert_int_equal(ckpt_file_sha256(file, hex, err, sizeof err), ERR_OK);
}

/* A checkpoint record as the ledger holds it (strings borrowed from the caller). */
static Oaif__V1__Checkpoint record(const char *ens, uint32_t member, uint32_t version, char *path,
                                   char *sha)
{
    Oaif__V1__Checkpoint c = OAIF__V1__CHECKPOINT__INIT;
    c.kind = OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_REWARD;
    c.ensemble = (char *)ens;
    c.member = member;
    c.version = version;
    c.path = path;
    c.sha256 = sha;
    return c;
}

static reward_scorer_t *new_scorer(const char *ens, int members, int max_tokens)
{
    struct reward_scorer_config cfg;
    assert_int_equal(reward_scorer_config_defaults(&cfg), ERR_OK);
    free(cfg.ensemble);
    cfg.ensemble = strdup(ens);
    free(cfg.checkpoint_dir);
    cfg.checkpoint_dir = strdup(store);
    cfg.members = members;
    if (max_tokens)
        cfg.max_tokens = max_tokens;
    reward_scorer_t *s = NULL;
    char why[512] = "";
    int rc = reward_scorer_new(&s, &cfg, why, sizeof why);
    if (rc)
        fail_msg("reward_scorer_new: %s", why);
    reward_scorer_config_release(&cfg);
    return s;
}

static void load_ok(reward_scorer_t *s, uint32_t member, uint32_t version, const char *dir,
                    const char *sha)
{
    struct reward_member_ref ref = {.member = member, .version = version};
    snprintf(ref.sha256, sizeof ref.sha256, "%s", sha);
    snprintf(ref.dir, sizeof ref.dir, "%s", dir);
    char why[2048] = "";
    int rc = reward_scorer_load(s, &ref, why, sizeof why);
    if (rc)
        fail_msg("load m%u@v%u: %s", member, version, why);
}

/* The engine's own reward of one text: the byte tokenizer's rendering of the default template,
 * one space, the text, EOS; the response cut to fit `cap` tokens. */
static double direct_reward(const char *dir, const char *prompt, const char *text, int cap)
{
    nn_model_t *m = NULL;
    char err[512];
    assert_int_equal(nn_checkpoint_load(&m, dir, err, sizeof err), ERR_OK);
    char head[1024];
    snprintf(head, sizeof head, "Human: %s\n\nAssistant:%s", prompt,
             text[0] && text[0] != ' ' ? " " : "");
    size_t hl = strlen(head), tl = strlen(text);
    if (hl + tl + 1 > (size_t)cap)
        tl = (size_t)cap - hl - 1;
    int T = (int)(hl + tl + 1);
    int *ids = malloc((size_t)T * sizeof *ids);
    assert_non_null(ids);
    for (size_t i = 0; i < hl; i++)
        ids[i] = (unsigned char)head[i];
    for (size_t i = 0; i < tl; i++)
        ids[hl + i] = (unsigned char)text[i];
    ids[T - 1] = TOK_BYTE_EOS;
    assert_int_equal(nn_model_reserve(m, 1, T, false), ERR_OK);
    struct nn_batch b = {.B = 1, .T = T, .tokens = ids, .lengths = &T};
    struct nn_fwd_opts fo = {.logits = false};
    assert_int_equal(nn_model_forward(m, &b, &fo), ERR_OK);
    double r = nn_model_rewards(m)[0];
    free(ids);
    nn_model_destroy(&m);
    return r;
}

/* ---- options ------------------------------------------------------------------------------ */

static void test_options_defaults_and_flags(void **state)
{
    (void)state;
    assert_int_equal(reward_scorer_opts_spec.conf_size, sizeof(struct reward_scorer_config));
    assert_string_equal(reward_scorer_opts_spec.name, "reward-scorer");
    struct reward_scorer_config c;
    assert_int_equal(reward_scorer_config_defaults(&c), ERR_OK);
    assert_string_equal(c.ensemble, CKPT_DEFAULT_ENSEMBLE); /* oaif rm train's too */
    assert_int_equal(c.members, 0);
    assert_string_equal(c.checkpoint_dir, CKPT_DEFAULT_ROOT); /* the store every service shares */
    assert_null(c.prompt_template);
    assert_int_equal(c.max_texts, 64);
    assert_int_equal(c.max_tokens, 1024);
    assert_int_equal(c.credit, 1);
    assert_int_equal(c.rescan_ms, 10000);
    assert_int_equal(c.metrics_port, -1);
    assert_non_null(c.bus.workers_endpoint);
    reward_scorer_config_release(&c);

    char *argv[] = {"reward-scorer",
                    "--ensemble",
                    "rm2",
                    "--members",
                    "3",
                    "--max-texts",
                    "8",
                    "--credit",
                    "2",
                    "--rescan",
                    "2s",
                    "--curve-secret",
                    "/k/rs.key",
                    NULL};
    assert_int_equal(reward_scorer_config_load(&c, 13, argv, NULL), ERR_OK);
    assert_string_equal(c.ensemble, "rm2");
    assert_int_equal(c.members, 3);
    assert_int_equal(c.max_texts, 8);
    assert_int_equal(c.credit, 2);
    assert_int_equal(c.rescan_ms, 2000);
    assert_string_equal(c.bus.curve_secret_key, "/k/rs.key");
    reward_scorer_config_release(&c);

    buf_t errs;
    buf_init(&errs, 0);
    char *bad[] = {"reward-scorer", "--members", "-1", NULL};
    assert_int_equal(reward_scorer_config_load(&c, 3, bad, &errs), ERR_INVAL);
    char *text = buf_steal(&errs);
    assert_non_null(text);
    assert_non_null(strstr(text, "--members"));
    free(text);
}

static void test_new_refuses_a_bad_config(void **state)
{
    (void)state;
    struct reward_scorer_config c;
    assert_int_equal(reward_scorer_config_defaults(&c), ERR_OK);
    reward_scorer_t *s = NULL;
    char why[256];
    free(c.ensemble);
    c.ensemble = strdup("");
    assert_int_equal(reward_scorer_new(&s, &c, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "reward_scorer.ensemble"));
    free(c.ensemble);
    c.ensemble = strdup("a/b");
    assert_int_equal(reward_scorer_new(&s, &c, why, sizeof why), ERR_INVAL);
    free(c.ensemble);
    c.ensemble = strdup("ok");
    c.prompt_template = strdup("no placeholder");
    assert_int_equal(reward_scorer_new(&s, &c, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "reward_scorer.template"));
    assert_null(s);
    reward_scorer_config_release(&c);
}

/* ---- members ------------------------------------------------------------------------------ */

static void test_which_records_are_members(void **state)
{
    (void)state;
    reward_scorer_t *s = new_scorer("ens", 2, 0);
    Oaif__V1__Checkpoint c = record("ens", 1, 1, "", "");
    assert_true(reward_scorer_is_member(s, &c));
    c.member = 2; /* M = 2: members 0 and 1 */
    assert_false(reward_scorer_is_member(s, &c));
    c = record("other", 0, 1, "", "");
    assert_false(reward_scorer_is_member(s, &c));
    c = record("ens", 0, 1, "", "");
    c.kind = OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_POLICY;
    assert_false(reward_scorer_is_member(s, &c));
    c = record("ens", 0, 1, "", "");
    c.ensemble = NULL;
    assert_false(reward_scorer_is_member(s, &c));
    reward_scorer_destroy(&s);
}

static void test_member_dir_store_then_record_path(void **state)
{
    (void)state;
    reward_scorer_t *s = new_scorer("dirs", 0, 0);
    char dir[PATH_MAX], hex[65], out[PATH_MAX], want[PATH_MAX];
    /* in the store under its own name */
    write_member("dirs", 0, 1, 3, true, dir, sizeof dir, hex);
    Oaif__V1__Checkpoint c = record("dirs", 0, 1, "/elsewhere/reward-dirs-m0-v000001", hex);
    reward_scorer_member_dir(s, &c, out, sizeof out);
    assert_string_equal(out, dir);
    /* elsewhere, named by the record's path */
    char other[PATH_MAX];
    snprintf(other, sizeof other, "%s/custom-name", store);
    assert_int_equal(rename(dir, other), 0);
    c.path = "/mounted/elsewhere/custom-name/";
    reward_scorer_member_dir(s, &c, out, sizeof out);
    assert_string_equal(out, other); /* the store + the path's last part */
    c.path = other;
    reward_scorer_member_dir(s, &c, out, sizeof out);
    assert_string_equal(out, other);
    /* nowhere: the store's own name, for the load to report */
    c.path = "/nowhere/x";
    reward_scorer_member_dir(s, &c, out, sizeof out);
    snprintf(want, sizeof want, "%s/reward-dirs-m0-v000001", store);
    assert_string_equal(out, want);
    reward_scorer_destroy(&s);
}

static void test_plan_newest_per_member_skipping_refused(void **state)
{
    (void)state;
    reward_scorer_t *s = new_scorer("plan", 0, 0);
    char d1[PATH_MAX], d2[PATH_MAX], d3[PATH_MAX], h1[65], h2[65], h3[65];
    write_member("plan", 0, 1, 11, true, d1, sizeof d1, h1);
    write_member("plan", 0, 2, 12, true, d2, sizeof d2, h2);
    write_member("plan", 3, 1, 13, true, d3, sizeof d3, h3);
    char bad2[65];
    snprintf(bad2, sizeof bad2, "%s", h2);
    bad2[0] = bad2[0] == '0' ? '1' : '0'; /* version 2's record does not match its file */
    Oaif__V1__Checkpoint recs[5] = {record("plan", 0, 2, d2, bad2), record("plan", 3, 1, d3, h3),
                                    record("plan", 0, 1, d1, h1), record("other", 0, 9, d1, h1),
                                    record("plan", 1, 1, "", "")};
    recs[4].kind = OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_POLICY;
    Oaif__V1__Checkpoint *ptrs[6] = {&recs[0], &recs[1], NULL, &recs[2], &recs[3], &recs[4]};
    struct reward_member_ref refs[8];
    size_t n = reward_scorer_plan(s, ptrs, 6, refs, 8);
    assert_int_equal(n, 2);
    assert_int_equal(refs[0].member, 0);
    assert_int_equal(refs[0].version, 2);
    assert_string_equal(refs[0].dir, d2);
    assert_string_equal(refs[0].sha256, bad2);
    assert_int_equal(refs[1].member, 3);
    assert_int_equal(refs[1].version, 1);
    assert_int_equal(reward_scorer_known(s), 2);

    /* version 2 is refused (its sha256), naming the file; the plan falls back to version 1 */
    char why[4096] = "";
    assert_int_equal(reward_scorer_load(s, &refs[0], why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "plan/m0@v2"));
    assert_non_null(strstr(why, "model.safetensors"));
    assert_non_null(strstr(why, "sha256"));
    assert_int_equal(reward_scorer_member_version(s, 0), -1);
    n = reward_scorer_plan(s, ptrs, 6, refs, 8);
    assert_int_equal(n, 2);
    assert_int_equal(refs[0].version, 1);
    load_ok(s, 0, 1, refs[0].dir, refs[0].sha256);
    load_ok(s, 3, 1, refs[1].dir, refs[1].sha256);
    assert_int_equal(reward_scorer_loaded(s), 2);
    /* nothing newer to load: version 2 stays refused until its record changes */
    n = reward_scorer_plan(s, ptrs, 6, refs, 8);
    assert_int_equal(n, 0);
    recs[0].sha256 = h2; /* republished with the right sha256 */
    n = reward_scorer_plan(s, ptrs, 6, refs, 8);
    assert_int_equal(n, 1);
    assert_int_equal(refs[0].version, 2);
    load_ok(s, 0, 2, refs[0].dir, refs[0].sha256);
    assert_int_equal(reward_scorer_member_version(s, 0), 2);
    /* an older version is not loaded over a newer one */
    load_ok(s, 0, 1, d1, h1);
    assert_int_equal(reward_scorer_member_version(s, 0), 2);
    reward_scorer_destroy(&s);
}

static void test_load_refuses_bad_members_and_keeps_the_old(void **state)
{
    (void)state;
    reward_scorer_t *s = new_scorer("bad", 0, 0);
    char d1[PATH_MAX], d2[PATH_MAX], h1[65], h2[65], why[4096];
    write_member("bad", 0, 1, 21, true, d1, sizeof d1, h1);
    load_ok(s, 0, 1, d1, h1);
    /* a corrupt file: its bytes changed after the record's sha256 was taken */
    write_member("bad", 0, 2, 22, true, d2, sizeof d2, h2);
    char file[PATH_MAX + 32];
    snprintf(file, sizeof file, "%s/model.safetensors", d2);
    FILE *f = fopen(file, "r+b");
    assert_non_null(f);
    fseek(f, -4, SEEK_END);
    fputc('X', f);
    fclose(f);
    struct reward_member_ref ref = {.member = 0, .version = 2};
    snprintf(ref.dir, sizeof ref.dir, "%s", d2);
    snprintf(ref.sha256, sizeof ref.sha256, "%s", h2);
    assert_int_equal(reward_scorer_load(s, &ref, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, file));
    assert_non_null(strstr(why, "corrupt"));
    assert_int_equal(reward_scorer_member_version(s, 0), 1);
    /* a record without a sha256 */
    ref.version = 3;
    ref.sha256[0] = '\0';
    assert_int_equal(reward_scorer_load(s, &ref, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "no sha256"));
    /* a model without a reward head */
    char d4[PATH_MAX], h4[65];
    write_member("bad", 0, 4, 24, false, d4, sizeof d4, h4);
    ref.version = 4;
    snprintf(ref.dir, sizeof ref.dir, "%s", d4);
    snprintf(ref.sha256, sizeof ref.sha256, "%s", h4);
    assert_int_equal(reward_scorer_load(s, &ref, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "reward head"));
    /* missing files */
    ref.version = 5;
    snprintf(ref.dir, sizeof ref.dir, "%s/none", store);
    assert_int_equal(reward_scorer_load(s, &ref, why, sizeof why), ERR_NOTFOUND);
    assert_int_equal(reward_scorer_member_version(s, 0), 1);
    /* the refused reason is what a request that needs the member is told */
    reward_scorer_destroy(&s);
}

/* ---- scoring ------------------------------------------------------------------------------ */

static void test_every_member_scores_every_text_as_the_engine_does(void **state)
{
    (void)state;
    reward_scorer_t *s = new_scorer("sc", 0, 0);
    char d[3][PATH_MAX], h[3][65];
    for (uint32_t m = 0; m < 3; m++) {
        write_member("sc", m, 1 + m, 31 + m, true, d[m], sizeof d[m], h[m]);
        load_ok(s, m, 1 + m, d[m], h[m]);
    }
    char *texts[3] = {"forty-seven", " 47", ""};
    Oaif__V1__ScoreRequest req = OAIF__V1__SCORE_REQUEST__INIT;
    req.prompt = "What is 12 + 35?";
    req.texts = texts;
    req.n_texts = 3;
    struct reward_scorer_result *r = NULL;
    char why[1024] = "";
    int rc = reward_scorer_run(s, &req, &r, why, sizeof why);
    if (rc)
        fail_msg("run: %s", why);
    assert_int_equal(r->n_members, 3);
    assert_int_equal(r->n_texts, 3);
    assert_int_equal(r->n_records, 0); /* no pair */
    assert_int_equal(r->truncated, 0);
    Oaif__V1__ScoreReply *rep = oaif__v1__score_reply__unpack(NULL, r->packed_len, r->packed);
    assert_non_null(rep);
    assert_int_equal(rep->n_members, 3);
    assert_int_equal(rep->n_scores, 9);
    for (uint32_t m = 0; m < 3; m++) {
        char name[64];
        snprintf(name, sizeof name, "sc/m%u@v%u", m, m + 1);
        assert_string_equal(rep->members[m], name);
        for (size_t i = 0; i < 3; i++) {
            double want = direct_reward(d[m], req.prompt, texts[i], 1 << 20);
            assert_float_equal(rep->scores[(size_t)m * 3 + i], want, 1e-5);
        }
    }
    /* the members differ, and so do the texts */
    assert_true(fabs(rep->scores[0] - rep->scores[3]) > 1e-6);
    assert_true(fabs(rep->scores[0] - rep->scores[1]) > 1e-6);
    oaif__v1__score_reply__free_unpacked(rep, NULL);
    reward_scorer_result_free(&r);
    reward_scorer_destroy(&s);
}

static void test_a_pair_request_gives_its_scores_record(void **state)
{
    (void)state;
    reward_scorer_t *s = new_scorer("pr", 2, 0);
    char d[2][PATH_MAX], h[2][65];
    for (uint32_t m = 0; m < 2; m++) {
        write_member("pr", m, 1, 41 + m, true, d[m], sizeof d[m], h[m]);
        load_ok(s, m, 1, d[m], h[m]);
    }
    char *texts[2] = {"Saturn.", "Mars."};
    Oaif__V1__ScoreRequest req = OAIF__V1__SCORE_REQUEST__INIT;
    req.prompt = "Name a gas giant.";
    req.texts = texts;
    req.n_texts = 2;
    req.pair_id = "req-7/0";
    struct reward_scorer_result *r = NULL;
    char why[1024] = "";
    assert_int_equal(reward_scorer_run(s, &req, &r, why, sizeof why), ERR_OK);
    assert_int_equal(r->n_records, 1);
    const Oaif__V1__Record *rec = r->records[0];
    assert_int_equal(rec->kind, OAIF__V1__RECORD_KIND__RECORD_KIND_SCORES);
    assert_string_equal(rec->id, "req-7/0");
    Oaif__V1__Scores *sc = oaif__v1__scores__unpack(NULL, rec->data.len, rec->data.data);
    assert_non_null(sc);
    assert_string_equal(sc->pair_id, "req-7/0");
    assert_int_equal(sc->n_members, 2);
    assert_int_equal(sc->n_first, 2);
    assert_int_equal(sc->n_second, 2);
    for (size_t m = 0; m < 2; m++) {
        assert_string_equal(sc->members[m], r->members[m]);
        assert_true(sc->first[m] == r->scores[m * 2]);
        assert_true(sc->second[m] == r->scores[m * 2 + 1]);
    }
    oaif__v1__scores__free_unpacked(sc, NULL);
    reward_scorer_result_free(&r);
    /* three texts: scores, but no pair record */
    char *three[3] = {"a", "b", "c"};
    req.texts = three;
    req.n_texts = 3;
    assert_int_equal(reward_scorer_run(s, &req, &r, why, sizeof why), ERR_OK);
    assert_int_equal(r->n_records, 0);
    reward_scorer_result_free(&r);
    reward_scorer_destroy(&s);
}

static void test_long_texts_are_cut_keeping_eos_last(void **state)
{
    (void)state;
    reward_scorer_t *s = new_scorer("cut", 0, 48);
    char d[PATH_MAX], h[65];
    write_member("cut", 0, 1, 51, true, d, sizeof d, h);
    load_ok(s, 0, 1, d, h);
    char *texts[2] = {"a response far longer than the forty-eight tokens this scorer allows", "ok"};
    Oaif__V1__ScoreRequest req = OAIF__V1__SCORE_REQUEST__INIT;
    req.prompt = "Say it.";
    req.texts = texts;
    req.n_texts = 2;
    struct reward_scorer_result *r = NULL;
    char why[1024] = "";
    assert_int_equal(reward_scorer_run(s, &req, &r, why, sizeof why), ERR_OK);
    assert_int_equal(r->truncated, 1);
    assert_float_equal(r->scores[0], direct_reward(d, req.prompt, texts[0], 48), 1e-5);
    assert_float_equal(r->scores[1], direct_reward(d, req.prompt, texts[1], 48), 1e-5);
    reward_scorer_result_free(&r);
    /* a prompt that leaves no room for a response token is a bad request */
    req.prompt = "This prompt alone is longer than forty-eight tokens once rendered.";
    assert_int_equal(reward_scorer_run(s, &req, &r, why, sizeof why), ERR_INVAL);
    assert_true(reward_scorer_error_permanent(ERR_INVAL));
    assert_non_null(strstr(why, "prompt"));
    assert_non_null(strstr(why, "48"));
    assert_null(r);
    reward_scorer_destroy(&s);
}

static void test_clear_errors_without_members_and_for_bad_requests(void **state)
{
    (void)state;
    reward_scorer_t *s = new_scorer("none", 0, 0);
    char *texts[1] = {"x"};
    Oaif__V1__ScoreRequest req = OAIF__V1__SCORE_REQUEST__INIT;
    req.prompt = "p";
    req.texts = texts;
    req.n_texts = 1;
    struct reward_scorer_result *r = NULL;
    char why[1024] = "";
    assert_int_equal(reward_scorer_run(s, &req, &r, why, sizeof why), ERR_AGAIN);
    assert_false(reward_scorer_error_permanent(ERR_AGAIN));
    assert_non_null(strstr(why, "ensemble 'none'"));
    assert_non_null(strstr(why, "no member is loaded"));
    assert_null(r);
    assert_false(reward_scorer_ready(s, why, sizeof why));
    /* bad requests: no texts, too many */
    req.n_texts = 0;
    assert_int_equal(reward_scorer_run(s, &req, &r, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "texts"));
    char *many[65];
    for (int i = 0; i < 65; i++)
        many[i] = "t";
    req.texts = many;
    req.n_texts = 65;
    assert_int_equal(reward_scorer_run(s, &req, &r, why, sizeof why), ERR_INVAL);
    assert_non_null(strstr(why, "64"));
    reward_scorer_destroy(&s);

    /* M = 3 with two loaded: the missing one is named, with why it is missing */
    s = new_scorer("three", 3, 0);
    char d[3][PATH_MAX], h[3][65];
    for (uint32_t m = 0; m < 3; m++)
        write_member("three", m, 1, 61 + m, true, d[m], sizeof d[m], h[m]);
    load_ok(s, 0, 1, d[0], h[0]);
    load_ok(s, 1, 1, d[1], h[1]);
    struct reward_member_ref ref = {.member = 2, .version = 1};
    snprintf(ref.dir, sizeof ref.dir, "%s", d[2]);
    snprintf(ref.sha256, sizeof ref.sha256, "%064d", 0);
    char lw[4096];
    assert_int_equal(reward_scorer_load(s, &ref, lw, sizeof lw), ERR_INVAL);
    req.texts = texts;
    req.n_texts = 1;
    assert_int_equal(reward_scorer_run(s, &req, &r, why, sizeof why), ERR_AGAIN);
    assert_non_null(strstr(why, "1 of the 3 members"));
    assert_non_null(strstr(why, "m2 ("));
    assert_non_null(strstr(why, "sha256"));
    load_ok(s, 2, 1, d[2], h[2]);
    assert_true(reward_scorer_ready(s, why, sizeof why));
    assert_int_equal(reward_scorer_run(s, &req, &r, why, sizeof why), ERR_OK);
    assert_int_equal(r->n_members, 3);
    reward_scorer_result_free(&r);
    reward_scorer_destroy(&s);
}

/* ---- main --------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    snprintf(store, sizeof store, "/tmp/oaif-test-reward-scorer-XXXXXX");
    return mkdtemp(store) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    if (getenv("KEEP_LOGS"))
        return 0;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", store);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_defaults_and_flags),
        cmocka_unit_test(test_new_refuses_a_bad_config),
        cmocka_unit_test(test_which_records_are_members),
        cmocka_unit_test(test_member_dir_store_then_record_path),
        cmocka_unit_test(test_plan_newest_per_member_skipping_refused),
        cmocka_unit_test(test_load_refuses_bad_members_and_keeps_the_old),
        cmocka_unit_test(test_every_member_scores_every_text_as_the_engine_does),
        cmocka_unit_test(test_a_pair_request_gives_its_scores_record),
        cmocka_unit_test(test_long_texts_are_cut_keeping_eos_last),
        cmocka_unit_test(test_clear_errors_without_members_and_for_bad_requests),
    };
    return cmocka_run_group_tests_name("reward_scorer", tests, group_setup, group_teardown);
}
