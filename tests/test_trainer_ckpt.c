/* test_trainer_ckpt - the files of a policy checkpoint (services/trainer/ckptfiles.h): a
 * checkpoint written whole (weights, optimizer state, tokenizer copy, the weights' sha256) that
 * loads back; a checkpoint whose directory cannot be made or written (a file where the root or
 * the directory should be, a read-only root, an unreadable tokenizer) fails with ERR_IO and an
 * error naming the path and the reason, and leaves no temporary files; a file replaced atomically;
 * old checkpoints pruned but for the newest and the best. */
#include <setjmp.h> /* cmocka 1.1 needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "ckpt.h"
#include "ckptfiles.h"
#include "err.h"
#include "model.h"
#include "optim.h"

static const char tokenizer_text[] = "{\"model\": {\"type\": \"not parsed by the copy\"}}\n";
static const char tokenizer_config_text[] = "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\"}\n";

struct fx {
    char dir[256];   /* the mkdtemp root of everything below */
    char sft[320];   /* a directory holding tokenizer.json */
    char root[320];  /* the checkpoint root (not made yet) */
    char ckpt[400];  /* root/policy-v000001 */
    nn_model_t *m;   /* a tiny model */
    nn_adamw_t *opt; /* its optimizer, after one step */
};

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/oaif-test-trainer-ckpt-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->sft, sizeof f->sft, "%s/sft", f->dir);
    snprintf(f->root, sizeof f->root, "%s/ckpt", f->dir);
    snprintf(f->ckpt, sizeof f->ckpt, "%s/policy-v000001", f->root);
    if (mkdir(f->sft, 0755) != 0)
        return -1;
    char tok[400];
    snprintf(tok, sizeof tok, "%s/tokenizer.json", f->sft);
    write_text(tok, tokenizer_text);
    snprintf(tok, sizeof tok, "%s/tokenizer_config.json", f->sft);
    write_text(tok, tokenizer_config_text);
    struct nn_config c;
    nn_config_default(&c);
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 1;
    c.max_position_embeddings = 32;
    char err[256];
    if (nn_model_new(&f->m, &c, err, sizeof err))
        return -1;
    nn_model_init_random(f->m, 3, 0.02f);
    size_t np = nn_model_num_params(f->m);
    f->opt = nn_adamw_new(np);
    float *g = calloc(np, sizeof *g);
    if (!f->opt || !g)
        return -1;
    for (size_t i = 0; i < np; i++)
        g[i] = 0.01f * (float)(i % 7);
    struct nn_adamw_opts ao = {.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    int rc = nn_adamw_step(f->opt, nn_model_params(f->m), g, np, 1e-3f, &ao);
    free(g);
    *state = f;
    return rc ? -1 : 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "chmod -R u+w %s; rm -rf %s", f->dir, f->dir);
    int rc = system(cmd);
    nn_model_destroy(&f->m);
    nn_adamw_destroy(&f->opt);
    free(f);
    return rc == 0 ? 0 : -1;
}

static bool exists(const char *dir, const char *name)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* Entries of dir whose name holds ".tmp." (a write's leftovers); 0 when dir is not there. */
static int tmp_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    return n;
}

/* err holds every one of the NULL-terminated strings. */
static void expect_err(const char *err, ...)
{
    va_list ap;
    va_start(ap, err);
    for (const char *s; (s = va_arg(ap, const char *));)
        if (!strstr(err, s))
            fail_msg("the error \"%s\" does not say \"%s\"", err, s);
    va_end(ap);
}

