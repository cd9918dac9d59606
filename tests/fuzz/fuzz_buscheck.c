/* fuzz_buscheck.c - common/buscheck.c, what the bus checks of outside bytes before protobuf-c sees
 * them: the input is an envelope frame as it arrives (bus_check_wire, bus_peek_varint), and the
 * same bytes up to the first NUL are an id, a service name and an endpoint (bus_check_id,
 * bus_name_ok, bus_endpoint_check, bus_escape). Checked against protobuf-c itself: an envelope
 * the walk passes and protobuf-c unpacks holds only strings of valid UTF-8 (every string field of
 * every nested message, walked by descriptor), the promise that lets the ledger treat an id as
 * its bytes. An id accepted is within its length and holds no control character; an escape is
 * printable and fits its buffer. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "buscheck.h"
#include "err.h"
#include "fuzz.h"
#include "oaif.pb-c.h"

/* Every string of message m (and of the messages inside it) is valid UTF-8. */
static void strings_valid(const ProtobufCMessage *m, int depth)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (depth > BUS_NEST_MAX + 1)
        fuzz_fail("a message nested %d deep passed the walk", depth);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *at = (const char *)m + f->offset;
        if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which = *(const uint32_t *)((const char *)m + f->quantifier_offset);
            if (which != f->id)
                continue;
        }
        size_t n = 1;
        const void *const *items = (const void *const *)at;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(const size_t *)((const char *)m + f->quantifier_offset);
            items = *(const void *const *const *)at;
        }
        for (size_t k = 0; k < n; k++) {
            const void *v = items[k];
            if (!v)
                continue;
            if (f->type == PROTOBUF_C_TYPE_STRING && !fuzz_utf8(v))
                fuzz_fail("field %s.%s passed the walk but is not UTF-8", d->name, f->name);
            if (f->type == PROTOBUF_C_TYPE_MESSAGE)
                strings_valid(v, depth + 1);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[512];
    int rc = bus_check_wire(&oaif__v1__envelope__descriptor, data, size, why, sizeof why);
    if (rc != ERR_OK && (!memchr(why, '\0', sizeof why) || !why[0]))
        fuzz_fail("bus_check_wire: error %d without a reason", rc);
    bus_peek_varint(data, size, 2);
    if (rc == ERR_OK) {
        Oaif__V1__Envelope *env = oaif__v1__envelope__unpack(NULL, size, data);
        if (env) {
            strings_valid(&env->base, 0);
            oaif__v1__envelope__free_unpacked(env, NULL);
        }
    }
    char *s = fuzz_strndup(data, size);
    if (bus_check_id(s, BUS_ID_MAX, "fuzz id", why, sizeof why) == ERR_OK) {
        if (!s[0] || strlen(s) > BUS_ID_MAX || !fuzz_utf8(s))
            fuzz_fail("bus_check_id accepted %zu bytes that are not an id", strlen(s));
        for (const unsigned char *p = (const unsigned char *)s; *p; p++)
            if (*p < 0x20 || *p == 0x7f)
                fuzz_fail("bus_check_id accepted control byte 0x%02x", *p);
    }
    if (bus_name_ok(s) && (!s[0] || strlen(s) > BUS_NAME_MAX))
        fuzz_fail("bus_name_ok accepted %zu bytes", strlen(s));
    bus_endpoint_check(s, why, sizeof why);
    char esc[64];
    const char *e = bus_escape(s, esc, sizeof esc);
    if (e != esc || strlen(esc) >= sizeof esc || !fuzz_utf8(esc))
        fuzz_fail("bus_escape wrote %zu bytes into %zu, or not UTF-8", strlen(esc), sizeof esc);
    for (const unsigned char *p = (const unsigned char *)esc; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            fuzz_fail("bus_escape left control byte 0x%02x", *p);
    free(s);
    return 0;
}
