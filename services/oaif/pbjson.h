/* pbjson.h - any protobuf-c message as one line of JSON, driven by its descriptor: field names
 * as in the .proto, enums by name, bytes as base64, 64-bit integers as numbers, repeated
 * fields as arrays, unset oneof members and proto3 defaults left out (as protobuf's JSON
 * mapping does). For `oaif export`, logs and reports. Not a parser. */
#ifndef PBJSON_H
#define PBJSON_H

#include <protobuf-c/protobuf-c.h>

#include "buf.h"

/* Append the JSON object for `m` to `out`. ERR_OK, ERR_NOMEM, ERR_TOOBIG (out's cap). */
int pbjson_append(buf_t *out, const ProtobufCMessage *m);
/* Append `s` as a JSON string literal (quoted, escaped; invalid UTF-8 bytes become U+FFFD). */
int pbjson_append_string(buf_t *out, const char *s, size_t len);
/* Append base64 of `data`. */
int pbjson_append_base64(buf_t *out, const uint8_t *data, size_t len);

#endif /* PBJSON_H */
