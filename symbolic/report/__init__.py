"""Documents: Breakdown + numbers -> rows -> Jinja templates (:mod:`symbolic.render`).

- :mod:`.rows`: a Breakdown and its values as rows of strings and Raw LaTeX;
- :mod:`.errata`: the design note's claims, quoted, beside their corrections (data);
- :mod:`.document`: :func:`derivation_context`, the one function that assembles a document.
"""

from __future__ import annotations

from .document import DocumentOptions, derivation_context, workload_of
from .errata import NOTE_CLAIMS, errata_section
from .rows import breakdown_section, bytes_text, integer_text, latex, substituted, symbol_rows, term_rows

__all__ = [
    "DocumentOptions",
    "derivation_context",
    "workload_of",
    "NOTE_CLAIMS",
    "errata_section",
    "breakdown_section",
    "bytes_text",
    "integer_text",
    "latex",
    "substituted",
    "symbol_rows",
    "term_rows",
]
