"""A third-party style locustfile: plain HttpUser, tasks, wait_time; nothing harness-specific."""

from locust import HttpUser, between, task


class Visitor(HttpUser):
    wait_time = between(0.01, 0.05)

    @task(3)
    def index(self) -> None:
        self.client.get("/")

    @task
    def missing(self) -> None:
        with self.client.get("/no-such-page", name="missing", catch_response=True) as resp:
            if resp.status_code == 404:
                resp.success()
