"""Conv1d/2d/3d, ConvTranspose1d/2d/3d, Unfold, Fold: torch's weight layouts, init and
repr."""
from __future__ import annotations

from ....ir.errors import ShapeError
from .. import functional as F, init
from ._util import checkable, kaiming_init, ntuple, weight_and_bias
from .module import Module


class _ConvNd(Module):
    _dims = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", output_padding=0,
                 device=None, dtype=None) -> None:
        super().__init__()
        n = self._dims
        _check_arguments(in_channels, out_channels, groups, padding, ntuple(stride, n))
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"padding_mode must be one of ['zeros', 'reflect', 'replicate', "
                             f"'circular'], but got padding_mode='{padding_mode}'")
        if padding_mode != "zeros" and self._transposed:
            raise ValueError(f'Only "zeros" padding mode is supported for '
                             f'{type(self).__name__}')
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = ntuple(kernel_size, n)
        self.stride = ntuple(stride, n)
        self.padding = padding if isinstance(padding, str) else ntuple(padding, n)
        self.dilation = ntuple(dilation, n)
        self.transposed = self._transposed
        self.output_padding = ntuple(output_padding, n)
        self.groups = groups
        self.padding_mode = padding_mode
        if self._transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        weight_and_bias(self, shape, out_channels, bias, dtype)

    def reset_parameters(self) -> None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
        kaiming_init(self.weight, self.bias, fan_in, init_empty_fan=False)

    def _padded(self, input):
        """(input, padding) for the convolution: padding_mode 'reflect'/'replicate'/
        'circular' pads the input explicitly (PyTorch's order: last dimension first) and
        convolves without padding; 'zeros' lets the convolution pad."""
        if self.padding_mode == "zeros":
            return input, self.padding
        pads = []
        for i in reversed(range(self._dims)):
            if isinstance(self.padding, str):        # 'same' (or 'valid': nothing)
                total = self.dilation[i] * (self.kernel_size[i] - 1) \
                    if self.padding == "same" else 0
                pads += [total // 2, total - total // 2]
            else:
                pads += [self.padding[i], self.padding[i]]
        return F.pad(input, pads, self.padding_mode), 0

    def _check_input(self, input) -> None:
        n = self._dims
        if checkable(input) and (input.ndim not in (n + 1, n + 2) or
                                                          input.shape[-n - 1] != self.in_channels):
            shape = list(input.shape)
            name = f"conv{'_transpose' if self._transposed else ''}{n}d"
            torch_words = (   # what PyTorch says, which code written for it matches
                f"Expected {n + 1}D (unbatched) or {n + 2}D (batched) input to {name}, but "
                f"got input of size: {shape}" if input.ndim not in (n + 1, n + 2) else
                f"Given groups={self.groups}, weight of size {list(self.weight.shape)}, "
                f"expected input{shape} to have {self.in_channels} channels, but got "
                f"{input.shape[-n - 1]} channels instead")
            raise ShapeError(f"{self!r}: expected input of shape [N, {self.in_channels}, "
                             f"{', '.join('*' * n)}] or [{self.in_channels}, "
                             f"{', '.join('*' * n)}], got {shape} ({torch_words})")

    def extra_repr(self) -> str:
        s = "{in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}"
        if self.padding != (0,) * len(self.kernel_size):
            s += ", padding={padding}"
        if self.dilation != (1,) * len(self.dilation):
            s += ", dilation={dilation}"
        if self.output_padding != (0,) * len(self.output_padding):
            s += ", output_padding={output_padding}"
        if self.groups != 1:
            s += ", groups={groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += ", padding_mode={padding_mode}"
        return s.format(**self.__dict__)


class Conv1d(_ConvNd):
    _dims = 1

    def forward(self, input):
        self._check_input(input)
        return self._conv_forward(input, self.weight, self.bias)

    def _conv_forward(self, input, weight, bias):
        """PyTorch's hook for subclasses that convolve with another weight (weight
        standardization, ...): this layer's padding, stride, dilation and groups."""
        input, padding = self._padded(input)
        return F.conv1d(input, weight, bias, self.stride, padding, self.dilation, self.groups)


class Conv2d(_ConvNd):
    _dims = 2

    def forward(self, input):
        self._check_input(input)
        return self._conv_forward(input, self.weight, self.bias)

    def _conv_forward(self, input, weight, bias):
        """PyTorch's hook for subclasses that convolve with another weight (weight
        standardization, ...): this layer's padding, stride, dilation and groups."""
        input, padding = self._padded(input)
        return F.conv2d(input, weight, bias, self.stride, padding, self.dilation, self.groups)


class Conv3d(_ConvNd):
    _dims = 3

    def forward(self, input):
        self._check_input(input)
        return self._conv_forward(input, self.weight, self.bias)

    def _conv_forward(self, input, weight, bias):
        """PyTorch's hook for subclasses that convolve with another weight (weight
        standardization, ...): this layer's padding, stride, dilation and groups."""
        input, padding = self._padded(input)
        return F.conv3d(input, weight, bias, self.stride, padding, self.dilation, self.groups)


def _check_arguments(in_channels, out_channels, groups, padding, stride) -> None:
    """PyTorch's constructor checks, in its order and words."""
    if groups <= 0:
        raise ValueError("groups must be a positive integer")
    if in_channels % groups != 0:
        raise ValueError("in_channels must be divisible by groups")
    if out_channels % groups != 0:
        raise ValueError("out_channels must be divisible by groups")
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"Invalid padding string {padding!r}, should be one of "
                             "{'valid', 'same'}")
        if padding == "same" and any(s != 1 for s in stride):
            raise ValueError("padding='same' is not supported for strided convolutions")


