"""The defaults of `colorize predict`, in one record read by the CLI and by `run_predict` (as prep has
`PrepParams` and train `TRAIN_DEFAULTS`). Plain Python: the CLI reads it without loading torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from colorize.dataset import MAX_SCAN_PIXELS
from colorize.models.net import DEFAULT_TEMPERATURE, ROUTER_MIN_CONFIDENCE


@dataclass(frozen=True)
class PredictParams:
    """Every option of a predict run besides the model and the inputs."""

    out: str = "colorized"
    temperature: str | float = DEFAULT_TEMPERATURE  # T, or "0.2,0.38,1.0" for a temperature sheet
    confidence: bool = False  # also write the confidence map
    device: str = "auto"
    batch: int = 8  # photos (or video frames) per forward pass
    alpha: float = 0.2  # video smoothing: frame i back weighs e^(-alpha*i)
    window: int = 20  # video smoothing reach: older frames weigh <= 5 % in total (0 = off)
    min_confidence: float = ROUTER_MIN_CONFIDENCE  # bundles: below this router confidence the global model colors
    max_pixels: int = MAX_SCAN_PIXELS  # refuse photos (and video frames) larger than this, read from the header
    hints: str | None = None  # a hints file for the one photo, or a folder of <stem>.json (predict.HintFiles)

    def as_dict(self) -> dict[str, Any]:
        return {k: str(v) if k == "out" else v for k, v in asdict(self).items()}


PREDICT_DEFAULTS = PredictParams()
