/* pbjson.c - see pbjson.h. */
#include "pbjson.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "err.h"
#include "utf8.h"

int pbjson_append_string(buf_t *out, const char *s, size_t len)
{
    int rc = buf_append(out, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (!rc && i < len) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            rc = buf_append(out, esc, 2);
            i++;
        } else if (c < 0x20) {
            switch (c) {
            case '\n':
                rc = buf_append(out, "\\n", 2);
                break;
            case '\t':
                rc = buf_append(out, "\\t", 2);
                break;
            case '\r':
                rc = buf_append(out, "\\r", 2);
                break;
            default:
                rc = buf_printf(out, "\\u%04x", c);
            }
            i++;
        } else if (c < 0x80) {
            rc = buf_append(out, &p[i], 1);
            i++;
        } else {
            /* Copy one valid UTF-8 sequence or write U+FFFD. */
            size_t n = utf8_seq(p + i, len - i);
            if (n) {
                rc = buf_append(out, &p[i], n);
                i += n;
            } else {
                rc = buf_append(out, "\\ufffd", 6);
                i++;
            }
        }
    }
    return rc ? rc : buf_append(out, "\"", 1);
}

int pbjson_append_base64(buf_t *out, const uint8_t *d, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int rc = buf_append(out, "\"", 1);
    for (size_t i = 0; !rc && i < len; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)d[i + 1] << 8;
        if (i + 2 < len)
            v |= d[i + 2];
        char q[4] = {tab[(v >> 18) & 63], tab[(v >> 12) & 63],
                     i + 1 < len ? tab[(v >> 6) & 63] : '=', i + 2 < len ? tab[v & 63] : '='};
        rc = buf_append(out, q, 4);
    }
    return rc ? rc : buf_append(out, "\"", 1);
}

static int append_double(buf_t *out, double v)
{
    if (isnan(v))
        return buf_append_str(out, "\"NaN\"");
    if (isinf(v))
        return buf_append_str(out, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    return buf_printf(out, "%.17g", v);
}

static int append_value(buf_t *out, const ProtobufCFieldDescriptor *f, const void *v)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return buf_printf(out, "%" PRId32, *(const int32_t *)v);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return buf_printf(out, "%" PRIu32, *(const uint32_t *)v);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return buf_printf(out, "%" PRId64, *(const int64_t *)v);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return buf_printf(out, "%" PRIu64, *(const uint64_t *)v);
    case PROTOBUF_C_TYPE_FLOAT:
        return append_double(out, *(const float *)v);
    case PROTOBUF_C_TYPE_DOUBLE:
        return append_double(out, *(const double *)v);
    case PROTOBUF_C_TYPE_BOOL:
        return buf_append_str(out, *(const protobuf_c_boolean *)v ? "true" : "false");
    case PROTOBUF_C_TYPE_ENUM: {
        int e = *(const int *)v;
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value((const ProtobufCEnumDescriptor *)f->descriptor, e);
        return ev ? pbjson_append_string(out, ev->name, strlen(ev->name))
                  : buf_printf(out, "%d", e);
    }
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)v;
        return s ? pbjson_append_string(out, s, strlen(s)) : buf_append_str(out, "\"\"");
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = v;
        return pbjson_append_base64(out, b->data, b->len);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(ProtobufCMessage *const *)v;
        return m ? pbjson_append(out, m) : buf_append_str(out, "null");
    }
    }
    return ERR_INVAL;
}

static size_t type_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    default:
        return 4;
    }
}

/* proto3 fields without presence are left out at their default value. */
static bool is_default(const ProtobufCFieldDescriptor *f, const void *v)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)v;
        return !s || !*s;
    }
    case PROTOBUF_C_TYPE_BYTES:
        return ((const ProtobufCBinaryData *)v)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
        return *(void *const *)v == NULL;
    case PROTOBUF_C_TYPE_FLOAT:
        return *(const float *)v == 0.0f;
    case PROTOBUF_C_TYPE_DOUBLE:
        return *(const double *)v == 0.0;
    default: {
        static const uint8_t zero[8];
        return memcmp(v, zero, type_size(f->type)) == 0;
    }
    }
}

int pbjson_append(buf_t *out, const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    int rc = buf_append(out, "{", 1);
    bool first = true;
    for (unsigned i = 0; !rc && i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)m;
        const void *member = base + f->offset;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which = *(const uint32_t *)(base + f->quantifier_offset);
            if (which != f->id)
                continue;
        } else if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (*(const size_t *)(base + f->quantifier_offset) == 0)
                continue;
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
                   f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING) {
            if (!*(const protobuf_c_boolean *)(base + f->quantifier_offset))
                continue;
        } else if (is_default(f, member)) {
            continue;
        }
        if (!first)
            rc = buf_append(out, ",", 1);
        first = false;
        if (!rc)
            rc = buf_printf(out, "\"%s\":", f->name);
        if (rc)
            break;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            const char *arr = *(char *const *)member;
            size_t sz = type_size(f->type);
            rc = buf_append(out, "[", 1);
            for (size_t k = 0; !rc && k < n; k++) {
                if (k)
                    rc = buf_append(out, ",", 1);
                if (!rc)
                    rc = append_value(out, f, arr + k * sz);
            }
            if (!rc)
                rc = buf_append(out, "]", 1);
        } else {
            rc = append_value(out, f, member);
        }
    }
    return rc ? rc : buf_append(out, "}", 1);
}
