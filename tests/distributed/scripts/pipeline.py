"""A model split into one stage per rank equals the unsplit model (GPipe and 1F1B).

Each rank builds the whole model (same seed), keeps its slice of layers as its stage,
and also computes the unsplit reference locally: the pipelined outputs, losses,
gradients and, after optimizer steps, parameters must match it. The stages are cut by
hand, then by `pipeline()` from the traced graph (split_by_cost on parameter counts).
"""
import numpy as np

import ember
import ember.distributed as dist
import ember.nn as nn
import ember.nn.functional as F
from ember.distributed.pipelining import (PipelineStage, Schedule1F1B, ScheduleGPipe,
                                         pipeline, split_by_cost)

dist.init_process_group(backend="mpi")
R, W = dist.get_rank(), dist.get_world_size()
BATCH, MICRO, STEPS = 8, 4, 2


def full_model():
    ember.manual_seed(0)
    layers = []
    for _ in range(W):
        layers += [nn.Linear(6, 6), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(6, 2))


def my_stage(model):
    """Rank r's layers: the r-th (Linear, Tanh) pair; the last rank also the head."""
    layers = list(model)
    mine = layers[2 * R:2 * R + 2] + (layers[-1:] if R == W - 1 else [])
    return nn.Sequential(*mine)


rng = np.random.default_rng(5)
X = rng.standard_normal((STEPS, BATCH, 6)).astype(np.float32)
Y = rng.standard_normal((STEPS, BATCH, 2)).astype(np.float32)

def hand_split(model):
    stage_module = my_stage(model)
    return stage_module, PipelineStage(stage_module, R, W, device="cpu")


def traced_split(model):
    pipe = pipeline(model, (ember.tensor(X[0][:BATCH // MICRO]),),
                    split_policy=split_by_cost(W, by="params"))
    return pipe.get_stage_module(R), pipe.build_stage(R, device="cpu")


def mirrored(model, ref, stage_module):
    """ref's parameters in the order of stage_module's (which are `model`'s own)."""
    mine = {id(p) for p in stage_module.parameters()}
    by_name = dict(ref.named_parameters())
    names = {id(p): n for n, p in model.named_parameters()}
    return [by_name[names[id(p)]] for p in stage_module.parameters() if id(p) in mine]


for split_name, schedule_class in (("hand", ScheduleGPipe), ("hand", Schedule1F1B),
                                   ("traced", ScheduleGPipe), ("traced", Schedule1F1B)):
    model, ref = full_model(), full_model()
    stage_module, stage = (hand_split if split_name == "hand" else traced_split)(model)
    ref_params = mirrored(model, ref, stage_module)
    schedule = schedule_class(stage, n_microbatches=MICRO, loss_fn=F.mse_loss)
    opt = ember.optim.SGD(stage_module.parameters(), lr=0.1)
    ref_opt = ember.optim.SGD(ref.parameters(), lr=0.1)
    name = schedule_class.__name__ + ("" if split_name == "hand" else " (pipeline() split)")
    for step in range(STEPS):
        opt.zero_grad()
        ref_opt.zero_grad()
        losses = []
        x, y = ember.tensor(X[step]), ember.tensor(Y[step])
        inputs = (x,) if R == 0 else ()          # only the first stage takes the batch
        out = schedule.step(*inputs, target=y, losses=losses)
        ref_out = ref(x)
        ref_loss = F.mse_loss(ref_out, y)
        ref_loss.backward()
        if R == W - 1:
            assert np.allclose(out.numpy(), ref_out.detach().numpy(), atol=1e-6), name
            mb_losses = [float(l) for l in losses]
            assert abs(np.mean(mb_losses) - float(ref_loss)) < 1e-6, (name, mb_losses)
        for p, q in zip(stage_module.parameters(), ref_params):
            err = float(np.abs(p.grad.numpy() - q.grad.numpy()).max())
            assert err < 1e-6, f"rank {R} {name} step {step}: gradient differs by {err}"
        opt.step()
        ref_opt.step()
    assert ref_params, f"rank {R}: stage {R} of the {split_name} split has no parameters"
    for p, q in zip(stage_module.parameters(), ref_params):
        assert np.allclose(p.detach().numpy(), q.detach().numpy(), atol=1e-6), name
    print(f"rank {R}: {name} equals the unsplit model", flush=True)
dist.destroy_process_group()
