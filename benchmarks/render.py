"""The text report `make bench` prints: per-model figures, then each graph's in-process limit,
closed-loop table, formed batch sizes, open-loop table and targets, then the graphs side by
side."""

from __future__ import annotations

from typing import Any

from benchmarks.soak import render_soak
from benchmarks.targets import PEAK_SHARE, littles_law_ms, target_line

Result = dict[str, Any]
LITTLE_TOLERANCE = 0.25  # mean latency vs c / throughput: beyond this, not a steady state


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_text(result: Result) -> str:
    machine = result["machine"]
    lines = [
        f"curator benchmark - {machine['date']}  commit {machine['git_commit'] or '(none)'}"
        f"{' (dirty)' if machine['git_dirty'] else ''}",
        f"host: {machine['cpu_model']} ({machine.get('cpu_flags', '')}), "
        f"{machine['logical_cores']} cores, "
        f"{machine['ram_gib']} GiB; python {machine['python']}, ray {machine['ray']}; "
        f"load avg (1/5/15 min) at start {machine['load_average_at_start']}, at end "
        f"{result['load_average_at_end']}; phases {result['phases_s']} s",
        f"images: {result['settings']['image']}",
    ]
    if result["models"]:
        lines += ["", *render_models(result["models"])]
    if result.get("devset"):
        lines += ["", *render_devset(result["devset"])]
    for graph in result["graphs"].values():
        lines += ["", *render_graph(graph, result["settings"])]
        if graph.get("soak"):
            lines += ["", *render_soak(graph["soak"], machine)]
    if len(result["graphs"]) > 1:
        lines += ["", *render_side_by_side(result["graphs"])]
    if result.get("batch"):
        full = result["graphs"].get("full")
        lines += ["", *render_batch(result["batch"],
                                    full["inprocess"]["images_per_s"] if full else None)]
    return "\n".join(lines)


def render_devset(devset: Result) -> list[str]:
    """Agreement with the reviewer's labels, as `curator eval` prints it, and its targets."""
    lines = [
        f"=== DEV SET (curator eval: {devset['images']} labelled images, {devset['groups']} "
        f"groups; extractor {','.join(devset['extractor_models'])}) ===",
        f"  {'label':22} {'precision':>9} {'recall':>7} {'F1':>6}   TP   FP   FN   TN",
    ]
    for label, score in devset["labels"].items():
        lines.append(
            f"  {label:22} {_fmt(score['precision'], 2):>9} {_fmt(score['recall'], 2):>7} "
            f"{_fmt(score['f1'], 2):>6} {score['tp']:4} {score['fp']:4} {score['fn']:4} "
            f"{score['tn']:4}")
    lines.append(f"  macro F1 {devset['macro_f1']:.3f}; selection: a compliant main image in "
                 f"{devset['selection']['hits']} of {devset['selection']['groups']} groups")
    lines += [target_line(check) for check in devset["targets"]]
    return lines


def render_batch(batch: Result, inprocess_images_per_s: float | None) -> list[str]:
    def versus(rate: float | None) -> str:
        if rate is None or not inprocess_images_per_s:
            return "-"
        return f"{rate / inprocess_images_per_s:.2f}x"

    lines = [
        "=== BATCH MODE (curator batch: Ray Data over a manifest; private local Ray) ===",
        f"  options {batch['options']}; vs in-process: the full graph's in-process limit of this "
        f"run ({_fmt(inprocess_images_per_s)} images/s)",
        "  images   wall s   images/s   vs in-process   ok   actions",
    ]
    for job in batch["jobs"]:
        actions = ", ".join(f"{k} {v}" for k, v in sorted(job["actions"].items()))
        lines.append(f"  {job['images']:6d}  {job['wall_s']:7.1f}  {job['images_per_s']:9.2f}"
                     f"  {versus(job['images_per_s']):>14}  {job['images_ok']:4d}   {actions}")
    marginal = batch["marginal_images_per_s"]
    lines.append(f"  past start-up (marginal rate between the sizes): {_fmt(marginal)} images/s, "
                 f"{versus(marginal)} in-process")
    return lines


