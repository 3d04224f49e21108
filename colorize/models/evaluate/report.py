"""The eval report.html of one model: model against the gray baseline, overall and per category, with samples.

The page is self-contained (inline CSS, no scripts from anywhere) and references its images relatively,
so the eval folder can be zipped and shared as is. Shared HTML pieces live in `html.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from colorize.io import atomic_write_text
from colorize.models.evaluate.html import esc, fmt, page, table

_CSS = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f5f2;color:#222}
header{background:#1f2430;color:#fff;padding:24px 32px}
header h1{margin:0 0 4px;font-size:24px} header p{margin:0;color:#c9cdd6}
main{padding:24px 32px;max-width:1400px;margin:auto}
section{background:#fff;border-radius:10px;box-shadow:0 1px 3px #0002;padding:18px 22px;margin-bottom:22px}
h2{margin-top:0;font-size:18px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:6px 10px;text-align:right;border-bottom:1px solid #eee}
th:first-child,td:first-child{text-align:left}
thead th{background:#fafafa;font-weight:600}
td.win{background:#e6f4ea;font-weight:600}
.note{color:#666;font-size:13px}
.warn{background:#fff4e5;border-left:4px solid #f0a030;padding:8px 12px;margin:0 0 12px}
.verdict.pass{border-left:6px solid #2e9d55} .verdict.fail{border-left:6px solid #d04040}
.verdict li.pass{color:#1d6b39} .verdict li.fail{color:#a02828}
.legend img{width:320px;max-width:100%;vertical-align:middle;border-radius:3px}
.bar{display:inline-block;height:8px;background:#6b8afd;border-radius:4px;vertical-align:middle;margin-left:6px}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:18px}
figure{margin:0;background:#fafafa;border-radius:8px;padding:10px}
figure .row{display:grid;grid-template-columns:repeat(4,1fr);gap:6px}
figure img{width:100%;border-radius:4px;image-rendering:auto;display:block}
figure .cap{font-size:12px;color:#555;text-align:center}
figcaption{font-size:13px;margin-top:6px;color:#333}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:13px} dt{color:#666}
"""

# (key, label, higher is better?, format)
_COLUMNS = (("psnr", "PSNR dB", True, "{:.2f}"), ("ssim", "SSIM", True, "{:.4f}"),
            ("colorfulness", "CF", None, "{:.1f}"), ("colorfulness_truth", "CF truth", None, "{:.1f}"),
            ("delta_cf", "ΔCF", False, "{:.1f}"),
            ("auc", "AuC %", True, "{:.1f}"), ("auc_rebalanced", "AuC rebal. %", True, "{:.1f}"),
            ("ab_offset_a", "cast a", None, "{:+.1f}"), ("ab_offset_b", "cast b", None, "{:+.1f}"))


def _table(groups: dict[str, dict[str, dict[str, Any]]]) -> str:
    """One block of rows per group (overall, then each category): model and gray baseline."""
    rows = []
    for group, methods in groups.items():
        model, gray = methods.get("model", {}), methods.get("gray", {})
        for name, values, other in (("model", model, gray), ("gray baseline", gray, model)):
            cells: list[str | tuple[str, str]] = []
            for key, _, higher, pattern in _COLUMNS:
                v, o = values.get(key), other.get(key)
                win = higher is not None and v is not None and o is not None and (v > o if higher else v < o)
                cells.append((fmt(v, pattern), "win") if win else fmt(v, pattern))
            n = values.get("images", 0)
            title = f"<b>{esc(group)}</b> · {name}" if name == "model" else f"&nbsp;&nbsp;{name}"
            rows.append([f"{title} <span class='note'>({n})</span>", *cells])
    return table(["", *(label for _, label, _, _ in _COLUMNS)], rows)


def _gallery(samples: Sequence[dict[str, Any]]) -> str:
    figures = []
    for s in samples:
        imgs = "".join(
            f"<div><img loading='lazy' src='{esc(s[key])}' alt='{label}'><div class='cap'>{label}</div></div>"
            for key, label in (("gray", "input (gray)"), ("pred", "colorized"), ("truth", "truth"),
                               ("confidence", "confidence")) if s.get(key))
        m = s.get("metrics", {})
        facts = " · ".join(f"{label} {fmt(m.get(key), pattern)}" for key, label, _, pattern in _COLUMNS
                          if key in ("psnr", "ssim", "colorfulness", "delta_cf"))
        figures.append(f"<figure><div class='row'>{imgs}</div><figcaption><b>{esc(s['name'])}</b> "
                       f"<span class='note'>[{esc(s['category'])}]</span><br>{facts}</figcaption></figure>")
    return f"<div class='gallery'>{''.join(figures)}</div>"


