/* template.c - see template.h. */
#include "template.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"

#define TEMPLATE_MAX_BYTES (256u << 10)

enum part { PART_NONE, PART_SYSTEM, PART_USER };

static const char *const placeholders[] = {"prompt",      "response_1",   "response_2",
                                           "instruction", "#instruction", "/instruction"};
#define NPLACEHOLDERS (sizeof placeholders / sizeof *placeholders)

void template_free(struct template **pt)
{
    if (!pt || !*pt)
        return;
    struct template *t = *pt;
    free(t->name);
    free(t->system);
    free(t->user);
    free(t);
    *pt = NULL;
}

/* Line number (1-based) of offset off in text. */
static int line_of(const char *text, size_t off)
{
    int line = 1;
    for (size_t i = 0; i < off; i++)
        if (text[i] == '\n')
            line++;
    return line;
}

/* Checks the placeholders of one part; counts the required ones. */
static int check_part(const char *name, const char *file, size_t base, const char *part,
                      int counts[NPLACEHOLDERS], char *why, size_t whylen)
{
    bool in_block = false;
    for (const char *p = strstr(part, "{{"); p; p = strstr(p, "{{")) {
        const char *end = strstr(p + 2, "}}");
        size_t off = base + (size_t)(p - part);
        if (!end) {
            snprintf(why, whylen, "%s:%d: '{{' without a closing '}}'", name, line_of(file, off));
            return ERR_INVAL;
        }
        size_t n = (size_t)(end - (p + 2));
        size_t k = 0;
        for (; k < NPLACEHOLDERS; k++)
            if (strlen(placeholders[k]) == n && strncmp(p + 2, placeholders[k], n) == 0)
                break;
        if (k == NPLACEHOLDERS) {
            snprintf(why, whylen,
                     "%s:%d: unknown placeholder {{%.*s}} (known: prompt, response_1, "
                     "response_2, instruction, #instruction, /instruction)",
                     name, line_of(file, off), (int)(n > 40 ? 40 : n), p + 2);
            return ERR_INVAL;
        }
        if (k == 4) {
            if (in_block) {
                snprintf(why, whylen, "%s:%d: nested {{#instruction}}", name, line_of(file, off));
                return ERR_INVAL;
            }
            in_block = true;
        } else if (k == 5) {
            if (!in_block) {
                snprintf(why, whylen, "%s:%d: {{/instruction}} without {{#instruction}}", name,
                         line_of(file, off));
                return ERR_INVAL;
            }
            in_block = false;
        }
        counts[k]++;
        p = end + 2;
    }
    if (in_block) {
        snprintf(why, whylen, "%s: {{#instruction}} is never closed", name);
        return ERR_INVAL;
    }
    return ERR_OK;
}

