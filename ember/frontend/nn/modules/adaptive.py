"""AdaptiveLogSoftmaxWithLoss (Grave et al., "Efficient softmax approximation for GPUs"):
frequent classes in a head softmax, rarer ones in clusters reached through one head column
each, whose projections shrink by div_value per cluster. PyTorch's parameter names and
outputs (output, loss)."""
from __future__ import annotations

from collections import namedtuple

from .. import functional as F
from .container import ModuleList, Sequential
from .linear import Linear
from .module import Module

_ASMoutput = namedtuple("_ASMoutput", ["output", "loss"])


class AdaptiveLogSoftmaxWithLoss(Module):
    def __init__(self, in_features: int, n_classes: int, cutoffs, div_value: float = 4.0,
                 head_bias: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        cutoffs = list(cutoffs)
        if len(cutoffs) == 0 or cutoffs != sorted(cutoffs) or min(cutoffs) <= 0 or \
                max(cutoffs) > n_classes - 1 or len(set(cutoffs)) != len(cutoffs) or \
                any(int(c) != c for c in cutoffs):
            raise ValueError("cutoffs should be a sequence of unique, positive integers sorted "
                             "in an increasing order, where each value is between 1 and "
                             "n_classes-1")
        self.in_features, self.n_classes = in_features, n_classes
        self.cutoffs = cutoffs + [n_classes]
        self.div_value, self.head_bias = div_value, head_bias
        self.shortlist_size = self.cutoffs[0]
        self.n_clusters = len(self.cutoffs) - 1
        self.head_size = self.shortlist_size + self.n_clusters
        self.head = Linear(in_features, self.head_size, bias=head_bias, dtype=dtype)
        self.tail = ModuleList()
        for i in range(self.n_clusters):
            hidden = int(in_features // (div_value ** (i + 1)))
            size = self.cutoffs[i + 1] - self.cutoffs[i]
            self.tail.append(Sequential(Linear(in_features, hidden, bias=False, dtype=dtype),
                                        Linear(hidden, size, bias=False, dtype=dtype)))

    def reset_parameters(self) -> None:
        self.head.reset_parameters()
        for projection in self.tail:
            for layer in projection:
                layer.reset_parameters()

    def _check(self, input, target) -> None:
        if input.ndim not in (1, 2) or input.shape[-1] != self.in_features:
            raise ValueError(f"AdaptiveLogSoftmaxWithLoss: expected input of shape [N, "
                             f"{self.in_features}] or [{self.in_features}], got "
                             f"{list(input.shape)}")
        if target.ndim != input.ndim - 1 or (target.ndim and target.shape[0] != input.shape[0]):
            raise ValueError("Input and target should have the same size in the batch "
                             "dimension.")
        if target.numel() and (int(target.min()) < 0 or int(target.max()) >= self.n_classes):
            raise ValueError(f"Target values should be in [0, {self.n_classes - 1}], but "
                             f"values in range [{int(target.min())}, {int(target.max())}] "
                             f"were found. ")

    def forward(self, input, target):
        self._check(input, target)
        unbatched = input.ndim == 1
        if unbatched:
            input, target = input.unsqueeze(0), target.unsqueeze(0)
        head_logprob = F.log_softmax(self.head(input), dim=1)
        # the head column of each row: its class if in the shortlist, else its cluster's
        cluster = sum((target >= c).long() for c in self.cutoffs[:-1])
        head_column = target.where(cluster == 0, self.shortlist_size + cluster - 1)
        output = head_logprob.gather(1, head_column.unsqueeze(1)).squeeze(1)
        for i in range(1, self.n_clusters + 1):
            rows = (cluster == i).nonzero().reshape(-1)
            if rows.numel() == 0:
                continue
            local_target = target.index_select(0, rows) - self.cutoffs[i - 1]
            cluster_logprob = F.log_softmax(self.tail[i - 1](input.index_select(0, rows)), 1)
            local = cluster_logprob.gather(1, local_target.unsqueeze(1)).squeeze(1)
            output = output.index_add(0, rows, local)
        loss = (-output).mean()
        return _ASMoutput(output.squeeze(0) if unbatched else output, loss)

    def _full_log_prob(self, input, head_output):
        head_logprob = F.log_softmax(head_output, dim=1)
        parts = [head_logprob[:, :self.shortlist_size]]
        for i in range(self.n_clusters):
            cluster_logprob = F.log_softmax(self.tail[i](input), dim=1)
            parts.append(cluster_logprob +
                         head_logprob[:, self.shortlist_size + i].unsqueeze(1))
        return _cat(parts)

    def log_prob(self, input):
        """Log-probabilities of every class, [N, n_classes]."""
        unbatched = input.ndim == 1
        batch = input.unsqueeze(0) if unbatched else input
        out = self._full_log_prob(batch, self.head(batch))
        return out.squeeze(0) if unbatched else out

    def predict(self, input):
        """The most likely class of each row."""
        return self.log_prob(input).argmax(-1)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, n_classes={self.n_classes}, "
                f"cutoffs={self.cutoffs[:-1]}, div_value={self.div_value}")


def _cat(parts):
    from ....ir.registry import OPS
    return OPS["cat"](parts, 1)
