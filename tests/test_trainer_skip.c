/* test_trainer_skip - why the online loop sets a pair aside (services/trainer/skip.h): every
 * reason has its own name, and the names are the strings TrainStep records have always stored
 * (`oaif audit` and exports read them), so none may change. */
#include <setjmp.h> /* cmocka 1.1 needs these four first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "skip.h"

static void test_names_are_the_stored_strings(void **state)
{
    (void)state;
    static const struct {
        enum trainer_skip s;
        const char *name;
    } want[] = {
        {TRAINER_SKIP_EMPTY_RESPONSE, "empty response"},
        {TRAINER_SKIP_PROMPT_TOKENIZE, "prompt does not tokenize"},
        {TRAINER_SKIP_TOO_LONG, "longer than the context"},
        {TRAINER_SKIP_REFERENCE_FAILED, "reference failed"},
        {TRAINER_SKIP_NOMEM, "out of memory"},
        {TRAINER_SKIP_NOT_SUBMITTED, "not submitted"},
        {TRAINER_SKIP_FAILED, "failed"},
        {TRAINER_SKIP_TIE, "tie"},
        {TRAINER_SKIP_NO_VERDICT, "no verdict"},
        {TRAINER_SKIP_STALE, "stale"},
        {TRAINER_SKIP_STRENGTH_DROP, "strength drop"},
        {TRAINER_SKIP_STRENGTH_FAILED, "strength failed"},
    };
    assert_int_equal(sizeof want / sizeof want[0], TRAINER_SKIP_COUNT);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        assert_string_equal(trainer_skip_name(want[i].s), want[i].name);
}

static void test_every_reason_has_its_own_name(void **state)
{
    (void)state;
    for (int a = 0; a < TRAINER_SKIP_COUNT; a++)
        for (int b = a + 1; b < TRAINER_SKIP_COUNT; b++)
            assert_string_not_equal(trainer_skip_name((enum trainer_skip)a),
                                    trainer_skip_name((enum trainer_skip)b));
}

static void test_a_value_outside_the_enum_is_unknown(void **state)
{
    (void)state;
    assert_string_equal(trainer_skip_name(TRAINER_SKIP_COUNT), "unknown");
    assert_string_equal(trainer_skip_name((enum trainer_skip) - 1), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_are_the_stored_strings),
        cmocka_unit_test(test_every_reason_has_its_own_name),
        cmocka_unit_test(test_a_value_outside_the_enum_is_unknown),
    };
    return cmocka_run_group_tests_name("trainer_skip", tests, NULL, NULL);
}
