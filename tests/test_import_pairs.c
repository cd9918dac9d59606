/* test_import_pairs - the preference data readers and writers (services/oaif/pairs.h) without a
 * ledger: every format on small hand-made rows and files (tests/fixtures/pairs), malformed rows
 * with their reasons and places, the records a pair becomes, and TRL/HH lines that read back as
 * the same pairs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "pairs.h"

static const struct pairs_limits LIM = {.max_response_bytes = 65536, .max_prompt_bytes = 1 << 20};

/* pairs_parse on a row written as JSON text. */
static enum pairs_reason parse(enum pairs_format fmt, const char *json, struct pairs_item *it,
                               char *msg, size_t msglen)
{
    json_error_t je;
    json_t *row = json_loads(json, 0, &je);
    if (!row)
        fail_msg("bad test JSON: %s: %s", je.text, json);
    enum pairs_reason r = pairs_parse(fmt, row, &LIM, it, msg, msglen);
    json_decref(row);
    return r;
}

/* The row must be refused for reason `want` with a message holding `needle`. */
static void expect_bad(enum pairs_format fmt, const char *json, enum pairs_reason want,
                       const char *needle)
{
    struct pairs_item it;
    char msg[600];
    enum pairs_reason r = parse(fmt, json, &it, msg, sizeof msg);
    if (r != want || !strstr(msg, needle))
        fail_msg("%s: got %s (%s), want %s with \"%s\"", json, pairs_reason_name(r), msg,
                 pairs_reason_name(want), needle);
    assert_null(it.prompt);
}

/* The row must read as (prompt, chosen, rejected). */
static void expect_pair(enum pairs_format fmt, const char *json, const char *prompt,
                        const char *chosen, const char *rejected)
{
    struct pairs_item it;
    char msg[600];
    enum pairs_reason r = parse(fmt, json, &it, msg, sizeof msg);
    if (r != PAIRS_OK)
        fail_msg("%s: %s", json, msg);
    assert_string_equal(it.prompt, prompt);
    assert_string_equal(it.chosen, chosen);
    assert_string_equal(it.rejected, rejected);
    pairs_item_clear(&it);
}

static enum pairs_format detect(const char *json)
{
    json_t *row = json_loads(json, 0, NULL);
    assert_non_null(row);
    enum pairs_format f = pairs_detect(row);
    json_decref(row);
    return f;
}

static void test_detect_tells_each_format(void **state)
{
    (void)state;
    assert_int_equal(detect("{\"chosen\": \"\\n\\nHuman: q\\n\\nAssistant: a\", \"rejected\": "
                            "\"\\n\\nHuman: q\\n\\nAssistant: b\"}"),
                     PAIRS_FORMAT_HH);
    assert_int_equal(detect("{\"prompt\": \"q\", \"chosen\": \"a\", \"rejected\": \"b\"}"),
                     PAIRS_FORMAT_TRL);
    assert_int_equal(detect("{\"chosen\": [{\"role\": \"user\", \"content\": \"q\"}], "
                            "\"rejected\": []}"),
                     PAIRS_FORMAT_TRL);
    assert_int_equal(detect("{\"chosen\": [\"q\", \"a\"], \"rejected\": [\"q\", \"b\"]}"),
                     PAIRS_FORMAT_PART2);
    assert_int_equal(detect("{\"info\": {}, \"summaries\": [], \"choice\": 0}"), PAIRS_FORMAT_TLDR);
    /* Turn lists are Part II even beside a "prompt" field. */
    assert_int_equal(detect("{\"prompt\": \"q\", \"chosen\": [\"q\", \"a\"], \"rejected\": "
                            "[\"q\", \"b\"]}"),
                     PAIRS_FORMAT_PART2);
    /* Strings without Human turns, or neither field: no format. */
    assert_int_equal(detect("{\"chosen\": \"a\", \"rejected\": \"b\"}"), PAIRS_FORMAT_AUTO);
    assert_int_equal(detect("{\"question\": \"q\"}"), PAIRS_FORMAT_AUTO);
}

static void test_hh_splits_context_and_final_answers(void **state)
{
    (void)state;
    expect_pair(PAIRS_FORMAT_HH,
                "{\"chosen\": \"\\n\\nHuman: What is 2+2?\\n\\nAssistant: 4.\", "
                "\"rejected\": \"\\n\\nHuman: What is 2+2?\\n\\nAssistant: 5.\"}",
                "What is 2+2?", "4.", "5.");
    /* Multi-turn: the earlier turns stay in the prompt, the last Assistant turn is the answer. */
    expect_pair(PAIRS_FORMAT_HH,
                "{\"chosen\": \"\\n\\nHuman: Hi\\n\\nAssistant: Hello.\\n\\nHuman: Joke?"
                "\\n\\nAssistant: Knock knock.\", \"rejected\": \"\\n\\nHuman: Hi\\n\\nAssistant: "
                "Hello.\\n\\nHuman: Joke?\\n\\nAssistant: No.\"}",
                "Hi\n\nAssistant: Hello.\n\nHuman: Joke?", "Knock knock.", "No.");
    /* Without the leading blank lines, and only one space dropped after "Assistant:". */
    expect_pair(PAIRS_FORMAT_HH,
                "{\"chosen\": \"Human: q\\n\\nAssistant:  two spaces\", \"rejected\": \"Human: "
                "q\\n\\nAssistant:none\"}",
                "q", " two spaces", "none");
}

