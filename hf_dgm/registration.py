"""Registration of every hf-dgm family with transformers (`AutoConfig`, `AutoModel*`, `AutoProcessor`, pipelines).

`import hf_dgm` calls :func:`register_all` once. The families and what each registers are declared in the
families' own packages and listed in `hf_dgm.registry`; registration is idempotent, so importing twice (or from
several processes) is harmless.
"""

from __future__ import annotations

from .registry import register_all, register_family

__all__ = ["register_all", "register_family"]
