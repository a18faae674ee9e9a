"""torchvision's and torchaudio's model code runs on ember by changing imports only
(issue 17's "model code from the ecosystem").

Each architecture is built twice from the installed package's own source: once against
torch (the oracle), once with `torch` aliased to `ember` (torchvision_port). Random
weights are varied where they are constant (fresh BatchNorm statistics, zero-initialized
gammas), copied by state_dict key, and the eval-mode outputs of eager ember and of
`ember.compile` must match torch's. A few models also compare a backward pass.
Skips, saying why, where torchvision/torchaudio are not installed.
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402
from porting import copy_state_dict  # noqa: E402
from torchvision_port import reference_and_port  # noqa: E402

slow = pytest.mark.slow


def _packages(name):
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed (pip install --no-deps {name})")
    return reference_and_port(name)


def _vary_constant_tensors(model) -> None:
    """Every floating parameter/buffer whose elements are all equal gets random values
    around that constant, so no branch is zeroed out and BatchNorm is not the identity."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if value.is_floating_point() and value.numel() and \
                    bool((value == value.reshape(-1)[0]).all()):
                varied = value + 0.2 * torch.randn(value.shape, generator=generator)
                value.copy_(varied.abs() + 0.5 if key.endswith("running_var") else varied)


def _pair(package: str, build):
    reference_package, ported_package = _packages(package)
    torch.manual_seed(0)
    reference = build(reference_package.models).eval()
    _vary_constant_tensors(reference)
    port = build(ported_package.models).eval()
    copy_state_dict(reference, port)
    return reference, port


def _first(output):
    return output[0] if isinstance(output, (tuple, list)) else output


def _check_forward(reference, port, inputs, compile_too=True):
    with torch.no_grad():
        expected = _first(reference(*[torch.from_numpy(x) for x in inputs])).numpy()
    assert np.abs(expected).max() > 1e-2, "degenerate reference output: the check is weak"
    atol = 2e-5 * float(np.abs(expected).max())
    with ember.no_grad():
        eager = _first(port(*[ember.tensor(x) for x in inputs])).numpy()
    np.testing.assert_allclose(eager, expected, rtol=1e-4, atol=atol)
    if compile_too:
        compiled = ember.compile(port)
        with ember.no_grad():
            result = _first(compiled(*[ember.tensor(x) for x in inputs])).numpy()
        np.testing.assert_allclose(result, expected, rtol=1e-4, atol=atol)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_large"])
def test_torchvision_quantizable_float_model_matches_torch(name, rng):
    """torchvision.models.quantization's architectures before quantization: QuantStub,
    DeQuantStub and nn.quantized.FloatFunctional in a float model."""
    reference, port = _pair("torchvision", lambda models: getattr(
        models.quantization, name)(num_classes=10, quantize=False))
    _check_forward(reference, port, [rng.standard_normal((2, 3, 32, 32)).astype(np.float32)])


@pytest.mark.parametrize("name", ["r3d_18", pytest.param("r2plus1d_18", marks=slow),
                                  pytest.param("swin3d_t", marks=slow)])
def test_torchvision_video_model_matches_torch(name, rng):
    reference, port = _pair("torchvision", lambda models: getattr(models.video, name)(
        num_classes=5))
    _check_forward(reference, port, [rng.standard_normal((1, 3, 4, 32, 32)).astype(
        np.float32)])


# name: (constructor keyword arguments, image size, marks)
VISION = {
    "resnet18": ({}, 32, []),
    "mobilenet_v3_small": ({}, 32, []),
    "shufflenet_v2_x0_5": ({}, 32, []),
    "squeezenet1_1": ({}, 48, []),
    "mnasnet0_5": ({}, 32, []),           # reads its state_dict version back on load
    "resnext50_32x4d": ({}, 32, [slow]),
    "wide_resnet50_2": ({}, 32, [slow]),
    "vgg11_bn": ({}, 32, [slow]),
    "densenet121": ({}, 32, [slow]),
    "googlenet": ({"aux_logits": False, "init_weights": True}, 48, [slow]),
    "inception_v3": ({"aux_logits": False, "init_weights": True}, 80, [slow]),
    "mobilenet_v2": ({}, 32, [slow]),
    "efficientnet_b0": ({}, 32, [slow]),
    "efficientnet_v2_s": ({}, 32, [slow]),
    "regnet_y_400mf": ({}, 32, [slow]),
    "convnext_tiny": ({}, 32, [slow]),
    "vit_b_16": ({"image_size": 32}, 32, [slow]),
    "swin_t": ({}, 32, [slow]),
}


