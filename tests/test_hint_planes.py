"""The hint planes: where a point in photo pixels lands in the model's padded square, and what it carries."""

import numpy as np

from colorize.dataset.hints import HINT_AB_SCALE, HintPoint, hint_planes


def test_a_point_lands_where_the_pad_fit_puts_its_pixel():
    # 200 x 100 photo in a 64 square: scale 0.32, resized 64 x 32, pasted at y = 16.
    planes = hint_planes([HintPoint(x=199, y=0, a=55.0, b=-22.0, size=1)], height=100, width=200, size=64)
    ys, xs = np.nonzero(planes[2])
    assert (ys.tolist(), xs.tolist()) == ([16], [63])
    assert planes[0, 16, 63] == np.float32(55.0 / HINT_AB_SCALE)
    assert planes[1, 16, 63] == np.float32(-22.0 / HINT_AB_SCALE)
    assert planes[:2, planes[2] == 0].max() == 0


def test_patch_side_scales_with_the_photo_and_later_points_win():
    points = [HintPoint(50, 50, 10.0, 10.0, 20), HintPoint(50, 50, -30.0, 5.0, 10)]
    planes = hint_planes(points, height=100, width=100, size=50)
    assert planes[2].sum() == 100  # a 20 px side at scale 0.5 is 10 model pixels
    assert (planes[0][planes[2] == 1] == np.float32(10.0 / HINT_AB_SCALE)).sum() == 100 - 25
    assert planes[0, 25, 25] == np.float32(-30.0 / HINT_AB_SCALE)


def test_no_points_give_zero_planes():
    assert not hint_planes([], 30, 40, 16).any()
