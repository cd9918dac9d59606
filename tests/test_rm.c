/* test_rm - reward-model training without processes (services/trainer/rm*.h): the loss assembly
 * on a tiny model is the sum of the engine's losses (Bradley-Terry alone is nn_loss_rm with the
 * same gradient as its own backward; a contrastive weight beta adds exactly beta times SimCSE's
 * or SwAV's loss on the two dropout views; the LM term adds alpha times nn_loss_sft of the chosen
 * rows; central differences agree with the gradient); the data's flips, margins, soft targets
 * and held-out split; a tiny member learns a separable toy preference (held-out accuracy well
 * above chance), the same seed gives the same weights and another seed others; the option
 * table's defaults and errors that name the flag. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "ckpt.h"
#include "err.h"
#include "rm.h"
#include "trainer_opts.h"

/* ---- a tiny model and a batch --------------------------------------------------------------- */

static void tiny_config(struct nn_config *c)
{
    nn_config_default(c);
    c->hidden_size = 32;
    c->intermediate_size = 64;
    c->num_hidden_layers = 1;
    c->num_attention_heads = 2;
    c->num_key_value_heads = 1;
    c->max_position_embeddings = 64;
}

static nn_model_t *tiny_rm(uint64_t seed)
{
    struct nn_config c;
    tiny_config(&c);
    c.reward_head = true;
    nn_model_t *m = NULL;
    char err[256];
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    nn_model_init_random(m, seed, 0.1f);
    return m;
}

#define NB 4  /* pairs */
#define NT 10 /* padded length */

struct batch {
    int tokens[2 * NB * NT], lengths[2 * NB], plens[2 * NB];
    float margin[NB], target[NB];
    struct trainer_rm_batch b;
};

static void make_batch(struct batch *x, bool margins, bool targets)
{
    uint64_t s = 7;
    for (int i = 0; i < 2 * NB; i++) {
        x->lengths[i] = 5 + (i * 3) % (NT - 4);
        x->plens[i] = 2 + i % 2;
        for (int t = 0; t < NT; t++)
            x->tokens[i * NT + t] = t < x->lengths[i] ? (int)(nn_rng_next(&s) % 256) : 258;
    }
    for (int i = 0; i < NB; i++) {
        x->margin[i] = 0.1f * (float)i - 0.15f;
        x->target[i] = 0.6f + 0.1f * (float)i;
    }
    x->b = (struct trainer_rm_batch){.B = NB,
                                     .T = NT,
                                     .tokens = x->tokens,
                                     .lengths = x->lengths,
                                     .prompt_lens = x->plens,
                                     .margin = margins ? x->margin : NULL,
                                     .target = targets ? x->target : NULL};
}

static float *copy_grads(nn_model_t *m)
{
    size_t n = nn_model_num_params(m);
    float *g = malloc(n * sizeof *g);
    assert_non_null(g);
    memcpy(g, nn_model_grads(m), n * sizeof *g);
    return g;
}

/* Forward view v of the batch as rm_loss does, and copy rewards and last hidden states. */
static void view(nn_model_t *m, const struct batch *x, float p, uint64_t step_seed, int v,
                 bool logits, float *r, float *h)
{
    struct nn_batch nb = {.B = 2 * NB, .T = NT, .tokens = x->tokens, .lengths = x->lengths};
    struct nn_fwd_opts fo = {
        .logits = logits, .dropout = p, .dropout_seed = trainer_rm_view_seed(step_seed, v)};
    assert_int_equal(nn_model_forward(m, &nb, &fo), ERR_OK);
    memcpy(r, nn_model_rewards(m), sizeof *r * 2 * NB);
    if (h)
        memcpy(h, nn_model_last_hidden(m), sizeof *h * 2 * NB * 32);
}

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

static double max_abs(const float *a, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d = fmax(d, fabs((double)a[i]));
    return d;
}

/* ---- the loss assembly ----------------------------------------------------------------------- */

/* Bradley-Terry alone (margins, soft targets, centering): the loss is nn_loss_rm on the model's
 * rewards and the gradient that of one backward with its dreward. */