@pytest.mark.parametrize("name", [pytest.param(name, marks=marks)
                                  for name, (_, _, marks) in VISION.items()])
def test_torchvision_classifier_matches_torch(name, rng):
    kwargs, image, _ = VISION[name]
    reference, port = _pair("torchvision", lambda models: getattr(models, name)(
        num_classes=10, **kwargs))
    x = rng.standard_normal((2, 3, image, image)).astype(np.float32)
    _check_forward(reference, port, [x])


def _tiny_maxvit(models):
    # maxvit_t needs 224x224 inputs (4 stages, 7x7 partitions); one stage at 28x28 runs
    # the same block code (MBConv, block and grid attention, relative position bias)
    return models.maxvit.MaxVit(input_size=(28, 28), stem_channels=8, partition_size=7,
                                block_channels=[16], block_layers=[2], head_dim=8,
                                stochastic_depth_prob=0.0, num_classes=10)


def test_torchvision_maxvit_block_matches_torch(rng):
    reference, port = _pair("torchvision", _tiny_maxvit)
    _check_forward(reference, port, [rng.standard_normal((2, 3, 28, 28)).astype(np.float32)])


@slow
@pytest.mark.parametrize("name", ["fcn_resnet50", "deeplabv3_mobilenet_v3_large",
                                  "lraspp_mobilenet_v3_large"])
def test_torchvision_segmentation_matches_torch(name, rng):
    reference, port = _pair("torchvision", lambda models: getattr(models.segmentation, name)(
        weights=None, weights_backbone=None, num_classes=3))
    x = rng.standard_normal((1, 3, 48, 48)).astype(np.float32)
    with torch.no_grad():
        expected = reference(torch.from_numpy(x))["out"].numpy()
    for model in (port, ember.compile(port)):            # eager, then compiled
        with ember.no_grad():
            actual = model(ember.tensor(x))["out"].numpy()
        np.testing.assert_allclose(actual, expected, rtol=1e-4,
                                   atol=2e-5 * float(np.abs(expected).max()))


# torch's CPU hardsigmoid backward multiplies by 1/6 rounded to float32 even for float64
# (ember uses the float64 1/6): MobileNetV3's squeeze-excite gradients differ by ~1e-8
# relative, so it gets a float32-sized tolerance
_BACKWARD_TOLERANCE = {"resnet18": 1e-9, "mobilenet_v3_small": 1e-7}


@pytest.mark.parametrize("name", ["resnet18", pytest.param("mobilenet_v3_small",
                                                           marks=slow)])
def test_torchvision_backward_matches_torch(name, rng):
    """Training mode (batch statistics) and the gradients of input and weights, in float64
    (BatchNorm over a 4-sample batch amplifies float32 rounding past any useful bound)."""
    reference, port = _pair("torchvision", lambda models: getattr(models, name)(
        num_classes=10))
    for model in (reference.double().train(), port.double().train()):
        for module in model.modules():          # random masks cannot match: no dropout
            if type(module).__name__ == "Dropout":
                module.eval()
    x = rng.standard_normal((4, 3, 32, 32))
    weights = rng.standard_normal((4, 10))
    x_ref = torch.from_numpy(x).requires_grad_()
    (reference(x_ref) * torch.from_numpy(weights)).sum().backward()
    x_port = ember.tensor(x, requires_grad=True)
    (port(x_port) * ember.tensor(weights)).sum().backward()
    tolerance = _BACKWARD_TOLERANCE[name]
    np.testing.assert_allclose(x_port.grad.numpy(), x_ref.grad.numpy(), rtol=1e-7,
                               atol=tolerance * float(x_ref.grad.abs().max()))
    port_grads = dict(port.named_parameters())
    for key, parameter in reference.named_parameters():
        expected = parameter.grad.numpy()
        np.testing.assert_allclose(port_grads[key].grad.numpy(), expected, rtol=1e-7,
                                   atol=tolerance * float(np.abs(expected).max()) + 1e-12,
                                   err_msg=key)


