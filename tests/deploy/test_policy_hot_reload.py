"""Hot reload of the policy set through `serve deploy`, on a real Ray cluster started with
`ray start`, under a steady request stream: no failed request, one switch point, no restart,
and a broken policy set refused while the old one stays live.

Its own package (not tests/integration): `serve deploy` is declarative and owns every
application of its cluster, so it gets a cluster of its own.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from rules import POLICY_DIR, policy_set_from_texts
from rules.loader import read_policy_texts
from tests.integration.conftest import free_port
from tests.support import synthetic

pytestmark = pytest.mark.integration

READY_TIMEOUT_S = 240
IMAGE = base64.b64encode(
    synthetic.to_jpeg_bytes(synthetic.render_product(size=(700, 700), seed=31))
).decode()


@dataclass(frozen=True)
class Cluster:
    url: str
    dashboard: str
    workdir: Path
    env: dict[str, str]

    def deploy(self, policies: dict[str, str], admission: dict[str, object] | None = None
               ) -> None:
        """`serve deploy` of the technical graph with `policies` in the ingress user_config.
        No load shedding unless `admission` says otherwise: this test counts every non-200
        answer as a failed reload (tests/integration/test_admission_http.py covers the 429s)."""
        config = {
            "proxy_location": "HeadOnly",
            "http_options": {"host": "127.0.0.1", "port": int(self.url.rsplit(":", 1)[1])},
            "applications": [{
                "name": "curator",
                "route_prefix": "/",
                "import_path": "graphs.online:build_app",
                "args": {"models": None},
                "deployments": [
                    {"name": "Curator", "num_replicas": 1,
                     "user_config": {"policies": policies,
                                     "admission": admission or {"enabled": False}}},
                    {"name": "Preprocess", "num_replicas": 1,
                     "ray_actor_options": {"num_cpus": 0.5}},
                ],
            }],
        }
        path = self.workdir / f"serve-{time.monotonic_ns()}.yaml"
        path.write_text(yaml.safe_dump(config))
        done = subprocess.run(
            [sys.executable, "-m", "ray.serve.scripts", "deploy", str(path),
             "--address", self.dashboard],
            capture_output=True, text=True, timeout=120, env=self.env,
        )
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("deploy")
    dashboard_port, serve_port = free_port(), free_port()
    # Ray 2.59+ authenticates its dashboard with a token on local clusters: give the cluster
    # and the `serve deploy` client the same one, rather than rely on a file under $HOME.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env.pop("RAY_ADDRESS", None)
    ray = [sys.executable, "-m", "ray.scripts.scripts"]
    subprocess.run(
        [*ray, "start", "--head", f"--port={free_port()}", "--num-cpus=4",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dashboard_port}", "--disable-usage-stats"],
        check=True, capture_output=True, timeout=180, env=env,
    )
    try:
        yield Cluster(f"http://127.0.0.1:{serve_port}", f"http://127.0.0.1:{dashboard_port}",
                      workdir, env)
    finally:
        subprocess.run([*ray, "stop"], capture_output=True, timeout=120, env=env)


def wait_for(predicate: Any, what: str, timeout_s: float = READY_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except requests.RequestException:
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass(frozen=True)
class Answer:
    started: float
    ended: float
    status: int
    policy_set_version: str | None


class Stream:
    """A few clients each sending one listing after another, recording every answer."""

    def __init__(self, url: str, clients: int = 3) -> None:
        self.url = url
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True)
                         for i in range(clients)]

    def __enter__(self) -> Stream:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _client(self, index: int) -> None:
        session = requests.Session()
        sent = 0
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                response = session.post(
                    f"{self.url}/v1/assess", timeout=30,
                    json={"listing_id": f"stream-{index}-{sent}",
                          "images": [{"image_id": "a", "data": IMAGE}]},
                )
                status = response.status_code
                version = response.json().get("policy_set_version") if status == 200 else None
            except requests.RequestException:
                status, version = 0, None
            self.answers.append(Answer(started, time.monotonic(), status, version))
            sent += 1


def live(cluster: Cluster) -> tuple[str, str | None]:
    policy = requests.get(f"{cluster.url}/v1/policies/default/US", timeout=5).json()
    return policy["policy_set_version"], policy.get("reload_error")


def replica(cluster: Cluster) -> str:
    return str(requests.get(f"{cluster.url}/v1/version", timeout=5).json()["replica_id"])


V1 = read_policy_texts(POLICY_DIR)
V2 = {**V1, "base.yaml": V1["base.yaml"].replace(
    'require: {attribute: file.longest_side, op: ">=", value: 1000}',
    'require: {attribute: file.longest_side, op: ">=", value: 1100}')}


def broken(file: str, old: str, new: str) -> dict[str, str]:
    assert old in V2[file]
    return {**V2, file: V2[file].replace(old, new, 1)}


# Each load error, pushed to the running service: (policy set, words its refusal must carry).
MALFORMED: dict[str, tuple[dict[str, str], str]] = {
    "override-of-unknown-rule": (
        broken("categories/shoes.yaml", "main.people.none:", "main.people.nobody:"),
        "categories/shoes.yaml:",
    ),
    "unknown-attribute": (
        broken("base.yaml", "attribute: frame.border,", "attribute: frame.borders,"),
        "unknown attribute 'frame.borders'",
    ),
    "wrong-type": (
        broken("base.yaml", "op: \">=\", value: 0.97}", "op: \">=\", value: high}"),
        "background.white_fraction must be float, got str",
    ),
    "unknown-fix": (
        broken("base.yaml", "fix: trim_border", "fix: trim_borders"), "unknown fix 'trim_borders'",
    ),
    "duplicate-rule-id": (
        broken("categories/jewelry-us.yaml", "- id: main.size.jewelry_range",
               "- id: main.size.zoom"),
        "rule main.size.zoom is already defined by base",
    ),
    "cycle-in-extends": (
        broken("categories/apparel.yaml", "extends: base", "extends: kids-apparel"),
        "cycle in extends",
    ),
}


def test_policy_set_hot_reload_under_load(cluster: Cluster) -> None:
    v1_texts, v2_texts = V1, V2
    v1, v2 = policy_set_from_texts(v1_texts).version, policy_set_from_texts(v2_texts).version
    assert v1 != v2

    cluster.deploy(v1_texts)
    wait_for(lambda: live(cluster)[0] == v1, "the first deployment")
    first_replica = replica(cluster)

    with Stream(cluster.url) as stream:
        wait_for(lambda: len(stream.answers) >= 20, "traffic before the switch")
        cluster.deploy(v2_texts)
        wait_for(lambda: live(cluster) == (v2, None), "the new policy set")
        switched = len(stream.answers)
        wait_for(lambda: len(stream.answers) >= switched + 20, "traffic after the switch")

        refused = len(stream.answers)
        errors = {}
        for name, (texts, words) in MALFORMED.items():
            cluster.deploy(texts)
            errors[name] = wait_for(lambda words=words: words in (live(cluster)[1] or "")
                                    and live(cluster)[1], f"the {name} set to be refused")
        wait_for(lambda: len(stream.answers) >= refused + 20, "traffic after the refusals")

    answers = stream.answers
    assert [a for a in answers if a.status != 200] == []
    assert {a.policy_set_version for a in answers} == {v1, v2}
    # One switch point: every request answered by v1 started before every v2 answer ended.
    old = [a for a in answers if a.policy_set_version == v1]
    new = [a for a in answers if a.policy_set_version == v2]
    assert max(a.started for a in old) < min(a.ended for a in new)
    # The broken sets changed nothing: v2 still decides, the same replica still answers.
    assert "main.people.nobody" in errors["override-of-unknown-rule"]
    assert all(a.policy_set_version == v2 for a in answers[refused:])
    assert live(cluster)[0] == v2
    assert replica(cluster) == first_replica

    # Admission limits are live settings too: applied by the same replica, no restart.
    cluster.deploy(v2_texts, admission={"initial_limit": 5, "min_limit": 5, "max_limit": 5})
    wait_for(lambda: requests.get(f"{cluster.url}/healthz", timeout=5).json()["admission"]
             ["limit"] == 5, "the new admission limit")
    assert replica(cluster) == first_replica