static void test_write_makes_a_whole_checkpoint_that_loads_back(void **state)
{
    struct fx *f = *state;
    char sha[65], err[512] = "", want[65];
    assert_int_equal(trainer_ckpt_write(f->ckpt, f->m, f->opt, f->sft, sha, err, sizeof err),
                     ERR_OK);
    assert_true(exists(f->ckpt, NN_CKPT_CONFIG));
    assert_true(exists(f->ckpt, NN_CKPT_WEIGHTS));
    assert_true(exists(f->ckpt, NN_CKPT_OPTIM));
    assert_int_equal(tmp_files(f->ckpt), 0);
    assert_int_equal(tmp_files(f->root), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/%s", f->ckpt, NN_CKPT_WEIGHTS);
    assert_int_equal(ckpt_file_sha256(path, want, err, sizeof err), ERR_OK);
    assert_string_equal(sha, want);
    /* the tokenizer and its config (special tokens, chat template), byte for byte */
    static const char *const names[] = {"tokenizer.json", "tokenizer_config.json"};
    const char *texts[] = {tokenizer_text, tokenizer_config_text};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", f->ckpt, names[k]);
        char got[256] = "";
        FILE *t = fopen(path, "r");
        assert_non_null(t);
        size_t n = fread(got, 1, sizeof got - 1, t);
        fclose(t);
        got[n] = '\0';
        assert_string_equal(got, texts[k]);
    }
    /* weights and optimizer state read back */
    nn_model_t *back = NULL;
    assert_int_equal(nn_checkpoint_load(&back, f->ckpt, err, sizeof err), ERR_OK);
    size_t np = nn_model_num_params(f->m);
    assert_int_equal(nn_model_num_params(back), np);
    assert_memory_equal(nn_model_params(back), nn_model_params(f->m), np * sizeof(float));
    nn_adamw_t *o = nn_adamw_new(np);
    assert_non_null(o);
    assert_int_equal(nn_checkpoint_load_optim(back, o, f->ckpt, err, sizeof err), ERR_OK);
    nn_adamw_destroy(&o);
    nn_model_destroy(&back);
    /* written again over itself (a retried checkpoint): the same files, the same sha */
    assert_int_equal(trainer_ckpt_write(f->ckpt, f->m, f->opt, f->sft, sha, err, sizeof err),
                     ERR_OK);
    assert_string_equal(sha, want);
}

static void test_write_without_a_tokenizer_to_copy_writes_none(void **state)
{
    struct fx *f = *state;
    char sha[65], err[512] = "";
    assert_int_equal(trainer_ckpt_write(f->ckpt, f->m, NULL, f->root, sha, err, sizeof err),
                     ERR_OK);
    assert_true(exists(f->ckpt, NN_CKPT_WEIGHTS));
    assert_false(exists(f->ckpt, NN_CKPT_OPTIM)); /* opt NULL */
    assert_false(exists(f->ckpt, "tokenizer.json"));
    assert_false(exists(f->ckpt, "tokenizer_config.json"));
}

static void test_a_file_where_the_root_should_be_fails_naming_it(void **state)
{
    struct fx *f = *state;
    write_text(f->root, "not a directory\n");
    char sha[65], err[512] = "";
    assert_int_equal(trainer_ckpt_write(f->ckpt, f->m, f->opt, f->sft, sha, err, sizeof err),
                     ERR_IO);
    expect_err(err, f->root, "Not a directory", NULL);
    assert_int_equal(tmp_files(f->dir), 0);
}

static void test_a_file_where_the_checkpoint_should_be_fails_naming_it(void **state)
{
    struct fx *f = *state;
    assert_int_equal(mkdir(f->root, 0755), 0);
    write_text(f->ckpt, "not a directory\n");
    char sha[65], err[512] = "";
    assert_int_equal(trainer_ckpt_write(f->ckpt, f->m, f->opt, f->sft, sha, err, sizeof err),
                     ERR_IO);
    expect_err(err, f->ckpt, "Not a directory", NULL);
    assert_int_equal(tmp_files(f->root), 0);
}

static void test_a_read_only_root_fails_naming_the_directory(void **state)
{
    struct fx *f = *state;
    if (geteuid() == 0)
        skip(); /* root writes anywhere */
    assert_int_equal(mkdir(f->root, 0555), 0);
    char sha[65], err[512] = "";
    assert_int_equal(trainer_ckpt_write(f->ckpt, f->m, f->opt, f->sft, sha, err, sizeof err),
                     ERR_IO);
    expect_err(err, f->ckpt, "Permission denied", NULL);
    assert_false(exists(f->ckpt, ""));
}

/* The weights written, then the tokenizer cannot be read: an error naming it, no tokenizer.json
 * half copied, no temporary file. */
