"""``symbolic models``: list the shipped configurations."""

from __future__ import annotations

import argparse

from ._common import make_table, print_json, show


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the shipped model configurations")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..registry import shipped_models

    models = shipped_models()
    if args.json:
        print_json(
            {
                "models": [
                    {
                        "name": m.name,
                        "model_type": m.config.get("model_type"),
                        "family": m.family,
                        "published_params": m.published_params,
                        "published_params_text": m.published_params_text,
                        "aliases": list(m.aliases),
                        "source": m.source,
                    }
                    for m in models.values()
                ]
            }
        )
        return 0
    table = make_table(
        "Shipped models", [("name", "text"), ("model_type", "text"), ("published", "prose"), ("source", "prose")]
    )
    for m in models.values():
        table.add_row(m.name, str(m.config.get("model_type")), m.published_params_text, m.source)
    show(table)
    return 0
