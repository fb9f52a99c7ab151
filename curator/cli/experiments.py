"""`curator experiments ...`: read an experiment's report, run the simulations.

    report    the report of one experiment from a decision store: a table, its JSON, a plot
    simulate  `python -m experiments.simulate` under the curator command (aa, canary)

Wired into `curator.cli` with `add_experiments_commands(verbs)`; each sub-verb sets `run`, which
returns the process exit status.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

from experiments.config import ExperimentConfigError, load_experiments

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from experiments.report_model import Comparison, ExperimentReport, MetricReport

EXIT_OK = 0
EXIT_INVALID = 1  # the experiments file does not load, or has no such experiment

VERDICT_WORDS = {
    "better": "better",
    "worse": "worse",
    "no_difference_yet": "no difference yet",
    "not_measurable": "not measurable yet",
}
PLOT_PANEL_SIZE_IN = (7.0, 3.0)  # width, height of one metric's panel, inches
PLOT_DPI = 100


def add_experiments_commands(subparsers: Any) -> None:
    """Add the `experiments` verb and its sub-verbs to the `curator` command's subparsers."""
    experiments = subparsers.add_parser("experiments", help="experiment reports and simulations")
    verbs = experiments.add_subparsers(dest="experiments_verb", required=True)

    report = verbs.add_parser("report", help="the report of one experiment from a decision store")
    report.add_argument("experiment_id", metavar="ID")
    report.add_argument(
        "--store",
        required=True,
        metavar="URL",
        help="sqlite:///path/curator.db or postgresql+psycopg://user@host/db",
    )
    report.add_argument(
        "--experiments",
        required=True,
        type=Path,
        metavar="FILE",
        help="the YAML file that defines the experiment",
    )
    report.add_argument("--json", action="store_true", help="print the report as JSON")
    report.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help="write the lift's confidence sequence over time, one panel a metric",
    )
    report.add_argument(
        "--looks",
        type=_positive_int,
        default=None,
        help="cut points of each timeline (default: build_report's, 20)",
    )
    report.set_defaults(run=_report)

    # experiments.simulate's own parser reads the rest. A leading --help is caught here (an
    # argparse remainder cannot start with an option) and passed on.
    simulate = verbs.add_parser(
        "simulate", add_help=False, help="seeded simulations: aa, canary (see simulate --help)"
    )
    simulate.add_argument("-h", "--help", action="store_true", dest="simulate_help")
    simulate.add_argument("simulate_args", nargs=argparse.REMAINDER)
    simulate.set_defaults(run=_simulate)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _simulate(args: argparse.Namespace) -> int:
    from experiments.simulate import main  # numpy-heavy; only this verb needs it

    return main([*(["--help"] if args.simulate_help else []), *args.simulate_args])


def _report(args: argparse.Namespace) -> int:
    # Here, not at the top: scipy and statsmodels take a second to import, and every other
    # `curator` verb would pay for it.
    from experiments.report import build_report
    from experiments.store import DecisionStore

    try:
        experiments = load_experiments(args.experiments)
    except ExperimentConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_INVALID
    experiment = experiments.get(args.experiment_id)
    if experiment is None:
        print(
            f"{args.experiments}: no experiment '{args.experiment_id}' "
            f"(defined: {', '.join(sorted(experiments))})",
            file=sys.stderr,
        )
        return EXIT_INVALID
    looks = {} if args.looks is None else {"looks": args.looks}
    store = DecisionStore(args.store)
    try:
        report = build_report(store, experiment, **looks)
    finally:
        store.close()
    print(report.model_dump_json(indent=2) if args.json else render_report(report))
    if args.plot is not None:
        plot_report(report, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK


def render_report(report: ExperimentReport) -> str:
    """The report as text: variants and SRM, one row per metric and treatment, operations."""
    level = f"{1 - report.alpha:.0%}"
    lines = [
        f"experiment {report.experiment_id} ({report.status}), "
        f"generated {report.generated_at:%Y-%m-%d %H:%M:%S} UTC",
        f"alpha {report.alpha:g}; sequential test tuned for {report.sequential_planned_sample:,} "
        f"units; adjusted p: {report.p_value_adjustment} across the metrics of one treatment",
    ]
    if report.note:
        lines.append(f"note: {report.note}")
    lines += [
        "",
        *_table(
            ["variant", "weight", "units", "decisions"],
            [
                [v.name, _percent(v.weight, 1), f"{v.units:,}", f"{v.decisions:,}"]
                for v in report.variants
            ],
        ),
    ]
    lines += ["", _srm_line(report), ""]
    lines += _table(
        [
            "metric",
            "variant",
            "control",
            "value",
            f"lift [{level} CI]",
            "p",
            f"p {report.p_value_adjustment}",
            "seq. p",
            f"lift [{level} CS]",
            "verdict",
        ],
        [
            _comparison_row(metric, comparison)
            for metric in report.metrics
            for comparison in metric.comparisons
        ],
    )
    notes = [
        f"  {metric.metric} / {comparison.treatment.variant}: {comparison.note}"
        for metric in report.metrics
        for comparison in metric.comparisons
        if comparison.note
    ]
    if notes:
        lines += ["", "notes:", *notes]
    lines += ["", *_operational_lines(report)]
    return "\n".join(lines)


def _srm_line(report: ExperimentReport) -> str:
    srm = report.srm
    if srm.passed is None:
        return f"SRM: not checked ({srm.code}: {srm.note})"
    verdict = "passed" if srm.passed else "MISMATCH"
    chi_square = "n/a" if srm.chi_square is None else f"{srm.chi_square:.3g}"
    return (
        f"SRM: {verdict} (chi-square {chi_square}, p = {_p(srm.p_value)}, "
        f"alert below {srm.threshold:g})"
    )


def _comparison_row(metric: MetricReport, comparison: Comparison) -> list[str]:
    name = f"{metric.metric} (primary)" if metric.role == "primary" else metric.metric
    show = _percent if metric.kind == "proportion" else _number
    sequential = comparison.sequential
    return [
        name,
        comparison.treatment.variant,
        show(comparison.control.estimate),
        show(comparison.treatment.estimate),
        _lift(comparison.lift, comparison.lift_ci),
        _p(comparison.p_value),
        _p(comparison.adjusted_p_value),
        _p(sequential.p_value),
        _lift(sequential.lift, sequential.lift_cs),
        VERDICT_WORDS[comparison.verdict],
    ]


def _operational_lines(report: ExperimentReport) -> list[str]:
    lines = _table(
        ["variant", "decisions", "error rate", "p99 latency", "reject rate"],
        [
            [
                row.variant,
                f"{row.decisions:,}",
                _percent(row.error_rate, 2),
                f"{row.p99_latency_ms:.1f} ms",
                _percent(row.reject_rate, 2),
            ]
            for row in report.operational
        ],
    )
    for check in report.operational_checks:
        if check.difference is None:
            lines.append(
                f"guardrail {check.metric} / {check.treatment}: not measurable ({check.code})"
            )
            continue
        state = "HARMED" if check.harmed else "ok"
        lines.append(
            f"guardrail {check.metric} / {check.treatment}: {state} (treatment - "
            f"control = {check.difference:+.4g}, tolerance {check.tolerance:g})"
        )
    return ["operational:", *lines]


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) for cell, width in zip(cells, widths, strict=True)
        ).rstrip()

    return [line(headers), *(line(row) for row in rows)]


