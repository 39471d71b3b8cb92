"""Compare ``exact`` with traces whose model sizes are symbols too, as expressions.

For each hand-written family, draws configs (``tests/hf_factories.py``), traces one training
step with the config's size fields as symbols (``TraceOptions(symbolic_sizes=True)``) and asks
``symbolic.trace.diff.difference`` whether the hand-written parameters, activations and FLOPs
equal the traced ones as expressions in the config's fields (under the conditions the trace found
on them). Prints one JSON line per family and config that disagrees or fails (with the quantities
that disagree at the config's own sizes too, from a plain trace: misses of ``exact`` there), and a
summary: per quantity, how many configs agree as expressions, and how many differ as expressions
only (equal at the config's sizes: the two formulas generalise differently). Configs ``exact`` refuses (an odd rotary width where the forward
fails) are drawn again.

    python tools/symbolic_sizes_diff.py [--examples 2] [--seed 0] [--family llama ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUANTITIES = ("parameters", "activations", "flops")
_EAGER = {"gemma2", "bloom"}  # no SDPA path in transformers 5.24


def _configs(strategy, examples: int, seed: int) -> list[dict]:  # noqa: ANN001 - a hypothesis strategy
    """``examples`` configs drawn from ``strategy``, the same on every run for a given ``seed``."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as fix_seed

    out: list[dict] = []

    @fix_seed(seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(config: dict) -> None:
        out.append(config)

    collect()
    return out[:examples]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--examples", type=int, default=2, help="configs per family (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--family", action="append", help="only these families (repeatable)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    import logging

    import transformers

    from symbolic.errors import SymbolicError
    from symbolic.formulas.activations.exact import odd_rotary_fails
    from symbolic.hf import from_hf_config
    from symbolic.trace import TraceOptions, trace
    from symbolic.trace.diff import difference
    from tests.hf_factories import FACTORIES

    transformers.logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)
    families = args.family or sorted(FACTORIES)
    agree = dict.fromkeys(QUANTITIES, 0)
    agree_at_config = dict.fromkeys(QUANTITIES, 0)  # differ as expressions, equal at the config
    total = failed = 0
    total_of: dict[str, int] = {}
    started = time.perf_counter()
    for family in families:
        for config in _configs(FACTORIES[family], 4 * args.examples, args.seed)[: 4 * args.examples]:
            try:
                if odd_rotary_fails(from_hf_config(config)):
                    continue
            except SymbolicError:
                continue
            if total_of.get(family, 0) == args.examples:
                break
            total_of[family] = total_of.get(family, 0) + 1
            total += 1
            options = TraceOptions(attention="eager" if family in _EAGER else "sdpa", symbolic_sizes=True)
            try:
                result = trace(config, options, use_cache=False)
                rows = difference(config, result)
            except SymbolicError as err:
                failed += 1
                print(json.dumps({"family": family, "error": err.message, "config": config}), flush=True)
                continue
            disagree = {d.quantity for d in rows}
            for quantity in QUANTITIES:
                agree[quantity] += quantity not in disagree
            at_config: list[str] = []
            if rows:  # the same comparison at the config's own sizes: a miss of exact there, or not
                plain = trace(config, TraceOptions(attention=options.attention), use_cache=False)
                at_config = sorted({d.quantity for d in difference(config, plain)})
                for quantity in disagree - set(at_config):
                    agree_at_config[quantity] += 1
            if rows:
                print(
                    json.dumps(
                        {
                            "family": family,
                            "fixed": result.fixed_sizes,
                            "also_at_the_config_sizes": at_config,
                            "differences": {f"{d.quantity} {d.part}": str(d.difference) for d in rows},
                            "conditions": [str(c) for c in result.size_conditions],
                            "config": config,
                        }
                    ),
                    flush=True,
                )
    summary = {
        "configs": total,
        "failed": failed,
        **{f"{q}_agree": agree[q] for q in QUANTITIES},
        **{f"{q}_differ_as_expressions_only": agree_at_config[q] for q in QUANTITIES},
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps({"summary": summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
