"""The router CNN learns routes from the L channel alone, from scratch, on CPU."""

from __future__ import annotations

import numpy as np
import torch

from colorize.models.net.router import (
    RouterConfig,
    predict_probs,
    router_from_payload,
    router_payload,
    shrink_l,
)
from colorize.models.routing.router_train import class_weights, train_router


def _scenes(n_per: int, seed: int, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    """A separable 3-class problem on L: horizontal stripes, vertical stripes, a bright central disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    L, y = [], []
    for _ in range(n_per):
        period = rng.integers(6, 12)
        phase = rng.integers(0, period)
        L.append(np.where(((yy + phase) // (period // 2)) % 2 == 0, 170, 80))
        y.append(0)
        L.append(np.where(((xx + phase) // (period // 2)) % 2 == 0, 170, 80))
        y.append(1)
        cy, cx, r = rng.integers(16, 32, 2).tolist() + [rng.integers(8, 14)]
        L.append(np.where((yy - cy) ** 2 + (xx - cx) ** 2 < r * r, 200, 60))
        y.append(2)
    L = np.clip(np.stack(L) + rng.normal(0, 12, (len(L), size, size)), 0, 255).astype(np.uint8)
    return L, np.array(y)


def test_router_learns_a_separable_problem_quickly_and_round_trips():
    torch.set_num_threads(2)
    cfg = RouterConfig(n_classes=3, size=32, width=8)
    L_train, y_train = _scenes(40, seed=0)
    L_val, y_val = _scenes(10, seed=1)
    small_train, small_val = shrink_l(L_train, cfg.size), shrink_l(L_val, cfg.size)
    res = train_router(small_train, y_train, cfg, epochs=8, batch_size=32, lr=3e-3, seed=0,
                       val=(small_val, y_val))
    assert res.best_val_acc is not None and res.best_val_acc >= 0.9, res.history
    # Chance is 1/3: the first epoch is much worse than the best one, so the loop really learned.
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    # Routing full-size images (the router resizes them itself) agrees with the shrunk ones.
    probs = predict_probs(res.model, L_val, torch.device("cpu"))
    assert probs.shape == (30, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    assert (probs.argmax(1) == y_val).mean() >= 0.9
    # The payload holds tensors/strings only: it loads with weights_only=True and predicts the same.
    payload = router_payload(res.model, ["h", "v", "disc"], res.history)
    import io

    buf = io.BytesIO()
    torch.save(payload, buf)
    buf.seek(0)
    model2, routes = router_from_payload(torch.load(buf, weights_only=True), torch.device("cpu"))
    assert routes == ["h", "v", "disc"]
    np.testing.assert_allclose(predict_probs(model2, L_val, torch.device("cpu")), probs, atol=1e-6)


def test_router_training_is_reproducible_for_a_seed():
    cfg = RouterConfig(n_classes=3, size=16, width=4)
    L, y = _scenes(6, seed=3)
    small = shrink_l(L, cfg.size)
    a = train_router(small, y, cfg, epochs=2, batch_size=8, seed=5)
    b = train_router(small, y, cfg, epochs=2, batch_size=8, seed=5)
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert a.history == b.history


def test_class_weights_balance_the_routes():
    w = class_weights(np.array([0] * 9 + [1] * 3), 3)
    # Each present class contributes equally to the loss; an absent class gets no weight.
    np.testing.assert_allclose(w[:2] * [9, 3], [6, 6])
    assert w[2] == 0
