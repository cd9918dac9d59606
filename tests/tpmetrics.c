/* tpmetrics.c - one series off a service's /metrics (tpmetrics.h). */
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

double tp_metric(int port, const char *prefix)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    buf_t b;
    buf_init(&b, 0);
    CURL *h = curl_easy_init();
    assert_non_null(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_cleanup(h);
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
