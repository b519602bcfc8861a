//! hello.zig - a Zig 0.13 library written like the original FlexiLib's sample:
//! everything a request needs comes from the allocator zigInit hands over (the
//! serving thread's arena), and nothing is freed: the server resets the arena
//! after the response.
//!
//!   GET /zig                    hello from Zig
//!   GET /zig  X-Name: Ada       hello Ada, from Zig
//!   every answer                X-Zig-Version: <compiler version>
//!                               X-Request-Headers: <number of request headers>
const std = @import("std");
const builtin = @import("builtin");
const flexilib = @import("flexilib");

/// The arena for the request this thread is serving, set by zigInit.
threadlocal var arena: ?*std.mem.Allocator = null;

export fn zigInit(parent_allocator: *anyopaque) callconv(.C) void {
    arena = @ptrCast(@alignCast(parent_allocator));
}

export fn handle_request(request: *const flexilib.Request) callconv(.C) ?*flexilib.Response {
    const allocator = (arena orelse {
        std.log.err("zigInit was not called before handle_request", .{});
        return null;
    }).*;
    return respond(allocator, request) catch |err| {
        std.log.err("hello.zig: {s}", .{@errorName(err)});
        return null; // the server answers 500
    };
}

fn respond(allocator: std.mem.Allocator, request: *const flexilib.Request) !*flexilib.Response {
    var body = std.ArrayList(u8).init(allocator);
    try body.appendSlice("hello");
    if (request.header("x-name")) |name| {
        try body.writer().print(" {s},", .{name});
    }
    try body.appendSlice(" from Zig");

    const headers = try allocator.alloc(flexilib.Header, 2);
    headers[0] = flexilib.Header.init("X-Zig-Version", builtin.zig_version_string);
    const count = try std.fmt.allocPrint(allocator, "{d}", .{request.headers_len});
    headers[1] = flexilib.Header.init("X-Request-Headers", count);

    const response = try allocator.create(flexilib.Response);
    response.* = .{
        .ptr = body.items.ptr,
        .len = body.items.len,
        .headers = headers.ptr,
        .headers_len = headers.len,
    };
    return response;
}
