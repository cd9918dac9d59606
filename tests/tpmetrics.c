/* tpmetrics.c - one series off a service's /metrics, or any GET (tpmetrics.h). */
#include "tpmetrics.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

static size_t collect(char *ptr, size_t size, size_t nmemb, void *ud)
{
    return buf_append(ud, ptr, size * nmemb) ? 0 : size * nmemb;
}

long tp_http_get(int port, const char *path, buf_t *out)
{
    char url[300];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    CURL *h = curl_easy_init();
    assert_non_null(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    long code = 0;
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    return code;
}

double tp_metric(int port, const char *prefix)
{
    buf_t b;
    buf_init(&b, 0);
    assert_int_equal(tp_http_get(port, "/metrics", &b), 200);
    char *text = buf_steal(&b);
    assert_non_null(text);
    double v = -1;
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, prefix, strlen(prefix))) {
            const char *sp = strchr(p + strlen(prefix), ' ');
            v = sp ? atof(sp + 1) : -1;
            break;
        }
    free(text);
    return v;
}