def _legend(confidence: dict[str, Any] | None) -> str:
    """The key to the confidence maps: one stretch for the whole page, so maps compare across photos."""
    if not confidence:
        return ""
    lo, hi = confidence["range"]
    return (f"<p class='note legend'>Confidence maps: <img src='{esc(confidence['legend'])}' alt='legend'> "
            f"{lo:.2f} (dark: the model was unsure, the color was kept near gray) to {hi:.2f} (bright: "
            f"painted with confidence) — the share of the predicted chroma that was painted, stretched to "
            f"the range these samples use.</p>")


def _verdict(verdict: dict[str, Any] | None) -> str:
    """A caller's verdict at the top of the page (the demo's bars): {"title", "passed", "bars": [{"text", "passed"}]}."""
    if not verdict:
        return ""
    bars = "".join(f"<li class='{'pass' if b['passed'] else 'fail'}'>{'✔ passed' if b['passed'] else '✘ failed'}: "
                   f"{esc(b['text'])}</li>" for b in verdict.get("bars", []))
    return (f"<section class='verdict {'pass' if verdict.get('passed') else 'fail'}'><h2>{esc(verdict['title'])}</h2>"
            f"<ul>{bars}</ul></section>")


_SWEEP_COLOURS = {"model": "#3558d6", "propagation": "#d07a1e"}


def sweep_svg(rows: Sequence[dict[str, Any]], key: str = "psnr", label: str = "PSNR dB") -> str:
    """An inline SVG line plot of `key` against the number of hint points, one line per method (the counts
    evenly spaced along x, labelled; no script, no external asset)."""
    width, height, left, bottom, top, right = 560, 260, 52, 36, 14, 130
    values = [r[m].get(key) for r in rows for m in _SWEEP_COLOURS if r.get(m, {}).get(key) is not None]
    if not rows or not values:
        return ""
    lo, hi = min(values), max(values)
    lo, hi = (lo - 0.5, hi + 0.5) if hi - lo < 1e-9 else (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    step = (width - left - right) / max(1, len(rows) - 1)

    def xy(i: int, v: float) -> str:
        return f"{left + i * step:.1f},{top + (hi - v) / (hi - lo) * (height - top - bottom):.1f}"

    parts = [f"<line x1='{left}' y1='{height - bottom}' x2='{width - right}' y2='{height - bottom}' stroke='#999'/>",
             f"<line x1='{left}' y1='{top}' x2='{left}' y2='{height - bottom}' stroke='#999'/>",
             f"<text x='{(width - right + left) / 2:.0f}' y='{height - 4}' font-size='12' text-anchor='middle'>"
             f"hint points</text>",
             f"<text x='12' y='{(height - bottom + top) / 2:.0f}' font-size='12' text-anchor='middle' "
             f"transform='rotate(-90 12 {(height - bottom + top) / 2:.0f})'>{esc(label)}</text>"]
    for i, r in enumerate(rows):
        parts.append(f"<text x='{left + i * step:.1f}' y='{height - bottom + 16}' font-size='11' "
                     f"text-anchor='middle'>{int(r['points'])}</text>")
    for v in (lo, (lo + hi) / 2, hi):
        y = xy(0, v).split(",")[1]
        parts.append(f"<text x='{left - 6}' y='{y}' font-size='11' text-anchor='end'>{v:.1f}</text>")
    for n, (method, colour) in enumerate(_SWEEP_COLOURS.items()):
        pts = [xy(i, r[method][key]) for i, r in enumerate(rows) if r.get(method, {}).get(key) is not None]
        parts.append(f"<polyline fill='none' stroke='{colour}' stroke-width='2' points='{' '.join(pts)}'/>")
        parts += [f"<circle cx='{p.split(',')[0]}' cy='{p.split(',')[1]}' r='3' fill='{colour}'/>" for p in pts]
        parts.append(f"<text x='{width - right + 10}' y='{top + 14 + 18 * n}' font-size='12' "
                     f"fill='{colour}'>{esc(method)}</text>")
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' role='img' "
            f"aria-label='{esc(label)} against hint points'>{''.join(parts)}</svg>")