AUDIO = {
    "wav2letter": (lambda m: m.Wav2Letter(num_classes=5, input_type="waveform",
                                          num_features=1), [(2, 1, 400)], []),
    "conv_tasnet": (lambda m: m.ConvTasNet(
        num_sources=2, enc_kernel_size=8, enc_num_feats=16, msk_kernel_size=3,
        msk_num_feats=8, msk_num_hidden_feats=16, msk_num_layers=2, msk_num_stacks=2),
        [(2, 1, 200)], []),
    "deepspeech": (lambda m: m.DeepSpeech(n_feature=8, n_hidden=16, n_class=5),
                   [(2, 1, 6, 8)], []),
    "wavernn": (lambda m: m.WaveRNN(
        upsample_scales=[2, 2], n_classes=16, hop_length=4, n_res_block=2, n_rnn=16,
        n_fc=16, kernel_size=5, n_freq=8, n_hidden=8, n_output=8),
        [(2, 1, 24), (2, 1, 8, 10)], [slow]),          # the GRU unrolls: ~40 s compile
    "wav2vec2": (lambda m: m.wav2vec2_model(
        extractor_mode="group_norm", extractor_conv_layer_config=[(16, 10, 5), (16, 3, 2)],
        extractor_conv_bias=False, encoder_embed_dim=32, encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=8, encoder_pos_conv_groups=4, encoder_num_layers=2,
        encoder_num_heads=4, encoder_attention_dropout=0.0, encoder_ff_interm_features=64,
        encoder_ff_interm_dropout=0.0, encoder_dropout=0.0, encoder_layer_norm_first=False,
        encoder_layer_drop=0.0, aux_num_out=5), [(2, 400)], []),
    "hubert": (lambda m: m.wav2vec2_model(     # HuBERT's layout: layer norm first
        extractor_mode="layer_norm", extractor_conv_layer_config=[(16, 10, 5), (16, 3, 2)],
        extractor_conv_bias=True, encoder_embed_dim=32, encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=8, encoder_pos_conv_groups=4, encoder_num_layers=2,
        encoder_num_heads=4, encoder_attention_dropout=0.0, encoder_ff_interm_features=64,
        encoder_ff_interm_dropout=0.0, encoder_dropout=0.0, encoder_layer_norm_first=True,
        encoder_layer_drop=0.0, aux_num_out=None), [(2, 400)], [slow]),
    "wavlm": (lambda m: m.wavlm_model(
        extractor_mode="group_norm", extractor_conv_layer_config=[(16, 10, 5), (16, 3, 2)],
        extractor_conv_bias=False, encoder_embed_dim=32, encoder_projection_dropout=0.0,
        encoder_pos_conv_kernel=8, encoder_pos_conv_groups=4, encoder_num_layers=2,
        encoder_num_heads=4, encoder_num_buckets=8, encoder_max_distance=16,
        encoder_attention_dropout=0.0, encoder_ff_interm_features=64,
        encoder_ff_interm_dropout=0.0, encoder_dropout=0.0, encoder_layer_norm_first=False,
        encoder_layer_drop=0.0, aux_num_out=5), [(2, 400)], [slow]),
    "conformer": (lambda m: m.Conformer(input_dim=8, num_heads=2, ffn_dim=16, num_layers=2,
                                        depthwise_conv_kernel_size=3),
                  [(2, 10, 8), np.array([10, 7])], []),
    "emformer": (lambda m: m.Emformer(input_dim=8, num_heads=2, ffn_dim=16, num_layers=2,
                                      segment_length=4, right_context_length=1),
                 [(2, 13, 8), np.array([13, 10])], []),
    "hdemucs": (lambda m: m.HDemucs(sources=["a", "b"], channels=4, growth=2, nfft=64,
                                    depth=2), [(1, 2, 256)], [slow]),
}


@pytest.mark.parametrize("name", [pytest.param(name, marks=marks)
                                  for name, (_, _, marks) in AUDIO.items()])
def test_torchaudio_model_matches_torch(name, rng):
    build, shapes, _ = AUDIO[name]
    reference, port = _pair("torchaudio", build)
    inputs = [shape if isinstance(shape, np.ndarray)          # lengths, given as they are
              else rng.standard_normal(shape).astype(np.float32) for shape in shapes]
    _check_forward(reference, port, inputs)