static void test_hh_bad_rows_say_why(void **state)
{
    (void)state;
    expect_bad(PAIRS_FORMAT_HH, "{\"chosen\": \"\\n\\nHuman: q\\n\\nAssistant: a\"}", PAIRS_MISSING,
               "field \"rejected\": missing");
    expect_bad(PAIRS_FORMAT_HH,
               "{\"chosen\": \"\\n\\nHuman: q\\n\\nAssistant: a\", \"rejected\": null}",
               PAIRS_MISSING, "field \"rejected\": missing");
    expect_bad(PAIRS_FORMAT_HH,
               "{\"chosen\": \"\\n\\nHuman: q\\n\\nAssistant: a\", \"rejected\": 3}",
               PAIRS_WRONG_TYPE, "field \"rejected\": expected a string, got a number");
    expect_bad(PAIRS_FORMAT_HH,
               "{\"chosen\": \"\\n\\nHuman: q\\n\\nAssistant: a\", \"rejected\": \"\\n\\nHuman: "
               "q\\n\\nAssistant: a\"}",
               PAIRS_IDENTICAL, "chosen and rejected are the same response");
    expect_bad(PAIRS_FORMAT_HH,
               "{\"chosen\": \"\\n\\nHuman: q1\\n\\nAssistant: a\", \"rejected\": \"\\n\\nHuman: "
               "q2\\n\\nAssistant: b\"}",
               PAIRS_PROMPT_DIFFERS, "different prompts (they part at byte 2");
    expect_bad(PAIRS_FORMAT_HH,
               "{\"chosen\": \"\\n\\nHuman: q\", \"rejected\": \"\\n\\nHuman: q\"}",
               PAIRS_BAD_TRANSCRIPT, "field \"chosen\": no \"\\n\\nAssistant:\" turn");
    expect_bad(PAIRS_FORMAT_HH,
               "{\"chosen\": \"\\n\\nHuman: q\\n\\nAssistant: a\\n\\nHuman: more?\", "
               "\"rejected\": \"\\n\\nHuman: q\\n\\nAssistant: b\"}",
               PAIRS_BAD_TRANSCRIPT, "ends with a Human turn");
    expect_bad(PAIRS_FORMAT_HH,
               "{\"chosen\": \"q\\n\\nAssistant: a\", \"rejected\": \"q\\n\\nAssistant: b\"}",
               PAIRS_BAD_TRANSCRIPT, "does not start with a \"\\n\\nHuman:\" turn");
    expect_bad(PAIRS_FORMAT_HH,
               "{\"chosen\": \"\\n\\nHuman: q\\n\\nAssistant: a\", \"rejected\": \"\\n\\nHuman: "
               "q\\n\\nAssistant:\"}",
               PAIRS_EMPTY, "field \"rejected\": the response is empty");
    expect_bad(PAIRS_FORMAT_HH,
               "{\"chosen\": \"\\n\\nHuman: \\n\\nAssistant: a\", \"rejected\": \"\\n\\nHuman: "
               "\\n\\nAssistant: b\"}",
               PAIRS_EMPTY, "the prompt is empty");
    expect_bad(PAIRS_FORMAT_HH, "[1, 2]", PAIRS_BAD_JSON, "expected a JSON object, got a list");
}

static void test_trl_strings_and_message_lists(void **state)
{
    (void)state;
    expect_pair(PAIRS_FORMAT_TRL,
                "{\"prompt\": \"Capital of France?\", \"chosen\": \" Paris\", "
                "\"rejected\": \"Lyon\"}",
                "Capital of France?", " Paris", "Lyon");
    /* A prompt that is an HH transcript is unwrapped; the responses lose their one space. */
    expect_pair(PAIRS_FORMAT_TRL,
                "{\"prompt\": \"\\n\\nHuman: Sky?\\n\\nAssistant:\", \"chosen\": \" Blue.\", "
                "\"rejected\": \" Green.\"}",
                "Sky?", "Blue.", "Green.");
    expect_pair(PAIRS_FORMAT_TRL,
                "{\"prompt\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": "
                "\"assistant\", \"content\": \"Hello.\"}, {\"role\": \"user\", \"content\": "
                "\"Joke?\"}], \"chosen\": [{\"role\": \"assistant\", \"content\": \"Knock "
                "knock.\"}], \"rejected\": [{\"role\": \"assistant\", \"content\": \"No.\"}]}",
                "Hi\n\nAssistant: Hello.\n\nHuman: Joke?", "Knock knock.", "No.");
    /* Implicit prompt: the shared messages before the last. */
    expect_pair(PAIRS_FORMAT_TRL,
                "{\"chosen\": [{\"role\": \"user\", \"content\": \"2+3?\"}, {\"role\": "
                "\"assistant\", \"content\": \"5\"}], \"rejected\": [{\"role\": \"user\", "
                "\"content\": \"2+3?\"}, {\"role\": \"assistant\", \"content\": \"6\"}]}",
                "2+3?", "5", "6");

    expect_bad(PAIRS_FORMAT_TRL,
               "{\"prompt\": [{\"role\": \"system\", \"content\": \"Be brief\"}, {\"role\": "
               "\"user\", \"content\": \"Hi\"}], \"chosen\": [{\"role\": \"assistant\", "
               "\"content\": \"a\"}], \"rejected\": [{\"role\": \"assistant\", \"content\": "
               "\"b\"}]}",
               PAIRS_BAD_VALUE, "field \"prompt[1].role\": \"system\" is not supported");
    expect_bad(PAIRS_FORMAT_TRL,
               "{\"prompt\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"chosen\": "
               "[{\"role\": \"user\", \"content\": \"a\"}], \"rejected\": [{\"role\": "
               "\"assistant\", \"content\": \"b\"}]}",
               PAIRS_BAD_TRANSCRIPT, "the last turn (chosen 1) is the Human's");
    expect_bad(PAIRS_FORMAT_TRL,
               "{\"prompt\": \"q\", \"chosen\": [{\"role\": \"assistant\", \"content\": \"a\"}], "
               "\"rejected\": \"b\"}",
               PAIRS_WRONG_TYPE,
               "field \"chosen\": expected a string (as \"prompt\" is), got a list");
    expect_bad(PAIRS_FORMAT_TRL,
               "{\"prompt\": [{\"role\": \"user\"}], \"chosen\": [{\"role\": \"assistant\", "
               "\"content\": \"a\"}], \"rejected\": [{\"role\": \"assistant\", \"content\": "
               "\"b\"}]}",
               PAIRS_MISSING, "field \"prompt[1].content\": missing");
    expect_bad(PAIRS_FORMAT_TRL,
               "{\"chosen\": [{\"role\": \"user\", \"content\": \"Q1\"}, {\"role\": "
               "\"assistant\", \"content\": \"a\"}], \"rejected\": [{\"role\": \"user\", "
               "\"content\": \"Q2\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}",
               PAIRS_PROMPT_DIFFERS, "turn 1 differs: chosen 1, rejected 1");
    expect_bad(PAIRS_FORMAT_TRL, "{\"chosen\": \"a\", \"rejected\": \"b\"}", PAIRS_MISSING,
               "field \"prompt\": missing");
    expect_bad(PAIRS_FORMAT_TRL, "{\"prompt\": \"q\", \"chosen\": [1], \"rejected\": [2]}",
               PAIRS_WRONG_TYPE, "expected a string (as \"prompt\" is)");
    expect_bad(PAIRS_FORMAT_TRL,
               "{\"prompt\": [\"q\"], \"chosen\": [{\"role\": \"assistant\", \"content\": "
               "\"a\"}], \"rejected\": [{\"role\": \"assistant\", \"content\": \"b\"}]}",
               PAIRS_WRONG_TYPE, "field \"prompt\": message 1: expected an object");
}

