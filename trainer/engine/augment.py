"""Augmentation of whole batches on the training device.

A batch arrives as uint8 N×C×S×S (the dataset at its stored size) and leaves as float N×C×s×s in
[0, 1] at the model's input size: one affine warp per image (crop, zoom, shift, rotation, shear,
stretch, flip) through a single `grid_sample`, then brightness/contrast/gamma jitter, blur,
sensor noise and random erasing, all drawn from a seeded `torch.Generator` so that a resumed run
repeats them exactly. A setting at 0 draws nothing, so adding settings leaves older recipes'
draws (and their resumed runs) as they were. This replaces per-image PIL transforms, which cost
more than the small networks themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augment:
    """`crop` is the side of the output as a fraction of the stored image at zoom 1 (40/48 for a
    40 px crop of a 48 px face); `zoom` > 1 magnifies; `shift` is the largest offset as a
    fraction of the stored side (RandomCrop 44 of 48 = 2/48); `rotate` and `shear` in degrees;
    `stretch` the largest log ratio of width to height (0.15 ≈ ±16 %). `gamma` the largest log
    gamma (pixels ** e^±gamma), `blur` the largest Gaussian σ in output pixels, `noise` the
    largest standard deviation of added Gaussian noise. `*_p` are the probabilities of applying
    each; `erase_area` is the erased fraction of the output."""

    size: int
    crop: float = 1.0
    zoom: tuple[float, float] = (1.0, 1.0)
    shift: float = 0.0
    shift_p: float = 1.0
    rotate: float = 0.0
    rotate_p: float = 1.0
    shear: float = 0.0
    stretch: float = 0.0
    flip: bool = False
    brightness: float = 0.0
    contrast: float = 0.0
    gamma: float = 0.0
    blur: float = 0.0
    blur_p: float = 1.0
    noise: float = 0.0
    erase_p: float = 0.0
    erase_area: tuple[float, float] = (0.02, 0.2)
    autoaugment: bool = False
    lighting: float = 0.0

    def __call__(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        n, dev = images.shape[0], images.device
        if self.autoaugment:
            images = autoaugment(images)
        u = lambda *shape: torch.rand(*shape, generator=gen, device=dev)  # noqa: E731
        zoom = self.zoom[0] + (self.zoom[1] - self.zoom[0]) * u(n)
        angle = torch.deg2rad(self.rotate * (2 * u(n) - 1)) * (u(n) < self.rotate_p)
        offset = self.shift * 2 * (2 * u(n, 2) - 1) * (u(n, 1) < self.shift_p)
        mirror = torch.where(u(n) < 0.5, -1.0, 1.0) if self.flip else torch.ones(n, device=dev)
        skew = None
        if self.shear or self.stretch:
            shear = torch.deg2rad(self.shear * (2 * u(n) - 1))
            skew = (torch.tan(shear), torch.exp(self.stretch * (2 * u(n) - 1)))
        x = warp(images, self.size, self.crop / zoom, angle, offset, mirror, skew)
        if self.brightness or self.contrast:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            c = 1 + self.contrast * (2 * u(n, 1, 1, 1) - 1)
            b = self.brightness * (2 * u(n, 1, 1, 1) - 1)
            x = ((x - mean) * c + mean + b).clamp_(0, 1)
        if self.gamma:
            x = x.pow(torch.exp(self.gamma * (2 * u(n, 1, 1, 1) - 1)))
        if self.blur:
            sigma = self.blur * u(n) * (u(n) < self.blur_p)
            x = gaussian_blur(x, sigma)
        if self.noise:
            std = self.noise * u(n, 1, 1, 1)
            x = (x + std * torch.randn(x.shape, generator=gen, device=dev)).clamp_(0, 1)
        if self.lighting and x.shape[1] == 3:
            x = pca_lighting(x, self.lighting, gen)
        if self.erase_p:
            x = erase(x, self.erase_p, self.erase_area, gen)
        return x


def warp(
    images: torch.Tensor,
    size: int,
    scale: torch.Tensor | float,
    angle: torch.Tensor | float = 0.0,
    offset: torch.Tensor | None = None,
    mirror: torch.Tensor | float = 1.0,
    skew: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Sample a size×size view of each image (uint8, or float in [0, 1]): `scale` is the view's
    side over the image's, `offset` the view centre in normalised coordinates, `skew` (tan of
    the shear angle, the view's width over its height) a shear and stretch applied before the
    rotation. With scale = k/S and no rotation the samples fall exactly on pixel centres, so a
    centred view is an exact centre crop."""
    n, dev = images.shape[0], images.device
    as_batch = lambda v: torch.as_tensor(v, dtype=torch.float32, device=dev).expand(n)  # noqa: E731
    scale, angle, mirror = as_batch(scale), as_batch(angle), as_batch(mirror)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 1] = cos * mirror, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * mirror, cos
    if skew is not None:  # the view's own axes: [[√r, t], [0, 1/√r]] (area kept)
        tan, ratio = skew
        shape = torch.zeros(n, 2, 2, device=dev)
        shape[:, 0, 0], shape[:, 0, 1], shape[:, 1, 1] = ratio.sqrt(), tan, ratio.rsqrt()
        theta[:, :, :2] = theta[:, :, :2] @ shape
    if offset is not None:
        theta[:, :, 2] = offset
    grid = F.affine_grid(theta, [n, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(
        unit_range(images), grid, mode="bilinear", padding_mode="border", align_corners=False
    )


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image with its own Gaussian σ (output pixels; 0 leaves it as it is), one
    separable grouped convolution over the whole batch."""
    n, c, h, w = x.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps / sigma.clamp(min=1e-3).view(n, 1)) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n·c) × taps
    flat = F.pad(x.reshape(1, n * c, h, w), (radius,) * 4, mode="replicate")
    flat = F.conv2d(flat, kernel.view(n * c, 1, 1, -1), groups=n * c)
    flat = F.conv2d(flat, kernel.view(n * c, 1, -1, 1), groups=n * c)
    return flat.view(n, c, h, w)


def unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels → float in [0, 1]; a float batch is taken to be in [0, 1] already (as a
    model package's ensemble graph feeds its members)."""
    return images.float().div(255) if images.dtype == torch.uint8 else images


# principal components of ImageNet RGB pixels (AlexNet's "PCA lighting", as timm/Zen-NAS use)
_EIGVAL = (0.2175, 0.0188, 0.0045)
_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


def pca_lighting(x: torch.Tensor, std: float, gen: torch.Generator) -> torch.Tensor:
    """Shift each RGB image along ImageNet's colour principal components by N(0, std) amounts."""
    alpha = torch.randn(x.shape[0], 3, generator=gen, device=x.device) * std
    eigval = torch.tensor(_EIGVAL, device=x.device)
    eigvec = torch.tensor(_EIGVEC, device=x.device)
    shift = (alpha * eigval) @ eigvec.T  # N×3
    return (x + shift.view(-1, 3, 1, 1)).clamp_(0, 1)


def autoaugment(images: torch.Tensor) -> torch.Tensor:
    """torchvision's AutoAugment (ImageNet policy) drawn per image, as a per-image pipeline
    would; it draws from torch's global RNG, which checkpoints save and restore."""
    from torchvision.transforms import v2

    policy = v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)
    return torch.stack([policy(image) for image in images])


def erase(
    x: torch.Tensor, p: float, area: tuple[float, float], gen: torch.Generator
) -> torch.Tensor:
    """Random erasing: with probability p, a rectangle of `area` (fraction of the image, aspect
    0.3–3.3) is replaced by uniform noise."""
    n, _, h, w = x.shape
    dev = x.device
    u = lambda *shape: torch.rand(*shape, generator=gen, device=dev)  # noqa: E731
    frac = area[0] + (area[1] - area[0]) * u(n)
    aspect = torch.exp(math.log(0.3) + (math.log(3.3) - math.log(0.3)) * u(n))
    eh = (torch.sqrt(frac * aspect) * h).clamp(1, h)
    ew = (torch.sqrt(frac / aspect) * w).clamp(1, w)
    top = u(n) * (h - eh)
    left = u(n) * (w - ew)
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    inside = (
        (rows >= top.view(n, 1, 1))
        & (rows < (top + eh).view(n, 1, 1))
        & (cols >= left.view(n, 1, 1))
        & (cols < (left + ew).view(n, 1, 1))
    )
    mask = (inside & (u(n, 1, 1) < p)).unsqueeze(1)
    return torch.where(mask, u(*x.shape), x)


def center(images: torch.Tensor, size: int, crop: float = 1.0) -> torch.Tensor:
    """The evaluation view: the centred crop (fraction `crop` of the side) resized to `size`."""
    return warp(images, size, crop)


def ten_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The four corner and the centre size×size crops of each image, and their mirror images:
    10×N×C×size×size (crop-major), as TenCrop does."""
    side = images.shape[-1]
    x = unit_range(images)
    m = side - size
    starts = ((0, 0), (0, m), (m, 0), (m, m), (m // 2, m // 2))
    crops = [x[..., r : r + size, c : c + size] for r, c in starts]
    return torch.stack(crops + [c.flip(-1) for c in crops])
