"""Plain ``nn.Module`` networks: the segmentation U-Net (paper Fig. 3) and the 3D CycleGAN G / D.

Tensors are ``(N, C, Z, Y, X)``. Training systems live in :mod:`flarelib.train`.
"""

from flarelib.models.cyclegan import (
    NLayerDiscriminator3D,
    ResnetGenerator3D,
    discriminator_from_params,
    generator_from_params,
    init_weights,
)
from flarelib.models.unet import UNet3D, count_parameters, init_he, required_divisor, unet_from_params

__all__ = [
    "NLayerDiscriminator3D",
    "ResnetGenerator3D",
    "UNet3D",
    "count_parameters",
    "discriminator_from_params",
    "generator_from_params",
    "init_he",
    "init_weights",
    "required_divisor",
    "unet_from_params",
]
