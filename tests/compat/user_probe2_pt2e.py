"""PT2 export quantization as users write it across versions: the pt2e entry points
from torch.ao (older tutorials; ember has them there) or, where torch no longer ships
them (2.13), from torchao: export -> module(), X86InductorQuantizer, prepare_pt2e,
calibrate, convert_pt2e, then torch.compile of the converted model. (pt2e QAT is left
out: torchao's prepare_qat_pt2e alone costs ~20 s of CPU.)

ember's X86InductorQuantizer lowering requantizes the outputs of convs, residual adds
and the last layer, which torchao's leaves float (docs/quantization.md), so the cases
here end in _close: their tensors are compared within two output quantization steps
(0.06) rather than to 1e-4."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

try:
    from torch.ao.quantization.quantize_pt2e import convert_pt2e, prepare_pt2e
    import torch.ao.quantization.quantizer.x86_inductor_quantizer as xiq
except ImportError:
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq


def t(*shape, seed=0, scale=1.0):
    return torch.from_numpy((np.random.default_rng(seed).standard_normal(shape) * scale)
                            .astype(np.float32))


def load_(model, scale=0.3):
    with torch.no_grad():
        for i, (name, p) in enumerate(sorted(model.named_parameters())):
            p.copy_(t(*p.shape, seed=500 + i, scale=scale))
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.from_numpy(np.linspace(0.5, 1.5, b.numel()).astype(np.float32)))
            elif name.endswith("running_mean"):
                b.copy_(torch.from_numpy(np.linspace(-0.2, 0.2, b.numel()).astype(np.float32)))
    return model


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 3 * 3, 4)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)) + x)
        return self.fc(torch.flatten(x, 1))


def _quantizer(**config):
    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config(**config))
    return quantizer


def case_x86_inductor_ptq_and_compile_close():
    model = load_(Net()).eval()
    example = (t(2, 3, 6, 6, seed=1),)
    exported = torch.export.export(model, example).module()
    prepared = prepare_pt2e(exported, _quantizer())
    with torch.no_grad():
        for i in range(3):
            prepared(t(2, 3, 6, 6, seed=10 + i))
    converted = convert_pt2e(prepared)
    x = t(2, 3, 6, 6, seed=20)
    with torch.no_grad():
        out = converted(x)
        compiled = torch.compile(converted)
        out_c = compiled(x)
        ref = model(x)
    return out, (out_c - out).abs().max(), bool((out - ref).abs().max() < 0.2)
