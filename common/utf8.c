/* utf8.c - see utf8.h. */
#include "utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

size_t utf8_seq(const unsigned char *t, size_t len)
{
    if (len == 0)
        return 0;
    unsigned char c = t[0];
    size_t need;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        need = 1, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        need = 2, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        need = 3, cp = c & 0x07, min = 0x10000;
    else
        return 0; /* a continuation byte, 0xc0/0xc1 (always overlong) or 0xf5.. */
    if (need >= len)
        return 0;
    for (size_t k = 1; k <= need; k++) {
        if ((t[k] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (t[k] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return need + 1;
}

char *utf8_clean(const char *text, size_t len)
{
    /* each bad byte grows to 3 bytes (U+FFFD) at most */
    if (len > (SIZE_MAX - 1) / 3)
        return NULL;
    char *out = malloc(len * 3 + 1);
    if (!out)
        return NULL;
    const unsigned char *t = (const unsigned char *)text;
    size_t i = 0, o = 0;
    while (i < len) {
        size_t n = t[i] ? utf8_seq(t + i, len - i) : 0;
        if (n) {
            memcpy(out + o, t + i, n);
            o += n;
            i += n;
        } else { /* U+FFFD for this one byte; resynchronize on the next */
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
        }
    }
    out[o] = '\0';
    return out;
}
