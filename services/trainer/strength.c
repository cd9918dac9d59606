/* strength.c - see strength.h. */
#include "strength.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "err.h"

int trainer_strength_effect(const Oaif__V1__Strength *s, struct trainer_strength_effect *out,
                            char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    if (!s) {
        snprintf(why, whylen, "the reply holds no strength");
        return ERR_INVAL;
    }
    switch (s->action) {
    case OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_KEEP:
        break;
    case OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_FLIP:
        out->flip = true;
        break;
    case OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_DROP:
        out->drop = true;
        break;
    case OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SMOOTH:
        if (!(s->smoothing >= 0 && s->smoothing < 0.5)) {
            snprintf(why, whylen, "strength.smoothing %g is outside [0, 0.5)", s->smoothing);
            return ERR_INVAL;
        }
        out->label = TRAINER_LABEL_SMOOTH;
        out->label_arg = (float)s->smoothing;
        break;
    case OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_SOFT:
        if (!(s->soft_target >= 0 && s->soft_target <= 1)) {
            snprintf(why, whylen, "strength.soft_target %g is outside [0, 1]", s->soft_target);
            return ERR_INVAL;
        }
        out->label = TRAINER_LABEL_SOFT;
        out->label_arg = (float)s->soft_target;
        break;
    case OAIF__V1__STRENGTH_ACTION__STRENGTH_ACTION_MARGIN:
        if (!isfinite(s->margin) || !isfinite((float)s->margin)) {
            snprintf(why, whylen, "strength.margin %g is not a finite float", s->margin);
            return ERR_INVAL;
        }
        out->margin = (float)s->margin;
        break;
    default:
        snprintf(why, whylen,
                 "strength.action %d is not one of keep, flip, smooth, margin, drop, "
                 "soft",
                 (int)s->action);
        return ERR_INVAL;
    }
    out->action = (int)s->action;
    return ERR_OK;
}

void trainer_strength_shape(const struct trainer_strength_effect *e, struct trainer_pair *p)
{
    if (e->flip) {
        const int *t = p->chosen;
        int n = p->chosen_len;
        float ref = p->ref_chosen;
        p->chosen = p->rejected;
        p->chosen_len = p->rejected_len;
        p->ref_chosen = p->ref_rejected;
        p->rejected = t;
        p->rejected_len = n;
        p->ref_rejected = ref;
    }
    p->label = e->label;
    p->label_arg = e->label_arg;
    p->margin = e->margin;
}

bool trainer_strength_request_id(const char *pair_id, Oaif__V1__Winner winner, char *out,
                                 size_t outlen)
{
    int n = snprintf(out, outlen, "e-%s-%d", pair_id,
                     winner == OAIF__V1__WINNER__WINNER_SECOND ? 2 : 1);
    return n > 0 && (size_t)n < outlen;
}
