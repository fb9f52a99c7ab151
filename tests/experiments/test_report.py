"""The experiment report, end to end through the store on SQLite and PostgreSQL: counts equal
what was written, numbers equal direct calls to the statistics, the worked example comes out,
both backends agree, degenerate data gives codes, and the CLI prints a table and draws a plot."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from curator.cli import main as curator_main
from experiments import stats
from experiments.config import ExperimentConfig, experiments_from_data
from experiments.records import DecisionRecord, OutcomeRecord
from experiments.report import build_report
from experiments.report_model import ExperimentReport, MetricReport
from experiments.sequential import ArmStats, SequentialConfig, update
from experiments.store import DecisionStore
from tests.experiments.factories import T0, decision, outcome

EXPERIMENT_ID = "exp-report"
EXPERIMENT: dict[str, Any] = {
    "id": EXPERIMENT_ID,
    "variants": [{"name": "control"}, {"name": "treatment"}],
    "primary_metric": "click",
    "guardrails": [
        "add_to_cart",
        "purchase_value",
        "return",
        "error_rate",
        "p99_latency_ms",
        "reject_rate",
    ],
    "sequential_n_star": 20_000,
    "status": "running",
}
NOW = datetime(2026, 3, 10, tzinfo=UTC)
UNITS = 10_000  # per variant
TWICE_DECIDED = 100  # units per variant with a second decision (one unit, two decisions)
# Units with at least one event of each type, (control, treatment); click is REFERENCES.md's
# worked example: 480/10000 vs 560/10000 -> z 2.548, p 0.0108, lift 16.7% [2.8%, 30.5%].
CONVERTING_UNITS = {
    "click": (480, 560),
    "add_to_cart": (200, 190),
    "purchase": (100, 110),
    "return": (10, 12),
}
DECISIONS_WITH_ERRORS = {"control": 10, "treatment": 12}
LATENCY_MS = {"control": 150.0, "treatment": 230.0}  # treatment breaks the p99 guardrail (50 ms)
WRITE_BATCH = 2000


def experiment(**changes: Any) -> ExperimentConfig:
    return ExperimentConfig.model_validate({**EXPERIMENT, **changes})


@dataclass
class Dataset:
    """Seeded decisions and outcomes, and what the report must count from them."""

    decisions: list[DecisionRecord] = field(default_factory=list)
    outcomes: list[OutcomeRecord] = field(default_factory=list)
    converted: dict[str, dict[str, int]] = field(default_factory=dict)  # type -> variant -> n
    purchase_values: dict[str, dict[str, float]] = field(default_factory=dict)  # per unit

    def write(self, url: str) -> None:
        store = DecisionStore(url)
        store.create_schema()
        for start in range(0, len(self.decisions), WRITE_BATCH):
            store.write_decisions(self.decisions[start : start + WRITE_BATCH])
        for start in range(0, len(self.outcomes), WRITE_BATCH):
            store.write_outcomes(self.outcomes[start : start + WRITE_BATCH])
        store.close()


def build_dataset(seed: int = 2026) -> Dataset:
    rng = np.random.default_rng(seed)
    data = Dataset()
    for index, variant in enumerate(("control", "treatment")):
        units = [f"{variant[0]}-{number:05d}" for number in range(UNITS)]
        exposed = {
            unit: T0 + timedelta(minutes=float(minute))
            for unit, minute in zip(units, rng.uniform(0, 7 * 24 * 60, UNITS), strict=True)
        }
        data.decisions += _decisions(variant, units, exposed, rng)
        for kind, counts in CONVERTING_UNITS.items():
            chosen = [units[i] for i in rng.choice(UNITS, counts[index], replace=False)]
            data.converted.setdefault(kind, {})[variant] = len(chosen)
            data.outcomes += _events(kind, chosen, exposed, rng, data, variant)
        # Clicks before a unit's first exposure: the variant cannot have caused them.
        clicked = {e.unit_id for e in data.outcomes if e.type == "click"}
        early = [unit for unit in units if unit not in clicked][:5]
        data.outcomes += [
            outcome(f"early-{unit}", "click", _minutes(exposed[unit]) - 5, unit_id=unit)
            for unit in early
        ]
    return data


def _minutes(moment: datetime) -> float:
    return (moment - T0) / timedelta(minutes=1)


def _decisions(
    variant: str, units: list[str], exposed: dict[str, datetime], rng: np.random.Generator
) -> list[DecisionRecord]:
    latencies = rng.normal(LATENCY_MS[variant], 10.0, len(units) + TWICE_DECIDED)
    records = []
    for number, unit in enumerate([*units, *units[:TWICE_DECIDED]]):
        again = number >= len(units)
        records.append(
            decision(
                f"{unit}-{'b' if again else 'a'}",
                unit_id=unit,
                variant=variant,
                experiment_id=EXPERIMENT_ID,
                created_at=exposed[unit] + timedelta(minutes=30 if again else 0),
                latency_ms=float(latencies[number]),
                error_count=1 if number < DECISIONS_WITH_ERRORS[variant] else 0,
                image_actions={
                    "front": "approve",
                    "side": "reject" if number % 20 == 0 else "approve",
                },
            )
        )
    return records


def _events(
    kind: str,
    units: list[str],
    exposed: dict[str, datetime],
    rng: np.random.Generator,
    data: Dataset,
    variant: str,
) -> list[OutcomeRecord]:
    """One event per unit, a second for every fifth (units are counted once); purchases carry
    a value, summed per unit."""
    events = []
    values = data.purchase_values.setdefault(variant, {})
    for number, unit in enumerate(units):
        for repeat in range(2 if number % 5 == 0 else 1):
            value = round(float(rng.lognormal(3.0, 1.0)), 2) if kind == "purchase" else None
            if value is not None:
                values[unit] = values.get(unit, 0.0) + value
            events.append(
                OutcomeRecord(
                    event_id=f"{kind}-{unit}-{repeat}",
                    type=kind,
                    occurred_at=exposed[unit] + timedelta(minutes=10 + repeat),
                    unit_id=unit,
                    value=value,
                    received_at=exposed[unit] + timedelta(minutes=11 + repeat),
                )
            )
    return events


class SeededStores:
    """The seeded dataset written once per backend for the module; reports built once each."""

    def __init__(self, request: pytest.FixtureRequest, root: Path) -> None:
        self.request, self.root = request, root
        self.dataset = build_dataset()
        self.urls: dict[str, str] = {}
        self.reports: dict[str, ExperimentReport] = {}

    def url(self, backend: str) -> str:
        if backend not in self.urls:
            if backend == "sqlite":
                url = f"sqlite:///{self.root / 'seeded.db'}"
            else:
                url = self.request.getfixturevalue("postgres_server").create_database("report")
            self.dataset.write(url)
            self.urls[backend] = url
        return self.urls[backend]

    def report(self, backend: str) -> ExperimentReport:
        if backend not in self.reports:
            self.reports[backend] = report_from(self.url(backend), experiment())
        return self.reports[backend]


def report_from(url: str, config: ExperimentConfig, **options: Any) -> ExperimentReport:
    store = DecisionStore(url)
    try:
        store.create_schema()
        return build_report(store, config, now=NOW, **options)
    finally:
        store.close()


@pytest.fixture(scope="module")
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> SeededStores:
    return SeededStores(request, tmp_path_factory.mktemp("report"))


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def metric_report(report: ExperimentReport, metric: str) -> MetricReport:
    (found,) = [item for item in report.metrics if item.metric == metric]
    return found


def test_counts_equal_what_was_written(seeded: SeededStores, backend: str) -> None:
    report = seeded.report(backend)
    data = seeded.dataset
    assert report.code == "ok" and report.note is None
    assert [(v.name, v.weight, v.units, v.decisions) for v in report.variants] == [
        ("control", 0.5, UNITS, UNITS + TWICE_DECIDED),
        ("treatment", 0.5, UNITS, UNITS + TWICE_DECIDED),
    ]
    assert [m.metric for m in report.metrics] == [
        "click",
        "add_to_cart",
        "purchase_value",
        "return",
    ]
    assert [m.role for m in report.metrics] == ["primary", "guardrail", "guardrail", "guardrail"]
    for kind in ("click", "add_to_cart", "return"):
        (comparison,) = metric_report(report, kind).comparisons
        assert comparison.control.units == comparison.treatment.units == UNITS
        assert comparison.control.conversions == data.converted[kind]["control"]
        assert comparison.treatment.conversions == data.converted[kind]["treatment"]
    (revenue,) = metric_report(report, "purchase_value").comparisons
    assert revenue.control.conversions is None
    for arm in (revenue.control, revenue.treatment):
        assert arm.total == pytest.approx(sum(data.purchase_values[arm.variant].values()))
    operational = {row.variant: row for row in report.operational}
    for variant, errors in DECISIONS_WITH_ERRORS.items():
        assert operational[variant].decisions_with_errors == errors
        assert operational[variant].images == 2 * (UNITS + TWICE_DECIDED)


def test_numbers_equal_direct_calls_to_the_statistics(seeded: SeededStores, backend: str) -> None:
    report = seeded.report(backend)
    data = seeded.dataset
    p_values = {}
    for metric in report.metrics:
        (comparison,) = metric.comparisons
        if metric.kind == "proportion":
            expected: Any = stats.compare_proportions(
                stats.Proportion(UNITS, data.converted[metric.metric]["control"]),
                stats.Proportion(UNITS, data.converted[metric.metric]["treatment"]),
            )
            assert comparison.statistic == expected.z and comparison.test == "z"
        else:
            expected = stats.compare_means(
                per_unit_values(data.purchase_values["control"]),
                per_unit_values(data.purchase_values["treatment"]),
            )
            assert comparison.test == "welch_t"
            assert comparison.statistic == pytest.approx(expected.t, rel=1e-9)
            assert comparison.degrees_of_freedom == pytest.approx(expected.degrees_of_freedom)
        assert comparison.code == expected.code == "ok"
        assert comparison.p_value == pytest.approx(expected.p_value, rel=1e-9)
        assert comparison.lift == pytest.approx(expected.lift, rel=1e-9)
        assert comparison.lift_ci is not None and comparison.difference_ci is not None
        assert (comparison.lift_ci.lower, comparison.lift_ci.upper) == pytest.approx(
            (expected.lift_ci.lower, expected.lift_ci.upper), rel=1e-9
        )
        assert (comparison.difference_ci.lower, comparison.difference_ci.upper) == pytest.approx(
            (expected.difference_ci.lower, expected.difference_ci.upper), rel=1e-9
        )
        p_values[metric.metric] = comparison.p_value
    adjusted = stats.adjust_p_values(p_values, "holm")
    for metric in report.metrics:
        assert metric.comparisons[0].adjusted_p_value == adjusted[metric.metric]
    srm = stats.sample_ratio_mismatch(
        {"control": UNITS, "treatment": UNITS}, {"control": 0.5, "treatment": 0.5}
    )
    assert (report.srm.code, report.srm.chi_square, report.srm.p_value) == (
        srm.code,
        srm.chi_square,
        srm.p_value,
    )
    assert report.srm.passed is True


def per_unit_values(purchases: dict[str, float]) -> list[float]:
    """Every unit's purchase total, 0 for the units that bought nothing."""
    return [*purchases.values(), *[0.0] * (UNITS - len(purchases))]


