"""Typed configuration: one dataclass per section, defaults = the paper's "S3T (Ours)" row.
Each section checks its own values when built; `s3t.config.loading` layers YAML and overrides on top.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from s3t.devices import check_device_name

PREPROCESSORS = ("time_fold", "freq_tile", "native")


def input_frames(preprocessor: str, size: int = 256, n: int | None = None) -> int:
    """How many CQT frames a pre-processor turns into one model input: size × size (768 / 256 by
    default), or for `native` the input's width, `size` frames."""
    if preprocessor == "time_fold":
        return size * (n or 3)
    if preprocessor in ("freq_tile", "native"):
        return size
    raise ValueError(f"unknown pre-processor {preprocessor!r}; expected one of {PREPROCESSORS}")


def _check_range(name: str, pair: tuple, low: float, high: float | None = None) -> None:
    if len(pair) != 2 or pair[0] > pair[1] or pair[0] < low or (high is not None and pair[1] > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"augment.{name} must be a pair (min, max) with min <= max, both {bound}; got {pair}")


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}; got {value!r}")


@dataclass
class AugmentConfig:
    """The music augmentation pipeline (paper section 2.3). Counts and widths are inclusive."""

    crop_ratio: tuple[float, float] = (0.1, 0.9)  # crop length as a fraction of the track
    freq_mask_p: float = 0.5
    freq_mask_count: tuple[int, int] = (1, 5)
    freq_mask_width: tuple[int, int] = (5, 30)  # bins
    freq_mask_max_fraction: float = 0.4  # of the bins, all bands together
    time_mask_p: float = 0.5
    time_mask_count: tuple[int, int] = (1, 10)
    time_mask_ratio: tuple[float, float] = (0.01, 0.2)  # of the frames, each segment
    time_mask_max_fraction: float = 0.4
    warp_p: float = 0.4
    warp_max: int = 10  # frames: the point lies in (W, T - W) and moves by up to W
    shift_p: float = 0.4
    shift_range: tuple[int, int] = (1, 10)  # bins (pitch) or frames (time)
    # ratio: crops of crop_ratio × the item, resized to the input frames (the paper's);
    # native: crops of exactly the input frames, no resizing (an item shorter than that is looped)
    crop: str = "ratio"
    # item: both views come from one item (the paper's); track: the second view from another clip
    # of the same track where a clip cache has one (a song is one instance; no labels involved)
    positives: str = "item"

    def __post_init__(self) -> None:
        _check_choice("augment.crop", self.crop, ("ratio", "native"))
        _check_choice("augment.positives", self.positives, ("item", "track"))
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):  # from YAML
                setattr(self, f.name, value := tuple(value))
            if f.name.endswith("_p") and not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{f.name} is a probability in [0, 1], got {value}")
            if f.name.endswith("max_fraction") and not 0.0 < value <= 1.0:
                raise ValueError(f"augment.{f.name} must be in (0, 1], got {value}")
        _check_range("crop_ratio", self.crop_ratio, 0.0, 1.0)
        _check_range("time_mask_ratio", self.time_mask_ratio, 0.0, 1.0)
        for name in ("freq_mask_count", "freq_mask_width", "time_mask_count", "shift_range"):
            _check_range(name, getattr(self, name), 0)
        if self.warp_max < 0:
            raise ValueError(f"augment.warp_max must be >= 0, got {self.warp_max}")


SHORT_READINGS = ("resize", "pad", "loop", "valid", "native")  # model.short


