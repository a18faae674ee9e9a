"""Module utilities in plain PyTorch: state-dict hooks (public and private),
non-persistent and None buffers, apply / named_modules(remove_duplicate), containers
(ModuleDict, ParameterList, ParameterDict, ModuleList, Sequential slicing),
checkpoint / checkpoint_sequential, gradient clipping and parameter vectors, Generator
and manual_seed determinism contracts, forward / backward / tensor /
post-accumulate-grad hooks, ensembling with stack_module_state + vmap, extra state."""
import copy, io, collections
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint, checkpoint_sequential
from torch.func import stack_module_state, functional_call, vmap

def W(*shape, seed=0):
    return torch.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))

def case_state_dict_hooks():
    m = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    log = []
    def post(module, state_dict, prefix, local_metadata):
        log.append(("post", prefix, sorted(state_dict.keys())))
        state_dict[prefix + "extra"] = torch.ones(1)
    m[0]._register_state_dict_hook(post)
    def pre_load(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        state_dict.pop(prefix + "extra", None)
        log.append(("preload", prefix))
    m[0]._register_load_state_dict_pre_hook(pre_load, with_module=True)
    sd = m.state_dict()
    m.load_state_dict(sd)
    h = m.register_state_dict_pre_hook(lambda mod, prefix, keep_vars: log.append(("pre", prefix, keep_vars)))
    m.state_dict(keep_vars=True); h.remove(); m.state_dict()
    h2 = m.register_load_state_dict_post_hook(lambda mod, keys: log.append(("loadpost", list(keys.missing_keys), list(keys.unexpected_keys))))
    r = m.load_state_dict({"0.weight": torch.ones(2, 2)}, strict=False)
    return [log, sorted(sd.keys()), list(r.missing_keys), list(r.unexpected_keys), repr(r).replace("torch", "T")]

def case_buffers_and_apply():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("a", torch.ones(2))
            self.register_buffer("b", torch.zeros(2), persistent=False)
            self.register_buffer("c", None)
            self.lin = nn.Linear(2, 2)
            self.shared = self.lin
    m = M()
    def init(mod):
        if isinstance(mod, nn.Linear):
            nn.init.constant_(mod.weight, 0.5); nn.init.zeros_(mod.bias)
    m.apply(init)
    names = [n for n, _ in m.named_modules()]
    names2 = [n for n, _ in m.named_modules(remove_duplicate=False)]
    pn = [n for n, _ in m.named_parameters(remove_duplicate=False)]
    bn = [n for n, _ in m.named_buffers()]
    m2 = copy.deepcopy(m)
    m2.b.fill_(3)
    m.half(); dt = str(m.a.dtype).split(".")[-1]; m.float()
    buf = io.BytesIO(); torch.save(m.state_dict(), buf); buf.seek(0); sd = torch.load(buf)
    return [names, names2, pn, bn, sorted(m.state_dict().keys()), m2.b, m.b, m2.shared is m2.lin, dt, sorted(sd), m.lin.weight,
            [n for n, _ in m.named_children()], m.get_submodule("lin").out_features, m.get_parameter("lin.bias"), m.get_buffer("a")]

def case_containers():
    md = nn.ModuleDict({"b": nn.Linear(1, 1), "a": nn.ReLU()})
    md["c"] = nn.Tanh(); md.update([("d", nn.Identity())]); del md["a"]
    pl = nn.ParameterList([nn.Parameter(torch.ones(1)), torch.zeros(2)])
    pl.append(nn.Parameter(torch.ones(3))); pl.extend([torch.ones(1)])
    pd = nn.ParameterDict({"x": nn.Parameter(torch.ones(2))}); pd["y"] = torch.zeros(1)
    ml = nn.ModuleList([nn.Linear(1, 1)]); ml.insert(0, nn.ReLU()); ml += [nn.Tanh()]; ml.extend(nn.ModuleList([nn.Sigmoid()]))
    seq = nn.Sequential(collections.OrderedDict([("l1", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    seq.append(nn.Identity()); sl = seq[0:2]
    return [list(md.keys()), len(pl), [type(p).__name__ for p in pl], [p.requires_grad for p in pl], sorted(pd.keys()),
            [type(m).__name__ for m in ml], type(sl).__name__, list(sl._modules.keys()), len(seq), "c" in md, md.pop("c").__class__.__name__,
            list(dict(pd.items()).keys()), [n for n, _ in nn.Sequential(nn.Linear(1,1), nn.Sequential(nn.ReLU())).named_modules()],
            repr(md).replace("torch", "T"), repr(pl).split("\n")[0]]

def case_checkpoint():
    torch.manual_seed(0)
    block = nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 4))
    blocks = nn.Sequential(*[copy.deepcopy(block) for _ in range(4)])
    for i, p in enumerate(blocks.parameters()): p.data = W(*p.shape, seed=i) * 0.5
    x = W(3, 4, seed=9).requires_grad_()
    y = checkpoint(blocks[0], x, use_reentrant=False)
    y = checkpoint_sequential(blocks[1:], 2, y, use_reentrant=False)
    def fn(a, b, scale=1.0): return (a * b).tanh() * scale
    z = checkpoint(fn, y, y, scale=2.0, use_reentrant=False)
    z.sum().backward()
    x2 = W(3, 4, seed=9).requires_grad_()
    w = checkpoint(blocks[0], x2, use_reentrant=True)
    w.sum().backward()
    return [z, x.grad, blocks[0][0].weight.grad, x2.grad]

def case_clip_utils():
    ps = [nn.Parameter(W(3, 3, seed=i)) for i in range(3)]
    for i, p in enumerate(ps): p.grad = W(3, 3, seed=10 + i) * 3
    n1 = nn.utils.clip_grad_norm_(ps, 1.0)
    n2 = nn.utils.clip_grad_norm_(ps, 0.5, norm_type=float("inf"))
    n3 = nn.utils.clip_grad_norm_(ps[0], 0.1, norm_type=1)
    n4 = nn.utils.get_total_norm([p.grad for p in ps]) if hasattr(nn.utils, "get_total_norm") else torch.tensor(0.)
    vec = nn.utils.parameters_to_vector(ps)
    nn.utils.vector_to_parameters(vec * 2, ps)
    g = nn.utils.clip_grad_value_(ps, 0.01)
    return [n1, n2, n3, n4, vec, ps[1], ps[2].grad, g is None]

def case_generator():
    g1 = torch.Generator().manual_seed(123); g2 = torch.Generator(); g2.manual_seed(123)
    a = torch.randn(4, generator=g1); b = torch.randn(4, generator=g2)
    st = g1.get_state(); c = torch.rand(3, generator=g1); g1.set_state(st); d = torch.rand(3, generator=g1)
    torch.manual_seed(7); e = torch.randn(5); f = torch.randint(0, 10, (5,)); torch.manual_seed(7); e2 = torch.randn(5); f2 = torch.randint(0, 10, (5,))
    rs = torch.get_rng_state(); h = torch.rand(2); torch.set_rng_state(rs); h2 = torch.rand(2)
    torch.manual_seed(1); p = torch.randperm(6); torch.manual_seed(1); p2 = torch.randperm(6)
    with torch.random.fork_rng():
        torch.manual_seed(99); torch.rand(1)
    after = torch.rand(1); torch.set_rng_state(rs); torch.rand(2); after2 = torch.rand(1)
    drop = nn.Dropout(0.5); torch.manual_seed(3); d1 = drop(torch.ones(10)); torch.manual_seed(3); d2 = drop(torch.ones(10))
    return [torch.equal(a, b), torch.equal(c, d), torch.equal(e, e2), torch.equal(f, f2), torch.equal(h, h2), torch.equal(p, p2),
            torch.equal(after, after2), torch.equal(d1, d2), g1.initial_seed(), torch.initial_seed(), sorted(p.tolist()),
            str(g1.device), torch.Generator(device="cpu").device.type, type(torch.seed()).__name__]

def case_hooks_misc():
    lin = nn.Linear(3, 2); lin.weight.data = W(2, 3); lin.bias.data = W(2, seed=1)
    log = []
    h1 = lin.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
    h2 = lin.register_forward_hook(lambda m, args, kwargs, out: out + 1, with_kwargs=True)
    h3 = lin.register_full_backward_hook(lambda m, gin, gout: log.append([g.shape for g in gout]))
    x = W(4, 3, seed=2).requires_grad_()
    y = lin(x); y.sum().backward()
    h1.remove(); h2.remove(); h3.remove()
    z = lin(x)
    hk = x.register_hook(lambda g: g * 0)
    (x * 3).sum().backward()
    pgrads = []
    for p in lin.parameters():
        p.register_post_accumulate_grad_hook(lambda p: pgrads.append(p.grad.clone()))
    lin(x).sum().backward()
    return [y, z, x.grad, [list(map(tuple, l)) for l in log], len(pgrads), sorted(tuple(g.shape) for g in pgrads)]


# model ensembling (torch.func tutorial) and modules with extra state
class SimpleMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8); self.fc2 = nn.Linear(8, 3)
        self.register_buffer("scale", torch.ones(1))
    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x.flatten(1)))) * self.scale