def render_models(models: Result) -> list[str]:
    lines = [
        f"Per-model figures (this process, model inputs of {models['images']} benchmark "
        "images, the same batch called repeatedly after one warm-up call; "
        f"{models['elapsed_s']:.0f} s):",
        "  model                     batch  calls  ms/img p50  ms/img p95  images/s  cores"
        "  gain vs batch 1",
    ]
    for model in models["models"]:
        for cell in model["batches"]:
            per_image = cell["ms_per_image"]
            lines.append(
                f"  {model['model']:24}  {cell['batch']:5d}  {cell['calls']:5d}  "
                f"{_fmt(per_image['p50']):>10}  {_fmt(per_image['p95']):>10}  "
                f"{_fmt(cell['images_per_s']):>8}  {cell['cores_busy']:5.2f}  "
                f"{_fmt(cell['gain'], 2):>15}"
            )
    lines.append("  (gain: median ms/image at batch 1 / at batch N; cores: CPU s / wall s of "
                 "the calls)")
    for model in models["models"]:
        lines.append(f"  {model['model']}: {model['artifact']}, {model['runtime']}; "
                     f"{model['threads']}")
    lines += extractor_budget_lines(models["models"])
    kernels = models.get("brisque_kernels")
    if kernels:
        lines.append(
            f"  BRISQUE on the CPU, paired ({kernels['images']} product regions x "
            f"{kernels['rounds']}, in turn): OpenCV {_fmt(kernels['opencv_cpu_ms']['p50'])} "
            f"against torch passes {_fmt(kernels['torch_cpu_ms']['p50'])} CPU ms p50, "
            f"{_fmt(kernels['speedup'], 2)}x; scores within "
            f"{kernels['max_score_difference']:.4f} points")
    return lines


def _cpu_ms_at_batch_1(model: Result) -> float | None:
    cell = next((c for c in model["batches"] if c["batch"] == 1), None)
    if cell is None or cell["ms_per_image"]["p50"] is None:
        return None
    return cell["ms_per_image"]["p50"] * cell["cores_busy"]


def extractor_budget_lines(models: list[Result]) -> list[str]:
    """The extractor stage's CPU ms per image at batch 1, now against before (the text detector
    in FP32 in place of the one the stage runs), both measured in this run."""
    detectors = [m for m in models if m.get("role", "stage") == "stage"
                 and m["model"].endswith(" detector")]
    before = next((m for m in models if m.get("role") == "before"), None)
    now = [_cpu_ms_at_batch_1(m) for m in detectors]
    if before is None or None in now:
        return []
    text_now = next((m for m in detectors if m["model"] == "text detector"), None)
    fp32, int8 = _cpu_ms_at_batch_1(before), _cpu_ms_at_batch_1(text_now) if text_now else None
    if fp32 is None or int8 is None:
        return []
    total = sum(ms for ms in now if ms is not None)
    # Before: the FP32 text detector and NudeNet, the two models the stage ran until now.
    nudity = next((_cpu_ms_at_batch_1(m) for m in detectors if m["model"] == "nudity detector"),
                  0.0) or 0.0
    previous = fp32 + nudity
    parts = ", ".join(f"{m['model']} {ms:.0f}" for m, ms in zip(detectors, now, strict=True))
    return [
        f"  extractor CPU ms per image at batch 1: now {total:.0f} ({parts}); "
        f"before {previous:.0f} (text FP32 {fp32:.0f} + nudity {nudity:.0f}): "
        f"{total / previous:.2f}x; text {fp32 / int8:.1f}x cheaper than FP32",
    ]


def render_graph(graph: Result, settings: Result) -> list[str]:
    title = {"full": "FULL GRAPH (Preprocess -> AttributeExtractor -> QualityScorer)",
             "technical": "TECHNICAL-ONLY GRAPH (Preprocess alone, models: null)"}[graph["graph"]]
    lines = [f"=== {title} ===", *_inprocess_lines(graph["inprocess"]), "",
             *_closed_lines(graph, settings)]
    if any(level["batch_sizes"] for level in graph["levels"] + graph["open_loop"]):
        lines += ["", *_batch_lines(graph)]
    if graph["open_loop"]:
        lines += ["", *_open_lines(graph, settings)]
    if graph.get("tail_confirmations"):
        lines += ["", *_confirmation_lines(graph)]
    lines += ["", *_headline_lines(graph)]
    return lines


