"""`colorize turing`: prepare a study and serve it, or tally one (`--results`).

The pieces: `pairs.py` builds the study folder, `server.py` serves the page and records answers,
`tally.py` turns answers into rates. This module checks the options, wires the models in, and writes the
run records.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colorize.errors import ColorizeError, UsageError
from colorize.io import atomic_write_json, sha256_file, write_run_record
from colorize.models.evaluate.photos import check_one_source
from colorize.models.infer.arrays import parse_temperatures
from colorize.models.net import DEFAULT_TEMPERATURE

from .pairs import JPEG_QUALITY, MAX_SIDE, ColorizeFn, Source, build_study, image_source, shard_source
from .server import StudyServer, bind_error
from .study import Condition
from .tally import format_rate, tally_study

log = logging.getLogger(__name__)


@dataclass
class TuringReport:
    """What one `colorize turing` run did (the CLI prints `summary_line()`)."""

    out: Path
    action: str  # "prepared" | "reused" | "served" | "tallied"
    pairs: int = 0
    practice: int = 0
    conditions: list[str] = field(default_factory=list)
    url: str = ""
    tally: dict[str, Any] | None = None

    def summary_line(self) -> str:
        if self.action == "tallied" or (self.action == "served" and self.tally):
            t = self.tally or {}
            parts = [f"turing: {t['answers']['test']} test answers from {t['participants_n']} participant(s)"]
            if t["overall"]["n"]:
                parts.append(f"fooled {format_rate(t['overall'])}")
            if len(t.get("by_condition", {})) > 1:
                parts.append(" ".join(f"{k} {format_rate(v)}" for k, v in t["by_condition"].items()))
            if t["participants_flagged"]:
                parts.append(f"{len(t['participants_flagged'])} flagged (too fast or one side)")
            return "; ".join(parts) + f" -> {self.out / 'tally.json'}"
        what = "reused the finished study:" if self.action == "reused" else "prepared"
        return (f"turing: {what} {self.pairs} test + {self.practice} practice pairs "
                f"({', '.join(self.conditions)}) in {self.out}"
                + ("; serve it with the same command without --no-serve" if self.action != "served" else ""))


# ---------------------------------------------------------------------------------------- options
def make_conditions(models: Sequence[str | Path], temperatures: Sequence[float]) -> list[tuple[Condition, Path]]:
    """One or two conditions: two models, two temperatures of one model, or two (model, T) pairs."""
    if not models:
        raise UsageError("--model is required to prepare a study",
                         "give --model CKPT (twice to compare two models), or --results DIR to tally a study")
    if len(models) > 2:
        raise UsageError(f"{len(models)} models given; a study compares at most two conditions", "give one or two --model")
    if len(temperatures) > 2:
        raise UsageError(f"{len(temperatures)} temperatures given; a study compares one or two conditions",
                         "write e.g. --temperature 0.38 or 0.38,1.0")
    paths = [Path(m) for m in models]
    for p in paths:
        if not p.is_file():
            raise ColorizeError(f"model {p} not found",
                                "pass a checkpoint written by `colorize train` (e.g. data/runs/default/best.pt)")
    if len(paths) == 1 and len(temperatures) == 1:
        pairs = [(paths[0], temperatures[0])]
    elif len(paths) == 1:
        pairs = [(paths[0], t) for t in temperatures]
    elif len(temperatures) == 1:
        pairs = [(p, temperatures[0]) for p in paths]
    else:
        pairs = list(zip(paths, temperatures))
    digests = {p: sha256_file(p) for p in set(paths)}
    conds = [(Condition(name="AB"[i], model=p.name, model_sha256=digests[p], temperature=t), p)
             for i, (p, t) in enumerate(pairs)]
    if len(conds) == 2 and (conds[0][0].model_sha256, conds[0][0].temperature) == (conds[1][0].model_sha256,
                                                                                    conds[1][0].temperature):
        raise UsageError("the two conditions are the same model at the same temperature",
                         "compare two different models or two different temperatures")
    return conds


def load_colorizers(conds: Sequence[tuple[Condition, Path]]) -> dict[str, ColorizeFn]:
    """One colorize function per condition; each model (a checkpoint or a bundle) is loaded once (GPU when
    present) and colors through the one coloring path, as predict does."""
    from colorize.models.infer.arrays import colorize_rgb
    from colorize.models.infer.colorizer import open_model

    loaded: dict[Path, Any] = {}
    fns: dict[str, ColorizeFn] = {}
    for cond, path in conds:
        if path not in loaded:
            loaded[path] = open_model(path, "auto")
        fns[cond.name] = (lambda rgb, c=loaded[path], t=cond.temperature: colorize_rgb(c, rgb, t))
    return fns


class LazyColorizers(dict):
    """Condition name -> colorize function, loading the models on first use: a reused study needs none,
    and torch is not even imported then."""

    def __init__(self, conds: Sequence[tuple[Condition, Path]]) -> None:
        super().__init__()
        self.conds = conds

    def __missing__(self, key: str) -> ColorizeFn:
        self.update(load_colorizers(self.conds))
        return dict.__getitem__(self, key)


def check_port_free(host: str, port: int) -> None:
    """Fail before minutes of colorizing if the port is taken (the server binds it again right after)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with contextlib.closing(socket.socket(family, socket.SOCK_STREAM)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise bind_error(exc, host, port) from exc


# ---------------------------------------------------------------------------------------- commands
def tally_command(results_dir: str | Path) -> TuringReport:
    """`--results DIR`: write DIR/tally.json and its run record."""
    results_dir = Path(results_dir)
    t0 = time.perf_counter()
    tally = tally_study(results_dir)
    atomic_write_json(results_dir / "tally.json", tally)
    write_run_record(results_dir / "turing-tally-run.json", "turing --results", {"results": str(results_dir)},
                     counts={"answers": tally["answers"], "participants": tally["participants_n"]},
                     timings={"tally": time.perf_counter() - t0})
    return TuringReport(results_dir, "tallied", tally=tally)


def run_turing(models: Sequence[str] = (), shards: str | None = None, split: str = "test",
               images: str | None = None, pairs: int = 40, practice: int = 3, temperature: str | float = DEFAULT_TEMPERATURE,
               view_ms: int = 1000, host: str = "127.0.0.1", port: int = 8765, out: str = "turing",
               seed: int = 0, results_dir: str | None = None, no_serve: bool = False) -> TuringReport:
    """Prepare a study in `out` and serve it until Ctrl-C (or only prepare, or only tally)."""
    if results_dir:
        return tally_command(results_dir)
    check_one_source(shards, images)
    if pairs < 1 or practice < 0 or view_ms < 0:
        raise UsageError("--pairs must be >= 1, --practice and --view-ms >= 0", "fix the numbers")
    conds = make_conditions(models, parse_temperatures(temperature))  # one parser: no inf, no duplicates
    if not no_serve:
        check_port_free(host, port)
    out_dir = Path(out)
    t0 = time.perf_counter()
    source: Source = shard_source(Path(shards), split) if shards is not None else image_source(Path(images))
    t_source = time.perf_counter() - t0

    result = build_study(out_dir, source, [c for c, _ in conds], LazyColorizers(conds), practice, pairs, seed,
                         JPEG_QUALITY, MAX_SIDE)
    study = result.study
    params = {"models": [str(p) for _, p in conds], "shards": shards, "split": split, "images": images,
              "pairs": pairs, "practice": practice, "temperature": temperature, "view_ms": view_ms,
              "host": host, "port": port, "out": str(out_dir), "seed": seed}
    write_run_record(out_dir / "turing-run.json", "turing", params,
                     counts={"candidates": len(source.candidates), "test_pairs": len(study.test()),
                             "practice_pairs": len(study.practice()), "colorized": result.colorized},
                     timings={"source": t_source, "total": time.perf_counter() - t0},
                     study_id=study.study_id, reused=result.reused)
    report = TuringReport(out_dir, "reused" if result.reused else "prepared", len(study.test()),
                          len(study.practice()), [c.label() for c in study.conditions])
    if no_serve:
        return report

    server = StudyServer(out_dir, host, port, view_ms)
    if not server.loopback:
        log.warning("serving on %s: anyone who can reach this machine on port %d can take part", host, server.port)
    report.url = server.url
    print(f"turing: study running at {server.url} (press Ctrl-C to stop)", flush=True)
    print(f"turing: running tally for the experimenter only (keep this address private): {server.results_url}",
          flush=True)
    report.tally = server.serve_until_interrupted()
    report.action = "served"
    return report
