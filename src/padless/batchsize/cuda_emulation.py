"""Make a fake-tensor training step on the CPU allocate what it would allocate on a CUDA GPU.

padless's torch is a CPU build, and fake CUDA tensors do not work in it (any op that sets a
device guard aborts), so the simulator runs on fake *CPU* tensors. Tensor sizes do not depend
on the device, but three device-specific decisions change which tensors a step allocates:

1. **Autocast policy.** CUDA autocast runs matmuls and convolutions in bf16, but layer norm,
   softmax, log-softmax, losses, ``exp``, ``pow``, ``sum`` ... in fp32 (fp32 outputs, and an
   fp32 copy of a bf16 input where the op casts). CPU autocast has different lists. We enable
   CPU autocast and re-program its dispatch key with CUDA's lists (below, transcribed from
   ``aten/src/ATen/autocast_mode.h``), including the cache of bf16 copies of fp32 weights that
   lives until autocast exits (2 bytes per parameter during forward and backward).
2. **Attention kernels.** ``scaled_dot_product_attention`` on a GPU picks FlashAttention-2
   (no mask, fp16/bf16, head dim <= 256; stores the output and a (B, H, L) fp32 log-sum-exp),
   else the memory-efficient kernel (arbitrary additive mask, padded to an 8-element stride;
   log-sum-exp rounded up to 32 rows; a gradient for the mask when it requires one), else the
   math fallback (materialises (B, H, L, S) scores and probabilities, in fp32 for bf16 inputs).
   The CPU picks differently, so the call is routed to the CUDA choice's aten kernel, whose
   meta implementation fake tensors run.
3. **Dropout.** On CUDA, dropout is the fused kernel that saves a 1-byte mask; on the CPU it
   saves a noise tensor in the input's dtype. The call is routed to the fused kernel.

Not modelled here (the allocator model and the safety margin cover them; see docs): cuBLAS /
cuDNN workspaces chosen at run time, FlashAttention's fp32 gradient accumulator inside its
backward kernel, NCCL buffers.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# CUDA autocast op lists (aten names; "op" is the default overload, "op.x" a named one).
_LOWER_PRECISION = _names(
    """
    _convolution.deprecated _convolution conv1d conv2d conv3d conv_tbc conv_transpose1d
    conv_transpose2d.input conv_transpose3d.input convolution prelu addmm addmv addr matmul
    einsum mm mv linalg_vecdot linear addbmm baddbmm bmm chain_matmul linalg_multi_dot
    _thnn_fused_lstm_cell _thnn_fused_gru_cell lstm_cell gru_cell rnn_tanh_cell rnn_relu_cell
    _scaled_dot_product_flash_attention scaled_dot_product_attention
    conv1d.padding conv2d.padding conv3d.padding
    """
)
_FP32 = _names(
    """
    acos asin cosh erfinv exp expm1 log log10 log2 log1p reciprocal rsqrt sinh tan
    pow.Tensor_Scalar pow.Tensor_Tensor pow.Scalar softplus layer_norm native_layer_norm
    group_norm frobenius_norm.dim nuclear_norm nuclear_norm.dim cosine_similarity
    poisson_nll_loss cosine_embedding_loss nll_loss nll_loss2d hinge_embedding_loss kl_div
    l1_loss smooth_l1_loss huber_loss mse_loss margin_ranking_loss multilabel_margin_loss
    soft_margin_loss triplet_margin_loss multi_margin_loss binary_cross_entropy_with_logits
    dist pdist cdist renorm logsumexp upsample_nearest1d _upsample_nearest_exact1d
    upsample_nearest2d _upsample_nearest_exact2d upsample_nearest3d _upsample_nearest_exact3d
    upsample_linear1d upsample_bilinear2d _upsample_bilinear2d_aa upsample_trilinear3d
    upsample_bicubic2d _upsample_bicubic2d_aa norm.Scalar norm.ScalarOpt_dim
    """
)
_FP32_SET_OPT_DTYPE = _names(
    """
    prod prod.dim_int softmax.int log_softmax.int cumprod cumsum linalg_vector_norm
    linalg_matrix_norm linalg_matrix_norm.str_ord sum sum.dim_IntList
    """
)
_PROMOTE = _names(
    """
    addcdiv addcmul atan2 bilinear cross dot vdot grid_sampler index_put tensordot scatter_add
    cat stack index_copy
    """
)

_AUTOCAST_CPU = torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCPU)


def _policy(name: str) -> str:
    for policy, ops in (
        ("lower", _LOWER_PRECISION),
        ("fp32", _FP32),
        ("fp32_set_opt_dtype", _FP32_SET_OPT_DTYPE),
        ("promote", _PROMOTE),
    ):
        if name in ops:
            return policy
    return "passthrough"


def _overload(name: str) -> torch._ops.OpOverload | None:
    base, _, overload = name.partition(".")
    packet = getattr(torch.ops.aten, base, None)
    if packet is None:
        return None
    return getattr(packet, overload or "default", None)


class CudaAutocast:
    """CPU autocast whose cast policy is CUDA's; use as a context manager around forward+loss.

    Entering registers Python kernels for the ``AutocastCPU`` dispatch key of every op that
    either autocast list names, and turns CPU autocast on; exiting restores PyTorch's kernels
    and drops the weight-cast cache. Process-global while active (like autocast itself is
    thread-local): meant for the simulator's own process.
    """

    def __init__(self, dtype: torch.dtype = torch.bfloat16) -> None:
        self.dtype = dtype
        self._cache: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self._library: torch.library.Library | None = None
        self._autocast: torch.autocast | None = None

    def __enter__(self) -> CudaAutocast:
        names = {
            r.removeprefix("aten::")
            for r in torch._C._dispatch_get_registrations_for_dispatch_key("AutocastCPU")
            if r.startswith("aten::")
        }
        names |= _LOWER_PRECISION | _FP32 | _FP32_SET_OPT_DTYPE | _PROMOTE
        library = torch.library.Library("aten", "IMPL")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Overriding a previously registered kernel"
            for name in sorted(names):
                op = _overload(name)
                if op is None:
                    continue
                policy = _policy(name)
                # An op CUDA autocast does not list falls through, so a composite op's inner
                # ops still see autocast (cross_entropy -> log_softmax in fp32 + nll_loss).
                kernel = (
                    torch.library.fallthrough_kernel
                    if policy == "passthrough"
                    else self._kernel(op, policy)
                )
                library.impl(op, kernel, "AutocastCPU")
        self._library = library
        # PyTorch's own cache would hold casts made by kernels we replaced; ours replaces it.
        self._autocast = torch.autocast("cpu", dtype=self.dtype, cache_enabled=False)
        self._autocast.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._autocast is not None and self._library is not None
        self._autocast.__exit__(None, None, None)
        self._library._destroy()
        self._library = self._autocast = None
        self._cache = WeakIdKeyDictionary()

    def cast(self, value: Any, dtype: torch.dtype) -> Any:
        """Autocast's ``cached_cast``: floating tensors (not fp64) to ``dtype``, recursively."""
        if isinstance(value, torch.Tensor):
            if not value.is_floating_point() or value.dtype in (dtype, torch.float64):
                return value
            cacheable = (
                dtype == self.dtype
                and value.dtype == torch.float32
                and value.requires_grad
                and value.is_leaf
                and not value._is_view()
            )
            if cacheable:
                hit = self._cache.get(value)
                if hit is None:
                    hit = self._cache[value] = value.to(dtype)
                return hit
            return value.to(dtype)
        if isinstance(value, list | tuple):
            return type(value)(self.cast(v, dtype) for v in value)
        if isinstance(value, dict):
            return {k: self.cast(v, dtype) for k, v in value.items()}
        return value

    def _kernel(self, op: torch._ops.OpOverload, policy: str) -> Callable[..., Any]:
        dtype_index = next(
            (i for i, a in enumerate(op._schema.arguments) if a.name == "dtype"), None
        )

        def kernel(*args: Any, **kwargs: Any) -> Any:
            with torch._C._ExcludeDispatchKeyGuard(_AUTOCAST_CPU):
                if policy == "lower":
                    args, kwargs = self.cast((args, kwargs), self.dtype)
                elif policy == "fp32":
                    args, kwargs = self.cast((args, kwargs), torch.float32)
                elif policy == "promote":
                    widest = self.dtype
                    for t in _tensors((args, kwargs)):
                        if t.is_floating_point() and t.dtype == torch.float32:
                            widest = torch.float32
                    args, kwargs = self.cast((args, kwargs), widest)
                elif policy == "fp32_set_opt_dtype" and dtype_index is not None:
                    first = args[0] if args else None
                    if isinstance(first, torch.Tensor) and first.is_floating_point():
                        if dtype_index < len(args):
                            if args[dtype_index] is None:
                                args = (
                                    *args[:dtype_index],
                                    torch.float32,
                                    *args[dtype_index + 1 :],
                                )
                        elif kwargs.get("dtype") is None:
                            kwargs = {**kwargs, "dtype": torch.float32}
                return op(*args, **kwargs)

        return kernel


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)