def _inprocess_lines(inproc: Result) -> list[str]:
    lines = [
        f"In-process limit (one process, no Ray/HTTP): {inproc['images_per_s']:.1f} images/s "
        f"(fastest of rounds {inproc['round_images_per_s']}; median "
        f"{inproc['median_images_per_s']:.1f}; other load on the host during the rounds "
        f"{inproc['round_other_cores']} cores) over {inproc['listings']} one-image "
        f"listings; per listing p50 {_fmt(inproc['listing_ms']['p50'])} ms, "
        f"p95 {_fmt(inproc['listing_ms']['p95'])} ms; {inproc['cores_busy']:.2f} cores busy, "
        f"{inproc['cpu_ms_per_image']:.1f} CPU ms/image",
        f"  measured: {inproc['pipeline']}; {inproc['batch']} listing(s) per pass; "
        f"torch threads {inproc['torch_threads']}",
        "  per listing                p50 ms   p95 ms",
    ]
    for stage, summary in inproc["stage_ms"].items():
        lines.append(f"  {stage:26} {_fmt(summary['p50'], 2):>7}  {_fmt(summary['p95'], 2):>7}")
    steps = inproc.get("preprocess_steps_ms") or {}
    if steps:
        lines.append("  preprocess steps (p50 ms): " + ", ".join(
            f"{step} {_fmt(summary['p50'], 1)}" for step, summary in steps.items()))
    return lines


def _refused(point: Result) -> str:
    return f"{point.get('refused_share', 0.0):.0%} shed with 429"


def _closed_lines(graph: Result, settings: Result) -> list[str]:
    service = graph["service"]
    lines = [
        f"Service ({service['config']}, started in {service['startup_s']} s), closed loop, "
        f"{settings['duration_s']:.0f} s measured per level after a warm-up of max("
        f"{settings['warmup_s']:.0f} s, c / throughput so far), at most 15 s (warm s):",
        "     c  warm s  listings/s  images/s   p50 ms   p95 ms   p99 ms  p99 95% CI  mean ms"
        "  c/X ms  5xx"
        "  other   429  limit  img-err  RSS MiB  PSS MiB  svc-cores  svc-CPU-ms/img  host-cores"
        "  replicas",
    ]
    for level in graph["levels"]:
        latency = level["latency_ms"]
        replicas = ",".join(f"{k}={v}" for k, v in sorted(level["replicas"].items()))
        lines.append(
            f"  {level['concurrency']:4d}  {_fmt(level.get('warmup_s')):>6}"
            f"  {level['listings_per_s']:10.1f}  "
            f"{level['images_per_s']:8.1f}  {_fmt(latency['p50']):>7}  {_fmt(latency['p95']):>7}"
            f"  {_fmt(latency['p99']):>7}  {_interval(level):>10}  {_fmt(latency['mean'], 0):>7}"
            f"  {_fmt(littles_law_ms(level), 0):>6}"
            f"  {level['errors_5xx']:3d}  {level['errors_other']:5d}  {level['refused']:4d}"
            f"  {_fmt((level.get('admission') or {}).get('limit'), 0):>5}"
            f"  {level['image_errors']:7d}  {level['peak_rss_mib']:7.0f}  "
            f"{level['peak_pss_mib']:7.0f}  {level['service_cores']:9.2f}  "
            f"{_fmt(level['service_cpu_ms_per_image']):>14}  {level['host_busy_cores']:10.2f}"
            f"  {replicas}"
        )
    steal = max((level.get("host_steal_cores", 0.0) for level in graph["levels"]), default=0.0)
    # Workers refused with 429 spend part of the level backing off, outside the service, so
    # c/X overstates their latency; only levels without refusals are held to it.
    off = [f"c={level['concurrency']}" for level in graph["levels"]
           if littles_law_ms(level) and level["latency_ms"]["mean"] and not level["refused"]
           and abs(level["latency_ms"]["mean"] / littles_law_ms(level) - 1) > LITTLE_TOLERANCE]
    lines += [
        "  (c/X: concurrency / listings/s, the mean latency Little's law gives a closed loop "
        "whose workers are never refused; once the service is saturated, more workers only add "
        "queueing. 429: listings the ingress shed, their workers backing off per Retry-After; "
        "limit: the ingress's adaptive admission limit, images in flight, after the level"
        + (f"; mean and c/X differ by more than {LITTLE_TOLERANCE:.0%} at {', '.join(off)}: "
           "not a steady state, read those rows with care)" if off else ")"),
        "  (host-cores: every process on the machine, other users' included; most CPU stolen "
        f"by the hypervisor in a level: {steal:.2f} cores)",
    ]
    lines += _stage_lines(graph["levels"])
    head = graph["headline"]
    if head["peak_at_concurrency"] is not None:
        peak = next(level for level in graph["levels"]
                    if level["concurrency"] == head["peak_at_concurrency"])
        shares = ", ".join(f"{role} {ms:.1f}" for role, ms in
                           list(peak["service_cpu_ms_per_image_by_role"].items())[:8])
        lines.append(f"Service CPU ms per image by process at c={peak['concurrency']} "
                     f"(peak throughput): {shares}")
    breakdown = ", ".join(f"{role} {mib:.0f}" for role, mib in
                          list(service["peak_rss_by_role_mib"].items())[:8])
    lines.append(f"RSS MiB by process at the peak sample: {breakdown}")
    return lines


