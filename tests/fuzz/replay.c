/* replay.c - the ctest side of a fuzz target (test_fuzz_<name>): feeds every file under the
 * directories named on the command line (the target's seed corpus and its crash regressions) to
 * the target's LLVMFuzzerTestOneInput, in the ordinary builds (gcc, plain and ASan/UBSan), so an
 * input that once crashed is run on every test run. A crash, a sanitizer report or a broken
 * invariant (fuzz_fail) fails the test. The first directory (the seeds) must hold at least one
 * file, else the test would pass without running anything; a later one (the regressions of a
 * target that has none yet) may be absent. Without arguments the directories are FUZZ_DIRS
 * (colon-separated, set by tests/fuzz.cmake). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fuzz.h"

static int n_dirs;
static char **dirs;

/* The file's bytes, malloc'd (at least one byte, so an empty file is a valid pointer). */
static uint8_t *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 4096;
            uint8_t *grown = realloc(buf, cap);
            if (!grown)
                free(buf);
            assert_non_null(grown);
            buf = grown;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0)
            break;
    }
    assert_int_equal(ferror(f), 0);
    fclose(f);
    *n = len;
    return buf;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int regular(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

static void replay_dirs(void **state)
{
    (void)state;
    for (int d = 0; d < n_dirs; d++) {
        struct dirent **names;
        int n = scandir(dirs[d], &names, regular, by_name);
        if (n < 0 && d > 0) {
            printf("no %s: nothing to replay there\n", dirs[d]);
            continue;
        }
        if (n < 0)
            fail_msg("%s: cannot read the directory", dirs[d]);
        int files = 0;
        for (int i = 0; i < n; i++) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dirs[d], names[i]->d_name);
            struct stat st;
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                size_t len;
                uint8_t *data = slurp(path, &len);
                /* on stderr, so that a crash's report follows the name of its input */
                fprintf(stderr, "replay %s (%zu bytes)\n", path, len);
                LLVMFuzzerTestOneInput(data, len);
                free(data);
                files++;
            }
            free(names[i]);
        }
        free(names);
        if (files == 0 && d == 0)
            fail_msg("%s: no input to replay", dirs[d]);
        printf("replayed %d inputs from %s\n", files, dirs[d]);
    }
}

int main(int argc, char **argv)
{
    char *split[8];
    if (argc >= 2) {
        n_dirs = argc - 1;
        dirs = argv + 1;
    } else {
        static char list[] = FUZZ_DIRS;
        for (char *save = NULL, *t = strtok_r(list, ":", &save); t && n_dirs < 8;
             t = strtok_r(NULL, ":", &save))
            split[n_dirs++] = t;
        dirs = split;
    }
    LLVMFuzzerInitialize(&argc, &argv);
    const struct CMUnitTest tests[] = {cmocka_unit_test(replay_dirs)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
