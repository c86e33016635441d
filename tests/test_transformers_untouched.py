"""`import hf_dgm` leaves transformers' module state as it was, apart from the additions its registrations make.

Run in a fresh interpreter: snapshot every dict / list / set / tuple attribute (and the identity of every attribute)
of `transformers`, `transformers.pipelines.*`, `transformers.models.auto.*` and `transformers.dynamic_module_utils`
(where transformers keeps its registries), including the Auto mappings' registries, then `import hf_dgm` and compare.
Allowed: new entries that name hf_dgm classes in `SUPPORTED_TASKS` (what `PIPELINE_REGISTRY.register_pipeline`
adds) and in the Auto mappings' `_extra_content` (what `AutoConfig.register` / `AutoModel*.register` /
`AutoProcessor.register` add). Anything else (a removed task un-reserved, an entry changed or deleted, a function
replaced) fails, naming the module attribute.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest


SCRIPT = textwrap.dedent(
    r"""
    import json
    import sys

    import transformers
    import transformers.pipelines  # noqa: F401
    from transformers.models.auto import configuration_auto, modeling_auto, processing_auto  # noqa: F401
    from transformers.models.auto import feature_extraction_auto, image_processing_auto, tokenization_auto  # noqa: F401

    CONTAINERS = (dict, list, set, frozenset, tuple)
    MAPPINGS = ("_LazyAutoMapping", "_LazyConfigMapping", "_LazyLoadAllMappings")


    def entries(value):
        if isinstance(value, dict):
            return {repr(k): repr(v) for k, v in value.items()}
        if isinstance(value, (set, frozenset)):
            return {repr(v): "" for v in value}
        return {str(i): repr(v) for i, v in enumerate(value)}


    def snapshot():
        state, ids = {}, {}
        for name, module in sorted(sys.modules.items()):
            if module is None or not (name in ("transformers", "transformers.dynamic_module_utils")
                                      or name.startswith(("transformers.pipelines", "transformers.models.auto."))):
                continue
            for attr, value in list(vars(module).items()):
                if attr.startswith("__"):
                    continue
                ids[f"{name}.{attr}"] = id(value)
                if type(value).__name__ in MAPPINGS:  # lazy OrderedDicts: their items() would import every model
                    for field, inner in vars(value).items():
                        if isinstance(inner, CONTAINERS):
                            state[f"{name}.{attr}.{field}"] = entries(inner)
                elif isinstance(value, CONTAINERS):
                    state[f"{name}.{attr}"] = entries(value)
        return state, ids


    before, before_ids = snapshot()
    import hf_dgm  # noqa: E402,F401

    after, after_ids = snapshot()
    problems, additions = [], {}
    for key, old in before.items():
        new = after.get(key, {})
        for entry, value in old.items():
            if entry not in new:
                problems.append(f"{key}: entry {entry} removed")
            elif new[entry] != value:
                problems.append(f"{key}: entry {entry} changed from {value[:200]} to {new[entry][:200]}")
        for entry in new.keys() - old.keys():
            additions.setdefault(key, []).append(entry + " -> " + new[entry])
    for key, old_id in before_ids.items():
        if key in after_ids and after_ids[key] != old_id and key not in before:  # containers compared by content
            problems.append(f"{key}: replaced")
    print(json.dumps({"problems": problems, "additions": additions}))
    """
)

ALLOWED_CONTAINERS = ("transformers.pipelines.SUPPORTED_TASKS",)


def _allowed(key: str) -> bool:
    return key in ALLOWED_CONTAINERS or key.endswith("._extra_content")


@pytest.mark.slow  # a fresh interpreter importing transformers and hf_dgm: ~20 s on 2 shared cores
def test_import_hf_dgm_changes_nothing_in_transformers_but_registrations():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["problems"] == [], "\n".join(report["problems"])
    additions = report["additions"]
    assert additions, "hf_dgm registered nothing?"
    for key, entries in additions.items():
        assert _allowed(key), f"import hf_dgm added to {key}: {entries[:3]}"
        for entry in entries:
            assert "hf_dgm" in entry, f"{key}: an addition that is not an hf_dgm registration: {entry[:300]}"
    tasks = {entry.split(" -> ")[0].strip("'") for entry in additions.get("transformers.pipelines.SUPPORTED_TASKS", [])}
    assert {"image-translation", "class-conditional-image-generation", "unconditional-image-generation"} <= tasks
    assert "image-to-image" not in tasks  # a name transformers reserves stays reserved


def test_image_to_image_stays_removed_in_this_process():
    import transformers.pipelines as pipelines

    import hf_dgm  # noqa: F401

    assert "image-to-image" in pipelines.REMOVED_TASKS
    assert "image-translation" in pipelines.PIPELINE_REGISTRY.supported_tasks