def _stage_lines(levels: list[Result]) -> list[str]:
    """Where a request's time goes in the service: each stage's own timing (the answers'
    timings_ms, which include model time but not queueing or transport) beside end to end."""
    stages = list(dict.fromkeys(stage for level in levels for stage in level["stage_ms"]))
    if not stages:
        return []
    lines = ["Time inside the stages (p50 ms of the answers' timings_ms; the rest of a "
             "request's time is queueing, batching waits, handles, proxy and HTTP):",
             "     c" + "".join(f"  {stage:>10}" for stage in stages) + "  end-to-end p50"]
    for level in levels:
        cells = "".join(f"  {_fmt(level['stage_ms'].get(stage, {}).get('p50')):>10}"
                        for stage in stages)
        lines.append(f"  {level['concurrency']:4d}{cells}  {_fmt(level['latency_ms']['p50']):>14}")
    return lines


def _batch_lines(graph: Result) -> list[str]:
    lines = [
        "Formed model batches per level (from each answer's batch_sizes; a batch of n is "
        "reported by its n images):",
        "  load           stage      images  batches  mean/batch  p50  max  mean/image",
    ]
    for level in graph["levels"] + graph["open_loop"]:
        load = (f"c={level['concurrency']}" if level["mode"] == "closed"
                else f"open {level['offered_per_s']:.2f}/s")
        for stage, summary in level["batch_sizes"].items():
            lines.append(
                f"  {load:13}  {stage:9}  {summary['images']:6d}  "
                f"{_fmt(summary['batches']):>7}  {_fmt(summary['mean'], 2):>10}  "
                f"{summary['p50']:>3}  {summary['max']:>3}  "
                f"{_fmt(summary['mean_per_image'], 2):>10}"
            )
    return lines


