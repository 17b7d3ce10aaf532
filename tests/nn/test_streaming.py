"""Streaming and batch paths of the nn building blocks give the same results; one row can restart."""

import pytest
import torch

from fullduplex.nn import StreamingConv1d, StreamingConvTranspose1d, StreamingTransformer, fast


@pytest.fixture(params=[True, False], ids=["fast", "plain"])
def kernels(request):
    fast.set_enabled(request.param)
    yield request.param
    fast.set_enabled(True)


@pytest.mark.parametrize("kernel,stride,dilation", [(1, 1, 1), (3, 1, 2), (4, 2, 1), (7, 1, 1), (16, 8, 1), (12, 6, 1)])
def test_conv_chunks_equal_whole(kernel, stride, dilation, kernels):
    torch.manual_seed(0)
    conv = StreamingConv1d(64, 128, kernel, stride, dilation=dilation).eval()
    convtr = StreamingConvTranspose1d(128, 64, max(kernel, stride), stride).eval()
    x = torch.randn(3, 64, 24 * stride)
    with torch.no_grad():
        y, z = conv(x), convtr(conv(x))
        assert y.shape == (3, 128, 24) and z.shape == (3, 64, 24 * stride)
        for chunk in (1, 2, 8):
            ys, zs = [], []
            with conv.streaming(3), convtr.streaming(3):
                for t in range(0, 24, chunk):
                    ys.append(conv(x[..., t * stride:(t + chunk) * stride]))
                    zs.append(convtr(ys[-1]))
            torch.testing.assert_close(torch.cat(ys, -1), y, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(torch.cat(zs, -1), z, atol=1e-5, rtol=1e-5)


def test_conv_rejects_partial_stride():
    conv = StreamingConv1d(2, 2, 4, 2)
    with pytest.raises(ValueError, match="multiple of the stride"):
        conv(torch.randn(1, 2, 5))


def test_replicate_padding_uses_first_sample():
    conv = StreamingConv1d(1, 1, 4, 2, bias=False, pad_mode="replicate").eval()
    x = torch.full((1, 1, 8), 2.0)
    with torch.no_grad():
        y = conv(x)  # every window sees only 2.0 (the padding repeats the first sample)
        torch.testing.assert_close(y, torch.full_like(y, 2.0 * float(conv.conv.conv.weight.sum())))


def _tr(**kw):
    base = dict(d_model=32, num_heads=4, num_layers=2, dim_feedforward=64, causal=True, context=6,
                positional_embedding="rope", layer_scale=0.1, norm="layer_norm", gating="none")
    base.update(kw)
    torch.manual_seed(0)
    return StreamingTransformer(**base).eval()


@pytest.mark.parametrize("kw", [{}, dict(norm="rms_norm_f32", gating="silu", kv_repeat=2),
                                dict(positional_embedding="rope_concat", context=50)])
def test_transformer_streaming_equals_batch(kw, kernels):
    tr = _tr(**kw)
    x = torch.randn(2, 20, 32)
    with torch.no_grad():
        whole = tr(x)
        with tr.streaming(2):
            steps = torch.cat([tr(x[:, t:t + 1]) for t in range(20)], dim=1)
    torch.testing.assert_close(steps, whole, atol=1e-5, rtol=1e-5)
    # 20 steps through a 6-step cache: the ring buffer wrapped around three times


@pytest.mark.parametrize("kw", [{}, dict(norm="rms_norm_f32", gating="silu", kv_repeat=2)])
@pytest.mark.parametrize("chunk", [1, 2, 3, 4])
def test_fused_streaming_step_equals_the_layers_one_by_one(kw, chunk, kernels):
    """The fused inference step (positions, mask and RoPE once for all layers) computes what the
    layers compute one by one, for chunks across the ring's end and rows out of step (row 1 restarts)."""
    from fullduplex.nn.transformer import StreamingTransformer

    tr = _tr(**kw)
    x = torch.randn(2, 22, 32)
    outs = []
    for fused in (True, False):
        ys = []
        with torch.no_grad(), tr.streaming(2):
            for t in range(0, 22, chunk):
                if t == 2 * chunk:
                    tr.reset_streaming(torch.tensor([False, True]))
                if not fused:  # the layer-by-layer path
                    y = x[:, t:t + chunk]
                    for layer in tr.layers:
                        y = layer(y)
                else:
                    assert tr._fast_step_ok(x[:, t:t + chunk])
                    y = StreamingTransformer.forward(tr, x[:, t:t + chunk])
                ys.append(y)
        outs.append(torch.cat(ys, dim=1))
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-5)


