"""Graph code on sparse COO tensors in plain PyTorch: a Kipf-style GCN (normalized
adjacency built with sparse_coo_tensor, coalesce and torch.sparse.sum; torch.spmm and
torch.mm in the layers) trained a few steps, and the sparse basics (to_dense,
to_sparse, coalescing duplicates, products with dense tensors, gradients reaching the
sparse values, printing)."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

def W(*shape, seed=0):
    return torch.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))

def normalized_adjacency(edges, n):
    i = torch.tensor(edges).t()
    i = torch.cat([i, i.flip(0), torch.arange(n).repeat(2, 1)], dim=1)
    v = torch.ones(i.shape[1])
    a = torch.sparse_coo_tensor(i, v, (n, n)).coalesce()
    deg = torch.sparse.sum(a, dim=1).to_dense()
    dinv = deg.pow(-0.5)
    r, c = a.indices()
    return torch.sparse_coo_tensor(a.indices(), dinv[r] * a.values() * dinv[c], (n, n))

class GraphConvolution(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(i, o)); self.bias = nn.Parameter(torch.zeros(o))
    def forward(self, x, adj):
        support = torch.mm(x, self.weight)
        return torch.spmm(adj, support) + self.bias

class GCN(nn.Module):
    def __init__(self):
        super().__init__()
        self.gc1 = GraphConvolution(4, 8); self.gc2 = GraphConvolution(8, 3)
    def forward(self, x, adj):
        x = F.relu(self.gc1(x, adj))
        return F.log_softmax(torch.mm(adj, x @ self.gc2.weight) + self.gc2.bias, dim=1)

def case_gcn():
    adj = normalized_adjacency([[0, 1], [1, 2], [2, 3], [3, 4], [4, 0], [1, 3]], 5)
    m = GCN()
    with torch.no_grad():
        for i, p in enumerate(m.parameters()): p.copy_(W(*p.shape, seed=i) * 0.5)
    x = W(5, 4, seed=9); y = torch.tensor([0, 1, 2, 1, 0])
    opt = torch.optim.Adam(m.parameters(), lr=0.01, weight_decay=5e-4)
    losses = []
    for _ in range(3):
        opt.zero_grad(); loss = F.nll_loss(m(x, adj), y); loss.backward(); opt.step(); losses.append(loss.item())
    return [losses, adj.to_dense(), m(x, adj), adj._nnz(), adj.is_sparse, str(adj.layout)]

def case_sparse_basics():
    i = torch.tensor([[0, 1, 1, 2], [2, 0, 0, 1]])
    v = torch.tensor([3., 4., 5., 6.])
    s = torch.sparse_coo_tensor(i, v, (3, 3))
    c = s.coalesce()
    d = W(3, 3).masked_fill(W(3, 3, seed=1) > 0, 0)
    sp = d.to_sparse()
    g = torch.sparse_coo_tensor(i, v, (3, 3), requires_grad=True)
    out = torch.sparse.mm(g, W(3, 2, seed=2)).pow(2).sum(); out.backward()
    vec = torch.sparse.mm(s, W(3, 1, seed=3))
    return [s.to_dense(), c.indices(), c.values(), c.is_coalesced(), s.is_coalesced(), sp.indices(), sp.values(), sp.to_dense(),
            (s @ W(3, 2, seed=4)), (s * 2).to_dense(), (s + s).to_dense(), s.t().to_dense(), s.shape, s.sum(), torch.sparse.sum(s),
            g.grad.coalesce().values(), g.grad.coalesce().indices(), torch.sparse.sum(s, 0).to_dense(), vec, repr(c).replace("torch.", "")]
