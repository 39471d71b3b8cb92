"""How a training or inference run is spread over devices: a frozen, validated description.

:class:`Parallelism` holds the degrees (data, tensor, pipeline, context, expert), the ZeRO stage
(FSDP full shard is stage 3; hybrid shard is stage 3 over a smaller shard group), sequence
parallelism, the pipeline stage asked about and an optional vocabulary padding multiple. Its
methods say, per parameter term, which share of it one device holds, as SymPy expressions in the
degree symbols ``dp``, ``tp``, ``pp``, ``ep`` (so derivatives in them work); the numbers come in at
evaluation through :meth:`Parallelism.values`.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from . import symbols as S
from .arch import Arch, AttentionKind, Model
from .errors import SymbolicError
from .terms import Breakdown, Quantity, Split, Term

__all__ = ["Parallelism", "ZERO_STAGES"]

ZERO_STAGES = (0, 1, 2, 3)


def _positive(option: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SymbolicError(option, f"must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class Parallelism:
    """The degrees of parallelism and sharding of one run (devices), validated on creation.

    ``zero``: 0 (plain data parallel), 1 (optimizer state and master weights sharded over the
    data-parallel group), 2 (and gradients), 3 (and weights; FSDP full shard). ``hybrid_shard``:
    FSDP hybrid shard, stage 3 sharding over groups of this many devices, replicated across groups.
    ``stage``: the pipeline stage asked about (0-based; ``None`` means the one holding the most).
    ``vocab_multiple``: pad the vocabulary to a multiple of ``vocab_multiple * tp`` (Megatron's
    ``--make-vocab-size-divisible-by``); ``None`` means no padding.
    """

    dp: int = 1
    tp: int = 1
    pp: int = 1
    cp: int = 1
    ep: int = 1
    zero: int = 0
    hybrid_shard: int | None = None
    sequence_parallel: bool = False
    stage: int | None = None
    vocab_multiple: int | None = None

    def __post_init__(self) -> None:
        for option in ("dp", "tp", "pp", "cp", "ep"):
            _positive(option, getattr(self, option))
        if self.zero not in ZERO_STAGES or isinstance(self.zero, bool):
            raise SymbolicError("zero", f"must be one of 0, 1, 2, 3, got {self.zero!r}")
        if self.hybrid_shard is not None:
            _positive("hybrid_shard", self.hybrid_shard)
            if self.zero != 3:
                raise SymbolicError("hybrid_shard", "is FSDP hybrid shard: it needs --zero 3")
            if self.dp % self.hybrid_shard:
                raise SymbolicError("hybrid_shard", f"{self.hybrid_shard} must divide --dp ({self.dp})")
        if self.ep > 1 and self.shard_degree % self.ep:
            raise SymbolicError(
                "ep", f"{self.ep} must divide the data-parallel degree ({self.shard_degree}): experts split over it"
            )
        if self.stage is not None:
            if isinstance(self.stage, bool) or not isinstance(self.stage, int) or not 0 <= self.stage < self.pp:
                raise SymbolicError("stage", f"must be 0 .. {self.pp - 1} (pipeline stages), got {self.stage!r}")
        if self.vocab_multiple is not None:
            _positive("vocab_multiple", self.vocab_multiple)
        if self.sequence_parallel and self.tp == 1:
            raise SymbolicError("sequence_parallel", "needs --tp above 1")

    @property
    def devices(self) -> int:
        """Devices in the whole run: dp * tp * pp * cp (devices)."""
        return self.dp * self.tp * self.pp * self.cp

    @property
    def shard_degree(self) -> int:
        """Devices the ZeRO/FSDP states are sharded over: dp, or the hybrid-shard group (devices)."""
        return self.hybrid_shard if self.hybrid_shard is not None else self.dp

    def values(self) -> dict[str, int]:
        """The degrees as symbol values for evaluation (devices)."""
        return {"dp": self.dp, "tp": self.tp, "pp": self.pp, "cp": self.cp, "ep": self.ep}

    # ---- what one device holds of a tensor ----

    def shard_symbol(self, expert: bool) -> sp.Expr:
        """The number of devices ZeRO shards a tensor's states over (devices): ``dp`` (experts: ``dp/ep``)."""
        base: sp.Expr = S.dp if self.hybrid_shard is None else sp.Integer(self.hybrid_shard)
        return base / S.ep if expert else base

    @staticmethod
    def split_divisor(term: Term) -> sp.Expr:
        """By how much tensor and expert parallelism divide one tensor (devices, a SymPy expression)."""
        div: sp.Expr = sp.Integer(1)
        if term.split is not Split.NONE:
            div *= S.tp
        if term.expert:
            div *= S.ep
        return div

    def padded_vocab(self) -> sp.Expr:
        """The vocabulary rows after padding (tokens): ``n_vocab`` or ``ceiling(n_vocab/(m tp)) m tp``."""
        if self.vocab_multiple is None:
            return S.n_vocab
        m = self.vocab_multiple * S.tp
        return sp.ceiling(S.n_vocab / m) * m

    # ---- what one device holds of an activation ----

    def activation_shares(self, shards: frozenset[sp.Symbol]) -> dict[sp.Symbol, sp.Expr]:
        """One device's share of each size in ``shards`` (a SymPy substitution, in the degree symbols).

        Tensor parallelism splits the heads (column-parallel q/k/v outputs; kv heads are replicated
        when ``tp`` is a multiple of them: ``max(1, g/tp)`` per device, as Megatron-LM does) and
        the MLP widths (dense, shared and routed experts: Megatron-LM's expert tensor-parallel size
        defaults to ``tp``, as the expert weights here are split). Expert parallelism splits the experts
        (grouped_mm offsets). Sequence parallelism splits ``seq`` by ``tp`` for residual-stream tensors
        (norms, dropouts); context parallelism splits ``seq`` by ``cp`` for every tensor. ``tp``
        itself in ``shards`` (a traced term, whose sizes are numbers) divides the whole term by
        ``tp`` in :meth:`activation_share`.
        """
        full: dict[sp.Symbol, sp.Expr] = {
            S.n_heads: S.n_heads / S.tp,
            S.n_kv_heads: sp.Max(1, S.n_kv_heads / S.tp),
            S.d_ffn: S.d_ffn / S.tp,
            S.d_shared: S.d_shared / S.tp,
            S.d_expert: S.d_expert / S.tp,
            S.n_experts: S.n_experts / S.ep,
        }
        out = {sym: full[sym] for sym in shards if sym in full}
        seq = S.seq / S.cp if self.cp > 1 else S.seq
        if self.sequence_parallel and S.seq in shards:
            seq = seq / S.tp
        if seq is not S.seq:
            out[S.seq] = seq
        return out

    def activation_share(self, term: Term) -> Term:
        """The share of activation ``term`` one device holds (bytes): each size it is split by replaced.

        >>> from symbolic import symbols as S
        >>> from symbolic.terms import Quantity, Term
        >>> t = Term("q", S.batch * S.seq * S.n_heads * S.d_head * 2, Quantity.BYTES, "query", shards=frozenset({S.n_heads}))
        >>> Parallelism(tp=4).activation_share(t).expr
        2*batch*d_head*n_heads*seq/tp
        """
        subs = self.activation_shares(term.shards)
        expr = term.expr.xreplace(subs) if subs else term.expr
        if S.tp in term.shards:  # a traced term: its sizes are numbers, the whole tensor is divided
            expr = expr / S.tp
        return term.with_(expr=expr) if expr is not term.expr else term

    # ---- pipeline stages ----

    def stages(self) -> range:
        """The pipeline stages to consider: the one asked for, or all of them."""
        return range(self.pp) if self.stage is None else range(self.stage, self.stage + 1)

    def per_device(self, arch: Arch, term: Term, stage: int) -> Term | None:
        """The share of parameter term ``term`` one device of ``stage`` holds (parameters), ``None`` if none.

        The count becomes the layers on that stage; the per-instance expression is divided by the
        tensor/expert split and, for vocabulary-split tensors, written over the padded vocabulary.
        """
        count = self.stage_count(arch, term, stage)
        if count is None:
            return None
        expr = term.expr
        if term.split is Split.VOCAB and self.vocab_multiple is not None:
            expr = expr.xreplace({S.n_vocab: self.padded_vocab()})
        return term.with_(expr=self._split(term, expr), count=count)

    def _split(self, term: Term, expr: sp.Expr) -> sp.Expr:
        """``expr`` of a parameter term divided by its tensor/expert split (parameters).

        Attention projections are split by heads: ``n_heads/tp`` query heads and ``max(1, n_kv_heads/tp)``
        key/value heads per device (replicated where ``tp`` exceeds them, as Megatron-LM does).
        """
        heads = {S.n_heads, S.n_kv_heads} & expr.free_symbols
        if term.split is Split.NONE or not heads:
            return expr / self.split_divisor(term)
        subs = self.activation_shares(frozenset(heads))
        return expr.xreplace(subs) / (S.ep if term.expert else 1)

    def stage_count(self, arch: Arch, term: Term, stage: int) -> sp.Expr | None:
        """How many instances of ``term`` pipeline stage ``stage`` holds (a SymPy count), ``None`` for none.

        Layers are cut into ``pp`` equal contiguous runs (``n_layers/pp`` per stage); the embedding
        sits on the first stage, the final norm and the output layer on the last.
        """
        segments = term.path.split(".")
        head = segments[1] if segments[0] == "lora" and len(segments) > 1 else segments[0]
        names = [g.name for g in arch.groups]
        if head in names:
            if self.pp == 1:
                return term.count
            if len(arch.groups) == 1:
                return term.count / S.pp
            total = sp.Add(*(g.count for g in arch.groups))
            offset = sp.Add(*(g.count for g in arch.groups[: names.index(head)]))
            lo, hi = stage * total / S.pp, (stage + 1) * total / S.pp
            return sp.Max(0, sp.Min(hi, offset + term.count) - sp.Max(lo, offset))
        if head == "embedding":
            return term.count if stage == 0 else None
        return term.count if stage == self.pp - 1 else None

    def device_terms(self, arch: Arch, params: Breakdown, stage: int) -> Breakdown:
        """The parameter terms one device of pipeline stage ``stage`` holds (parameters).

        With tied embeddings and ``pp > 1`` the last stage keeps its own copy of the embedding
        for the output layer (Megatron), as the term ``lm_head.tied_copy.weight`` (tagged ``copy``).
        """
        out = [t for t in (self.per_device(arch, term, stage) for term in params) if t is not None]
        if self.pp > 1 and stage == self.pp - 1 and arch.tied_embeddings and arch.lm_head:
            if "embedding.tokens.weight" in params.paths:
                tied = params.term("embedding.tokens.weight")
                copy = tied.with_(
                    path="lm_head.tied_copy.weight",
                    description="copy of the tied embedding that the last pipeline stage keeps for the output layer",
                    tags=tied.tags | {"copy"},
                )
                expr = copy.expr
                if self.vocab_multiple is not None:
                    expr = expr.xreplace({S.n_vocab: self.padded_vocab()})
                out.append(copy.with_(expr=self._split(copy, expr)))
        return Breakdown(Quantity.PARAMETERS, tuple(out))

    # ---- checks against a model ----

    def check(self, model: Model) -> list[str]:
        """Raise :class:`SymbolicError` where a degree does not divide what it must; return notes (words)."""
        sizes, arch = model.sizes, model.arch
        notes: list[str] = []
        if self.tp > 1 and "n_heads" in sizes:  # a model known only through its config: see memory's head check
            heads = sizes["n_heads"]
            if heads % self.tp:
                raise SymbolicError("tp", f"{self.tp} must divide n_heads ({heads}); allowed: {_divisors(heads)}")
            kv = sizes.get("n_kv_heads", heads)
            if arch.attention.kind is AttentionKind.STANDARD and kv % self.tp:
                if self.tp % kv:
                    raise SymbolicError(
                        "tp",
                        f"{self.tp} must divide n_kv_heads ({kv}) or be a multiple of it (key/value heads replicated)",
                    )
                notes.append(f"tp={self.tp} exceeds the {kv} key/value heads: each is replicated on {self.tp // kv}")
        if self.tp > 1:
            for name in ("d_ffn", "d_expert", "d_shared"):
                if name in sizes and sizes[name] % self.tp:
                    raise SymbolicError("tp", f"{self.tp} must divide {name} ({sizes[name]})")
            if self.vocab_multiple is None and sizes["n_vocab"] % self.tp:
                raise SymbolicError(
                    "tp",
                    f"{self.tp} must divide n_vocab ({sizes['n_vocab']}), or pad it with --vocab-multiple",
                )
        if self.pp > 1:
            layers = sum(sizes[str(g.count)] for g in arch.groups)
            if layers % self.pp:
                raise SymbolicError("pp", f"{self.pp} must divide the layers ({layers}); allowed: {_divisors(layers)}")
        if self.ep > 1:
            if not arch.is_moe:
                raise SymbolicError("ep", f"{model.name} has no experts; allowed: 1")
            experts = sizes["n_experts"]
            if experts % self.ep:
                raise SymbolicError("ep", f"{self.ep} must divide n_experts ({experts}); allowed: {_divisors(experts)}")
        if self.zero and self.shard_degree == 1:
            notes.append(f"ZeRO stage {self.zero} with a data-parallel degree of 1 shards nothing")
        if self.cp > 1:
            notes.append(
                f"context parallelism (cp={self.cp}) splits the sequence, not the model: weights, gradients "
                "and optimizer state per device are unchanged"
            )
        if self.vocab_multiple is not None:
            notes.append(f"vocabulary padded to a multiple of {self.vocab_multiple} x tp (Megatron)")
        return notes


def _divisors(n: int) -> str:
    from .inputs import divisor_text

    return divisor_text(n)
