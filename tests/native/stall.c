/*
 * stall.c - sleeps for the milliseconds a request asks, through its query
 * ("?sleep=MS") or its body ("sleep=MS"), then answers "slept"; a request
 * asking for nothing answers "quick" at once. An "x-mark: PATH" header
 * creates the file PATH as the sleep begins, so a test knows the call is
 * running. For the tests that a client cannot steer a slow call onto the
 * event loop.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "flexilib.h"

static char quick[] = "quick", slept[] = "slept";
static __thread flexilib_response response;

static long asked(const char *bytes, size_t len)
{
    for (size_t i = 0; i + 6 <= len; i++)
        if (memcmp(bytes + i, "sleep=", 6) == 0)
            return strtol(bytes + i + 6, NULL, 10);  /* stops at the first non-digit */
    return 0;
}

flexilib_response *handle_request(flexilib_request *request)
{
    char target[256] = {0};
    memcpy(target, request->target, request->target_len < 255 ? request->target_len : 255);
    long ms = asked(target, strlen(target));
    if (ms == 0 && request->content_len < 64) {
        char body[64] = {0};
        memcpy(body, request->content, request->content_len);
        ms = asked(body, request->content_len);
    }
    for (size_t i = 0; ms > 0 && i < request->headers_len; i++) {
        const flexilib_header *h = &request->headers[i];
        if (h->name_len == 6 && strncasecmp(h->name_ptr, "x-mark", 6) == 0 && h->value_len < 255) {
            char path[256] = {0};
            memcpy(path, h->value_ptr, h->value_len);
            int fd = open(path, O_CREAT | O_WRONLY, 0600);
            if (fd >= 0)
                close(fd);
        }
    }
    if (ms > 0) {
        struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
        nanosleep(&pause, NULL);
    }
    response = (flexilib_response){.ptr = ms ? slept : quick, .len = 5};
    return &response;
}