static void test_bt_alone_is_nn_loss_rm(void **state)
{
    (void)state;
    nn_model_t *m = tiny_rm(3);
    assert_int_equal(nn_model_reserve(m, 2 * NB, NT, true), ERR_OK);
    struct batch x;
    make_batch(&x, true, true);
    struct trainer_rm_loss_opts o = {.rm = {.label_smoothing = 0.1f, .center = 0.01f}};
    trainer_rm_loss_t *l = NULL;
    char err[256];
    assert_int_equal(trainer_rm_loss_new(&l, m, &o, NB, 1, err, sizeof err), ERR_OK);
    assert_int_equal(trainer_rm_loss_views(&o), 1);
    struct trainer_rm_parts p;
    assert_int_equal(trainer_rm_loss_run(l, &x.b, 99, &p), ERR_OK);
    float *g = copy_grads(m);

    float r[2 * NB], dr[2 * NB];
    view(m, &x, 0, 99, 0, false, r, NULL);
    struct nn_rm_stats st;
    assert_int_equal(nn_loss_rm(&o.rm, NB, r, r + NB, x.margin, x.target, dr, dr + NB, &st),
                     ERR_OK);
    assert_true(p.rm == st.loss);
    assert_true(p.total == st.loss);
    assert_true(p.cl == 0 && p.lm == 0 && p.views == 1);
    assert_true(p.accuracy == st.accuracy);
    assert_int_equal(nn_model_zero_grad(m), ERR_OK);
    struct nn_bwd_in bi = {.dreward = dr};
    assert_int_equal(nn_model_backward(m, &bi), ERR_OK);
    size_t n = nn_model_num_params(m);
    assert_true(max_abs_diff(g, nn_model_grads(m), n) == 0.0);
    assert_true(max_abs(g, n) > 0);
    free(g);
    trainer_rm_loss_destroy(&l);
    nn_model_destroy(&m);
}

/* With a contrastive loss of weight beta: total = mean of BT over the two views + beta * the
 * engine's SimCSE (or SwAV) on the views' last hidden states; and the gradient is BT's plus
 * beta times the contrastive loss's own backward. */
