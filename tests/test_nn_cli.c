/* test_nn_cli.c - `model init|info|generate` end to end in a temporary directory. */
#include <setjmp.h> /* cmocka 1.1 needs these four first; keep <cmocka.h> */
#include <stdarg.h> /* in its own block, or clang-format sorts it above them */
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn_cli.h"

static char dir[64], model_dir[128];

/* Run the CLI; *out gets a malloc'd copy of its output. */
static int run(char **out, int argc, char **argv)
{
    FILE *o = tmpfile(), *e = tmpfile();
    assert_non_null(o);
    assert_non_null(e);
    int rc = nn_cli_run(argc, argv, o, e);
    long n = ftell(o);
    rewind(o);
    *out = calloc(1, (size_t)n + 1);
    assert_int_equal(fread(*out, 1, (size_t)n, o), (size_t)n);
    fclose(o);
    fclose(e);
    return rc;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/test_nn_cli.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(model_dir, sizeof model_dir, "%s/m", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char p[256];
    snprintf(p, sizeof p, "%s/config.json", model_dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/model.safetensors", model_dir);
    unlink(p);
    rmdir(model_dir);
    rmdir(dir);
    return 0;
}

static void test_init_info_generate(void **state)
{
    (void)state;
    char *out = NULL;
    char *init[] = {"model", "init",    model_dir, "--layers",   "2",  "--hidden",
                    "32",    "--heads", "2",       "--kv-heads", "1",  "--intermediate",
                    "64",    "--seed",  "5",       "--std",      "0.2"};
    assert_int_equal(run(&out, 17, init), 0);
    assert_non_null(strstr(out, "parameters"));
    free(out);
    char *info[] = {"model", "info", model_dir, "--tensors"};
    assert_int_equal(run(&out, 4, info), 0);
    assert_non_null(strstr(out, "num_hidden_layers       2"));
    assert_non_null(strstr(out, "tokenizer               byte"));
    assert_non_null(strstr(out, "model.layers.1.mlp.down_proj.weight"));
    /* 259*32 + 2*(32*(32+16+16) + 32*32 + 3*32*64 + 2*32) + 32 (tied) */
    assert_non_null(strstr(out, "parameters              26880"));
    free(out);
    char *gen[] = {"model", "generate", model_dir, "--prompt", "2+2=", "--max-new", "8"};
    char *out2 = NULL;
    assert_int_equal(run(&out, 7, gen), 0);
    assert_int_equal(run(&out2, 7, gen), 0); /* greedy: the same text */
    assert_string_equal(out, out2);
    assert_true(strlen(out) >= 1);
    free(out);
    free(out2);
    char *samp[] = {"model", "generate", model_dir, "--prompt", "hi", "--temperature",
                    "1.0",   "--top-p",  "0.9",     "--seed",   "3",  "--max-new",
                    "5",     "--raw"};
    assert_int_equal(run(&out, 14, samp), 0);
    free(out);
}

static void test_bad_usage(void **state)
{
    (void)state;
    char *out = NULL;
    char *none[] = {"model"};
    assert_int_equal(run(&out, 1, none), 2);
    free(out);
    char *bad[] = {"model", "frobnicate"};
    assert_int_equal(run(&out, 2, bad), 2);
    free(out);
    char *badnum[] = {"model", "init", model_dir, "--layers", "two"};
    assert_int_equal(run(&out, 5, badnum), 2);
    free(out);
    char *badshape[] = {"model", "init", model_dir, "--heads", "3"};
    assert_int_equal(run(&out, 5, badshape), 2); /* 128 is not divisible by 3 */
    free(out);
    char *missing[] = {"model", "info", "/nonexistent/oaif-model"};
    assert_int_equal(run(&out, 3, missing), 1);
    free(out);
    char *noprompt[] = {"model", "generate", model_dir};
    assert_int_equal(run(&out, 3, noprompt), 2);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_info_generate),
        cmocka_unit_test(test_bad_usage),
    };
    return cmocka_run_group_tests_name("nn_cli", tests, setup, teardown);
}
