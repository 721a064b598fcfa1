"""The model: a standardise → derive-features → MLP network over raw 8x8 digit pixels.

Feature derivation is written once, in torch, and used both by the `features`
stage (to write the feature set) and inside the logged model, so the model that
MLflow serves takes raw pixels and applies exactly the training-time transforms.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from digits.config import DEFAULT_HIDDEN
from digits.schema import IMAGE_SIDE, N_CLASSES, PIXEL_COLUMNS

DERIVED_COLUMNS: list[str] = [
    *(f"row_mean_{i}" for i in range(IMAGE_SIDE)),
    *(f"col_mean_{i}" for i in range(IMAGE_SIDE)),
]
FEATURE_COLUMNS: list[str] = [*PIXEL_COLUMNS, *DERIVED_COLUMNS]


def derive_features(scaled_pixels: torch.Tensor) -> torch.Tensor:
    """Append per-row and per-column ink means (stroke layout) to the scaled pixels."""
    image = scaled_pixels.reshape(scaled_pixels.shape[0], IMAGE_SIDE, IMAGE_SIDE)
    return torch.cat([scaled_pixels, image.mean(dim=2), image.mean(dim=1)], dim=1)


def build_mlp(
    n_features: int = len(FEATURE_COLUMNS),
    hidden: Sequence[int] = DEFAULT_HIDDEN,
    n_classes: int = N_CLASSES,
) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_features
    for size in hidden:
        layers += [nn.Linear(width, size), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, n_classes))
    return nn.Sequential(*layers)


class DigitsClassifier(nn.Module):
    """Raw pixels in, class logits out: what is logged to MLflow and served."""

    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, mean: Sequence[float], scale: Sequence[float], mlp: nn.Module) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
        self.mlp = mlp

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        scaled = (pixels - self.mean) / self.scale
        logits: torch.Tensor = self.mlp(derive_features(scaled))
        return logits
