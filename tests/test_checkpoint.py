"""Checkpoints: atomic, weights_only, self-sufficient, and refusing anything pickled or broken."""

from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest
import torch

from colorize.errors import ColorizeError
from colorize.models.infer.colorizer import load_colorizer
from colorize.models.net.checkpoint import (
    load_checkpoint,
    nearest_bin_lut,
    save_checkpoint,
    untrained_payload,
    write_untrained_checkpoint,
)

CENTERS = np.array([[0, 0], [30, 30], [-30, 20], [10, -40]], np.float32)


class Evil:
    def __reduce__(self):  # would run code on an unsafe load
        return (print, ("pwned",))


def test_untrained_checkpoint_round_trips_to_a_colorizer(tmp_path):
    path = write_untrained_checkpoint(tmp_path / "m.pt", CENTERS, size=32, width=4, seed=3)
    col = load_colorizer(path, "cpu")
    assert col.n_bins == 4 and col.size == 32 and not col.model.training
    probs = col.probs(torch.randint(0, 256, (2, 32, 32), dtype=torch.uint8))
    assert probs.shape == (2, 4, 32, 32) and probs.dtype == torch.float32
    assert torch.allclose(probs.sum(1), torch.ones(2, 32, 32), atol=1e-5)
    # Same seed, same weights: the helper is reproducible.
    again = load_colorizer(write_untrained_checkpoint(tmp_path / "n.pt", CENTERS, size=32, width=4, seed=3))
    for a, b in zip(col.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)
    assert not list(tmp_path.glob(".tmp-*"))  # atomic write leaves no temp behind


def test_pickled_payload_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "config": Evil(), "centers": torch.zeros(2, 2)}, path)
    with pytest.raises(ColorizeError, match="pickled"):
        load_checkpoint(path)
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"model": Evil()}))
    with pytest.raises(ColorizeError):
        load_checkpoint(raw)


def test_missing_corrupt_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(ColorizeError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    good = write_untrained_checkpoint(tmp_path / "good.pt", CENTERS, width=4)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ColorizeError, match="corrupt"):
        load_checkpoint(bad)
    other = tmp_path / "other.pt"
    save_checkpoint(other, {"weights": torch.ones(3)})
    with pytest.raises(ColorizeError, match="not a colorize checkpoint"):
        load_colorizer(other, "cpu")


def test_nearest_bin_lut_maps_every_int8_pair():
    lut = nearest_bin_lut(CENTERS)
    assert lut.shape == (256, 256) and lut.dtype == np.int16
    assert lut[0 + 128, 0 + 128] == 0 and lut[29 + 128, 31 + 128] == 1 and lut[-128 + 128, 127 + 128] == 2


def _payload(**changes):
    from colorize.models.net.checkpoint import untrained_payload

    payload = untrained_payload(CENTERS, size=32, width=4)
    for key, value in changes.items():
        if key.startswith("config_"):
            payload["config"][key[len("config_"):]] = value
        else:
            payload[key] = value
    return payload


@pytest.mark.parametrize("changes,message", [
    ({"centers": CENTERS.tolist()}, "centers must be a tensor"),  # was an AttributeError
    ({"centers": torch.zeros(4, 3)}, "centers must be a tensor of shape"),
    ({"centers": torch.zeros(1, 2)}, "centers must be a tensor of shape"),
    ({"centers": torch.full((4, 2), float("nan"))}, "finite"),
    ({"config_width": 3000}, "config width must be an integer in 1..1024"),  # allocated 1.3 GB
    ({"config_width": 64}, "do not fit a ColorUNet of width 64"),  # a lie within bounds: shapes caught on meta
    ({"config_width": "32"}, "config width must be an integer"),
    ({"config_size": 10 ** 9}, "config size must be an integer"),
    ({"config": ["width", 32]}, "config must be a dict"),
    ({"model": [1, 2]}, "model must be a dict of named tensors"),
    ({"model": {"head.weight": "x"}}, "model must be a dict of named tensors"),
    ({"weights": torch.ones(5)}, "weights must be a finite float tensor of shape [4]"),
    ({"prior": [0.25] * 4}, "prior must be a finite float tensor"),
    ({"ab_lut": torch.full((256, 256), 9, dtype=torch.int16)}, "ab_lut must be integer bin indices"),
    ({"ab_lut": torch.zeros(3, 3, dtype=torch.int16)}, "ab_lut must be integer bin indices"),
    ({"config_n_bins": 7}, "config n_bins 7 differs from the 4 centers"),
])
def test_payload_is_checked_before_the_model_is_built(changes, message, monkeypatch):
    """Each malformed payload is one ColorizeError line, raised before a real ColorUNet is allocated."""
    import colorize.models.net.checkpoint as ck
    from colorize.models.infer.colorizer import Colorizer
    from colorize.models.net.checkpoint import validate_payload

    payload = _payload(**changes)
    built = []
    real = ck.ColorUNet
    monkeypatch.setattr(ck, "ColorUNet", lambda *a, **k: built.append(torch.empty(0).device) or real(*a, **k))
    with pytest.raises(ColorizeError) as err:
        Colorizer.from_payload(payload, torch.device("cpu"))
    assert message in err.value.line() and "\n" not in err.value.line()
    assert all(d.type == "meta" for d in built)  # only shape-only models were made
    with pytest.raises(ColorizeError):
        validate_payload(payload)