@dataclass
class ModelConfig:
    """The encoder and how a spectrogram becomes its input image."""

    name: str = "swin_t"  # a key of s3t.models.ENCODERS
    # time_fold | freq_tile: a square input; native: the CQT as it is, 84 bins padded to 96 rows
    preprocessor: str = "time_fold"
    # the square input's side: 84 × 768 folds to 252 × 256, padded to 256 × 256; native: frames (width)
    input_size: int = 256
    fold: int = 3  # time segments stacked by time_fold
    tile: int = 0  # copies of the 84 bins stacked by freq_tile; 0 = just enough to fill input_size
    drop_path: float = 0.1
    freeze_patch_embed: bool = False  # keep the random patch projection fixed (MoCo v3's fix for ViT instability)
    # Swin and ResNet encoders: mean: the last stage's tokens (or map) averaged (the paper's); rows:
    # averaged over time only, one vector per frequency row, concatenated (keeps where in frequency a
    # pattern sits); rows_stats: each row's mean and standard deviation over time; stages: every
    # stage averaged, concatenated (what the early stages carry beside the last)
    pooling: str = "mean"
    # how a frozen encoder (embed, linear-eval, the monitor) is read out, when not as it was trained:
    # one of the poolings, or "" for model.pooling. Pooling holds no weights, so a recipe can train its
    # pretext on the mean and read the rows
    readout: str = ""
    # how a clip longer than the input becomes one embedding: resize (the whole clip squeezed to
    # the input frames) or windows (mean over half-overlapping windows at the native rate)
    embedding: str = "resize"
    # how a clip shorter than the input is read: resize (stretched to the input frames), pad (as it is,
    # the floor after it), loop (repeated until it fills the input), valid (padded, pooled over the
    # clip's cells only: Swin, ResNet) or native (as it is, its own width: ResNets); issue 28's study
    short: str = "resize"

    def __post_init__(self) -> None:
        _check_choice("model.pooling", self.pooling, ("mean", "rows", "rows_stats", "stages"))
        _check_choice("model.readout", self.readout, ("", "mean", "rows", "rows_stats", "stages"))
        _check_choice("model.embedding", self.embedding, ("resize", "windows"))
        _check_choice("model.short", self.short, SHORT_READINGS)

    @property
    def segments(self) -> int:
        """What the pre-processor stacks: time segments (time_fold) or frequency copies (freq_tile)."""
        if self.preprocessor == "freq_tile":
            return self.tile or -(-self.input_size // 84)
        return self.fold

    @property
    def frames(self) -> int:
        """CQT frames of one model input: the crop length the pre-processor needs (768 for 256, fold 3)."""
        return input_frames(self.preprocessor, self.input_size, self.segments)


@dataclass
class MocoConfig:
    dim: int = 128  # projection output
    hidden_dim: int = 2048
    mlp_layers: int = 2  # linear layers in the projection head (MoCo v2: 2)
    queue_size: int = 65536
    momentum: float = 0.999
    temperature: float = 0.2
    mask_same_track: bool = True  # queued keys of the query's own track are not negatives (not in the paper)
    # the other keys of this step's global batch are negatives too (not in the paper): keys as fresh
    # as the positive, so telling the positive from the negatives by the key encoder's drift fails
    batch_negatives: bool = False
    # weight of the backbone's uniformity (`s3t.methods.moco.uniformity`, Wang & Isola 2020) added to the loss
    # (not in the paper): holds the encoder's own features spread out, which InfoNCE on the projection does not
    uniformity: float = 0.0
    bn_groups: int = 2  # BatchNorm encoders in one process: sub-batches with their own statistics (shuffle-BN)


@dataclass
class OptimConfig:
    lr: float = 5e-4  # for a global batch of `lr_batch`; scaled linearly
    lr_batch: int = 512
    weight_decay: float = 0.05
    epochs: int = 400
    warmup_epochs: float = 20
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    min_lr: float = 0.0
    optimizer: str = "adamw"  # adamw | adam (CLMR's)

    def __post_init__(self) -> None:
        _check_choice("optim.optimizer", self.optimizer, ("adamw", "adam"))


@dataclass
class TrainConfig:
    method: str = "moco"  # what `s3t pretrain` trains: a name in s3t.methods.METHODS (moco, simclr, …)
    # auto (a GPU when visible) | cpu | cuda | cuda:N; under torchrun each process takes its LOCAL_RANK's GPU
    device: str = "auto"
    batch_size: int = 128  # per process (GPU); the global batch is this × world size
    workers: int = 4  # DataLoader worker processes
    seed: int = 0
    amp: bool = True  # bf16 autocast on GPU; always off on CPU (AVX2 has no fast bf16)
    log_every: int = 10  # steps between CSV log lines
    checkpoint_every: int = 1  # epochs between numbered checkpoints (last.pt is written every epoch)
    checkpoint_steps: int = 0  # also refresh last.pt every N steps inside an epoch; 0 = off
    nan_policy: str = "stop"  # stop | skip: what a non-finite loss does
    max_steps: int = 0  # stop after this many steps in total (tests, benchmarks); 0 = no limit
    monitor_every: int = 1  # epochs between readings of the --monitor set (k-NN and linear probe)
    tensorboard: bool = False  # also log to OUT/tensorboard (needs the `tensorboard` extra)
    # torch.compile the method's modules in place (checkpoint keys unchanged): auto = on a GPU, off on
    # the CPU (where compiling costs more than it saves); true | false
    compile: bool | str = "auto"
    compile_backend: str = "inductor"  # torch.compile's backend ("eager": tracing only, for tests)

    def __post_init__(self) -> None:
        check_device_name(self.device, "train.device")
        _check_choice("train.nan_policy", self.nan_policy, ("stop", "skip"))
        if not (isinstance(self.compile, bool) or self.compile == "auto"):
            raise ValueError(f"train.compile must be auto, true or false, got {self.compile!r}")
        if self.checkpoint_every < 1:  # last.pt is kept every epoch anyway; 0 once divided by zero
            raise ValueError(f"train.checkpoint_every is epochs between numbered checkpoints, >= 1; got "
                             f"{self.checkpoint_every}")


@dataclass
class ProbeConfig:
    """The probe on frozen features: the paper's linear layer (section 3.3), or MARBLE's MLP."""

    kind: str = "linear"  # linear | mlp (one hidden ReLU layer with dropout, as MARBLE's probes)
    hidden: int = 512  # the MLP's hidden units
    dropout: float = 0.2  # the MLP's dropout, on the hidden layer
    lr: float = 1e-3
    weight_decay: float = 0.05
    epochs: int = 50
    warmup_epochs: int = 5
    batch_size: int = 0  # 0 = the dataset's: 64 for GTZAN, 256 for the others (the paper's)
    standardize: bool = True  # scale features by the train split's mean and std first
    also_mlp: bool = False  # a linear probe's run also trains the MLP on the same features: metrics["mlp"]

    def __post_init__(self) -> None:
        _check_choice("probe.kind", self.kind, ("linear", "mlp"))
        if not 0.0 <= self.dropout < 1.0 or self.hidden < 1:
            raise ValueError(f"probe.dropout must be in [0, 1) and probe.hidden >= 1; got {self.dropout}, {self.hidden}")


@dataclass
class ClmrConfig:
    """The CLMR baseline (`s3t clmr`): NT-Xent and CLMR's waveform augmentations with its probabilities."""

    temperature: float = 0.5
    dim: int = 128  # projection output
    polarity_p: float = 0.8
    noise_p: float = 0.01
    gain_p: float = 0.3
    filter_p: float = 0.8
    delay_p: float = 0.3
    pitch_p: float = 0.6
    reverb_p: float = 0.6

    def __post_init__(self) -> None:
        for f in fields(self):
            if f.name.endswith("_p") and not 0.0 <= getattr(self, f.name) <= 1.0:
                raise ValueError(f"clmr.{f.name} is a probability in [0, 1], got {getattr(self, f.name)}")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    moco: MocoConfig = field(default_factory=MocoConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    clmr: ClmrConfig = field(default_factory=ClmrConfig)

    def to_dict(self) -> dict:
        return asdict(self)
