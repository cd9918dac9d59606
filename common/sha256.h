/* sha256.h - SHA-256 (FIPS 180-4), streaming and one-shot.
 * For content addressing (cache keys, checkpoint digests), not for secrets handling: it is not
 * constant-time with respect to anything but the message length, and there is no HMAC here. */
#ifndef SHA256_H
#define SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_HEX_LEN    64 /* without the NUL */

/* Streaming state; plain data, may live on the stack. */
struct sha256 {
    uint32_t h[8];
    uint64_t nbytes;   /* bytes hashed so far */
    uint8_t block[64]; /* pending partial block */
    size_t blen;       /* bytes in block */
};

/* Starts a new hash. */
void sha256_init(struct sha256 *s);
/* Hashes len more bytes of data (data may be NULL when len == 0). */
void sha256_update(struct sha256 *s, const void *data, size_t len);
/* Writes the 32-byte digest to out; s must be re-initialised before reuse. */
void sha256_final(struct sha256 *s, uint8_t out[SHA256_DIGEST_LEN]);
/* One shot: digest of data[0..len). */
void sha256(const void *data, size_t len, uint8_t out[SHA256_DIGEST_LEN]);
/* Lower-case hex of a digest into out (65 bytes: 64 digits and a NUL). */
void sha256_hex(const uint8_t digest[SHA256_DIGEST_LEN], char out[SHA256_HEX_LEN + 1]);

#endif /* SHA256_H */