static void test_part2_turns_and_strength(void **state)
{
    (void)state;
    struct pairs_item it;
    char msg[600];
    /* Mean and std given: taken as they are; the lists become the scores. */
    assert_int_equal(parse(PAIRS_FORMAT_PART2,
                           "{\"chosen\": [\"Hi\", \"Hello\", \"Joke?\", \"Knock knock\"], "
                           "\"rejected\": [\"Hi\", \"Hello\", \"Joke?\", \"No\"], \"mean "
                           "preference difference\": 1.5, \"std preference difference\": 0.5, "
                           "\"chosen_score_list\": [1, 2.5], \"rejected_score_list\": [0, 1]}",
                           &it, msg, sizeof msg),
                     PAIRS_OK);
    assert_string_equal(it.prompt, "Hi\n\nAssistant: Hello\n\nHuman: Joke?");
    assert_string_equal(it.chosen, "Knock knock");
    assert_string_equal(it.rejected, "No");
    assert_true(it.has_strength);
    assert_true(it.mean == 1.5 && it.std == 0.5);
    assert_int_equal(it.n_scores, 2);
    assert_true(it.chosen_scores[1] == 2.5 && it.rejected_scores[0] == 0);
    pairs_item_clear(&it);
    /* Lists alone: the strength is computed (mean and population std of the differences). */
    assert_int_equal(parse(PAIRS_FORMAT_PART2,
                           "{\"chosen\": [\"q\", \"a\"], \"rejected\": [\"q\", \"b\"], "
                           "\"chosen_score_list\": [1, 3], \"rejected_score_list\": [0, 0]}",
                           &it, msg, sizeof msg),
                     PAIRS_OK);
    assert_true(it.has_strength);
    assert_true(fabs(it.mean - 2.0) < 1e-12 && fabs(it.std - 1.0) < 1e-12);
    pairs_item_clear(&it);
    /* Neither: no strength. */
    assert_int_equal(parse(PAIRS_FORMAT_PART2,
                           "{\"chosen\": [\"q\", \"a\"], \"rejected\": [\"q\", \"b\"]}", &it, msg,
                           sizeof msg),
                     PAIRS_OK);
    assert_false(it.has_strength);
    assert_int_equal(it.n_scores, 0);
    pairs_item_clear(&it);

    expect_bad(PAIRS_FORMAT_PART2,
               "{\"chosen\": [\"q\", \"a\", \"q2\"], \"rejected\": [\"q\", "
               "\"b\", \"q2\"]}",
               PAIRS_BAD_TRANSCRIPT, "the last turn (chosen 3) is the Human's");
    expect_bad(PAIRS_FORMAT_PART2,
               "{\"chosen\": [\"q\", \"a\"], \"rejected\": [\"q\", \"b\"], \"chosen_score_list\": "
               "[1, 2], \"rejected_score_list\": [1]}",
               PAIRS_BAD_VALUE, "2 and 1 scores");
    expect_bad(PAIRS_FORMAT_PART2,
               "{\"chosen\": [\"q\", \"a\"], \"rejected\": [\"q\", \"b\"], \"std preference "
               "difference\": 0.3}",
               PAIRS_MISSING, "field \"mean preference difference\": missing");
    expect_bad(PAIRS_FORMAT_PART2,
               "{\"chosen\": [\"q\", \"a\"], \"rejected\": [\"q\", \"b\"], \"mean preference "
               "difference\": 1, \"std preference difference\": -1}",
               PAIRS_BAD_VALUE, "is negative");
    expect_bad(PAIRS_FORMAT_PART2, "{\"chosen\": [\"q\", 5], \"rejected\": [\"q\", \"b\"]}",
               PAIRS_WRONG_TYPE, "field \"chosen\": turn 2: expected a string, got a number");
    expect_bad(PAIRS_FORMAT_PART2, "{\"chosen\": [\"q\", \"a\"], \"rejected\": [\"x\", \"b\"]}",
               PAIRS_PROMPT_DIFFERS, "turn 1 differs");
    expect_bad(PAIRS_FORMAT_PART2, "{\"chosen\": \"q\", \"rejected\": [\"x\", \"b\"]}",
               PAIRS_WRONG_TYPE, "field \"chosen\": expected a list of turns");
    expect_bad(PAIRS_FORMAT_PART2,
               "{\"chosen\": [\"q\", \"a\"], \"rejected\": [\"q\", \"b\"], \"chosen_score_list\": "
               "[1, \"x\"], \"rejected_score_list\": [1, 2]}",
               PAIRS_WRONG_TYPE, "score 2: expected a number");
}

