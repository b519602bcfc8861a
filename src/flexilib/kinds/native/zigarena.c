/*
 * zigarena.c - the allocator a Zig library gets from zigInit: a per-thread
 * arena with the original FlexiLib's semantics.
 *
 * The original calls a library's `zigInit(*anyopaque)` before every request
 * with a pointer to its serving thread's `std.mem.Allocator`, an ArenaAllocator
 * that is reset after the response is written, so a library allocates its
 * response freely and frees nothing. This file is that allocator, written in
 * C against Zig 0.13's interface (lib/std/mem/Allocator.zig):
 *
 *   Allocator = struct { ptr: *anyopaque, vtable: *const VTable }
 *   VTable = struct {
 *       alloc:  fn (ctx, len: usize, ptr_align: u8, ret_addr: usize) ?[*]u8,
 *       resize: fn (ctx, buf: []u8, buf_align: u8, new_len: usize, ret_addr: usize) bool,
 *       free:   fn (ctx, buf: []u8, buf_align: u8, ret_addr: usize) void,
 *   }
 *
 * Neither struct is `extern` and the functions use Zig's default calling
 * convention, so both are facts of Zig 0.13 on x86_64 Linux rather than
 * promises: the fields are in declaration order (ptr at 0, vtable at 8;
 * alloc, resize, free at 0, 8, 16), the default convention is the C one there,
 * and a slice argument travels as two arguments, pointer then length. The
 * disassembly of a Zig 0.13 caller shows exactly these registers, and
 * tests/e2e/test_zig.py checks the offsets and every call with libraries the
 * real compiler builds, so a Zig release that changes them fails a test rather
 * than a user.
 *
 * Semantics, as std.heap.ArenaAllocator: allocations bump a pointer in the
 * newest chunk; resize grows or shrinks the most recent allocation in place
 * and shrinks any other; free does nothing (the table below says why; the
 * reset after the request frees everything).
 * A full chunk is followed by a new one at least as big as the arena so far,
 * so a request needs O(log n) chunks. The arena's capacity is capped at
 * ZIG_ARENA_LIMIT per request: past it, alloc returns null (Zig's
 * error.OutOfMemory). After the request the chunks are merged into one of the
 * arena's whole capacity, bounded by KEEP_LIMIT so a thread that once served
 * a huge response does not pin it for ever.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "zigarena.h"

/* Capacity kept between requests: up to 4 MiB a thread, or the pre-warm if larger. */
#define KEEP_LIMIT ((size_t)4 << 20)

struct chunk {
    struct chunk *prev; /* the chunk filled before this one, or NULL */
    size_t size;
    _Alignas(max_align_t) unsigned char data[];
};

struct zig_arena {
    /* std.mem.Allocator: these two fields are the value zigInit receives. */
    void *ptr;
    const void *vtable;
    /* the arena itself */
    struct chunk *chunk; /* the newest chunk (allocations come from here), or NULL */
    size_t end;          /* bytes used in the newest chunk */
    size_t capacity;     /* bytes in all chunks */
    size_t prewarm;      /* capacity after a reset, at least */
    size_t refused;      /* allocations refused since the last reset */
};

static _Thread_local struct zig_arena *thread_arena;
static pthread_key_t arena_key; /* frees a thread's arena when the thread exits */

/* Adds a chunk of `size` bytes; returns 0, or -1 if malloc failed. */
static int add_chunk(struct zig_arena *a, size_t size)
{
    struct chunk *c = malloc(sizeof *c + size);
    if (c == NULL)
        return -1;
    c->prev = a->chunk;
    c->size = size;
    a->chunk = c;
    a->end = 0;
    a->capacity += size;
    return 0;
}

static void free_chunks(struct zig_arena *a)
{
    while (a->chunk != NULL) {
        struct chunk *prev = a->chunk->prev;
        free(a->chunk);
        a->chunk = prev;
    }
    a->end = a->capacity = 0;
}

static void destroy(void *arena)
{
    free_chunks(arena);
    free(arena);
}

/* True if [buf, buf + len) is the most recent allocation in the newest chunk. */
static bool is_last(const struct zig_arena *a, const unsigned char *buf, size_t len)
{
    return a->chunk != NULL && buf + len == a->chunk->data + a->end;
}

