/*
 * bad_header.c - returns a response header the server must refuse (500),
 * because writing it would inject raw bytes into the HTTP stream.
 *
 * Default: a value holding "\r\n". Request header "x-bad-where" selects
 * another flaw: "name" (CR LF in the name), "nul" (NUL in the value),
 * "lf" (bare LF in the value).
 */
#include <string.h>
#include <strings.h>

#include "flexilib.h"

static char body[] = "this body must never reach a client";
static char good_name[] = "X-Bad";
static char crlf_name[] = "X-Bad\r\nInjected";
static char crlf_value[] = "a\r\nInjected: yes";
static char nul_value[] = "a\0b";
static char lf_value[] = "a\nInjected: yes";
static char plain_value[] = "a";

/* One read-only response per flaw: thread-safe without any locking. */
static flexilib_header flaws[][1] = {
    {{good_name, sizeof good_name - 1, crlf_value, sizeof crlf_value - 1}},
    {{crlf_name, sizeof crlf_name - 1, plain_value, sizeof plain_value - 1}},
    {{good_name, sizeof good_name - 1, nul_value, sizeof nul_value - 1}},
    {{good_name, sizeof good_name - 1, lf_value, sizeof lf_value - 1}},
};

static flexilib_response responses[] = {
    {body, sizeof body - 1, flaws[0], 1, 0, NULL, 0},
    {body, sizeof body - 1, flaws[1], 1, 0, NULL, 0},
    {body, sizeof body - 1, flaws[2], 1, 0, NULL, 0},
    {body, sizeof body - 1, flaws[3], 1, 0, NULL, 0},
};

static int value_is(const flexilib_header *h, const char *value)
{
    return h->value_len == strlen(value) && memcmp(h->value_ptr, value, h->value_len) == 0;
}

flexilib_response *handle_request(flexilib_request *request)
{
    for (size_t i = 0; i < request->headers_len; i++) {
        const flexilib_header *h = &request->headers[i];
        if (h->name_len != 11 || strncasecmp(h->name_ptr, "x-bad-where", 11) != 0)
            continue;
        if (value_is(h, "name"))
            return &responses[1];
        if (value_is(h, "nul"))
            return &responses[2];
        if (value_is(h, "lf"))
            return &responses[3];
    }
    return &responses[0];
}