static void test_tldr_choice_picks_the_chosen_summary(void **state)
{
    (void)state;
    expect_pair(PAIRS_FORMAT_TLDR,
                "{\"info\": {\"subreddit\": \"cats\", \"title\": \"Cat\", \"post\": \"She "
                "ignores me.\"}, \"summaries\": [{\"text\": \" ignored\"}, {\"text\": \" cat "
                "ignores me\"}], \"choice\": 1}",
                "SUBREDDIT: r/cats\n\nTITLE: Cat\n\nPOST: She ignores me.\n\nTL;DR:",
                "cat ignores me", "ignored");
    expect_pair(PAIRS_FORMAT_TLDR,
                "{\"info\": {\"title\": \"Storm\", \"article\": \"A storm hit.\", \"post\": "
                "null}, \"summaries\": [{\"text\": \" A storm hit.\"}, {\"text\": \" "
                "Weather.\"}], \"choice\": 0}",
                "TITLE: Storm\n\nARTICLE: A storm hit.\n\nTL;DR:", "A storm hit.", "Weather.");
    expect_bad(PAIRS_FORMAT_TLDR,
               "{\"info\": {\"post\": \"p\"}, \"summaries\": [{\"text\": \"a\"}, {\"text\": "
               "\"b\"}], \"choice\": 2}",
               PAIRS_BAD_VALUE, "field \"choice\": expected 0 or 1, got 2");
    expect_bad(PAIRS_FORMAT_TLDR,
               "{\"info\": {\"post\": \"p\"}, \"summaries\": [{\"text\": \"a\"}, {\"text\": "
               "\"b\"}], \"choice\": \"0\"}",
               PAIRS_WRONG_TYPE, "field \"choice\": expected 0 or 1, got a string");
    expect_bad(PAIRS_FORMAT_TLDR,
               "{\"info\": {\"post\": \"p\"}, \"summaries\": [{\"text\": \"a\"}], \"choice\": 0}",
               PAIRS_BAD_VALUE, "1 summaries, not 2");
    expect_bad(PAIRS_FORMAT_TLDR,
               "{\"info\": {\"title\": \"t\"}, \"summaries\": [{\"text\": \"a\"}, {\"text\": "
               "\"b\"}], \"choice\": 0}",
               PAIRS_MISSING, "field \"info.post\": missing");
    expect_bad(PAIRS_FORMAT_TLDR,
               "{\"info\": {\"post\": \"p\"}, \"summaries\": [{\"text\": \"a\"}, {\"txt\": "
               "\"b\"}], \"choice\": 0}",
               PAIRS_MISSING, "field \"summaries[1].text\": missing");
    expect_bad(PAIRS_FORMAT_TLDR, "{\"summaries\": [], \"choice\": 0}", PAIRS_MISSING,
               "field \"info\": missing");
}

static void test_size_limits(void **state)
{
    (void)state;
    struct pairs_limits lim = {.max_response_bytes = 5, .max_prompt_bytes = 8};
    json_t *row =
        json_loads("{\"prompt\": \"q\", \"chosen\": \"123456\", \"rejected\": \"b\"}", 0, NULL);
    struct pairs_item it;
    char msg[600];
    assert_int_equal(pairs_parse(PAIRS_FORMAT_TRL, row, &lim, &it, msg, sizeof msg), PAIRS_TOO_BIG);
    assert_non_null(strstr(msg, "field \"chosen\": the response is 6 bytes, over the limit of 5 "
                                "(--max-response-bytes)"));
    json_decref(row);
    row =
        json_loads("{\"prompt\": \"123456789\", \"chosen\": \"a\", \"rejected\": \"b\"}", 0, NULL);
    assert_int_equal(pairs_parse(PAIRS_FORMAT_TRL, row, &lim, &it, msg, sizeof msg), PAIRS_TOO_BIG);
    assert_non_null(strstr(msg, "the prompt is 9 bytes, over the limit of 8"));
    json_decref(row);
    row = json_loads("{\"prompt\": \"q\", \"chosen\": \"12345\", \"rejected\": \"b\"}", 0, NULL);
    assert_int_equal(pairs_parse(PAIRS_FORMAT_TRL, row, &lim, &it, msg, sizeof msg), PAIRS_OK);
    pairs_item_clear(&it);
    json_decref(row);
}

/* ---- files -------------------------------------------------------------------------------- */

struct tally {
    size_t good, bad[PAIRS_N_REASONS];
    char wheres[64][200]; /* "where: msg" of each bad row */
    size_t nwheres;
    struct pairs_item items[32];
};

static int tally_row(void *ctx, const char *where, enum pairs_reason r, const char *msg,
                     struct pairs_item *item)
{
    struct tally *t = ctx;
    if (r == PAIRS_OK) {
        assert_true(t->good < 32);
        t->items[t->good++] = *item;
        memset(item, 0, sizeof *item); /* taken */
        return 0;
    }
    t->bad[r]++;
    if (t->nwheres < 64)
        snprintf(t->wheres[t->nwheres++], sizeof t->wheres[0], "%s: %s", where, msg);
    return 0;
}

static void tally_free(struct tally *t)
{
    for (size_t i = 0; i < t->good; i++)
        pairs_item_clear(&t->items[i]);
    free(t);
}

static bool has_where(const struct tally *t, const char *needle)
{
    for (size_t i = 0; i < t->nwheres; i++)
        if (strstr(t->wheres[i], needle))
            return true;
    return false;
}

static void expect_where(const struct tally *t, const char *needle)
{
    if (has_where(t, needle))
        return;
    for (size_t i = 0; i < t->nwheres; i++)
        fprintf(stderr, "  %s\n", t->wheres[i]);
    fail_msg("no bad row with \"%s\"", needle);
}

/* Reads a fixture; returns its tally (free with tally_free). */
static struct tally *read_fixture(const char *name, enum pairs_format *fmt)
{
    char path[600], err[1400];
    snprintf(path, sizeof path, "%s/pairs/%s", OAIF_FIXTURES, name);
    struct tally *t = calloc(1, sizeof *t);
    assert_non_null(t);
    int rc = pairs_read(path, fmt, &LIM, tally_row, t, err, sizeof err);
    if (rc)
        fail_msg("%s: %s", name, err);
    return t;
}

