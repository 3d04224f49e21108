"""Pictures and pages for people: confidence maps, temperature strips, and the eval report.html.

Everything here turns numbers into something a person looks at, so the run loops (predict, video,
evaluate) stay about computing. The HTML page is self-contained (inline CSS, no scripts from anywhere)
and references its images relatively, so the eval folder can be zipped and shared as is.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from colorize.io import atomic_write_bytes, atomic_write_text

# The confidence ratio first/second is shown on a log scale from 1 (two colors tie) to this (sure).
RATIO_SCALE_MAX = 10.0
STRIP_MAX_HEIGHT = 512


def encode_image(rgb: np.ndarray, suffix: str) -> bytes:
    """uint8 RGB -> PNG or JPEG bytes (quality 95, no chroma subsampling: color is the point here)."""
    buf = io.BytesIO()
    img = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    if suffix.lower() in (".jpg", ".jpeg"):
        img.save(buf, format="JPEG", quality=95, subsampling=0)
    else:
        img.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def write_image(path: Path, rgb: np.ndarray) -> None:
    atomic_write_bytes(path, encode_image(rgb, path.suffix))


def colormap_image(values01: np.ndarray) -> np.ndarray:
    """[0,1] float -> viridis uint8 RGB (perceptually ordered, readable by color-blind viewers)."""
    u8 = np.clip(np.rint(values01 * 255.0), 0, 255).astype(np.uint8)
    return cv2.applyColorMap(u8, cv2.COLORMAP_VIRIDIS)[..., ::-1].copy()


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    """A white caption bar above `panel`, sized to the panel so it reads at any resolution."""
    h, w = panel.shape[:2]
    bar = max(18, min(64, h // 12))
    scale = bar / 40.0
    thickness = max(1, round(scale * 1.5))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    if tw > w - 4:  # narrow panel: shrink the text to fit rather than cut it off
        scale *= (w - 4) / tw
        thickness = 1
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    head = np.full((bar, w, 3), 255, np.uint8)
    org = (max(2, (w - tw) // 2), (bar + th) // 2)
    cv2.putText(head, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), thickness, cv2.LINE_AA)
    return np.concatenate([head, panel], axis=0)


def confidence_image(top: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """Two labelled viridis panels side by side: top probability (0..1) and first/second ratio (log 1..10)."""
    ratio_01 = np.log(np.clip(ratio, 1.0, RATIO_SCALE_MAX)) / math.log(RATIO_SCALE_MAX)
    left = _label(colormap_image(np.clip(top, 0.0, 1.0)), "top probability")
    right = _label(colormap_image(ratio_01), f"1st/2nd ratio (log 1..{RATIO_SCALE_MAX:g})")
    gap = np.full((left.shape[0], max(2, left.shape[1] // 100), 3), 255, np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def strip_image(panels: Sequence[tuple[str, np.ndarray]], max_height: int = STRIP_MAX_HEIGHT) -> np.ndarray:
    """Labelled panels (e.g. gray input and each temperature) side by side, each at most `max_height` tall."""
    h, w = panels[0][1].shape[:2]
    scale = min(1.0, max_height / h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = []
    for i, (label, rgb) in enumerate(panels):
        small = rgb if scale == 1.0 else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        out.append(_label(small, label))
        if i < len(panels) - 1:
            out.append(np.full((out[-1].shape[0], max(2, size[0] // 100), 3), 255, np.uint8))
    return np.concatenate(out, axis=1)


def prediction_pictures(pred: Any, temperatures: Sequence[float], with_confidence: bool) -> list[tuple[str, np.ndarray]]:
    """(tag, picture) for one `predict.ImagePrediction`: tags `color` (or `t<T>.color` for each of several
    temperatures), `strip` (gray input + each temperature) and `confidence`."""
    from colorize.models.infer.predict import gray_of

    if len(temperatures) == 1:
        return [("color", pred.colors[0])] + _confidence_picture(pred, with_confidence)
    out = [(f"t{t:g}.color", rgb) for t, rgb in zip(temperatures, pred.colors)]
    panels = [("gray input", gray_of(pred.prepared.L_full))]
    panels += [(f"T = {t:g}", rgb) for t, rgb in zip(temperatures, pred.colors)]
    return out + [("strip", strip_image(panels))] + _confidence_picture(pred, with_confidence)


def _confidence_picture(pred: Any, wanted: bool) -> list[tuple[str, np.ndarray]]:
    if not wanted:
        return []
    f = pred.prepared.framing  # model-size maps, padding cropped, at the photo's size
    return [("confidence", confidence_image(f.upsample(pred.top, cv2.INTER_LINEAR),
                                            f.upsample(pred.ratio, cv2.INTER_LINEAR)))]


# ------------------------------------------------------------------------------------ the HTML page
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
            ("auc", "AuC %", True, "{:.1f}"), ("auc_rebalanced", "AuC rebal. %", True, "{:.1f}"))


def _fmt(value: Any, pattern: str) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else pattern.format(value)


def _table(groups: dict[str, dict[str, dict[str, Any]]]) -> str:
    """One block of rows per group (overall, then each category): model and gray baseline."""
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label, _, _ in _COLUMNS)
    rows = []
    for group, methods in groups.items():
        model, gray = methods.get("model", {}), methods.get("gray", {})
        for name, values, other in (("model", model, gray), ("gray baseline", gray, model)):
            cells = []
            for key, _, higher, pattern in _COLUMNS:
                v, o = values.get(key), other.get(key)
                win = higher is not None and v is not None and o is not None and (v > o if higher else v < o)
                cells.append(f'<td class="win">{_fmt(v, pattern)}</td>' if win else f"<td>{_fmt(v, pattern)}</td>")
            n = values.get("images", 0)
            title = f"<b>{html.escape(group)}</b> · {name}" if name == "model" else f"&nbsp;&nbsp;{name}"
            rows.append(f"<tr><td>{title} <span class='note'>({n})</span></td>{''.join(cells)}</tr>")
    return f"<table><thead><tr><th></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _gallery(samples: Sequence[dict[str, Any]]) -> str:
    figures = []
    for s in samples:
        imgs = "".join(
            f"<div><img loading='lazy' src='{html.escape(s[key])}' alt='{label}'><div class='cap'>{label}</div></div>"
            for key, label in (("gray", "input (gray)"), ("pred", "colorized"), ("truth", "truth"),
                               ("confidence", "confidence")) if s.get(key))
        m = s.get("metrics", {})
        facts = " · ".join(f"{label} {_fmt(m.get(key), pattern)}" for key, label, _, pattern in _COLUMNS
                          if key in ("psnr", "ssim", "colorfulness", "delta_cf"))
        figures.append(f"<figure><div class='row'>{imgs}</div><figcaption><b>{html.escape(s['name'])}</b> "
                       f"<span class='note'>[{html.escape(s['category'])}]</span><br>{facts}</figcaption></figure>")
    return f"<div class='gallery'>{''.join(figures)}</div>"


def render_report(result: dict[str, Any]) -> str:
    """The whole report page for an eval result (the dict written to eval.json)."""
    groups = {"overall": result["overall"], **result.get("categories", {})}
    conv = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>"
                   for k, v in sorted(result.get("conventions", {}).items()))
    facts = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>"
                    for k, v in (("model", result.get("model")), ("model sha256", result.get("model_sha256")),
                                 ("data", ", ".join(f"{a} {b}" for a, b in result.get("data", {}).items())),
                                 ("temperature", result.get("temperature")), ("images", result.get("images")),
                                 ("tool version", result.get("tool_version"))))
    overall = result["overall"]
    headline = " · ".join(
        f"{label}: {_fmt(overall.get('model', {}).get(key), pattern)} vs gray {_fmt(overall.get('gray', {}).get(key), pattern)}"
        for key, label, _, pattern in _COLUMNS if key in ("psnr", "delta_cf", "auc_rebalanced"))
    samples = result.get("gallery", [])
    gallery = _gallery(samples) if samples else "<p class='note'>No gallery samples (--gallery 0).</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>colorize eval — {html.escape(str(result.get('model_name', 'model')))}</title><style>{_CSS}</style></head>
<body><header><h1>Colorization report</h1><p>{html.escape(headline)}</p></header><main>
<section><h2>Model against the gray baseline</h2>
<p class="note">Green marks the better of model and gray baseline (higher PSNR, SSIM, AuC; lower ΔCF).
The gray baseline keeps the true lightness and sets ab = 0: it is hard to beat on PSNR and SSIM, so look at
ΔCF and the rebalanced AuC for whether the colors are right and vivid.</p>
{_table(groups)}</section>
<section><h2>Samples</h2>{gallery}</section>
<section><h2>Run</h2><dl>{facts}</dl><h2>Conventions</h2><dl>{conv}</dl></section>
</main></body></html>
"""


def write_report(path: Path, result: dict[str, Any]) -> None:
    atomic_write_text(path, render_report(result))
