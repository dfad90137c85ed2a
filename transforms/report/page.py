"""``OUT/report/index.html`` + PNGs: one self-contained page (relative image paths, inline CSS, no scripts).

``write_report(out, fs)`` reads the manifest and data tables, draws the overview and split-comparison figures and
asks the dataset's recipe for its own (``report_figures``, an optional hook of ``transforms.recipes.base.Recipe``).
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from transforms.contract import MANIFEST, REPORT_DIR
from transforms.report import overview
from transforms.report.data import ReportFiles, numeric_columns, split_tables
from transforms.report.figures import Figure
from transforms.report.skew import DEFAULT_ALPHA, DEFAULT_THRESHOLD, SkewResult, compare_any

_LOG = logging.getLogger(__name__)
INDEX = "index.html"
_CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1320px;color:#222}
h1{margin-bottom:4px} h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:36px}
table{border-collapse:collapse;margin:8px 0 16px} td,th{border:1px solid #ccc;padding:3px 10px;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
figure{margin:12px 0 28px} figure img{max-width:100%;border:1px solid #eee} figcaption{color:#555;font-size:90%}
.flag{background:#fde2e2;color:#a00;font-weight:bold} .ok{color:#2a7a2a} .meta{color:#666;font-size:90%}
"""


@dataclass
class Report:
    """What ``write_report`` wrote: the page, its figures and the split comparison."""

    path: str
    figures: list[Figure] = field(default_factory=list)
    skew: list[SkewResult] = field(default_factory=list)

    @property
    def flagged(self) -> list[SkewResult]:
        return [result for result in self.skew if result.flagged]


def recipe_figures(manifest: dict[str, Any], out: str, fs: ReportFiles) -> list[Figure]:
    """The recipe's own figures, when the manifest names a registered recipe that has the hook."""
    raw = manifest.get("config")
    if not raw or "recipe" not in raw:
        return []
    from transforms.config import DatasetConfig, validate
    from transforms.recipes import get_recipe

    recipe = get_recipe(raw["recipe"])
    hook = getattr(recipe, "report_figures", None)
    if hook is None:
        _LOG.debug("report: recipe %s draws no figures of its own", recipe.name)
        return []
    return list(hook(validate(DatasetConfig, raw, MANIFEST), out, manifest, fs))


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row.values()) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _skew_table(results: list[SkewResult], threshold: float, alpha: float) -> str:
    if not results:
        return "<p>no numeric data-table columns to compare</p>"
    rows = []
    for r in results:
        cls = ' class="flag"' if r.flagged else ""
        verdict = "SKEW" if r.flagged else "ok"
        rows.append(
            f"<tr{cls}><td>{html.escape(r.column)}</td><td>{html.escape(r.reference)} vs {r.split}</td>"
            f"<td>{r.n_train}</td>"
            f"<td>{r.n_other}</td><td>{r.statistic:.3f}</td><td>{r.pvalue:.2g}</td><td>{verdict}</td></tr>"
        )
    head = "<tr><th>column</th><th>splits</th><th>n reference</th><th>n other</th><th>KS D</th><th>p</th><th></th></tr>"
    n_flagged = sum(r.flagged for r in results)
    summary = (
        f'<p class="flag">{n_flagged} of {len(results)} comparisons flagged</p>'
        if n_flagged
        else f'<p class="ok">no skew: 0 of {len(results)} comparisons flagged</p>'
    )
    rule = (
        '<p class="meta">One value per target (the mean over its examples): targets are what the split draws. '
        f"Flagged when KS D &gt; {threshold} and p &lt; {alpha} / {len(results)} (Bonferroni). "
        "Also checked by <code>sigforge audit --skew</code>.</p>"
    )
    return summary + rule + f"<table>{head}{''.join(rows)}</table>"


def _figure_html(figure: Figure) -> str:
    return (
        f'<figure><img src="{html.escape(figure.name)}.png" alt="{html.escape(figure.title)}">'
        f"<figcaption><b>{html.escape(figure.title)}.</b> {html.escape(figure.caption)}</figcaption></figure>"
    )


def render_html(manifest: dict[str, Any], out: str, figures: list[Figure], skew_html: str) -> str:
    """The page: overview table, then every figure grouped by section, the split comparison last."""
    name = manifest.get("config", {}).get("name", "")
    recipe = manifest.get("config", {}).get("recipe", "")
    sections: dict[str, list[Figure]] = {overview.OVERVIEW: []}
    for figure in figures:
        sections.setdefault(figure.section, []).append(figure)
    sections.setdefault(overview.SKEW, [])
    parts = [
        f"<h1>sigforge dataset report: {html.escape(name)}</h1>",
        f'<p class="meta">recipe <b>{html.escape(recipe)}</b> &middot; {html.escape(out)} &middot; created '
        f"{html.escape(str(manifest.get('created', '')))}</p>",
    ]
    for section, members in sections.items():
        parts.append(f"<h2>{html.escape(section)}</h2>")
        if section == overview.OVERVIEW:
            parts.append(_table(overview.stage_rows(manifest)))
            for title, rows in overview.split_mode_tables(manifest):
                parts.append(f"<h3>{html.escape(title)}</h3>{_table(rows)}")
        if section == overview.SKEW:
            parts.append(skew_html)
        parts += [_figure_html(figure) for figure in members]
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>sigforge report {html.escape(name)}</title><style>{_CSS}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )


def write_report(
    out: str, fs: ReportFiles, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA
) -> Report:
    """Writes ``OUT/report/index.html`` and one PNG per figure; returns what it wrote."""
    manifest = json.loads(fs.read_text(fs.join(out, MANIFEST)))
    columns = numeric_columns(split_tables(fs, out), per_target=True)
    skew = compare_any(columns, threshold, alpha)
    figures = [
        figure
        for figure in (
            overview.split_figure(manifest),
            overview.rejection_figure(manifest),
            *recipe_figures(manifest, out, fs),
            overview.skew_figure(columns, skew),
        )
        if figure is not None
    ]
    folder = fs.join(out, REPORT_DIR)
    fs.makedirs(folder)
    for figure in figures:
        fs.write_bytes(fs.join(folder, f"{figure.name}.png"), figure.png)
    path = fs.join(folder, INDEX)
    fs.write_text(path, render_html(manifest, out, figures, _skew_table(skew, threshold, alpha)))
    return Report(path, figures, skew)
