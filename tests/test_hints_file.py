"""The hints file: valid files give the points the network's planes are made from; every kind of bad file is
one line (UsageError, exit 2) that names the problem."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from colorize.dataset.color import rgb_to_lab
from colorize.dataset.hints import HintPoint
from colorize.errors import UsageError
from colorize.models.infer.hintfile import (
    MAX_HINT_POINTS,
    MAX_HINTS_FILE_BYTES,
    HintSpec,
    default_hint_size,
    max_hint_size,
    parse_hints,
    read_hint_specs,
    read_hints,
    write_hints,
)

W, H = 640, 480


def _write(tmp_path, text: str | bytes):
    path = tmp_path / "photo.json"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_a_valid_file_gives_the_chroma_of_its_colour_and_the_default_size(tmp_path):
    path = _write(tmp_path, '{"points": [{"x": 412, "y": 230, "color": "#3A6EA5", "size": 9},'
                            ' {"x": 0, "y": 479.0, "color": "#ff0000"}]}')
    points = read_hints(path, W, H)
    lab = rgb_to_lab(np.array([[0x3A, 0x6E, 0xA5], [255, 0, 0]], np.uint8))
    assert points[0] == HintPoint(412, 230, float(lab[0, 1]), float(lab[0, 2]), 9)
    assert points[1] == HintPoint(0, 479.0, float(lab[1, 1]), float(lab[1, 2]), default_hint_size(W, H))
    assert default_hint_size(W, H) == 10  # 640 / 64
    assert read_hint_specs(path, W, H)[0] == HintSpec(412, 230, "#3a6ea5", 9)  # hex kept, lower case


def test_an_empty_points_list_is_valid(tmp_path):
    assert read_hints(_write(tmp_path, '{"points": []}'), W, H) == []


def test_write_then_read_round_trips_with_stable_bytes(tmp_path):
    specs = [HintSpec(3, 4, "#00ff00", 5), HintSpec(10.5, 2, "#123456", 1)]
    path = tmp_path / "h.json"
    write_hints(path, specs)
    first = path.read_bytes()
    assert read_hint_specs(path, W, H) == specs
    write_hints(path, read_hint_specs(path, W, H))
    assert path.read_bytes() == first
    assert first.decode().index('"color"') < first.decode().index('"size"') < first.decode().index('"x"')
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize(("text", "needle"), [
    ("{points: []}", "is not JSON"),
    (b'{"points": [\xff]}', "not UTF-8"),
    ('[1, 2]', "JSON object"),
    ('{"points": [], "version": 1}', "unknown key(s) 'version'"),
    ('{"pts": []}', "unknown key(s) 'pts'"),
    ('{"points": {}}', '"points" must be a list'),
    ('{"points": [], "points": []}', "'points' appears twice"),
    ('{"points": [{"x": 1, "x": 2, "y": 1, "color": "#000000"}]}', "'x' appears twice"),
    ('{"points": [7]}', "point 1 must be an object"),
    ('{"points": [{"x": 1, "y": 1, "color": "#000000", "radius": 3}]}', "point 1 has unknown key(s) 'radius'"),
    ('{"points": [{"y": 1, "color": "#000000"}]}', "point 1 lacks x"),
    ('{"points": [{"x": 1, "y": 1}]}', "point 1 lacks color"),
    ('{"points": [{"x": "12", "y": 1, "color": "#000000"}]}', "point 1 x must be a number"),
    ('{"points": [{"x": true, "y": 1, "color": "#000000"}]}', "point 1 x must be a number"),
    ('{"points": [{"x": 1, "y": NaN, "color": "#000000"}]}', "NaN is not a JSON number"),
    ('{"points": [{"x": 1, "y": 1e999, "color": "#000000"}]}', "point 1 y is not finite"),
    ('{"points": [{"x": 640, "y": 1, "color": "#000000"}]}', "point 1 is outside the image (x = 640"),
    ('{"points": [{"x": 1, "y": -1, "color": "#000000"}]}', "point 1 is outside the image (y = -1"),
    ('{"points": [{"x": 1, "y": 1, "color": "#fff"}]}', "not an sRGB hex colour"),
    ('{"points": [{"x": 1, "y": 1, "color": "red"}]}', "not an sRGB hex colour"),
    ('{"points": [{"x": 1, "y": 1, "color": "#00000g"}]}', "not an sRGB hex colour"),
    ('{"points": [{"x": 1, "y": 1, "color": "#000000", "size": 0}]}', "size 0 is not a whole number"),
    ('{"points": [{"x": 1, "y": 1, "color": "#000000", "size": 641}]}', "size 641 is not a whole number"),
    ('{"points": [{"x": 1, "y": 1, "color": "#000000", "size": 2.5}]}', "size 2.5 is not a whole number"),
])
def test_each_bad_file_is_one_line_naming_the_problem(tmp_path, text, needle):
    path = _write(tmp_path, text)
    with pytest.raises(UsageError) as err:
        read_hints(path, W, H)
    assert needle in err.value.line() and str(path) in err.value.line()
    assert "\n" not in err.value.line() and err.value.exit_code == 2


def test_too_many_points_and_too_large_files_are_refused(tmp_path):
    one = {"x": 1, "y": 1, "color": "#000000"}
    with pytest.raises(UsageError, match=f"{MAX_HINT_POINTS + 1} points, more than the {MAX_HINT_POINTS}"):
        parse_hints({"points": [one] * (MAX_HINT_POINTS + 1)}, W, H)
    assert len(parse_hints({"points": [one] * MAX_HINT_POINTS}, W, H)) == MAX_HINT_POINTS
    with pytest.raises(UsageError, match="cannot read .*over the"):
        read_hints(_write(tmp_path, '{"points": []}' + " " * MAX_HINTS_FILE_BYTES), W, H)
    with pytest.raises(UsageError, match="more than the"):
        write_hints(tmp_path / "x.json", [HintSpec(1, 1, "#000000", 1)] * (MAX_HINT_POINTS + 1))


def test_a_fifo_or_a_folder_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="FIFO"):
        read_hints(fifo, W, H)
    with pytest.raises(UsageError, match="cannot read"):
        read_hints(tmp_path, W, H)
    with pytest.raises(UsageError, match="cannot read"):
        read_hints(tmp_path / "missing.json", W, H)


def test_size_limits_follow_the_photo():
    assert default_hint_size(10, 5) == 1 and max_hint_size(10, 5) == 10
    assert parse_hints(json.loads('{"points": [{"x": 9, "y": 4, "color": "#000000", "size": 10}]}'), 10, 5)[0].size == 10
