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
from graphs.batch_options import (
    EXTRACTOR_MEMORY,
    LISTING_MEMORY,
    MIB,
    SCORER_MEMORY,
    ActorMemory,
    BatchOptions,
)
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
# dev-set photos through it; its peak RSS is what the actor needs Ray to leave it. The model
# actors get the photos measured beforehand, unpickled as Ray Data delivers them (the Preprocess
# stage ran elsewhere, as in the job). A listing actor, once a fix has loaded its pipeline, sends
# each fixed file alone through all three stages: it gets the files, one at a time.
_PEAK_SCRIPT = """
import json, pickle, sys
from pathlib import Path
import ray.data  # as in every Ray Data actor
from curator.core.pipeline import (
    LocalPipeline, build_extractor, build_scorer, extract_stage, score_stage)
from graphs.batch import BatchSettings

stage, inputs, config = sys.argv[1], sys.argv[2], sys.argv[3]
settings = BatchSettings.from_serve_config(Path(config))
models = settings.models
with open(inputs, "rb") as file:
    batches = pickle.load(file)
if stage == "extract":
    extractor = build_extractor(models.extractor_models, models.runtime_request())
    run = lambda items: extract_stage(extractor, items)
elif stage == "score":
    scorer = build_scorer(models.scorer_card)
    run = lambda items: score_stage(scorer, items)
else:
    pipeline = LocalPipeline(models, settings.app_args.limits)
    run = lambda files: [pipeline.run([file]) for file in files]
for batch in batches:
    run(batch)
# VmHWM, this process image's own peak: ru_maxrss would carry over the forking parent's.
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"peak": int(hwm.split()[1]) * 1024}))
"""
BATCH = 8


@pytest.fixture(scope="module")
def actor_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three batches of dev-set photos, pickled: measured, as the model actors receive them
    (`measured`), and as (image id, file) pairs, for the listing actor (`files`)."""
    from curator.core.measured import measure_locally
    from curator.core.pipeline import build_preprocessor

    preprocessor = build_preprocessor()
    photos = sorted((ROOT / "benchmarks" / "devset" / "images").rglob("*.jpg"))
    photos = photos[::len(photos) // (3 * BATCH)][:3 * BATCH]
    files = [(photo.name, photo.read_bytes()) for photo in photos]
    items = [measure_locally(data, image_id, preprocessor, keep_model_inputs=True)
             for image_id, data in files]
    folder = tmp_path_factory.mktemp("actor-memory")
    paths = {"measured": folder / "measured.pickle", "files": folder / "files.pickle"}
    for kind, values in (("measured", items), ("files", files)):
        paths[kind].write_bytes(pickle.dumps(
            [values[i:i + BATCH] for i in range(0, len(values), BATCH)]))
    return paths


@pytest.mark.slow
@pytest.mark.parametrize(("stage", "inputs", "memory", "batch"), [
    ("extract", "measured", EXTRACTOR_MEMORY, BATCH),
    ("score", "measured", SCORER_MEMORY, BATCH),
    ("listing", "files", LISTING_MEMORY, 1),  # its fixed images go through one at a time
])
def test_the_reservation_covers_what_an_actor_really_takes(
    stage: str, inputs: str, memory: ActorMemory, batch: int, actor_inputs: dict[str, Path]
) -> None:
    done = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, stage, str(actor_inputs[inputs]),
                           str(ROOT / "graphs" / "serve_config.yaml")],
                          cwd=ROOT, check=True, capture_output=True, text=True, timeout=300)
    peak = json.loads(done.stdout.strip().splitlines()[-1])["peak"]
    print(f"{stage} at batch {batch}: peak RSS {peak / MIB:.0f} MiB, reserved "
          f"{memory.reserve(batch) / MIB:.0f} MiB")
    assert peak <= memory.reserve(batch)
    # Without its headroom the line is the measurement: a reservation far above it would
    # strand memory that other actors could use.
    assert peak >= 0.6 * replace(memory, headroom=1.0).reserve(batch)


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
