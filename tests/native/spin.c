/*
 * spin.c - never returns when the request target contains "spin" (to test
 * that a worker whose event loop is stuck in a handler is replaced);
 * otherwise "fine".
 */
#define _GNU_SOURCE /* memmem */
#include <string.h>

#include "flexilib.h"

static char body[] = "fine";
static flexilib_response fine = {.ptr = body, .len = sizeof body - 1};

flexilib_response *handle_request(flexilib_request *request)
{
    if (memmem(request->target, request->target_len, "spin", 4) != NULL)
        for (volatile unsigned long i = 0;; i++)
            ;
    return &fine;
}
