/* A WAGI handler in C: the request arrives in environment variables and on
 * stdin, the response leaves on stdout as CGI. With ?status=N it answers that
 * status (CGI `Status:` header); a POST body is echoed back.
 * Built by examples/Makefile: clang --target=wasm32-wasi (Debian wasi-libc). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(void) {
    const char *method = getenv("REQUEST_METHOD");
    const char *query = getenv("QUERY_STRING");
    const char *status = query ? strstr(query, "status=") : NULL;
    if (status)
        printf("Status: %d\n", atoi(status + 7));
    printf("Content-Type: text/plain\n\nhello from C (%s)\n", method ? method : "?");
    char buffer[4096];
    size_t n;
    while ((n = fread(buffer, 1, sizeof buffer, stdin)) > 0)
        fwrite(buffer, 1, n, stdout);
    return 0;
}
