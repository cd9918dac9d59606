/* fuzz_sampler_remote.c - an inference server's /v1/completions answer as the sampler's remote
 * backend reads it (services/sampler/sampler_remote.c: vLLM, llama.cpp's server, OpenAI's legacy
 * completions): the input is the body, handed to sampler_remote_parse as exactly its bytes. A
 * parsed response's text must be valid UTF-8 (sampler.h promises it; it becomes a Response
 * record) and its log-prob finite when it says it has one. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "fuzz.h"
#include "sampler_remote.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *body = malloc(size ? size : 1); /* exactly size bytes: no NUL after them */
    if (!body)
        abort();
    if (size)
        memcpy(body, data, size);
    struct sampler_response r;
    memset(&r, 0, sizeof r);
    char why[256];
    if (sampler_remote_parse(body, size, &r, why, sizeof why) == ERR_OK) {
        if (!r.text)
            fuzz_fail("sampler_remote_parse: ERR_OK without a text");
        if (!fuzz_utf8(r.text))
            fuzz_fail("sampler_remote_parse: a text that is not UTF-8");
        if (r.has_logprob && !isfinite(r.logprob))
            fuzz_fail("sampler_remote_parse: log-prob %g", r.logprob);
        free(r.text);
        free(r.token_ids);
    }
    free(body);
    return 0;
}