class CudaKernels(TorchFunctionMode):
    """Routes attention and dropout to the kernels a CUDA GPU would run (see module docs)."""

    def __init__(self, autocast: CudaAutocast | None = None) -> None:
        super().__init__()
        self.autocast = autocast  # casts SDPA inputs as CUDA autocast would, when active
        self.backends: dict[str, int] = {}  # attention calls per backend, for the report

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func is F.scaled_dot_product_attention:
            return self._attention(*args, **kwargs)
        if func is F.dropout:
            return _dropout(*args, **kwargs)
        return func(*args, **kwargs)

    def _attention(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attn_mask: torch.Tensor | None = None,
        dropout_p: float = 0.0,
        is_causal: bool = False,
        scale: float | None = None,
        enable_gqa: bool = False,
    ) -> torch.Tensor:
        if self.autocast is not None and torch.is_autocast_enabled("cpu"):
            query, key, value, attn_mask = self.autocast.cast(
                (query, key, value, attn_mask), self.autocast.dtype
            )
        head_dim = query.shape[-1]
        half = query.dtype in (torch.float16, torch.bfloat16)
        scale = scale if scale is not None else 1.0 / math.sqrt(head_dim)
        need_lse = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            # sdpa's convert_boolean_attn_mask: an additive mask in the query's dtype.
            attn_mask = torch.where(
                attn_mask, 0.0, torch.tensor(float("-inf"), dtype=query.dtype)
            ).to(query.dtype)
        if attn_mask is None and half and head_dim <= 256 and not enable_gqa:
            self.backends["flash"] = self.backends.get("flash", 0) + 1
            padded = head_dim + (-head_dim) % 8  # flash pads the head dim to a multiple of 8
            q, k, v = (
                F.pad(t, (0, padded - head_dim)) if padded != head_dim else t
                for t in (query, key, value)
            )
            out = torch.ops.aten._scaled_dot_product_flash_attention(
                q, k, v, dropout_p, is_causal, False, scale=scale
            )[0]
            return out[..., :head_dim] if padded != head_dim else out
        alignment = 8 if half else 4
        if head_dim % alignment == 0 and value.shape[-1] % alignment == 0 and not enable_gqa:
            self.backends["efficient"] = self.backends.get("efficient", 0) + 1
            if attn_mask is not None:
                attn_mask = _pad_bias(attn_mask).expand(
                    query.shape[0], query.shape[1], query.shape[2], key.shape[2]
                )
            return torch.ops.aten._scaled_dot_product_efficient_attention(
                query, key, value, attn_mask, need_lse, dropout_p, is_causal, scale=scale
            )[0]
        self.backends["math"] = self.backends.get("math", 0) + 1
        # The CUDA math fallback upcasts half inputs to fp32 (no reduced-precision reduction).
        dtype = query.dtype
        if half:
            query, key, value = (t.float() for t in (query, key, value))
            attn_mask = attn_mask.float() if attn_mask is not None else None
        out = torch.ops.aten._scaled_dot_product_attention_math(
            query, key, value, attn_mask, dropout_p, is_causal, scale=scale
        )[0]
        return out.to(dtype)


def _pad_bias(mask: torch.Tensor) -> torch.Tensor:
    """sdpa's preprocess_mask: pad the last dim so every stride is a multiple of 8, then slice."""
    aligned = mask.stride(-1) == 1 and all(s % 8 == 0 for s in mask.stride()[:-1])
    if aligned:
        return mask
    last = mask.shape[-1]
    return F.pad(mask, (0, 8 - last % 8))[..., :last]


def _dropout(
    input: torch.Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> torch.Tensor:
    if not training or p == 0.0 or input.numel() == 0:
        return input
    return torch.ops.aten.native_dropout(input, p, True)[0]


@contextlib.contextmanager
def cuda_step(dtype: torch.dtype | None) -> Iterator[CudaKernels]:
    """Kernels (always) and CUDA autocast to ``dtype`` (when given) for one forward + loss."""
    if dtype is None:
        with CudaKernels() as kernels:
            yield kernels
        return
    with CudaAutocast(dtype) as autocast, CudaKernels(autocast) as kernels:
        yield kernels
