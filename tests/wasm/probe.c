/* A hostile WAGI module for the wasm: kind's security tests. QUERY_STRING is
 * ACTION or ACTION=ARG; each action tries to get out of the sandbox or past a
 * limit and prints what happened, so the test can assert the sandbox held. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wasi/api.h>

extern char **environ;
static int calls; /* module state: a fresh instance must always start at 0 */

static void text(void) { printf("Content-Type: text/plain\n\n"); }

static void read_file(const char *path) {
    FILE *file = fopen(path, "r");
    if (!file) {
        printf("denied %s: %s\n", path, strerror(errno));
        return;
    }
    char buffer[256];
    size_t n = fread(buffer, 1, sizeof buffer - 1, file);
    buffer[n] = 0;
    printf("read %s: %s\n", path, buffer);
    fclose(file);
}

int main(void) {
    const char *query = getenv("QUERY_STRING");
    char action[64] = "";
    const char *arg = "";
    if (query) {
        const char *eq = strchr(query, '=');
        size_t len = eq ? (size_t)(eq - query) : strlen(query);
        if (len >= sizeof action) len = sizeof action - 1;
        memcpy(action, query, len);
        action[len] = 0;
        if (eq) arg = eq + 1;
    }
    calls++;
    if (!strcmp(action, "read")) {
        text();
        read_file(arg);
    } else if (!strcmp(action, "write")) {
        text();
        FILE *file = fopen(arg, "w");
        printf(file ? "wrote %s\n" : "denied %s\n", arg);
    } else if (!strcmp(action, "list")) {
        text();
        DIR *dir = opendir(arg);
        if (!dir) {
            printf("denied %s: %s\n", arg, strerror(errno));
            return 0;
        }
        struct dirent *entry;
        while ((entry = readdir(dir)))
            printf("%s\n", entry->d_name);
    } else if (!strcmp(action, "env")) {
        text();
        for (char **e = environ; *e; e++)
            printf("%s\n", *e);
    } else if (!strcmp(action, "sockets")) {
        /* preview 1 has no socket(): the only way in is sock_accept on an inherited fd */
        text();
        int accepted = 0;
        for (int fd = 0; fd < 64; fd++) {
            __wasi_fd_t out;
            if (__wasi_sock_accept(fd, 0, &out) == 0) accepted++;
        }
        printf("accepted %d\n", accepted);
    } else if (!strcmp(action, "calls")) {
        text();
        printf("calls %d\n", calls);
    } else if (!strcmp(action, "grow")) {
        size_t mb = (size_t)atoi(arg);
        char *block = malloc(mb << 20);
        if (!block) {
            printf("Status: 507 Insufficient Storage\n\nmalloc failed\n");
            return 0;
        }
        memset(block, 1, mb << 20);
        text();
        printf("grew %zu MB: %d\n", mb, block[(mb << 20) - 1]); /* used: not optimised away */
    } else if (!strcmp(action, "loop")) {
        for (volatile unsigned i = 0;; i++) {
        }
    } else if (!strcmp(action, "sleep")) {
        sleep((unsigned)atoi(arg));
        text();
        printf("slept\n");
    } else if (!strcmp(action, "flood")) {
        text();
        static char block[1 << 20];
        memset(block, 'x', sizeof block);
        FILE *stream = strcmp(arg, "err") ? stdout : stderr;
        for (;;)
            fwrite(block, 1, sizeof block, stream);
    } else if (!strcmp(action, "trap")) {
        __builtin_trap();
    } else if (!strcmp(action, "exit")) {
        exit(atoi(arg));
    } else if (!strcmp(action, "garbage")) {
        printf("this is not a CGI response\n");
    } else if (!strcmp(action, "stderr")) {
        fprintf(stderr, "probe says %s\n", arg);
        text();
        printf("logged\n");
    } else {
        text();
        printf("unknown action %s\n", action);
    }
    return 0;
}
