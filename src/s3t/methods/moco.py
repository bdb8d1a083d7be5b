"""MoCo v2 (He et al. 2020; Chen et al. 2020) around any encoder of the `s3t.models` contract: S3T's method."""

from __future__ import annotations

import copy
import logging

import torch
import torch.distributed as dist
import torch.nn.functional as F

from s3t.config.schema import Config
from s3t.devices import world_size
from s3t.methods.base import Method, spectrogram_views
from s3t.models.backbones import build_encoder, has_batch_norm
from s3t.models.heads import projection_head

log = logging.getLogger(__name__)


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """InfoNCE logits for L2-normalised queries q (N, C), positive keys k (N, C), negatives (C, K).

    Returns logits (N, 1 + K) divided by the temperature, in float32 even under autocast (bf16's
    spacing near a cosine of 1 is 0.008, 0.04 logit at τ 0.2: coarser than the margins it ranks),
    and labels (N,) = 0 (the positive).
    """
    with torch.autocast(q.device.type, enabled=False):
        q, k, queue = q.float(), k.float(), queue.float()
        l_pos = torch.einsum("nc,nc->n", q, k).unsqueeze(-1)  # positive logits: (N, 1)
        l_neg = q @ queue  # negative logits: (N, K)
        logits = torch.cat([l_pos, l_neg], dim=1) / temperature  # (N, 1 + K)
    labels = torch.zeros(len(q), dtype=torch.long, device=q.device)
    return logits, labels


