/*
 * bad_status.c - returns status 1000, outside 100..999, which the server
 * must answer with 500. Request header "x-status: N" returns N instead, to
 * probe the edges (99, 100, 999).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "flexilib.h"

static char body[] = "status test";

/* Per thread, since the status depends on the request. */
static __thread flexilib_response response;

flexilib_response *handle_request(flexilib_request *request)
{
    response = (flexilib_response){.ptr = body, .len = sizeof body - 1, .status = 1000};
    for (size_t i = 0; i < request->headers_len; i++) {
        const flexilib_header *h = &request->headers[i];
        if (h->name_len == 8 && strncasecmp(h->name_ptr, "x-status", 8) == 0 && h->value_len < 20) {
            char digits[20];
            memcpy(digits, h->value_ptr, h->value_len);
            digits[h->value_len] = '\0';
            response.status = (size_t)strtoull(digits, NULL, 10);
        }
    }
    return &response;
}
