"""PyTorch's quantization tutorials, written against plain PyTorch.

Each `case_*` follows one tutorial: "(beta) Dynamic Quantization on an LSTM Word
Language Model", the dynamic quantization recipe, "(beta) Static Quantization with
Eager Mode" (MobileNetV2-style: fuse_model, QuantStub/DeQuantStub, FloatFunctional,
per-tensor and per-channel qconfigs, QAT with observer/BN freezing), "(prototype) FX
Graph Mode Post Training Static Quantization", "(prototype) FX Graph Mode Post Training
Dynamic Quantization" (BERT-style embedding + linear), "Quantized Transfer Learning"
(a frozen quantized feature extractor under a new float head, and its QAT fine-tuning)
Results are outputs (`approx_*`: int8 numbers, compared to a few quantization
steps), module reprs and state_dict keys.
"""
import copy
import os
import tempfile

import numpy as np
import torch
import torch.ao.quantization
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import (DeQuantStub, QConfigMapping, QuantStub,
                                   default_dynamic_qconfig,
                                   float_qparams_weight_only_qconfig,
                                   get_default_qat_qconfig_mapping,
                                   get_default_qconfig_mapping)
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx, prepare_qat_fx

torch.backends.quantized.engine = "x86"


def data(*shape, seed=1):
    return torch.tensor(np.random.default_rng(seed).standard_normal(shape), dtype=torch.float32)


def seeded(model, scale=0.3):
    rng = np.random.default_rng(0)
    with torch.no_grad():
        for _, p in model.named_parameters():
            p.copy_(torch.tensor(rng.standard_normal(tuple(p.shape)) * scale, dtype=p.dtype))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.tensor(rng.standard_normal(tuple(b.shape)) * 0.1, dtype=b.dtype))
            elif name.endswith("running_var"):
                b.copy_(torch.tensor(rng.uniform(0.5, 1.5, tuple(b.shape)), dtype=b.dtype))
    return model


def numpy(t):
    if t.is_quantized:
        t = t.dequantize()
    return t.detach().numpy()


def module_types(model):
    # torch keeps a quantized Linear's / Embedding's packed weight in a submodule
    # (`_packed_params`); where a library packs its weights is its own business
    return [(name, type(m).__name__) for name, m in model.named_modules()
            if name and not type(m).__name__.endswith("PackedParams")]


def type_names(model):
    return sorted({name for _, name in module_types(model)} | {type(model).__name__})


# --- "(beta) Dynamic Quantization on an LSTM Word Language Model" --------------------------

class LSTMModel(nn.Module):
    """Container module with an encoder, a recurrent module, and a decoder."""

    def __init__(self, ntoken, ninp, nhid, nlayers, dropout=0.5):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.init_weights()
        self.nhid = nhid
        self.nlayers = nlayers

    def init_weights(self):
        initrange = 0.1
        self.encoder.weight.data.uniform_(-initrange, initrange)
        self.decoder.bias.data.zero_()
        self.decoder.weight.data.uniform_(-initrange, initrange)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output)
        return decoded, hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid),
                weight.new_zeros(self.nlayers, bsz, self.nhid))


def case_dynamic_quant_lstm_word_language_model():
    """dynamic_quantization_tutorial: quantize_dynamic({nn.LSTM, nn.Linear}, qint8),
    print(quantized_model), evaluate against the float model."""
    ntokens = 50
    model = seeded(LSTMModel(ntoken=ntokens, ninp=16, nhid=32, nlayers=2), scale=0.2)
    model.eval()
    quantized_model = torch.quantization.quantize_dynamic(
        model, {nn.LSTM, nn.Linear}, dtype=torch.qint8)
    tokens = torch.tensor(np.random.default_rng(3).integers(0, ntokens, (7, 2)))
    hidden = model.init_hidden(2)
    with torch.no_grad():
        out_f, _ = model(tokens, hidden)
        out_q, (h_q, c_q) = quantized_model(tokens, hidden)
    loss_f = F.cross_entropy(out_f.view(-1, ntokens), tokens.view(-1))
    loss_q = F.cross_entropy(out_q.view(-1, ntokens), tokens.view(-1))
    return {"repr": repr(quantized_model), "types": module_types(quantized_model),
            "close_to_float": bool(torch.allclose(out_q, out_f, atol=0.05)),
            "loss_gap_small": bool(abs(float(loss_q) - float(loss_f)) < 0.02),
            "hidden_shapes": [tuple(h_q.shape), tuple(c_q.shape)],
            "state_keys": sorted(quantized_model.state_dict())}


