/* policy.c - see policy.h. */
#include "policy.h"

#include <stdio.h>
#include <string.h>

#include "err.h"

void trainer_builtin_config(struct nn_config *c)
{
    nn_config_default(c);
    /* Two layers, not four: on this task the two-layer model learns to copy operands from the
     * prompt in fewer steps, and each step costs half. Eight heads of 16: more heads found the
     * copying circuit sooner than four of 32. */
    c->hidden_size = 128;
    c->intermediate_size = 352;
    c->num_hidden_layers = 2;
    c->num_attention_heads = 8;
    c->num_key_value_heads = 4;
    c->max_position_embeddings = 256;
}

int trainer_tokenizer(tok_t **out, const struct nn_config *c, const char *dir, char *err,
                      size_t errlen)
{
    *out = NULL;
    tok_t *t = NULL;
    if (!strcmp(c->tokenizer, "byte")) {
        t = tok_new_byte();
        if (!t) {
            snprintf(err, errlen, "out of memory");
            return ERR_NOMEM;
        }
    } else {
        if (!dir) {
            snprintf(err, errlen, "a \"%s\" tokenizer needs its checkpoint directory",
                     c->tokenizer);
            return ERR_INVAL;
        }
        char path[4096];
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        int rc = tok_load(&t, path, err, errlen);
        if (rc)
            return rc;
    }
    int V = tok_vocab_size(t);
    int bos = c->bos_token_id >= 0 && c->bos_token_id < V ? c->bos_token_id : tok_bos_id(t);
    int eos = c->eos_token_id >= 0 && c->eos_token_id < V ? c->eos_token_id : tok_eos_id(t);
    int pad = c->pad_token_id >= 0 && c->pad_token_id < V ? c->pad_token_id : tok_pad_id(t);
    tok_set_special_ids(t, bos, eos, pad);
    if (V > c->vocab_size) {
        snprintf(err, errlen, "the tokenizer has %d ids but the model's vocab_size is %d", V,
                 c->vocab_size);
        tok_destroy(&t);
        return ERR_INVAL;
    }
    *out = t;
    return ERR_OK;
}
