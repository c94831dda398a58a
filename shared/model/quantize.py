"""Int8 weights for the decoder LM's linear layers on CPU (dynamic quantization: int8 weights,
activations quantized per call).

The beam search steps a few dozen rows at a time through small matrices, and the experts' linears
are most of its time (py-spy, stop 25). On the 240 tuning utterances (data/tune, tune_far,
tune_fortunes) the int8 LM at 8 beams gave 22.95% WER against fp32's 23.16% with 15% less CPU for the
whole recognition, which pays for 12 beams (22.62%) at about fp32-8-beam cost (EVAL.md, stop 25).

torch.ao's eager dynamic quantization is deprecated upstream in favour of torchao, whose CPU int8
path measured 7x slower than fp32 here (torchao 0.18, a 16x256 @ 256x512 linear), so the project
keeps the torch.ao kernels while torch is pinned; `SEEDASR_LM_INT8=0` decodes in fp32.
"""

from __future__ import annotations

import logging
import warnings
from typing import Optional, TypeVar, cast

import torch
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