static unsigned char *zig_alloc(void *ctx, size_t len, uint8_t log2_align, size_t ret_addr)
{
    (void)ret_addr;
    struct zig_arena *a = ctx;
    if (log2_align >= sizeof(size_t) * 8)
        goto refuse;
    size_t align = (size_t)1 << log2_align;
    struct chunk *c = a->chunk;
    if (c != NULL) {
        uintptr_t free_at = (uintptr_t)c->data + a->end;
        uintptr_t at = (free_at + (align - 1)) & ~(uintptr_t)(align - 1);
        size_t offset = at - (uintptr_t)c->data;
        if (at >= free_at && offset <= c->size && len <= c->size - offset) {
            a->end = offset + len;
            return c->data + offset;
        }
    }
    /* A new chunk with room for len at any alignment, at least doubling the arena. */
    if (len > SIZE_MAX - align)
        goto refuse;
    size_t need = len + (align - 1);
    size_t size = need > a->capacity ? need : a->capacity;
    if (size < a->prewarm)
        size = a->prewarm;
    size_t room = a->capacity < ZIG_ARENA_LIMIT ? ZIG_ARENA_LIMIT - a->capacity : 0;
    if (size > room)
        size = room;
    if (size < need || size > SIZE_MAX - sizeof(struct chunk) || add_chunk(a, size) < 0)
        goto refuse;
    return zig_alloc(ctx, len, log2_align, ret_addr); /* fits now */
refuse:
    a->refused++;
    return NULL;
}

static bool zig_resize(void *ctx, unsigned char *buf, size_t len, uint8_t log2_align,
                       size_t new_len, size_t ret_addr)
{
    (void)log2_align;
    (void)ret_addr;
    struct zig_arena *a = ctx;
    if (!is_last(a, buf, len))
        return new_len <= len; /* cannot grow, but a smaller view of it is fine */
    size_t offset = (size_t)(buf - a->chunk->data);
    if (new_len > a->chunk->size - offset)
        return false; /* the caller allocates anew and copies */
    a->end = offset + new_len;
    return true;
}

/*
 * Zig 0.13's free, and Zig 0.14's remap and free (see the table below): does
 * nothing, and returns null, which remap's callers read as "cannot remap".
 */
static unsigned char *zig_free(void *ctx, unsigned char *buf, size_t len, uint8_t log2_align,
                               size_t ret_addr)
{
    (void)ctx;
    (void)buf;
    (void)len;
    (void)log2_align;
    (void)ret_addr;
    return NULL;
}

/*
 * std.mem.Allocator.VTable, in Zig 0.13's field order: alloc, resize, free.
 * Zig 0.14 added remap before free, with free's arguments plus new_len, and
 * returning the moved pointer or null. A fourth entry and a free that returns
 * null serve both: a 0.14 library's remap gets null and falls back to
 * alloc, copy, free (as Zig does for any allocator that cannot remap); a 0.13
 * library ignores free's result and never reads the fourth entry. That is why
 * free does not give back the most recent allocation, as ArenaAllocator's
 * does: called as remap, it would give back the bytes about to be copied.
 * Without the fourth entry a 0.14 library's responses came out corrupt.
 */
static const struct {
    unsigned char *(*alloc)(void *, size_t, uint8_t, size_t);
    bool (*resize)(void *, unsigned char *, size_t, uint8_t, size_t, size_t);
    unsigned char *(*free_or_remap)(void *, unsigned char *, size_t, uint8_t, size_t);
    unsigned char *(*free)(void *, unsigned char *, size_t, uint8_t, size_t);
} vtable = {zig_alloc, zig_resize, zig_free, zig_free};

int zig_arena_setup(void)
{
    return pthread_key_create(&arena_key, destroy) == 0 ? 0 : -1;
}

void *zig_arena_begin(size_t prewarm)
{
    struct zig_arena *a = thread_arena;
    if (a != NULL && a->prewarm == prewarm)
        return a;
    if (a != NULL) /* RESPONSE_PREALLOCATION_KB changed since this thread's arena was made */
        destroy(a);
    a = calloc(1, sizeof *a);
    if (a != NULL) {
        a->ptr = a;
        a->vtable = &vtable;
        a->prewarm = prewarm;
        if (add_chunk(a, prewarm) < 0) {
            free(a);
            a = NULL;
        }
    }
    thread_arena = a;
    pthread_setspecific(arena_key, a);
    return a;
}

void zig_arena_end(struct zig_figures *figures)
{
    struct zig_arena *a = thread_arena;
    figures->prealloc = a->prewarm;
    figures->alloc = a->capacity;
    figures->refused = a->refused;
    a->refused = 0;
    a->end = 0;
    size_t bound = a->prewarm > KEEP_LIMIT ? a->prewarm : KEEP_LIMIT;
    if (a->chunk != NULL && a->chunk->prev == NULL && a->capacity <= bound)
        return; /* one chunk, kept whole: the steady state */
    /* Merge into one chunk of what the request needed, within the bounds. */
    size_t keep = a->capacity < bound ? a->capacity : bound;
    if (keep < a->prewarm)
        keep = a->prewarm;
    free_chunks(a);
    add_chunk(a, keep); /* if this fails, the next alloc tries again */
}