static void check_contrastive(enum trainer_rm_cl cl, enum nn_cl_mode mode, float beta)
{
    nn_model_t *m = tiny_rm(4);
    assert_int_equal(nn_model_reserve(m, 2 * NB, NT, true), ERR_OK);
    struct batch x;
    make_batch(&x, false, false);
    struct trainer_rm_loss_opts o = {
        .cl = cl,
        .cl_weight = beta,
        .dropout = 0.1f,
        .simcse = {.mode = mode, .temperature = 0.05f},
        .swav = {.mode = mode, .K = 5, .temperature = 0.1f, .epsilon = 0.05f, .iterations = 3}};
    trainer_rm_loss_t *l = NULL;
    char err[256];
    assert_int_equal(trainer_rm_loss_new(&l, m, &o, NB, 5, err, sizeof err), ERR_OK);
    assert_int_equal(trainer_rm_loss_views(&o), 2);
    struct trainer_rm_parts p;
    const uint64_t seed = 1234;
    assert_int_equal(trainer_rm_loss_run(l, &x.b, seed, &p), ERR_OK);
    float *g = copy_grads(m);
    size_t nC = 0;
    const float *C = trainer_rm_loss_prototypes(l, &nC);
    float *dC = NULL;
    if (cl == TRAINER_RM_CL_SWAV) {
        assert_int_equal(nC, 5 * 32);
        dC = malloc(nC * sizeof *dC);
        memcpy(dC, trainer_rm_loss_prototype_grads(l, &nC), nC * sizeof *dC);
    } else {
        assert_null(C);
    }

    /* the engine's losses by hand on the same two views */
    float r0[2 * NB], r1[2 * NB], h0[2 * NB * 32], h1[2 * NB * 32];
    float dr0[2 * NB], dr1[2 * NB], dh0[2 * NB * 32], dh1[2 * NB * 32];
    view(m, &x, 0.1f, seed, 0, false, r0, h0);
    view(m, &x, 0.1f, seed, 1, false, r1, h1);
    assert_true(max_abs_diff(h0, h1, (size_t)2 * NB * 32) > 1e-4); /* two different views */
    struct nn_rm_stats s0, s1;
    assert_int_equal(nn_loss_rm(&o.rm, NB, r0, r0 + NB, NULL, NULL, dr0, dr0 + NB, &s0), ERR_OK);
    assert_int_equal(nn_loss_rm(&o.rm, NB, r1, r1 + NB, NULL, NULL, dr1, dr1 + NB, &s1), ERR_OK);
    double cl_loss = 0;
    float *dCm = dC ? calloc(nC, sizeof *dCm) : NULL;
    if (cl == TRAINER_RM_CL_SIMCSE)
        assert_int_equal(nn_loss_simcse(&o.simcse, 2 * NB, 32, h0, h1, dh0, dh1, &cl_loss, NULL),
                         ERR_OK);
    else
        assert_int_equal(
            nn_loss_swav(&o.swav, 2 * NB, 32, h0, h1, C, NULL, dh0, dh1, dCm, &cl_loss, NULL),
            ERR_OK);
    assert_true(p.views == 2);
    assert_true(fabs(p.rm - (s0.loss + s1.loss) / 2) < 1e-12);
    assert_true(p.cl == cl_loss);
    assert_true(fabs(p.total - (p.rm + (double)beta * cl_loss)) < 1e-12);

    /* gradient: BT's of each view, then beta times the contrastive one's */
    assert_int_equal(nn_model_zero_grad(m), ERR_OK);
    for (int i = 0; i < 2 * NB; i++) {
        dr0[i] /= 2;
        dr1[i] /= 2;
    }
    for (int v = 0; v < 2; v++) {
        view(m, &x, 0.1f, seed, v, false, v ? r1 : r0, NULL);
        struct nn_bwd_in bi = {.dreward = v ? dr1 : dr0};
        assert_int_equal(nn_model_backward(m, &bi), ERR_OK);
    }
    float *gbt = copy_grads(m);
    assert_int_equal(nn_model_zero_grad(m), ERR_OK);
    for (int v = 0; v < 2; v++) {
        view(m, &x, 0.1f, seed, v, false, v ? r1 : r0, NULL);
        struct nn_bwd_in bi = {.dlast_hidden = v ? dh1 : dh0};
        assert_int_equal(nn_model_backward(m, &bi), ERR_OK);
    }
    float *gcl = nn_model_grads(m);
    size_t n = nn_model_num_params(m);
    double worst = 0, scale = max_abs(g, n);
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)g[i] - (gbt[i] + (double)beta * gcl[i])));
    assert_true(max_abs(gcl, n) > 0);
    assert_true(worst <= 1e-5 * scale);
    if (dC) {
        for (size_t i = 0; i < nC; i++)
            assert_true(fabs((double)dC[i] - (double)beta * dCm[i]) <= 1e-6 * (1 + fabs(dC[i])));
        assert_true(max_abs(dC, nC) > 0);
    }
    free(g);
    free(gbt);
    free(dC);
    free(dCm);
    trainer_rm_loss_destroy(&l);
    nn_model_destroy(&m);
}

static void test_simcse_adds_beta_times_its_loss(void **state)
{
    (void)state;
    check_contrastive(TRAINER_RM_CL_SIMCSE, NN_CL_DIFFERENCES, 0.5f);
    check_contrastive(TRAINER_RM_CL_SIMCSE, NN_CL_RESPONSES, 1.0f);
}

static void test_swav_adds_beta_times_its_loss(void **state)
{
    (void)state;
    check_contrastive(TRAINER_RM_CL_SWAV, NN_CL_DIFFERENCES, 0.5f);
    check_contrastive(TRAINER_RM_CL_SWAV, NN_CL_RESPONSES, 0.1f);
}

/* The LM term: alpha times nn_loss_sft of the chosen rows, and no weight no term. */
static void test_lm_adds_alpha_times_chosen_nll(void **state)
{
    (void)state;
    nn_model_t *m = tiny_rm(6);
    assert_int_equal(nn_model_reserve(m, 2 * NB, NT, true), ERR_OK);
    struct batch x;
    make_batch(&x, false, false);
    struct trainer_rm_loss_opts o = {.lm = 0.3f};
    trainer_rm_loss_t *l = NULL;
    char err[256];
    assert_int_equal(trainer_rm_loss_new(&l, m, &o, NB, 1, err, sizeof err), ERR_OK);
    struct trainer_rm_parts p;
    assert_int_equal(trainer_rm_loss_run(l, &x.b, 5, &p), ERR_OK);
    struct nn_batch nb = {.B = 2 * NB, .T = NT, .tokens = x.tokens, .lengths = x.lengths};
    assert_int_equal(nn_model_forward(m, &nb, NULL), ERR_OK);
    float lp[2 * NB];
    int nt[2 * NB];
    assert_int_equal(nn_model_seq_logprobs(m, x.plens, lp, nt), ERR_OK);
    double sft;
    float dl[NB];
    assert_int_equal(nn_loss_sft(NB, lp, nt, 0, dl, &sft), ERR_OK);
    assert_true(fabs(p.lm - sft) < 1e-12);
    assert_true(fabs(p.total - (p.rm + (double)0.3f * sft)) < 1e-12);
    trainer_rm_loss_destroy(&l);
    nn_model_destroy(&m);
}

