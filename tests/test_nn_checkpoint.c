/* test_nn_checkpoint.c - model and optimizer checkpoints: round trips, and clear errors for a
 * missing directory, a truncated file, a shape mismatch, a missing tensor. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "config.h"
#include "err.h"
#include "model.h"
#include "optim.h"

static void small_config(struct nn_config *c)
{
    nn_config_default(c);
    c->vocab_size = 30;
    c->hidden_size = 8;
    c->intermediate_size = 16;
    c->num_hidden_layers = 2;
    c->num_attention_heads = 2;
    c->num_key_value_heads = 1;
    c->max_position_embeddings = 16;
    c->tie_word_embeddings = false;
    c->reward_head = true;
    c->bos_token_id = c->eos_token_id = c->pad_token_id = -1;
    snprintf(c->tokenizer, sizeof c->tokenizer, "bpe");
}

struct tmp {
    char dir[64];
    char sub[128];
};

static int setup(void **state)
{
    struct tmp *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    snprintf(t->dir, sizeof t->dir, "/tmp/test_nn_ckpt.XXXXXX");
    if (!mkdtemp(t->dir)) {
        free(t);
        return -1;
    }
    snprintf(t->sub, sizeof t->sub, "%s/ckpt", t->dir);
    *state = t;
    return 0;
}

static void rm_file(const char *dir, const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    unlink(p);
}

static int teardown(void **state)
{
    struct tmp *t = *state;
    rm_file(t->sub, NN_CKPT_CONFIG);
    rm_file(t->sub, NN_CKPT_WEIGHTS);
    rm_file(t->sub, NN_CKPT_OPTIM);
    rmdir(t->sub);
    rmdir(t->dir);
    free(t);
    return 0;
}

static void test_model_round_trip(void **state)
{
    struct tmp *t = *state;
    struct nn_config c;
    char err[512];
    small_config(&c);
    nn_model_t *m = NULL, *back = NULL;
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    nn_model_init_random(m, 3, 0.1f);
    assert_int_equal(nn_checkpoint_save(m, t->sub, err, sizeof err), ERR_OK);
    assert_int_equal(nn_checkpoint_save(m, t->sub, err, sizeof err), ERR_OK); /* replaces */
    assert_int_equal(nn_checkpoint_load(&back, t->sub, err, sizeof err), ERR_OK);
    assert_memory_equal(nn_model_config(back), &c, offsetof(struct nn_config, tokenizer));
    assert_int_equal(nn_model_num_params(back), nn_model_num_params(m));
    assert_int_equal(nn_config_num_params(&c), nn_model_num_params(m));
    assert_memory_equal(nn_model_params(back), nn_model_params(m),
                        nn_model_num_params(m) * sizeof(float));
    nn_model_destroy(&back);
    nn_model_destroy(&m);
}

static void test_optimizer_round_trip(void **state)
{
    struct tmp *t = *state;
    struct nn_config c;
    char err[512];
    small_config(&c);
    nn_model_t *m = NULL;
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    nn_model_init_random(m, 4, 0.1f);
    size_t n = nn_model_num_params(m);
    nn_adamw_t *o = nn_adamw_new(n), *o2 = nn_adamw_new(n), *bad = nn_adamw_new(n - 1);
    struct nn_adamw_opts ao = {.beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f};
    float *g = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        g[i] = (float)((int)(i % 7) - 3);
    for (int s = 0; s < 3; s++)
        assert_int_equal(nn_adamw_step(o, nn_model_params(m), g, n, 1e-3f, &ao), ERR_OK);
    assert_int_equal(nn_checkpoint_save_optim(m, o, t->sub, err, sizeof err), ERR_OK);
    assert_int_equal(nn_checkpoint_load_optim(m, o2, t->sub, err, sizeof err), ERR_OK);
    assert_int_equal(nn_adamw_steps(o2), 3);
    assert_memory_equal(nn_adamw_m(o2), nn_adamw_m(o), n * sizeof(float));
    assert_memory_equal(nn_adamw_v(o2), nn_adamw_v(o), n * sizeof(float));
    assert_int_equal(nn_checkpoint_save_optim(m, bad, t->sub, err, sizeof err), ERR_INVAL);
    assert_non_null(strstr(err, "optimizer state"));
    free(g);
    nn_adamw_destroy(&o);
    nn_adamw_destroy(&o2);
    nn_adamw_destroy(&bad);
    nn_model_destroy(&m);
}