static char *dup_range(const char *s, size_t n)
{
    /* drop trailing newlines and carriage returns */
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

int template_parse(struct template **out, const char *name, const char *text, size_t len, char *why,
                   size_t whylen)
{
    *out = NULL;
    if (memchr(text, '\0', len)) {
        snprintf(why, whylen, "%s: contains a NUL byte", name);
        return ERR_INVAL;
    }
    struct template *t = calloc(1, sizeof *t);
    if (!t)
        return ERR_NOMEM;
    t->name = strdup(name);
    memcpy(t->answers[0], "1", 2);
    memcpy(t->answers[1], "2", 2);
    sha256(text, len, t->digest);
    int rc = t->name ? ERR_OK : ERR_NOMEM;
    enum part cur = PART_NONE;
    size_t part_start = 0;
    size_t sys_s = 0, sys_e = 0, usr_s = 0, usr_e = 0;
    bool have_sys = false, have_usr = false;
    size_t i = 0;
    while (!rc && i <= len) {
        const char *line = text + i;
        const char *nl = memchr(line, '\n', len - i);
        size_t ll = nl ? (size_t)(nl - line) : len - i;
        size_t next = i + ll + 1;
        bool directive = ll >= 1 && line[0] == '@';
        if (directive) {
            /* close the current part */
            if (cur == PART_SYSTEM) {
                sys_s = part_start;
                sys_e = i;
            } else if (cur == PART_USER) {
                usr_s = part_start;
                usr_e = i;
            }
            char d[256];
            size_t dl = ll < sizeof d - 1 ? ll : sizeof d - 1;
            memcpy(d, line, dl);
            d[dl] = '\0';
            if (dl && d[dl - 1] == '\r')
                d[--dl] = '\0';
            char a1[64], a2[64], extra[8];
            if (strcmp(d, "@system") == 0) {
                if (have_sys) {
                    snprintf(why, whylen, "%s:%d: a second @system", name, line_of(text, i));
                    rc = ERR_INVAL;
                }
                have_sys = true;
                cur = PART_SYSTEM;
                part_start = next;
            } else if (strcmp(d, "@user") == 0) {
                if (have_usr) {
                    snprintf(why, whylen, "%s:%d: a second @user", name, line_of(text, i));
                    rc = ERR_INVAL;
                }
                have_usr = true;
                cur = PART_USER;
                part_start = next;
            } else if (strncmp(d, "@answers", 8) == 0 && (d[8] == ' ' || d[8] == '\t')) {
                int n = sscanf(d + 8, "%63s %63s %7s", a1, a2, extra);
                if (n != 2 || strlen(a1) >= TEMPLATE_ANSWER_MAX ||
                    strlen(a2) >= TEMPLATE_ANSWER_MAX || strcmp(a1, a2) == 0) {
                    snprintf(why, whylen,
                             "%s:%d: @answers needs two different tokens of at most %d bytes", name,
                             line_of(text, i), TEMPLATE_ANSWER_MAX - 1);
                    rc = ERR_INVAL;
                } else {
                    memcpy(t->answers[0], a1, strlen(a1) + 1); /* lengths checked above */
                    memcpy(t->answers[1], a2, strlen(a2) + 1);
                }
                cur = PART_NONE;
            } else if (strncmp(d, "@verdict", 8) == 0 && (d[8] == ' ' || d[8] == '\t')) {
                char vwhy[160];
                if (wire_grammar_parse(d + 9, &t->verdict, vwhy, sizeof vwhy)) {
                    snprintf(why, whylen, "%s:%d: %s", name, line_of(text, i), vwhy);
                    rc = ERR_INVAL;
                }
                cur = PART_NONE;
            } else {
                snprintf(why, whylen,
                         "%s:%d: unknown directive '%.40s' (known: @answers, @verdict, "
                         "@system, @user)",
                         name, line_of(text, i), d);
                rc = ERR_INVAL;
            }
        } else if (cur == PART_NONE && ll && line[0] != '#' && strspn(line, " \t\r") < ll) {
            snprintf(why, whylen, "%s:%d: text outside a section (start with @system or @user)",
                     name, line_of(text, i));
            rc = ERR_INVAL;
        }
        i = next;
    }
    if (!rc) {
        if (cur == PART_SYSTEM) {
            sys_s = part_start;
            sys_e = len;
        } else if (cur == PART_USER) {
            usr_s = part_start;
            usr_e = len;
        }
        if (sys_s > len)
            sys_s = sys_e = len;
        if (usr_s > len)
            usr_s = usr_e = len;
    }
    if (!rc && !have_usr) {
        snprintf(why, whylen, "%s: no @user section", name);
        rc = ERR_INVAL;
    }
    if (!rc && have_sys && !(t->system = dup_range(text + sys_s, sys_e - sys_s)))
        rc = ERR_NOMEM;
    if (!rc && !(t->user = dup_range(text + usr_s, usr_e - usr_s)))
        rc = ERR_NOMEM;
    int counts[NPLACEHOLDERS] = {0};
    if (!rc && t->system)
        rc = check_part(name, text, sys_s, t->system, counts, why, whylen);
    int ucounts[NPLACEHOLDERS] = {0};
    if (!rc)
        rc = check_part(name, text, usr_s, t->user, ucounts, why, whylen);
    if (!rc) {
        static const char *const required[] = {"prompt", "response_1", "response_2"};
        for (int k = 0; k < 3; k++) {
            if (counts[k] + ucounts[k] == 0) {
                snprintf(why, whylen, "%s: the template never uses {{%s}}", name, required[k]);
                rc = ERR_INVAL;
                break;
            }
        }
    }
    if (rc) {
        template_free(&t);
        return rc;
    }
    *out = t;
    return ERR_OK;
}

int template_load(struct template **out, const char *path, char *why, size_t whylen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return ERR_IO;
    }
    buf_t b;
    buf_init(&b, TEMPLATE_MAX_BYTES);
    char chunk[4096];
    size_t n;
    int rc = ERR_OK;
    while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = buf_append(&b, chunk, n);
    if (!rc && ferror(f))
        rc = ERR_IO;
    fclose(f);
    if (rc == ERR_TOOBIG)
        snprintf(why, whylen, "%s: larger than %u bytes", path, TEMPLATE_MAX_BYTES);
    else if (rc == ERR_IO)
        snprintf(why, whylen, "%s: read error", path);
    else if (rc)
        snprintf(why, whylen, "%s: %s", path, err_str(rc));
    if (!rc)
        rc = template_parse(out, path, b.data ? b.data : "", b.len, why, whylen);
    buf_free(&b);
    return rc;
}

