"""What the batch job's model actors ask Ray for: CPUs and the memory their batches take
(measured again here), or a GPU share pinned to a GPU model when the cluster mixes them. (A run
on a fake cluster with L4 nodes: benchmarks/cluster_batch.py.)"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from curator.cli import batch as batch_cli
from curator.cli import main
from graphs.batch_options import EXTRACTOR_MEMORY, MIB, SCORER_MEMORY, ActorMemory, BatchOptions
from tests.graphs.manifests import write_csv

ROOT = Path(__file__).resolve().parents[2]


def test_without_gpus_the_actors_ask_for_cpus_and_the_memory_their_batches_take() -> None:
    memory = ActorMemory(loaded_bytes=500 * MIB, per_image_bytes=100 * MIB, headroom=1.0)
    assert BatchOptions(batch_size=4).model_actor_resources(2, memory) == {
        "num_cpus": 2, "memory": 900 * MIB}
    assert BatchOptions(batch_size=16).model_actor_resources(2, memory) == {
        "num_cpus": 2, "memory": 2100 * MIB}
    # The shipped figures keep headroom over what was measured: 2219 MiB at batch 16.
    assert EXTRACTOR_MEMORY.reserve(16) > 2219 * MIB
    assert SCORER_MEMORY.reserve(16) > 505 * MIB


def test_a_gpu_share_leaves_the_cpu_side_to_ray_data() -> None:
    options = BatchOptions(gpus_per_model_actor=0.5)
    assert options.model_actor_resources(2, EXTRACTOR_MEMORY) == {"num_gpus": 0.5}


def test_an_accelerator_type_pins_the_gpu_model() -> None:
    options = BatchOptions(gpus_per_model_actor=0.5, accelerator_type="L4")
    assert options.model_actor_resources(2, EXTRACTOR_MEMORY) == {"num_gpus": 0.5,
                                                                   "accelerator_type": "L4"}


# A fresh process loads the stage as a batch actor does (graphs.batch_stages) and runs batches of
# measured dev-set photos through it, unpickled as the actor receives them (the Preprocess stage
# ran elsewhere, as in the job); its peak RSS is what the actor needs Ray to leave it.
_PEAK_SCRIPT = """
import json, pickle, sys
import ray.data  # as in every Ray Data actor
from curator.core.pipeline import build_extractor, build_scorer, extract_stage, score_stage
from graphs.batch import BatchSettings

stage, batch, inputs, config = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
models = BatchSettings.from_serve_config(__import__("pathlib").Path(config)).models
if stage == "extract":
    extractor = build_extractor(models.extractor_models, models.runtime_request())
    run = lambda items: extract_stage(extractor, items)
else:
    scorer = build_scorer(models.scorer_card)
    run = lambda items: score_stage(scorer, items)
with open(inputs, "rb") as file:
    batches = pickle.load(file)
for items in batches:
    run(items)
# VmHWM, this process image's own peak: ru_maxrss would carry over the forking parent's.
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"peak": int(hwm.split()[1]) * 1024}))
"""
BATCH = 8


@pytest.fixture(scope="module")
def measured_batches(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three batches of measured dev-set photos, pickled as Ray Data carries them."""
    from curator.core.measured import measure_locally
    from curator.core.pipeline import build_preprocessor

    preprocessor = build_preprocessor()
    photos = sorted((ROOT / "benchmarks" / "devset" / "images").rglob("*.jpg"))
    photos = photos[::len(photos) // (3 * BATCH)][:3 * BATCH]
    items = [measure_locally(photo.read_bytes(), photo.name, preprocessor,
                             keep_model_inputs=True) for photo in photos]
    path = tmp_path_factory.mktemp("actor-memory") / "batches.pickle"
    path.write_bytes(pickle.dumps([items[i:i + BATCH] for i in range(0, len(items), BATCH)]))
    return path


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "memory"), [("extract", EXTRACTOR_MEMORY),
                                               ("score", SCORER_MEMORY)])
def test_the_reservation_covers_what_an_actor_really_takes(
    stage: str, memory: ActorMemory, measured_batches: Path
) -> None:
    done = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, stage, str(BATCH),
                           str(measured_batches), str(ROOT / "graphs" / "serve_config.yaml")],
                          cwd=ROOT, check=True, capture_output=True, text=True, timeout=300)
    peak = json.loads(done.stdout.strip().splitlines()[-1])["peak"]
    print(f"{stage} at batch {BATCH}: peak RSS {peak / MIB:.0f} MiB, reserved "
          f"{memory.reserve(BATCH) / MIB:.0f} MiB")
    assert peak <= memory.reserve(BATCH)
    # Without its headroom the line is the measurement: a reservation far above it would
    # strand memory that other actors could use.
    assert peak >= 0.6 * replace(memory, headroom=1.0).reserve(BATCH)


def test_the_accelerator_option_reaches_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[BatchOptions] = []

    def run(_address: object, _manifest: object, _out: object, _settings: object,
            options: BatchOptions) -> object:
        ran.append(options)
        return SimpleNamespace(lines=lambda: [])

    monkeypatch.setattr(batch_cli, "_run_on_ray", run)
    manifest = write_csv(tmp_path / "manifest.csv",
                         [{"listing_id": "L-1", "image_id": "front", "path": "front.jpg"}])
    argv = ["batch", str(manifest), "--out", str(tmp_path / "out"),
            "--gpus-per-model-actor", "0.5", "--accelerator-type", "L4"]
    assert main(argv) == 0
    assert [(o.gpus_per_model_actor, o.accelerator_type) for o in ran] == [(0.5, "L4")]
