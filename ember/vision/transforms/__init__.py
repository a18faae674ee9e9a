"""ember.vision.transforms: torchvision.transforms' names for ember tensors."""
from . import functional  # noqa: F401
from .functional import InterpolationMode  # noqa: F401
from .transforms import (  # noqa: F401
    CenterCrop, ColorJitter, Compose, ConvertImageDtype, GaussianBlur, Grayscale, Lambda,
    Normalize, Pad, PILToTensor, RandomAffine, RandomApply, RandomCrop, RandomErasing,
    RandomGrayscale, RandomHorizontalFlip, RandomResizedCrop, RandomRotation,
    RandomVerticalFlip, Resize, ToPILImage, ToTensor, RandomPosterize, RandomSolarize,
    RandomAdjustSharpness, RandomAutocontrast, RandomEqualize, RandomInvert, RandomChoice,
    RandomOrder, FiveCrop, TenCrop, RandomPerspective, ElasticTransform, LinearTransformation)
from .autoaugment import (AugMix, AutoAugment, AutoAugmentPolicy, RandAugment,  # noqa: F401
                          TrivialAugmentWide)
