/* null_response.c - handle_request returns NULL; the server must answer 500. */
#include "flexilib.h"

flexilib_response *handle_request(flexilib_request *request)
{
    (void)request;
    return NULL;
}
