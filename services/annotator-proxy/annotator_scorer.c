/* annotator_scorer.c - see annotator_scorer.h. */
#include "annotator_scorer.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bus.h"
#include "err.h"
#include "log.h"

struct waiting {
    uint64_t ticket;
    annotator_t *a;
    uint64_t deadline; /* bus_mono_ms() */
    char id[64];
    struct waiting *next;
};

struct annotator_scorer {
    bus_client_t *client;
    int64_t timeout_ms;
    char instance[24]; /* makes request ids unique across restarts of this process */
    struct waiting *head;
    size_t n;
};

int annotator_scorer_new(annotator_scorer_t **out, bus_client_t *client, int64_t timeout_ms)
{
    annotator_scorer_t *s = calloc(1, sizeof *s);
    *out = NULL;
    if (!s)
        return ERR_NOMEM;
    s->client = client;
    s->timeout_ms = timeout_ms > 0 ? timeout_ms : 60000;
    uint64_t x = bus_now_ms() * 1000003u ^ ((uint64_t)getpid() << 20) ^ bus_mono_ms();
    snprintf(s->instance, sizeof s->instance, "%016" PRIx64, x);
    *out = s;
    return ERR_OK;
}

void annotator_scorer_destroy(annotator_scorer_t **ps)
{
    if (!ps || !*ps)
        return;
    annotator_scorer_t *s = *ps;
    while (s->head) {
        struct waiting *w = s->head;
        s->head = w->next;
        free(w);
    }
    free(s);
    *ps = NULL;
}

size_t annotator_scorer_pending(const annotator_scorer_t *s)
{
    return s->n;
}

int annotator_scorer_score(void *user, annotator_t *a, uint64_t ticket,
                           const struct annotator_request *req)
{
    annotator_scorer_t *s = user;
    struct waiting *w = calloc(1, sizeof *w);
    if (!w)
        return ERR_NOMEM;
    w->ticket = ticket;
    w->a = a;
    w->deadline = bus_mono_ms() + (uint64_t)s->timeout_ms;
    snprintf(w->id, sizeof w->id, "score-%s-%" PRIu64, s->instance, ticket);
    Oaif__V1__ScoreRequest sr = OAIF__V1__SCORE_REQUEST__INIT;
    char *texts[2] = {(char *)req->responses[0], (char *)req->responses[1]};
    sr.prompt = (char *)req->prompt;
    sr.texts = texts;
    sr.n_texts = 2;
    sr.pair_id = (char *)(req->pair_id ? req->pair_id : "");
    size_t len = oaif__v1__score_request__get_packed_size(&sr);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        free(w);
        return ERR_NOMEM;
    }
    oaif__v1__score_request__pack(&sr, buf);
    unsigned lease = s->timeout_ms < 0xffffffffLL ? (unsigned)s->timeout_ms : 0;
    int rc = bus_client_submit(s->client, "score", w->id, buf, len, lease, 0);
    free(buf);
    if (rc) {
        free(w);
        return rc;
    }
    w->next = s->head;
    s->head = w;
    s->n++;
    return ERR_OK;
}

int annotator_scorer_parse(const uint8_t *data, size_t len, double *r_first, double *r_second,
                           char *why, size_t whylen)
{
    Oaif__V1__ScoreReply *r = oaif__v1__score_reply__unpack(NULL, len, data);
    if (!r) {
        snprintf(why, whylen, "the score reply is not a ScoreReply");
        return ERR_PROTO;
    }
    size_t members = r->n_members ? r->n_members : r->n_scores / 2;
    int rc = ERR_OK;
    if (members == 0 || r->n_scores != 2 * members) {
        snprintf(why, whylen, "the score reply has %zu scores for %zu members and 2 texts",
                 r->n_scores, r->n_members);
        rc = ERR_PROTO;
    } else {
        double a = 0, b = 0;
        for (size_t m = 0; m < members; m++) {
            a += r->scores[2 * m];
            b += r->scores[2 * m + 1];
        }
        *r_first = a / (double)members;
        *r_second = b / (double)members;
    }
    oaif__v1__score_reply__free_unpacked(r, NULL);
    return rc;
}

/* Removes and returns the waiting entry with this request id, or NULL. */
static struct waiting *take(annotator_scorer_t *s, const char *id)
{
    for (struct waiting **pp = &s->head; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->id, id) == 0) {
            struct waiting *w = *pp;
            *pp = w->next;
            s->n--;
            return w;
        }
    }
    return NULL;
}

static void on_reply(void *ctx, const Oaif__V1__Reply *r)
{
    annotator_scorer_t *s = ctx;
    struct waiting *w = take(s, r->id ? r->id : "");
    if (!w) {
        log_debug("scorer: reply for %s: not waiting for it (timed out?)", r->id);
        return;
    }
    char why[300];
    double a = 0, b = 0;
    if (r->outcome != OAIF__V1__OUTCOME__OUTCOME_OK) {
        snprintf(why, sizeof why, "score service: %s",
                 r->error && *r->error ? r->error : "failed without a reason");
        annotator_scored(w->a, w->ticket, ERR_REMOTE, 0, 0, why);
    } else if (annotator_scorer_parse(r->payload.data, r->payload.len, &a, &b, why, sizeof why)) {
        annotator_scored(w->a, w->ticket, ERR_PROTO, 0, 0, why);
    } else {
        annotator_scored(w->a, w->ticket, ERR_OK, a, b, NULL);
    }
    free(w);
}

int annotator_scorer_poll(annotator_scorer_t *s, int timeout_ms)
{
    int rc = bus_client_poll(s->client, s->n ? timeout_ms : 0, on_reply, s);
    uint64_t now = bus_mono_ms();
    for (struct waiting **pp = &s->head; *pp;) {
        struct waiting *w = *pp;
        if (now < w->deadline) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        s->n--;
        char why[160];
        snprintf(why, sizeof why, "score service: no answer within %" PRId64 " ms", s->timeout_ms);
        annotator_scored(w->a, w->ticket, ERR_TIMEOUT, 0, 0, why);
        free(w);
    }
    return rc < 0 ? rc : ERR_OK;
}
