/*
 * echo_header.c - answers with one response header taken from the target:
 * GET /?n=<hex name>&v=<hex value> (hex, so any byte can be tried). For the
 * table of response-head rules every handler kind is tested against.
 */
#include <stdlib.h>
#include <string.h>

#include "flexilib.h"

static __thread char name[256], value[256];
static __thread flexilib_header header;
static __thread flexilib_response response;
static char body[] = "ok";

static int nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Decodes the hex after "key=" in target into out; returns its length. */
static size_t param(const char *target, size_t len, const char *key, char *out)
{
    size_t n = 0, klen = strlen(key);
    for (size_t i = 0; i + klen <= len; i++) {
        if (memcmp(target + i, key, klen) != 0)
            continue;
        for (size_t j = i + klen; j + 1 < len && n < 255; j += 2) {
            int hi = nibble(target[j]), lo = nibble(target[j + 1]);
            if (hi < 0 || lo < 0)
                break;
            out[n++] = (char)(hi * 16 + lo);
        }
        break;
    }
    return n;
}

flexilib_response *handle_request(flexilib_request *request)
{
    header.name_ptr = name;
    header.name_len = param(request->target, request->target_len, "n=", name);
    header.value_ptr = value;
    header.value_len = param(request->target, request->target_len, "v=", value);
    response = (flexilib_response){.ptr = body, .len = 2, .headers = &header, .headers_len = 1};
    return &response;
}
