"""Pre-processors (paper section 2.4): fit an (F, T) spectrogram into the square model input.

Time folding (default): cut time into n equal segments and stack them along frequency,
84 × 768 -> 252 × 256, then pad the top with the floor value to 256 × 256 (84 bins cannot
fold to an exact square). Frequency tiling: repeat along frequency and keep the lowest
rows, 84 × 256 -> 256 × 256. Native: no square; the 84 bins padded to 96 rows (a multiple of
every stride up to 32), 84 × T -> 96 × T, so neighbouring tokens are always neighbours in time.
"""

from __future__ import annotations

import torch

from s3t.audio.constant_q import FLOOR_DB
from s3t.config.schema import PREPROCESSORS, input_frames


def fold_time(x: torch.Tensor, n: int) -> torch.Tensor:
    """(…, F, T) -> (…, F·n, T/n): segment k of time occupies rows k·F … (k+1)·F − 1."""
    F, T = x.shape[-2:]
    if n < 1 or T % n:
        raise ValueError(f"fold_time: {T} frames do not split into {n} equal segments")
    segments = x.unflatten(-1, (n, T // n))  # (…, F, n, T/n)
    return segments.transpose(-3, -2).flatten(-3, -2)  # (…, n·F, T/n)


def tile_frequency(x: torch.Tensor, n: int, size: int) -> torch.Tensor:
    """(…, F, T) -> (…, size, T): repeat along frequency n times, keep the lowest `size` rows."""
    F = x.shape[-2]
    if F * n < size:
        raise ValueError(f"tile_frequency: {n} copies of {F} bins give {F * n} rows, fewer than {size}")
    reps = [1] * x.ndim
    reps[-2] = n
    return x.repeat(*reps)[..., :size, :]


def pad_frequency(x: torch.Tensor, size: int, value: float = FLOOR_DB) -> torch.Tensor:
    """(…, F, T) -> (…, size, T), padding above the highest bin with `value` (silence)."""
    F = x.shape[-2]
    if F > size:
        raise ValueError(f"pad_frequency: {F} rows do not fit in {size}")
    return torch.nn.functional.pad(x, (0, 0, 0, size - F), value=value)


def normalize_db(x: torch.Tensor) -> torch.Tensor:
    """Fixed affine map of dB values to the model's range: floor (−100 dB) -> −1, 0 dB -> +1.

    Fixed rather than fitted, so that a checkpoint needs no dataset statistics.
    """
    return (x - FLOOR_DB) / (-FLOOR_DB / 2) - 1.0


NATIVE_ROWS = 96


def to_model_input(x: torch.Tensor, preprocessor: str = "time_fold", size: int = 256,
                   n: int | None = None, any_width: bool = False) -> torch.Tensor:
    """(B, F, input_frames) log-CQTs -> (B, 1, size, size) model input; native: (B, 1, 96, size).
    `any_width`: a clip of any length keeps its own width (time_fold pads it with the floor to whole segments)."""
    T = x.shape[-1]
    if preprocessor == "native":
        if T != size and not any_width:
            raise ValueError(f"native input takes {size} frames, got {T}")
        return pad_frequency(x, NATIVE_ROWS).unsqueeze(-3)
    if preprocessor == "time_fold":
        n = n or 3
        if any_width:
            x = torch.nn.functional.pad(x, (0, -T % n), value=FLOOR_DB)
        y = pad_frequency(fold_time(x, n), size)
    elif preprocessor == "freq_tile":
        y = tile_frequency(x, n or 4, size)
    else:
        raise ValueError(f"unknown pre-processor {preprocessor!r}; expected one of {PREPROCESSORS}")
    if y.shape[-2] != size or (y.shape[-1] != size and not any_width):
        raise ValueError(f"{preprocessor} turned {tuple(x.shape[-2:])} into {tuple(y.shape[-2:])}, "
                         f"not {size} × {size}: give it {input_frames(preprocessor, size, n)} frames")
    return y.unsqueeze(-3)


def check_geometry(preprocessor: str, size: int, n: int, bins: int = 84) -> None:
    """Raise ValueError, with the numbers, when `preprocessor` cannot fill a size × size input
    from `bins` frequency bins with n segments (time_fold) or copies (freq_tile), or `native` its rows."""
    if preprocessor == "native" and bins > NATIVE_ROWS:
        raise ValueError(f"native input holds {NATIVE_ROWS} rows, fewer than {bins} bins")
    if preprocessor == "time_fold" and bins * n > size:
        raise ValueError(f"time_fold stacks {n} × {bins} bins = {bins * n} rows, more than model.input_size {size}; "
                         "lower model.fold")
    if preprocessor == "freq_tile" and bins * n < size:
        raise ValueError(f"freq_tile: {n} copies of {bins} bins give {bins * n} rows, fewer than model.input_size "
                         f"{size}; raise model.tile (0 = just enough)")
    input_frames(preprocessor, size, n)  # an unknown pre-processor


def input_shape(model_cfg) -> tuple[int, int]:
    """(H, W) of the image `model_input` makes for the model `model_cfg` (a ModelConfig)."""
    if model_cfg.preprocessor == "native":
        return NATIVE_ROWS, model_cfg.input_size
    return model_cfg.input_size, model_cfg.input_size


def model_input(views: torch.Tensor, model_cfg, any_width: bool = False) -> torch.Tensor:
    """(N, 84, frames) log-CQTs -> (N, 1, H, W) normalised input of the model `model_cfg` (a ModelConfig),
    (H, W) = `input_shape(model_cfg)`; `any_width`: views of any length, W their own (see to_model_input)."""
    m = model_cfg
    return normalize_db(to_model_input(views, m.preprocessor, m.input_size, m.segments, any_width))