def _open_lines(graph: Result, settings: Result) -> list[str]:
    head = graph["headline"]
    peak = head["peak_service_images_per_s"] or 0.0
    opened = settings["open_loop"]
    lines = [
        "Open loop (Poisson arrivals, conditioned on their count; "
        f"{opened['warmup_s']:.0f} s warm-up + {opened['duration_s']:.0f} s measured per rate; "
        "closed-loop peak "
        f"{peak:.2f} images/s; latency from each request's due time, over the requests that "
        "arrived in the window):",
        "  rate          offered/s  arrived/s  achieved/s  of peak     n   p50 ms   p95 ms"
        "   p99 ms  p99 95% CI  p99 from send  lag p99  5xx  other   429  unfinished  svc-cores"
        "  host-cores",
    ]
    for level in graph["open_loop"]:
        latency, extra = level["latency_ms"], level["extra"]
        arrived = sum(level["status_counts"].values())
        bound = "≥" if level["latency_is_lower_bound"] else " "
        lines.append(
            f"  {level['rate']:12}  {level['offered_per_s']:9.2f}  "
            f"{arrived / level['window_s']:9.2f}  {level['images_per_s']:10.2f}"
            f"  {level['images_per_s'] / peak if peak else 0:7.0%}  {arrived:4d}"
            f"  {_fmt(latency['p50']):>7}  {_fmt(latency['p95']):>7} {bound}"
            f"{_fmt(latency['p99']):>7}  {_interval(level):>10}"
            f"  {_fmt(extra.get('latency_from_send_ms', {}).get('p99')):>13}"
            f"  {_fmt(extra.get('send_lag_ms', {}).get('p99'), 0):>7}"
            f"  {level['errors_5xx']:3d}  {level['errors_other']:5d}  {level['refused']:4d}"
            f"  {level['status_counts'].get('client:unfinished', 0):10d}"
            f"  {level['service_cores']:9.2f}  {level['host_busy_cores']:10.2f}"
        )
    lines += [
        "  (achieved: images answered ok per second in the window; n: requests that arrived in "
        "it; ≥: requests still unfinished after the drain entered the percentiles with the "
        "time they had waited; p99 95% CI: between which two of the level's latencies the true "
        "p99 lies with 95% confidence, whatever the distribution; ∞ where too few answers bound "
        "it)",
        "  (lag: how late the load generator sent a request after its due time; it is inside "
        "the latency, which counts from the due time. p99 from send leaves it out. The targets "
        "use the latency from the due time)",
    ]
    return lines


def _confirmation_lines(graph: Result) -> list[str]:
    """The tail targets' loads measured again in longer windows (sweep.TailConfirmation)."""
    lines = ["Tail targets' loads measured again, long enough to bound a p99 (the targets read "
             "these windows):",
             "  load          window s  answers  images/s  p50 ms   p95 ms   p99 ms  p99 95% CI"
             "   429  5xx  other"]
    for level in graph["tail_confirmations"]:
        latency = level["latency_ms"]
        lines.append(
            f"  {level['confirms']:12}  {level['window_s']:8.0f}  {level['latency_samples']:7d}"
            f"  {level['images_per_s']:8.2f}  {_fmt(latency['p50']):>6}  {_fmt(latency['p95']):>7}"
            f"  {_fmt(latency['p99']):>7}  {_interval(level):>10}  {level['refused']:4d}"
            f"  {level['errors_5xx']:3d}  {level['errors_other']:5d}")
    return lines


def _interval(level: Result) -> str:
    """The p99's 95% interval, ms ("∞": no upper bound from this many answers)."""
    low, high = level.get("p99_interval_ms") or (None, None)
    if level.get("latency_samples") is None:
        return "-"
    return f"{'-' if low is None else f'{low:.0f}'}-{'∞' if high is None else f'{high:.0f}'}"


