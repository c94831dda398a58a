"""Reduced-precision linear layers for the decoder LM on CPU: int8 (dynamic quantization: int8 weights,
activations quantized per call) or bfloat16 (weights and the product's inputs in bf16, the sum in fp32).

The beam search steps a few dozen rows at a time through small matrices, and the experts' linears
are most of its time (a py-spy profile). On the 240 tuning utterances (data/tune, tune_far,
tune_fortunes) the int8 LM at 8 beams gave 22.95% WER against fp32's 23.16% with 15% less CPU for the
whole recognition, which pays for 12 beams (22.62%) at about fp32-8-beam cost (the LUISE bundle's EVAL.md).

torch.ao's eager dynamic quantization is deprecated upstream in favour of torchao, whose CPU int8
path measured 7x slower than fp32 here (torchao 0.18, a 16x256 @ 256x512 linear), so the project
keeps the torch.ao kernels while torch is pinned; `SEEDASR_LM_INT8=0` decodes in fp32.

Dynamic int8 takes its activation scale over each call's rows, so one hypothesis's scores depend on the rows
it shares a call with (bundles/default/TUNING.md). A bf16 row depends on itself only; for the few rows of a beam
search step a bf16 linear ran 3x faster than fp32 here (oneDNN; 8 rows through 512x2048: 61 against 183 us),
and `torch._weight_int8pack_mm` (int8 weights, fp32 rows) 16x slower.
"""

from __future__ import annotations

import logging
import warnings
from typing import Optional, TypeVar, cast

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)
M = TypeVar("M", bound=nn.Module)


def int8_supported() -> bool:
    return any(engine in torch.backends.quantized.supported_engines for engine in ("fbgemm", "x86", "qnnpack"))


def quantize_linears(module: M, inplace: bool = False, only: Optional[set[str]] = None) -> M:
    """An inference copy of `module` with every nn.Linear replaced by its int8 dynamic form (the
    original is left as it is; tied weights such as the LM head are packed on their own). `inplace`
    swaps module's own linears instead: a server that never reads the fp32 weights does not hold them
    twice (the fp32 ones are freed layer by layer). `only`: the names of the linears to quantize (say
    {"head"}), every one when None."""
    if not int8_supported():
        log.warning("no int8 kernels in this torch build (%s): the LM stays fp32", torch.backends.quantized.supported_engines)
        return module
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the API's own deprecation notices, once per process start
        # a copy of the same class with its linears swapped, so a MoeLM stays a MoeLM
        return cast(M, torch.ao.quantization.quantize_dynamic(module, only or {nn.Linear}, dtype=torch.qint8, inplace=inplace))


LINEAR_PRECISIONS = ("fp32", "bf16", "int8")


class Bf16Linear(nn.Module):
    """An nn.Linear for inference with its weight in bfloat16: (.., in) fp32 -> (.., out) fp32. The input is
    rounded to bf16 for the product only (oneDNN sums in fp32); the bias is added in fp32."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = nn.Parameter(linear.weight.detach().to(torch.bfloat16), requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().float(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x.to(torch.bfloat16), self.weight).to(x.dtype)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def bf16_linears(module: M, skip: tuple[str, ...] = ()) -> M:
    """`module` with its nn.Linear layers swapped in place for Bf16Linear (the fp32 weights are freed), except
    those whose name (relative to `module`) or any parent's name is in `skip`. Weights that several linears
    share stay shared."""
    swapped: dict[int, Bf16Linear] = {}
    for name, child in list(module.named_modules()):
        for attr, sub in list(child.named_children()):
            path = f"{name}.{attr}" if name else attr
            if isinstance(sub, nn.Linear) and not any(part in skip for part in path.split(".")):
                setattr(child, attr, swapped.setdefault(id(sub), Bf16Linear(sub)))
    return module