def _percent(value: float | None, decimals: int = 2) -> str:
    return "-" if value is None else f"{100 * value:.{decimals}f}%"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return "<0.0001" if value < 1e-4 else f"{value:.4f}"


def _lift(lift: float | None, interval: Any) -> str:
    if lift is None:
        return "-"
    text = f"{100 * lift:+.1f}%"
    if interval is not None:
        text += f" [{100 * interval.lower:+.1f}%, {100 * interval.upper:+.1f}%]"
    return text


def plot_report(report: ExperimentReport, path: Path) -> None:
    """One panel per metric: each treatment's relative lift over exposure time, its confidence
    sequence as a band, and the final fixed-horizon interval as an error bar at the end."""
    # The Agg canvas directly, not pyplot: no global figure state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = len(report.metrics)  # never 0: every experiment has a primary metric
    width, height = PLOT_PANEL_SIZE_IN
    figure = Figure(figsize=(width, height * panels), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(panels, 1, squeeze=False)[:, 0]
    for ax, metric in zip(axes, report.metrics, strict=True):
        _plot_metric(ax, metric, report.alpha)
    figure.suptitle(f"experiment {report.experiment_id}: relative lift against control")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=PLOT_DPI)


def _plot_metric(ax: Axes, metric: MetricReport, alpha: float) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num

    level = f"{1 - alpha:.0%}"
    locator = AutoDateLocator(tz=UTC)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))
    ax.axhline(0.0, color="grey", linewidth=0.8)
    plotted = False
    for comparison in metric.comparisons:
        points = comparison.timeline
        if not points:
            continue
        times = date2num([point.exposed_until for point in points])
        lift = [_scaled(point.lift) for point in points]
        lower = [_scaled(point.lift_cs.lower if point.lift_cs else None) for point in points]
        upper = [_scaled(point.lift_cs.upper if point.lift_cs else None) for point in points]
        (line,) = ax.plot(times, lift, label=f"{comparison.treatment.variant}: lift")
        ax.fill_between(
            times,
            lower,
            upper,
            color=line.get_color(),
            alpha=0.2,
            label=f"{level} confidence sequence",
        )
        if comparison.lift is not None and comparison.lift_ci is not None:
            ax.errorbar(
                [times[-1]],
                [100 * comparison.lift],
                yerr=[
                    [100 * (comparison.lift - comparison.lift_ci.lower)],
                    [100 * (comparison.lift_ci.upper - comparison.lift)],
                ],
                fmt="D",
                color=line.get_color(),
                capsize=4,
                label=f"final {level} CI (fixed horizon)",
            )
        plotted = True
    role = " (primary)" if metric.role == "primary" else ""
    ax.set_title(f"{metric.metric}{role}", fontsize="medium")
    ax.set_ylabel("lift, %")
    ax.set_xlabel("first exposure (UTC)")
    # Outcome means are never negative, so no lift lies below -100%: early, wide sequences
    # reaching past it would squash the rest of the panel.
    ax.set_ylim(bottom=max(ax.get_ylim()[0], -105.0))  # a margin keeps -100% in view
    if plotted:
        ax.legend(fontsize="small", loc="best")
    else:
        codes = ", ".join(sorted({comparison.code for comparison in metric.comparisons}))
        ax.text(
            0.5,
            0.5,
            f"not measurable yet ({codes})",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )


def _scaled(value: float | None) -> float:
    """Percent, with NaN where there is no value yet, which matplotlib leaves as a gap."""
    return math.nan if value is None else 100 * value
