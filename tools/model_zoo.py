"""Sweep real model code (torchvision's model zoo, a broad timm sample) through ember.

Each model is built twice from the installed package's own source: against torch (the
oracle) and with `torch` aliased to `ember` (tests/compat/porting.torch_as_ember). Constant
floating tensors (fresh BatchNorm statistics, zero-initialized gammas) get random values,
torch's weights are copied into ember's model by state_dict key, and at a small input size
these stages are compared with torch:

- build:    the ember-bound constructor runs and the state_dict keys match;
- eager:    eval-mode forward, every output tensor (nested dicts/lists too);
- fx:       `ember.fx.symbolic_trace` of the model, run and compared (only where
            `torch.fx.symbolic_trace` traces the torch model: "n/a" otherwise);
- compile:  `ember.compile(model)` forward;
- backward: eval-mode gradients of the input and of every parameter through a fixed random
            cotangent, in float64 (both models are converted, so it runs last).

    python tools/model_zoo.py                       # every model, a table
    python tools/model_zoo.py timm:convnext_atto tv:resnet18 -v   # some, with tracebacks
    python tools/model_zoo.py --suite timm --json out.json
    python tools/model_zoo.py --stages eager,compile

Models run in child processes (--batch a child) with time limits (--timeout a model,
--stage-timeout a stage), so one hang or crash does not end the sweep. Needs torch, torchvision (and timm for the timm part); ember itself
never imports torch.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "compat")]
warnings.filterwarnings("ignore")

STAGES = ("build", "eager", "fx", "compile", "backward")

# torchvision: name -> (builder over the `models` package, input shapes, options)
# options: skip = stages left out (detection outputs depend on tie order, video/flow are
# heavy); every builder gives a small variant of the family


def _tv(name, **kwargs):
    return lambda models: getattr(models, name)(**kwargs)


def _tv_sub(sub, name, **kwargs):
    return lambda models: getattr(getattr(models, sub), name)(**kwargs)


def _tiny_maxvit(models):
    return models.maxvit.MaxVit(input_size=(28, 28), stem_channels=8, partition_size=7,
                                block_channels=[16], block_layers=[2], head_dim=8,
                                stochastic_depth_prob=0.0, num_classes=10)


IMAGE32 = [(2, 3, 32, 32)]
IMAGE64 = [(2, 3, 64, 64)]
HEAVY = ("backward", "fx")
TORCHVISION = {
    "alexnet": (_tv("alexnet", num_classes=10), [(2, 3, 64, 64)], {}),
    "convnext_tiny": (_tv("convnext_tiny", num_classes=10), IMAGE32, {}),
    "densenet121": (_tv("densenet121", num_classes=10), IMAGE32, {}),
    "efficientnet_b0": (_tv("efficientnet_b0", num_classes=10), IMAGE32, {}),
    "efficientnet_v2_s": (_tv("efficientnet_v2_s", num_classes=10), IMAGE32, {}),
    "googlenet": (_tv("googlenet", num_classes=10, aux_logits=False, init_weights=True),
                  [(2, 3, 48, 48)], {}),
    "inception_v3": (_tv("inception_v3", num_classes=10, aux_logits=False,
                         init_weights=True), [(2, 3, 80, 80)], {}),
    "maxvit_one_stage": (_tiny_maxvit, [(2, 3, 28, 28)], {}),
    "mnasnet0_5": (_tv("mnasnet0_5", num_classes=10), IMAGE32, {}),
    "mobilenet_v2": (_tv("mobilenet_v2", num_classes=10), IMAGE32, {}),
    "mobilenet_v3_small": (_tv("mobilenet_v3_small", num_classes=10), IMAGE32, {}),
    "regnet_x_400mf": (_tv("regnet_x_400mf", num_classes=10), IMAGE32, {}),
    "regnet_y_400mf": (_tv("regnet_y_400mf", num_classes=10), IMAGE32, {}),
    "resnet18": (_tv("resnet18", num_classes=10), IMAGE32, {}),
    "resnet50": (_tv("resnet50", num_classes=10), IMAGE32, {}),
    "resnext50_32x4d": (_tv("resnext50_32x4d", num_classes=10), IMAGE32, {}),
    "wide_resnet50_2": (_tv("wide_resnet50_2", num_classes=10), IMAGE32, {}),
    "shufflenet_v2_x0_5": (_tv("shufflenet_v2_x0_5", num_classes=10), IMAGE32, {}),
    "squeezenet1_0": (_tv("squeezenet1_0", num_classes=10), [(2, 3, 48, 48)], {}),
    "squeezenet1_1": (_tv("squeezenet1_1", num_classes=10), [(2, 3, 48, 48)], {}),
    "swin_t": (_tv("swin_t", num_classes=10), IMAGE32, {}),
    "swin_v2_t": (_tv("swin_v2_t", num_classes=10), IMAGE32, {}),
    "vgg11_bn": (_tv("vgg11_bn", num_classes=10), IMAGE32, {}),
    "vit_b_16": (_tv("vit_b_16", num_classes=10, image_size=32), IMAGE32, {}),
    "quantization.googlenet": (_tv_sub("quantization", "googlenet", num_classes=10,
                                       quantize=False, aux_logits=False,
                                       init_weights=True), [(2, 3, 48, 48)], {}),
    "quantization.inception_v3": (_tv_sub("quantization", "inception_v3", num_classes=10,
                                          quantize=False, aux_logits=False,
                                          init_weights=True), [(2, 3, 80, 80)], {}),
    "quantization.mobilenet_v2": (_tv_sub("quantization", "mobilenet_v2", num_classes=10,
                                          quantize=False), IMAGE32, {}),
    "quantization.mobilenet_v3_large": (_tv_sub(
        "quantization", "mobilenet_v3_large", num_classes=10, quantize=False), IMAGE32, {}),
    "quantization.resnet18": (_tv_sub("quantization", "resnet18", num_classes=10,
                                      quantize=False), IMAGE32, {}),
    "quantization.shufflenet_v2_x0_5": (_tv_sub(
        "quantization", "shufflenet_v2_x0_5", num_classes=10, quantize=False), IMAGE32, {}),
    "segmentation.fcn_resnet50": (_tv_sub(
        "segmentation", "fcn_resnet50", weights=None, weights_backbone=None,
        num_classes=3), [(1, 3, 48, 48)], {"skip": HEAVY}),
    "segmentation.deeplabv3_mobilenet_v3_large": (_tv_sub(
        "segmentation", "deeplabv3_mobilenet_v3_large", weights=None,
        weights_backbone=None, num_classes=3), [(1, 3, 48, 48)], {"skip": HEAVY}),
    "segmentation.lraspp_mobilenet_v3_large": (_tv_sub(
        "segmentation", "lraspp_mobilenet_v3_large", weights=None, weights_backbone=None,
        num_classes=3), [(1, 3, 48, 48)], {"skip": HEAVY}),
    "video.r3d_18": (_tv_sub("video", "r3d_18", num_classes=5), [(1, 3, 4, 32, 32)],
                     {"skip": HEAVY}),
    "video.mc3_18": (_tv_sub("video", "mc3_18", num_classes=5), [(1, 3, 4, 32, 32)],
                     {"skip": HEAVY}),
    "video.r2plus1d_18": (_tv_sub("video", "r2plus1d_18", num_classes=5),
                          [(1, 3, 4, 32, 32)], {"skip": HEAVY}),
    "video.s3d": (_tv_sub("video", "s3d", num_classes=5), [(1, 3, 16, 224, 224)],
                  {"skip": HEAVY}),              # its last pooling needs 224 x 224
    "video.swin3d_t": (_tv_sub("video", "swin3d_t", num_classes=5), [(1, 3, 4, 32, 32)],
                       {"skip": HEAVY}),
    "video.mvit_v2_s": (_tv_sub("video", "mvit_v2_s", num_classes=5),
                        [(1, 3, 16, 224, 224)], {"skip": HEAVY + ("compile",)}),
    "optical_flow.raft_small": (_tv_sub("optical_flow", "raft_small"),
                                [(1, 3, 128, 128), (1, 3, 128, 128)],
                                {"skip": HEAVY + ("compile",)}),
    "detection.fasterrcnn_mobilenet_v3_large_320_fpn": (_tv_sub(
        "detection", "fasterrcnn_mobilenet_v3_large_320_fpn", weights=None,
        weights_backbone=None, num_classes=3, min_size=64, max_size=64),
        "images", {"skip": HEAVY + ("compile",)}),
    "detection.retinanet_resnet50_fpn": (_tv_sub(
        "detection", "retinanet_resnet50_fpn", weights=None, weights_backbone=None,
        num_classes=3, min_size=64, max_size=64), "images",
        {"skip": HEAVY + ("compile",)}),
    "detection.fcos_resnet50_fpn": (_tv_sub(
        "detection", "fcos_resnet50_fpn", weights=None, weights_backbone=None,
        num_classes=3, min_size=64, max_size=64), "images",
        {"skip": HEAVY + ("compile",)}),
    "detection.ssdlite320_mobilenet_v3_large": (_tv_sub(
        "detection", "ssdlite320_mobilenet_v3_large", weights=None, weights_backbone=None,
        num_classes=3), "images", {"skip": HEAVY + ("compile",)}),
    "detection.maskrcnn_resnet50_fpn": (_tv_sub(
        "detection", "maskrcnn_resnet50_fpn", weights=None, weights_backbone=None,
        num_classes=3, min_size=64, max_size=64), "images",
        {"skip": HEAVY + ("compile",)}),
    "detection.keypointrcnn_resnet50_fpn": (_tv_sub(
        "detection", "keypointrcnn_resnet50_fpn", weights=None, weights_backbone=None,
        num_classes=2, min_size=64, max_size=64), "images",
        {"skip": HEAVY + ("compile",)}),
}

# timm: name -> (create_model keyword arguments, image size); one small member per family
TIMM = {
    "resnet18": ({}, 64), "resnet26d": ({}, 64), "resnest14d": ({}, 64),
    "res2net50_14w_8s": ({}, 64), "seresnext26d_32x4d": ({}, 64),
    "skresnet18": ({}, 64), "ecaresnet26t": ({}, 64), "cspresnet50": ({}, 64),
    "cspdarknet53": ({}, 64), "darknet17": ({}, 64), "dla34": ({}, 64),
    "dpn48b": ({}, 64), "densenet121": ({}, 64), "tresnet_m": ({}, 64),
    "vovnet39a": ({}, 64), "ese_vovnet19b_dw": ({}, 64), "selecsls42b": ({}, 64),
    "legacy_seresnet18": ({}, 64), "xception41": ({}, 64), "inception_v3": ({}, 96),
    "inception_v4": ({}, 96), "hrnet_w18_small": ({}, 64), "vgg11": ({}, 64),
    "gernet_s": ({}, 64), "regnetx_002": ({}, 64), "regnetz_005": ({}, 64),
    "nf_regnet_b0": ({}, 64), "nfnet_l0": ({}, 64), "rexnet_100": ({}, 64),
    "ghostnet_050": ({}, 64), "ghostnetv2_100": ({}, 64), "efficientnet_b0": ({}, 64),
    "efficientnetv2_rw_t": ({}, 64), "mixnet_s": ({}, 64), "mnasnet_small": ({}, 64),
    "fbnetc_100": ({}, 64), "lcnet_050": ({}, 64), "tinynet_e": ({}, 64),
    "mobilenetv3_small_050": ({}, 64), "mobilenetv4_conv_small": ({}, 64),
    "hardcorenas_a": ({}, 64), "mobileone_s0": ({}, 64), "repvit_m0_9": ({}, 64),
    "hgnetv2_b0": ({}, 64), "convnext_atto": ({}, 64), "convnextv2_atto": ({}, 64),
    "inception_next_atto": ({}, 64), "edgenext_xx_small": ({}, 64),
    "mobilevit_xxs": ({}, 64), "mobilevitv2_050": ({}, 64), "poolformer_s12": ({}, 64),
    "poolformerv2_s12": ({}, 64), "caformer_s18": ({}, 64), "convformer_s18": ({}, 64),
    "efficientformer_l1": ({}, 224), "efficientformerv2_s0": ({"img_size": 64}, 64),
    "fastvit_t8": ({}, 64), "efficientvit_b0": ({}, 64),
    "efficientvit_m0": ({"img_size": 64}, 64), "mambaout_femto": ({}, 64),
    "starnet_s050": ({}, 64), "focalnet_tiny_srf": ({}, 64), "davit_tiny": ({}, 64),
    "pvt_v2_b0": ({}, 64), "twins_svt_small": ({"img_size": 64}, 64),
    "coat_lite_tiny": ({"img_size": 64}, 64), "botnet26t_256": ({"img_size": 64}, 64),
    "halonet26t": ({"img_size": 256}, 256), "lambda_resnet26t": ({"img_size": 64}, 64),
    "vit_tiny_patch16_224": ({"img_size": 32}, 32),
    "vit_small_patch16_rope_224": ({"img_size": 32}, 32),
    "vit_relpos_small_patch16_224": ({"img_size": 32}, 32),
    "deit_tiny_distilled_patch16_224": ({"img_size": 32}, 32),
    "deit3_small_patch16_224": ({"img_size": 32}, 32),
    "cait_xxs24_224": ({"img_size": 32}, 32), "xcit_nano_12_p16_224": ({"img_size": 32}, 32),
    "beit_base_patch16_224": ({"img_size": 32}, 32),
    "eva02_tiny_patch14_224": ({"img_size": 28}, 28),
    "convit_tiny": ({"img_size": 32}, 32), "tnt_s_patch16_224": ({"img_size": 32}, 32),
    "pit_ti_224": ({"img_size": 64}, 64), "levit_128s": ({"img_size": 64}, 64),
    "mixer_s32_224": ({"img_size": 64}, 64), "resmlp_12_224": ({"img_size": 64}, 64),
    "gmlp_ti16_224": ({"img_size": 64}, 64), "swin_tiny_patch4_window7_224": (
        {"img_size": 56}, 56), "swinv2_cr_tiny_ns_224": ({"img_size": 64}, 64),
    "maxvit_rmlp_nano_rw_256": ({"img_size": 64}, 64),
    "tiny_vit_5m_224": ({}, 224), "gcvit_xxtiny": ({"img_size": 64}, 64),
    "nest_tiny": ({"img_size": 64}, 64), "volo_d1_224": ({"img_size": 64}, 64),
    "visformer_tiny": ({"img_size": 64}, 64), "crossvit_tiny_240": ({"img_size": 240}, 240),
    "hiera_tiny_224": ({"img_size": 64}, 64),
    "sequencer2d_s": ({}, 32),
}


# ---------------------------------------------------------------------------- helpers

class StageTimeout(Exception):
    pass


class TorchFails(Exception):
    """The torch model itself fails on these inputs: the row says n/a, not fail."""


def _alarm(signum, frame):
    raise StageTimeout("stage ran past its time limit")


def _vary_constant_tensors(torch, model) -> None:
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if value.is_floating_point() and value.numel() and \
                    bool((value == value.reshape(-1)[0]).all()):
                varied = value + 0.2 * torch.randn(value.shape, generator=generator)
                value.copy_(varied.abs() + 0.5 if key.endswith("running_var") else varied)


def _leaves(output):
    """The tensors of a nested output, in a fixed order."""
    if isinstance(output, dict):
        return [leaf for key in output for leaf in _leaves(output[key])]
    if isinstance(output, (list, tuple)):
        return [leaf for item in output for leaf in _leaves(item)]
    if hasattr(output, "shape") and hasattr(output, "dtype"):
        return [output]
    return []


def _numpy(tensor):
    return tensor.detach().cpu().numpy()


def _compare(actual, expected, rtol=1e-4, atol_scale=1e-4, what="output", floor=0.0):
    import numpy as np
    actual, expected = _leaves(actual), _leaves(expected)
    if len(actual) != len(expected):
        raise AssertionError(f"{what}: {len(actual)} tensors, torch gives {len(expected)}")
    worst = 0.0
    for index, (a, e) in enumerate(zip(actual, expected)):
        a, e = _numpy(a), _numpy(e)
        if a.shape != e.shape:
            raise AssertionError(f"{what}[{index}]: shape {a.shape}, torch {e.shape}")
        if e.size == 0:
            continue
        if not np.issubdtype(e.dtype, np.floating):
            np.testing.assert_array_equal(a, e, err_msg=f"{what}[{index}]")
            continue
        scale = float(np.abs(e).max()) or 1.0
        error = float(np.abs(a.astype(np.float64) - e).max()) / scale
        worst = max(worst, error)
        np.testing.assert_allclose(a, e, rtol=rtol, atol=max(atol_scale * scale, floor),
                                   err_msg=f"{what}[{index}]")
    return worst


def _as_float64(arrays):
    import numpy as np
    return [_as_float64(a) if isinstance(a, list) else a.astype(np.float64) for a in arrays]


class Case:
    """One model: the torch oracle, the ember port and their inputs."""

    def __init__(self, suite, name):
        self.suite, self.name = suite, name
        self.skip = ()

    def build(self):
        import numpy as np
        import torch
        from porting import copy_state_dict
        rng = np.random.default_rng(0)
        if self.suite == "tv":
            from torchvision_port import reference_and_port
            reference_package, ported_package = reference_and_port("torchvision")
            builder, shapes, options = TORCHVISION[self.name]
            self.skip = options.get("skip", ())
            torch.manual_seed(0)
            self.reference = builder(reference_package.models).eval()
            _vary_constant_tensors(torch, self.reference)
            self.port = builder(ported_package.models).eval()
            if shapes == "images":
                self.arrays = [[rng.random((3, 64, 64)).astype(np.float32)]]
            else:
                self.arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        else:
            timm, ported_timm = _timm_pair()
            kwargs, image = TIMM[self.name]
            kwargs = dict(pretrained=False, num_classes=10, **kwargs)
            torch.manual_seed(0)
            self.reference = timm.create_model(self.name, **kwargs).eval()
            _vary_constant_tensors(torch, self.reference)
            self.port = ported_timm(self.name, **kwargs).eval()
            self.arrays = [rng.standard_normal((2, 3, image, image)).astype(np.float32)]
        copy_state_dict(self.reference, self.port)

    def inputs(self, module, requires_grad=False):
        def convert(array):
            if isinstance(array, list):
                return [convert(item) for item in array]
            tensor = module.tensor(array)
            return tensor.requires_grad_() if requires_grad else tensor
        return [convert(array) for array in self.arrays]

    def expected(self):
        import torch
        if not hasattr(self, "_expected"):
            with torch.no_grad():
                self._expected = self.reference(*self.inputs(torch))
            if not any(float(t.abs().max()) > 1e-2 for t in _leaves(self._expected)
                       if t.numel() and t.is_floating_point()):
                raise AssertionError("degenerate torch output: the comparison is weak")
        return self._expected

    def eager(self):
        import ember
        try:
            expected = self.expected()
        except Exception as error:            # torch itself fails at this size: no oracle
            raise TorchFails(_short(error)) from error
        with ember.no_grad():
            return _compare(self.port(*self.inputs(ember)), expected)

    def backward(self):
        import numpy as np
        import ember
        import torch
        rng = np.random.default_rng(1)
        self.reference.double()
        self.port.double()
        self.arrays = _as_float64(self.arrays)
        ref_inputs = self.inputs(torch, requires_grad=True)
        ref_out = _leaves(self.reference(*ref_inputs))[0]
        cotangent = rng.standard_normal(tuple(ref_out.shape))
        (ref_out * torch.from_numpy(cotangent)).sum().backward()
        port_inputs = self.inputs(ember, requires_grad=True)
        port_out = _leaves(self.port(*port_inputs))[0]
        (port_out * ember.tensor(cotangent)).sum().backward()
        worst = _compare([x.grad for x in port_inputs], [x.grad for x in ref_inputs],
                         rtol=1e-6, atol_scale=1e-7, what="input grad")
        grads = {k: p.grad for k, p in self.port.named_parameters() if p.grad is not None}
        # gradients that are zero in exact arithmetic (a key bias under softmax) are
        # rounding noise on both sides: compared against the largest gradient's scale
        floor = 1e-9 * max((float(p.grad.abs().max()) for p in self.reference.parameters()
                            if p.grad is not None and p.grad.numel()), default=0.0)
        for key, parameter in self.reference.named_parameters():
            if parameter.grad is None:
                continue
            if key not in grads:
                raise AssertionError(f"no gradient for parameter {key}")
            worst = max(worst, _compare([grads[key]], [parameter.grad], rtol=1e-6,
                                        atol_scale=1e-7, what=f"grad of {key}",
                                        floor=floor))
        return worst

    def fx(self):
        import ember
        import torch
        try:
            torch.fx.symbolic_trace(self.reference)
        except Exception:
            return "n/a"
        traced = ember.fx.symbolic_trace(self.port)
        with ember.no_grad():
            return _compare(traced(*self.inputs(ember)), self.expected())

    def compile(self):
        import ember
        compiled = ember.compile(self.port)
        with ember.no_grad():
            return _compare(compiled(*self.inputs(ember)), self.expected())


_TIMM = {}


def _timm_pair():
    """(timm, the ember-bound create_model)."""
    if not _TIMM:
        import types
        from domain_oracles import import_torchvision
        from porting import torch_as_ember
        import_torchvision()
        import timm
        distributed = types.ModuleType("torch.distributed")
        distributed.is_available = lambda: False
        distributed.is_initialized = lambda: False
        try:
            import ember.distributed  # noqa: F401
            shims = {}
        except ImportError:
            shims = {"torch.distributed": distributed}

        def create(name, **kwargs):
            with torch_as_ember("timm", shims=shims) as ported:
                return ported["timm"].create_model(name, **kwargs)
        _TIMM.update(timm=timm, create=create)
    return _TIMM["timm"], _TIMM["create"]


def _short(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip().replace("\n", " ")
    return text[:300]


def run_one(key: str, stages, stage_timeout: int, verbose: bool) -> dict:
    suite, name = key.split(":", 1)
    case = Case(suite, name)
    record = {"model": key, "stages": {}}
    signal.signal(signal.SIGALRM, _alarm)
    for stage in ("build",) + tuple(s for s in STAGES[1:] if s in stages):
        if stage != "build" and stage in case.skip:
            record["stages"][stage] = "skip"
            continue
        started = time.perf_counter()
        signal.alarm(stage_timeout)
        try:
            result = getattr(case, stage)()
            record["stages"][stage] = result if result == "n/a" else "pass"
        except TorchFails as error:
            record["stages"][stage] = "n/a"
            record.setdefault("errors", {})[stage] = f"torch fails: {error}"
            break
        except BaseException as error:  # noqa: BLE001 - every failure is a table entry
            if isinstance(error, KeyboardInterrupt):
                raise
            record["stages"][stage] = "fail"
            record.setdefault("errors", {})[stage] = _short(error)
            if verbose:
                traceback.print_exc()
            if stage == "build":
                break
            if stage == "eager" and isinstance(error, StageTimeout):
                break
        finally:
            signal.alarm(0)
            record.setdefault("seconds", {})[stage] = round(time.perf_counter() - started, 1)
    return record


def all_models(suite: str | None):
    keys = []
    if suite in (None, "tv"):
        keys += [f"tv:{name}" for name in TORCHVISION]
    if suite in (None, "timm"):
        keys += [f"timm:{name}" for name in TIMM]
    return keys


def _run_children(keys, args):
    """Yields each model's record, running `--batch` models per child process (the
    imports of torch, torchvision, timm and their ember-bound copies are paid once per
    child); a child that crashes or runs past its time costs the model it was running,
    and the rest go to a fresh child."""
    pending = list(keys)
    while pending:
        batch = pending[:args.batch]
        command = [sys.executable, __file__, "--child", ",".join(batch), "--stages",
                   ",".join(args.stages), "--stage-timeout", str(args.stage_timeout)]
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=args.timeout * len(batch), env=os.environ)
            out, failure = done.stdout, "crashed: " + done.stderr.strip()[-300:]
        except subprocess.TimeoutExpired as expired:
            out = expired.stdout.decode() if isinstance(expired.stdout, bytes) \
                else (expired.stdout or "")
            failure = f"timed out (limit {args.timeout} s a model)"
        finished = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        for record in finished:
            yield record
        pending = pending[len(finished):]
        if pending and len(finished) < len(batch):        # the model the child died on
            yield {"model": pending[0], "stages": {"build": "fail"},
                   "errors": {"build": failure}}
            pending = pending[1:]


def _print_row(record, stages):
    cells = [record["stages"].get(stage, "-") for stage in stages]
    print(f"{record['model']:<52} " + " ".join(f"{c:<8}" for c in cells), flush=True)
    for stage, message in record.get("errors", {}).items():
        print(f"    {stage}: {message}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="*", help="suite:name keys (tv:resnet18, timm:...)")
    parser.add_argument("--suite", choices=("tv", "timm"))
    parser.add_argument("--stages", default=",".join(STAGES[1:]))
    parser.add_argument("--json", metavar="FILE", help="write the per-model records")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per model")
    parser.add_argument("--stage-timeout", type=int, default=240)
    parser.add_argument("--batch", type=int, default=8, help="models per child process")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="run in this process and print tracebacks")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.stages = tuple(s for s in args.stages.split(",") if s)
    if args.child:
        for key in args.child.split(","):
            print(json.dumps(run_one(key, args.stages, args.stage_timeout, False)),
                  flush=True)
        return 0
    keys = args.models or all_models(args.suite)
    print(f"{'model':<52} " + " ".join(f"{s:<8}" for s in ("build",) + args.stages))
    records = []
    results = ((run_one(key, args.stages, args.stage_timeout, True) for key in keys)
               if args.verbose else _run_children(keys, args))
    for record in results:
        records.append(record)
        _print_row(record, ("build",) + args.stages)
        if args.json:                       # after each model: a cut-short sweep keeps them
            Path(args.json).write_text(json.dumps(records, indent=1) + "\n")
    totals = {stage: sum(r["stages"].get(stage) == "pass" for r in records)
              for stage in ("build",) + args.stages}
    tried = {stage: sum(r["stages"].get(stage) in ("pass", "fail") for r in records)
             for stage in ("build",) + args.stages}
    print("passed: " + ", ".join(f"{s} {totals[s]}/{tried[s]}" for s in totals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
