"""The array core of coloring: the net's probabilities with the mirror, decoding, and the gamut fit.

Every path that turns lightness into color goes through these three steps, so what validation scores
during training is what `colorize predict` writes (at the shard size) and what eval measures:
- `mirrored_probs`: the photo and its mirror image are both predicted and their probabilities averaged
  (mirrored back). A photo's colors do not depend on which way it faces, training saw both ways (prep's
  flip variant), and where the two predictions disagree the mixed distribution is less certain, so the
  neutral fallback fades exactly those pixels. Measured on bench_quality (18 held-out real photos, one
  trained model): PSNR 19.71 -> 19.88 dB, rebalanced AuC 82.03 -> 82.24 %, for twice the network time at
  the model's small size (a 12 MP photo took 1.09-1.11x as long, 1 thread).
- `decode_rows`: annealed mean at temperature T, neutral where unsure (`annealed.decode`), on probabilities
  with the bins last; `mirrored_decode` runs the mirror and the decoding together a band of pixels at a
  time (what coloring calls), `decode_maps` / `decode_ab` decode probabilities already held.
- `compose_at_size`: the stored L + decoded ab -> sRGB, chroma reduced into the gamut at constant L
  (`gamut.compose`); full resolution is `models/infer/strips.py`, which uses the same gamut fit.
It lives in `models.net` so that training (a layer below inference) can call it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from colorize.dataset.color import decode_l
from colorize.models.net.annealed import annealed_rows, chroma_rows
from colorize.models.net.gamut import compose
from colorize.models.net.unet import ColorUNet

__all__ = ["DecodedMaps", "compose_at_size", "decode_ab", "decode_maps", "decode_rows", "mirrored_decode",
           "mirrored_probs"]


#: Pixels decoded at a time on a CPU: their two 317-bin rows (photo and mirror) stay in cache through the
#: softmax, the average and the decoding, and no buffer is large enough to be returned to the OS and
#: page-faulted in again on the next call (bench_editor: a whole-square pass spent most of its time so).
CHUNK_PIXELS = 2048


@dataclass
class DecodedMaps:
    """What coloring needs of the bin probabilities, per pixel: ab at each temperature [B,H,W,2] and the
    chroma confidence the decoding used [B,H,W]."""

    ab: list[np.ndarray]
    chroma: np.ndarray


def decode_rows(p: torch.Tensor, centers: torch.Tensor, temperatures: Sequence[float]
                ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Probabilities with the bins last [k, n] -> (ab [k, 2] per temperature, chroma [k]): annealed mean at
    each T, neutral where unsure (`annealed.decode`, the chroma confidence computed once)."""
    chroma = chroma_rows(p, centers)
    return [annealed_rows(p, centers, t).mul_(chroma[:, None]) for t in temperatures], chroma


def _chunk(n: int, device: torch.device) -> int:
    return n if device.type == "cuda" else CHUNK_PIXELS


def _decode_chunks(chunks: Iterator[tuple[slice, torch.Tensor]], shape: tuple[int, int, int],
                   centers: torch.Tensor, temperatures: Sequence[float]) -> DecodedMaps:
    b, h, w = shape
    ab = [np.empty((b * h * w, 2), np.float32) for _ in temperatures]
    chroma = np.empty(b * h * w, np.float32)
    for rows, p in chunks:
        abs_, chroma_k = decode_rows(p, centers, temperatures)
        for out, part in zip(ab, abs_):
            out[rows] = part.float().cpu().numpy()
        chroma[rows] = chroma_k.float().cpu().numpy()
    return DecodedMaps([a.reshape(b, h, w, 2) for a in ab], chroma.reshape(b, h, w))


