"""S3T: self-supervised music representations (Swin Transformer + MoCo v2 on CQTs).

    import s3t
    encoder = s3t.load_encoder("runs/cpu/last.pt")
    features = s3t.embed(["song.mp3", "other.wav"], encoder)  # (2, D) numpy array

The functions below are the public API; each lives in the layer its path names (`s3t.inference.load`, …).
"""

from s3t.audio.decode import load_audio
from s3t.config.loading import load_config
from s3t.data.cache import open_cache
from s3t.data.datasets import load_dataset
from s3t.eval.linear_eval import linear_eval
from s3t.inference.encoders import random_encoder
from s3t.inference.features import embed
from s3t.inference.load import from_pretrained, load_encoder
from s3t.methods.registry import register_method
from s3t.models.backbones import register_encoder
from s3t.training.engine import fit
from s3t.version import __version__
from s3t.workflows.pretrain import pretrain
from s3t.workflows.supervised import train_supervised

__all__ = ["embed", "fit", "from_pretrained", "linear_eval", "load_audio", "load_config", "load_dataset",
           "load_encoder", "open_cache", "pretrain", "random_encoder", "register_encoder", "register_method",
           "train_supervised", "__version__"]
