"""Bad input on the docker runtime: one clear TargetError each, and nothing left behind
(``make_stack`` checks the project's label after ``down()``)."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import yaml

from harness.errors import Interrupted, TargetError
from harness.images.bootstrap import build_image
from harness.stack.compose_cli import find_compose
from harness.stack.compose_engine import PROJECT_LABEL, connect
from tests.docker.conftest import StackFactory
from tests.docker.test_compose_stack import NoCancel

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]

ONE = """
name: one
target:
  runtime: docker
  services:
    api:
      command: "{python} -m targets.sample"
      cpu: CPU
"""


def test_no_engine_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    with pytest.raises(TargetError) as info:
        connect()
    message = str(info.value)
    assert f"none answered at unix://{tmp_path}/no-such.sock" in message
    assert "start dockerd" in message and "\n" not in message


def test_compose_error_names_the_cause(make_stack: StackFactory) -> None:
    stack = make_stack(ONE.replace("CPU", "64"))  # more CPUs than the machine has
    with pytest.raises(TargetError) as info:
        stack.up(NoCancel())
    message = str(info.value)
    assert message.startswith("service 'api': compose exited with 1")
    assert "CPUs" in message


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_port_already_in_use_is_a_clear_error(make_stack: StackFactory,
                                              taken_port: int) -> None:
    stack = make_stack(ONE.replace("CPU", "0.5"), entry_port=taken_port)
    with pytest.raises(TargetError) as info:
        stack.up(NoCancel())
    assert f"port 127.0.0.1:{taken_port} is already in use" in str(info.value)


def test_missing_image_is_named(make_stack: StackFactory) -> None:
    stack = make_stack(ONE.replace("CPU", "0.5") + "      image: cost-harness/nope:0\n")
    with pytest.raises(TargetError, match="image 'cost-harness/nope:0' is not on this engine"):
        stack.up(NoCancel())


def test_replica_that_exits_shows_its_output(make_stack: StackFactory) -> None:
    stack = make_stack(ONE.replace("CPU", "0.5").replace("targets.sample", "no_such_module"))
    with pytest.raises(TargetError) as info:
        stack.up(NoCancel())
    message = str(info.value)
    assert "exited with code 1 during start-up" in message
    assert "No module named no_such_module" in message


def test_failing_image_build_is_one_error_and_leaves_no_container(
        docker_client: docker.DockerClient, images: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(
        f"FROM {images['DEBIAN_BASE_IMAGE']}\nRUN echo 'about to fail' && exit 3\n")
    before = {c.id for c in docker_client.containers.list(all=True)}
    with pytest.raises(TargetError) as info:
        build_image(docker_client, tmp_path, "cost-harness/broken:test", {}, {})
    message = str(info.value)
    assert message.startswith("image cost-harness/broken:test: the build failed")
    assert "returned a non-zero code: 3" in message
    assert {c.id for c in docker_client.containers.list(all=True)} == before


class CancelAfter:
    """A run's stop flag that is set after ``calls`` checks (a SIGINT during start-up)."""

    def __init__(self, calls: int) -> None:
        self.calls = calls

    def raise_if_set(self) -> None:
        self.calls -= 1
        if self.calls < 0:
            raise Interrupted("SIGINT")


def test_interrupt_during_start_up_leaves_nothing(make_stack: StackFactory) -> None:
    stack = make_stack(ONE.replace("CPU", "0.5").replace("command:", "replicas: 2\n      command:"))
    with pytest.raises(Interrupted):
        stack.up(CancelAfter(8))  # inside a compose call or a health wait
    # make_stack's teardown runs down() and fails the test if anything labelled is left


def test_root_compose_file_is_valid_with_the_bootstrapped_images(
        images: dict[str, str], tmp_path: Path) -> None:
    env = dict(os.environ) | images
    command = find_compose()
    done = subprocess.run([*command, "-f", str(ROOT / "docker-compose.yml"), "config"],
                          env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    assert config["services"]["cache"]["image"] == images["REDIS_IMAGE"]
    assert config["services"]["db"]["image"] == images["POSTGRES_IMAGE"]
    for name, spec in config["services"].items():
        assert spec["labels"][PROJECT_LABEL] == "cost-harness-sample", name
        for port in spec.get("ports", []):  # v1 prints strings, v2 mappings
            host = port.get("host_ip") if isinstance(port, dict) else port.split(":")[0]
            assert host == "127.0.0.1", (name, port)