def decode_maps(probs: torch.Tensor, centers: torch.Tensor, temperatures: Sequence[float]) -> DecodedMaps:
    """Probabilities [B,n,H,W] (a video's smoothed ones, a validation batch's) -> `DecodedMaps`."""
    b, n, h, w = probs.shape
    rows = probs.float().permute(0, 2, 3, 1).reshape(b * h * w, n)
    step = _chunk(len(rows), rows.device)
    chunks = ((slice(i, i + step), rows[i:i + step]) for i in range(0, len(rows), step))
    return _decode_chunks(chunks, (b, h, w), centers, temperatures)


def _mirror_chunks(model: ColorUNet, x: torch.Tensor, hints: torch.Tensor | None,
                   logits: torch.Tensor | None = None) -> Iterator[tuple[slice, torch.Tensor]]:
    """(pixel rows, probabilities [k, n]) a band at a time: the photo's and its mirror image's, averaged.

    The head is a 1x1 conv, so the mirror pass's head input is flipped back (width + 6 channels) rather than its
    probabilities (n_bins), and both go through the head as one matrix product per band."""
    matrix = model.head_matrix()
    mirror = model.head_rows(model.features_of(x.flip(-1), None if hints is None else hints.flip(-1)).flip(-1))
    if logits is None:
        straight = model.head_rows(model.features_of(x, hints))
    else:
        straight = logits.permute(0, 2, 3, 1).reshape(len(mirror), -1)
    step = _chunk(len(mirror), mirror.device)
    for i in range(0, len(mirror), step):
        k = min(step, len(mirror) - i)
        if logits is None:
            both = torch.cat([straight[i:i + k], mirror[i:i + k]]) @ matrix.to(mirror.dtype)
        else:
            both = torch.cat([straight[i:i + k], mirror[i:i + k] @ matrix.to(mirror.dtype)])
        p = torch.softmax(both.float(), dim=-1)
        yield slice(i, i + k), p[:k].add_(p[k:]).mul_(0.5)


def mirrored_probs(model: ColorUNet, x: torch.Tensor, logits: torch.Tensor | None = None,
                   hints: torch.Tensor | None = None) -> torch.Tensor:
    """Net input [B,1,S,S] (+ hint planes [B,3,S,S] or None) -> float32 probabilities [B,n,S,S], averaged
    with the mirror image's (a view of a [B,S,S,n] tensor: `annealed` reads the bins along the
    contiguous axis).

    `logits` of the unmirrored pass may be given when the caller has them already (validation needs them
    for its loss), so the net runs once more, not twice. The hint planes go in beside L, flipped on their
    last axis with the photo for the mirror pass. Coloring itself never holds all of these: it decodes
    them a band at a time (`mirrored_decode`).
    """
    b, _, h, w = x.shape
    out = torch.empty((b * h * w, model.n_bins), device=x.device)
    for rows, p in _mirror_chunks(model, x, hints, logits):
        out[rows] = p
    return out.view(b, h, w, -1).permute(0, 3, 1, 2)


def mirrored_decode(model: ColorUNet, x: torch.Tensor, hints: torch.Tensor | None, centers: torch.Tensor,
                    temperatures: Sequence[float]) -> DecodedMaps:
    """`decode_maps` of `mirrored_probs`, a band of pixels at a time: the one place the net is called to
    color a photo (predict, eval, the editor, the API)."""
    b, _, h, w = x.shape
    return _decode_chunks(_mirror_chunks(model, x, hints), (b, h, w), centers, temperatures)


def decode_ab(probs: torch.Tensor, centers: torch.Tensor, temperature: float) -> np.ndarray:
    """Probabilities [B,n,S,S] -> decoded ab (annealed mean, neutral where unsure) as numpy float32 [B,S,S,2]."""
    return decode_maps(probs, centers, [temperature]).ab[0]


def compose_at_size(L_u8: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Stored uint8 L [B,S,S] + decoded ab [B,S,S,2] -> uint8 sRGB [B,S,S,3], fitted into the gamut."""
    return np.stack([compose(decode_l(L_u8[k]), ab[k]) for k in range(len(L_u8))])
