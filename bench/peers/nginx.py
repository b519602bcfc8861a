"""nginx configurations for the suite: `return 200` with the fixed payload, or proxy_pass.

One master and one worker (`worker_processes 1`), in the foreground (`daemon off`),
listening on loopback, every path under a private prefix directory, the access
log (default `combined` format, unbuffered) written to a file.
"""

from __future__ import annotations

from pathlib import Path

from lib.payload import BODY, CONTENT_TYPE, EXTRA_HEADERS, STATUS

_MAIN = """\
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 8192;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log {access_log};
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{http}
}}
"""

_RETURN = """\
    server {{
        listen 127.0.0.1:{port};
        default_type {content_type};
{add_headers}
        location / {{ return {status} "{body}"; }}
    }}"""

_PROXY = """\
    upstream backend {{
        server 127.0.0.1:{upstream_port};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"""


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def write_return_config(prefix: Path, port: int, access_log: Path) -> Path:
    """Writes a config answering every request with the fixed payload; returns its path."""
    add_headers = "\n".join(f"        add_header {n} {_quote(v)};" for n, v in EXTRA_HEADERS)
    http = _RETURN.format(
        port=port,
        content_type=CONTENT_TYPE,
        add_headers=add_headers,
        status=STATUS,
        body=_quote(BODY.decode("latin-1")),
    )
    return _write(prefix, access_log, http)


def write_proxy_config(prefix: Path, port: int, upstream_port: int, access_log: Path) -> Path:
    """Writes a config passing every request to 127.0.0.1:upstream_port over keep-alive."""
    return _write(prefix, access_log, _PROXY.format(port=port, upstream_port=upstream_port))


def _write(prefix: Path, access_log: Path, http: str) -> Path:
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(_MAIN.format(prefix=prefix, access_log=access_log, http=http))
    return conf