size_t template_strip_special(char *s)
{
    static const char *const literal[] = {"<s>", "</s>", "[INST]", "[/INST]"};
    size_t j = 0;
    for (size_t i = 0; s[i];) {
        if (s[i] == '<' && s[i + 1] == '|') {
            /* <|name|> with a short name and no whitespace */
            size_t k = i + 2;
            while (s[k] && k - i < 64 && s[k] != '|' && s[k] != ' ' && s[k] != '\n' && s[k] != '<')
                k++;
            if (s[k] == '|' && s[k + 1] == '>') {
                i = k + 2;
                continue;
            }
        }
        bool hit = false;
        for (size_t m = 0; m < sizeof literal / sizeof *literal; m++) {
            size_t n = strlen(literal[m]);
            if (strncmp(s + i, literal[m], n) == 0) {
                i += n;
                hit = true;
                break;
            }
        }
        if (hit)
            continue;
        s[j++] = s[i++];
    }
    s[j] = '\0';
    return j;
}

static int append_value(buf_t *b, const char *v, bool strip)
{
    if (!strip)
        return buf_append_str(b, v);
    char *tmp = strdup(v);
    if (!tmp)
        return ERR_NOMEM;
    size_t n = template_strip_special(tmp);
    int rc = buf_append(b, tmp, n);
    free(tmp);
    return rc;
}

static int render_part(const char *part, const char *const vals[4], bool strip, char **out)
{
    buf_t b;
    buf_init(&b, 0);
    bool have_instruction = vals[3] && vals[3][0];
    bool skipping = false;
    int rc = ERR_OK;
    const char *p = part;
    while (!rc && *p) {
        const char *open = strstr(p, "{{");
        if (!open) {
            if (!skipping)
                rc = buf_append_str(&b, p);
            break;
        }
        if (!skipping)
            rc = buf_append(&b, p, (size_t)(open - p));
        const char *end = strstr(open + 2, "}}"); /* validated at parse */
        size_t n = (size_t)(end - (open + 2));
        size_t k = 0;
        for (; k < NPLACEHOLDERS; k++)
            if (strlen(placeholders[k]) == n && strncmp(open + 2, placeholders[k], n) == 0)
                break;
        if (k == 4)
            skipping = !have_instruction;
        else if (k == 5)
            skipping = false;
        else if (!rc && !skipping && k < 4)
            rc = append_value(&b, vals[k] ? vals[k] : "", strip);
        p = end + 2;
    }
    if (rc) {
        buf_free(&b);
        return rc;
    }
    if (!b.data && (rc = buf_append(&b, "", 0)))
        return rc;
    *out = buf_steal(&b);
    return *out ? ERR_OK : ERR_NOMEM;
}

int template_render(const struct template *t, const char *instruction, const char *prompt,
                    const char *r1, const char *r2, bool strip_special, char **system_out,
                    char **user_out)
{
    *system_out = NULL;
    *user_out = NULL;
    if (!t || !prompt || !r1 || !r2)
        return ERR_INVAL;
    const char *vals[4] = {prompt, r1, r2, instruction};
    int rc = ERR_OK;
    if (t->system)
        rc = render_part(t->system, vals, strip_special, system_out);
    if (!rc)
        rc = render_part(t->user, vals, strip_special, user_out);
    if (rc) {
        free(*system_out);
        *system_out = NULL;
    }
    return rc;
}
