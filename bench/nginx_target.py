"""Debian's nginx as a load-generation target: one worker on 127.0.0.1:PORT serving ``/cheap``
(the sample target's ~100-byte JSON document, as a static file), ``/health`` and ``/status``
(``stub_status``: requests served so far).

    .venv/bin/python bench/nginx_target.py PORT DIR

Writes its configuration and files under DIR, then replaces itself with ``nginx`` in the
foreground, so whoever started it stops nginx by signalling this process (group).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

CHEAP = {"item": 42, "name": "cheap", "price_cents": 199, "currency": "EUR", "in_stock": True,
         "tags": ["sample", "cheap"]}  # fmt: skip - the same document as targets.sample /cheap

CONFIG = """
worker_processes 1;
daemon off;
master_process on;
user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/tmp;
    proxy_temp_path {dir}/tmp;
    fastcgi_temp_path {dir}/tmp;
    uwsgi_temp_path {dir}/tmp;
    scgi_temp_path {dir}/tmp;
    keepalive_requests 1000000;
    default_type application/json;
    server {{
        listen 127.0.0.1:{port} backlog=1024;
        root {dir}/www;
        location = /cheap {{ try_files /cheap.json =404; }}
        location = /health {{ try_files /health.txt =404; }}
        location = /status {{ stub_status; }}
    }}
}}
"""


def prepare(port: int, directory: Path) -> Path:
    """Write the site and ``nginx.conf`` under ``directory``; the config's path."""
    www = directory / "www"
    www.mkdir(parents=True, exist_ok=True)
    (directory / "tmp").mkdir(exist_ok=True)
    (www / "cheap.json").write_text(json.dumps(CHEAP, separators=(",", ":")), encoding="utf-8")
    (www / "health.txt").write_text("ok", encoding="utf-8")
    conf = directory / "nginx.conf"
    conf.write_text(CONFIG.format(dir=directory.resolve(), port=port), encoding="utf-8")
    return conf


def main() -> None:
    if len(sys.argv) != 3 or not sys.argv[1].isdigit():
        raise SystemExit("usage: nginx_target.py PORT DIR")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        raise SystemExit("nginx is not installed: apt-get install -y nginx-light")
    directory = Path(sys.argv[2]).resolve() / "nginx"
    conf = prepare(int(sys.argv[1]), directory)
    os.execv(nginx, [nginx, "-e", str(directory / "error.log"), "-p", str(directory),
                     "-c", str(conf)])  # fmt: skip


if __name__ == "__main__":
    main()