/* Central differences of the whole loss (BT with margins and centering, SimCSE on two views
 * with fixed dropout masks, the LM term) against its gradient, on the head and a few weights of
 * each kind. */
static void test_gradient_matches_central_differences(void **state)
{
    (void)state;
    nn_model_t *m = tiny_rm(8);
    assert_int_equal(nn_model_reserve(m, 2 * NB, NT, true), ERR_OK);
    struct batch x;
    make_batch(&x, true, false);
    struct trainer_rm_loss_opts o = {.rm = {.center = 0.05f},
                                     .lm = 0.2f,
                                     .cl = TRAINER_RM_CL_SIMCSE,
                                     .cl_weight = 0.5f,
                                     .dropout = 0.1f,
                                     .simcse = {.mode = NN_CL_DIFFERENCES, .temperature = 0.5f}};
    trainer_rm_loss_t *l = NULL;
    char err[256];
    assert_int_equal(trainer_rm_loss_new(&l, m, &o, NB, 1, err, sizeof err), ERR_OK);
    struct trainer_rm_parts p;
    assert_int_equal(trainer_rm_loss_run(l, &x.b, 77, &p), ERR_OK);
    float *g = copy_grads(m);
    const char *names[] = {"score.weight", "model.norm.weight",
                           "model.layers.0.mlp.down_proj.weight",
                           "model.layers.0.self_attn.q_proj.weight", "model.embed_tokens.weight"};
    float *P = nn_model_params(m);
    int checked = 0;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const struct nn_tensor *t = nn_model_find_tensor(m, names[k]);
        assert_non_null(t);
        for (size_t j = 0; j < t->numel; j += t->numel / 5 + 1) {
            size_t i = t->offset + j;
            if (!strcmp(names[k], "model.embed_tokens.weight"))
                i = t->offset + (size_t)x.tokens[NT + 1] * 32 + j % 32; /* a row in use */
            float keep = P[i], eps = 1e-2f;
            struct trainer_rm_parts a, b;
            P[i] = keep + eps;
            assert_int_equal(trainer_rm_loss_run(l, &x.b, 77, &a), ERR_OK);
            P[i] = keep - eps;
            assert_int_equal(trainer_rm_loss_run(l, &x.b, 77, &b), ERR_OK);
            P[i] = keep;
            double fd = (a.total - b.total) / (2.0 * eps);
            assert_true(fabs(fd - g[i]) <= 2e-3 + 2e-2 * fabs(fd));
            checked++;
        }
    }
    assert_true(checked >= 20);
    free(g);
    trainer_rm_loss_destroy(&l);
    nn_model_destroy(&m);
}

static void test_loss_new_refuses_a_model_without_head(void **state)
{
    (void)state;
    struct nn_config c;
    tiny_config(&c);
    nn_model_t *m = NULL;
    char err[256];
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    struct trainer_rm_loss_opts o = {0};
    trainer_rm_loss_t *l = NULL;
    assert_int_equal(trainer_rm_loss_new(&l, m, &o, 2, 1, err, sizeof err), ERR_INVAL);
    assert_non_null(strstr(err, "reward head"));
    assert_null(l);
    nn_model_destroy(&m);
}

/* ---- data ----------------------------------------------------------------------------------- */

static void add_pair(struct trainer_rm_data *d, const char *id, const char *prompt,
                     const char *chosen, const char *rejected, double label_p, bool has_mu,
                     double mu)
{
    d->pairs = realloc(d->pairs, (d->n + 1) * sizeof *d->pairs);
    assert_non_null(d->pairs);
    d->pairs[d->n++] = (struct trainer_rm_pair){.id = strdup(id),
                                                .prompt = strdup(prompt),
                                                .chosen = strdup(chosen),
                                                .rejected = strdup(rejected),
                                                .label_p = label_p,
                                                .has_strength = has_mu,
                                                .strength = mu};
}

