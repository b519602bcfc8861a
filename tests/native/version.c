/*
 * version.c - answers with the string macro VERSION, for reload tests:
 *   gcc -O2 -fPIC -shared -DVERSION='"v1"' -o libversion.so version.c
 * Request header "x-slow: N" sleeps N ms first, to keep a request in flight
 * across a reload.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "flexilib.h"

#ifndef VERSION
#define VERSION "unversioned"
#endif

static char body[] = VERSION;
static flexilib_response response = {.ptr = body, .len = sizeof body - 1};

static void sleep_ms(unsigned long ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

flexilib_response *handle_request(flexilib_request *request)
{
    for (size_t i = 0; i < request->headers_len; i++) {
        const flexilib_header *h = &request->headers[i];
        if (h->name_len == 6 && strncasecmp(h->name_ptr, "x-slow", 6) == 0 && h->value_len < 20) {
            char digits[20];
            memcpy(digits, h->value_ptr, h->value_len);
            digits[h->value_len] = '\0';
            sleep_ms(strtoul(digits, NULL, 10));
        }
    }
    return &response;
}
