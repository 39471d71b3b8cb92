"""Traced saved bytes against real autograd, for every hand-written family and the traced-only types.

For each small config (the hand-written families at the survey's size A, ``tools/survey_activations.py``,
and the types of ``tests/trace_configs.py`` that have no hand-written rules), traces one training step on
fake tensors (``symbolic.trace``, batch and sequence symbolic, no cache) and evaluates the formula at
b = 3, s = 11 and b = 1, s = 6, then measures the same step on real CPU tensors
(``tests/harness/measure.py``: the unique storages autograd keeps for backward). With ``--autocast``
the model is fp32 and the forward, loss included, runs under ``torch.autocast("cpu")`` to that dtype
in both (the amp recipes). Prints one row per point and a summary line (points equal to the byte).

    python tools/traced_vs_measured.py --autocast bf16
    python tools/traced_vs_measured.py --autocast fp16 --only phi qwen3_moe
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

POINTS = ((3, 11), (1, 6))
NO_SDPA = {"bloom", "gemma2", "gpt_oss", "openai-gpt"}  # transformers 5.24 has no SDPA path for them


def configs() -> dict[str, dict]:
    """Every config to compare: the hand-written families (size A) and the traced-only types."""
    import importlib.util

    from tests.hf_factories import FACTORIES
    from tests.trace_configs import NEW_TYPES

    spec = importlib.util.spec_from_file_location("survey", Path(__file__).with_name("survey_activations.py"))
    assert spec is not None and spec.loader is not None
    survey = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(survey)
    out = {fam: survey.family_config(fam, survey.SIZES["A"], 0.0)[0] for fam in sorted(FACTORIES)}
    out.update(NEW_TYPES)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--autocast", choices=("bf16", "fp16"), help="run the step under torch.autocast (fp32 weights)")
    parser.add_argument(
        "--dtype", choices=("fp32", "bf16", "fp16"), default="fp32", help="model dtype without autocast"
    )
    parser.add_argument("--only", nargs="+", help="only these model types")
    args = parser.parse_args(argv)
    os.environ["SYMBOLIC_NO_TRACE_CACHE"] = "1"
    warnings.simplefilter("ignore")
    import transformers

    from symbolic import symbols as S
    from symbolic.trace import TraceOptions, trace
    from tests.harness.measure import measure_activations

    transformers.logging.set_verbosity_error()
    dtype = "fp32" if args.autocast else args.dtype
    total = equal = 0
    for name, config in configs().items():
        if args.only and name not in args.only:
            continue
        attention = "eager" if name in NO_SDPA else "sdpa"
        result = trace(config, TraceOptions(dtype=dtype, attention=attention, autocast=args.autocast))
        for batch, seq in POINTS:
            sizes = {S.n_layers: result.sizes["n_layers"], S.batch: batch, S.seq: seq}
            traced = int(result.activations.total.subs(sizes))
            got = measure_activations(
                config, batch, seq, dtype=dtype, attn_implementation=attention, autocast=args.autocast
            )["total"]
            total += 1
            equal += traced == got
            row = {"type": name, "batch": batch, "seq": seq, "traced": traced, "measured": got}
            print(json.dumps(row), flush=True)
    print(json.dumps({"points": total, "equal": equal, "autocast": args.autocast, "dtype": dtype}))
    return 0 if equal == total else 1


if __name__ == "__main__":
    raise SystemExit(main())
