import pytest
import torch
import torch.nn.functional as F

from s3t.config.schema import Config, MocoConfig, ModelConfig
from s3t.methods.moco import MoCo, info_nce, momentum_update, uniformity
from s3t.models.backbones import build_encoder
from s3t.models.heads import projection_head


def tiny_moco(queue: int = 16, momentum: float = 0.9) -> MoCo:
    torch.manual_seed(0)
    model = ModelConfig(name="swin_nano", input_size=64, preprocessor="freq_tile", drop_path=0.0)
    return MoCo(build_encoder(model), Config(model=model, moco=MocoConfig(dim=8, hidden_dim=16, queue_size=queue,
                                                                           momentum=momentum)))


def contrast(m: MoCo, x_q: torch.Tensor, x_k: torch.Tensor, groups: torch.Tensor | None = None):
    """MoCo's InfoNCE logits and labels for two views, as its training step computes them."""
    return m.contrast_queries(m.project_queries(m.query_features(x_q)), x_k, groups)


def test_key_encoder_starts_equal_and_gets_no_gradients():
    m = tiny_moco()
    for (k, q) in m.key_modules():
        for pk, pq in zip(k.parameters(), q.parameters()):
            assert torch.equal(pk, pq) and not pk.requires_grad
    logits, labels = contrast(m, torch.randn(4, 1, 64, 64), torch.randn(4, 1, 64, 64))
    F.cross_entropy(logits, labels).backward()
    assert all(p.grad is None for p in m.encoder_k.parameters())
    assert all(p.grad is not None for p in m.encoder.parameters())


def test_a_training_step_returns_the_loss_and_acc1_and_the_key_encoder_follows_after_it():
    m = tiny_moco(queue=8, momentum=0.5)
    views = torch.randn(4, 2, 84, 64) * 20 - 40  # two log-CQT crops per item, tiled to 64 × 64
    loss, stats = m((views, torch.arange(4)), torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss) and 0.0 <= stats["acc1"] <= 1.0
    loss.backward()
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(1.0)
    k_before = [p.clone() for p in m.encoder_k.parameters()]
    m.after_step()
    for before, k, q in zip(k_before, m.encoder_k.parameters(), m.encoder.parameters()):
        torch.testing.assert_close(k, 0.5 * before + 0.5 * q)


def test_uniformity_of_known_point_sets():
    e = torch.eye(4) * 3.0  # four orthonormal directions (any length): every pair at squared distance 2
    assert uniformity(e).item() == pytest.approx(-4.0)
    assert uniformity(torch.ones(5, 3)).item() == pytest.approx(0.0)
    two = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])  # antipodes: squared distance 4
    assert uniformity(two).item() == pytest.approx(-8.0)


def test_the_uniformity_weight_adds_the_backbones_uniformity_to_the_loss():
    views = torch.randn(4, 2, 84, 64) * 20 - 40
    plain, with_term = tiny_moco(queue=8), tiny_moco(queue=8)
    with_term.config.moco.uniformity = 0.5
    loss0, stats0 = plain((views, torch.arange(4)), torch.Generator().manual_seed(0))
    loss1, stats1 = with_term((views, torch.arange(4)), torch.Generator().manual_seed(0))
    assert stats0["uniformity"] == pytest.approx(stats1["uniformity"]) and -4.0 < stats0["uniformity"] < 0.0
    assert loss1.item() == pytest.approx(loss0.item() + 0.5 * stats0["uniformity"], abs=1e-5)
    loss1.backward()  # the term reaches the backbone, not through the projection head
    assert all(p.grad is not None for p in with_term.encoder.parameters() if p.requires_grad)


def test_momentum_update_by_hand():
    target, source = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    with torch.no_grad():
        target.weight.copy_(torch.tensor([[1.0, 2.0]]))
        target.bias.fill_(0.5)
        source.weight.copy_(torch.tensor([[3.0, -2.0]]))
        source.bias.fill_(1.5)
    momentum_update(target, source, 0.75)
    torch.testing.assert_close(target.weight, torch.tensor([[0.75 * 1 + 0.25 * 3, 0.75 * 2 + 0.25 * -2]]))
    torch.testing.assert_close(target.bias, torch.tensor([0.75 * 0.5 + 0.25 * 1.5]))


