"""The reverse proxy (`http://` and `https://` targets), one job per module.

- `handler`: the kind; `options`: the `name=value` options a proxy rule takes.
- `upstream`: one upstream URL (path mapping, Host) and the balancer over a pool of them.
- `pool`: keep-alive connections to one upstream, with a cap.
- `connection`: one upstream connection: writes with flow control, responses parsed by llhttp.
- `headers`: what is forwarded each way (hop-by-hop removal, X-Forwarded-*).
- `forward`: one request through the proxy, failures mapped to 502/504.
- `tunnel`: bytes both ways after a `101 Switching Protocols`.
"""
