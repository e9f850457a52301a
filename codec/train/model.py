"""The convolutional autoencoder: encoder g_a, decoder g_s, and the configuration that sizes them.

    x (N,3,H,W) in [0,1] --g_a--> y (N,C,H/s,W/s) --quantize--> y_hat --g_s--> x_hat (N,3,H,W)

The latent y is the only path from input to output: there is no skip connection from encoder to
decoder, and a configuration whose latent holds as many values as the frame is refused (the
identity trap: such a network can learn to copy its input and its code then compresses nothing).

Both halves start/end with space-to-depth (PixelUnshuffle/PixelShuffle by 4), so every conv runs at
1/4 resolution or less; each further factor of 2 in the stride is a stride-2 conv (encoder) or a
conv + PixelShuffle(2) (decoder), with a residual block at every scale.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from codec.coding.common.runtime import latent_size
from codec.errors import CodecError
from codec.train.options import DECODER_BLOCKS

STEM = 4  # space-to-depth factor of the first (last) layer
RGB = 3


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the autoencoder. ``stride`` is the total downsampling from frame to latent."""

    latent_channels: int = 32
    width: int = 32
    stride: int = 8
    decoder_block: str = "full"

    def __post_init__(self) -> None:
        if self.stride < STEM or self.stride & (self.stride - 1) or self.stride > 64:
            raise CodecError(f"stride must be a power of two from {STEM} to 64, not {self.stride}")
        if self.latent_channels < 1:
            raise CodecError(f"latent channels must be at least 1, not {self.latent_channels}")
        if self.width < 4:
            raise CodecError(f"width must be at least 4, not {self.width}")
        if self.decoder_block not in DECODER_BLOCKS:
            raise CodecError(f"decoder block must be one of {', '.join(DECODER_BLOCKS)}, not {self.decoder_block!r}")
        if self.latent_values_per_pixel >= RGB:
            raise CodecError(
                f"identity trap: {self.latent_channels} latent channels at stride {self.stride} hold "
                f"{self.latent_values_per_pixel:g} values per pixel, as many as the frame's {RGB}; "
                "such an autoencoder can learn to copy its input and its code compresses nothing. "
                f"Use fewer than {RGB * self.stride**2} latent channels or a larger stride"
            )

    @property
    def latent_values_per_pixel(self) -> float:
        return self.latent_channels / self.stride**2

    @property
    def scales(self) -> int:
        """Number of factor-2 resampling stages after the space-to-depth stem."""
        return int(math.log2(self.stride // STEM))

    def latent_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """Latent (C, h, w) for a frame of ``height`` x ``width`` after padding to the stride."""
        return (self.latent_channels, *latent_size(height, width, self.stride))

    def to_dict(self) -> dict[str, int | str]:
        return asdict(self)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class ResBlock(nn.Module):
    """x + conv(relu(conv(x))): a residual block inside one scale (not an encoder-decoder skip)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(channels, channels), nn.ReLU(inplace=True), _conv(channels, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SeparableResBlock(nn.Module):
    """ResBlock with each 3x3 conv split into a depthwise 3x3 and a pointwise 1x1."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(*_separable(channels), nn.ReLU(inplace=True), *_separable(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _separable(channels: int) -> tuple[nn.Conv2d, nn.Conv2d]:
    return nn.Conv2d(channels, channels, 3, padding=1, groups=channels), nn.Conv2d(channels, channels, 1)


def _decoder_block(kind: str, channels: int) -> nn.Module:
    if kind == "full":
        return ResBlock(channels)
    return SeparableResBlock(channels) if kind == "separable" else nn.Identity()


class Encoder(nn.Module):
    """g_a: frames in [0,1] to the unquantized latent y."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        n = cfg.width
        layers: list[nn.Module] = [nn.PixelUnshuffle(STEM), _conv(RGB * STEM**2, n), nn.ReLU(inplace=True), ResBlock(n)]
        for _ in range(cfg.scales):
            layers += [_conv(n, n, stride=2), nn.ReLU(inplace=True), ResBlock(n)]
        layers.append(_conv(n, cfg.latent_channels))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x - 0.5)


class Decoder(nn.Module):
    """g_s: a (quantized) latent to frames; values are clamped to [0,1] outside training."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        n = cfg.width
        block = cfg.decoder_block
        layers: list[nn.Module] = [_conv(cfg.latent_channels, n), nn.ReLU(inplace=True), _decoder_block(block, n)]
        for _ in range(cfg.scales):
            layers += [_conv(n, 4 * n), nn.PixelShuffle(2), nn.ReLU(inplace=True), _decoder_block(block, n)]
        layers += [_conv(n, RGB * STEM**2), nn.PixelShuffle(STEM)]
        self.net = nn.Sequential(*layers)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        x = self.net(y) + 0.5
        return x if self.training else x.clamp(0.0, 1.0)


class AutoEncoder(nn.Module):
    """Encoder and decoder of one configuration; the latent is the only link between them."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def reconstruct(self, x: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
        """The frames the decoder makes of the quantized code ``y_hat``; ``x`` is not used, since
        the code is the only path (codec.inspect.identity_trap has the variant that breaks this rule)."""
        del x
        return self.decoder(y_hat)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def macs_per_pixel(module: nn.Module, cfg: ModelConfig, decoder: bool) -> float:
    """Multiply-accumulates per output (decoder) or input (encoder) pixel, counted over every conv."""
    side = cfg.stride * 4
    total = 0

    def count(conv: nn.Conv2d, _inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = conv.kernel_size
        total += out[0].numel() * (conv.in_channels // conv.groups) * kh * kw

    hooks = [m.register_forward_hook(count) for m in module.modules() if isinstance(m, nn.Conv2d)]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            x = torch.zeros(1, cfg.latent_channels, 4, 4) if decoder else torch.zeros(1, RGB, side, side)
            module(x)
    finally:
        for h in hooks:
            h.remove()
        module.train(was_training)
    return total / side**2
