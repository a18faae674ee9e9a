"""torch.optim.LBFGS: limited-memory BFGS with an optional strong-Wolfe line search.

step(closure) runs up to max_iter quasi-Newton iterations. The search direction comes
from the two-loop recursion over the last `history_size` curvature pairs (s, y); the
step is `lr` (the very first one scaled by 1/|grad|_1), or, with
line_search_fn='strong_wolfe', the step a bracketing + zoom line search finds that
satisfies the strong Wolfe conditions (sufficient decrease c1=1e-4, curvature c2=0.9).

Scalars derived from tensors (ys, ro, H_diag, the directional derivatives) stay 0-d
tensors in the parameters' dtype, as PyTorch keeps them, so float32 problems round
alike; the state (on the first parameter) has torch's keys, so a run can resume from
a torch state_dict. Complex parameters are optimized as (re, im) pairs.
"""
from __future__ import annotations

from ..autograd import no_grad
from .optimizer import Optimizer, check_lr

# strong-Wolfe constants (PyTorch's defaults, not user-settable there either)
_C1, _C2, _MAX_LINE_SEARCH = 1e-4, 0.9, 25


def _real(t):
    if t.dtype.is_complex:
        from ... import view_as_real
        return view_as_real(t)
    return t


def _as_float(value) -> float:
    return value.item() if hasattr(value, "item") else float(value)


