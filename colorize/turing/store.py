"""Participants and their answers in a study folder: the part of the server that must never lose data.

Nothing is lost: each answer is one JSON line appended with a single `write` on an `O_APPEND` file and
fsynced before the page hears "recorded", so closing the tab (or killing the server) loses at most the
answer that was in flight. (Rewriting the whole file atomically per answer would also be safe, but costs
a copy of every earlier answer each time; one line appended in one write cannot interleave with another
under the store's lock.) A torn last line (power loss mid-write) is cut off the next time that
participant's file is opened. The true side of a pair never reaches the browser before the answer does;
practice feedback comes back in the answer's response.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import secrets
import threading
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from colorize.io import atomic_write_json, read_json, utc_now
from colorize.localhttp import HttpError

from .study import ANSWER_SCHEMA, PARTICIPANT_RE, PARTICIPANT_SCHEMA, SIDES, Study

log = logging.getLogger(__name__)

MAX_RT_MS = 3_600_000.0  # an hour: anything longer is a tab left open, kept but capped
# New participants one client address may create per server run. Every POST made a participant file, so
# a loop made 500 files in 8 s without end. A study is a handful of people; a class behind one NAT
# address is a few dozen, and a participant who reloads keeps the id in the page. A cap per client (not
# one for the whole study) keeps a flood from one address from locking everyone else out.
MAX_JOINS_PER_CLIENT = 200


class ApiError(HttpError):
    """A request the API refuses: HTTP status + a message for the page."""


def append_line(path: Path, line: str) -> None:
    """Append one complete line in one write and fsync it (callers hold the store's lock)."""
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    new = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:  # make the new file's directory entry durable too
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def cut_torn_tail(path: Path) -> bool:
    """If the file does not end in a newline (a write cut short), drop the partial last line."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    with open(path, "rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return False
        keep = data.rfind(b"\n") + 1
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    log.warning("%s: removed a torn last line (%d bytes)", path.name, len(data) - keep)
    return True


@dataclass
class _Participant:
    pid: str
    order: list[str]  # trial ids in the order this participant sees them
    position: int  # answers recorded so far = index of the next trial


class AnswerStore:
    """Participants and their answers in a study folder; every method is safe to call from many threads."""

    def __init__(self, study_dir: Path, study: Study, view_ms: int, joins_per_client: int = MAX_JOINS_PER_CLIENT
                 ) -> None:
        self.dir = Path(study_dir)
        self.joins_per_client = joins_per_client
        self._joins: dict[str, int] = {}  # new participants per client address, this run
        self.study = study
        self.view_ms = int(view_ms)
        self.trials = study.trials_by_id()
        self.lock = threading.Lock()
        self._cache: dict[str, _Participant] = {}
        (self.dir / "answers").mkdir(parents=True, exist_ok=True)
        (self.dir / "participants").mkdir(parents=True, exist_ok=True)

    # ----------------------------------------------------------------------------------- participants
    def order_for(self, pid: str) -> list[str]:
        """Practice pairs first, in plan order; test pairs shuffled per participant (from seed + id) so that
        order effects average out across participants, yet the same participant always gets the same order."""
        test = [t.id for t in self.study.test()]
        random.Random(f"{self.study.params.get('seed', 0)}:{pid}").shuffle(test)
        return [t.id for t in self.study.practice()] + test

    def new_participant(self, label: str = "", user_agent: str = "", client: str = "") -> str:
        """A new participant id and file; 429 once `client` has made `joins_per_client` of them."""
        with self.lock:
            if self._joins.get(client, 0) >= self.joins_per_client:
                raise ApiError(HTTPStatus.TOO_MANY_REQUESTS, f"this address already joined {self.joins_per_client} "
                               "times; ask the experimenter to restart the study server")
            self._joins[client] = self._joins.get(client, 0) + 1
            while True:
                pid = secrets.token_hex(6)
                if not (self.dir / "participants" / f"{pid}.json").exists():
                    break
            order = self.order_for(pid)
            atomic_write_json(self.dir / "participants" / f"{pid}.json", {
                "schema": PARTICIPANT_SCHEMA, "participant": pid, "study_id": self.study.study_id,
                "created": utc_now(), "label": label, "user_agent": user_agent[:300], "order": order})
            self._cache[pid] = _Participant(pid, order, 0)
        log.info("participant %s joined%s", pid, f" ({label})" if label else "")
        return pid

    def _load(self, pid: str) -> _Participant:
        """The participant's state from the cache or from disk (lock held). Unknown ids are a 404."""
        if not PARTICIPANT_RE.fullmatch(pid):
            raise ApiError(HTTPStatus.NOT_FOUND, "unknown participant")
        if pid in self._cache:
            return self._cache[pid]
        meta_path = self.dir / "participants" / f"{pid}.json"
        try:
            meta = read_json(meta_path)
        except (FileNotFoundError, ValueError) as exc:
            raise ApiError(HTTPStatus.NOT_FOUND, "unknown participant") from exc
        order = [str(t) for t in meta.get("order", [])]
        if meta.get("study_id") != self.study.study_id or sorted(order) != sorted(self.trials):
            raise ApiError(HTTPStatus.NOT_FOUND, "this participant belongs to another study")
        answers = self.dir / "answers" / f"{pid}.jsonl"
        cut_torn_tail(answers)
        position = 0
        if answers.exists():
            for line in answers.read_text(encoding="utf-8", errors="replace").splitlines():
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    rec = json.loads(line)
                    if int(rec["position"]) == position and rec["trial"] == order[position]:
                        position += 1
                if position >= len(order):
                    break
        state = _Participant(pid, order, position)
        self._cache[pid] = state
        return state

    def state(self, pid: str) -> dict[str, Any]:
        with self.lock:
            return self._public_state(self._load(pid))

    def _public_state(self, p: _Participant) -> dict[str, Any]:
        """What the page may know: where the participant is and the next pair, never its true side."""
        n_practice = len(self.study.practice())
        total = len(p.order)
        out: dict[str, Any] = {"participant": p.pid, "position": p.position, "total": total,
                               "practice_total": n_practice, "test_total": total - n_practice,
                               "done": p.position >= total, "trial": None}
        if p.position < total:
            trial = self.trials[p.order[p.position]]
            in_practice = trial.phase == "practice"
            out["trial"] = {"id": trial.id, "phase": trial.phase,
                            "number": p.position + 1 if in_practice else p.position - n_practice + 1,
                            "of": n_practice if in_practice else total - n_practice,
                            "width": trial.width, "height": trial.height,
                            "images": [f"/img/{trial.image_name(s)}" for s in SIDES]}
        return out

    # ----------------------------------------------------------------------------------------- answers
    def record(self, pid: str, position: int, trial_id: str, choice: str, rt_ms: float) -> dict[str, Any]:
        """Append one answer (idempotent: a resent earlier answer is acknowledged, not written twice)."""
        if choice not in SIDES:
            raise ApiError(HTTPStatus.BAD_REQUEST, "choice must be 'left' or 'right'")
        if not (rt_ms >= 0):  # also rejects NaN
            raise ApiError(HTTPStatus.BAD_REQUEST, "rt_ms must be a non-negative number")
        with self.lock:
            p = self._load(pid)
            if position < p.position:
                return {"recorded": False, "duplicate": True, "state": self._public_state(p)}
            if position > p.position or position >= len(p.order) or p.order[position] != trial_id:
                raise ApiError(HTTPStatus.CONFLICT, "this answer is not for the current pair; reload the page")
            trial = self.trials[trial_id]
            correct = choice == trial.real_side
            rec = {"schema": ANSWER_SCHEMA, "study_id": self.study.study_id, "participant": pid,
                   "position": position, "phase": trial.phase, "trial": trial.id, "photo_id": trial.photo_id,
                   "category": trial.category, "condition": trial.condition, "real_side": trial.real_side,
                   "choice": choice, "correct": correct, "rt_ms": round(min(float(rt_ms), MAX_RT_MS), 1),
                   "view_ms": self.view_ms, "answered_at": utc_now()}
            append_line(self.dir / "answers" / f"{pid}.jsonl", json.dumps(rec, sort_keys=True))
            p.position += 1
            out: dict[str, Any] = {"recorded": True, "duplicate": False, "state": self._public_state(p)}
            if trial.phase == "practice":
                out["feedback"] = {"correct": correct, "real_side": trial.real_side}
            return out