def test_worked_example_end_to_end(seeded: SeededStores, backend: str) -> None:
    (click,) = metric_report(seeded.report(backend), "click").comparisons
    assert (click.control.estimate, click.treatment.estimate) == (0.048, 0.056)
    assert click.statistic == pytest.approx(2.548, abs=5e-4)
    assert click.p_value == pytest.approx(0.0108, abs=5e-5)
    assert click.lift == pytest.approx(1 / 6)
    assert click.lift_ci is not None
    assert click.lift_ci.lower == pytest.approx(0.028, abs=5e-4)
    assert click.lift_ci.upper == pytest.approx(0.305, abs=5e-4)


def test_sequential_result_and_timeline(seeded: SeededStores, backend: str) -> None:
    config = experiment()
    one_look = report_from(seeded.url(backend), config, looks=1)
    (click,) = metric_report(one_look, "click").comparisons
    direct = update(
        None,
        ArmStats.from_conversions(UNITS, 480),
        ArmStats.from_conversions(UNITS, 560),
        SequentialConfig.for_experiment(config),
    )
    assert click.sequential.p_value == pytest.approx(direct.p_value, rel=1e-12)
    assert click.sequential.lift_cs is not None and direct.lift_cs is not None
    assert click.sequential.lift_cs.lower == pytest.approx(direct.lift_cs.lower, rel=1e-12)
    assert len(click.timeline) == 1

    (click,) = metric_report(seeded.report(backend), "click").comparisons
    timeline = click.timeline
    assert len(timeline) == 20
    totals = [point.control_units + point.treatment_units for point in timeline]
    assert totals == [1000 * look for look in range(1, 21)]
    assert [p.exposed_until for p in timeline] == sorted(p.exposed_until for p in timeline)
    running = [point.p_value for point in timeline if point.p_value is not None]
    assert running == sorted(running, reverse=True)  # always-valid p never rises
    assert click.sequential.model_dump() == timeline[-1].model_dump(exclude={"exposed_until"})
    # The always-valid interval is wider than the fixed-horizon one at the same data.
    assert click.sequential.lift_cs is not None and click.lift_ci is not None
    assert click.sequential.lift_cs.lower < click.lift_ci.lower
    assert click.verdict == ("better" if click.sequential.significant else "no_difference_yet")