def _cubic_minimum(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimizer of the cubic through (x1, f1, slope g1) and (x2, f2, slope g2),
    clamped into `bounds` (default: between x1 and x2); their midpoint where the cubic
    has no real minimizer."""
    low, high = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square >= 0:
        d2 = d2_square.sqrt() if hasattr(d2_square, "sqrt") else d2_square ** 0.5
        if x1 <= x2:
            at = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            at = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(at, low), high)
    return (low + high) / 2.0


class _Bracket:
    """Two trial steps (t, loss, grad, directional derivative) around an acceptable step;
    `low` indexes the one with the lower loss."""

    def __init__(self, points):
        self.points = points            # [(t, f, g, gtd), (t, f, g, gtd)]
        self._order()

    def _order(self):
        self.low, self.high = (0, 1) if self.points[0][1] <= self.points[-1][1] else (1, 0)

    def steps(self):
        return [p[0] for p in self.points]

    def replace(self, index, point):
        self.points[index] = point
        self._order()


def _strong_wolfe(evaluate, t, d, f, g, gtd, tolerance_change):
    """Line search along d from loss f (gradient g, slope gtd): returns (loss, grad, t,
    evaluations). `evaluate(t)` returns (loss, grad) at the step t without moving."""
    d_norm = d.abs().max()
    g = g.clone()
    f_new, g_new = evaluate(t)
    evals = 1
    gtd_new = g_new.dot(d)
    prev = (0, f, g, gtd)
    bracket, done, iters = None, False, 0
    # phase 1: grow the step until an interval holds a strong-Wolfe point
    while iters < _MAX_LINE_SEARCH:
        if f_new > (f + _C1 * t * gtd) or (iters > 1 and f_new >= prev[1]):
            bracket = _Bracket([prev, (t, f_new, g_new.clone(), gtd_new)])
            break
        if abs(gtd_new) <= -_C2 * gtd:
            return f_new, g_new, t, evals
        if gtd_new >= 0:
            bracket = _Bracket([prev, (t, f_new, g_new.clone(), gtd_new)])
            break
        # extrapolate: a cubic step between 1.01 t and 10 t
        t_next = _cubic_minimum(prev[0], prev[1], prev[3], t, f_new, gtd_new,
                                bounds=(t + 0.01 * (t - prev[0]), t * 10))
        prev = (t, f_new, g_new.clone(), gtd_new)
        t = t_next
        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = g_new.dot(d)
        iters += 1
    if iters == _MAX_LINE_SEARCH:        # no bracket found: the last step is taken
        bracket = _Bracket([(0, f, g, None), (t, f_new, g_new, None)])
    # phase 2: zoom into the bracket
    insufficient_progress = False
    while not done and iters < _MAX_LINE_SEARCH:
        steps = bracket.steps()
        if abs(steps[1] - steps[0]) * d_norm < tolerance_change:
            break
        (t0, f0, _, s0), (t1, f1, _, s1) = bracket.points
        t = _cubic_minimum(t0, f0, s0, t1, f1, s1)
        t = _keep_off_the_ends(t, steps, insufficient_progress)
        insufficient_progress = t[1]
        t = t[0]
        f_new, g_new = evaluate(t)
        evals += 1
        gtd_new = g_new.dot(d)
        iters += 1
        point = (t, f_new, g_new.clone(), gtd_new)
        if f_new > (f + _C1 * t * gtd) or f_new >= bracket.points[bracket.low][1]:
            bracket.replace(bracket.high, point)
        else:
            if abs(gtd_new) <= -_C2 * gtd:
                done = True
            elif gtd_new * (steps[bracket.high] - steps[bracket.low]) >= 0:
                bracket.points[bracket.high] = bracket.points[bracket.low]
            bracket.points[bracket.low] = point
    t, f_new, g_new, _ = bracket.points[bracket.low]
    return f_new, g_new, t, evals


def _keep_off_the_ends(t, steps, insufficient_progress):
    """A zoom step within 10% of the bracket's ends makes little progress: the second
    time in a row (or outside the bracket) it moves to 10% inside. Returns (t, flag)."""
    high, low = max(steps), min(steps)
    margin = 0.1 * (high - low)
    if min(high - t, t - low) < margin:
        if insufficient_progress or t >= high or t <= low:
            t = high - margin if abs(t - high) < abs(t - low) else low + margin
            return t, False
        return t, True
    return t, False


class LBFGS(Optimizer):
    def __init__(self, params, lr: float = 1, max_iter: int = 20, max_eval=None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 history_size: int = 100, line_search_fn=None):
        check_lr(lr)
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                                      tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change,
                                      history_size=history_size,
                                      line_search_fn=line_search_fn))
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]

    # -- the parameters as one flat vector -----------------------------------------------
    def _flat_grad(self):
        from ... import cat, zeros
        views = []
        for p in self._params:
            if p.grad is None:
                views.append(zeros(_real(p).numel(), dtype=_real(p).dtype, device=p.device))
            else:
                views.append(_real(p.grad).reshape(-1))
        return cat(views, 0)

    def _add_grad(self, step_size, direction) -> None:
        offset, alpha = 0, _as_float(step_size)
        for p in self._params:
            view = _real(p)
            numel = view.numel()
            view.add_(direction[offset:offset + numel].view_as(view), alpha=alpha)
            offset += numel

    def _evaluate_at(self, closure, start, step, direction):
        """Loss and flat gradient at start + step * direction; the parameters return to
        `start` afterwards."""
        self._add_grad(step, direction)
        loss = float(self._closure_loss(closure))
        flat_grad = self._flat_grad()
        for p, value in zip(self._params, start):
            p.copy_(value)
        return loss, flat_grad

    # -- step ----------------------------------------------------------------------------
    def step(self, closure):
        if closure is None:
            raise RuntimeError("LBFGS.step() needs a closure that re-evaluates the model "
                               "and returns the loss")
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        orig_loss = self._closure_loss(closure)
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        with no_grad():
            flat_grad = self._flat_grad()
            if flat_grad.abs().max() <= tolerance_grad:
                return orig_loss
            d, t = state.get("d"), state.get("t")
            old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
            H_diag, prev_flat_grad = state.get("H_diag"), state.get("prev_flat_grad")
            prev_loss = state.get("prev_loss")
            n_iter = 0
            while n_iter < max_iter:
                n_iter += 1
                state["n_iter"] += 1
                if state["n_iter"] == 1:
                    d, old_dirs, old_stps, ro, H_diag = flat_grad.neg(), [], [], [], 1
                else:
                    H_diag = self._remember_pair(flat_grad.sub(prev_flat_grad), d.mul(t),
                                                 old_dirs, old_stps, ro, H_diag,
                                                 group["history_size"])
                    d = self._direction(state, flat_grad, old_dirs, old_stps, ro, H_diag,
                                        group["history_size"])
                if prev_flat_grad is None:
                    prev_flat_grad = flat_grad.clone()
                else:
                    prev_flat_grad.copy_(flat_grad)
                prev_loss = loss
                if state["n_iter"] == 1:
                    t = min(1.0, 1.0 / flat_grad.abs().sum()) * lr
                else:
                    t = lr
                gtd = flat_grad.dot(d)
                if gtd > -tolerance_change:          # not a descent direction
                    break
                evals, opt_cond = 0, False
                if group["line_search_fn"] is not None:
                    if group["line_search_fn"] != "strong_wolfe":   # (torch checks here too)
                        raise RuntimeError("LBFGS: only line_search_fn='strong_wolfe' is "
                                           f"supported, not {group['line_search_fn']!r}")
                    start = [p.clone() for p in self._params]
                    loss, flat_grad, t, evals = _strong_wolfe(
                        lambda step: self._evaluate_at(closure, start, step, d), t, d, loss,
                        flat_grad, gtd, tolerance_change)
                    self._add_grad(t, d)
                    opt_cond = bool(flat_grad.abs().max() <= tolerance_grad)
                else:
                    self._add_grad(t, d)
                    if n_iter != max_iter:
                        loss = float(self._closure_loss(closure))
                        flat_grad = self._flat_grad()
                        opt_cond = bool(flat_grad.abs().max() <= tolerance_grad)
                        evals = 1
                current_evals += evals
                state["func_evals"] += evals
                if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                    break
                if d.mul(t).abs().max() <= tolerance_change:
                    break
                if abs(loss - prev_loss) < tolerance_change:
                    break
            state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro,
                         H_diag=H_diag, prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return orig_loss

    @staticmethod
    def _remember_pair(y, s, old_dirs, old_stps, ro, H_diag, history_size):
        """Keep the last step's curvature pair when its curvature ys is positive (dropping
        the oldest past history_size); returns the new initial Hessian scale."""
        ys = y.dot(s)
        if ys > 1e-10:
            if len(old_dirs) == history_size:
                old_dirs.pop(0)
                old_stps.pop(0)
                ro.pop(0)
            old_dirs.append(y)
            old_stps.append(s)
            ro.append(1.0 / ys)
            H_diag = ys / y.dot(y)
        return H_diag

    @staticmethod
    def _direction(state, flat_grad, old_dirs, old_stps, ro, H_diag, history_size):
        """The two-loop recursion: -H grad from the stored pairs (state['al'] keeps the
        first loop's coefficients, as torch's state does)."""
        if "al" not in state:
            state["al"] = [None] * history_size
        al = state["al"]
        # the coefficients stay 0-dim tensors: y * a then one add is what add_(y, alpha=a)
        # computes, bit for bit, without reading each back to the host (a sync on a GPU),
        # and a different Python alpha on every call would miss the eager call cache
        q = flat_grad.neg()
        for i in range(len(old_dirs) - 1, -1, -1):
            al[i] = old_stps[i].dot(q) * ro[i]
            q.sub_(old_dirs[i].mul(al[i]))
        r = q.mul(H_diag)
        for i in range(len(old_dirs)):
            beta = old_dirs[i].dot(r) * ro[i]
            r.add_(old_stps[i].mul(al[i] - beta))
        return r


__all__ = ["LBFGS"]
