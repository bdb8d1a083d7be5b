"""S3T: self-supervised music representations (Swin Transformer + MoCo v2 on CQTs).

    import s3t
    encoder = s3t.load_encoder("runs/cpu/last.pt")
    features = s3t.embed(["song.mp3", "other.wav"], encoder)  # (2, D) numpy array
"""
__version__ = "0.1.0"

_API = {"load_encoder": "s3t.encoder", "embed": "s3t.encoder", "random_encoder": "s3t.encoder",
        "load_config": "s3t.config", "load_dataset": "s3t.datasets", "linear_eval": "s3t.evaluate",
        "pretrain": "s3t.train", "open_cache": "s3t.cache", "load_audio": "s3t.audio",
        "train_supervised": "s3t.supervised", "register_method": "s3t.methods", "fit": "s3t.engine",
        "from_pretrained": "s3t.export"}


def __getattr__(name: str):
    """The API functions, imported on first use so that `s3t --help` does not wait for torch.
    (`prepare` is not among them: importing the module `s3t.prepare` makes `s3t.prepare` that
    module; use `from s3t.prepare import prepare`.)"""
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 's3t' has no attribute {name!r}")