static size_t total_bad(const struct tally *t)
{
    size_t n = 0;
    for (int r = 0; r < PAIRS_N_REASONS; r++)
        n += t->bad[r];
    return n;
}

static void test_good_fixtures_read_whole(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum pairs_format fmt;
        size_t n;
    } files[] = {{"hh.jsonl", PAIRS_FORMAT_HH, 3},
                 {"trl.jsonl", PAIRS_FORMAT_TRL, 4},
                 {"trl_implicit.jsonl", PAIRS_FORMAT_TRL, 2},
                 {"part2.json", PAIRS_FORMAT_PART2, 3},
                 {"tldr.jsonl", PAIRS_FORMAT_TLDR, 3}};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        enum pairs_format f = PAIRS_FORMAT_AUTO;
        struct tally *t = read_fixture(files[i].name, &f);
        if (f != files[i].fmt || t->good != files[i].n || total_bad(t))
            fail_msg("%s: format %s, %zu good, %zu bad (%s)", files[i].name, pairs_format_name(f),
                     t->good, total_bad(t), t->nwheres ? t->wheres[0] : "");
        tally_free(t);
    }
    enum pairs_format f = PAIRS_FORMAT_AUTO;
    struct tally *t = read_fixture("part2.json", &f);
    assert_string_equal(t->items[1].prompt,
                        "Hi\n\nAssistant: Hello! How can I help?\n\nHuman: Tell me a joke");
    assert_true(t->items[1].has_strength && t->items[1].mean == -0.25);
    assert_int_equal(t->items[0].n_scores, 3);
    assert_false(t->items[2].has_strength);
    tally_free(t);
    f = PAIRS_FORMAT_AUTO;
    t = read_fixture("tldr.jsonl", &f);
    assert_string_equal(t->items[1].chosen, "my rice always burns at the bottom");
    tally_free(t);
    f = PAIRS_FORMAT_AUTO;
    t = read_fixture("hh.jsonl", &f);
    assert_string_equal(t->items[2].chosen, "Caf\xc3\xa9 \xe2\x98\x95");
    tally_free(t);
}

static void test_bad_fixtures_name_line_and_reason(void **state)
{
    (void)state;
    enum pairs_format f = PAIRS_FORMAT_AUTO;
    struct tally *t = read_fixture("hh_bad.jsonl", &f);
    assert_int_equal(f, PAIRS_FORMAT_HH);
    assert_int_equal(t->good, 2);
    assert_int_equal(total_bad(t), 8);
    assert_int_equal(t->bad[PAIRS_MISSING], 1);
    assert_int_equal(t->bad[PAIRS_WRONG_TYPE], 1);
    assert_int_equal(t->bad[PAIRS_IDENTICAL], 1);
    assert_int_equal(t->bad[PAIRS_PROMPT_DIFFERS], 1);
    assert_int_equal(t->bad[PAIRS_BAD_TRANSCRIPT], 2);
    assert_int_equal(t->bad[PAIRS_BAD_JSON], 1);
    assert_int_equal(t->bad[PAIRS_EMPTY], 1);
    expect_where(t, "hh_bad.jsonl:2: field \"rejected\": missing");
    expect_where(t, "hh_bad.jsonl:3: field \"rejected\": expected a string, got a number");
    expect_where(t, "hh_bad.jsonl:4: chosen and rejected are the same response");
    expect_where(t, "hh_bad.jsonl:5: chosen and rejected have different prompts");
    expect_where(t, "hh_bad.jsonl:7: not valid JSON");
    expect_where(t, "hh_bad.jsonl:10: field \"rejected\": the response is empty");
    tally_free(t);

    f = PAIRS_FORMAT_AUTO;
    t = read_fixture("trl_bad.jsonl", &f);
    assert_int_equal(f, PAIRS_FORMAT_TRL);
    assert_int_equal(t->good, 1);
    assert_int_equal(total_bad(t), 6);
    assert_int_equal(t->bad[PAIRS_BAD_VALUE], 1);
    assert_int_equal(t->bad[PAIRS_BAD_TRANSCRIPT], 1);
    assert_int_equal(t->bad[PAIRS_WRONG_TYPE], 1);
    assert_int_equal(t->bad[PAIRS_MISSING], 1);
    assert_int_equal(t->bad[PAIRS_PROMPT_DIFFERS], 1);
    assert_int_equal(t->bad[PAIRS_EMPTY], 1);
    expect_where(t, "trl_bad.jsonl:2: field \"prompt[1].role\": \"system\" is not supported");
    expect_where(t, "trl_bad.jsonl:7: the prompt is empty");
    tally_free(t);

    /* A JSON list: each item named with the line it starts on. */
    f = PAIRS_FORMAT_AUTO;
    t = read_fixture("part2_bad.json", &f);
    assert_int_equal(f, PAIRS_FORMAT_PART2);
    assert_int_equal(t->good, 1);
    assert_int_equal(total_bad(t), 6);
    assert_int_equal(t->bad[PAIRS_BAD_VALUE], 2);
    assert_int_equal(t->bad[PAIRS_BAD_TRANSCRIPT], 1);
    assert_int_equal(t->bad[PAIRS_MISSING], 1);
    assert_int_equal(t->bad[PAIRS_WRONG_TYPE], 1);
    assert_int_equal(t->bad[PAIRS_PROMPT_DIFFERS], 1);
    expect_where(t, "part2_bad.json:3: item 2: field \"chosen\": the last turn (chosen 3)");
    expect_where(t,
                 "part2_bad.json:8: item 7: field \"std preference difference\": -1 is negative");
    tally_free(t);

    f = PAIRS_FORMAT_AUTO;
    t = read_fixture("tldr_bad.jsonl", &f);
    assert_int_equal(f, PAIRS_FORMAT_TLDR);
    assert_int_equal(t->good, 1);
    assert_int_equal(t->bad[PAIRS_BAD_VALUE], 2);
    assert_int_equal(t->bad[PAIRS_MISSING], 1);
    assert_int_equal(t->bad[PAIRS_IDENTICAL], 1);
    tally_free(t);

    /* A named format reads every row as that: an HH file is no TL;DR. */
    f = PAIRS_FORMAT_TLDR;
    t = read_fixture("hh.jsonl", &f);
    assert_int_equal(t->good, 0);
    assert_int_equal(t->bad[PAIRS_MISSING], 3);
    expect_where(t, "hh.jsonl:1: field \"info\": missing");
    tally_free(t);
}

