"""The eval report: ``summary.json``, ``summary.md`` (side-by-side table) and ``deltas.png``.

``summary.json`` holds, per model and benchmark, accuracy (fraction 0-1), n, correct and the
per-subset accuracies ``subsets: {key: {label: {accuracy, n}}}`` (DynaMath also
``worst_case``), plus the run's metadata. The Markdown table follows the layout of Table 2
of the paper: one row per benchmark and subset, one accuracy column per model, and for
every model after the first a Δ column in percentage points against the first model (the
host VLM, by convention). ``deltas.png`` plots those Δs.

``write_report`` writes the Markdown and the chart first and ``summary.json`` last, through
a temporary file and a rename, so a summary.json on disk always belongs to a finished run.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

OUTPUT_FILES = ("summary.json", "summary.md", "deltas.png")

DISPLAY_NAMES = {
    "mathvista": "MathVista",
    "mathverse": "MathVerse",
    "mathvision": "MathVision",
    "dynamath": "DynaMath",
    "mmstar": "MMStar",
    "gsm8k": "GSM8K",
    "custom": "Custom",
}

AVERAGE = "Average"


def display_name(bench: str) -> str:
    return DISPLAY_NAMES.get(bench, bench)


# ---------------------------------------------------------------------------------------
# summary.json
# ---------------------------------------------------------------------------------------


# Subset labels with a conventional order (the papers' column order).
LABEL_ORDER = {
    ("mathverse", "version"): ("Text Dominant", "Text Lite", "Vision Intensive", "Vision Dominant", "Vision Only"),
}


def _ordered(bench: str, key: str, labels: Mapping[str, list]) -> List[Tuple[str, list]]:
    """Conventional order where there is one, numeric order for numeric labels (DynaMath
    variants, MathVision levels), else order of first appearance in the data."""
    items = list(labels.items())
    known = LABEL_ORDER.get((bench, key))
    if known:
        rank = {label: i for i, label in enumerate(known)}
        return sorted(items, key=lambda kv: rank.get(kv[0], len(rank)))
    try:
        return sorted(items, key=lambda kv: float(kv[0]))
    except ValueError:
        return items


def _ratio(correct: int, n: int) -> Optional[float]:
    return correct / n if n else None


def bench_summary(bench: str, records: Sequence[Mapping]) -> dict:
    """accuracy / n / correct / subsets (and worst_case for DynaMath) of one model on one benchmark."""
    n = len(records)
    correct = sum(1 for r in records if r.get("correct"))
    counts: Dict[str, Dict[str, List[int]]] = {}
    for r in records:
        for key, value in (r.get("subsets") or {}).items():
            for label in value if isinstance(value, list) else [value]:  # multi-label: each counts
                if label is None or label == "":
                    continue
                cell = counts.setdefault(str(key), {}).setdefault(str(label), [0, 0])
                cell[0] += 1 if r.get("correct") else 0
                cell[1] += 1
    subsets = {
        key: {label: {"accuracy": _ratio(c, m), "n": m} for label, (c, m) in _ordered(bench, key, labels)}
        for key, labels in counts.items()
    }
    out = {"accuracy": _ratio(correct, n), "n": n, "correct": correct, "subsets": subsets}
    if bench == "dynamath":
        # Share of seed questions answered right in every variant; n of that row = seeds.
        out["worst_case"] = _worst_case(records)
        out["seeds"] = len({_seed(r) for r in records})
    return out


def _seed(record: Mapping) -> str:
    row = record.get("row") or {}
    if row.get("id") not in (None, ""):
        return str(row["id"])
    return str(record["id"]).rsplit("-v", 1)[0]


def _worst_case(records: Sequence[Mapping]) -> Optional[float]:
    if not records:
        return None
    from mergekit_vlm.evaluate.benchmarks import Item, dynamath_worst_case

    pairs = [
        (
            Item(
                benchmark=r.get("benchmark", "dynamath"),
                id=str(r["id"]),
                row=r.get("row") or {},
                images=[],
                prompt=r.get("prompt", ""),
                gold=r.get("gold", ""),
                subsets=dict(r.get("subsets") or {}),
            ),
            bool(r.get("correct")),
        )
        for r in records
    ]
    value = dynamath_worst_case(pairs)
    return None if value is None else float(value)


def build_summary(results: Mapping[str, Mapping[str, Sequence[Mapping]]], meta: Mapping) -> dict:
    """``results``: model name -> benchmark -> prediction records (as in the jsonl files)."""
    return {
        "meta": dict(meta),
        "results": {
            model: {bench: bench_summary(bench, records) for bench, records in benches.items()}
            for model, benches in results.items()
        },
    }


# ---------------------------------------------------------------------------------------
# Table rows shared by summary.md and deltas.png
# ---------------------------------------------------------------------------------------


# Subsets shown in the main table and the chart (the paper's columns: MathVista general vs
# math VQA, MathVerse's five versions); every other subset goes to the breakdown table.
HEADLINE_SUBSETS = {
    "mathvista": ("category",),
    "mathverse": ("version",),
    "mmstar": ("category",),
    "custom": ("subset",),
}


Row = Tuple[str, str, str, Dict[str, Tuple[Optional[float], int]]]


def table_rows(summary: Mapping, which: str = "headline") -> List[Row]:
    """(kind, benchmark, label, {model: (accuracy, n)}) rows, in table order.

    kind is "bench" (overall), "worst" (DynaMath worst case; its n counts seed questions),
    "subset" or "average".
    ``which``: "headline" (benchmarks, worst case, ``HEADLINE_SUBSETS``, average), "breakdown"
    (each benchmark with its other subsets) or "all".
    """
    results = summary["results"]
    models = list(results)
    benches: List[str] = list(summary.get("meta", {}).get("benchmarks") or [])
    for model in models:
        benches += [b for b in results[model] if b not in benches]
    rows = []
    for bench in benches:
        per = {m: results[m].get(bench) for m in models}
        keys: List[str] = []
        for s in per.values():
            keys += [k for k in (s or {}).get("subsets", {}) if k not in keys]
        headline = HEADLINE_SUBSETS.get(bench, ())
        if which == "headline":
            keys = [k for k in keys if k in headline]
        elif which == "breakdown":
            keys = [k for k in keys if k not in headline]
            if not keys:
                continue
        rows.append(("bench", bench, display_name(bench),
                     {m: (s["accuracy"], s["n"]) for m, s in per.items() if s}))
        if which != "breakdown" and any(s and "worst_case" in s for s in per.values()):
            rows.append(("worst", bench, "worst case",
                         {m: (s.get("worst_case"), s.get("seeds", s["n"])) for m, s in per.items() if s}))
        for key in keys:
            labels: List[str] = []
            for s in per.values():
                labels += [lab for lab in (s or {}).get("subsets", {}).get(key, {}) if lab not in labels]
            for label in labels:
                cells = {}
                for m, s in per.items():
                    cell = (s or {}).get("subsets", {}).get(key, {}).get(label)
                    if cell:
                        cells[m] = (cell["accuracy"], cell["n"])
                rows.append(("subset", bench, f"{key}: {label}", cells))
    if len(benches) > 1 and which != "breakdown":
        cells = {}
        for m in models:
            accs = [results[m][b]["accuracy"] for b in benches if b in results[m]]
            if len(accs) == len(benches) and all(a is not None for a in accs):
                cells[m] = (sum(accs) / len(accs), sum(results[m][b]["n"] for b in benches))
        rows.append(("average", "", f"{AVERAGE} ({len(benches)} benchmarks)", cells))
    return rows


def _pct(value: Optional[float]) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def _delta(value: Optional[float], ref: Optional[float]) -> Optional[float]:
    if value is None or ref is None:
        return None
    return 100 * (value - ref)


def _fmt_delta(delta: Optional[float]) -> str:
    if delta is None:
        return "–"
    if abs(delta) < 0.05:
        return "±0.0"
    return f"{delta:+.1f}".replace("-", "−")


def model_labels(summary: Mapping) -> Dict[str, str]:
    """Model name -> short column label (its predictions folder name, unique)."""
    slugs = {m["name"]: m.get("slug") for m in summary.get("meta", {}).get("models", [])}
    return {model: slugs.get(model) or Path(model).name or model for model in summary["results"]}


# ---------------------------------------------------------------------------------------
# summary.md
# ---------------------------------------------------------------------------------------


def _table(summary: Mapping, which: str) -> List[str]:
    models = list(summary["results"])
    labels = model_labels(summary)
    first = models[0]
    header = ["Benchmark", "n", labels[first]]
    for m in models[1:]:
        header += [labels[m], f"Δ {labels[m]}"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for kind, _bench, label, cells in table_rows(summary, which):
        ref, n_ref = cells.get(first, (None, 0))
        name = {"bench": f"**{label}**", "average": f"**{label}**", "worst": f"↳ {label}",
                "subset": f"· {label}"}[kind]
        row = [name, str(n_ref) if first in cells else "–", _pct(ref)]
        for m in models[1:]:
            acc, n = cells.get(m, (None, 0))
            text = _pct(acc)
            if m in cells and first in cells and n != n_ref:
                text += f" (n={n})"
            row += [text, _fmt_delta(_delta(acc, ref))]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def format_markdown(summary: Mapping, chart: Optional[str] = None) -> str:
    meta = summary.get("meta", {})
    models = list(summary["results"])
    labels = model_labels(summary)
    first = models[0]
    lines = ["# mergekit-vlm eval", ""]
    facts = [f"date {meta.get('date', '?')}"]
    if meta.get("split"):
        facts.append("split " + ", ".join(f"{b}={s}" for b, s in meta["split"].items()))
    facts.append(f"limit {meta.get('limit') if meta.get('limit') else 'none'}")
    if meta.get("max_new_tokens"):
        facts.append(f"max_new_tokens {meta['max_new_tokens']}")
    if meta.get("device"):
        facts.append(f"device {meta['device']} ({meta.get('dtype', '?')})")
    judge = meta.get("judge")
    facts.append(f"judge {judge['model']} at {judge['url']} (answer extraction only)" if judge
                 else "no judge (rule-based extraction)")
    if meta.get("rescored"):
        facts.append("rescored from saved predictions")
    lines += ["; ".join(facts) + ".", ""]
    lines += [
        "Accuracy in %; Δ in percentage points against the first model "
        f"(`{labels[first]}`). Subset rows are `key: label`; the worst-case n counts seed questions; "
        "the average is over benchmarks.",
        "",
    ]
    lines += _table(summary, "headline")
    lines.append("")
    if chart:
        lines += [f"![Δ against {labels[first]}]({chart})", ""]
    elif len(models) < 2:
        lines += ["(one model: no deltas to chart)", ""]
    breakdown = _table(summary, "breakdown")
    if len(breakdown) > 2:
        lines += ["## Breakdown by subset", ""] + breakdown + [""]
    lines += ["## Models", ""]
    for entry in meta.get("models", []) or [{"name": m} for m in models]:
        details = ", ".join(x for x in (entry.get("architecture"), entry.get("kind")) if x)
        lines.append(f"- `{labels.get(entry['name'], entry['name'])}`: {entry.get('source', entry['name'])}"
                     + (f" ({details})" if details else ""))
    lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# deltas.png
# ---------------------------------------------------------------------------------------

_COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


def plot_deltas(summary: Mapping, path: Path) -> bool:
    """Horizontal bars of Δ accuracy (pp) against the first model, one bar per later model
    for every table row. Returns False (and writes nothing) with fewer than two models."""
    models = list(summary["results"])
    if len(models) < 2:
        return False
    # The Agg canvas directly, not pyplot: no global backend switch, no GUI, thread-safe.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = model_labels(summary)
    first, others = models[0], models[1:]
    rows = table_rows(summary, "headline")
    n_rows = len(rows)
    bar_h = 0.8 / len(others)
    height = max(2.5, 0.32 * n_rows * max(1.0, 0.6 * len(others)) + 1.4)
    fig = Figure(figsize=(9.5, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    deltas_all = []
    for j, m in enumerate(others):
        ys, vals, present = [], [], []
        for i, (_kind, _b, _label, cells) in enumerate(rows):
            ref = cells.get(first, (None, 0))[0]
            acc = cells.get(m, (None, 0))[0]
            d = _delta(acc, ref)
            ys.append(i + (j - (len(others) - 1) / 2) * bar_h)
            vals.append(0.0 if d is None else d)
            present.append(d is not None)
            if d is not None:
                deltas_all.append(d)
        color = _COLORS[j % len(_COLORS)]
        bars = ax.barh(ys, vals, height=bar_h * 0.9, color=color, label=labels[m])
        for bar, v, ok, (kind, *_rest) in zip(bars, vals, present, rows):
            if kind in ("subset", "worst"):
                bar.set_alpha(0.55)
            text = _fmt_delta(v) if ok else "n/a"
            x = bar.get_width()
            ax.annotate(text, (x, bar.get_y() + bar.get_height() / 2), xytext=(3 if x >= 0 else -3, 0),
                        textcoords="offset points", ha="left" if x >= 0 else "right", va="center", fontsize=7.5)
    span = max([abs(d) for d in deltas_all] + [1.0])
    ax.set_xlim(-span * 1.3, span * 1.3)
    ax.axvline(0, color="black", linewidth=0.8)
    ytick_labels = []
    for kind, _b, label, _cells in rows:
        ytick_labels.append(label if kind in ("bench", "average") else "   " + label)
    ax.set_yticks(range(n_rows))
    ax.set_yticklabels(ytick_labels, fontsize=8)
    for tick, (kind, *_rest) in zip(ax.get_yticklabels(), rows):
        if kind in ("bench", "average"):
            tick.set_fontweight("bold")
        else:
            tick.set_color("#444444")
    for i, (kind, *_rest) in enumerate(rows):  # separate benchmarks
        if i and kind in ("bench", "average"):
            ax.axhline(i - 0.5, color="#bbbbbb", linewidth=0.6)
    ax.set_ylim(n_rows - 0.5, -0.5)  # first row on top, as in the table
    ax.set_xlabel(f"Δ accuracy (percentage points) vs {labels[first]}")
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.set_title(f"Accuracy change against {labels[first]}", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="model",
              title_fontsize=8)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp)
    os.replace(tmp, path)
    return True


# ---------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename: readers never see half a file."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_report(out: Path, summary: Mapping) -> None:
    """summary.md and deltas.png, then summary.json (atomically, last)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chart = out / "deltas.png"
    drawn = plot_deltas(summary, chart)
    if not drawn:
        chart.unlink(missing_ok=True)
    write_atomic(out / "summary.md", format_markdown(summary, chart.name if drawn else None))
    write_atomic(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
