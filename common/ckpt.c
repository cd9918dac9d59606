/* ckpt.c - see ckpt.h. */
#include "ckpt.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "sha256.h"

const char *ckpt_kind_name(Oaif__V1__CheckpointKind kind)
{
    switch (kind) {
    case OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_SFT:
        return "sft";
    case OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_POLICY:
        return "policy";
    case OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_REWARD:
        return "reward";
    default:
        return NULL;
    }
}

int ckpt_dir(char *out, size_t outlen, const char *root, Oaif__V1__CheckpointKind kind,
             uint32_t version)
{
    const char *k = ckpt_kind_name(kind);
    if (!k)
        return ERR_INVAL;
    int n = snprintf(out, outlen, "%s/%s-v%06u", root, k, version);
    return n < 0 || (size_t)n >= outlen ? ERR_TOOBIG : ERR_OK;
}

int ckpt_record_id(char *out, size_t outlen, Oaif__V1__CheckpointKind kind, uint32_t version)
{
    const char *k = ckpt_kind_name(kind);
    if (!k)
        return ERR_INVAL;
    int n = snprintf(out, outlen, "%s-v%u", k, version);
    return n < 0 || (size_t)n >= outlen ? ERR_TOOBIG : ERR_OK;
}

int ckpt_file_sha256(const char *path, char hex[65], char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return ERR_IO;
    }
    struct sha256 s;
    sha256_init(&s);
    unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sha256_update(&s, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: read error", path);
        return ERR_IO;
    }
    uint8_t d[32];
    sha256_final(&s, d);
    sha256_hex(d, hex);
    return ERR_OK;
}

int ckpt_publish(bus_client_t *cl, Oaif__V1__Checkpoint *c, int timeout_ms)
{
    char id[64];
    if (!c->id || !*c->id) {
        int rc = ckpt_record_id(id, sizeof id, c->kind, c->version);
        if (rc)
            return rc;
        c->id = id;
    }
    size_t n = oaif__v1__checkpoint__get_packed_size(c);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return ERR_NOMEM;
    oaif__v1__checkpoint__pack(c, buf);
    Oaif__V1__Record r = OAIF__V1__RECORD__INIT;
    r.kind = OAIF__V1__RECORD_KIND__RECORD_KIND_CHECKPOINT;
    r.id = c->id;
    r.data.data = buf;
    r.data.len = n;
    Oaif__V1__Record *rs[1] = {&r};
    char put_id[200];
    snprintf(put_id, sizeof put_id, "ckpt-%s-%.16s", c->id, c->sha256 ? c->sha256 : "");
    int rc = bus_client_put(cl, put_id, rs, 1, false, timeout_ms);
    free(buf);
    if (c->id == id)
        c->id = NULL;
    return rc;
}

int ckpt_find_policy(bus_client_t *cl, int64_t want_version, int timeout_ms,
                     Oaif__V1__Checkpoint **out)
{
    *out = NULL;
    uint64_t after = 0;
    for (;;) {
        Oaif__V1__Envelope *env = NULL;
        int rc = bus_client_scan(cl, OAIF__V1__RECORD_KIND__RECORD_KIND_CHECKPOINT, after, 1000,
                                 timeout_ms, &env);
        if (rc) {
            if (*out) {
                oaif__v1__checkpoint__free_unpacked(*out, NULL);
                *out = NULL;
            }
            return rc;
        }
        Oaif__V1__Records *rs = env->records;
        for (size_t i = 0; i < rs->n_records; i++) {
            Oaif__V1__Checkpoint *c = oaif__v1__checkpoint__unpack(
                NULL, rs->records[i]->data.len, rs->records[i]->data.data);
            if (!c)
                continue;
            bool policy = c->kind == OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_SFT ||
                          c->kind == OAIF__V1__CHECKPOINT_KIND__CHECKPOINT_KIND_POLICY;
            bool wanted = want_version >= 0 ? (int64_t)c->version == want_version
                                            : (!*out || c->version >= (*out)->version);
            if (policy && wanted) {
                if (*out)
                    oaif__v1__checkpoint__free_unpacked(*out, NULL);
                *out = c;
            } else {
                oaif__v1__checkpoint__free_unpacked(c, NULL);
            }
        }
        bool more = rs->more;
        after = rs->next_seq;
        oaif__v1__envelope__free_unpacked(env, NULL);
        if (!more)
            break;
    }
    return *out ? ERR_OK : ERR_NOTFOUND;
}
