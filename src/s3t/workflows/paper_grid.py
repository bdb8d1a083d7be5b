"""What `s3t reproduce` runs: the paper's Tables 1–4 (their rows, columns and reported numbers), the
budgets a grid can run at, and the rows of each table at a budget."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Budget:
    """What one grid costs: the pre-training preset and its epochs, seeds, the probe's epochs."""

    config: str  # preset name or YAML file for pre-training (model, moco, optim, …)
    epochs: int  # pre-training epochs (S3T and CLMR), and supervised training epochs
    pretrain_seeds: int  # seeds of whole pre-training runs for the compared rows
    probe_seeds: int  # label draws / probe seeds per encoder
    probe_epochs: int
    backbones: dict[str, str]  # paper's backbone -> our model.name at this budget
    overrides: tuple[str, ...] = ()
    tile_copies: int = 4  # frequency tiling: copies of the 84 bins (the paper's 4 fill 256 rows)
    clmr: tuple[str, ...] = ()  # overrides of the `clmr` preset
    recipe: str = ""  # a shipped preset judged as it ships (its model, epochs, probe): three more Table 1 rows
    backbone_recipes: tuple[str, ...] = ()  # shipped presets judged as they ship: more Table 3 rows


BUDGETS = {
    "paper": Budget("paper", 400, 1, 3, 50, {"ResNet50": "resnet50", "MSNet-BiGRU": "crnn_bigru",
                                              "Swin-T": "swin_t"}),
    # resnet18 took 24 min a run on 2 cores (benchmarks/RESULTS.md): resnet_small keeps the grid near 2 hours.
    # The paper's tables compare backbones under the paper's settings scaled to 2 cores (`paper-small`);
    # Table 3 adds the CPU recipes of both backbones, the ResNet's and the Swin's, as they ship
    "small": Budget("paper-small", 10, 3, 3, 50, {"ResNet50": "resnet_small", "MSNet-BiGRU": "crnn_small",
                                              "Swin-T": "swin_mini"},
                    clmr=("model.name=samplecnn_small", "train.batch_size=16"), recipe="cpu-small",
                    backbone_recipes=("cpu-small", "cpu-small-swin")),
    # a few seconds a step, one pre-training seed: for tests of the runner itself
    "tiny": Budget("tiny", 1, 1, 2, 3, {"ResNet50": "resnet18", "MSNet-BiGRU": "crnn_small", "Swin-T": "swin_nano"},
                   ("train.batch_size=4", "moco.queue_size=8"), tile_copies=2,
                   clmr=("model.name=samplecnn_small", "train.batch_size=4", "train.workers=0"), recipe="tiny",
                   backbone_recipes=("tiny",)),
}

# The paper's reported numbers (Tables 1–4), by table, row and column.
PAPER = {
    1: {"columns": ["MTAT PR-AUC", "MTAT ROC-AUC", "FMA Top-1", "GTZAN Top-1"],
        "rows": {"Random Init": [18.0, 73.5, 26.0, 27.6], "cqt-stats": [None] * 4, "Supervised": [38.3, 90.6, 42.7, 79.0],
                 "SSL (CLMR)": [36.1, 89.4, 48.4, 68.6], "S3T (Ours)": [40.9, 89.9, 56.4, 81.1]}},
    2: {"columns": ["MTAT PR-AUC", "MTAT ROC-AUC", "FMA Top-1", "FMA Top-5"],
        "rows": {"CLMR": [36.1, 89.4, 48.4, 90.6], "Supervised": [38.3, 90.6, 42.7, None],
                 "S3T-1%": [27.2, 77.4, 39.0, 84.8], "S3T-10%": [37.2, 87.8, 50.6, 91.9],
                 "S3T-100%": [40.9, 89.9, 56.4, 95.3]}},
    3: {"columns": ["GTZAN Top-1", "GTZAN Top-5"],
        "rows": {"ResNet50": [73.6, 93.4], "MSNet-BiGRU": [64.5, 91.9], "Swin-T": [81.1, 97.2]}},
    4: {"columns": ["GTZAN Top-1", "GTZAN Top-5"],
        "rows": {"Frequency Tiling": [78.3, 96.6], "Time Folding": [81.1, 97.2]}},
}
TITLES = {1: "Linear evaluation of S3T and three other methods",
          2: "Linear evaluation with 1 %, 10 % and 100 % of the labels",
          3: "Backbones (S3T pre-training, linear probe)",
          4: "Pre-processors (S3T pre-training, linear probe)"}


@dataclass
class Row:
    """One row of one table: the encoders it probes (one per pre-training seed) and how."""

    table: int
    name: str
    method: str  # s3t | random | cqt-stats | supervised | clmr
    model: str = ""
    preprocessor: str = "time_fold"
    label_fraction: float = 1.0
    seeds: list[int] = field(default_factory=lambda: [0])
    config: str = ""  # a preset run as it ships, only the seed set: then `model` and `preprocessor` are unused


def grid(budget: Budget) -> list[Row]:
    """The rows of Tables 1–4 at `budget`. Compared rows (S3T against Random Init, backbones,
    pre-processors) get `pretrain_seeds` seeds of whole runs (random weights for Random Init);
    the S3T rows of Tables 1–4 share those runs, and the rest have seed 0."""
    swin = budget.backbones["Swin-T"]
    seeds = list(range(budget.pretrain_seeds))
    rows = [Row(1, "Random Init", "random", swin, seeds=seeds), Row(1, "cqt-stats", "cqt-stats"),
            Row(1, "Supervised", "supervised", swin),
            Row(1, "SSL (CLMR)", "clmr"), Row(1, "S3T (Ours)", "s3t", swin, seeds=seeds),
            Row(2, "CLMR", "clmr"), Row(2, "Supervised", "supervised", swin)]
    rows += [Row(2, f"S3T-{pct}%", "s3t", swin, label_fraction=pct / 100, seeds=seeds if pct == 100 else [0])
             for pct in (1, 10, 100)]
    rows += [Row(3, paper_name, "s3t", ours, seeds=seeds) for paper_name, ours in budget.backbones.items()]
    rows += [Row(3, f"S3T ({preset})", "s3t", config=preset, seeds=seeds) for preset in budget.backbone_recipes]
    rows += [Row(4, "Frequency Tiling", "s3t", swin, "freq_tile", seeds=seeds),
             Row(4, "Time Folding", "s3t", swin, seeds=seeds)]
    if budget.recipe:
        # the recipe's probe is not the paper's: its references are probed its way too
        rows[5:5] = [Row(1, f"Random Init ({budget.recipe})", "random", config=budget.recipe, seeds=seeds),
                     Row(1, f"cqt-stats ({budget.recipe})", "cqt-stats", config=budget.recipe),
                     Row(1, f"S3T ({budget.recipe})", "s3t", config=budget.recipe, seeds=seeds)]
    return rows
