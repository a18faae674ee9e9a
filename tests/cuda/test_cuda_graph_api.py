"""ember.cuda.CUDAGraph / ember.cuda.graph / graph_pool_handle: PyTorch's whole-network
capture recipe (warm up on a side stream, capture forward, loss, backward and the
optimizer step, then copy new data into the static inputs and replay) gives the same
losses and parameters as running the steps eagerly. The replay tests need a GPU
(marked `cuda`); the argument checks run everywhere."""
import copy

import numpy as np
import pytest

import ember


def test_graph_arguments_are_checked_before_any_capture():
    g = ember.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="replay"):
        g.replay()
    with pytest.raises(ValueError, match="capture_error_mode"):
        g.capture_begin(capture_error_mode="loose")
    with pytest.raises(RuntimeError, match="capture_end"):
        g.capture_end()
    assert ember.cuda.is_current_stream_capturing() is False


def _step(model, opt, loss_fn, x, y):
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    return loss


@pytest.mark.cuda
def test_captured_training_step_replays_like_eager():
    ember.manual_seed(0)
    ref = ember.models.mlp(32, (64, 32), num_classes=5).cuda()
    model = copy.deepcopy(ref)
    loss_fn = ember.nn.CrossEntropyLoss()
    opt = ember.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    opt_ref = ember.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9)
    batches = [(ember.randn(16, 32).cuda(), ember.randint(0, 5, (16,)).cuda())
               for _ in range(6)]
    static_x, static_y = batches[0][0].clone(), batches[0][1].clone()
    side = ember.cuda.Stream()
    side.wait_stream(ember.cuda.current_stream())
    with ember.cuda.stream(side):                  # warm-up: momentum buffers exist
        for x, y in batches[:2]:
            static_x.copy_(x)
            static_y.copy_(y)
            _step(model, opt, loss_fn, static_x, static_y)
    ember.cuda.current_stream().wait_stream(side)
    want = [_step(ref, opt_ref, loss_fn, x, y).item() for x, y in batches]

    g = ember.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with ember.cuda.graph(g):
        static_loss = loss_fn(model(static_x), static_y)
        static_loss.backward()
        opt.step()
    got = want[:2]
    for x, y in batches[2:]:
        static_x.copy_(x)
        static_y.copy_(y)
        g.replay()
        got.append(static_loss.item())
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    for p, q in zip(model.parameters(), ref.parameters()):
        np.testing.assert_allclose(p.detach().cpu().numpy(), q.detach().cpu().numpy(),
                                   rtol=1e-4, atol=1e-5)


@pytest.mark.cuda
def test_capture_on_the_default_stream_is_refused_and_pools_are_shared():
    g = ember.cuda.CUDAGraph()
    with pytest.raises(RuntimeError, match="non-default stream"):
        g.capture_begin()
    x = ember.randn(1000).cuda()
    pool = ember.cuda.graph_pool_handle()
    first, second = ember.cuda.CUDAGraph(), ember.cuda.CUDAGraph()
    with ember.cuda.graph(first, pool=pool):
        capturing = ember.cuda.is_current_stream_capturing()
        y = x * 2.0 + 1.0
    assert capturing and not ember.cuda.is_current_stream_capturing()
    with ember.cuda.graph(second, pool=first.pool()):
        z = y.sin()
    x.copy_(ember.arange(1000, dtype=ember.float32).cuda())
    first.replay()
    second.replay()
    expected = np.sin(np.arange(1000, dtype=np.float32) * 2.0 + 1.0)
    np.testing.assert_allclose(z.cpu().numpy(), expected, rtol=1e-5, atol=1e-5)
