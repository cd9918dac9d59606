/* buscheck.c - see buscheck.h. */
#include "buscheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "utf8.h"

/* ---- the wire walk ------------------------------------------------------------------------- */

static bool rd_varint(const uint8_t *p, size_t len, size_t *pos, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*pos >= len)
            return false;
        uint8_t b = p[(*pos)++];
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false; /* more than 10 bytes */
}

/* The first problem of string bytes s[0..n): NULL when valid UTF-8 without NUL. */
static const char *string_problem(const uint8_t *s, size_t n, size_t *at)
{
    for (size_t i = 0; i < n;) {
        *at = i;
        if (s[i] == 0)
            return "is NUL (strings may not hold NUL)";
        size_t k = utf8_seq(s + i, n - i);
        if (!k)
            return "does not start a UTF-8 sequence (strings must be UTF-8)";
        i += k;
    }
    return NULL;
}

static int walk(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, int depth,
                const char *path, char *why, size_t whylen)
{
    if (depth > BUS_NEST_MAX) {
        snprintf(why, whylen, "%s: messages nested more than %d deep", path, BUS_NEST_MAX);
        return ERR_PROTO;
    }
    uint32_t counts[64] = {0}; /* elements so far per repeated field (by index) */
    size_t pos = 0;
    while (pos < len) {
        uint64_t tag;
        if (!rd_varint(buf, len, &pos, &tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) {
            snprintf(why, whylen, "%s%sbad field tag at byte %zu", path, *path ? ": " : "", pos);
            return ERR_PROTO;
        }
        unsigned num = (unsigned)(tag >> 3), wt = (unsigned)(tag & 7);
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, num);
        char fpath[256];
        if (f) {
            size_t idx = (size_t)(f - d->fields);
            if (f->label == PROTOBUF_C_LABEL_REPEATED && idx < 64) {
                if (++counts[idx] > BUS_REPEATED_MAX) {
                    snprintf(why, whylen, "%s%s%s: more than %d elements", path, *path ? "." : "",
                             f->name, BUS_REPEATED_MAX);
                    return ERR_TOOBIG;
                }
                snprintf(fpath, sizeof fpath, "%s%s%s[%u]", path, *path ? "." : "", f->name,
                         counts[idx] - 1);
            } else {
                snprintf(fpath, sizeof fpath, "%s%s%s", path, *path ? "." : "", f->name);
            }
        }
        uint64_t v;
        switch (wt) {
        case 0:
            if (!rd_varint(buf, len, &pos, &v))
                goto cut;
            break;
        case 1:
            if (len - pos < 8)
                goto cut;
            pos += 8;
            break;
        case 5:
            if (len - pos < 4)
                goto cut;
            pos += 4;
            break;
        case 2: {
            if (!rd_varint(buf, len, &pos, &v) || v > len - pos)
                goto cut;
            const uint8_t *p = buf + pos;
            size_t n = (size_t)v;
            pos += n;
            if (!f)
                break;
            if (f->type == PROTOBUF_C_TYPE_STRING) {
                size_t at = 0;
                const char *bad = string_problem(p, n, &at);
                if (bad) {
                    snprintf(why, whylen, "%s: byte %u at offset %zu %s", fpath, p[at], at, bad);
                    return ERR_INVAL;
                }
            } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
                int rc = walk(f->descriptor, p, n, depth + 1, fpath, why, whylen);
                if (rc)
                    return rc;
            }
            break;
        }
        default:
            snprintf(why, whylen, "%s%swire type %u (groups are not used) at byte %zu", path,
                     *path ? ": " : "", wt, pos);
            return ERR_PROTO;
        }
    }
    return ERR_OK;
cut:
    snprintf(why, whylen, "%s%sa field runs past the end of the message (%zu bytes)", path,
             *path ? ": " : "", len);
    return ERR_PROTO;
}

int bus_check_wire(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len, char *why,
                   size_t whylen)
{
    return walk(d, buf, len, 0, "", why, whylen);
}

