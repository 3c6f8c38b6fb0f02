"""The GPU path of a training step: bf16 autocast, channels-last memory and SyncBatchNorm.

Each is a ``train.*`` setting with ``auto`` meaning "on where it helps":

- ``amp``: bf16 autocast of the forward pass on CUDA (bf16 has fp32's exponent range, so no loss
  scaling is needed, unlike fp16). The objective always runs in fp32 on the fp32 cast of the
  embeddings: MMCR's nuclear norms and ARB's inverse square root need SVD and eigendecompositions,
  which bf16 does not have and which lose the small singular values in it.
- ``channels_last``: NHWC activations, which cuDNN's tensor-core convolutions run without transposes.
- ``sync_batchnorm``: BatchNorm statistics over the global batch under DDP (Ioffe & Szegedy's batch
  statistics, synchronized as in Goyal et al., 2017). torch's ``SyncBatchNorm`` runs only on GPUs.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Optional

import torch


@dataclass(frozen=True)
class Precision:
    amp: Optional[torch.dtype]  # autocast dtype, None: fp32
    channels_last: bool
    sync_batchnorm: bool

    def describe(self) -> str:
        amp = {None: "fp32", torch.bfloat16: "bf16"}.get(self.amp, str(self.amp))
        return (
            f"{amp}{', channels_last' if self.channels_last else ''}{', SyncBatchNorm' if self.sync_batchnorm else ''}"
        )


def resolve(amp: str, channels_last: str, sync_batchnorm: str, device: torch.device, world: int) -> Precision:
    """The settings ``train.amp``/``channels_last``/``sync_batchnorm`` on this device and world size."""
    cuda = torch.device(device).type == "cuda"
    return Precision(
        amp=torch.bfloat16 if amp == "bf16" or (amp == "auto" and cuda) else None,
        channels_last=channels_last == "on" or (channels_last == "auto" and cuda),
        sync_batchnorm=(sync_batchnorm == "on" or (sync_batchnorm == "auto" and cuda)) and world > 1,
    )


def prepare_module(model: torch.nn.Module, p: Precision) -> torch.nn.Module:
    """Apply the module-level settings before the model is wrapped in DDP."""
    if p.sync_batchnorm:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if p.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def prepare_input(x: torch.Tensor, p: Optional[Precision]) -> torch.Tensor:
    """``x`` in channels-last memory when ``p`` asks for it; unchanged when ``p`` is None."""
    return x.contiguous(memory_format=torch.channels_last) if p is not None and p.channels_last and x.dim() == 4 else x


def autocast(device: torch.device, p: Optional[Precision]):
    """Autocast to ``p.amp`` on ``device``; a no-op context when ``p`` is None or fp32."""
    if p is None or p.amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=p.amp)
