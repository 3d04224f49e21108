"""ColorUNet: a compact U-Net that classifies every pixel into one of n ab color bins.

Why a U-Net: colorizing needs a large receptive field (what object is this?) *and* pixel-exact edges
(where does it end?). Three max-pool groups give the first, skip connections give the second, and the
whole net stays under 2 M parameters at the default width, so it trains on one GPU in minutes.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from colorize.dataset.hints import HINT_AB_SCALE, HINT_CHANNELS
from colorize.errors import UsageError
from colorize.models.net import DEFAULT_WIDTH
from colorize.models.net.propagation import coarse_spread

# The net pools three times, so inputs are padded to a multiple of 8 and cropped back.
DOWNSAMPLE = 8
# Hint features: the raw planes plus one spread copy (normalised Gaussian convolution, sd in model pixels):
# a compact net trained on few photos cannot learn to carry a colour far in a few hundred steps, so it is
# handed a blurred guess it only has to accept or refuse. `_SPREAD_EPS` sets how fast that guess's
# confidence falls with distance (a lone hinted pixel: ~0.8 on it, ~0.4 two sds away).
HINT_SPREAD_SD = 6.0
# How the spread copy is made (`hint_features`): the first is what training writes now; "gaussian" is the
# checkpoints of before (their config has no `hint_spread`).
HINT_SPREADS = ("levin", "gaussian")
_SPREAD_EPS = 1e-3
HINT_FEATURES = 2 * HINT_CHANNELS
# Initial sharpness of the hint term of the head (logits -beta/2 |c - hint ab|^2): raw, spread.
_HINT_BETA = (0.2, 0.02)


def _gaussian_taps(sd: float) -> torch.Tensor:
    r = int(3 * sd)
    t = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sd * sd))
    return t / t.sum()


def hint_features(hints: torch.Tensor, x: torch.Tensor | None = None, spread: str = HINT_SPREADS[-1]) -> torch.Tensor:
    """Planes [B,3,H,W] -> [B,HINT_FEATURES,H,W]: the planes, then a spread copy (a·g, b·g, g) in the same form
    (ab divided by HINT_AB_SCALE, g a 0..1 confidence), so the head treats both alike. `spread` (a
    checkpoint's `hint_spread`): "levin", the hints propagated over the whole photo by Levin et al.'s
    edge-aware solve on a coarse grid from the lightness `x` (`propagation.coarse_spread`; g is 1 wherever
    the photo has a hint); "gaussian", the older local blur (sd HINT_SPREAD_SD, fading with distance)."""
    if spread == "levin":
        return torch.cat([hints, _levin_spread(hints, x)], dim=1)
    taps = _gaussian_taps(HINT_SPREAD_SD).to(hints.device, hints.dtype)
    m = hints[:, 2:3]
    mass = torch.cat([hints[:, :2] * m, m], dim=1)
    k = taps.numel()
    blur = F.conv2d(mass, taps.view(1, 1, 1, k).expand(3, 1, 1, k), padding=(0, k // 2), groups=3)
    blur = F.conv2d(blur, taps.view(1, 1, k, 1).expand(3, 1, k, 1), padding=(k // 2, 0), groups=3)
    g = blur[:, 2:3] / (blur[:, 2:3] + _SPREAD_EPS)
    ab = blur[:, :2] / blur[:, 2:3].clamp_min(1e-8)
    return torch.cat([hints, ab * g, g], dim=1)


def _levin_spread(hints: torch.Tensor, x: torch.Tensor | None) -> torch.Tensor:
    """(a, b, g) planes [B,3,H,W] of `coarse_spread` for each sample (numpy on the CPU, a few ms each)."""
    if x is None:
        raise ValueError("the levin hint spread needs the lightness input x")
    L = ((x.detach().float()[:, 0] + 1.0) * 50.0).cpu().numpy()
    planes = hints.detach().float().cpu().numpy()
    out = np.zeros((planes.shape[0], 3) + planes.shape[2:], np.float32)
    for i, p in enumerate(planes):
        hinted = p[2] > 0
        if hinted.any():
            ab = coarse_spread(L[i], np.moveaxis(p[:2], 0, -1) * HINT_AB_SCALE, hinted)
            out[i, :2], out[i, 2] = np.moveaxis(ab, -1, 0) / HINT_AB_SCALE, 1.0
    return torch.from_numpy(out).to(hints.device, hints.dtype)


class TrunkMemo:
    """The trunk features of the last few inputs, found by their content: inference only.

    With late fusion the trunk sees L alone, so recolouring one photo with new hints (every click in the
    editor, every count of the hints sweep) needs only the 1x1 head; the trunk, nearly all of the net's
    time, is reused. Keyed by a BLAKE2b digest of the input's bytes, shape, dtype and device, so a changed
    photo, or changed weights, can never reuse an old trunk. Off while training (`model.training`) or when autograd is recording
    (outside `torch.inference_mode`), so gradients and batch-norm statistics are never touched; at most
    `ENTRIES` inputs (the photo and its mirror) of at most `MAX_BYTES` of features are kept.
    """

    ENTRIES = 2
    MAX_BYTES = 64 << 20

    def __init__(self) -> None:
        self.items: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def features(self, net: ColorUNet, x: torch.Tensor) -> torch.Tensor:
        if net.training or not torch.is_inference_mode_enabled():
            return net.trunk(x)
        digest = hashlib.blake2b(x.detach().float().cpu().contiguous().numpy().tobytes(), digest_size=16)
        weights = tuple((p.data_ptr(), p._version) for p in net.parameters())  # any in-place change to a weight
        key = (tuple(x.shape), str(x.dtype), str(x.device), torch.is_autocast_enabled(), weights, digest.digest())
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        y = net.trunk(x)
        if y.numel() * y.element_size() <= self.MAX_BYTES:
            self.items[key] = y
            while len(self.items) > self.ENTRIES:
                self.items.popitem(last=False)
        return y


def l_to_input(L_u8: torch.Tensor) -> torch.Tensor:
    """uint8 lightness [B,S,S] or [B,1,S,S] -> float [B,1,S,S] in -1..1, the network's input.

    Done on the device: batches travel as uint8 (4x less to copy than float32).
    """
    if L_u8.dtype != torch.uint8:
        raise TypeError(f"l_to_input expects a uint8 tensor, got {L_u8.dtype}")
    x = L_u8.unsqueeze(1) if L_u8.dim() == 3 else L_u8
    return x.float().mul_(1.0 / 127.5).sub_(1.0)


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 conv + BN + ReLU: a large receptive field from few parameters."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class _Up(nn.Module):
    """Transposed conv x2, concatenate the skip from the encoder, two convs."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_out, 2, stride=2)
        self.conv = _double_conv(2 * c_out, c_out)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class ColorUNet(nn.Module):
    """U-Net over L and colour hints: 3 down groups, a bottleneck, 3 up groups, and 1x1 logits over `n_bins`.

    `forward(x, hints=None)` takes float [B,1,H,W] from `l_to_input` and the hint planes [B,3,H,W] of
    `dataset.hints.hint_planes` (None = no hints: the automatic case, the same as all-zero planes), and
    returns logits [B,n_bins,H,W] at input resolution (any H, W: padded to a multiple of 8 internally).
    The hints enter late, beside the trunk's last features at the 1x1 head (late fusion): the trunk sees
    L only, so the automatic colours are those of a lightness-only net trained on the same steps. Fed at
    the first layer, as Zhang et al. 2017 do, they cost the automatic result 2.8 dB PSNR and 13 points of
    colourfulness error on the quick demo: a compact net trained for minutes leans on the hints it gets in
    7 of 8 samples. `forward(x, hints, pair=True)` returns (automatic logits, hinted logits) from one trunk
    pass, which training scores both. `hint_channels=0` builds the older lightness-only net.
    """

    def __init__(self, n_bins: int, width: int = DEFAULT_WIDTH, hint_channels: int = HINT_CHANNELS,
                 hint_spread: str = HINT_SPREADS[0]) -> None:
        super().__init__()
        if n_bins < 2 or width < 1 or hint_channels not in (0, HINT_CHANNELS) or hint_spread not in HINT_SPREADS:
            raise ValueError(f"ColorUNet needs n_bins >= 2, width >= 1, hint_channels 0 or {HINT_CHANNELS} and "
                             f"hint_spread in {HINT_SPREADS} (got {n_bins}, {width}, {hint_channels}, {hint_spread!r})")
        self.n_bins = n_bins
        self.width = width
        self.hint_channels = hint_channels
        self.hint_spread = hint_spread
        w = width
        n_hint = HINT_FEATURES if hint_channels else 0
        self.down1 = _double_conv(1, w)
        self.down2 = _double_conv(w, 2 * w)
        self.down3 = _double_conv(2 * w, 4 * w)
        self.bottleneck = _double_conv(4 * w, 8 * w)
        self.up3 = _Up(8 * w, 4 * w)
        self.up2 = _Up(4 * w, 2 * w)
        self.up1 = _Up(2 * w, w)
        # The hint features also reach the head directly (late fusion): a hinted pixel is honoured without
        # the trip through the encoder; `init_hint_head` gives that path its initial meaning.
        self.head = nn.Conv2d(w + n_hint, n_bins, 1)
        self.memo = TrunkMemo()

    @torch.no_grad()
    def init_hint_head(self, centers: torch.Tensor) -> None:
        """Set the head's weights on the hint features to a soft nearest-bin vote for the hinted colour:
        logit_k += beta (c_k . ab - |c_k|^2 / 2) g, i.e. -beta/2 |c_k - ab|^2 up to a per-pixel constant,
        exactly linear in the (a·g, b·g, g) planes. Training starts from "paint the hint" and refines it."""
        if not self.hint_channels:
            return
        c = torch.as_tensor(centers, dtype=torch.float32).to(self.head.weight.device)
        w = self.width
        for i, beta in enumerate(_HINT_BETA):
            at = w + i * HINT_CHANNELS
            self.head.weight[:, at, 0, 0] = beta * HINT_AB_SCALE * c[:, 0]
            self.head.weight[:, at + 1, 0, 0] = beta * HINT_AB_SCALE * c[:, 1]
            self.head.weight[:, at + 2, 0, 0] = -beta * (c * c).sum(dim=1) / 2

    @property
    def accepts_hints(self) -> bool:
        """True when the net was built (and so trained) with hint channels."""
        return self.hint_channels > 0

    def forward(self, x: torch.Tensor, hints: torch.Tensor | None = None,
                pair: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if not self.hint_channels and hints is not None:
            raise ValueError("this ColorUNet has no hint channels (see require_hints_support)")
        h, w = x.shape[-2:]
        if hints is not None and hints.shape != (x.shape[0], self.hint_channels, h, w):
            raise ValueError(f"hints must be [B,{self.hint_channels},H,W] like x {list(x.shape)}, "
                             f"got {list(hints.shape)}")
        return self.from_trunk(self.memo.features(self, x), x, hints, pair)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """L [B,1,H,W] -> the last decoder features [B,width,H',W'] (padded to a multiple of 8): all of the
        net that does not see the hints, so a photo's trunk can serve any number of hint sets."""
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % DOWNSAMPLE, (-w) % DOWNSAMPLE
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        s1 = self.down1(x)
        s2 = self.down2(F.max_pool2d(s1, 2))
        s3 = self.down3(F.max_pool2d(s2, 2))
        y = self.bottleneck(F.max_pool2d(s3, 2))
        return self.up1(self.up2(self.up3(y, s3), s2), s1)

    def from_trunk(self, y: torch.Tensor, x: torch.Tensor, hints: torch.Tensor | None = None,
                   pair: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The 1x1 head over trunk features `y` of input `x` (+ hint planes): what `forward` returns."""
        if pair and self.hint_channels:  # the automatic output too (training scores both)
            return self.head(self.head_input(y, x, None)), self.head(self.head_input(y, x, hints))
        logits = self.head(self.head_input(y, x, hints))
        return (logits, logits) if pair else logits

    def head_input(self, y: torch.Tensor, x: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        """What the 1x1 head reads at each pixel of `x`, [B, C, H, W]: trunk features `y` (cropped from the
        multiple of 8) and, for a net with hint channels, the hint features (zeros without hints). The head
        is pointwise, so cropping, flipping or batching its input is the same as doing it to its logits."""
        h, w = x.shape[-2:]
        y = self._crop(y, h, w)
        if not self.hint_channels:
            return y
        if hints is None:
            return torch.cat([y, y.new_zeros((y.shape[0], HINT_FEATURES, h, w))], dim=1)
        return torch.cat([y, hint_features(hints.to(y.dtype), x, self.hint_spread)], dim=1)

    def features_of(self, x: torch.Tensor, hints: torch.Tensor | None = None) -> torch.Tensor:
        """`head_input` of an input (its trunk memoised: `TrunkMemo`)."""
        return self.head_input(self.memo.features(self, x), x, hints)

    def head_rows(self, head_input: torch.Tensor) -> torch.Tensor:
        """`head_input` [B, C, H, W] as pixel rows [B*H*W, C+1] ending in a 1: times `head_matrix`, the
        head's logits with the bins last (inference reads them there, a band of pixels at a time:
        `colors.mirrored_decode`)."""
        b, c, h, w = head_input.shape
        rows = head_input.new_empty((b, h, w, c + 1))
        rows[..., :c] = head_input.permute(0, 2, 3, 1)
        rows[..., c] = 1.0
        return rows.view(b * h * w, c + 1)

    def head_matrix(self) -> torch.Tensor:
        """The 1x1 head as a [C+1, n_bins] matrix, its bias the last row (see `head_rows`)."""
        c = self.head.weight.shape[1]
        return torch.cat([self.head.weight.view(self.n_bins, c), self.head.bias.view(-1, 1)], dim=1).t()

    @staticmethod
    def _crop(logits: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return logits[..., :h, :w] if logits.shape[-2:] != (h, w) else logits


def require_hints_support(model: object, path: object) -> None:
    """Raise a one-line UsageError when `model` (a ColorUNet, or anything holding one as `.model`) cannot
    take hints; `path` names its checkpoint in the message. Inference calls it before using hints."""
    net = model if hasattr(model, "accepts_hints") else getattr(model, "model", None)
    if not getattr(net, "accepts_hints", False):
        raise UsageError(f"model {path} was trained without colour hints",
                         "retrain it with this version of `colorize train`, or drop --hints")


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (what a compact model's size budget counts; `colorize train` prints it)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
