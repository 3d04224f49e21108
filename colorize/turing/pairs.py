"""Prepare a study: pick photos, colorize their gray versions, write both as same-size, same-quality JPEGs.

Why re-encode the real photo too: an original JPEG beside a freshly encoded PNG (or a JPEG at another
quality) can be told apart by its compression alone. Both sides of a pair are the same pixels size and go
through the very same encoder settings, without metadata, so only the colors differ.

Every random choice (which photos, which condition, which side is real, per-participant order) comes from
the seed; the plan holds no timestamps, so the same inputs and seed give byte-identical `study.json` and
images. A rerun with the same settings reuses a finished study instead of rebuilding it (answers may
already refer to it); different settings over a study that has answers is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from colorize.dataset.shards import MANIFEST
from colorize.errors import ColorizeError
from colorize.imaging import encode_image
from colorize.io import (
    atomic_write_bytes,
    atomic_write_json,
    dumps_json,
    read_json,
    remove_stale_temps,
    sha256_bytes,
    sha256_file,
)
from colorize.models.evaluate.photos import image_photos, shard_photos
from colorize.progress import progress

from .study import SIDES, Condition, Study, Trial, load_study

log = logging.getLogger(__name__)

JPEG_QUALITY = 90
MAX_SIDE = 256  # display size of photos taken from --images (Zhang et al. showed 256 px pairs)
JOURNAL = "pairs-journal.json"

ColorizeFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class Candidate:
    """A photo that may become a pair; `load()` gives its uint8 RGB (only called for the chosen ones)."""

    photo_id: str
    category: str
    load: Callable[[], np.ndarray]


@dataclass
class Source:
    """Where the photos come from, and a fingerprint that changes when they do."""

    kind: str  # "shards" | "images"
    name: str  # folder name only: the plan must not depend on where the folder lies
    split: str
    fingerprint: str
    candidates: list[Candidate]

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "split": self.split, "fingerprint": self.fingerprint}


# ------------------------------------------------------------------------------------------ sources
def shard_source(shards_dir: Path, split: str) -> Source:
    """Photos of one split of a shard folder (the shared eval-photo loader: one un-augmented sample each)."""
    photos = shard_photos(Path(shards_dir), split)
    cands = [Candidate(p.photo_id, p.category, lambda p=p: photos.rgb(p)) for p in photos.photos]
    fingerprint = sha256_file(photos.root / MANIFEST)
    return Source("shards", photos.root.name, split, fingerprint, cands)


def _fit_max_side(rgb: np.ndarray, max_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


def image_source(images_dir: Path, max_side: int = MAX_SIDE) -> Source:
    """Color photos in a folder (the shared eval-photo loader); a photo's id is its content hash, so the
    same file twice is one candidate and renaming files does not change the study."""
    photos = image_photos(Path(images_dir))
    seen: dict[str, Candidate] = {}
    listing = []
    for photo in photos.photos:
        digest = sha256_file(photo.path)
        listing.append(f"{photo.name} {digest}")
        pid = digest[:16]
        if pid not in seen:
            seen[pid] = Candidate(pid, photo.category, lambda p=photo: _fit_max_side(photos.rgb(p), max_side))
    fingerprint = sha256_bytes("\n".join(listing).encode("utf-8"))
    return Source("images", photos.root.name, "", fingerprint, list(seen.values()))


# ----------------------------------------------------------------------------------------- selection
def select(candidates: Sequence[Candidate], n_practice: int, n_pairs: int,
           rng: np.random.Generator) -> tuple[list[Candidate], list[Candidate]]:
    """Practice and test photos, drawn round-robin over shuffled categories so each category gets pairs."""
    by_cat: dict[str, list[Candidate]] = {}
    for c in sorted(candidates, key=lambda c: (c.category, c.photo_id)):
        by_cat.setdefault(c.category, []).append(c)
    for items in by_cat.values():
        rng.shuffle(items)
    cats = sorted(by_cat)
    rng.shuffle(cats)
    stream: list[Candidate] = []
    while any(by_cat[c] for c in cats):
        stream += [by_cat[c].pop(0) for c in cats if by_cat[c]]
    if len(stream) < 2:
        raise ColorizeError(f"only {len(stream)} photo(s) available; a study needs at least 2",
                            "use a bigger split or image folder")
    n_practice = min(n_practice, len(stream) - 1)
    test = stream[n_practice:n_practice + n_pairs]
    if len(test) < n_pairs:
        log.warning("only %d photos (%d after %d practice pairs) for %d requested test pairs: using %d",
                    len(stream), len(stream) - n_practice, n_practice, n_pairs, len(test))
    return stream[:n_practice], test


def balanced(values: Sequence[str], n: int, rng: np.random.Generator) -> list[str]:
    """n values with every value used equally often (up to one), in a random order."""
    out = [values[i % len(values)] for i in range(n)]
    rng.shuffle(out)
    return out


def encode_jpeg(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """The one encoder both sides of a pair go through: fixed quality and subsampling, no metadata."""
    return encode_image(rgb, ".jpg", quality, subsampling=2)


# ------------------------------------------------------------------------------------------- building
@dataclass
class PrepareResult:
    study: Study
    reused: bool
    colorized: int


def study_identity(source: Source, n_practice: int, n_pairs: int, seed: int, quality: int,
                   max_side: int) -> dict[str, Any]:
    """The study's `params`: with the conditions (kept apart in study.json), everything that decides its
    content: equal identity and conditions, equal study."""
    return {"source": source.describe(), "practice": n_practice, "pairs": n_pairs, "seed": seed,
            "jpeg_quality": quality, "max_side": max_side}


def _pair_intact(pairs_dir: Path, trial: Trial) -> bool:
    for side, digest in (("left", trial.left_sha256), ("right", trial.right_sha256)):
        path = pairs_dir / trial.image_name(side)
        if not path.is_file() or sha256_file(path) != digest:
            return False
    return True


def _read_journal(path: Path, identity: str) -> dict[str, Any]:
    """Finished pairs of an interrupted run with the same identity; anything else starts afresh."""
    try:
        data = read_json(path)
        if data.get("identity") == identity:
            return {"identity": identity, "trials": {k: Trial(**v) for k, v in data["trials"].items()}}
    except (FileNotFoundError, ValueError, TypeError, KeyError, AttributeError):
        pass
    return {"identity": identity, "trials": {}}


def _existing_study_matches(out: Path, params: dict[str, Any], conditions: Sequence[Condition]) -> Study | None:
    """The finished study in `out` if it was built from the same identity and its images are intact."""
    if not (out / "study.json").is_file():
        return None
    study = load_study(out)
    if study.params != params or [c.to_dict() for c in study.conditions] != [c.to_dict() for c in conditions]:
        n_answers = sum(1 for p in (out / "answers").glob("*.jsonl") if p.stat().st_size > 0)
        if n_answers:
            raise ColorizeError(f"{out} holds a different study with answers from {n_answers} participant(s)",
                                "use another --out for the new study (or the old settings to continue it)")
        return None
    return study if all(_pair_intact(out / "pairs", t) for t in study.trials) else None


def build_study(out: str | Path, source: Source, conditions: Sequence[Condition],
                colorizers: dict[str, ColorizeFn], n_practice: int, n_pairs: int, seed: int,
                quality: int = JPEG_QUALITY, max_side: int = MAX_SIDE) -> PrepareResult:
    """Write (or reuse) the study in `out`: pairs/*.jpg and study.json, the plan written last."""
    out = Path(out)
    params = study_identity(source, n_practice, n_pairs, seed, quality, max_side)
    existing = _existing_study_matches(out, params, conditions)
    if existing is not None:
        log.info("reusing the finished study in %s", out)
        return PrepareResult(existing, reused=True, colorized=0)

    rng = np.random.default_rng(seed)
    practice, test = select(source.candidates, n_practice, n_pairs, rng)
    names = [c.name for c in conditions]
    plan: list[tuple[str, Candidate, str]] = [(f"p{i:03d}", c, names[i % len(names)]) for i, c in enumerate(practice)]
    # Conditions balanced within each category, so a per-category rate never mixes conditions unevenly.
    test_conditions: dict[int, str] = {}
    by_cat: dict[str, list[int]] = {}
    for i, c in enumerate(test):
        by_cat.setdefault(c.category, []).append(i)
    for cat in sorted(by_cat):
        for i, name in zip(by_cat[cat], balanced(names, len(by_cat[cat]), rng)):
            test_conditions[i] = name
    plan += [(f"t{i:03d}", c, test_conditions[i]) for i, c in enumerate(test)]
    sides = balanced(list(SIDES), len(practice), rng) + balanced(list(SIDES), len(test), rng)

    pairs_dir = out / "pairs"
    pairs_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(pairs_dir)
    # A journal of finished pairs lets an interrupted preparation resume instead of colorizing again.
    journal_path = out / JOURNAL
    identity = sha256_bytes(dumps_json({"params": params, "conditions": [c.to_dict() for c in conditions]}).encode())
    journal = _read_journal(journal_path, identity)
    trials: list[Trial] = []
    colorized = 0
    for (tid, cand, cond), real_side in progress(list(zip(plan, sides)), desc="pairs", unit="pair"):
        done = journal["trials"].get(tid)
        if done and (done.photo_id, done.condition, done.real_side) == (cand.photo_id, cond, real_side) \
                and _pair_intact(pairs_dir, done):
            trials.append(done)
            continue
        real = cand.load()
        fake = colorizers[cond](real)
        if fake.shape != real.shape or fake.dtype != np.uint8:
            raise ColorizeError(f"the colorizer returned {fake.shape} {fake.dtype} for a {real.shape} photo",
                                "this is a bug in the model's predict function; please report it")
        real_jpg, fake_jpg = encode_jpeg(real, quality), encode_jpeg(fake, quality)
        left, right = (real_jpg, fake_jpg) if real_side == "left" else (fake_jpg, real_jpg)
        trial = Trial(id=tid, phase="practice" if tid[0] == "p" else "test", photo_id=cand.photo_id,
                      category=cand.category, condition=cond, real_side=real_side,
                      width=int(real.shape[1]), height=int(real.shape[0]),
                      left_sha256=sha256_bytes(left), right_sha256=sha256_bytes(right))
        atomic_write_bytes(pairs_dir / trial.image_name("left"), left)
        atomic_write_bytes(pairs_dir / trial.image_name("right"), right)
        trials.append(trial)
        colorized += 1
        journal["trials"][tid] = trial
        atomic_write_json(journal_path, {"identity": identity,
                                         "trials": {k: asdict(v) for k, v in journal["trials"].items()}})
    keep = {t.image_name(s) for t in trials for s in SIDES}
    for stale in pairs_dir.glob("*.jpg"):  # images of an earlier, different plan
        if stale.name not in keep:
            stale.unlink()

    body = {"params": params, "conditions": [c.to_dict() for c in conditions],
            "trials": [asdict(t) for t in trials]}
    study = Study(study_id=sha256_bytes(dumps_json(body).encode("utf-8"))[:12], params=params,
                  conditions=list(conditions), trials=trials,
                  notes={"fooled": "a test answer whose choice is not real_side",
                         "images": f"both sides JPEG q={quality} 4:2:0, no metadata, same size"})
    atomic_write_json(out / "study.json", study.to_dict())
    journal_path.unlink(missing_ok=True)  # the plan is written: the journal has done its job
    return PrepareResult(study, reused=False, colorized=colorized)
