"""Peak RSS of each replica of the served technical graph under hostile listings (issue 13).

Starts the technical-only variant of a serve config (`graphs/serve_config.yaml` by default: two
Preprocess replicas, 8 requests in flight each) with `serve run`, as `make bench` does, then sends
decompression bombs: 16-bit grey PNGs of 4000 x 4000 px (16 MP, under the 50 MP limit) of ~60 KB
each. Two scenarios:

- `listing`: one listing of 32 such images (the most a listing may hold);
- `concurrent`: four listings of 3 such images at once (915 MiB counted each: they fit a
  budget of 1 GiB).

Per replica it reports the peak RSS (the kernel's VmHWM, reset through /proc/PID/clear_refs just
before each scenario, so no sample can miss the peak) and its growth over the RSS it had then.

    python -m tools.hostile_memory [--config FILE] [--decode-memory-bytes N] [--bombs DIR]

`--bombs DIR` reads the bombs from DIR (written by `--write-bombs DIR`), so that a checkout
without `tests.support.synthetic.bomb_png` (the code before the budget) can be measured with the
same files. Needs Linux (/proc) and the same user as the service.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import requests
import yaml

from benchmarks.procmon import process_role
from benchmarks.service import DEFAULT_SERVE_CONFIG, ServeService, technical_only

MIB = 2**20
SIDE = 4000  # px: 16 MP of 16-bit grey


def write_bombs(directory: Path, count: int = 32) -> list[Path]:
    from tests.support.synthetic import bomb_png

    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = directory / f"bomb-{index:02d}.png"
        path.write_bytes(bomb_png(SIDE, SIDE, level=9) if index == 0 else paths[0].read_bytes())
        paths.append(path)
    return paths


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def replicas(root_pid: int) -> dict[int, str]:
    """pid -> deployment of every Serve replica under the service."""
    found = {}
    for process in psutil.Process(root_pid).children(recursive=True):
        role = process_role(process)
        if role.startswith("replica:"):
            found[process.pid] = role.removeprefix("replica:")
    return found


def reset_peaks(pids: dict[int, str]) -> dict[int, int]:
    """Start each replica's peak RSS again from now; its RSS now, bytes."""
    now = {}
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        now[pid] = _status_kib(pid, "VmRSS") * 1024
    return now


def peaks(pids: dict[int, str]) -> dict[int, int]:
    return {pid: _status_kib(pid, "VmHWM") * 1024 for pid in pids}


def send(url: str, listing_id: str, images: list[bytes]) -> dict[str, Any]:
    body = {"listing_id": listing_id, "category": "home", "marketplace": "US",
            "images": [{"image_id": f"bomb-{i}", "data": base64.b64encode(data).decode()}
                       for i, data in enumerate(images)]}
    started = time.monotonic()
    answer = requests.post(f"{url}/v1/assess", json=body, timeout=600)
    summary: dict[str, Any] = {"status": answer.status_code,
                               "seconds": round(time.monotonic() - started, 1)}
    try:
        payload = answer.json()
    except ValueError:
        return summary
    if "error" in payload:
        summary["error"] = payload["error"].get("code")
    else:
        codes: dict[str, int] = {}
        for image in payload.get("images", []):
            key = image["status"] if image["status"] == "ok" else image["error"]["code"]
            codes[key] = codes.get(key, 0) + 1
        summary["images"] = codes
    return summary


def scenario(url: str, pids: dict[int, str], listings: list[list[bytes]]) -> dict[str, Any]:
    before = reset_peaks(pids)
    with ThreadPoolExecutor(len(listings)) as pool:
        answers = list(pool.map(lambda pair: send(url, f"L-hostile-{pair[0]}", pair[1]),
                                enumerate(listings)))
    peak = peaks(pids)
    return {
        "answers": answers,
        "replicas": [
            {"deployment": pids[pid], "pid": pid, "rss_before_mib": round(before[pid] / MIB),
             "peak_rss_mib": round(peak[pid] / MIB),
             "growth_mib": round((peak[pid] - before[pid]) / MIB)}
            for pid in sorted(pids, key=lambda p: (pids[p], p))
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_SERVE_CONFIG)
    parser.add_argument("--decode-memory-bytes", type=int, default=None,
                        help="limits.decode_memory_bytes for the run (default: the config's)")
    parser.add_argument("--bombs", type=Path, help="read the bombs from this folder")
    parser.add_argument("--write-bombs", type=Path, help="only write the bombs to this folder")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.write_bombs:
        write_bombs(args.write_bombs)
        return 0
    if args.bombs:
        bombs = [path.read_bytes() for path in sorted(args.bombs.glob("bomb-*.png"))]
    else:
        with tempfile.TemporaryDirectory() as folder:
            bombs = [path.read_bytes() for path in write_bombs(Path(folder))]
    config = technical_only(yaml.safe_load(args.config.read_text()))
    if args.decode_memory_bytes:
        for application in config["applications"]:
            limits = application["args"].setdefault("limits", {})
            limits["decode_memory_bytes"] = args.decode_memory_bytes
    with tempfile.TemporaryDirectory() as folder:
        config_path = Path(folder) / "serve_config.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        with ServeService(config_path) as service:
            assert service._child is not None
            time.sleep(5)  # let autoscaling's initial replicas come up
            pids = replicas(service._child.pid)
            figures = {
                "bomb": f"{SIDE}x{SIDE} 16-bit grey PNG, {len(bombs[0])} bytes",
                "decode_memory_bytes": args.decode_memory_bytes,
                "listing": scenario(service.url, pids, [bombs[:32]]),
                "concurrent": scenario(service.url, pids, [bombs[:3]] * 4),
            }
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
