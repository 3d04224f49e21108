"""routing.html of a bundle's eval: the routing tables of eval.json a reader needs to judge routing, plus a gallery.

Self-contained HTML (inline CSS) next to eval.json; gallery pictures are PNG files in `gallery/`, named by
position (never by photo id, which is untrusted text), and every text value is HTML-escaped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from colorize.imaging import write_image
from colorize.io import atomic_write_text
from colorize.models.evaluate.html import esc, fmt, page, table

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}
.good{background:#e5f5e0}.bad{background:#fde0dd}figure{display:inline-block;margin:4px;text-align:center;font-size:12px}
img{width:160px;image-rendering:auto}.row{margin-bottom:12px}"""


def _table(header: list[str], rows: list[list[Any]], classes: list[str] | None = None) -> str:
    """A table of raw values: floats to two decimals, the rest escaped."""
    return table(header, [[fmt(c) for c in row] for row in rows], classes)


def _verdict(result: dict) -> str:
    v = result["verdict"]
    rows = []
    for label, key, unit in (("routed − global PSNR", "psnr_routed_minus_global", "dB"),
                             ("oracle − global PSNR (perfect router)", "psnr_oracle_minus_global", "dB"),
                             ("global − routed ΔCF (colorfulness error saved)", "delta_cf_global_minus_routed", "")):
        p = v[key]
        rows.append([label, p["mean"], f"[{p['ci95'][0]:.2f}, {p['ci95'][1]:.2f}] {unit}", f"{p['wins']} / {p['losses']}"])
    return ("<h2>Does routing beat one model?</h2><p>Paired per photo; positive = routing is better; "
            "95% bootstrap interval.</p>" + _table(["difference", "mean", "95% interval", "photos better / worse"], rows))


def _overall_and_routes(result: dict) -> str:
    metrics = ["psnr", "ssim", "delta_cf", "auc", "auc_rebalanced"]
    ov = result["overall"]
    part = "<h2>Overall</h2>" + _table(["method", "photos", *metrics],
                                        [[m, ov[m]["images"], *[ov[m][k] for k in metrics]]
                                         for m in ("gray", "global", "routed", "oracle")])
    rows, classes = [], []
    for route, t in result["per_route"].items():
        g, r = t["global"]["psnr"], t["routed"]["psnr"]
        delta = None if g is None or r is None else r - g
        rows.append([route, t["photos"], t["gray"]["psnr"], g, r, t["oracle"]["psnr"], delta,
                     t["global"]["delta_cf"], t["routed"]["delta_cf"]])
        classes.append("" if not delta else ("good" if delta > 0 else "bad"))
    part += "<h2>Per route (true route of each photo)</h2>" + _table(
        ["route", "photos", "gray PSNR", "global PSNR", "routed PSNR", "oracle PSNR", "routed − global",
         "global ΔCF", "routed ΔCF"], rows, classes)
    return part + "<h2>Threshold sweep</h2><p>1.0 = always the global model; 0 = always the router's pick.</p>" + \
        _table(["min confidence", "fallback rate", "PSNR", "ΔCF", "AuC", "AuC rebal."],
               [[s["min_confidence"], s["fallback_rate"], s["psnr"], s["delta_cf"], s["auc"], s["auc_rebalanced"]]
                for s in result["threshold_sweep"]])


def _router(result: dict) -> str:
    rt, routes = result["router"], result["routes"]
    return (f"<h2>Router</h2><p>top-1 accuracy {fmt(rt['top1_accuracy'], '{:.3f}')}, top-3 error "
            f"{fmt(rt['top3_error'], '{:.3f}')} on {rt['photos']} photos with a known route "
            f"({rt['unknown_route_photos']} without).</p>"
            + _table(["route", "photos", "top-1 accuracy", "top-3 error", "mean confidence"],
                     [[r, v["photos"], v["top1_accuracy"], v["top3_error"], v["mean_confidence"]]
                      for r, v in rt["per_route"].items()])
            + "<h3>Confusion (rows true, columns predicted)</h3>"
            + _table(["true \\ predicted", *routes], [[r, *row] for r, row in zip(routes, rt["confusion"])]))


def _wrong_routes(result: dict) -> str:
    wr, routes = result["wrong_route"], result["routes"]
    part = ("<h2>What a wrong route costs</h2><p>PSNR of each specialist (rows) on each route's photos "
            "(columns); the diagonal is the right specialist.</p>"
            + _table(["specialist \\ photos of", *routes],
                     [[s, *[wr["matrix"][s][r]["psnr"] for r in routes]] for s in routes])
            + _table(["route", "own specialist PSNR", "other specialists PSNR", "drop", "global PSNR"],
                     [[r, c["own_psnr"], c["other_specialists_psnr"], c["psnr_drop"], c["global_psnr"]]
                      for r, c in wr["cost"].items()]))
    mis = wr["misrouted_photos"]
    if mis:
        part += (f"<p>{mis['photos']} photos were routed to a wrong specialist: PSNR there "
                 f"{fmt(mis['routed']['psnr'])} dB vs {fmt(mis['global']['psnr'])} dB for the global model and "
                 f"{fmt(mis['oracle']['psnr'])} dB for the right specialist.</p>")
    if result.get("per_category"):
        part += "<h2>Per category</h2>" + _table(
            ["category", "photos", "global PSNR", "routed PSNR", "global ΔCF", "routed ΔCF"],
            [[c, v["photos"], v["global"]["psnr"], v["routed"]["psnr"], v["global"]["delta_cf"],
              v["routed"]["delta_cf"]] for c, v in result["per_category"].items()])
    return part


def _gallery(out: Path, result: dict, gallery: dict[int, dict[str, np.ndarray]], choices: list) -> str:
    """gray | global | routed | truth per photo, written as gallery/route-NNN-kind.png (report.html's own
    pictures are gallery/NNN-kind.png)."""
    if not gallery:
        return ""
    parts = ["<h2>Samples</h2>"]
    for i in sorted(gallery):
        c = choices[i]
        photo = result["photos"][i]
        figs = []
        for kind in ("gray", "global", "routed", "truth"):
            img = gallery[i][c.route if kind == "routed" else kind]
            name = f"gallery/route-{i:03d}-{kind}.png"
            write_image(out / name, img)
            label = f"routed → {c.route} ({c.confidence:.2f})" if kind == "routed" else kind
            figs.append(f"<figure><img src='{name}' alt='{kind}'><figcaption>{esc(label)}</figcaption></figure>")
        parts.append(f"<div class='row'><div>{esc(str(photo['category']))} · "
                     f"true route {esc(str(photo['true_route']))}</div>{''.join(figs)}</div>")
    return "".join(parts)


def write_report(path: Path, result: dict, gallery: dict[int, dict[str, np.ndarray]], choices: list) -> None:
    """routing.html (+ its gallery pictures) from eval.json's routing tables (with the model and T)."""
    head = (f"<h1>Routing by {esc(result['route'])}: routed vs one global model</h1>"
            f"<p>Model {esc(result['model'])}; temperature {result['temperature']}; router threshold "
            f"{result['min_confidence']} (below it the global model colors the photo); fallback rate "
            f"{100 * result['fallback_rate']:.1f}%. Higher PSNR / AuC is better, lower ΔCF is better.</p>")
    parts = [head, _verdict(result), _overall_and_routes(result), _router(result), _wrong_routes(result),
             _gallery(Path(path).parent, result, gallery, choices)]
    atomic_write_text(path, page("colorize: routed vs global", _CSS, "\n".join(parts) + "\n"))