static void test_missing_directory_is_notfound(void **state)
{
    (void)state;
    nn_model_t *m = NULL;
    char err[512] = "";
    assert_int_equal(nn_checkpoint_load(&m, "/nonexistent/oaif/ckpt", err, sizeof err),
                     ERR_NOTFOUND);
    assert_null(m);
    assert_non_null(strstr(err, "/nonexistent/oaif/ckpt"));
}

/* Weights of another shape than config.json says: the tensor and both shapes are named. */
static void test_shape_mismatch_and_missing_tensor(void **state)
{
    struct tmp *t = *state;
    struct nn_config c, c2;
    char err[512], path[256];
    small_config(&c);
    nn_model_t *m = NULL, *m2 = NULL, *back = NULL;
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    assert_int_equal(nn_checkpoint_save(m, t->sub, err, sizeof err), ERR_OK);
    c2 = c;
    c2.intermediate_size = 24;
    assert_int_equal(nn_model_new(&m2, &c2, err, sizeof err), ERR_OK);
    snprintf(path, sizeof path, "%s/%s", t->sub, NN_CKPT_WEIGHTS);
    assert_int_equal(nn_checkpoint_read_weights(m2, path, err, sizeof err), ERR_INVAL);
    assert_non_null(strstr(err, "gate_proj"));
    assert_non_null(strstr(err, "expected"));
    nn_model_destroy(&m2);
    /* a tied checkpoint read by an untied config: lm_head.weight is missing */
    c2 = c;
    c2.tie_word_embeddings = true;
    assert_int_equal(nn_model_new(&m2, &c2, err, sizeof err), ERR_OK);
    assert_int_equal(nn_checkpoint_save(m2, t->sub, err, sizeof err), ERR_OK);
    assert_int_equal(nn_checkpoint_read_weights(m, path, err, sizeof err), ERR_INVAL);
    assert_non_null(strstr(err, "lm_head.weight"));
    /* ...the other way, the extra lm_head.weight is ignored */
    assert_int_equal(nn_checkpoint_save(m, t->sub, err, sizeof err), ERR_OK);
    assert_int_equal(nn_checkpoint_read_weights(m2, path, err, sizeof err), ERR_OK);
    assert_int_equal(nn_checkpoint_load(&back, t->sub, err, sizeof err), ERR_OK);
    nn_model_destroy(&back);
    nn_model_destroy(&m2);
    nn_model_destroy(&m);
}

static void test_truncated_weights_are_an_error(void **state)
{
    struct tmp *t = *state;
    struct nn_config c;
    char err[512], path[256];
    small_config(&c);
    nn_model_t *m = NULL, *back = NULL;
    assert_int_equal(nn_model_new(&m, &c, err, sizeof err), ERR_OK);
    assert_int_equal(nn_checkpoint_save(m, t->sub, err, sizeof err), ERR_OK);
    snprintf(path, sizeof path, "%s/%s", t->sub, NN_CKPT_WEIGHTS);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 10), 0);
    assert_int_equal(nn_checkpoint_load(&back, t->sub, err, sizeof err), ERR_PROTO);
    assert_null(back);
    assert_non_null(strstr(err, NN_CKPT_WEIGHTS));
    assert_int_equal(truncate(path, 3), 0);
    assert_int_equal(nn_checkpoint_load(&back, t->sub, err, sizeof err), ERR_PROTO);
    nn_model_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_model_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_optimizer_round_trip, setup, teardown),
        cmocka_unit_test(test_missing_directory_is_notfound),
        cmocka_unit_test_setup_teardown(test_shape_mismatch_and_missing_tensor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_weights_are_an_error, setup, teardown),
    };
    return cmocka_run_group_tests_name("nn_checkpoint", tests, NULL, NULL);
}