def case_dynamic_quant_recipe_linear():
    """recipes/recipes/dynamic_quantization: a Linear model, quantize_dynamic, same outputs
    to a quantization step, packed weights in the state_dict."""
    model = seeded(nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))).eval()
    qmodel = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    x = data(5, 16)
    with torch.no_grad():
        out = qmodel(x)
    return {"approx_out": numpy(out), "repr": repr(qmodel),
            "close": bool(torch.allclose(out, model(x), atol=0.05)),
            "weight_dtype": str(qmodel[0].weight().dtype),
            "weight_scale": float(qmodel[0].weight().q_scale())}


# --- "(beta) Static Quantization with Eager Mode" (MobileNetV2-style) ----------------------

def _make_divisible(v, divisor, min_value=None):
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNReLU(nn.Sequential):
    def __init__(self, in_planes, out_planes, kernel_size=3, stride=1, groups=1):
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_planes, out_planes, kernel_size, stride, padding, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_planes, momentum=0.1),
            nn.ReLU(inplace=False))


class InvertedResidual(nn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        self.stride = stride
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = self.stride == 1 and inp == oup
        layers = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU(inp, hidden_dim, kernel_size=1))
        layers.extend([
            ConvBNReLU(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim),
            nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
            nn.BatchNorm2d(oup, momentum=0.1),
        ])
        self.conv = nn.Sequential(*layers)
        self.skip_add = nn.quantized.FloatFunctional()

    def forward(self, x):
        if self.use_res_connect:
            return self.skip_add.add(x, self.conv(x))
        return self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes=10, width_mult=1.0, round_nearest=8):
        super().__init__()
        input_channel = 8
        last_channel = 32
        inverted_residual_setting = [
            # t, c, n, s
            [1, 8, 1, 1],
            [2, 16, 2, 2],
        ]
        input_channel = _make_divisible(input_channel * width_mult, round_nearest)
        self.last_channel = _make_divisible(last_channel * max(1.0, width_mult), round_nearest)
        features = [ConvBNReLU(3, input_channel, stride=2)]
        for t, c, n, s in inverted_residual_setting:
            output_channel = _make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                stride = s if i == 0 else 1
                features.append(InvertedResidual(input_channel, output_channel, stride,
                                                 expand_ratio=t))
                input_channel = output_channel
        features.append(ConvBNReLU(input_channel, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.quant = QuantStub()
        self.dequant = DeQuantStub()
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(self.last_channel, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.quant(x)
        x = self.features(x)
        x = x.mean([2, 3])
        x = self.classifier(x)
        x = self.dequant(x)
        return x

    def fuse_model(self, is_qat=False):
        fuse_modules = torch.ao.quantization.fuse_modules_qat if is_qat else \
            torch.ao.quantization.fuse_modules
        for m in self.modules():
            if type(m) is ConvBNReLU:
                fuse_modules(m, ["0", "1", "2"], inplace=True)
            if type(m) is InvertedResidual:
                for idx in range(len(m.conv)):
                    if type(m.conv[idx]) is nn.Conv2d:
                        fuse_modules(m.conv, [str(idx), str(idx + 1)], inplace=True)


def _calibration_batches():
    return [data(4, 3, 16, 16, seed=20 + i) for i in range(3)]


def _static_quantize(qconfig):
    float_model = seeded(MobileNetV2(), scale=0.4)
    float_model.eval()
    myModel = copy.deepcopy(float_model)
    myModel.fuse_model()
    fused_types = module_types(myModel.features[1].conv)
    myModel.qconfig = qconfig
    torch.ao.quantization.prepare(myModel, inplace=True)
    observer_repr = repr(myModel.features[1].conv)
    with torch.no_grad():
        for batch in _calibration_batches():
            myModel(batch)
    torch.ao.quantization.convert(myModel, inplace=True)
    x = data(2, 3, 16, 16, seed=40)
    with torch.no_grad():
        out, ref = myModel(x), float_model(x)
    return {"fused_types": fused_types, "observers": observer_repr,
            "converted_repr": repr(myModel.features[1].conv),
            "types": module_types(myModel),
            "approx_out": numpy(out), "near_float": bool(torch.allclose(out, ref, atol=0.1)),
            "scale": float(myModel.features[0][0].scale),
            "zero_point": int(myModel.features[0][0].zero_point)}


def case_eager_static_quantization_per_tensor():
    """static_quantization_tutorial: fuse_model, default_qconfig, prepare, calibrate,
    convert; the observer and quantized module reprs, outputs near float."""
    return _static_quantize(torch.ao.quantization.default_qconfig)


def case_eager_static_quantization_per_channel():
    """static_quantization_tutorial: per-channel quantization, get_default_qconfig('x86')."""
    return _static_quantize(torch.ao.quantization.get_default_qconfig("x86"))


def case_eager_quantization_aware_training():
    """static_quantization_tutorial "Quantization-aware training": fuse_model(is_qat=True),
    get_default_qat_qconfig, prepare_qat, train, disable_observer, freeze_bn_stats,
    convert in eval."""
    qat_model = seeded(MobileNetV2(), scale=0.4)
    qat_model.fuse_model(is_qat=True)
    optimizer = torch.optim.SGD(qat_model.parameters(), lr=0.0001)
    qat_model.qconfig = torch.ao.quantization.get_default_qat_qconfig("x86")
    torch.ao.quantization.prepare_qat(qat_model, inplace=True)
    prepared_types = module_types(qat_model.features[1].conv)
    criterion = nn.CrossEntropyLoss()
    losses = []
    for nepoch in range(3):
        qat_model.train()
        qat_model.classifier[0].eval()   # dropout off: each library draws its own masks
        inp = data(4, 3, 16, 16, seed=50 + nepoch)
        target = torch.tensor([1, 2, 3, nepoch])
        loss = criterion(qat_model(inp), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
        if nepoch > 0:
            qat_model.apply(torch.ao.quantization.disable_observer)
        if nepoch > 1:
            qat_model.apply(torch.nn.intrinsic.qat.freeze_bn_stats)
    quantized_model = torch.ao.quantization.convert(qat_model.eval(), inplace=False)
    x = data(2, 3, 16, 16, seed=60)
    with torch.no_grad():
        fake_quant_out = qat_model(x)
        quant_out = quantized_model(x)
    return {"prepared_types": prepared_types, "approx_losses": np.array(losses),
            "types": module_types(quantized_model),
            "approx_quantized": numpy(quant_out), "approx_fake_quant": numpy(fake_quant_out)}


# --- "(prototype) FX Graph Mode Post Training Static Quantization" ---------------------------

class SmallResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)) + x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def case_fx_graph_mode_ptq_static():
    """fx_graph_mode_ptq_static: get_default_qconfig_mapping("x86"), prepare_fx,
    calibrate, convert_fx; printed model, output near float."""
    float_model = seeded(SmallResNet(), scale=0.4).eval()
    model_to_quantize = copy.deepcopy(float_model)
    model_to_quantize.eval()
    qconfig_mapping = get_default_qconfig_mapping("x86")
    example_inputs = (data(1, 3, 16, 16),)
    prepared_model = prepare_fx(model_to_quantize, qconfig_mapping, example_inputs)
    with torch.no_grad():
        for batch in _calibration_batches():
            prepared_model(batch)
    quantized_model = convert_fx(prepared_model)
    x = data(2, 3, 16, 16, seed=41)
    with torch.no_grad():
        out, ref = quantized_model(x), float_model(x)
    return {"approx_out": numpy(out),
            "near_float": bool(torch.allclose(out, ref, atol=0.1)),
            "module_types": type_names(quantized_model),
            "observers": sorted({type(m).__name__ for m in prepared_model.modules()
                                 if "Observer" in type(m).__name__})}


def case_fx_graph_mode_ptq_custom_qconfig_mapping():
    """fx_graph_mode_ptq_static "Quantization Configuration": QConfigMapping().set_global,
    set_object_type and set_module_name (fc left in float)."""
    float_model = seeded(SmallResNet(), scale=0.4).eval()
    qconfig = torch.ao.quantization.get_default_qconfig("x86")
    qconfig_mapping = (QConfigMapping().set_global(qconfig)
                       .set_object_type(nn.AdaptiveAvgPool2d, qconfig)
                       .set_module_name("fc", None))
    prepared = prepare_fx(copy.deepcopy(float_model), qconfig_mapping, (data(1, 3, 16, 16),))
    with torch.no_grad():
        for batch in _calibration_batches():
            prepared(batch)
    quantized_model = convert_fx(prepared)
    x = data(2, 3, 16, 16, seed=42)
    with torch.no_grad():
        out = quantized_model(x)
    return {"approx_out": numpy(out),
            "fc_type": type(quantized_model.fc).__name__,
            "near_float": bool(torch.allclose(out, float_model(x), atol=0.1))}


# --- "(prototype) FX Graph Mode Post Training Dynamic Quantization" (BERT) --------------------

class TinyBert(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = nn.Embedding(30, 16)
        self.query = nn.Linear(16, 16)
        self.key = nn.Linear(16, 16)
        self.out = nn.Linear(16, 3)

    def forward(self, input_ids):
        h = self.embeddings(input_ids)
        scores = torch.softmax(self.query(h) @ self.key(h).transpose(-1, -2) / 4.0, dim=-1)
        return self.out((scores @ h).mean(dim=1))


def case_fx_graph_mode_ptq_dynamic_bert():
    """fx_graph_mode_ptq_dynamic: Embedding with float_qparams_weight_only_qconfig,
    Linear with default_dynamic_qconfig, prepare_fx / convert_fx, no calibration."""
    model = seeded(TinyBert()).eval()
    qconfig_mapping = (QConfigMapping()
                       .set_object_type(nn.Embedding, float_qparams_weight_only_qconfig)
                       .set_object_type(nn.Linear, default_dynamic_qconfig))
    input_ids = torch.tensor(np.random.default_rng(4).integers(0, 30, (2, 6)))
    prepared = prepare_fx(model, qconfig_mapping, (input_ids,))
    quantized_model = convert_fx(prepared)
    with torch.no_grad():
        out = quantized_model(input_ids)
    return {"approx_out": numpy(out),
            "near_float": bool(torch.allclose(out, model(input_ids), atol=0.05)),
            "module_types": type_names(quantized_model)}


# --- "Quantized Transfer Learning" ------------------------------------------------------------

class FeatureExtractor(nn.Module):
    """Stands for torchvision.models.quantization.resnet18's body (quantizable layers)."""

    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        x = self.avgpool(self.relu(self.bn1(self.conv1(x))))
        return self.dequant(x)

    def fuse_model(self, is_qat=False):
        fuse = torch.ao.quantization.fuse_modules_qat if is_qat else \
            torch.ao.quantization.fuse_modules
        fuse(self, ["conv1", "bn1", "relu"], inplace=True)


def create_combined_model(model_fe):
    num_ftrs = 8
    new_head = nn.Sequential(nn.Dropout(p=0.5), nn.Linear(num_ftrs, 2))
    return nn.Sequential(model_fe, nn.Flatten(1), new_head)


def case_quantized_transfer_learning_frozen_extractor():
    """quantized_transfer_learning_tutorial Part 1: a quantized feature extractor, frozen,
    under a new float head trained a few steps."""
    fe = seeded(FeatureExtractor(), scale=0.4).eval()
    fe.fuse_model()
    fe.qconfig = torch.ao.quantization.get_default_qconfig("x86")
    torch.ao.quantization.prepare(fe, inplace=True)
    with torch.no_grad():
        for batch in _calibration_batches():
            fe(batch)
    torch.ao.quantization.convert(fe, inplace=True)
    new_model = create_combined_model(fe)
    with torch.no_grad():
        new_model[2][1].weight.copy_(data(2, 8, seed=70) * 0.3)
        new_model[2][1].bias.zero_()
    criterion = nn.CrossEntropyLoss()
    optimizer_ft = torch.optim.SGD(new_model.parameters(), lr=0.01, momentum=0.9)
    new_model.train()
    losses = []
    for step in range(3):
        inputs = data(4, 3, 16, 16, seed=80 + step)
        labels = torch.tensor([0, 1, step % 2, 1])
        optimizer_ft.zero_grad()
        new_model[2][0].eval()      # dropout off: both libraries' masks are their own
        loss = criterion(new_model(inputs), labels)
        loss.backward()
        optimizer_ft.step()
        losses.append(float(loss))
    return {"approx_losses": np.array(losses),
            "trainable": sorted(n for n, p in new_model.named_parameters() if p.requires_grad),
            "approx_head_weight": numpy(new_model[2][1].weight)}


def case_quantized_transfer_learning_qat_finetune():
    """quantized_transfer_learning_tutorial Part 2: fuse_model(is_qat=True), the combined
    model's qconfig from get_default_qat_qconfig, prepare_qat, fine-tune, convert."""
    fe = seeded(FeatureExtractor(), scale=0.4)
    fe.train()
    fe.fuse_model(is_qat=True)
    model_ft = create_combined_model(fe)
    model_ft[0].qconfig = torch.ao.quantization.default_qat_qconfig
    model_ft = torch.ao.quantization.prepare_qat(model_ft, inplace=True)
    for param in model_ft.parameters():
        param.requires_grad = True
    optimizer_ft = torch.optim.SGD(model_ft.parameters(), lr=1e-3)
    for step in range(2):
        model_ft[2][0].eval()
        loss = F.cross_entropy(model_ft(data(4, 3, 16, 16, seed=90 + step)),
                               torch.tensor([0, 1, 1, 0]))
        optimizer_ft.zero_grad()
        loss.backward()
        optimizer_ft.step()
    model_ft.eval()
    model_quantized_and_trained = torch.ao.quantization.convert(model_ft, inplace=False)
    x = data(2, 3, 16, 16, seed=99)
    with torch.no_grad():
        out = model_quantized_and_trained(x)
        fake = model_ft(x)
    return {"types": module_types(model_quantized_and_trained),
            "matches_fake_quant": bool(torch.allclose(out, fake, atol=0.05))}


# --- FX graph mode quantization user guide: quantization-aware training ------------------------

def case_fx_graph_mode_qat():
    """FX graph mode quantization: get_default_qat_qconfig_mapping("x86"), prepare_qat_fx
    on a training model, a few steps, convert_fx in eval."""
    model = seeded(SmallResNet(), scale=0.4).train()
    qconfig_mapping = get_default_qat_qconfig_mapping("x86")
    example_inputs = (data(2, 3, 16, 16),)
    prepared = prepare_qat_fx(model, qconfig_mapping, example_inputs)
    optimizer = torch.optim.SGD(prepared.parameters(), lr=0.001)
    losses = []
    for step in range(3):
        loss = F.cross_entropy(prepared(data(4, 3, 16, 16, seed=100 + step)),
                               torch.tensor([0, 1, 2, 3]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    prepared.eval()
    quantized = convert_fx(prepared)
    x = data(2, 3, 16, 16, seed=110)
    with torch.no_grad():
        out, fake = quantized(x), prepared(x)
    return {"approx_losses": np.array(losses), "approx_out": numpy(out),
            "approx_fake": numpy(fake), "module_types": type_names(quantized)}


# --- "(beta) Dynamic Quantization on BERT": model size and outputs ------------------------------

def print_size_of_model(model):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "temp.p")
        torch.save(model.state_dict(), path)
        return os.path.getsize(path)


class TinyClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = nn.Embedding(40, 64)
        self.encoder = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 64))
        self.classifier = nn.Linear(64, 2)

    def forward(self, input_ids):
        return self.classifier(self.encoder(self.embeddings(input_ids)).mean(dim=1))


def case_dynamic_quant_bert_size_and_outputs():
    """dynamic_quantization_bert_tutorial: quantize_dynamic({torch.nn.Linear}, qint8),
    the saved state_dict shrinks, predictions stay the float model's."""
    model = seeded(TinyClassifier(), scale=0.1).eval()
    quantized_model = torch.quantization.quantize_dynamic(model, {torch.nn.Linear},
                                                          dtype=torch.qint8)
    ids = torch.tensor(np.random.default_rng(5).integers(0, 40, (4, 7)))
    with torch.no_grad():
        out_f, out_q = model(ids), quantized_model(ids)
    float_size, quant_size = print_size_of_model(model), print_size_of_model(quantized_model)
    return {"approx_out": numpy(out_q), "same_argmax": bool((out_f.argmax(1) ==
                                                           out_q.argmax(1)).all()),
            "shrinks_below_half": quant_size < float_size / 2,
            "repr": repr(quantized_model)}
