"""WebAssembly handlers (`wasm:`): a WASI command per request, spoken to as WAGI (CGI for WASI)."""