def test_logits_shape_labels_and_temperature():
    q = F.normalize(torch.randn(5, 8), dim=1)
    k = F.normalize(torch.randn(5, 8), dim=1)
    queue = F.normalize(torch.randn(8, 12), dim=0)
    logits, labels = info_nce(q, k, queue, 0.2)
    assert logits.shape == (5, 13) and torch.equal(labels, torch.zeros(5, dtype=torch.long))
    torch.testing.assert_close(logits[:, 0], (q * k).sum(1) / 0.2)
    torch.testing.assert_close(logits[:, 1:], q @ queue / 0.2)


def test_momentum_update_of_a_whole_encoder_equals_the_update_parameter_by_parameter():
    target, source = tiny_moco().encoder_k, tiny_moco().encoder
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p))
    # the loop it replaces, two kernels per parameter
    expected = [t.detach().clone().mul_(0.99).add_(s.detach(), alpha=1 - 0.99)
                for t, s in zip(target.parameters(), source.parameters())]
    momentum_update(target, source, 0.99)
    for got, want in zip(target.parameters(), expected):
        assert torch.equal(got, want)


def test_logits_are_float32_under_bf16_autocast():
    # bf16 logits at τ 0.2 would be 0.04 apart near the positive; the loss must rank in float32
    q = F.normalize(torch.randn(6, 32), dim=1)
    k = F.normalize(torch.randn(6, 32), dim=1)
    queue = F.normalize(torch.randn(32, 64), dim=0)
    reference, _ = info_nce(q, k, queue, 0.2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, _ = info_nce(q.bfloat16(), k, queue, 0.2)
        assert (q @ queue).dtype == torch.bfloat16  # what autocast would have done to the logits
    assert logits.dtype == torch.float32
    torch.testing.assert_close(logits, info_nce(q.bfloat16().float(), k, queue, 0.2)[0], rtol=0, atol=1e-6)
    assert (logits - reference).abs().max() < 0.05  # only q's own bf16 rounding remains


def test_queue_receives_keys_and_pointer_wraps():
    m = tiny_moco(queue=12)
    x = [torch.randn(4, 1, 64, 64) for _ in range(4)]
    for step in range(3):
        contrast(m, x[step], x[step])
        assert int(m.queue_ptr) == (4 * (step + 1)) % 12
    # the newest keys sit where the pointer was: the key encoder's normalised outputs
    keys = m.encode_keys(x[2])
    torch.testing.assert_close(m.queue[:, 8:12], keys.T)
    contrast(m, x[3], x[3])
    assert int(m.queue_ptr) == 4  # wrapped around
    with pytest.raises(ValueError, match="multiple of the global batch 5"):
        m.enqueue(torch.randn(5, 8))


def test_non_finite_keys_are_not_enqueued():
    m = tiny_moco()
    before = m.queue.clone()
    m.enqueue(torch.full((4, 8), float("nan")))
    assert torch.equal(m.queue, before) and int(m.queue_ptr) == 0


def test_projection_head_layers():
    assert len([l for l in projection_head(10, 20, 5, 2) if isinstance(l, torch.nn.Linear)]) == 2
    head = projection_head(10, 20, 5, 3)
    assert [l.out_features for l in head if isinstance(l, torch.nn.Linear)] == [20, 20, 5]


def test_loss_decreases_over_a_few_epochs_of_a_fixed_pool():
    # MoCo on one fixed batch would enqueue each item's own keys as its negatives; cycling
    # through a fixed pool with a queue of two batches keeps the negatives other items.
    m = tiny_moco(queue=16, momentum=0.99)
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3)
    g = torch.Generator().manual_seed(1)
    pool = torch.randn(64, 1, 64, 64, generator=g)
    epoch_losses = []
    for epoch in range(6):
        losses = []
        for batch in pool.split(8):
            logits, labels = contrast(m, batch + 0.3 * torch.randn(batch.shape, generator=g),
                               batch + 0.3 * torch.randn(batch.shape, generator=g))
            loss = F.cross_entropy(logits, labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            m.after_step()  # the key encoder follows
            losses.append(loss.item())
        epoch_losses.append(sum(losses) / len(losses))
    assert epoch_losses[-1] < 0.6 * epoch_losses[0], epoch_losses


def test_keys_of_the_query_track_are_no_negatives():
    m = tiny_moco(queue=8)
    x = torch.randn(4, 1, 64, 64)
    contrast(m, x, x, torch.tensor([0, 1, 2, 3]))  # fills half the queue with tracks 0-3
    assert m.queue_groups.tolist() == [0, 1, 2, 3, -1, -1, -1, -1]
    logits, labels = contrast(m, x, x, torch.tensor([1, 5, 6, 7]))
    masked = torch.isinf(logits[:, 1:])
    assert masked.tolist()[0] == [False, True, False, False, False, False, False, False]
    assert masked[1:].sum() == 0 and torch.isfinite(F.cross_entropy(logits, labels))
    m.config.moco.mask_same_track = False
    assert torch.isfinite(contrast(m, x, x, torch.tensor([1, 5, 6, 7]))[0]).all()


def test_batch_negatives_are_the_other_tracks_keys_of_the_same_step():
    m = tiny_moco(queue=8)
    m.config.moco.batch_negatives = True
    xq, xk, groups = torch.randn(4, 1, 64, 64), torch.randn(4, 1, 64, 64), torch.tensor([3, 5, 3, 7])
    with torch.no_grad():
        q, k = m.project_queries(m.query_features(xq)), m.encode_keys(xk)
        logits, labels = contrast(m, xq, xk, groups)
    assert logits.shape == (4, 1 + 8 + 4) and labels.tolist() == [0] * 4
    batch = logits[:, 9:]
    blocked = groups[:, None] == groups[None, :]  # its own key and its track's other clip
    assert torch.isinf(batch[blocked]).all() and (batch[blocked] < 0).all()
    torch.testing.assert_close(batch[~blocked], (q @ k.T / m.config.moco.temperature)[~blocked])
    assert torch.equal(logits[:, 0], (q * k).sum(1) / m.config.moco.temperature)  # the positive is unchanged


def bn_moco(groups: int = 2) -> MoCo:
    torch.manual_seed(0)
    return MoCo(build_encoder(ModelConfig(name="crnn_small", input_size=32, preprocessor="freq_tile")),
                Config(moco=MocoConfig(dim=8, hidden_dim=16, queue_size=16, bn_groups=groups)))


def test_shuffle_bn_encodes_keys_in_random_sub_batches_and_queries_in_consecutive_ones():
    m, x = bn_moco(), torch.randn(8, 1, 32, 32)
    assert m.shuffle_bn and not tiny_moco().shuffle_bn  # BatchNorm in the CRNN, none in Swin
    torch.manual_seed(5)
    keys = m.encode_keys(x)
    torch.manual_seed(5)
    perm = torch.randperm(8)
    with torch.no_grad():
        for part in perm.chunk(2):  # each key as its own random half of the batch gives it
            assert torch.allclose(keys[part], m._project_k(x[part]), atol=1e-6)
        assert not torch.allclose(keys, m._project_k(x), atol=1e-3)  # the statistics really differ
        queries = m.project_queries(m.query_features(x))
        halves = [m.project_queries(m.encoder(part)) for part in (x[:4], x[4:])]
        assert torch.allclose(queries, torch.cat(halves), atol=1e-6)
    assert not torch.equal(perm.chunk(2)[0].sort().values, torch.arange(4))  # halves differ from the queries'


def _shuffle_worker(rank: int, store: str, results) -> None:
    import torch.distributed as dist

    from s3t.methods.moco import _shuffled_across_ranks

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    torch.manual_seed(rank)  # only rank 0's permutation may count
    x = torch.arange(4.0).reshape(4, 1) + 10 * rank
    batch_of = []
    out = _shuffled_across_ranks(lambda part: (batch_of.append(part.flatten().tolist()), part * 2)[1], x)
    results[rank] = (out.flatten().tolist(), batch_of[0])
    dist.destroy_process_group()


def test_shuffle_across_ranks_returns_each_ranks_own_outputs_in_order(tmp_path):
    import torch.multiprocessing as mp

    results = mp.Manager().dict()
    mp.spawn(_shuffle_worker, args=(str(tmp_path / "store"), results), nprocs=2)
    assert results[0][0] == [0.0, 2.0, 4.0, 6.0] and results[1][0] == [20.0, 22.0, 24.0, 26.0]
    encoded = sorted(results[0][1] + results[1][1])
    assert encoded == [0, 1, 2, 3, 10, 11, 12, 13]  # every item encoded once, by one of the ranks
    assert sorted(results[0][1]) != [0, 1, 2, 3]  # (for this seed) rank 0 encoded items of rank 1
