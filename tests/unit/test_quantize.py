"""Reduced-precision decoder LM (shared/model/quantize.py): our LUISE bundle's LM's next-token distribution in int8
stays close to fp32's, the fp32 model is left as it was (or quantized in place, as a server does), and the setting
turns it off; bf16 linears stay close to fp32 and give a row the same output whatever rows share its call."""

import pytest
import torch
from torch import nn

from shared.bundle import load_bundle
from shared.bundle_store import LUISE_BUNDLE
from shared.model.quantize import Bf16Linear, bf16_linears, int8_supported, quantize_linears
from shared.recognition import AsrCore
from shared.settings import load_settings


@pytest.mark.weights
def test_int8_lm_ranks_next_tokens_as_the_fp32_lm_does() -> None:
    assert int8_supported()  # else quantize_linears hands back the fp32 LM and the rest compares it to itself
    model, tok, _ = load_bundle(LUISE_BUNDLE)
    lm = model.lm.eval()
    int8 = quantize_linears(lm)
    ids = torch.tensor([tok.encode("please remind me to call my sister tomorrow morning")])
    with torch.inference_mode():
        valid = torch.ones_like(ids, dtype=torch.bool)
        ref = lm(lm.embed(ids), valid)[0].log_softmax(-1)[0]  # (T, V)
        got = int8(int8.embed(ids), valid)[0].log_softmax(-1)[0]
    # measured when int8 was introduced: 16 of 17 positions agree, at most 0.42 nats apart on the fp32 top 5; a broken
    # quantization is many nats off. Int8 per-channel weights measured 0.29 nats but 15 of 17 agreeing.
    assert (ref.argmax(-1) == got.argmax(-1)).float().mean() >= 0.85
    top = ref.topk(5, -1).indices
    assert (ref.gather(1, top) - got.gather(1, top)).abs().max() < 0.6  # nats, on the tokens a beam keeps
    assert all(isinstance(m, nn.Linear) for m in lm.modules() if "Linear" in type(m).__name__)  # fp32 left alone


def test_lm_int8_is_a_switch(tiny_bundle) -> None:
    fp32 = AsrCore(tiny_bundle, lm_int8=False)
    assert fp32.lm is fp32.model.lm
    int8 = AsrCore(tiny_bundle, lm_int8=True)
    assert not any(isinstance(m, nn.Linear) for m in int8.lm.modules())
    assert int8.lm is int8.model.lm  # quantized in place: the server holds no fp32 copy of the linears


def test_in_place_int8_is_the_copy_int8() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4))
    x = torch.randn(5, 8)
    copied = quantize_linears(net)
    assert isinstance(net[0], nn.Linear)
    in_place = quantize_linears(net, inplace=True)
    assert in_place is net and not isinstance(net[0], nn.Linear)
    assert torch.equal(copied(x), in_place(x))


def test_int8_output_layer_alone_leaves_the_blocks_fp32(tiny_bundle) -> None:
    core = AsrCore(tiny_bundle, lm_int8=True, lm_blocks="fp32")
    assert not isinstance(core.lm.head, nn.Linear)
    assert all(isinstance(m, nn.Linear) for name, m in core.lm.named_modules() if "Linear" in type(m).__name__
               and not name.startswith("head"))


def test_bf16_linear_is_near_fp32_and_rows_do_not_depend_on_each_other() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(512, 2048)
    bf16 = Bf16Linear(linear)
    x = torch.randn(8, 512)
    ref, got = linear(x), bf16(x)
    assert got.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: about 0.4% of the largest output here; a wrong layout is 100% off
    assert (got - ref).abs().max() < 0.01 * ref.abs().max()
    # the property int8's per-call activation scale lacks: a row alone equals that row among others
    alone = torch.cat([bf16(x[i : i + 1]) for i in range(len(x))])
    assert torch.allclose(alone, got, rtol=0, atol=1e-6)
    q = quantize_linears(nn.Sequential(linear))
    assert not torch.allclose(torch.cat([q(x[i : i + 1]) for i in range(len(x))]), q(x), rtol=0, atol=1e-6)


def test_bf16_linears_swaps_in_place_skips_by_name_and_keeps_shared_weights() -> None:
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))
    net = nn.ModuleDict({"a": mlp, "b": mlp, "router": nn.Linear(8, 2), "head": nn.Linear(8, 4)})
    x = torch.randn(3, 8)
    with torch.no_grad():
        ref = net["a"](x)
    assert bf16_linears(net, skip=("router", "head")) is net
    assert isinstance(net["a"][0], Bf16Linear) and net["a"] is net["b"]
    assert isinstance(net["router"], nn.Linear) and isinstance(net["head"], nn.Linear)
    with torch.no_grad():
        assert torch.allclose(net["a"](x), ref, atol=0.02 * float(ref.abs().max()))


def test_bf16_blocks_setting(tiny_bundle) -> None:
    fp32 = AsrCore(tiny_bundle, lm_int8=False)
    core = AsrCore(tiny_bundle, lm_int8=True, lm_blocks="bf16")
    assert not isinstance(core.lm.head, (nn.Linear, Bf16Linear))  # int8 output layer
    names = {name for name, m in core.lm.named_modules() if isinstance(m, Bf16Linear)}
    assert names and not any("router" in n or n.startswith("head") for n in names)
    assert not any(type(m) is nn.Linear for name, m in core.lm.named_modules() if "router" not in name)
    ids = torch.tensor([core.tok.encode("remind me to call my sister")])
    with torch.inference_mode():
        valid = torch.ones_like(ids, dtype=torch.bool)
        ref = fp32.lm(fp32.lm.embed(ids), valid)[0].log_softmax(-1)[0]
        got = core.lm(core.lm.embed(ids), valid)[0].log_softmax(-1)[0]
    assert (ref.argmax(-1) == got.argmax(-1)).float().mean() >= 0.85
    with pytest.raises(ValueError, match="lm_blocks"):
        AsrCore(tiny_bundle, lm_int8=True, lm_blocks="fp8")
    # SEEDASR_LM_BLOCKS reaches the model a server loads
    served = AsrCore.from_settings(load_settings(model=str(tiny_bundle), lm_blocks="bf16"), "decoder")
    assert any(isinstance(m, Bf16Linear) for m in served.lm.modules())