static void defaults(struct trainer_rm_opts *o)
{
    assert_int_equal(trainer_rm_defaults(o), ERR_OK);
}

static void test_data_flips_margins_targets(void **state)
{
    (void)state;
    struct trainer_rm_opts o;
    defaults(&o);
    o.margin = 0.5f;
    o.margin_from_strength = true;
    o.margin_scale = 2.0f;
    o.margin_clip = 1.0f;
    o.soft_target = TRAINER_RM_SOFT_STRENGTH;
    o.holdout = 0;
    struct trainer_rm_data d = {0};
    add_pair(&d, "p2", "q", "A", "B", 1.0, true, 0.25);
    add_pair(&d, "p1", "q", "C", "D", 0.7, true, 3.0);
    add_pair(&d, "p3", "q", "E", "F", 1.0, false, 0);
    char *flip[] = {"p2", "nothing"};
    assert_int_equal(trainer_rm_data_finish(&d, &o, flip, 2), ERR_OK);
    /* sorted by id */
    assert_string_equal(d.pairs[0].id, "p1");
    assert_string_equal(d.pairs[1].id, "p2");
    /* p1: margin 0.5 + 2 * clip(3, 1) = 2.5, target sigmoid(3) */
    assert_true(fabs(d.pairs[0].margin - 2.5f) < 1e-6);
    assert_true(fabs(d.pairs[0].target - 1 / (1 + exp(-3.0))) < 1e-6);
    assert_false(d.pairs[0].flipped);
    /* p2 flipped: responses swapped, mu -0.25: margin 0.5 - 0.5 = 0 */
    assert_true(d.pairs[1].flipped);
    assert_string_equal(d.pairs[1].chosen, "B");
    assert_string_equal(d.pairs[1].rejected, "A");
    assert_true(fabs(d.pairs[1].margin - 0.0f) < 1e-6);
    assert_true(fabs(d.pairs[1].target - 1 / (1 + exp(0.25))) < 1e-6);
    /* p3: no strength, the fixed margin, no soft target */
    assert_true(fabs(d.pairs[2].margin - 0.5f) < 1e-6);
    assert_false(d.pairs[2].has_target);
    assert_int_equal(d.counts.flipped, 1);
    assert_int_equal(d.counts.flip_ids, 2);
    assert_int_equal(d.counts.strengths, 2);
    char digest[65];
    memcpy(digest, d.digest, sizeof digest);
    trainer_rm_data_free(&d);

    /* label soft targets follow the flip; no flip file: another digest */
    o.soft_target = TRAINER_RM_SOFT_LABEL;
    o.margin_from_strength = false;
    add_pair(&d, "p1", "q", "C", "D", 0.7, true, 3.0);
    add_pair(&d, "p2", "q", "A", "B", 0.9, true, 0.25);
    assert_int_equal(trainer_rm_data_finish(&d, &o, flip, 1), ERR_OK);
    assert_true(fabs(d.pairs[0].target - 0.7f) < 1e-6);
    assert_true(fabs(d.pairs[1].target - 0.1f) < 1e-6);
    assert_true(fabs(d.pairs[0].margin - 0.5f) < 1e-6);
    assert_string_not_equal(digest, d.digest);
    trainer_rm_data_free(&d);
    trainer_rm_release(&o);
}

static void test_heldout_is_a_function_of_the_id(void **state)
{
    (void)state;
    int held = 0;
    char id[32];
    for (int i = 0; i < 4000; i++) {
        snprintf(id, sizeof id, "pair-%d", i);
        bool h = trainer_rm_is_heldout(id, 0.1);
        assert_true(h == trainer_rm_is_heldout(id, 0.1));
        if (h)
            assert_true(trainer_rm_is_heldout(id, 0.2)); /* a larger share keeps these */
        held += h;
    }
    assert_true(held > 320 && held < 480);
    assert_false(trainer_rm_is_heldout("x", 0));
}

/* ---- training ------------------------------------------------------------------------------- */

struct tdir {
    char dir[128], init[160], ckpt[160];
};

