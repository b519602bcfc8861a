//! flexilib.zig - include/flexilib.h for Zig 0.13 libraries.
//!
//! The same C layout as flexilib.h (and the original FlexiLib's interface),
//! plus the Zig-only part of the interface: a library that exports
//!
//!     export fn zigInit(parent_allocator: *anyopaque) callconv(.C) void
//!
//! is called with a pointer to a `std.mem.Allocator` at the start of every
//! request, on the thread that then calls `handle_request`. That allocator is
//! the thread's arena: allocate the response (struct, body, headers) from it
//! and free nothing; the server resets it once the response is copied. It is
//! valid only on that thread until the request ends (after request_deinit).
//!
//! Build: python -m ziglang build-lib -dynamic -lc -O ReleaseSafe \
//!          --dep flexilib -Mroot=mine.zig -Mflexilib=include/flexilib.zig
const std = @import("std");

/// One HTTP header; neither part is NUL-terminated.
pub const Header = extern struct {
    name_ptr: [*]const u8,
    name_len: usize,
    value_ptr: [*]const u8,
    value_len: usize,

    pub fn name(h: Header) []const u8 {
        return h.name_ptr[0..h.name_len];
    }

    pub fn value(h: Header) []const u8 {
        return h.value_ptr[0..h.value_len];
    }

    pub fn init(header_name: []const u8, header_value: []const u8) Header {
        return .{
            .name_ptr = header_name.ptr,
            .name_len = header_name.len,
            .value_ptr = header_value.ptr,
            .value_len = header_value.len,
        };
    }
};

/// The request: owned by the server, valid during handle_request only.
pub const Request = extern struct {
    target: [*]const u8,
    target_len: usize,
    method: [*:0]const u8,
    method_len: usize,
    content: [*]const u8,
    content_len: usize,
    headers: [*]const Header,
    headers_len: usize,

    /// The value of the first header called `wanted` (any case), or null.
    pub fn header(r: *const Request, wanted: []const u8) ?[]const u8 {
        for (r.headers[0..r.headers_len]) |h| {
            if (std.ascii.eqlIgnoreCase(h.name(), wanted)) return h.value();
        }
        return null;
    }

    pub fn path(r: *const Request) []const u8 {
        return r.target[0..r.target_len];
    }
};

/// The response: owned by the library until request_deinit (or its next
/// request on the thread). status 0 means 200; reason_len 0 the standard phrase.
pub const Response = extern struct {
    ptr: [*]const u8,
    len: usize,
    headers: [*]const Header,
    headers_len: usize,
    status: usize = 0,
    reason_ptr: [*]const u8 = "",
    reason_len: usize = 0,
};

comptime {
    // flexilib.h's sizes: a mismatch is a compile error here, not a bad read in the server.
    std.debug.assert(@sizeOf(Header) == 4 * @sizeOf(usize));
    std.debug.assert(@sizeOf(Request) == 8 * @sizeOf(usize));
    std.debug.assert(@sizeOf(Response) == 7 * @sizeOf(usize));
}
