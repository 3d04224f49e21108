"""Tally a "real or colorized?" study: fooled rates with 95% Wilson intervals, per category, per condition,
per participant, time per answer, and flags for participants who answer too fast to be looking.

Why Wilson and not the textbook normal interval: studies are small (tens of answers per category) and
rates sit near 0.3-0.5 or, for a weak model, near 0; the normal interval then leaves [0, 1] or collapses to
a single point, while the Wilson score interval stays inside and keeps its coverage (Brown, Cai & DasGupta
2001). Answers from one participant are not independent, so intervals over answers are the usual
Zhang-style summary, not a mixed-model analysis; the per-participant table is there to see the spread.

Only test-phase answers count; practice answers are reported as a per-participant count only.
Each answer line is checked against the study plan (the trial exists, the recorded true side matches):
a line that fails is skipped and counted, never trusted.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colorize.errors import ColorizeError

from .study import ANSWER_SCHEMA, PARTICIPANT_RE, Study, load_study

log = logging.getLogger(__name__)

TALLY_SCHEMA = "colorize.turing-tally/1"
Z95 = 1.959963984540054  # two-sided 95% normal quantile

# Defaults for the too-fast flag: a choice between two photos made in under ~300 ms cannot involve looking
# at both (a saccade alone is ~200 ms); half of all answers that fast means the participant was clicking.
FAST_MS = 300.0
FAST_SHARE = 0.5
# Pressing one side nearly always (with enough answers to tell) is the other sign of not looking.
ONE_SIDE_SHARE = 0.9
ONE_SIDE_MIN_N = 10


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for k successes out of n; (0, 1) when there is no data."""
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = (z / denom) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return (max(0.0, center - half), min(1.0, center + half))


