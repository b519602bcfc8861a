/*
 * zigarena.h - the per-thread arena a Zig library receives through zigInit
 * (see zigarena.c and the README's "Zig libraries" section).
 */
#ifndef FLEXILIB_ZIGARENA_H
#define FLEXILIB_ZIGARENA_H

#include <stddef.h>

/* What a request took from its thread's arena, for the access log and errors. */
struct zig_figures {
    size_t prealloc; /* the arena's pre-warmed capacity (RESPONSE_PREALLOCATION_KB)  */
    size_t alloc;    /* the arena's capacity when the request ended                  */
    size_t refused;  /* allocations refused this request (the per-request limit, or
                        the system out of memory)                                   */
};

/* The per-request limit on an arena's capacity: past it allocations fail. */
#define ZIG_ARENA_LIMIT ((size_t)64 << 20)

/* Called once, when the extension module is imported; returns 0 or -1. */
int zig_arena_setup(void);

/*
 * The calling thread's arena, pre-warmed with `prewarm` bytes, as the
 * std.mem.Allocator value to hand to zigInit; NULL if memory ran out.
 * Needs no Python state: the caller raises MemoryError.
 */
void *zig_arena_begin(size_t prewarm);

/*
 * Ends the thread's request: fills *figures, then resets the arena for the
 * next request on this thread (capacity kept up to a bound). Everything the
 * library allocated during the request is invalid afterwards.
 */
void zig_arena_end(struct zig_figures *figures);

#endif /* FLEXILIB_ZIGARENA_H */
