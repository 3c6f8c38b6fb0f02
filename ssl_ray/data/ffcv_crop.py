"""A seeded version of FFCV's random-resized-crop decoder (its own draws from per-thread RNGs)."""

from __future__ import annotations

from typing import Callable, Tuple

import numpy as np
from ffcv.fields.rgb_image import IMAGE_MODES, ResizedCropRGBImageDecoder
from ffcv.libffcv import imdecode, resize_crop
from ffcv.pipeline.compiler import Compiler
from numba import njit

from ssl_ray.data.ffcv_seeding import EpochCell, draw_crop_uniforms, seed_batch, seed_key  # noqa: F401

# ------------------------------------------------------------------------------------------------
# Decoder: random resized crop with the crops drawn in the calling thread


@njit(cache=True)
def crop_box(height, width, scale, ratio, u):
    """torchvision's RandomResizedCrop.get_params on pre-drawn uniforms ``u`` (tries, 4)."""
    area = height * width
    lo, hi = np.log(ratio[0]), np.log(ratio[1])
    for t in range(u.shape[0]):
        target = area * (scale[0] + (scale[1] - scale[0]) * u[t, 0])
        aspect = np.exp(lo + (hi - lo) * u[t, 1])
        w = int(round(np.sqrt(target * aspect)))
        h = int(round(np.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            i = int(u[t, 2] * (height - h + 1))
            j = int(u[t, 3] * (width - w + 1))
            return i, j, h, w
    return 0, 0, height, width


class SeededRandomResizedCrop(ResizedCropRGBImageDecoder):
    """Decode + random resized crop + resize, like FFCV's ``RandomResizedCropRGBImageDecoder``,
    with reproducible crops (see the module docstring). Seeds the batch for the ops after it."""

    def __init__(self, output_size: Tuple[int, int], scale, ratio, cell: EpochCell, salt: int) -> None:
        super().__init__(output_size)
        self.scale, self.ratio = np.array(scale, dtype=np.float64), np.array(ratio, dtype=np.float64)
        self.cell, self.salt = cell, int(salt)

    @property
    def get_crop_generator(self):  # required by the abstract base; crops come from crop_box
        return crop_box

    def generate_code(self) -> Callable:
        jpg = IMAGE_MODES["jpg"]
        mem_read = self.memory_read
        my_range = Compiler.get_iterator()
        imdecode_c = Compiler.compile(imdecode)
        resize_crop_c = Compiler.compile(resize_crop)
        scale, ratio, key = self.scale, self.ratio, seed_key(self.cell, self.salt)

        def decode(batch_indices, my_storage, metadata, storage_state):
            destination, temp_storage = my_storage
            seed_batch(key[0], key[1], batch_indices)
            u = draw_crop_uniforms(len(batch_indices))
            for dst_ix in my_range(len(batch_indices)):
                field = metadata[batch_indices[dst_ix]]
                image_data = mem_read(field["data_ptr"], storage_state)
                height, width = np.uint32(field["height"]), np.uint32(field["width"])
                if field["mode"] == jpg:
                    temp_buffer = temp_storage[dst_ix]
                    imdecode_c(image_data, temp_buffer, height, width, height, width, 0, 0, 1, 1, False, False)
                    temp_buffer = temp_buffer.reshape(-1)[: 3 * height * width].reshape(height, width, 3)
                else:
                    temp_buffer = image_data.reshape(height, width, 3)
                i, j, h, w = crop_box(int(height), int(width), scale, ratio, u[dst_ix])
                resize_crop_c(temp_buffer, i, i + h, j, j + w, destination[dst_ix])
            return destination[: len(batch_indices)]

        decode.is_parallel = True
        return decode