def test_a_valid_payload_passes_validation():
    from colorize.models.net.checkpoint import validate_payload

    validate_payload(_payload())
    with pytest.raises(ColorizeError, match="expected a dict"):
        validate_payload([1])
    with pytest.raises(ColorizeError, match="keys centers missing"):
        validate_payload({"model": {}, "config": {}})


def _rezip(src, dst, compression=zipfile.ZIP_DEFLATED) -> None:
    """`src`'s members written again with `compression`, streamed (a big member is never held whole)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression) as zout:
        for info in zin.infolist():
            with zin.open(info) as fin, zout.open(info.filename, "w", force_zip64=True) as fout:
                while block := fin.read(1 << 20):
                    fout.write(block)


LOAD_AND_MEASURE = r"""
import json, resource, sys
from colorize.errors import ColorizeError
from colorize.models.net.checkpoint import load_checkpoint
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the peak so far (importing torch included)
try:
    load_checkpoint(sys.argv[1])
    error = ""
except ColorizeError as exc:
    error = exc.line()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"error": error, "grew_mb": (peak - start) / 1024}))
"""


def test_a_deflated_checkpoint_is_refused_before_it_is_inflated(tmp_path):
    """A small .pt re-zipped with ZIP_DEFLATED around a big zero tensor was inflated in full by torch.load."""
    import json
    import subprocess
    import sys

    payload = untrained_payload(CENTERS, width=4)
    payload["extra"] = torch.zeros(256 << 20, dtype=torch.uint8)  # 256 MiB of zeros: ~250 KB deflated
    torch.save(payload, tmp_path / "stored.pt")
    del payload
    _rezip(tmp_path / "stored.pt", tmp_path / "deflated.pt")
    assert (tmp_path / "deflated.pt").stat().st_size < 2 << 20
    done = subprocess.run([sys.executable, "-c", LOAD_AND_MEASURE, str(tmp_path / "deflated.pt")],
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert "are compressed" in result["error"] and "deflated.pt" in result["error"]
    assert result["grew_mb"] < 100  # the 256 MiB tensor was never built
    assert load_checkpoint(tmp_path / "stored.pt")["extra"].numel() == 256 << 20  # the same file, stored, loads


def test_a_zip_that_torch_did_not_write_is_not_a_checkpoint(tmp_path):
    with zipfile.ZipFile(tmp_path / "photos.pt", "w") as z:
        z.writestr("a.jpg", b"x")
        z.writestr("b/data.pkl", b"x")
    with pytest.raises(ColorizeError, match="a zip archive, but not one torch.save wrote"):
        load_checkpoint(tmp_path / "photos.pt")


@pytest.mark.parametrize("name,content", [("notes.txt", "remember to train longer\n" * 40),
                                          ("metrics.jsonl", '{"epoch": 1, "loss": 2.5}\n' * 40),
                                          ("empty.pt", "")])
def test_predict_with_a_text_file_as_model_is_one_honest_line(tmp_path, name, content):
    """A text file gave a 55-line traceback (IndexError, KeyError: 101), a .jsonl "pickled Python objects"."""
    from click.testing import CliRunner
    from PIL import Image

    from colorize.cli import cli

    (tmp_path / name).write_text(content)
    Image.new("L", (16, 16)).save(tmp_path / "x.png")
    result = CliRunner().invoke(cli, ["predict", "--model", str(tmp_path / name), str(tmp_path / "x.png"),
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code in (1, 2) and isinstance(result.exception, SystemExit), result.output
    assert f"{name} is not a colorize checkpoint (not a zip archive" in result.output
    assert "pickled" not in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
