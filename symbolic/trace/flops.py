"""FLOPs of a fake training step, per module, forward and backward.

A dispatch mode sees every ATen op. Matrix products and attention are counted with the formulas
of ``torch.utils.flop_counter`` (2 FLOPs per multiply-add; attention as its two batched products,
the causal half included, as torch counts it), applied to SymPy shapes. Two ops torch's table
lacks are added with the same formulas: the CPU flash-attention kernel (forward and backward,
grouped-query keys broadcast to the query heads) and ``_grouped_mm`` (MoE experts: 2·T·K·N).
Forward ops are charged to the module running; backward ops to the module whose forward created
the autograd node being run. Counts are kept per phase and module path: ``forward.<path>`` for
ops run outside the backward pass, ``backward.<path>`` for ops autograd runs. Element-wise work
(norms, activations, softmax) is not counted.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

__all__ = ["make_recorder", "as_expr"]


def as_expr(value: Any) -> sp.Expr:
    """A SymInt or int as a SymPy expression (in the shape environment's symbols)."""
    node = getattr(value, "node", None)
    if node is not None:
        return sp.sympify(node.expr, strict=True)
    return sp.Integer(int(value))


def _shape(t: Any) -> tuple[sp.Expr, ...]:
    return tuple(as_expr(d) for d in t.shape)


def _sdpa_forward(q: tuple, k: tuple, v: tuple) -> sp.Expr:
    b, h, sq, dq = q
    sk, dv = k[-2], v[-1]
    return 2 * b * h * sq * sk * dq + 2 * b * h * sq * sk * dv


def _sdpa_backward(q: tuple, k: tuple, v: tuple) -> sp.Expr:
    # torch.utils.flop_counter.sdpa_backward_flop_count: dV, dP, dQ, dK (four products)
    b, h, sq, dq = q
    sk, dv = k[-2], v[-1]
    return 2 * b * h * sq * sk * dv * 2 + 2 * b * h * sq * sk * dq * 2


def make_recorder(stack: Any) -> Any:
    """A dispatch mode that adds FLOPs into its ``counts`` dict, keyed ``forward.<module path>`` or
    ``backward.<module path>`` (FLOPs)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import flop_registry

    aten = torch.ops.aten
    own = {
        aten._scaled_dot_product_flash_attention_for_cpu.default: "sdpa",
        aten._scaled_dot_product_flash_attention_for_cpu_backward.default: "sdpa_backward",
    }
    if hasattr(aten, "_grouped_mm"):
        own[aten._grouped_mm.default] = "grouped_mm"

    class FlopRecorder(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.counts: dict[str, sp.Expr] = {}
            self.node_module: dict[int, str] = {}

        def _module(self) -> str:
            node = torch._C._current_autograd_node()
            if node is not None and stack.current == "":
                return self.node_module.get(node._sequence_nr(), "")
            return stack.current

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            if torch._C._current_autograd_node() is None and torch.is_grad_enabled():
                seq = torch._C._autograd._get_sequence_nr() - 1
                self.node_module.setdefault(seq, stack.current)
            flops = self._flops(func, args, kwargs, out)
            if flops is not None:
                phase = "forward" if torch._C._current_autograd_node() is None else "backward"
                path = f"{phase}.{self._module() or 'model'}"
                self.counts[path] = self.counts.get(path, sp.Integer(0)) + flops
            return out

        def _flops(self, func: Any, args: Any, kwargs: Any, out: Any) -> sp.Expr | None:
            kind = own.get(func)
            if kind == "sdpa":
                return _sdpa_forward(_shape(args[0]), _shape(args[1]), _shape(args[2]))
            if kind == "sdpa_backward":
                return _sdpa_backward(_shape(args[1]), _shape(args[2]), _shape(args[3]))
            if kind == "grouped_mm":
                # every output element is a dot product over mat_a's last dimension; where both
                # operands are 2-D (the weight gradient, out: groups x K x N), that dimension (the
                # tokens) is split among the groups, so each token counts in one group only
                total = 2 * sp.Mul(*_shape(out)) * _shape(args[0])[-1]
                if args[0].dim() == 2 and args[1].dim() == 2 and out.dim() == 3:
                    total = total / _shape(out)[0]
                return total
            packet = func._overloadpacket
            if packet not in flop_registry:
                return None
            shaped_args, shaped_kwargs = torch.utils._pytree.tree_map(
                lambda x: _shape(x) if isinstance(x, torch.Tensor) else x, (args, kwargs)
            )
            out_shape = torch.utils._pytree.tree_map(lambda x: _shape(x) if isinstance(x, torch.Tensor) else x, out)
            value = flop_registry[packet](*shaped_args, out_val=out_shape, **shaped_kwargs)
            return sp.sympify(value, strict=True)

    return FlopRecorder()