def test_operational_guardrails(seeded: SeededStores, backend: str) -> None:
    checks = {check.metric: check for check in seeded.report(backend).operational_checks}
    assert set(checks) == {"error_rate", "p99_latency_ms", "reject_rate"}
    assert checks["p99_latency_ms"].harmed  # ~80 ms slower against a 50 ms tolerance
    assert checks["p99_latency_ms"].difference == pytest.approx(80, abs=15)
    assert not checks["error_rate"].harmed and not checks["reject_rate"].harmed
    assert checks["error_rate"].difference == pytest.approx(2 / (UNITS + TWICE_DECIDED))


def test_sqlite_and_postgresql_reports_are_identical(seeded: SeededStores) -> None:
    sqlite, postgresql = (
        json.loads(seeded.report(backend).model_dump_json(exclude={"generated_at"}))
        for backend in ("sqlite", "postgresql")
    )
    assert sqlite == postgresql




def exposed(unit: str, variant: str, minutes: float = 0.0) -> DecisionRecord:
    return decision(
        f"d-{unit}",
        unit_id=unit,
        variant=variant,
        experiment_id=EXPERIMENT_ID,
        created_at=T0 + timedelta(minutes=minutes),
    )


def build(store: DecisionStore, config: ExperimentConfig | None = None) -> ExperimentReport:
    report = build_report(store, config or experiment(), now=NOW)
    # Whatever the data, the report is valid JSON that parses back to the same report.
    assert ExperimentReport.model_validate_json(report.model_dump_json()) == report
    return report