def case_ensemble():
    models = [SimpleMLP() for _ in range(4)]
    for k, m in enumerate(models):
        with torch.no_grad():
            for i, p in enumerate(m.parameters()): p.copy_(W(*p.shape, seed=10 * k + i))
            m.scale.fill_(k + 1)
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0])
    def fmodel(params, buffers, x):
        return functional_call(base, (params, buffers), (x,))
    x = W(5, 2, 3, seed=99)
    same = vmap(fmodel, in_dims=(0, 0, None))(params, buffers, x)
    xs = W(4, 5, 2, 3, seed=98)
    diff = vmap(fmodel)(params, buffers, xs)
    loop = torch.stack([m(x) for m in models])
    loss = same.pow(2).mean(); loss.backward()
    return [same, diff, loop, params["fc1.weight"].shape, params["fc1.weight"].requires_grad, params["fc1.weight"].is_leaf, params["fc2.bias"].grad, buffers["scale"].shape]

class Extra(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2); self.steps = 0
    def get_extra_state(self):
        return {"steps": self.steps}
    def set_extra_state(self, state):
        self.steps = state["steps"]

def case_extra_state():
    m = nn.Sequential(Extra(), nn.ReLU())
    m[0].steps = 7
    sd = m.state_dict()
    m2 = nn.Sequential(Extra(), nn.ReLU())
    r = m2.load_state_dict(sd)
    try:
        nn.Sequential(Extra()).load_state_dict({"0.lin.weight": torch.ones(2, 2), "0.lin.bias": torch.ones(2)})
        err = "none"
    except RuntimeError as e:
        err = "missing" if "_extra_state" in str(e) else str(e)
    return [sorted(sd.keys()), sd["0._extra_state"], m2[0].steps, repr(r), err]