/* Writes `text` to a fresh temporary file; the path into path (64 bytes). */
static void temp_file(char *path, const char *text, size_t len)
{
    snprintf(path, 64, "/tmp/oaif-pairs-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static struct tally *read_text(const char *text, enum pairs_format *fmt, int *rc, char *err,
                               size_t errlen)
{
    char path[64];
    temp_file(path, text, strlen(text));
    struct tally *t = calloc(1, sizeof *t);
    assert_non_null(t);
    *rc = pairs_read(path, fmt, &LIM, tally_row, t, err, errlen);
    unlink(path);
    return t;
}

static void test_reader_edge_cases(void **state)
{
    (void)state;
    char err[1400];
    int rc;
    /* Invalid UTF-8 on a line of its own: that line alone is bad. */
    enum pairs_format f = PAIRS_FORMAT_AUTO;
    struct tally *t =
        read_text("{\"prompt\": \"q\", \"chosen\": \"a\", \"rejected\": \"b\"}\n"
                  "{\"prompt\": \"q\", \"chosen\": \"caf\xe9\", \"rejected\": \"b\"}\n"
                  "\n"
                  "{\"prompt\": \"q2\", \"chosen\": \"a\", \"rejected\": \"b\"}\n",
                  &f, &rc, err, sizeof err);
    assert_int_equal(rc, ERR_OK);
    assert_int_equal(t->good, 2);
    assert_int_equal(t->bad[PAIRS_BAD_UTF8], 1);
    expect_where(t, ":2: invalid UTF-8 (byte 0xe9 at column 31)");
    tally_free(t);

    /* A JSON list on one line, with a broken item among good ones. */
    f = PAIRS_FORMAT_AUTO;
    t = read_text(
        "[{\"chosen\": [\"q\", \"a\"], \"rejected\": [\"q\", \"b\"]}, {\"chosen\": [\"q\", "
        "\"a\"] \"rejected\": 1}, {\"chosen\": [\"q\", \"c\"], \"rejected\": [\"q\", "
        "\"d\"]}]",
        &f, &rc, err, sizeof err);
    assert_int_equal(rc, ERR_OK);
    assert_int_equal(f, PAIRS_FORMAT_PART2);
    assert_int_equal(t->good, 2);
    assert_int_equal(t->bad[PAIRS_BAD_JSON], 1);
    expect_where(t, ":1: item 2: not valid JSON");
    tally_free(t);

    /* A list that is never closed, and one with text after it. */
    f = PAIRS_FORMAT_AUTO;
    t = read_text("[\n{\"chosen\": [\"q\", \"a\"], \"rejected\": [\"q\", \"b\"]}\n", &f, &rc, err,
                  sizeof err);
    assert_int_equal(rc, ERR_OK);
    assert_int_equal(t->good, 1);
    expect_where(t, "not closed with ']'");
    tally_free(t);
    f = PAIRS_FORMAT_AUTO;
    t = read_text("[{\"chosen\": [\"q\", \"a\"], \"rejected\": [\"q\", \"b\"]}] x", &f, &rc, err,
                  sizeof err);
    assert_int_equal(t->good, 1);
    expect_where(t, "text after the list");
    tally_free(t);

    /* The first row fits no format: the file is refused as a whole, unless a format is named. */
    f = PAIRS_FORMAT_AUTO;
    t = read_text("{\"question\": \"q\"}\n", &f, &rc, err, sizeof err);
    assert_int_equal(rc, ERR_INVAL);
    assert_non_null(strstr(err, ":1: cannot tell the format"));
    assert_non_null(strstr(err, "name it with --format"));
    tally_free(t);
    f = PAIRS_FORMAT_AUTO;
    t = read_text("not json\n", &f, &rc, err, sizeof err);
    assert_int_equal(rc, ERR_INVAL);
    assert_non_null(strstr(err, ":1: cannot tell the format: not valid JSON"));
    tally_free(t);
    f = PAIRS_FORMAT_HH;
    t = read_text("not json\n", &f, &rc, err, sizeof err);
    assert_int_equal(rc, ERR_OK);
    assert_int_equal(t->bad[PAIRS_BAD_JSON], 1);
    tally_free(t);

    /* Nothing in it; a missing file. */
    f = PAIRS_FORMAT_AUTO;
    t = read_text("\n  \n", &f, &rc, err, sizeof err);
    assert_int_equal(rc, ERR_INVAL);
    assert_non_null(strstr(err, "no rows"));
    tally_free(t);
    t = calloc(1, sizeof *t);
    assert_int_equal(pairs_read("/nonexistent/x.jsonl", &f, &LIM, tally_row, t, err, sizeof err),
                     ERR_NOTFOUND);
    assert_non_null(strstr(err, "/nonexistent/x.jsonl: No such file"));
    tally_free(t);
}

/* ---- records ------------------------------------------------------------------------------ */

static void test_pack_makes_pair_label_strength_scores(void **state)
{
    (void)state;
    enum pairs_format f = PAIRS_FORMAT_AUTO;
    struct tally *t = read_fixture("part2.json", &f);
    struct pairs_record recs[PAIRS_MAX_RECORDS];
    size_t n;
    assert_int_equal(pairs_pack(&t->items[0], "fruits", f, recs, &n), ERR_OK);
    assert_int_equal(n, 4);
    char id[PAIRS_ID_LEN + 1];
    pairs_id(id, "fruits", &t->items[0]);
    assert_int_equal(strlen(id), PAIRS_ID_LEN);
    assert_memory_equal(id, "imp-", 4);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(recs[i].id, id);

    assert_int_equal(recs[0].kind, OAIF__V1__RECORD_KIND__RECORD_KIND_PAIR);
    Oaif__V1__Pair *p = oaif__v1__pair__unpack(NULL, recs[0].len, recs[0].data);
    assert_non_null(p);
    assert_string_equal(p->id, id);
    assert_string_equal(p->prompt, "What are some good fruits?");
    assert_int_equal(p->n_responses, 2);
    assert_string_equal(p->responses[0]->text, "Apples and pears.");
    assert_string_equal(p->responses[1]->text, "Rocks.");
    assert_string_equal(p->run, "fruits");
    assert_int_equal(p->created_ms, 0);
    oaif__v1__pair__free_unpacked(p, NULL);

    assert_int_equal(recs[1].kind, OAIF__V1__RECORD_KIND__RECORD_KIND_LABEL);
    Oaif__V1__Label *l = oaif__v1__label__unpack(NULL, recs[1].len, recs[1].data);
    assert_non_null(l);
    assert_string_equal(l->pair_id, id);
    assert_int_equal(l->winner, OAIF__V1__WINNER__WINNER_FIRST);
    assert_true(l->prob_first == 1.0);
    assert_string_equal(l->judge, "import:part2");
    oaif__v1__label__free_unpacked(l, NULL);

    assert_int_equal(recs[2].kind, OAIF__V1__RECORD_KIND__RECORD_KIND_STRENGTH);
    Oaif__V1__Strength *s = oaif__v1__strength__unpack(NULL, recs[2].len, recs[2].data);
    assert_non_null(s);
    assert_string_equal(s->pair_id, id);
    assert_true(s->mean == 1.5 && s->std == 0.5);
    assert_int_equal(s->members, 3);
    oaif__v1__strength__free_unpacked(s, NULL);

    assert_int_equal(recs[3].kind, OAIF__V1__RECORD_KIND__RECORD_KIND_SCORES);
    Oaif__V1__Scores *sc = oaif__v1__scores__unpack(NULL, recs[3].len, recs[3].data);
    assert_non_null(sc);
    assert_int_equal(sc->n_first, 3);
    assert_int_equal(sc->n_second, 3);
    assert_int_equal(sc->n_members, 3);
    assert_true(sc->first[2] == 3.0 && sc->second[2] == 1.5);
    assert_string_equal(sc->members[2], "import:part2/m2");
    oaif__v1__scores__free_unpacked(sc, NULL);

    /* The same row packs to the same bytes; another dataset is another pair. */
    struct pairs_record again[PAIRS_MAX_RECORDS];
    size_t n2;
    assert_int_equal(pairs_pack(&t->items[0], "fruits", f, again, &n2), ERR_OK);
    assert_int_equal(n2, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(again[i].len, recs[i].len);
        assert_memory_equal(again[i].data, recs[i].data, recs[i].len);
        pairs_record_clear(&again[i]);
    }
    char other[PAIRS_ID_LEN + 1];
    pairs_id(other, "fruits-2", &t->items[0]);
    assert_string_not_equal(other, id);

    /* Strength without lists: no Scores; neither: Pair and Label only. */
    for (size_t i = 0; i < n; i++)
        pairs_record_clear(&recs[i]);
    assert_int_equal(pairs_pack(&t->items[1], "fruits", f, recs, &n), ERR_OK);
    assert_int_equal(n, 3);
    assert_int_equal(recs[2].kind, OAIF__V1__RECORD_KIND__RECORD_KIND_STRENGTH);
    for (size_t i = 0; i < n; i++)
        pairs_record_clear(&recs[i]);
    assert_int_equal(pairs_pack(&t->items[2], "fruits", f, recs, &n), ERR_OK);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        pairs_record_clear(&recs[i]);
    tally_free(t);
}

static void test_dataset_names(void **state)
{
    (void)state;
    char d[160];
    pairs_dataset_from_path("/data/hh-rlhf/helpful-base.train.jsonl", d, sizeof d);
    assert_string_equal(d, "helpful-base.train");
    pairs_dataset_from_path("comparisons batch 3.json", d, sizeof d);
    assert_string_equal(d, "comparisons-batch-3");
    pairs_dataset_from_path("-", d, sizeof d);
    assert_string_equal(d, "stdin");
    assert_true(pairs_dataset_valid("hh_helpful-1.0"));
    assert_false(pairs_dataset_valid(""));
    assert_false(pairs_dataset_valid("a/b"));
    assert_false(pairs_dataset_valid("caf\xc3\xa9"));
}

/* ---- writing ------------------------------------------------------------------------------ */

/* The Pair record of item `it`, unpacked (free with oaif__v1__pair__free_unpacked). */
static Oaif__V1__Pair *pair_of(const struct pairs_item *it)
{
    struct pairs_record recs[PAIRS_MAX_RECORDS];
    size_t n;
    assert_int_equal(pairs_pack(it, "d", PAIRS_FORMAT_TRL, recs, &n), ERR_OK);
    Oaif__V1__Pair *p = oaif__v1__pair__unpack(NULL, recs[0].len, recs[0].data);
    for (size_t i = 0; i < n; i++)
        pairs_record_clear(&recs[i]);
    assert_non_null(p);
    return p;
}

/* Writes p as fmt with winner w and reads the line back: (prompt, chosen, rejected). */
static void write_read(enum pairs_format fmt, const Oaif__V1__Pair *p, Oaif__V1__Winner w,
                       struct pairs_item *back)
{
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(pairs_write(&b, fmt, p, w), PAIRS_WRITTEN);
    assert_true(b.len > 0 && b.data[b.len - 1] == '\n');
    assert_null(memchr(b.data, '\n', b.len - 1)); /* one line */
    json_t *row = json_loadb(b.data, b.len, 0, NULL);
    assert_non_null(row);
    enum pairs_format detected = pairs_detect(row);
    if (detected != fmt)
        fail_msg("a %s line detected as %s: %s", pairs_format_name(fmt),
                 pairs_format_name(detected), b.data);
    char msg[600];
    assert_int_equal(pairs_parse(fmt, row, &LIM, back, msg, sizeof msg), PAIRS_OK);
    json_decref(row);
    buf_free(&b);
}

static void test_written_lines_read_back_as_the_same_pairs(void **state)
{
    (void)state;
    static const char *const files[] = {"hh.jsonl", "trl.jsonl", "trl_implicit.jsonl", "part2.json",
                                        "tldr.jsonl"};
    static const enum pairs_format out[] = {PAIRS_FORMAT_TRL, PAIRS_FORMAT_HH};
    size_t checked = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        enum pairs_format f = PAIRS_FORMAT_AUTO;
        struct tally *t = read_fixture(files[i], &f);
        for (size_t k = 0; k < t->good; k++) {
            Oaif__V1__Pair *p = pair_of(&t->items[k]);
            for (size_t o = 0; o < 2; o++) {
                struct pairs_item back;
                write_read(out[o], p, OAIF__V1__WINNER__WINNER_FIRST, &back);
                assert_string_equal(back.prompt, t->items[k].prompt);
                assert_string_equal(back.chosen, t->items[k].chosen);
                assert_string_equal(back.rejected, t->items[k].rejected);
                pairs_item_clear(&back);
                /* The second response won: it is written as chosen. */
                write_read(out[o], p, OAIF__V1__WINNER__WINNER_SECOND, &back);
                assert_string_equal(back.chosen, t->items[k].rejected);
                assert_string_equal(back.rejected, t->items[k].chosen);
                pairs_item_clear(&back);
                checked++;
            }
            oaif__v1__pair__free_unpacked(p, NULL);
        }
        tally_free(t);
    }
    assert_int_equal(checked, 2 * 15);
}