static void make_dirs(struct tdir *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/oaif-test-rm-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->init, sizeof t->init, "%s/init", t->dir);
    snprintf(t->ckpt, sizeof t->ckpt, "%s/ckpt", t->dir);
    struct nn_config c;
    tiny_config(&c);
    c.max_position_embeddings = 48;
    nn_model_t *m = NULL;
    char err[256];
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    nn_model_init_random(m, 11, 0.05f);
    assert_int_equal(nn_checkpoint_save(m, t->init, err, sizeof err), ERR_OK);
    nn_model_destroy(&m);
}

static void remove_dirs(struct tdir *t)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", t->dir);
    assert_int_equal(system(cmd), 0);
}

/* A separable toy preference: the chosen response is a word of one set, the rejected one of
 * another, after a random prompt. */
static void toy_data(struct trainer_rm_data *d, int n)
{
    static const char *good[] = {"yes", "sure", "right", "true", "correct", "indeed"};
    static const char *bad[] = {"no", "wrong", "false", "never", "nope", "bad"};
    uint64_t s = 31;
    memset(d, 0, sizeof *d);
    for (int i = 0; i < n; i++) {
        char id[32], prompt[64], c[32], r[32];
        snprintf(id, sizeof id, "toy-%04d", i);
        snprintf(prompt, sizeof prompt, "q%d: is %c%c?", i, 'a' + (int)(nn_rng_next(&s) % 26),
                 'a' + (int)(nn_rng_next(&s) % 26));
        snprintf(c, sizeof c, "%s", good[nn_rng_next(&s) % 6]);
        snprintf(r, sizeof r, "%s", bad[nn_rng_next(&s) % 6]);
        add_pair(d, id, prompt, c, r, 1.0, false, 0);
    }
}

static void toy_opts(struct trainer_rm_opts *o, const struct tdir *t)
{
    defaults(o);
    free(o->dataset);
    o->dataset = strdup("toy");
    free(o->init_dir);
    o->init_dir = strdup(t->init);
    free(o->checkpoint_dir);
    o->checkpoint_dir = strdup(t->ckpt);
    free(o->ensemble);
    o->ensemble = strdup("toy");
    o->holdout = 0.2;
    o->batch = 8;
    o->epochs = 2;
    o->lr = 3e-3f;
    o->warmup = 5;
    o->checkpoint_every = 1000;
}

static void test_a_tiny_member_learns_a_separable_preference(void **state)
{
    (void)state;
    struct tdir t;
    make_dirs(&t);
    struct trainer_rm_opts o;
    toy_opts(&o, &t);
    struct trainer_rm_data d;
    toy_data(&d, 300);
    assert_int_equal(trainer_rm_data_finish(&d, &o, NULL, 0), ERR_OK);
    struct trainer_rm_result *res = calloc(1, sizeof *res);
    char err[512];
    int rc = trainer_rm_train(&o, &d, 0, NULL, res, err, sizeof err);
    if (rc)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, ERR_OK);
    assert_int_equal(res->epochs_done, 2);
    assert_true(res->heldout_pairs > 30);
    fprintf(stderr,
            "toy: %zu train, %zu held out; held-out accuracy %.3f then %.3f, loss %.3f "
            "then %.3f, %.1f s\n",
            res->train_pairs, res->heldout_pairs, res->epoch[0].heldout_accuracy,
            res->epoch[1].heldout_accuracy, res->epoch[0].heldout_loss, res->epoch[1].heldout_loss,
            res->seconds);
    assert_true(res->epoch[1].heldout_accuracy >= 0.9);
    assert_true(res->epoch[1].heldout_loss < 0.4);
    assert_false(res->already_done);
    assert_int_equal(res->version, 1);
    char sha[65];
    memcpy(sha, res->sha256, sizeof sha);

    /* the same settings again: finished already, nothing trained */
    rc = trainer_rm_train(&o, &d, 0, NULL, res, err, sizeof err);
    assert_int_equal(rc, ERR_OK);
    assert_true(res->already_done);
    assert_string_equal(res->sha256, sha);
    assert_int_equal(res->epochs_done, 2);

    /* the same seed in another ensemble: the same weights; another seed: others */
    free(o.ensemble);
    o.ensemble = strdup("again");
    assert_int_equal(trainer_rm_train(&o, &d, 0, NULL, res, err, sizeof err), ERR_OK);
    assert_false(res->already_done);
    assert_string_equal(res->sha256, sha);
    o.seed = 5;
    assert_int_equal(trainer_rm_train(&o, &d, 0, NULL, res, err, sizeof err), ERR_OK);
    assert_false(res->already_done);
    assert_int_equal(res->version, 2); /* the next version of that member */
    assert_string_not_equal(res->sha256, sha);

    free(res);
    trainer_rm_data_free(&d);
    trainer_rm_release(&o);
    remove_dirs(&t);
}

