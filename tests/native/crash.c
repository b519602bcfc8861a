/*
 * crash.c - abort()s the whole process when the request carries an
 * "x-crash" header (to test supervision and restarts); otherwise "alive".
 */
#include <stdlib.h>
#include <strings.h>

#include "flexilib.h"

static char body[] = "alive";
static flexilib_response alive = {.ptr = body, .len = sizeof body - 1};

flexilib_response *handle_request(flexilib_request *request)
{
    for (size_t i = 0; i < request->headers_len; i++) {
        const flexilib_header *h = &request->headers[i];
        if (h->name_len == 7 && strncasecmp(h->name_ptr, "x-crash", 7) == 0)
            abort();
    }
    return &alive;
}
