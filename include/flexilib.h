/*
 * flexilib.h - the C interface between the flexilib server and a native
 * handler library.
 *
 * The layout is byte-compatible with the original FlexiLib (Zig), so a
 * library built for it loads in flexilib unchanged, and the reverse. Every
 * integer is a size_t; every pointer/length pair describes bytes that are
 * NOT NUL-terminated, except the request's `method`.
 *
 * A library exports:
 *   handle_request  (required) called once per request;
 *   request_deinit  (optional) called after the server has copied the
 *                   response, to let the library free or reuse its memory.
 *
 * Build: cc -O2 -fPIC -shared -o libmine.so mine.c
 */
#ifndef FLEXILIB_H
#define FLEXILIB_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One HTTP header: name and value, neither NUL-terminated. */
typedef struct flexilib_header {
    char *name_ptr;
    size_t name_len;
    char *value_ptr;
    size_t value_len;
} flexilib_header;

/*
 * The request handed to handle_request.
 *
 * Owned by the server: it and everything it points to (target, method,
 * content, headers and the header bytes) are valid only for the duration of
 * the handle_request call. Copy anything you need to keep.
 */
typedef struct flexilib_request {
    const char *target;     /* request target, e.g. "/path?q=1"         */
    size_t target_len;
    char *method;           /* e.g. "GET"; NUL-terminated at method_len */
    size_t method_len;
    char *content;          /* request body                             */
    size_t content_len;
    flexilib_header *headers; /* request headers, in arrival order      */
    size_t headers_len;
} flexilib_request;

/*
 * The response returned by handle_request.
 *
 * Owned by the library: the struct, the body, the header array and every
 * byte they point to must stay valid and unchanged until the server calls
 * request_deinit on the same thread (or, if the library exports no
 * request_deinit, until the next handle_request call on that thread). The
 * server copies what it needs before calling request_deinit.
 *
 * - status 0 means 200; otherwise it must be 100..999 or the server answers
 *   500.
 * - reason_len 0 means the standard reason phrase for the status.
 * - No Content-Type header: the server adds "text/plain".
 * - A header name or value containing CR, LF or NUL makes the server answer
 *   500: a library never writes raw bytes into the stream.
 */
typedef struct flexilib_response {
    char *ptr;              /* response body                            */
    size_t len;
    flexilib_header *headers;
    size_t headers_len;
    size_t status;          /* 0 means 200                              */
    char *reason_ptr;       /* reason phrase; ignored when reason_len 0 */
    size_t reason_len;
} flexilib_response;

/*
 * Required. May be called from several threads at once, so it must be
 * thread-safe; thread-local response storage is the usual pattern.
 * Returning NULL makes the server answer 500.
 */
flexilib_response *handle_request(flexilib_request *request);

/*
 * Optional. Called on the thread that called handle_request, after the
 * server no longer needs the returned response's memory.
 */
void request_deinit(void);

#ifdef __cplusplus
}
#endif

#endif /* FLEXILIB_H */
