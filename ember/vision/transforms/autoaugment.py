"""torchvision.transforms' learned and random augmentation policies (AutoAugment,
RandAugment, TrivialAugmentWide, AugMix) over ember tensors.

Each policy draws its operations with ember's generators (`generator=`, else the global
one: `ember.manual_seed` makes them reproducible, though the draws are not torch's for the
same seed) and applies them with ember.vision.transforms.functional, as torchvision's
`_apply_op` does. `_draw(...)` returns the drawn (op, magnitude) list, so a pipeline's
choices can be inspected or replayed.
"""
from __future__ import annotations

import enum
import math

import ember
from ember import nn

from . import functional as F
from .functional import InterpolationMode

__all__ = ["AutoAugmentPolicy", "AutoAugment", "RandAugment", "TrivialAugmentWide", "AugMix"]


def _apply_op(img, op_name: str, magnitude: float, interpolation, fill):
    if op_name == "ShearX":
        return F.affine(img, 0.0, [0, 0], 1.0, [math.degrees(math.atan(magnitude)), 0.0],
                        interpolation, fill, center=[0, 0])
    if op_name == "ShearY":
        return F.affine(img, 0.0, [0, 0], 1.0, [0.0, math.degrees(math.atan(magnitude))],
                        interpolation, fill, center=[0, 0])
    if op_name == "TranslateX":
        return F.affine(img, 0.0, [int(magnitude), 0], 1.0, [0.0, 0.0], interpolation, fill)
    if op_name == "TranslateY":
        return F.affine(img, 0.0, [0, int(magnitude)], 1.0, [0.0, 0.0], interpolation, fill)
    if op_name == "Rotate":
        return F.rotate(img, magnitude, interpolation, fill=fill)
    adjust = {"Brightness": F.adjust_brightness, "Color": F.adjust_saturation,
              "Contrast": F.adjust_contrast, "Sharpness": F.adjust_sharpness}
    if op_name in adjust:
        return adjust[op_name](img, 1.0 + magnitude)
    if op_name == "Posterize":
        return F.posterize(img, int(magnitude))
    if op_name == "Solarize":
        return F.solarize(img, magnitude)
    plain = {"AutoContrast": F.autocontrast, "Equalize": F.equalize, "Invert": F.invert}
    if op_name in plain:
        return plain[op_name](img)
    if op_name == "Identity":
        return img
    raise ValueError(f"The provided operator {op_name} is not recognized.")


def _linspace(lo, hi, n):
    return [float(v) for v in ember.linspace(lo, hi, n).tolist()]


def _posterize_bits(top, n, spread):
    return [top - int(round(i / ((n - 1) / spread))) for i in range(n)]


def _space(n, shear, translate_hw, rotate, color, posterize, identity=False, invert=False):
    """{op: (magnitudes or None, signed)} in torchvision's order (the order is drawn from)."""
    space = {"Identity": (None, False)} if identity else {}
    space.update({
        "ShearX": (_linspace(0.0, shear, n), True), "ShearY": (_linspace(0.0, shear, n), True),
        "TranslateX": (_linspace(0.0, translate_hw[1], n), True),
        "TranslateY": (_linspace(0.0, translate_hw[0], n), True),
        "Rotate": (_linspace(0.0, rotate, n), True)})
    if color is not None:
        for name in ("Brightness", "Color", "Contrast", "Sharpness"):
            space[name] = (_linspace(0.0, color, n), True)
    space.update({"Posterize": (posterize, False), "Solarize": (_linspace(255.0, 0.0, n), False),
                  "AutoContrast": (None, False), "Equalize": (None, False)})
    if invert:
        space["Invert"] = (None, False)
    return space


def _fill_list(fill, channels):
    if isinstance(fill, (int, float)):
        return [float(fill)] * channels
    return None if fill is None else [float(f) for f in fill]


def _randint(n, generator):
    return int(ember.randint(n, (1,), generator=generator).item())


class AutoAugmentPolicy(enum.Enum):
    IMAGENET = "imagenet"
    CIFAR10 = "cifar10"
    SVHN = "svhn"