class _ConvTransposeNd(_ConvNd):
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding, device, dtype)

    def _output_padding(self, input, output_size) -> tuple:
        """output_padding that makes the output `output_size` (PyTorch's rule: it must lie
        between the smallest output and that plus stride - 1)."""
        if output_size is None:
            return self.output_padding
        n = self._dims
        size = list(output_size)[-n:]
        if len(size) != n:
            raise ValueError(f"ConvTranspose{n}D: for {input.ndim}D input, output_size must "
                             f"have {n} or {n + 2} elements (got {len(list(output_size))})")
        pads = []
        for i in range(n):
            smallest = (input.shape[-n + i] - 1) * self.stride[i] - 2 * self.padding[i] + \
                self.dilation[i] * (self.kernel_size[i] - 1) + 1
            largest = smallest + self.stride[i] - 1
            if not smallest <= size[i] <= largest:
                raise ValueError(f"requested an output size of {size}, but valid sizes range "
                                 f"from {smallest} to {largest} (for an input of "
                                 f"{list(input.shape[-n:])})")
            pads.append(size[i] - smallest)
        return tuple(pads)

    def forward(self, input, output_size=None):
        self._check_input(input)
        fn = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}[self._dims]
        return fn(input, self.weight, self.bias, self.stride, self.padding,
                  self._output_padding(input, output_size), self.groups, self.dilation)


class ConvTranspose1d(_ConvTransposeNd):
    _dims = 1


class ConvTranspose2d(_ConvTransposeNd):
    _dims = 2


class ConvTranspose3d(_ConvTransposeNd):
    _dims = 3


class Unfold(Module):
    """Sliding local blocks as columns (F.unfold)."""

    def __init__(self, kernel_size, dilation=1, padding=0, stride=1) -> None:
        super().__init__()
        self.kernel_size, self.dilation = kernel_size, dilation
        self.padding, self.stride = padding, stride

    def forward(self, input):
        return F.unfold(input, self.kernel_size, self.dilation, self.padding, self.stride)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"padding={self.padding}, stride={self.stride}")


class Fold(Module):
    """Columns summed back into an image (F.fold), the adjoint of Unfold."""

    def __init__(self, output_size, kernel_size, dilation=1, padding=0, stride=1) -> None:
        super().__init__()
        self.output_size, self.kernel_size = output_size, kernel_size
        self.dilation, self.padding, self.stride = dilation, padding, stride

    def forward(self, input):
        return F.fold(input, self.output_size, self.kernel_size, self.dilation, self.padding,
                      self.stride)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, kernel_size={self.kernel_size}, "
                f"dilation={self.dilation}, padding={self.padding}, stride={self.stride}")