def _sweep_section(sweep: dict[str, Any] | None) -> str:
    """The hints sweep: a plot of PSNR and rebalanced AuC per point count, and the table behind it."""
    if not sweep:
        return ""
    rows = sweep["rows"]
    cells = []
    for r in rows:
        cells.append([str(r["points"])] + [fmt(r[m].get(k), p) for m in _SWEEP_COLOURS for k, p in
                                           (("psnr", "{:.2f}"), ("auc_rebalanced", "{:.1f}"), ("delta_cf", "{:.1f}"),
                                            ("hint_ab_error", "{:.1f}"))])
    head = ["points"] + [f"{m} {k}" for m in _SWEEP_COLOURS for k in ("PSNR dB", "AuC rebal. %", "ΔCF", "|ab − hint|")]
    proto = sweep.get("protocol", {})
    return (f"<section><h2>Colour hints sweep</h2><p class='note'>Zhang et al. 2017's simulated user: seeded "
            f"random points around the centre (seed {esc(proto.get('seed'))}), each patch the true mean colour; "
            f"the same points for the network and for colour propagation by optimisation (Levin et al. 2004). "
            f"|ab − hint| is the mean CIELAB distance of the output to the hint inside the hinted patches.</p>"
            f"{sweep_svg(rows)} {sweep_svg(rows, 'auc_rebalanced', 'AuC rebal. %')}{table(head, cells)}</section>")


def render_report(result: dict[str, Any]) -> str:
    """The whole report page for an eval result (the dict written to eval.json)."""
    groups = {"overall": result["overall"], **result.get("categories", {})}
    conv = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>"
                   for k, v in sorted(result.get("conventions", {}).items()))
    facts = "".join(f"<dt>{esc(k)}</dt><dd>{esc(str(v))}</dd>"
                    for k, v in (("model", result.get("model")), ("model sha256", result.get("model_sha256")),
                                 ("data", ", ".join(f"{a} {b}" for a, b in result.get("data", {}).items())),
                                 ("temperature", result.get("temperature")), ("images", result.get("images")),
                                 ("tool version", result.get("tool_version"))))
    overall = result["overall"]
    headline = " · ".join(
        f"{label}: {fmt(overall.get('model', {}).get(key), pattern)} vs gray {fmt(overall.get('gray', {}).get(key), pattern)}"
        for key, label, _, pattern in _COLUMNS if key in ("psnr", "delta_cf", "auc_rebalanced"))
    samples = result.get("gallery", [])
    gallery = _gallery(samples) if samples else "<p class='note'>No gallery samples (--gallery 0).</p>"
    legend = _legend(result.get("confidence"))
    warnings = "".join(f"<p class='warn'>⚠ {esc(w)}</p>" for w in result.get("warnings", []))
    body = f"""<header><h1>Colorization report</h1><p>{esc(headline)}</p></header><main>{_verdict(result.get("verdict"))}
<section><h2>Model against the gray baseline</h2>{warnings}
<p class="note">Green marks the better of model and gray baseline (higher PSNR, SSIM, AuC; lower ΔCF).
The gray baseline keeps the true lightness and sets ab = 0: it is hard to beat on PSNR and SSIM, so look at
ΔCF and the rebalanced AuC for whether the colors are right and vivid. "cast a / b" is the mean ab offset
of the picture against the truth (Lab units): b &gt; 0 is a warm/sepia cast, b &lt; 0 a blue one.</p>
{_table(groups)}</section>
{_sweep_section(result.get("hints_sweep"))}
<section><h2>Samples</h2>{legend}{gallery}</section>
<section><h2>Run</h2><dl>{facts}</dl><h2>Conventions</h2><dl>{conv}</dl></section>
</main>"""
    return page(f"colorize eval — {result.get('model_name', 'model')}", _CSS, body)


def write_report(path: Path, result: dict[str, Any]) -> None:
    atomic_write_text(path, render_report(result))