def _headline_lines(graph: Result) -> list[str]:
    head = graph["headline"]
    lines = [
        "Headline:",
        f"  p50 at concurrency 1 (one-image listing): {_fmt(head['p50_ms_at_concurrency_1'])} ms",
        f"  no 5xx: {'yes' if head['no_5xx'] else 'NO'} ({head['total_5xx']} in all)",
        f"  serving efficiency: {_fmt(head['serving_efficiency'], 3)} "
        f"(peak {_fmt(head['peak_service_images_per_s'])} images/s at "
        f"c={head['peak_at_concurrency']} / in-process {_fmt(head['inprocess_images_per_s'])}); "
        f"per CPU second: {_fmt(head['cpu_efficiency_at_peak'], 3)} (in-process CPU ms/image "
        "/ service CPU ms/image at the peak)",
        f"  peak service memory: {_fmt(head['peak_service_rss_mib'], 0)} MiB RSS summed "
        f"({_fmt(head['peak_service_pss_mib'], 0)} MiB PSS)",
    ]
    closed, lowest = head["tail_near_peak_closed"], head["tail_near_peak_closed_lowest"]
    if closed and graph["graph"] == "full":
        lines.append(
            f"  closed loop, highest load with >= {PEAK_SHARE:.0%} of peak: {closed['load']} at "
            f"{closed['share_of_peak']:.0%} of peak, p99 {_fmt(closed['p99_ms'], 0)} ms, "
            f"{_refused(closed)}; mean {_fmt(closed['mean_ms'], 0)} ms vs c/X = "
            f"{_fmt(closed['littles_law_mean_ms'], 0)} ms. Little's law: without load "
            "shedding a closed loop's mean latency is c / throughput once the service is "
            "saturated; the admission limit's 429s (the clients back off) are what keep the "
            "latency of the admitted listings from growing with c")
        if lowest and lowest["load"] != closed["load"]:
            lines.append(
                f"  closed loop, least-loaded level with >= {PEAK_SHARE:.0%} of peak: "
                f"{lowest['load']} at {lowest['share_of_peak']:.0%} of peak, p99 "
                f"{_fmt(lowest['p99_ms'], 0)} ms (informational)")
    opened = head["tail_near_peak_open"]
    if graph["open_loop"] and not opened:
        best = max(graph["open_loop"], key=lambda level: level["images_per_s"])
        lines.append(
            f"  open loop: no rate achieved {PEAK_SHARE:.0%} of the closed-loop peak; the best, "
            f"{best['images_per_s']:.2f} images/s ({best['rate']}, "
            f"{best['offered_per_s']:.2f}/s offered), had p99 {_fmt(best['latency_ms']['p99'], 0)}"
            " ms")
    if opened:
        lines.append(
            f"  open loop, highest offered rate with >= {PEAK_SHARE:.0%} of peak achieved: "
            f"{opened['load']}, {opened['share_of_peak']:.0%} of peak, p99 "
            f"{'>= ' if opened['p99_is_lower_bound'] else ''}{_fmt(opened['p99_ms'], 0)} ms, "
            f"{opened['errors']} errors, {_refused(opened)} (the meaningful latency-under-load "
            "figure)")
    batching = head["batching_under_load"]
    if batching:
        stages = "; ".join(
            f"{stage} mean {_fmt(summary['mean'], 2)}, p50 {summary['p50']}, max "
            f"{summary['max']}" for stage, summary in batching["stages"].items())
        lines.append(f"  formed batches at the peak level ({batching['load']}): {stages}")
    lines += ["", f"Targets ({graph['graph']} graph, this 2-core host):"]
    lines += [target_line(check) for check in head["targets"]]
    return lines


def render_side_by_side(graphs: Result) -> list[str]:
    rows = [
        ("in-process images/s", "inprocess_images_per_s", 1),
        ("peak service images/s", "peak_service_images_per_s", 1),
        ("serving efficiency", "serving_efficiency", 3),
        ("p50 ms at c=1", "p50_ms_at_concurrency_1", 1),
        ("peak service RSS MiB", "peak_service_rss_mib", 0),
        ("peak service PSS MiB", "peak_service_pss_mib", 0),
    ]
    names = list(graphs)
    lines = ["=== SIDE BY SIDE (same run) ===",
             "  figure                  " + "".join(f"{name:>12}" for name in names)]
    for label, key, digits in rows:
        lines.append(f"  {label:24}" + "".join(
            f"{_fmt(graphs[name]['headline'][key], digits):>12}" for name in names))
    verdicts = {name: sum(check["passed"] for check in graphs[name]["headline"]["targets"])
                for name in names}
    lines.append("  targets passed          " + "".join(
        f"{verdicts[name]:>7d} of {len(graphs[name]['headline']['targets'])}" for name in names))
    return lines
