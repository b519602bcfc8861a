/*
 * version.c - a native handler answering "v<VERSION>", for the hot-reload
 * swap benchmark: built with -DVERSION=N into place, then polled until the
 * server answers the new number. The response is constant, so one static
 * object serves every thread.
 */
#include "flexilib.h"

#define STR2(x) #x
#define STR(x) STR2(x)

static char body[] = "v" STR(VERSION);

static flexilib_response response = {.ptr = body, .len = sizeof body - 1};

flexilib_response *handle_request(flexilib_request *request)
{
    (void)request;
    return &response;
}
