/*
 * sample.c - the original FlexiLib sample library (src/main-lib.zig),
 * re-created in C against include/flexilib.h.
 *
 * Behaviour, checked in this order (header names case-insensitive, the
 * first header of a name wins):
 *   Host: iam...      body "iam response"
 *   x-status: N       respond with status N (500 if N is not a number)
 *   x-log-this: V     V is written at the start of the body
 *   x-throw           stop: status 500 with what was written so far
 *   x-slow: N         sleep N ms (1000 if N is not a number), body
 *                     "i am slow\n\n"
 *   otherwise         body " <number of request headers>" and the header
 *                     "X-custom-foo: bar"
 *
 * Thread safety: all response memory is thread-local. The body lives in a
 * heap buffer that request_deinit frees, so nothing outlives a request and
 * nothing is left behind when the server unloads the library.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "flexilib.h"

/* Per-thread response: the struct, its one optional header, its body. */
struct reply {
    flexilib_response response;
    flexilib_header header;
    char *body;
    size_t cap;
};

static __thread struct reply reply;

static char empty_body[1];
static char custom_name[] = "X-custom-foo";
static char custom_value[] = "bar";

/* Releases the body of the previous response on this thread. */
static void reply_reset(void)
{
    free(reply.body);
    memset(&reply, 0, sizeof reply);
    reply.response.ptr = empty_body; /* never NULL, even for an empty body */
}

/* Appends len bytes to the body; returns 0 on success, -1 out of memory. */
static int body_append(const char *bytes, size_t len)
{
    size_t need = reply.response.len + len;
    if (need > reply.cap) {
        size_t cap = reply.cap ? reply.cap : 64;
        while (cap < need)
            cap *= 2;
        char *grown = realloc(reply.body, cap);
        if (grown == NULL)
            return -1;
        reply.body = grown;
        reply.cap = cap;
        reply.response.ptr = grown;
    }
    if (len > 0)
        memcpy(reply.body + reply.response.len, bytes, len);
    reply.response.len = need;
    return 0;
}

static int name_is(const flexilib_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name_len == n && strncasecmp(h->name_ptr, name, n) == 0;
}

/* First request header called name, or NULL. */
static const flexilib_header *find_header(const flexilib_request *req, const char *name)
{
    for (size_t i = 0; i < req->headers_len; i++)
        if (name_is(&req->headers[i], name))
            return &req->headers[i];
    return NULL;
}

/* Parses a decimal header value; returns fallback if it is not a number. */
static size_t parse_size(const flexilib_header *h, size_t fallback)
{
    char digits[32];
    if (h->value_len == 0 || h->value_len >= sizeof digits)
        return fallback;
    for (size_t i = 0; i < h->value_len; i++)
        if (!isdigit((unsigned char)h->value_ptr[i]))
            return fallback;
    memcpy(digits, h->value_ptr, h->value_len);
    digits[h->value_len] = '\0';
    return (size_t)strtoull(digits, NULL, 10);
}

static void sleep_ms(size_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* Fills the thread's reply; returns 0, or -1 if memory ran out. */
static int respond(const flexilib_request *req)
{
    const flexilib_header *h = find_header(req, "host");
    if (h != NULL && h->value_len >= 3 && memcmp(h->value_ptr, "iam", 3) == 0)
        return body_append("iam response", 12);

    if ((h = find_header(req, "x-status")) != NULL)
        reply.response.status = parse_size(h, 500);

    if ((h = find_header(req, "x-log-this")) != NULL && body_append(h->value_ptr, h->value_len))
        return -1;

    if (find_header(req, "x-throw") != NULL) {
        reply.response.status = 500;
        return 0;
    }

    if ((h = find_header(req, "x-slow")) != NULL) {
        sleep_ms(parse_size(h, 1000));
        return body_append("i am slow\n\n", 11);
    }

    char count[32];
    int n = snprintf(count, sizeof count, " %zu", req->headers_len);
    reply.header = (flexilib_header){custom_name, sizeof custom_name - 1, custom_value,
                                     sizeof custom_value - 1};
    reply.response.headers = &reply.header;
    reply.response.headers_len = 1;
    return body_append(count, (size_t)n);
}

flexilib_response *handle_request(flexilib_request *request)
{
    reply_reset(); /* in case the server skipped request_deinit */
    if (respond(request) != 0) {
        reply_reset();
        return NULL;
    }
    return &reply.response;
}

void request_deinit(void)
{
    reply_reset();
}
