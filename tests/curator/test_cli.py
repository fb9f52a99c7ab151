"""The `curator` command: `assess` in-process, and `serve` as `make serve` runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests
import yaml

from curator.cli import main
from graphs.serve_config import DEFAULT_SERVE_CONFIG
from tests.integration.conftest import free_port
from tests.support import synthetic


def test_assess_prints_the_listing_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    white = tmp_path / "white.jpg"
    white.write_bytes(synthetic.to_jpeg_bytes(synthetic.render_product(size=(1100, 1100))))
    busy = tmp_path / "busy.jpg"
    busy.write_bytes(synthetic.to_jpeg_bytes(synthetic.render_product(background="busy")))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff not really")
    assert main(["assess", str(busy), str(white), str(broken), "--listing-id", "L-9"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["listing_id"] == "L-9"
    assert answer["selection"]["main_image_id"] == "white.jpg"
    statuses = {image["image_id"]: image["status"] for image in answer["images"]}
    assert statuses == {"busy.jpg": "ok", "white.jpg": "ok", "broken.jpg": "error"}


def test_vocabulary_lists_every_attribute(capsys: pytest.CaptureFixture[str]) -> None:
    from curator.contracts.vocabulary import VOCABULARY

    assert main(["vocabulary"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(VOCABULARY)


def test_serve_config_is_valid_and_batches_fit() -> None:
    from curator.cli.main import _validated_serve_config
    from curator.core.settings import CuratorAppArgs, CuratorConfig
    from deployments.batching import BatchingConfig
    from graphs.online import scorer_deployment_name

    for path in (DEFAULT_SERVE_CONFIG, DEFAULT_SERVE_CONFIG.with_name("serve_config.gpu.yaml")):
        config = _validated_serve_config(path)
        application = config["applications"][0]
        models = CuratorAppArgs.model_validate(application["args"]).models
        assert models is not None
        limit = models.max_batch_size_limit
        batched = set()
        for deployment in application["deployments"]:
            if deployment["name"] == "Canary":
                # One replica by design (the single writer of canary transitions).
                assert "autoscaling_config" not in deployment and "num_replicas" not in deployment
                continue
            scaling = deployment["autoscaling_config"]
            assert scaling["min_replicas"] <= scaling["max_replicas"]
            # A replica must be able to hold the queue the autoscaler aims for.
            assert scaling["target_ongoing_requests"] <= deployment["max_ongoing_requests"]
            if deployment["name"] == "Curator":
                CuratorConfig.model_validate(deployment.get("user_config", {}))
            elif "user_config" in deployment:
                batching = BatchingConfig.model_validate(deployment["user_config"])
                # Batches only fill when a replica may hold a whole batch (ray#43288).
                assert deployment["max_ongoing_requests"] >= 2 * batching.max_batch_size
                assert batching.max_batch_size <= limit
                batched.add(deployment["name"])
        scorers = {scorer_deployment_name(card, models.scorer_card) for card in models.scorer_cards}
        assert batched == {"AttributeExtractor", *scorers}


def test_cluster_yaml_is_a_valid_launcher_config() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((Path(__file__).parents[2] / "cluster.yaml").read_text())
    validate_config(prepare_config(config))


@pytest.mark.integration
def test_serve_starts_answers_and_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    config = yaml.safe_load(DEFAULT_SERVE_CONFIG.read_text())
    port = free_port()
    config["http_options"]["port"] = port
    config_path = tmp_path / "serve.yaml"
    config_path.write_text(yaml.safe_dump(config))
    curator_bin = Path(sys.executable).with_name("curator")
    log_path = tmp_path / "serve.log"
    # A file, not a pipe: Ray logs a lot, and a pipe nobody drains would block the server.
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(curator_bin), "serve", "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # As a shell starts a background job: SIGINT ignored. It must still stop on SIGINT.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    descendants: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            if "curator is serving at" in log_path.read_text():
                break
            time.sleep(1)
        assert f"curator is serving at http://127.0.0.1:{port}" in log_path.read_text()
        descendants = psutil.Process(process.pid).children(recursive=True)
        assert any("raylet" in " ".join(p.cmdline()) for p in descendants if p.is_running())
        health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
        assert health.status_code == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0
        # Serve and the Ray it started are gone with it.
        _gone, alive = psutil.wait_procs(descendants, timeout=60)
        assert not [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        for leftover in descendants:
            if leftover.is_running():
                leftover.kill()