def comparison_codes(report: ExperimentReport) -> dict[str, str]:
    return {metric.metric: metric.comparisons[0].code for metric in report.metrics}


def test_no_units(store: DecisionStore) -> None:
    report = build(store)
    assert (report.code, report.srm.code, report.srm.passed) == ("no_units", "no_units", None)
    assert set(comparison_codes(report).values()) == {"too_few_units"}
    for metric in report.metrics:
        (comparison,) = metric.comparisons
        assert comparison.timeline == [] and comparison.verdict == "not_measurable"
        assert comparison.sequential.code == "too_few_units"
        assert comparison.note and "fewer than 2 units" in comparison.note
    assert report.operational == []
    assert {check.code for check in report.operational_checks} == {"no_decisions"}


def test_one_unit(store: DecisionStore) -> None:
    store.write_decisions([exposed("u1", "treatment")])
    store.write_outcomes([outcome("e1", "click", unit_id="u1")])
    report = build(store)
    assert [v.units for v in report.variants] == [0, 1]
    (click,) = metric_report(report, "click").comparisons
    assert (click.code, click.treatment.conversions, click.control.estimate) == (
        "too_few_units",
        1,
        None,
    )
    assert [point.code for point in click.timeline] == ["too_few_units"]


def test_no_conversions(store: DecisionStore) -> None:
    store.write_decisions([exposed(f"u{n}", ("control", "treatment")[n % 2], n) for n in range(8)])
    report = build(store)
    assert set(comparison_codes(report).values()) == {"zero_variance"}
    (click,) = metric_report(report, "click").comparisons
    assert (click.difference, click.p_value, click.adjusted_p_value) == (0.0, None, None)
    assert click.verdict == "not_measurable"
    assert click.note and "no spread" in click.note


def test_conversions_only_in_treatment(store: DecisionStore) -> None:
    store.write_decisions([exposed(f"u{n}", ("control", "treatment")[n % 2], n) for n in range(8)])
    store.write_outcomes([outcome("e1", "click", 20, unit_id="u1")])
    (click,) = metric_report(build(store), "click").comparisons
    assert click.code == "no_control_conversions"
    assert click.p_value is not None and click.lift is None and click.lift_ci is None