/* A member stopped mid-run (its stop flag set from another thread once its first checkpoint is
 * there) writes a checkpoint, and started again resumes to the weights of one never stopped;
 * each checkpoint replaces the one before it. SwAV and the LM term are on, so the prototypes and
 * their optimizer state must travel too. */
static volatile sig_atomic_t stop_flag;

struct watcher {
    char path[300];
};

static void *stop_after_first_checkpoint(void *arg)
{
    struct watcher *w = arg;
    for (int i = 0; i < 60000 && access(w->path, F_OK) != 0; i++)
        usleep(1000);
    stop_flag = 1;
    return NULL;
}

static int count_versions(const char *root, const char *stem)
{
    char cmd[400], out[64] = "";
    snprintf(cmd, sizeof cmd, "ls -d %s/%s-v* 2>/dev/null | wc -l", root, stem);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(out, sizeof out, p));
    pclose(p);
    return atoi(out);
}

static void test_a_stopped_member_resumes_to_the_same_weights(void **state)
{
    (void)state;
    struct tdir t;
    make_dirs(&t);
    struct trainer_rm_opts o;
    toy_opts(&o, &t);
    o.loss.cl = TRAINER_RM_CL_SWAV;
    o.loss.lm = 0.1f;
    o.checkpoint_every = 3;
    struct trainer_rm_data d;
    toy_data(&d, 120);
    assert_int_equal(trainer_rm_data_finish(&d, &o, NULL, 0), ERR_OK);
    struct trainer_rm_result *res = calloc(1, sizeof *res);
    char err[512];
    assert_int_equal(trainer_rm_train(&o, &d, 0, NULL, res, err, sizeof err), ERR_OK);
    char sha[65];
    memcpy(sha, res->sha256, sizeof sha);
    long steps = res->steps;
    assert_true(steps >= 20);
    assert_int_equal(count_versions(t.ckpt, "reward-toy-m0"), 1); /* the final one alone */

    /* stopped before its first step: nothing is written */
    free(o.ensemble);
    o.ensemble = strdup("stopped");
    stop_flag = 1;
    assert_int_equal(trainer_rm_train(&o, &d, 0, &stop_flag, res, err, sizeof err), ERR_OK);
    assert_true(res->stopped);
    assert_int_equal(res->steps_done, 0);
    assert_int_equal(count_versions(t.ckpt, "reward-stopped-m0"), 0);

    /* stopped after its first checkpoint */
    stop_flag = 0;
    o.step_sleep_ms = 20;
    struct watcher w;
    snprintf(w.path, sizeof w.path, "%s/reward-stopped-m0-v000001/%s", t.ckpt, TRAINER_RM_STATE);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stop_after_first_checkpoint, &w), 0);
    assert_int_equal(trainer_rm_train(&o, &d, 0, &stop_flag, res, err, sizeof err), ERR_OK);
    pthread_join(th, NULL);
    assert_true(res->stopped);
    long first = res->steps_done;
    fprintf(stderr, "stopped after %ld of %ld steps at v%u\n", first, steps, res->version);
    assert_true(first >= 3 && first < steps);
    assert_int_equal(count_versions(t.ckpt, "reward-stopped-m0"), 1);

    /* resumed: the same weights as the run never stopped */
    stop_flag = 0;
    o.step_sleep_ms = 0;
    assert_int_equal(trainer_rm_train(&o, &d, 0, &stop_flag, res, err, sizeof err), ERR_OK);
    assert_false(res->stopped);
    assert_int_equal(res->resumed_at, first);
    assert_int_equal(res->resumed_at + res->steps_done, steps);
    assert_string_equal(res->sha256, sha);
    assert_int_equal(count_versions(t.ckpt, "reward-stopped-m0"), 1);

    free(res);
    trainer_rm_data_free(&d);
    trainer_rm_release(&o);
    remove_dirs(&t);
}

