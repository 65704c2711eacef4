"""Bare Locust for ``bench/loadgen.py``: one FastHttpUser calling ``GET /cheap``, no think time.

    locust -f bench/locustfile_bare.py --headless -u 10 -r 10 -t 15s --host http://127.0.0.1:PORT
"""

from __future__ import annotations

from locust import FastHttpUser, constant, task


class BareUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def cheap(self) -> None:
        self.client.get("/cheap", name="GET /cheap")
