"""S3T: self-supervised music representations (Swin Transformer + MoCo v2 on CQTs).

    import s3t
    encoder = s3t.load_encoder("runs/cpu/last.pt")
    features = s3t.embed(["song.mp3", "other.wav"], encoder)  # (2, D) numpy array
"""
from s3t.version import __version__

# The public API: each name, and the module (the layer) it lives in. Imported on first use, so
# that `import s3t` does not wait for torch, timm and scikit-learn.
_API = {"load_encoder": "s3t.inference.load", "from_pretrained": "s3t.inference.load",
        "random_encoder": "s3t.inference.encoders", "embed": "s3t.inference.features",
        "load_config": "s3t.config.loading", "load_dataset": "s3t.data.datasets", "open_cache": "s3t.data.cache",
        "load_audio": "s3t.audio.decode", "linear_eval": "s3t.eval.linear_eval", "pretrain": "s3t.workflows.pretrain",
        "train_supervised": "s3t.workflows.supervised", "register_method": "s3t.methods.registry",
        "register_encoder": "s3t.models.backbones", "fit": "s3t.training.engine"}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 's3t' has no attribute {name!r}")