uint64_t bus_peek_varint(const uint8_t *buf, size_t len, unsigned field)
{
    size_t pos = 0;
    while (pos < len) {
        uint64_t tag, v;
        if (!rd_varint(buf, len, &pos, &tag))
            return 0;
        switch (tag & 7) {
        case 0:
            if (!rd_varint(buf, len, &pos, &v))
                return 0;
            if ((tag >> 3) == field)
                return v;
            break;
        case 1:
            pos += 8;
            break;
        case 5:
            pos += 4;
            break;
        case 2:
            if (!rd_varint(buf, len, &pos, &v) || v > len - pos)
                return 0;
            pos += (size_t)v;
            break;
        default:
            return 0;
        }
    }
    return 0;
}

/* ---- ids and names ------------------------------------------------------------------------- */

int bus_check_id(const char *s, size_t max, const char *what, char *why, size_t whylen)
{
    size_t n = s ? strlen(s) : 0;
    char shown[96];
    if (n == 0) {
        snprintf(why, whylen, "%s is empty (an id is 1 to %zu bytes of printable UTF-8)", what,
                 max);
        return ERR_INVAL;
    }
    if (n > max) {
        snprintf(why, whylen, "%s '%s' is %zu bytes, over the limit of %zu", what,
                 bus_escape(s, shown, sizeof shown), n, max);
        return ERR_INVAL;
    }
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq(u + i, n - i);
        const char *bad = NULL;
        if (!k)
            bad = "is not UTF-8";
        else if (u[i] < 0x20 || u[i] == 0x7f || (k == 2 && u[i] == 0xc2 && u[i + 1] < 0xa0))
            bad = "is a control character";
        if (bad) {
            snprintf(why, whylen,
                     "%s '%s': byte 0x%02x at offset %zu %s (an id is printable UTF-8)", what,
                     bus_escape(s, shown, sizeof shown), u[i], i, bad);
            return ERR_INVAL;
        }
        i += k;
    }
    return ERR_OK;
}

bool bus_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > BUS_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

const char *bus_escape(const char *s, char *out, size_t outlen)
{
    if (!outlen)
        return out;
    out[0] = '\0';
    if (!s || outlen < 8)
        return out;
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), o = 0, room = outlen - 4; /* keep "..." and the NUL */
    for (size_t i = 0; i < n;) {
        char piece[8];
        size_t plen, k = 1;
        if (u[i] >= 0x20 && u[i] < 0x7f && u[i] != '\\') {
            piece[0] = (char)u[i];
            plen = 1;
        } else if (u[i] == '\\') {
            memcpy(piece, "\\\\", 2);
            plen = 2;
        } else if (u[i] >= 0x80 && (k = utf8_seq(u + i, n - i)) != 0 &&
                   !(k == 2 && u[i] == 0xc2 && u[i + 1] < 0xa0)) {
            memcpy(piece, u + i, k);
            plen = k;
        } else {
            k = 1;
            plen = (size_t)snprintf(piece, sizeof piece, "\\x%02x", u[i]);
        }
        if (o + plen > room) {
            memcpy(out + o, "...", 4);
            return out;
        }
        memcpy(out + o, piece, plen);
        o += plen;
        i += k;
    }
    out[o] = '\0';
    return out;
}

bool bus_ratelog_ok(struct bus_ratelog *r, uint64_t now_ms, uint64_t *held)
{
    if (r->last_ms && now_ms - r->last_ms < r->every_ms) {
        r->held++;
        return false;
    }
    *held = r->held;
    r->held = 0;
    r->last_ms = now_ms ? now_ms : 1;
    return true;
}

/* ---- endpoints ----------------------------------------------------------------------------- */

int bus_endpoint_check(const char *ep, char *why, size_t whylen)
{
    if (!ep || strncmp(ep, "tcp://", 6) != 0)
        return ERR_OK;
    const char *colon = strrchr(ep + 6, ':');
    if (!colon) {
        snprintf(why, whylen, "endpoint '%s' has no port (tcp://HOST:PORT)", ep);
        return ERR_INVAL;
    }
    const char *p = colon + 1;
    if (strcmp(p, "*") == 0)
        return ERR_OK;
    size_t n = strspn(p, "0123456789");
    long port = n && n <= 5 && p[n] == '\0' ? strtol(p, NULL, 10) : -1;
    if (port < 0 || port > 65535) {
        snprintf(why, whylen, "endpoint '%s': port '%s' is not a number from 0 to 65535 (or *)", ep,
                 p);
        return ERR_INVAL;
    }
    return ERR_OK;
}