static void test_an_unreadable_tokenizer_fails_naming_it(void **state)
{
    struct fx *f = *state;
    char bad[400], tok[500];
    snprintf(bad, sizeof bad, "%s/bad", f->dir);
    snprintf(tok, sizeof tok, "%s/tokenizer.json", bad);
    assert_int_equal(mkdir(bad, 0755), 0);
    assert_int_equal(mkdir(tok, 0755), 0); /* opens, and reading it fails */
    char sha[65], err[512] = "";
    assert_int_equal(trainer_ckpt_write(f->ckpt, f->m, f->opt, bad, sha, err, sizeof err), ERR_IO);
    expect_err(err, tok, "Is a directory", NULL);
    assert_false(exists(f->ckpt, "tokenizer.json"));
    assert_int_equal(tmp_files(f->ckpt), 0);
}

static void test_write_file_replaces_the_file_whole(void **state)
{
    struct fx *f = *state;
    char path[400], err[512] = "", got[64] = "";
    snprintf(path, sizeof path, "%s/settings.json", f->dir);
    write_text(path, "old content that is longer than the new\n");
    assert_int_equal(trainer_write_file(path, "new\n", 4, err, sizeof err), ERR_OK);
    FILE *t = fopen(path, "r");
    assert_non_null(t);
    size_t n = fread(got, 1, sizeof got - 1, t);
    fclose(t);
    got[n] = '\0';
    assert_string_equal(got, "new\n");
    assert_int_equal(tmp_files(f->dir), 0);
    /* into a directory that is not there: the path and the reason */
    snprintf(path, sizeof path, "%s/missing/settings.json", f->dir);
    assert_int_equal(trainer_write_file(path, "x", 1, err, sizeof err), ERR_IO);
    expect_err(err, path, "No such file or directory", NULL);
}

static void test_make_dirs_makes_the_parents_and_accepts_existing_ones(void **state)
{
    struct fx *f = *state;
    char deep[500], err[512] = "";
    snprintf(deep, sizeof deep, "%s/a/b/c", f->root);
    assert_int_equal(trainer_make_dirs(deep, err, sizeof err), ERR_OK);
    assert_int_equal(trainer_make_dirs(deep, err, sizeof err), ERR_OK);
    struct stat st;
    assert_int_equal(stat(deep, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(trainer_make_dirs("", err, sizeof err), ERR_INVAL);
}

static void make_version(const char *root, const char *kind, int v)
{
    char dir[500], file[600];
    snprintf(dir, sizeof dir, "%s/%s-v%06d", root, kind, v);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    write_text(file, "x");
}

static bool version_there(const char *root, const char *kind, int v)
{
    char dir[500];
    snprintf(dir, sizeof dir, "%s/%s-v%06d", root, kind, v);
    return access(dir, F_OK) == 0;
}

static void test_prune_keeps_the_newest_the_best_and_sft(void **state)
{
    struct fx *f = *state;
    assert_int_equal(mkdir(f->root, 0755), 0);
    make_version(f->root, "sft", 0);
    for (int v = 1; v <= 6; v++)
        make_version(f->root, "policy", v);
    /* newest 6, keep 2, best 2: v1, v3, v4 go */
    assert_int_equal(trainer_ckpt_prune(f->root, 6, 2, 2), 3);
    assert_true(version_there(f->root, "sft", 0));
    for (int v = 1; v <= 6; v++)
        if (version_there(f->root, "policy", v) != (v == 2 || v >= 5))
            fail_msg("policy v%d: there %d", v, version_there(f->root, "policy", v));
    /* again: nothing left to remove; keep_last 0 counts as 1 */
    assert_int_equal(trainer_ckpt_prune(f->root, 6, 2, 2), 0);
    assert_int_equal(trainer_ckpt_prune(f->root, 6, 0, 0), 2);
    assert_true(version_there(f->root, "policy", 6));
    assert_false(version_there(f->root, "policy", 5));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_makes_a_whole_checkpoint_that_loads_back, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_write_without_a_tokenizer_to_copy_writes_none, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_file_where_the_root_should_be_fails_naming_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_file_where_the_checkpoint_should_be_fails_naming_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_read_only_root_fails_naming_the_directory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_an_unreadable_tokenizer_fails_naming_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_write_file_replaces_the_file_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_make_dirs_makes_the_parents_and_accepts_existing_ones,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_prune_keeps_the_newest_the_best_and_sft, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("trainer_ckpt", tests, NULL, NULL);
}
