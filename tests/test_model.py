"""The autoencoder itself: the bottleneck as the only path, the identity trap, and its size figures."""

from __future__ import annotations

import pytest
import torch

from codec.errors import CodecError
from codec.inspect.identity_trap import SkipAutoEncoder
from codec.train.model import AutoEncoder, ModelConfig, macs_per_pixel, parameter_count
from codec.train.prior import laplace_bits

CFG = ModelConfig(latent_channels=8, width=16, stride=16)


def test_identity_trap_is_refused_with_an_explanation() -> None:
    with pytest.raises(CodecError, match="identity trap") as err:
        ModelConfig(latent_channels=3 * 16 * 16, stride=16)
    assert "compresses nothing" in str(err.value)
    ModelConfig(latent_channels=3 * 16 * 16 - 1, stride=16)  # one value fewer per 16x16 block is allowed


def _decoded_with_a_code(kind: type[AutoEncoder]) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames a and b reconstructed as training and the sweep do, ``model.reconstruct(x, y_hat)``,
    both with a's quantized code: (a's output, b's output)."""
    torch.manual_seed(0)
    model = kind(CFG).eval()
    a, b = torch.rand(2, 1, 3, 64, 64)
    step = 1 / 256  # fine enough that an untrained encoder's small codes of a and b differ
    with torch.no_grad():
        y_a, y_b = (torch.round(model.encoder(x) / step) * step for x in (a, b))
        assert not torch.equal(y_a, y_b)
        return model.reconstruct(a, y_a), model.reconstruct(b, y_a)


def test_the_latent_is_the_only_path_from_input_to_output() -> None:
    """Two different frames given the same code decode identically: nothing bypasses the code."""
    out_a, out_b = _decoded_with_a_code(AutoEncoder)
    assert torch.equal(out_a, out_b)
    # And the code carries the frame: the output's gradient reaches the input through y.
    model = AutoEncoder(CFG)
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    model.reconstruct(x, model.encoder(x)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_the_swap_check_catches_a_skip_connection() -> None:
    """The same check fails on the skip-connected variant, whose output follows its input past the code."""
    out_a, out_b = _decoded_with_a_code(SkipAutoEncoder)
    assert (out_a - out_b).abs().max() > 1e-3


def test_shapes_and_size_figures() -> None:
    cfg = ModelConfig(latent_channels=16, width=32, stride=16)
    model = AutoEncoder(cfg).eval()
    x = torch.rand(2, 3, 48, 80)
    y = model.encoder(x)
    assert y.shape == (2, 16, 3, 5) and cfg.latent_shape(37, 45) == (16, 3, 3)
    assert model.decoder(y).shape == x.shape
    assert parameter_count(model.decoder) == sum(p.numel() for p in model.decoder.parameters())
    # The decoder's last conv alone costs width*48*9 MACs per 1/16 of the pixels.
    assert macs_per_pixel(model.decoder, cfg, decoder=True) > 32 * 48 * 9 / 16
    assert macs_per_pixel(model.encoder, cfg, decoder=False) > 0


def test_laplace_bits_are_a_distribution() -> None:
    """The discretized prior's masses over all integers sum to one, at any scale and step."""
    for scale, step in [(0.05, 1.0), (1.0, 1.0), (7.0, 2.0), (0.5, 0.25)]:
        grid = torch.arange(-400, 401, dtype=torch.float64) * step
        bits = laplace_bits(grid, torch.tensor(0.3), torch.tensor(scale), step)
        assert abs(float(torch.exp2(-bits).sum()) - 1) < 1e-6
