"""`curator eval`'s outputs: the figures as a table, and a contact sheet of every disagreement.

People would rather look at the misses than read about them, so the sheet shows each image the
service and the reviewer disagree on, with the boxes the detectors drew, what each side answered
and the rules that fired on it as a main image. It is one self-contained HTML file (thumbnails
inlined as JPEG) that opens anywhere.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from PIL import Image, ImageDraw

from curator.core.evaluation import LABELS, EvaluationReport, ImageResult

THUMBNAIL_SIDE = 360
# Box outline colour per detection kind; other kinds are drawn grey.
_BOX_COLOURS = {"person": (230, 40, 40), "text": (30, 110, 230), "object": (20, 160, 60)}


def _figure(value: float | None) -> str:
    return "  -  " if value is None else f"{value:.2f}"


def format_table(report: EvaluationReport) -> str:
    lines = [f"{'label':22} {'precision':>9} {'recall':>7} {'F1':>6}   "
             f"{'TP':>4} {'FP':>4} {'FN':>4} {'TN':>4}"]
    for label in LABELS:
        score = report.scores[label]
        lines.append(
            f"{label:22} {_figure(score.precision):>9} {_figure(score.recall):>7} "
            f"{_figure(score.f1):>6}   {score.tp:4} {score.fp:4} {score.fn:4} {score.tn:4}"
            + (f"   ({score.unmeasured} not measured)" if score.unmeasured else "")
        )
    lines.append(f"{'macro F1':22} {'':>9} {'':>7} {report.macro_f1:6.2f}")
    rate = report.selection_hit_rate
    lines.append(
        f"selection: the main image is a compliant one in {report.selection_hits} of "
        f"{report.selection_groups} groups that have one"
        + (f" ({rate:.0%})" if rate is not None else "")
    )
    lines.append(f"{len(report.images)} images in {len(report.groups)} groups"
                 + (f", {len(report.errors)} not assessed" if report.errors else ""))
    return "\n".join(lines)


def _thumbnail(result: ImageResult) -> str:
    """The image with its detection boxes, as a data: URL."""
    with Image.open(result.labelled.path) as opened:
        picture = opened.convert("RGB")
    picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    draw = ImageDraw.Draw(picture)
    width, height = picture.size
    for box in result.boxes:
        x0, y0, x1, y1 = box.box
        colour = _BOX_COLOURS.get(box.kind, (128, 128, 128))
        draw.rectangle((x0 * width, y0 * height, x1 * width, y1 * height), outline=colour,
                       width=2)
        draw.text((x0 * width + 2, y0 * height + 1), box.label, fill=colour)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def _answer(value: bool | None) -> str:
    return "not measured" if value is None else ("yes" if value else "no")


def write_contact_sheet(report: EvaluationReport, path: Path) -> int:
    """Writes the sheet; returns how many images it shows."""
    shown = [result for result in report.images if result.disagreements]
    cards = []
    for result in shown:
        missed = "".join(
            f"<li><b>{label}</b>: reviewer {_answer(result.labelled.labels[label])}, "
            f"curator {_answer(result.predicted[label])}</li>"
            for label in result.disagreements
        )
        rules = ", ".join(result.violations) or "none"
        notes = f"<p class=notes>{html.escape(result.labelled.notes)}</p>" \
            if result.labelled.notes else ""
        cards.append(
            f"<figure><img src=\"{_thumbnail(result)}\" "
            f"alt=\"{html.escape(result.labelled.image)}\">"
            f"<figcaption><code>{html.escape(result.labelled.image)}</code> "
            f"({html.escape(result.labelled.category)}, {html.escape(result.labelled.group)})"
            f"<ul>{missed}</ul><p>rules as main: {html.escape(rules)}</p>{notes}"
            f"</figcaption></figure>"
        )
    legend = ", ".join(f"<span style=\"color:rgb{colour}\">{kind}</span>"
                       for kind, colour in _BOX_COLOURS.items())
    page = (
        "<!doctype html><meta charset=utf-8><title>curator eval: disagreements</title>"
        "<style>body{font:14px sans-serif;margin:1em}figure{display:inline-block;"
        "vertical-align:top;width:370px;margin:6px;border:1px solid #ccc;padding:4px}"
        "img{max-width:360px}ul{margin:4px 0;padding-left:18px}.notes{color:#666}</style>"
        f"<h1>{len(shown)} images where curator and the reviewer disagree</h1>"
        f"<pre>{html.escape(format_table(report))}</pre><p>boxes: {legend}</p>"
        + "".join(cards)
    )
    path.write_text(page)
    return len(shown)
