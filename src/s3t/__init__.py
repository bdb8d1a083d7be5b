"""S3T: self-supervised music representations (Swin Transformer + MoCo v2 on CQTs)."""
__version__ = "0.1.0"