/* ---- options -------------------------------------------------------------------------------- */

static void test_defaults_are_the_papers_where_they_fit(void **state)
{
    (void)state;
    struct trainer_rm_opts o;
    defaults(&o);
    assert_true(o.adamw.beta1 == 0.9f && o.adamw.beta2 == 0.95f && o.adamw.eps == 1e-6f);
    assert_int_equal(o.epochs, 1);
    assert_true(o.holdout == 0.1);
    assert_string_equal(o.ensemble, CKPT_DEFAULT_ENSEMBLE); /* the reward-scorer's too */
    assert_non_null(strstr(o.init_dir, "sft-v000000"));
    assert_int_equal(trainer_rm_seed(&o), 1);
    o.member = 4;
    assert_int_equal(trainer_rm_seed(&o), 5);
    struct trainer_rm_loss_opts lo;
    o.loss.cl = TRAINER_RM_CL_SWAV;
    trainer_rm_loss_opts_of(&o, &lo);
    assert_true(lo.cl_weight == 0.5f && lo.swav.K == 20 && lo.swav.temperature == 0.1f);
    assert_int_equal(lo.swav.mode, NN_CL_DIFFERENCES);
    o.cl_on = NN_CL_RESPONSES;
    trainer_rm_loss_opts_of(&o, &lo);
    assert_true(lo.cl_weight == 0.1f && lo.swav.K == 50);
    o.loss.cl = TRAINER_RM_CL_SIMCSE;
    trainer_rm_loss_opts_of(&o, &lo);
    assert_true(lo.cl_weight == 1.0f && lo.simcse.temperature == 0.05f);
    o.loss.cl = TRAINER_RM_CL_NONE;
    o.loss.cl_weight = 3;
    trainer_rm_loss_opts_of(&o, &lo);
    assert_true(lo.cl_weight == 0.0f);
    assert_int_equal(trainer_rm_loss_views(&lo), 1);
    trainer_rm_release(&o);
}

static void expect_invalid(struct trainer_rm_opts *o, const char *flag)
{
    char err[512] = "";
    assert_int_equal(trainer_rm_validate(o, err, sizeof err), ERR_INVAL);
    if (!strstr(err, flag))
        fail_msg("expected '%s' in: %s", flag, err);
}

static void test_validate_names_the_flag(void **state)
{
    (void)state;
    struct trainer_rm_opts o;
    defaults(&o);
    char err[256];
    expect_invalid(&o, "--dataset"); /* no data named */
    o.dataset = strdup("d");
    assert_int_equal(trainer_rm_validate(&o, err, sizeof err), ERR_OK);
    o.run = strdup("r");
    expect_invalid(&o, "--run"); /* both */
    free(o.run);
    o.run = NULL;
    o.holdout = 0.95;
    expect_invalid(&o, "--holdout");
    o.holdout = 0.1;
    char *e = o.ensemble;
    o.ensemble = "a/b";
    expect_invalid(&o, "--ensemble");
    o.ensemble = e;
    o.soft_target = TRAINER_RM_SOFT_LABEL;
    o.loss.rm.label_smoothing = 0.1f;
    expect_invalid(&o, "--label-smoothing");
    o.soft_target = TRAINER_RM_SOFT_NONE;
    o.loss.rm.label_smoothing = 0;
    o.lr = 0;
    expect_invalid(&o, "--lr");
    trainer_rm_release(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bt_alone_is_nn_loss_rm),
        cmocka_unit_test(test_simcse_adds_beta_times_its_loss),
        cmocka_unit_test(test_swav_adds_beta_times_its_loss),
        cmocka_unit_test(test_lm_adds_alpha_times_chosen_nll),
        cmocka_unit_test(test_gradient_matches_central_differences),
        cmocka_unit_test(test_loss_new_refuses_a_model_without_head),
        cmocka_unit_test(test_data_flips_margins_targets),
        cmocka_unit_test(test_heldout_is_a_function_of_the_id),
        cmocka_unit_test(test_a_tiny_member_learns_a_separable_preference),
        cmocka_unit_test(test_a_stopped_member_resumes_to_the_same_weights),
        cmocka_unit_test(test_defaults_are_the_papers_where_they_fit),
        cmocka_unit_test(test_validate_names_the_flag),
    };
    return cmocka_run_group_tests_name("rm", tests, NULL, NULL);
}
