"""Measurement harnesses used by the tests and by ``tools/`` (not part of the runtime package).

``tests.harness.measure`` measures what autograd saves for backward on real Hugging Face models
(CPU); ``tests.harness.parallel`` does so per rank in real multi-process tensor- and
sequence-parallel runs (``torch.distributed``, gloo, CPU). Import them from the repository root
(``python -m pytest``, or a script under ``tools/`` that puts the root on ``sys.path``).
"""
