//! A Zig 0.13 test library for hot swaps: answers VERSION, which each build replaces,
//! from memory it allocates in the arena zigInit hands over (so a version that ran with
//! another version's allocator, or after its arena was reset, would answer garbage).
const std = @import("std");
const flexilib = @import("flexilib");

const VERSION = "zig-v0";

threadlocal var arena: ?*std.mem.Allocator = null;

export fn zigInit(parent_allocator: *anyopaque) callconv(.C) void {
    arena = @ptrCast(@alignCast(parent_allocator));
}

export fn handle_request(request: *const flexilib.Request) callconv(.C) ?*flexilib.Response {
    _ = request;
    const a = (arena orelse return null).*;
    const body = a.dupe(u8, VERSION) catch return null;
    const response = a.create(flexilib.Response) catch return null;
    response.* = .{ .ptr = body.ptr, .len = body.len, .headers = undefined, .headers_len = 0 };
    return response;
}
