"""Cloudflare Python Workers (`worker:` targets).

- `handler`: the kind; `runner`: one request through a worker module;
- `alias`: makes `import workers` give `sdk`, the SDK emulated in CPython.
"""
