"""Multi-scale deformable attention: both formulations vs an explicit-loop reference, gradcheck, module."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from wsovvis.errors import WsovvisError
from wsovvis.modeling.ops import MSDeformAttn, ms_deform_attn
from wsovvis.modeling.ops import ms_deform_attn_func as func
from wsovvis.modeling.ops import ms_deform_attn_module as module_file

IMPLS = ["grid_sample", "embedding_bag"]


def loop_reference(value, shapes, locations, weights):
    """Bilinear sampling at ``loc * size - 0.5`` with zeros outside, one point at a time."""
    N, S, M, D = value.shape
    _, Lq, _, L, P, _ = locations.shape
    out = torch.zeros(N, Lq, M, D, dtype=value.dtype)
    starts = [0]
    for h, w in shapes[:-1]:
        starts.append(starts[-1] + h * w)
    for n in range(N):
        for q in range(Lq):
            for m in range(M):
                for lvl, (h, w) in enumerate(shapes):
                    for p in range(P):
                        x = float(locations[n, q, m, lvl, p, 0]) * w - 0.5
                        y = float(locations[n, q, m, lvl, p, 1]) * h - 0.5
                        x0, y0 = math.floor(x), math.floor(y)
                        acc = torch.zeros(D, dtype=value.dtype)
                        for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
                            for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
                                if 0 <= xx < w and 0 <= yy < h:
                                    acc = acc + wx * wy * value[n, starts[lvl] + yy * w + xx, m]
                        out[n, q, m] += weights[n, q, m, lvl, p] * acc
    return out.reshape(N, Lq, M * D)


def make_inputs(shapes, N=2, Lq=5, M=2, D=3, P=2, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    ss = torch.tensor(shapes, dtype=torch.long)
    lsi = torch.cat([ss.new_zeros(1), (ss[:, 0] * ss[:, 1]).cumsum(0)[:-1]])
    S = int((ss[:, 0] * ss[:, 1]).sum())
    L = len(shapes)
    value = torch.randn(N, S, M, D, generator=g, dtype=dtype)
    # locations reach outside [0, 1] so that the zero padding is exercised
    loc = torch.rand(N, Lq, M, L, P, 2, generator=g, dtype=dtype) * 1.4 - 0.2
    w = torch.rand(N, Lq, M, L, P, generator=g, dtype=dtype)
    w = w / w.sum((-1, -2), keepdim=True)
    return value, ss, lsi, loc, w


SHAPES = [(4, 5), (2, 3), (1, 1)]


@pytest.mark.parametrize("impl", IMPLS)
def test_matches_loop_reference(impl):
    value, ss, lsi, loc, w = make_inputs(SHAPES)
    ref = loop_reference(value, SHAPES, loc, w)
    out = ms_deform_attn(value, ss, lsi, loc, w, impl=impl)
    assert out.shape == (2, 5, 6)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_points_outside_give_zero_and_pixel_centres_give_values():
    value, ss, lsi, loc, w = make_inputs([(3, 4)], N=1, Lq=2, M=1, D=2, P=1)
    loc[0, 0, 0, 0, 0] = torch.tensor([-0.5, 0.5])  # far left of the map
    loc[0, 1, 0, 0, 0] = torch.tensor([(2 + 0.5) / 4, (1 + 0.5) / 3])  # centre of pixel (x=2, y=1)
    w[:] = 1
    for impl in IMPLS:
        out = ms_deform_attn(value, ss, lsi, loc, w, impl=impl)
        assert torch.all(out[0, 0] == 0)
        torch.testing.assert_close(out[0, 1], value[0, 1 * 4 + 2, 0])


@pytest.mark.parametrize("impl", IMPLS)
def test_gradcheck_float64(impl):
    value, ss, lsi, loc, w = make_inputs([(3, 4), (2, 2)], N=1, Lq=3, M=2, D=2, P=2, seed=3)
    value.requires_grad_()
    loc.requires_grad_()
    w.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda v, l_, a: ms_deform_attn(v, ss, lsi, l_, a, impl=impl), (value, loc, w), eps=1e-6, atol=1e-5
    )


def test_float32_implementations_agree_with_gradients():
    value, ss, lsi, loc, w = (t.float() if t.is_floating_point() else t for t in make_inputs(SHAPES, Lq=7))
    grads = []
    for impl in IMPLS:
        v, l_, a = (t.clone().requires_grad_() for t in (value, loc, w))
        out = ms_deform_attn(v, ss, lsi, l_, a, impl=impl)
        grads.append((out, *torch.autograd.grad(out.square().sum(), (v, l_, a))))
    for x, y in zip(*grads):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-4)


def test_auto_uses_fast_path_without_grad_and_falls_back_with_a_warning(monkeypatch, caplog):
    value, ss, lsi, loc, w = make_inputs(SHAPES)
    calls = []

    def broken(*args):
        calls.append(1)
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(func, "ms_deform_attn_embedding_bag", broken)
    monkeypatch.setattr(func, "_fast_path_broken", set())
    monkeypatch.setattr(logging.getLogger("wsovvis"), "propagate", True)
    with caplog.at_level(logging.WARNING, logger="wsovvis"):
        out = ms_deform_attn(value, ss, lsi, loc, w, impl="auto")
        out2 = ms_deform_attn(value, ss, lsi, loc, w, impl="auto")
    assert len(calls) == 1  # tried once, then remembered as broken
    assert "embedding_bag path failed" in caplog.text
    torch.testing.assert_close(out, loop_reference(value, SHAPES, loc, w))
    torch.testing.assert_close(out2, out)
    # with gradients the plain path is chosen without trying the gather path
    monkeypatch.setattr(func, "_fast_path_broken", set())
    ms_deform_attn(value.requires_grad_(), ss, lsi, loc, w, impl="auto")
    assert len(calls) == 1


def test_unknown_impl_is_an_error():
    value, ss, lsi, loc, w = make_inputs(SHAPES)
    with pytest.raises(WsovvisError, match="unknown implementation 'cuda'"):
        ms_deform_attn(value, ss, lsi, loc, w, impl="cuda")


def test_module_init_follows_deformable_detr():
    attn = MSDeformAttn(d_model=32, n_levels=2, n_heads=8, n_points=3)
    bias = attn.sampling_offsets.bias.view(8, 2, 3, 2)
    # head 0 points right, head 2 up (+y), head 1 diagonally; point p at distance p+1
    torch.testing.assert_close(bias[0, 1, :, :], torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]))
    torch.testing.assert_close(bias[2, 0, 1], torch.tensor([0.0, 2.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(bias[1, 0, 0], torch.tensor([1.0, 1.0]))
    assert torch.all(attn.sampling_offsets.weight == 0)
    assert torch.all(attn.attention_weights.weight == 0) and torch.all(attn.attention_weights.bias == 0)
    assert torch.all(attn.value_proj.bias == 0) and torch.all(attn.output_proj_box.bias == 0)
    enc = MSDeformAttn(d_model=32, n_levels=2, n_heads=8, n_points=3, box_output=False)
    assert not enc.output_proj_box.weight.requires_grad and enc.value_proj.weight.requires_grad


def _module_inputs(seed=0, N=1, Lq=4, C=16):
    g = torch.Generator().manual_seed(seed)
    shapes = torch.tensor([[4, 4], [2, 2]])
    src = torch.randn(N, 20, C, generator=g)
    query = torch.randn(N, Lq, C, generator=g)
    return shapes, torch.tensor([0, 16]), src, query


def test_module_locations_for_2d_and_4d_references(monkeypatch):
    torch.manual_seed(0)
    attn = MSDeformAttn(d_model=16, n_levels=2, n_heads=2, n_points=2, box_output=False, impl="grid_sample")
    shapes, lsi, src, query = _module_inputs()
    seen = {}

    def capture(value, ss, starts, loc, w, impl):
        seen["loc"] = loc
        return value.new_zeros(value.shape[0], loc.shape[1], value.shape[2] * value.shape[3])

    monkeypatch.setattr(module_file, "ms_deform_attn", capture)
    ref2 = torch.rand(1, 4, 2, 2)
    attn(query, ref2, src, shapes, lsi)
    off = attn.sampling_offsets(query).view(1, 4, 2, 2, 2, 2)
    # 2-d: offsets are in pixels of each level: divide by (w, h)
    expect = ref2[:, :, None, :, None, :] + off / torch.tensor([[4.0, 4.0], [2.0, 2.0]])[None, None, None, :, None, :]
    torch.testing.assert_close(seen["loc"], expect)
    ref4 = torch.rand(1, 4, 2, 4)
    attn(query, ref4, src, shapes, lsi)
    expect = ref4[:, :, None, :, None, :2] + off / 2 * ref4[:, :, None, :, None, 2:] * 0.5
    torch.testing.assert_close(seen["loc"], expect)
    with pytest.raises(WsovvisError, match="2 or 4"):
        attn(query, torch.rand(1, 4, 2, 3), src, shapes, lsi)


def test_module_padding_mask_zeroes_padded_values():
    torch.manual_seed(0)
    attn = MSDeformAttn(d_model=16, n_levels=2, n_heads=2, n_points=2, box_output=True)
    with torch.no_grad():
        attn.sampling_offsets.weight.normal_(0, 0.5)  # spread the points over the map
    shapes, lsi, src, query = _module_inputs()
    mask = torch.zeros(1, 20, dtype=torch.bool)
    mask[0, 8:16] = True  # bottom two rows of level 0
    ref = torch.rand(1, 4, 2, 2)
    out, out_box = attn(query, ref, src, shapes, lsi, mask)
    changed = src.clone()
    changed[0, 8:16] += 100.0
    out2, _ = attn(query, ref, changed, shapes, lsi, mask)
    torch.testing.assert_close(out, out2)
    out3, _ = attn(query, ref, changed, shapes, lsi, None)
    assert not torch.allclose(out, out3)
    assert out_box.shape == out.shape == (1, 4, 16)