_POLICIES = {
    AutoAugmentPolicy.IMAGENET: [
        (("Posterize", 0.4, 8), ("Rotate", 0.6, 9)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None)),
        (("Posterize", 0.6, 7), ("Posterize", 0.6, 6)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Equalize", 0.4, None), ("Rotate", 0.8, 8)),
        (("Solarize", 0.6, 3), ("Equalize", 0.6, None)),
        (("Posterize", 0.8, 5), ("Equalize", 1.0, None)),
        (("Rotate", 0.2, 3), ("Solarize", 0.6, 8)),
        (("Equalize", 0.6, None), ("Posterize", 0.4, 6)),
        (("Rotate", 0.8, 8), ("Color", 0.4, 0)), (("Rotate", 0.4, 9), ("Equalize", 0.6, None)),
        (("Equalize", 0.0, None), ("Equalize", 0.8, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)),
        (("Color", 0.6, 4), ("Contrast", 1.0, 8)), (("Rotate", 0.8, 8), ("Color", 1.0, 2)),
        (("Color", 0.8, 8), ("Solarize", 0.8, 7)), (("Sharpness", 0.4, 7), ("Invert", 0.6, None)),
        (("ShearX", 0.6, 5), ("Equalize", 1.0, None)), (("Color", 0.4, 0), ("Equalize", 0.6, None)),
        (("Equalize", 0.4, None), ("Solarize", 0.2, 4)),
        (("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)),
        (("Invert", 0.6, None), ("Equalize", 1.0, None)), (("Color", 0.6, 4), ("Contrast", 1.0, 8)),
        (("Equalize", 0.8, None), ("Equalize", 0.6, None))],
    AutoAugmentPolicy.CIFAR10: [
        (("Invert", 0.1, None), ("Contrast", 0.2, 6)), (("Rotate", 0.7, 2), ("TranslateX", 0.3, 9)),
        (("Sharpness", 0.8, 1), ("Sharpness", 0.9, 3)),
        (("ShearY", 0.5, 8), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.5, None), ("Equalize", 0.9, None)),
        (("ShearY", 0.2, 7), ("Posterize", 0.3, 7)),
        (("Color", 0.4, 3), ("Brightness", 0.6, 7)),
        (("Sharpness", 0.3, 9), ("Brightness", 0.7, 9)),
        (("Equalize", 0.6, None), ("Equalize", 0.5, None)),
        (("Contrast", 0.6, 7), ("Sharpness", 0.6, 5)),
        (("Color", 0.7, 7), ("TranslateX", 0.5, 8)),
        (("Equalize", 0.3, None), ("AutoContrast", 0.4, None)),
        (("TranslateY", 0.4, 3), ("Sharpness", 0.2, 6)),
        (("Brightness", 0.9, 6), ("Color", 0.2, 8)),
        (("Solarize", 0.5, 2), ("Invert", 0.0, None)),
        (("Equalize", 0.2, None), ("AutoContrast", 0.6, None)),
        (("Equalize", 0.2, None), ("Equalize", 0.6, None)),
        (("Color", 0.9, 9), ("Equalize", 0.6, None)),
        (("AutoContrast", 0.8, None), ("Solarize", 0.2, 8)),
        (("Brightness", 0.1, 3), ("Color", 0.7, 0)),
        (("Solarize", 0.4, 5), ("AutoContrast", 0.9, None)),
        (("TranslateY", 0.9, 9), ("TranslateY", 0.7, 9)),
        (("AutoContrast", 0.9, None), ("Solarize", 0.8, 3)),
        (("Equalize", 0.8, None), ("Invert", 0.1, None)),
        (("TranslateY", 0.7, 9), ("AutoContrast", 0.9, None))],
    AutoAugmentPolicy.SVHN: [
        (("ShearX", 0.9, 4), ("Invert", 0.2, None)), (("ShearY", 0.9, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.6, None), ("Solarize", 0.6, 6)),
        (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("AutoContrast", 0.8, None)),
        (("ShearY", 0.9, 8), ("Invert", 0.4, None)), (("ShearY", 0.9, 5), ("Solarize", 0.2, 6)),
        (("Invert", 0.9, None), ("AutoContrast", 0.8, None)),
        (("Equalize", 0.6, None), ("Rotate", 0.9, 3)),
        (("ShearX", 0.9, 4), ("Solarize", 0.3, 3)), (("ShearY", 0.8, 8), ("Invert", 0.7, None)),
        (("Equalize", 0.9, None), ("TranslateY", 0.6, 6)),
        (("Invert", 0.9, None), ("Equalize", 0.6, None)),
        (("Contrast", 0.3, 3), ("Rotate", 0.8, 4)), (("Invert", 0.8, None), ("TranslateY", 0.0, 2)),
        (("ShearY", 0.7, 6), ("Solarize", 0.4, 8)), (("Invert", 0.6, None), ("Rotate", 0.8, 4)),
        (("ShearY", 0.3, 7), ("TranslateX", 0.9, 3)), (("ShearX", 0.1, 6), ("Invert", 0.6, None)),
        (("Solarize", 0.7, 2), ("TranslateY", 0.6, 7)), (("ShearY", 0.8, 4), ("Invert", 0.8, None)),
        (("ShearX", 0.7, 9), ("TranslateY", 0.8, 3)),
        (("ShearY", 0.8, 5), ("AutoContrast", 0.7, None)),
        (("ShearX", 0.7, 2), ("Invert", 0.1, None))],
}


class _Policy(nn.Module):
    def __init__(self, interpolation, fill, generator):
        super().__init__()
        self.interpolation, self.fill, self.generator = interpolation, fill, generator

    def _run(self, img, ops):
        fill = _fill_list(self.fill, F.get_image_num_channels(img))
        for name, magnitude in ops:
            img = _apply_op(img, name, magnitude, self.interpolation, fill)
        return img

    def forward(self, img):
        _, h, w = F.get_dimensions(img)
        return self._run(img, self._draw(h, w))


class AutoAugment(_Policy):
    """AutoAugment (Cubuk et al. 2019): one of the policy's sub-policies, each of its two
    operations applied with its probability and magnitude (sign drawn)."""

    def __init__(self, policy=AutoAugmentPolicy.IMAGENET,
                 interpolation=InterpolationMode.NEAREST, fill=None, *, generator=None):
        super().__init__(interpolation, fill, generator)
        if policy not in _POLICIES:
            raise ValueError(f"The provided policy {policy} is not recognized.")
        self.policy = policy
        self.policies = _POLICIES[policy]

    def _augmentation_space(self, num_bins, image_size):
        h, w = image_size
        return _space(num_bins, 0.3, (150.0 / 331.0 * h, 150.0 / 331.0 * w), 30.0, 0.9,
                      _posterize_bits(8, num_bins, 4), invert=True)

    def _draw(self, h, w):
        policy_id = _randint(len(self.policies), self.generator)
        probs = ember.rand(2, generator=self.generator).tolist()
        signs = ember.randint(2, (2,), generator=self.generator).tolist()
        space = self._augmentation_space(10, (h, w))
        ops = []
        for i, (name, p, magnitude_id) in enumerate(self.policies[policy_id]):
            if probs[i] <= p:
                magnitudes, signed = space[name]
                magnitude = float(magnitudes[magnitude_id]) if magnitude_id is not None else 0.0
                if signed and signs[i] == 0:
                    magnitude = -magnitude
                ops.append((name, magnitude))
        return ops

    def extra_repr(self):
        return f"policy={self.policy}, fill={self.fill}"


class RandAugment(_Policy):
    """RandAugment (Cubuk et al. 2020): num_ops uniformly drawn operations at one
    magnitude."""

    def __init__(self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31,
                 interpolation=InterpolationMode.NEAREST, fill=None, *, generator=None):
        super().__init__(interpolation, fill, generator)
        self.num_ops, self.magnitude = num_ops, magnitude
        self.num_magnitude_bins = num_magnitude_bins

    def _augmentation_space(self, num_bins, image_size):
        h, w = image_size
        return _space(num_bins, 0.3, (150.0 / 331.0 * h, 150.0 / 331.0 * w), 30.0, 0.9,
                      _posterize_bits(8, num_bins, 4), identity=True)

    def _draw(self, h, w):
        space = self._augmentation_space(self.num_magnitude_bins, (h, w))
        names, ops = list(space), []
        for _ in range(self.num_ops):
            name = names[_randint(len(names), self.generator)]
            magnitudes, signed = space[name]
            magnitude = float(magnitudes[self.magnitude]) if magnitudes is not None else 0.0
            if signed and _randint(2, self.generator):
                magnitude = -magnitude
            ops.append((name, magnitude))
        return ops

    def extra_repr(self):
        return (f"num_ops={self.num_ops}, magnitude={self.magnitude}, num_magnitude_bins="
                f"{self.num_magnitude_bins}, interpolation={self.interpolation}, "
                f"fill={self.fill}")


class TrivialAugmentWide(_Policy):
    """TrivialAugment (Mueller & Hutter 2021): one operation at a uniformly drawn
    magnitude from the wide ranges."""

    def __init__(self, num_magnitude_bins: int = 31, interpolation=InterpolationMode.NEAREST,
                 fill=None, *, generator=None):
        super().__init__(interpolation, fill, generator)
        self.num_magnitude_bins = num_magnitude_bins

    def _augmentation_space(self, num_bins):
        return _space(num_bins, 0.99, (32.0, 32.0), 135.0, 0.99,
                      _posterize_bits(8, num_bins, 6), identity=True)

    def _draw(self, h, w):
        space = self._augmentation_space(self.num_magnitude_bins)
        names = list(space)
        name = names[_randint(len(names), self.generator)]
        magnitudes, signed = space[name]
        magnitude = 0.0
        if magnitudes is not None:
            magnitude = float(magnitudes[_randint(len(magnitudes), self.generator)])
        if signed and _randint(2, self.generator):
            magnitude = -magnitude
        return [(name, magnitude)]

    def extra_repr(self):
        return (f"num_magnitude_bins={self.num_magnitude_bins}, interpolation="
                f"{self.interpolation}, fill={self.fill}")


class AugMix(_Policy):
    """AugMix (Hendrycks et al. 2020): a Dirichlet-weighted mix of `mixture_width` chains of
    1-3 (or chain_depth) operations, blended with the original by a Beta-like weight.
    The operations come from `generator`; the Dirichlet weights from ember's global
    generator (ember.distributions.Dirichlet)."""

    _PARAMETER_MAX = 10

    def __init__(self, severity: int = 3, mixture_width: int = 3, chain_depth: int = -1,
                 alpha: float = 1.0, all_ops: bool = True,
                 interpolation=InterpolationMode.BILINEAR, fill=None, *, generator=None):
        super().__init__(interpolation, fill, generator)
        if not 1 <= severity <= self._PARAMETER_MAX:
            raise ValueError(f"The severity must be between [1, {self._PARAMETER_MAX}]. Got "
                             f"{severity} instead.")
        self.severity, self.mixture_width, self.chain_depth = severity, mixture_width, \
            chain_depth
        self.alpha, self.all_ops = alpha, all_ops

    def _augmentation_space(self, num_bins, image_size):
        h, w = image_size
        return _space(num_bins, 0.3, (h / 3.0, w / 3.0), 30.0, 0.9 if self.all_ops else None,
                      _posterize_bits(4, num_bins, 4))

    def _draw(self, h, w):
        """One chain of (op, magnitude) per mixture member."""
        space = self._augmentation_space(self._PARAMETER_MAX, (h, w))
        names, chains = list(space), []
        for _ in range(self.mixture_width):
            depth = self.chain_depth if self.chain_depth > 0 else \
                int(ember.randint(1, 4, (1,), generator=self.generator).item())
            chain = []
            for _ in range(depth):
                name = names[_randint(len(names), self.generator)]
                magnitudes, signed = space[name]
                magnitude = 0.0
                if magnitudes is not None:
                    magnitude = float(magnitudes[_randint(self.severity, self.generator)])
                if signed and _randint(2, self.generator):
                    magnitude = -magnitude
                chain.append((name, magnitude))
            chains.append(chain)
        return chains

    def _weights(self, n):
        """(m [n, 2], combined [n, width]): the original's share and each chain's."""
        from ember.distributions import Dirichlet
        m = Dirichlet(ember.full([n, 2], float(self.alpha))).sample()
        w = Dirichlet(ember.full([n, self.mixture_width], float(self.alpha))).sample()
        return m, w * m[:, 1:2]

    def forward(self, img):
        _, h, w = F.get_dimensions(img)
        m, combined = self._weights(int(img.shape[0]) if img.ndim == 4 else 1)
        return self.mix(img, m, combined, self._draw(h, w))

    def mix(self, img, m, combined, chains):
        """Blend the image with its augmented chains by the given weights."""
        shape = list(img.shape)
        batch = img.reshape([1] * max(4 - img.ndim, 0) + shape)
        n = int(batch.shape[0])
        view = [n] + [1] * (batch.ndim - 1)
        mix = m[:, 0].reshape(view).to(batch.device) * batch
        for i, chain in enumerate(chains):
            aug = self._run(batch, chain)
            mix = mix + combined[:, i].reshape(view).to(batch.device) * aug
        return mix.reshape(shape).to(img.dtype)

    def extra_repr(self):
        return (f"severity={self.severity}, mixture_width={self.mixture_width}, chain_depth="
                f"{self.chain_depth}, alpha={self.alpha}, all_ops={self.all_ops}, "
                f"interpolation={self.interpolation}, fill={self.fill}")