def test_skip_leaves_the_cache_as_real_steps_do():
    """skip(k) (for benchmarks of long sessions) puts positions where k real steps put them."""
    tr = _tr()
    x = torch.randn(2, 9, 32)
    with torch.no_grad():
        for k in (4, 9):  # within the 6-step cache, and past its end
            with tr.streaming(2):
                for t in range(k):
                    tr(x[:, t:t + 1])
                real = [(layer.self_attn._streaming_state.positions.clone(),
                         layer.self_attn._streaming_state.offset.clone()) for layer in tr.layers]
            with tr.streaming(2):
                for layer in tr.layers:
                    layer.self_attn._streaming_state.skip(k)
                skipped = [(layer.self_attn._streaming_state.positions, layer.self_attn._streaming_state.offset)
                           for layer in tr.layers]
                for (p1, o1), (p2, o2) in zip(real, skipped):
                    assert torch.equal(p1, p2) and torch.equal(o1, o2), k
                tr(x[:, :1])  # and it goes on from there


def test_reset_one_row_restarts_only_that_session():
    tr = _tr(context=50)
    conv = StreamingConv1d(32, 32, 4, 2).eval()
    x = torch.randn(2, 12, 32)
    with torch.no_grad():
        with tr.streaming(2), conv.streaming(2):
            first = [tr(x[:, t:t + 1]) for t in range(6)]
            first_c = conv(x[:, :6].transpose(1, 2))
            tr.reset_streaming(torch.tensor([False, True]))
            conv.reset_streaming(torch.tensor([False, True]))
            after = torch.cat([tr(x[:, t:t + 1]) for t in range(6, 12)], dim=1)
            after_c = conv(x[:, 6:].transpose(1, 2))
        fresh = tr(x[1:, 6:12])  # row 1 restarted: as if its stream began at step 6
        cont = tr(x[:1])[:, 6:]  # row 0 continued
        torch.testing.assert_close(after[1:], fresh, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(after[:1], cont, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(after_c[1:], conv(x[1:, 6:].transpose(1, 2)), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(torch.cat([first_c, after_c], -1)[:1], conv(x[:1].transpose(1, 2)),
                                   atol=1e-5, rtol=1e-5)
        assert len(first) == 6


def test_reset_outside_streaming_is_an_error():
    with pytest.raises(RuntimeError, match="outside streaming"):
        _tr().reset_streaming()


def test_streaming_beyond_cache_is_refused():
    tr = _tr(context=4)
    with tr.streaming(1), pytest.raises(ValueError, match="exceed the attention cache"):
        tr(torch.randn(1, 5, 32))


def test_fast_linear_matches_plain():
    lin = fast.Linear(96, 40)
    x = torch.randn(3, 5, 96)
    with torch.no_grad():
        a = lin(x)
        fast.set_enabled(False)
        b = lin(x)
        fast.set_enabled(True)
        lin.weight.mul_(2)  # the packed copy must follow in-place changes
        c = lin(x)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(c - lin.bias, 2 * (b - lin.bias), atol=1e-4, rtol=1e-4)
    y = lin(x)  # with gradients: the plain path, differentiable
    y.sum().backward()
    assert lin.weight.grad is not None
