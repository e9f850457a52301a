"""aecodec: a learned per-video codec built on a convolutional autoencoder."""

__version__ = "0.1.0"
