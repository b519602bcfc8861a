//! A WAGI handler in Rust: every CGI variable the request brought, one per line.
//! Built by examples/Makefile: rustc --target wasm32-wasi (Debian rustc with
//! libstd-rust-dev-wasm32; no cargo, no crates).
use std::io::Write;

fn main() {
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.sort();
    let mut out = std::io::stdout().lock();
    out.write_all(b"Content-Type: text/plain\n\nhello from Rust\n").unwrap();
    for (name, value) in vars {
        writeln!(out, "{}={}", name, value).unwrap();
    }
}
