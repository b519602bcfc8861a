//! A Zig 0.13 test library that exercises the allocator zigInit receives and
//! answers with what it observed, so the tests can check it over HTTP.
//!
//! The `x-op` request header picks the check:
//!   layout   offsets of std.mem.Allocator and its VTable as this compiler lays them out
//!   list     x-count: N  grow an ArrayList(u32) to N items (resize in place, then moves)
//!   resize   in place for the most recent allocation only; shrinking always succeeds
//!   free     free gives nothing back (see zigarena.c): the next allocation is elsewhere
//!   align    allocations at 2^0 .. 2^16 alignment, each after a 1-byte one
//!   fill     x-kib: N  one N KiB buffer, written through; null (-> 500) if refused
//!   hold     fill 4 KiB with x-fill's byte, create the file x-mark, wait until the file
//!            x-release exists (at most 10 s), then check the bytes are unchanged
//!   (none)   the body is VERSION (for hot swaps)
//! Every answer carries X-Allocator: the address zigInit received, and
//! X-Thread: the serving thread's id. The response itself comes from the arena.
const std = @import("std");
const flexilib = @import("flexilib");

const VERSION = "zig-v0";

threadlocal var arena: ?*std.mem.Allocator = null;

export fn zigInit(parent_allocator: *anyopaque) callconv(.C) void {
    arena = @ptrCast(@alignCast(parent_allocator));
}

export fn handle_request(request: *const flexilib.Request) callconv(.C) ?*flexilib.Response {
    const holder = arena orelse return null;
    return respond(holder, request) catch return null;
}

fn respond(holder: *std.mem.Allocator, request: *const flexilib.Request) !*flexilib.Response {
    const a = holder.*;
    var body = std.ArrayList(u8).init(a);
    const out = body.writer();
    const op = request.header("x-op") orelse "";
    if (std.mem.eql(u8, op, "layout")) {
        try out.print("ptr={d} vtable={d} size={d} alloc={d} resize={d} free={d} vtable_size={d}", .{
            @offsetOf(std.mem.Allocator, "ptr"),
            @offsetOf(std.mem.Allocator, "vtable"),
            @sizeOf(std.mem.Allocator),
            @offsetOf(std.mem.Allocator.VTable, "alloc"),
            @offsetOf(std.mem.Allocator.VTable, "resize"),
            @offsetOf(std.mem.Allocator.VTable, "free"),
            @sizeOf(std.mem.Allocator.VTable),
        });
    } else if (std.mem.eql(u8, op, "list")) {
        const count = try number(request, "x-count");
        var list = std.ArrayList(u32).init(a);
        var in_place: usize = 0;
        var moved: usize = 0;
        for (0..count) |i| {
            const before = list.items.ptr;
            const capacity = list.capacity;
            try list.append(@intCast(i));
            if (list.capacity != capacity and capacity != 0) {
                if (list.items.ptr == before) in_place += 1 else moved += 1;
            }
        }
        var sum: u64 = 0;
        for (list.items, 0..) |item, i| {
            if (item != i) return error.ListCorrupt;
            sum += item;
        }
        try out.print("sum={d} in_place={d} moved={d}", .{ sum, in_place, moved });
    } else if (std.mem.eql(u8, op, "resize")) {
        const first = try a.alloc(u8, 100);
        const last_grows = a.resize(first, 200);
        const grown: []u8 = first.ptr[0..200];
        const second = try a.alloc(u8, 10);
        const other_grows = a.resize(grown, 300);
        const other_shrinks = a.resize(grown, 50);
        const last_shrinks = a.resize(second, 5);
        try out.print("last_grows={} other_grows={} other_shrinks={} last_shrinks={}", .{
            last_grows, other_grows, other_shrinks, last_shrinks,
        });
    } else if (std.mem.eql(u8, op, "free")) {
        const first = try a.alloc(u8, 100);
        @memset(first, 0x11);
        a.free(first);
        const again = try a.alloc(u8, 100);
        @memset(again, 0x22);
        try out.print("reused={} overlaps={}", .{
            again.ptr == first.ptr,
            @intFromPtr(again.ptr) < @intFromPtr(first.ptr) + first.len and
                @intFromPtr(first.ptr) < @intFromPtr(again.ptr) + again.len,
        });
    } else if (std.mem.eql(u8, op, "align")) {
        inline for (0..17) |log2| {
            _ = try a.alloc(u8, 1); // leave the arena at an odd address
            const raw = a.rawAlloc(3, log2, @returnAddress()) orelse return error.OutOfMemory;
            @memset(raw[0..3], 0x5a);
            const ok = @intFromPtr(raw) % (1 << log2) == 0;
            if (log2 <= 12) { // alignedAlloc stops at the page size; it checks the address too
                const typed = try a.alignedAlloc(u8, 1 << log2, 3);
                @memset(typed, 0x5b);
            }
            try out.print("{d}:{s} ", .{ @as(usize, 1) << log2, if (ok) "ok" else "MISALIGNED" });
        }
    } else if (std.mem.eql(u8, op, "fill")) {
        const kib = try number(request, "x-kib");
        const buffer = try a.alloc(u8, kib * 1024);
        @memset(buffer, 0x42);
        try out.print("filled {d} KiB", .{kib});
    } else if (std.mem.eql(u8, op, "hold")) {
        const fill = (request.header("x-fill") orelse "x")[0];
        const buffer = try a.alloc(u8, 4096);
        @memset(buffer, fill);
        if (request.header("x-mark")) |mark| (try std.fs.createFileAbsolute(mark, .{})).close();
        if (request.header("x-release")) |release| {
            var waited: usize = 0;
            while (waited < 10_000) : (waited += 1) {
                std.fs.accessAbsolute(release, .{}) catch {
                    std.time.sleep(std.time.ns_per_ms);
                    continue;
                };
                break;
            }
        }
        const intact = std.mem.allEqual(u8, buffer, fill);
        try out.print("{s}", .{if (intact) "intact" else "CORRUPT"});
    } else {
        try out.writeAll(VERSION);
    }

    const headers = try a.alloc(flexilib.Header, 2);
    const address = try std.fmt.allocPrint(a, "{x}", .{@intFromPtr(holder)});
    const thread = try std.fmt.allocPrint(a, "{d}", .{std.Thread.getCurrentId()});
    headers[0] = flexilib.Header.init("X-Allocator", address);
    headers[1] = flexilib.Header.init("X-Thread", thread);
    const response = try a.create(flexilib.Response);
    response.* = .{
        .ptr = body.items.ptr,
        .len = body.items.len,
        .headers = headers.ptr,
        .headers_len = headers.len,
    };
    return response;
}

fn number(request: *const flexilib.Request, name: []const u8) !usize {
    return std.fmt.parseInt(usize, request.header(name) orelse return error.MissingHeader, 10);
}
