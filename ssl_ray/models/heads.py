"""The projector MLP that maps the backbone's pooled representation to the embedding."""

from __future__ import annotations

from typing import Sequence

from torch import nn


class Projector(nn.Module):
    """``Linear -> [BN] -> ReLU`` for each hidden dim, then a last ``Linear`` (without bias by default).

    ``dims = (in, h1, ..., out)``. This is VICReg's expander when ``dims = (2048, 8192, 8192, 8192)``.
    Taps: ``proj_hidden1`` ... for the hidden activations and ``projector`` for the output.
    """

    def __init__(self, dims: Sequence[int], batch_norm: bool = True, last_bias: bool = False):
        super().__init__()
        if len(dims) < 2 or any(d < 1 for d in dims):
            raise ValueError(f"projector dims must be >= 2 positive ints; got {list(dims)}")
        self.layers = nn.ModuleList()
        for i in range(len(dims) - 2):
            parts: list[nn.Module] = [nn.Linear(dims[i], dims[i + 1], bias=not batch_norm)]
            if batch_norm:
                parts.append(nn.BatchNorm1d(dims[i + 1]))
            parts.append(nn.ReLU(inplace=True))
            self.layers.append(nn.Sequential(*parts))
        self.layers.append(nn.Linear(dims[-2], dims[-1], bias=last_bias))
        self.out_dim = dims[-1]

    @property
    def taps(self) -> list[str]:
        return [f"proj_hidden{i}" for i in range(1, len(self.layers))] + ["projector"]

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x