def uniformity(h: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Wang & Isola (2020): log of the mean of exp(−t‖x − y‖²) over pairs of the L2-normalised rows
    of h (N, D). 0 when all rows are equal; about −4 for many rows spread evenly over a high-dimensional sphere."""
    z = F.normalize(h.float(), dim=1)
    return torch.pdist(z).pow(2).mul(-t).exp().mean().log()


@torch.no_grad()
def momentum_update(target: torch.nn.Module, source: torch.nn.Module, m: float) -> None:
    """target <- m · target + (1 − m) · source, every parameter at once (a few fused kernels, not
    two per parameter)."""
    targets = list(target.parameters())
    torch._foreach_mul_(targets, m)
    torch._foreach_add_(targets, [p.detach() for p in source.parameters()], alpha=1.0 - m)


@torch.no_grad()
def gather_from_all_ranks(x: torch.Tensor) -> torch.Tensor:
    """Concatenate x (N, …) from every rank in rank order; the identity in one process."""
    if world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


@torch.no_grad()
def _shuffled_across_ranks(encode, x: torch.Tensor) -> torch.Tensor:
    """encode(x) where each rank encodes a random share of the global batch (rank 0 draws the
    permutation), and every rank gets back the outputs of its own inputs, in order."""
    n, rank = len(x), dist.get_rank()
    everything = gather_from_all_ranks(x)
    perm = torch.randperm(len(everything), device=x.device)
    dist.broadcast(perm, src=0)
    out = gather_from_all_ranks(encode(everything[perm[rank * n : (rank + 1) * n]]))
    return out[torch.argsort(perm)[rank * n : (rank + 1) * n]]


class MoCo(Method):
    """Query encoder (`encoder`) + head trained by gradient; key encoder + head by EMA after each
    optimiser step; a queue of keys. The queue (C, K) and its pointer are buffers, so they are
    saved in checkpoints. Its batches are two-view crops of log-CQTs and their tracks' ids
    (`s3t.data.views.TwoCropDataset`), augmented and pre-processed on the training device."""

    name = "moco"
    # acc1: MoCo's pretext accuracy; uniformity: of the backbone's features of the queries (see
    # `uniformity`), which falls towards 0 when the backbone collapses onto few directions
    stat_names = ("acc1", "uniformity")

    def __init__(self, encoder: torch.nn.Module, config: Config):
        super().__init__()
        self.config = config
        moco = config.moco
        self.encoder = encoder
        self.head_q = projection_head(encoder.num_features, moco.hidden_dim, moco.dim, moco.mlp_layers)
        self.encoder_k = copy.deepcopy(encoder)
        self.head_k = copy.deepcopy(self.head_q)
        for p in list(self.encoder_k.parameters()) + list(self.head_k.parameters()):
            p.requires_grad = False
        self.register_buffer("queue", F.normalize(torch.randn(moco.dim, moco.queue_size), dim=0))  # (C, K)
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        # the track each queued key came from (-1: none); see forward
        self.register_buffer("queue_groups", torch.full((moco.queue_size,), -1, dtype=torch.long))
        if moco.bn_groups < 1:
            raise ValueError(f"moco.bn_groups must be >= 1, got {moco.bn_groups}")
        self.shuffle_bn = has_batch_norm(encoder)

    def key_modules(self) -> list[tuple[torch.nn.Module, torch.nn.Module]]:
        return [(self.encoder_k, self.encoder), (self.head_k, self.head_q)]

    @torch.no_grad()
    def momentum_step(self, m: float | None = None) -> None:
        for target, source in self.key_modules():
            momentum_update(target, source, self.config.moco.momentum if m is None else m)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor, groups: torch.Tensor | None = None) -> None:
        """Replace the oldest len(keys) entries of the queue with keys (N, C) from tracks `groups` (N,)."""
        if not torch.isfinite(keys).all():
            return  # a diverged step must not poison the negatives of the steps after it
        n, K = len(keys), self.queue.shape[1]
        if K % n:
            raise ValueError(f"moco.queue_size {K} must be a multiple of the global batch {n}")
        ptr = int(self.queue_ptr)
        self.queue[:, ptr : ptr + n] = keys.T
        self.queue_groups[ptr : ptr + n] = -1 if groups is None else groups
        self.queue_ptr.fill_((ptr + n) % K)

    def query_features(self, x_q: torch.Tensor) -> torch.Tensor:
        """(N, …) -> the backbone's features (N, D). With BatchNorm in one process, each of `bn_groups`
        consecutive sub-batches is normalised by its own statistics, as each GPU's share is under DDP."""
        if self.shuffle_bn and world_size() == 1:
            return torch.cat([self.encoder(part) for part in x_q.chunk(self.config.moco.bn_groups)])
        return self.encoder(x_q)

    def project_queries(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head_q(h), dim=1)

    @torch.no_grad()
    def encode_keys(self, x_k: torch.Tensor) -> torch.Tensor:
        """(N, …) -> (N, C). Shuffle-BN (MoCo, section 3.3) for BatchNorm encoders: keys are
        normalised in randomly drawn sub-batches (across ranks under DDP, `bn_groups` of them in one
        process), so a key never shares its BatchNorm statistics with its own query's sub-batch
        as a whole: the statistics cannot leak which key is the positive."""
        if not self.shuffle_bn:
            return self._project_k(x_k)
        if world_size() > 1:
            return _shuffled_across_ranks(self._project_k, x_k)
        perm = torch.randperm(len(x_k), device=x_k.device)  # seeded per step by the training loop
        keys = torch.empty(len(x_k), self.config.moco.dim, device=x_k.device, dtype=self.queue.dtype)
        for part in perm.chunk(self.config.moco.bn_groups):
            keys[part] = self._project_k(x_k[part]).to(keys.dtype)
        return keys

    def _project_k(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head_k(self.encoder_k(x)), dim=1)

    def forward(self, batch: tuple[torch.Tensor, torch.Tensor], gen: torch.Generator
                ) -> tuple[torch.Tensor, dict[str, float]]:
        """One training step's loss on two-view crops (B, 2, 84, T) from tracks `groups` (B,), MoCo's
        acc@1 (the fraction of queries whose positive key scores above every negative) and the
        uniformity of the queries' backbone features. With `moco.uniformity` w > 0 the loss is
        InfoNCE + w · uniformity: the backbone is held spread out, not only the projection."""
        views, groups = batch
        x = spectrogram_views(views, self.config, gen)  # (B, 2, 1, S, S)
        h = self.query_features(x[:, 0])  # (B, D)
        logits, labels = self.contrast_queries(self.project_queries(h), x[:, 1], groups)  # (B, 1 + K), (B,)
        loss = F.cross_entropy(logits.float(), labels)
        w = self.config.moco.uniformity
        spread = uniformity(h if w else h.detach())
        if w:
            loss = loss + w * spread
        return loss, {"acc1": float((logits.detach().argmax(1) == labels).float().mean()),
                      "uniformity": float(spread.detach())}

    def after_step(self) -> None:
        self.momentum_step()

    def check_batch(self, global_batch: int, items: int) -> None:
        if self.config.moco.queue_size % global_batch:
            raise ValueError(f"moco.queue_size {self.config.moco.queue_size} must be a multiple of the global batch "
                             f"{global_batch}")
        if self.config.moco.queue_size > items - global_batch and not self.config.moco.mask_same_track:
            log.warning("moco.queue_size %d is not smaller than the %d tracks minus a batch: tracks will meet their "
                        "own older keys as negatives; a queue of at most %d fits this corpus",
                        self.config.moco.queue_size, items, (items - global_batch) // global_batch * global_batch)

    def contrast_queries(self, q: torch.Tensor, x_k: torch.Tensor, groups: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoded queries q (N, C) and the key views x_k (N, 1, S, S) of items from tracks `groups` (N,)
        -> InfoNCE logits (N, 1 + K), labels (N,).

        Enqueues the keys of all ranks afterwards, as in MoCo (whose key encoder follows the query
        encoder by `after_step`). With `moco.mask_same_track`, queued keys of the query's
        own track are no negatives (logit −inf): another clip of the same song, or the song's
        own older key when the queue outgrows a small corpus, is not a different instance.
        BatchNorm encoders get shuffle-BN (`encode_keys`); Swin's LayerNorm needs none.
        """
        k = self.encode_keys(x_k)  # (N, C)
        logits, labels = info_nce(q, k, self.queue.clone().detach(), self.config.moco.temperature)
        if groups is not None and self.config.moco.mask_same_track:
            same = groups[:, None] == self.queue_groups[None, :]  # (N, K)
            logits = torch.cat([logits[:, :1], logits[:, 1:].masked_fill(same, float("-inf"))], dim=1)
        keys, key_groups = gather_from_all_ranks(k), None if groups is None else gather_from_all_ranks(groups)
        if self.config.moco.batch_negatives:
            logits = torch.cat([logits, self._batch_logits(q, keys, groups, key_groups)], dim=1)
        self.enqueue(keys, key_groups)
        return logits, labels

    def _batch_logits(self, q: torch.Tensor, keys: torch.Tensor, groups: torch.Tensor | None,
                      key_groups: torch.Tensor | None) -> torch.Tensor:
        """Logits (N, G) of queries q (N, C) against the global batch's keys (G, C); −inf on each
        query's own key and, when tracks are known, on every key of its track."""
        with torch.autocast(q.device.type, enabled=False):
            logits = q.float() @ keys.float().T / self.config.moco.temperature
        own = torch.zeros_like(logits, dtype=torch.bool)
        start = len(q) * (dist.get_rank() if world_size() > 1 else 0)  # this rank's share of the global batch
        own[:, start : start + len(q)] = torch.eye(len(q), dtype=torch.bool, device=q.device)
        if groups is not None:
            own |= groups[:, None] == key_groups[None, :]
        return logits.masked_fill(own, float("-inf"))


def build_moco(cfg: Config) -> MoCo:
    """S3T: MoCo v2 around the encoder `cfg.model` names."""
    return MoCo(build_encoder(cfg.model), cfg)