static void test_write_skips_what_it_cannot_write(void **state)
{
    (void)state;
    Oaif__V1__Response r0 = OAIF__V1__RESPONSE__INIT, r1 = OAIF__V1__RESPONSE__INIT;
    r0.text = "good";
    r1.text = "bad";
    Oaif__V1__Response *rs[2] = {&r0, &r1};
    Oaif__V1__Pair p = OAIF__V1__PAIR__INIT;
    p.id = "x";
    p.prompt = "q";
    p.n_responses = 2;
    p.responses = rs;
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(pairs_write(&b, PAIRS_FORMAT_TRL, &p, OAIF__V1__WINNER__WINNER_TIE),
                     PAIRS_SKIP_TIE);
    assert_int_equal(pairs_write(&b, PAIRS_FORMAT_TRL, &p, OAIF__V1__WINNER__WINNER_UNSPECIFIED),
                     PAIRS_SKIP_UNLABELED);
    p.n_responses = 1;
    assert_int_equal(pairs_write(&b, PAIRS_FORMAT_HH, &p, OAIF__V1__WINNER__WINNER_FIRST),
                     PAIRS_SKIP_SHAPE);
    p.n_responses = 2;
    /* A response holding an Assistant turn would split elsewhere when read back as HH. */
    r0.text = "a\n\nAssistant: b";
    assert_int_equal(pairs_write(&b, PAIRS_FORMAT_HH, &p, OAIF__V1__WINNER__WINNER_FIRST),
                     PAIRS_SKIP_UNREADABLE);
    assert_int_equal(pairs_write(&b, PAIRS_FORMAT_TRL, &p, OAIF__V1__WINNER__WINNER_FIRST),
                     PAIRS_WRITTEN);
    /* A prompt that looks like an HH transcript would be unwrapped when read back as TRL. */
    r0.text = "good";
    p.prompt = "Human: q\n\nAssistant:";
    assert_int_equal(pairs_write(&b, PAIRS_FORMAT_TRL, &p, OAIF__V1__WINNER__WINNER_FIRST),
                     PAIRS_SKIP_UNREADABLE);
    /* Identical or empty responses (a sampled pair may have them) do not make a pair. */
    p.prompt = "q";
    r1.text = "good";
    assert_int_equal(pairs_write(&b, PAIRS_FORMAT_TRL, &p, OAIF__V1__WINNER__WINNER_FIRST),
                     PAIRS_SKIP_UNREADABLE);
    assert_int_equal(b.len, strlen("{\"prompt\":\"q\",\"chosen\":\"a\\n\\nAssistant: "
                                   "b\",\"rejected\":\"bad\"}\n"));
    assert_string_equal(b.data, "{\"prompt\":\"q\",\"chosen\":\"a\\n\\nAssistant: "
                                "b\",\"rejected\":\"bad\"}\n");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect_tells_each_format),
        cmocka_unit_test(test_hh_splits_context_and_final_answers),
        cmocka_unit_test(test_hh_bad_rows_say_why),
        cmocka_unit_test(test_trl_strings_and_message_lists),
        cmocka_unit_test(test_part2_turns_and_strength),
        cmocka_unit_test(test_tldr_choice_picks_the_chosen_summary),
        cmocka_unit_test(test_size_limits),
        cmocka_unit_test(test_good_fixtures_read_whole),
        cmocka_unit_test(test_bad_fixtures_name_line_and_reason),
        cmocka_unit_test(test_reader_edge_cases),
        cmocka_unit_test(test_pack_makes_pair_label_strength_scores),
        cmocka_unit_test(test_dataset_names),
        cmocka_unit_test(test_written_lines_read_back_as_the_same_pairs),
        cmocka_unit_test(test_write_skips_what_it_cannot_write),
    };
    return cmocka_run_group_tests_name("import_pairs", tests, NULL, NULL);
}
