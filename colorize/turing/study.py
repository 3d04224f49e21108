"""The study plan (`study.json`) and the formats a study folder holds; shared by pairs, server and tally.

A study folder::

    OUT/study.json                  the plan: conditions, trials (with the true side), params
    OUT/pairs/<trial>-left.jpg      what the page shows; file names never reveal which side is real
    OUT/pairs/<trial>-right.jpg
    OUT/participants/<pid>.json     one per participant: created, order of the test trials
    OUT/answers/<pid>.jsonl         one line per answer, appended and fsynced as they come
    OUT/tally.json                  written by `--results` (and when the server stops)
    OUT/pairs-journal.json          finished pairs while preparing (an interrupted run resumes from it)

The plan holds nothing time-dependent, so the same inputs and seed give the same bytes.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from colorize.errors import ColorizeError
from colorize.io import read_json

STUDY_SCHEMA = "colorize.turing/1"
ANSWER_SCHEMA = "colorize.turing-answer/1"
PARTICIPANT_SCHEMA = "colorize.turing-participant/1"

# Ids that reach the file system or a URL are checked against these before use.
PARTICIPANT_RE = re.compile(r"[0-9a-f]{12}")
TRIAL_RE = re.compile(r"[pt][0-9]{3,5}")
SIDES = ("left", "right")


@dataclass
class Condition:
    """One way of colorizing: a model file and a temperature (a study has one or two)."""

    name: str  # "A", "B"
    model: str  # file name of the checkpoint (no folders: the plan must not depend on where it lies)
    model_sha256: str
    temperature: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        return f"{self.name}: {self.model} T={self.temperature:g}"


@dataclass
class Trial:
    """One pair shown to participants."""

    id: str  # "p000" practice, "t000" test
    phase: str  # "practice" | "test"
    photo_id: str
    category: str
    condition: str
    real_side: str  # "left" | "right": recorded per pair, drawn from the seed
    width: int
    height: int
    left_sha256: str = ""
    right_sha256: str = ""

    def image_name(self, side: str) -> str:
        return f"{self.id}-{side}.jpg"


@dataclass
class Study:
    """The plan of one study (what `study.json` holds)."""

    study_id: str
    params: dict[str, Any]
    conditions: list[Condition]
    trials: list[Trial]
    schema: str = STUDY_SCHEMA
    notes: dict[str, Any] = field(default_factory=dict)

    def trials_by_id(self) -> dict[str, Trial]:
        return {t.id: t for t in self.trials}

    def practice(self) -> list[Trial]:
        return [t for t in self.trials if t.phase == "practice"]

    def test(self) -> list[Trial]:
        return [t for t in self.trials if t.phase == "test"]

    def to_dict(self) -> dict[str, Any]:
        return {"schema": self.schema, "study_id": self.study_id, "params": self.params,
                "conditions": [c.to_dict() for c in self.conditions],
                "trials": [asdict(t) for t in self.trials], "notes": self.notes}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Study:
        if data.get("schema") != STUDY_SCHEMA:
            raise ColorizeError(f"study.json has schema {data.get('schema')!r}, expected {STUDY_SCHEMA}",
                                "prepare the study again with this version of colorize")
        trials = [Trial(**t) for t in data["trials"]]
        for t in trials:
            if not TRIAL_RE.fullmatch(t.id) or t.real_side not in SIDES or t.phase not in ("practice", "test"):
                raise ColorizeError(f"study.json has a malformed trial {t.id!r}", "prepare the study again")
        return cls(study_id=data["study_id"], params=data["params"],
                   conditions=[Condition(**c) for c in data["conditions"]], trials=trials,
                   notes=data.get("notes", {}))


def load_study(study_dir: str | Path) -> Study:
    """Read and check `study_dir/study.json`."""
    path = Path(study_dir) / "study.json"
    try:
        data = read_json(path)
    except FileNotFoundError as exc:
        raise ColorizeError(f"no study in {study_dir} (study.json missing)",
                            "prepare one with `colorize turing --model ... --out DIR`") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ColorizeError(f"{path} is not valid JSON ({exc})", "prepare the study again") from exc
    try:
        return Study.from_dict(data)
    except (KeyError, TypeError) as exc:
        raise ColorizeError(f"{path} is malformed ({exc})", "prepare the study again") from exc
