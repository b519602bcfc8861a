/*
 * layout_only.c - a handler written straight against the byte layout of the
 * C interface, WITHOUT flexilib.h, as a library built for the original
 * FlexiLib would be. Proves the server fills and reads every field at the
 * right offset.
 *
 * Body (all on the first line, then one line per request header, then the
 * request body verbatim):
 *   method=<m> target=<t> headers=<n> body=<len> nul=<1 if method[method_len] == 0>\n
 *   <name>: <value>\n            (for each request header, in order)
 *   <request body bytes>
 * Response header "X-Layout: ok". Request header "x-status: N" sets the
 * status and "x-reason: R" the reason phrase, to exercise those fields.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct header {
    char *name_ptr;
    size_t name_len;
    char *value_ptr;
    size_t value_len;
};

struct request {
    const char *target;
    size_t target_len;
    char *method;
    size_t method_len;
    char *content;
    size_t content_len;
    struct header *headers;
    size_t headers_len;
};

struct response {
    char *ptr;
    size_t len;
    struct header *headers;
    size_t headers_len;
    size_t status;
    char *reason_ptr;
    size_t reason_len;
};

struct response *handle_request(struct request *req);
void request_deinit(void);

/* Thread-local so concurrent calls never share memory; freed by request_deinit. */
static __thread struct response response;
static __thread char *body;
static __thread char *reason;

static char layout_name[] = "X-Layout";
static char layout_value[] = "ok";
static struct header layout_header = {layout_name, 8, layout_value, 2};

static void release(void)
{
    free(body);
    free(reason);
    body = NULL;
    reason = NULL;
    memset(&response, 0, sizeof response);
}

static const struct header *find(const struct request *req, const char *name)
{
    for (size_t i = 0; i < req->headers_len; i++) {
        const struct header *h = &req->headers[i];
        if (h->name_len == strlen(name) && strncasecmp(h->name_ptr, name, h->name_len) == 0)
            return h;
    }
    return NULL;
}

struct response *handle_request(struct request *req)
{
    release();
    size_t cap = 256 + req->target_len + req->method_len + req->content_len;
    for (size_t i = 0; i < req->headers_len; i++)
        cap += req->headers[i].name_len + req->headers[i].value_len + 3;
    body = malloc(cap);
    if (body == NULL)
        return NULL;

    int n = snprintf(body, cap, "method=%.*s target=%.*s headers=%zu body=%zu nul=%d\n",
                     (int)req->method_len, req->method, (int)req->target_len, req->target,
                     req->headers_len, req->content_len, req->method[req->method_len] == '\0');
    size_t len = (size_t)n;
    for (size_t i = 0; i < req->headers_len; i++) {
        const struct header *h = &req->headers[i];
        memcpy(body + len, h->name_ptr, h->name_len);
        len += h->name_len;
        memcpy(body + len, ": ", 2);
        len += 2;
        memcpy(body + len, h->value_ptr, h->value_len);
        len += h->value_len;
        body[len++] = '\n';
    }
    if (req->content_len > 0)
        memcpy(body + len, req->content, req->content_len);
    len += req->content_len;

    response.ptr = body;
    response.len = len;
    response.headers = &layout_header;
    response.headers_len = 1;

    const struct header *h = find(req, "x-status");
    if (h != NULL && h->value_len < 20) {
        char digits[20];
        memcpy(digits, h->value_ptr, h->value_len);
        digits[h->value_len] = '\0';
        response.status = (size_t)strtoull(digits, NULL, 10);
    }
    h = find(req, "x-reason");
    if (h != NULL && h->value_len > 0) {
        reason = malloc(h->value_len);
        if (reason == NULL)
            return NULL;
        memcpy(reason, h->value_ptr, h->value_len);
        response.reason_ptr = reason;
        response.reason_len = h->value_len;
    }
    return &response;
}

void request_deinit(void)
{
    release();
}