def newcombe_difference(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """Difference of two proportions p1 - p2 with Newcombe's hybrid score interval (method 10).

    Built from the two Wilson intervals, so it shares their good behaviour at small n.
    """
    p1 = k1 / n1 if n1 else 0.0
    p2 = k2 / n2 if n2 else 0.0
    l1, u1 = wilson_interval(k1, n1, z)
    l2, u2 = wilson_interval(k2, n2, z)
    d = p1 - p2
    lo = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return (d, max(-1.0, lo), min(1.0, hi))


def _rate(fooled: int, n: int) -> dict[str, Any]:
    lo, hi = wilson_interval(fooled, n)
    return {"n": n, "fooled": fooled, "rate": round(fooled / n, 6) if n else None,
            "ci95": [round(lo, 6), round(hi, 6)]}


def _times(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "median_ms": None, "mean_ms": None, "p10_ms": None, "p90_ms": None}
    ordered = sorted(values)

    def q(f: float) -> float:  # nearest-rank quantile: stable, no interpolation surprises on tiny n
        return ordered[min(len(ordered) - 1, max(0, math.ceil(f * len(ordered)) - 1))]

    return {"n": len(ordered), "median_ms": round(statistics.median(ordered), 1),
            "mean_ms": round(statistics.fmean(ordered), 1), "p10_ms": round(q(0.1), 1),
            "p90_ms": round(q(0.9), 1)}


@dataclass
class Answer:
    """One validated test or practice answer."""

    participant: str
    position: int
    phase: str
    trial: str
    category: str
    condition: str
    real_side: str
    choice: str
    rt_ms: float

    @property
    def fooled(self) -> bool:
        """The participant picked the colorized photo as the real one."""
        return self.choice != self.real_side


def read_answer_lines(path: Path) -> tuple[list[dict[str, Any]], int]:
    """All JSON objects in one answers file, plus the number of unreadable lines (e.g. a torn last line)."""
    records: list[dict[str, Any]] = []
    bad = 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if isinstance(obj, dict):
                records.append(obj)
            else:
                bad += 1
    return records, bad


def validate_answers(study: Study, records: Iterable[dict[str, Any]]) -> tuple[list[Answer], int]:
    """Keep answers that match the study plan; the first answer per (participant, position) wins."""
    trials = study.trials_by_id()
    seen: set[tuple[str, int]] = set()
    good: list[Answer] = []
    skipped = 0
    for rec in records:
        try:
            trial = trials[str(rec["trial"])]
            pid = str(rec["participant"])
            position = int(rec["position"])
            choice = str(rec["choice"])
            rt = float(rec["rt_ms"])
            ok = (rec.get("schema") == ANSWER_SCHEMA and rec.get("study_id") == study.study_id
                  and PARTICIPANT_RE.fullmatch(pid) is not None
                  and choice in ("left", "right") and rec.get("real_side") == trial.real_side
                  and rec.get("phase") == trial.phase and math.isfinite(rt) and rt >= 0)
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            skipped += 1
            continue
        key = (pid, position)
        if key in seen:
            skipped += 1
            continue
        seen.add(key)
        good.append(Answer(pid, position, trial.phase, trial.id, trial.category, trial.condition,
                           trial.real_side, choice, rt))
    return good, skipped


def _participant_row(pid: str, answers: list[Answer], n_test_total: int, fast_ms: float,
                     fast_share: float) -> dict[str, Any]:
    test = [a for a in answers if a.phase == "test"]
    practice = [a for a in answers if a.phase == "practice"]
    rts = [a.rt_ms for a in test]
    fast = sum(rt < fast_ms for rt in rts)
    share_fast = fast / len(rts) if rts else 0.0
    reasons = []
    if rts and (statistics.median(rts) < fast_ms or share_fast >= fast_share):
        reasons.append("too_fast")
    if len(test) >= ONE_SIDE_MIN_N:
        left = sum(a.choice == "left" for a in test) / len(test)
        if max(left, 1 - left) >= ONE_SIDE_SHARE:
            reasons.append("one_side")
    row = {"participant": pid, **_rate(sum(a.fooled for a in test), len(test)),
           "practice_answers": len(practice), "practice_correct": sum(not a.fooled for a in practice),
           "complete": len(test) >= n_test_total, "time": _times(rts),
           "fast_answers": fast, "fast_share": round(share_fast, 6),
           "flagged": bool(reasons), "flags": reasons}
    return row


def tally_answers(study: Study, records: Iterable[dict[str, Any]], fast_ms: float = FAST_MS,
                  fast_share: float = FAST_SHARE, unreadable: int = 0) -> dict[str, Any]:
    """The whole tally as a JSON-ready dict (sorted, rounded: same answers, same bytes)."""
    answers, skipped = validate_answers(study, records)
    by_pid: dict[str, list[Answer]] = {}
    for a in answers:
        by_pid.setdefault(a.participant, []).append(a)
    n_test_total = sum(t.phase == "test" for t in study.trials)
    rows = [_participant_row(pid, sorted(v, key=lambda a: a.position), n_test_total, fast_ms, fast_share)
            for pid, v in sorted(by_pid.items())]
    flagged = {r["participant"] for r in rows if r["flagged"]}
    test = [a for a in answers if a.phase == "test"]
    kept = [a for a in test if a.participant not in flagged]

    def group(items: list[Answer], key: str) -> dict[str, Any]:
        out: dict[str, list[Answer]] = {}
        for a in items:
            out.setdefault(getattr(a, key), []).append(a)
        return {k: _rate(sum(a.fooled for a in v), len(v)) for k, v in sorted(out.items())}

    result: dict[str, Any] = {
        "schema": TALLY_SCHEMA,
        "study": {"id": study.study_id, "test_pairs": n_test_total,
                  "practice_pairs": len(study.trials) - n_test_total,
                  "conditions": [c.to_dict() for c in study.conditions]},
        "thresholds": {"fast_ms": fast_ms, "fast_share": fast_share, "one_side_share": ONE_SIDE_SHARE,
                       "one_side_min_n": ONE_SIDE_MIN_N, "ci": "wilson 95%"},
        "participants_n": len(rows),
        "participants_flagged": sorted(flagged),
        "answers": {"test": len(test), "practice": len(answers) - len(test),
                    "skipped_invalid": skipped, "unreadable_lines": unreadable},
        "overall": _rate(sum(a.fooled for a in test), len(test)),
        "overall_unflagged": _rate(sum(a.fooled for a in kept), len(kept)),
        "by_category": group(test, "category"),
        "by_condition": group(test, "condition"),
        "time_per_answer": _times([a.rt_ms for a in test]),
        "participants": rows,
    }
    names = [c.name for c in study.conditions]
    if len(names) == 2:
        a = [x for x in test if x.condition == names[0]]
        b = [x for x in test if x.condition == names[1]]
        d, lo, hi = newcombe_difference(sum(x.fooled for x in a), len(a), sum(x.fooled for x in b), len(b))
        result["condition_difference"] = {"a": names[0], "b": names[1], "diff": round(d, 6),
                                          "ci95": [round(lo, 6), round(hi, 6)], "ci": "newcombe hybrid score"}
    return result


def read_study_answers(study_dir: Path) -> tuple[list[dict[str, Any]], int]:
    """Every answer line of every participant in a study folder (files named by a valid participant id)."""
    records: list[dict[str, Any]] = []
    bad = 0
    folder = Path(study_dir) / "answers"
    if folder.is_dir():
        for path in sorted(folder.glob("*.jsonl")):
            if not PARTICIPANT_RE.fullmatch(path.stem):
                log.warning("ignoring %s: not a participant answers file", path.name)
                continue
            recs, b = read_answer_lines(path)
            records.extend(recs)
            bad += b
    return records, bad


def tally_study(study_dir: str | Path, fast_ms: float = FAST_MS, fast_share: float = FAST_SHARE) -> dict[str, Any]:
    """Tally the study in `study_dir` (its study.json plus answers/*.jsonl)."""
    study_dir = Path(study_dir)
    if not (study_dir / "study.json").is_file():
        raise ColorizeError(f"{study_dir} is not a turing study folder (no study.json)",
                            "pass the --out folder of a `colorize turing` run to --results")
    study = load_study(study_dir)
    records, bad = read_study_answers(study_dir)
    return tally_answers(study, records, fast_ms, fast_share, unreadable=bad)


def format_rate(r: dict[str, Any]) -> str:
    """'34.2% [26.3, 43.1] (n=120)' for a rate dict."""
    if not r["n"]:
        return "no answers"
    lo, hi = r["ci95"]
    return f"{100 * r['rate']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] (n={r['n']})"
