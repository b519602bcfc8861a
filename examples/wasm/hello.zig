//! A WAGI handler in Zig: the request arrives in environment variables, the
//! response leaves on stdout as CGI (headers, a blank line, the body).
//! Built by examples/Makefile: python -m ziglang build-exe -target wasm32-wasi
const std = @import("std");

pub fn main() !void {
    var arena = std.heap.ArenaAllocator.init(std.heap.page_allocator);
    defer arena.deinit();
    const env = try std.process.getEnvMap(arena.allocator());
    const method = env.get("REQUEST_METHOD") orelse "?";
    const path = env.get("PATH_INFO") orelse "";
    const out = std.io.getStdOut().writer();
    try out.print("Content-Type: text/plain\n\nhello from Zig ({s} {s})\n", .{ method, path });
}