def test_units_in_an_undefined_variant_fail_the_srm(store: DecisionStore) -> None:
    store.write_decisions(
        [exposed(f"u{n}", ("control", "treatment", "legacy")[n % 3], n) for n in range(9)]
    )
    report = build(store)
    assert [(v.name, v.weight, v.units) for v in report.variants][-1] == ("legacy", None, 3)
    assert (report.srm.code, report.srm.passed) == ("unexpected_units", False)


def test_ramped_experiment_skips_the_whole_run_srm(store: DecisionStore) -> None:
    config = experiment(ramp=[5, 50], guardrails=[])
    store.write_decisions([exposed(f"u{n}", ("control", "treatment")[n % 2], n) for n in range(8)])
    report = build(store, config)
    assert (report.srm.code, report.srm.passed) == ("ramped_split", None)
    assert [v.weight for v in report.variants] == [None, None]


def test_two_treatments_are_adjusted_separately(store: DecisionStore) -> None:
    config = experiment(
        variants=[{"name": "control"}, {"name": "a"}, {"name": "b"}], guardrails=["return"]
    )
    variants = ("control", "a", "b")
    store.write_decisions([exposed(f"u{n}", variants[n % 3], n) for n in range(30)])
    store.write_outcomes([outcome(f"e{n}", "click", 60, unit_id=f"u{n}") for n in range(0, 30, 2)])
    report = build(store, config)
    (click,) = [metric for metric in report.metrics if metric.metric == "click"]
    assert [c.treatment.variant for c in click.comparisons] == ["a", "b"]
    for comparison in click.comparisons:  # 'return' has no p: a family of one, left unchanged
        assert comparison.adjusted_p_value == comparison.p_value


@pytest.fixture
def experiments_file(tmp_path: Path) -> Path:
    path = tmp_path / "experiments.yaml"
    path.write_text(json.dumps({"experiments": [EXPERIMENT]}))  # JSON is YAML
    assert set(experiments_from_data({"experiments": [EXPERIMENT]})) == {EXPERIMENT_ID}
    return path


def test_cli_prints_the_table_and_draws_the_plot(
    seeded: SeededStores,
    experiments_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plot = tmp_path / "plots" / "report.png"
    argv = ["experiments", "report", EXPERIMENT_ID, "--store", seeded.url("sqlite")]
    argv += ["--experiments", str(experiments_file), "--plot", str(plot)]
    assert curator_main(argv) == 0
    out = capsys.readouterr().out
    assert "SRM: passed" in out
    click_row = next(line for line in out.splitlines() if line.startswith("click (primary)"))
    assert "4.80%" in click_row and "5.60%" in click_row
    assert "+16.7% [+2.8%, +30.5%]" in click_row and "0.0108" in click_row
    assert "guardrail p99_latency_ms / treatment: HARMED" in out
    assert f"wrote {plot}" in out
    with Image.open(plot) as image:
        image.verify()
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.size[0] > 0 and image.size[1] > 0


def test_cli_json_is_the_report(
    experiments_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'small.db'}"
    store = DecisionStore(url)
    store.create_schema()
    store.write_decisions([exposed(f"u{n}", ("control", "treatment")[n % 2], n) for n in range(40)])
    store.write_outcomes([outcome(f"e{n}", "click", 60, unit_id=f"u{n}") for n in range(0, 40, 3)])
    expected = build_report(store, experiment(), looks=5)
    store.close()
    argv = ["experiments", "report", EXPERIMENT_ID, "--store", url, "--looks", "5"]
    assert curator_main([*argv, "--experiments", str(experiments_file), "--json"]) == 0
    printed = ExperimentReport.model_validate_json(capsys.readouterr().out)
    assert printed.model_dump(exclude={"generated_at"}) == expected.model_dump(
        exclude={"generated_at"}
    )
    assert len(printed.metrics[0].comparisons[0].timeline) == 5


def test_cli_on_an_empty_store_and_an_unknown_experiment(
    experiments_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    empty = DecisionStore(url)
    empty.create_schema()
    empty.close()
    plot = tmp_path / "empty.png"
    argv = ["experiments", "report", EXPERIMENT_ID, "--store", url]
    assert curator_main([*argv, "--experiments", str(experiments_file), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "note: no unit has been exposed yet" in out and "not measurable yet" in out
    assert plot.stat().st_size > 0
    argv = ["experiments", "report", "nope", "--store", url, "--experiments", str(experiments_file)]
    assert curator_main(argv) == 1
    assert "no experiment 'nope'" in capsys.readouterr().err