# name: (builder, the head whose weights are scaled up, the scale). Scaled heads spread the
# scores out: near-equal scores of an untrained head make topk/NMS choose among ties,
# whose order is unspecified (SSD's anchors sharing a 1x1 feature map tie exactly, so
# SSD is left out for that reason)
DETECTION = {
    "fasterrcnn_mobilenet_v3_large_320_fpn": (
        lambda models: models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(
            weights=None, weights_backbone=None, num_classes=3, min_size=64, max_size=64),
        lambda model: model.roi_heads.box_predictor, 30.0),
    "retinanet_resnet50_fpn": (
        lambda models: models.detection.retinanet_resnet50_fpn(
            weights=None, weights_backbone=None, num_classes=3, min_size=64, max_size=64),
        lambda model: model.head, 3.0),
}


@slow
@pytest.mark.parametrize("name", list(DETECTION))
def test_torchvision_detections_match_torch(name, rng):
    """A detector in eval mode (backbone, FPN, anchors, RPN / dense head, RoIAlign, box
    decoding, NMS): the same boxes, scores and labels."""
    build, head_of, scale = DETECTION[name]
    reference_package, ported_package = _packages("torchvision")
    torch.manual_seed(0)
    reference = build(reference_package.models).eval()
    _vary_constant_tensors(reference)
    with torch.no_grad():
        for parameter in head_of(reference).parameters():
            parameter.mul_(scale)
    port = build(ported_package.models).eval()
    copy_state_dict(reference, port)
    image = rng.random((3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = reference([torch.from_numpy(image)])[0]
    with ember.no_grad():
        actual = port([ember.tensor(image)])[0]
    assert len(expected["scores"]) >= 3 and float(expected["scores"].std()) > 1e-3
    np.testing.assert_array_equal(actual["labels"].numpy(), expected["labels"].numpy())
    scores = expected["scores"].numpy()
    np.testing.assert_allclose(actual["scores"].numpy(), scores, rtol=1e-4, atol=1e-5)
    # boxes of detections whose score no other detection shares: among exactly tied
    # scores (boxes over the image's uniform border see the same features) torch's own
    # order and choice of proposal are unspecified
    unique = np.array([np.sum(np.abs(scores - s) <= 1e-6) == 1 for s in scores])
    assert unique.sum() >= 3
    np.testing.assert_allclose(actual["boxes"].numpy()[unique],
                               expected["boxes"].numpy()[unique], rtol=1e-4, atol=1e-3)


def _feature_extraction_modules():
    """torchvision.models.feature_extraction, torch-bound and ember-bound."""
    import importlib
    from porting import torch_as_ember
    from torchvision_port import _torchvision_shims
    _packages("torchvision")
    reference = importlib.import_module("torchvision.models.feature_extraction")
    with torch_as_ember("torchvision", shims=_torchvision_shims()):
        ported = importlib.import_module("torchvision.models.feature_extraction")
    return reference, ported


@pytest.mark.parametrize("name, nodes", [
    ("resnet18", {"layer1": "f1", "layer4.1.relu_1": "f4"}),
    ("swin_t", ["features.1.0.attn", "features.3"]),      # wrapped functions, get_attr
])
def test_torchvision_feature_extractor_matches_torch(name, nodes, rng):
    """create_feature_extractor / get_graph_node_names: torch.fx Tracer subclasses with
    create_proxy hooks, a GraphModule subclass with train and eval graphs, deepcopy."""
    import copy
    reference_fx, ported_fx = _feature_extraction_modules()
    reference, port = _pair("torchvision", lambda models: getattr(models, name)(
        num_classes=10))
    assert ported_fx.get_graph_node_names(port) == reference_fx.get_graph_node_names(
        reference)
    extractor = ported_fx.create_feature_extractor(port, return_nodes=nodes)
    expected_extractor = reference_fx.create_feature_extractor(reference, return_nodes=nodes)
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = expected_extractor(torch.from_numpy(x))
    for model in (extractor, copy.deepcopy(extractor).train().eval()):
        with ember.no_grad():
            actual = model(ember.tensor(x))
        assert list(actual) == list(expected)
        for key in expected:
            np.testing.assert_allclose(actual[key].numpy(), expected[key].numpy(),
                                       rtol=1e-4, atol=1e-4 * float(expected[key].abs().max()))
