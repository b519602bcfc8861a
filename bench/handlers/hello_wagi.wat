;; The bench's WAGI module: the suite's one response (bench/lib/payload.py) as a CGI
;; response on stdout, from a WASI command. WebAssembly text: the wasm: kind compiles it
;; itself, so the bench needs no wasm toolchain. It imports only fd_write, so what it
;; measures is the kind's floor: a fresh instance, its WASI context, one write.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "Content-Type: text/plain\nX-custom-foo: bar\n\n 1")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 64))  ;; iovec: base
    (i32.store (i32.const 4) (i32.const 46))  ;; iovec: length
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
