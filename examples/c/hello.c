/*
 * hello.c - the smallest useful flexilib library.
 *
 * The response never changes, so it is one read-only static object: every
 * thread may return it at once, and there is nothing to free, hence no
 * request_deinit.
 */
#include "flexilib.h"

static char body[] = "hello from C";
static char content_type[] = "Content-Type";
static char text_plain[] = "text/plain; charset=utf-8";

static flexilib_header headers[] = {
    {content_type, sizeof content_type - 1, text_plain, sizeof text_plain - 1},
};

static flexilib_response response = {
    .ptr = body,
    .len = sizeof body - 1,
    .headers = headers,
    .headers_len = sizeof headers / sizeof headers[0],
};

flexilib_response *handle_request(flexilib_request *request)
{
    (void)request;
    return &response;
}
