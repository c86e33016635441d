"""Checks on every value that goes into a model card or a publish command: repo ids, licences, revisions, task
names, tags, languages, and strings that could change a card's structure; then the rendered card parsed back.
:func:`check_card_inputs` runs the ones :func:`hf_dgm.hub.cards.build_card` needs, before anything is rendered."""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

from .run_info import RUN_METADATA_FILE, RunInfo


class ModelCardError(ValueError):
    """The rendered card is not what the metadata says it should be, or a value cannot go into a card."""


# Characters no value from a run folder, a config or the command line may bring into a card: line breaks (a new
# line can start a heading or a code fence), other control characters, and backticks (they close the inline code
# spans the templates put names in). Multi-line blocks the publisher builds itself (YAML metadata, the recipe, text
# excerpts, the endpoint request) are fenced safely and marked as such (`markupsafe.Markup`).
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029`]")


def check_repo_id(repo_id: Any, name: str = "repo_id") -> str:
    """`repo_id` if `huggingface_hub`'s validator accepts it (`name` or `owner/name`), else `ValueError`."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str):
        raise ModelCardError(f"{name} must be a string 'owner/name'; got {type(repo_id).__name__}")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise ModelCardError(f"{name} {repo_id!r} is not a valid Hugging Face repo id: {err}") from None
    return repo_id


# The Hub's licence identifiers (hub-docs `repositories-licenses.md`, plus the Llama 3.x licences added since):
# a card's `license:` must be one of them, or `other` with a `license_name`.
HUB_LICENSES = frozenset("""
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 bigcode-openrail-m
afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0 cc-by-2.5
cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0
cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0 cdla-permissive-1.0
cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl
lgpl-2.1 lgpl-3.0 isc lppl-1.3c ms-pl mpl-2.0 odc-by odbl openrail++ osl-3.0 postgresql ofl-1.1 ncsa unlicense zlib
pddl lgpl-lr deepfloyd-if-license llama2 llama3 llama3.1 llama3.2 llama3.3 gemma unknown other
""".split())
# git ref names the publisher accepts for --revision (a branch, a tag, a commit sha, refs/pr/N)
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")
_TASK = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
_TAG = re.compile(r"^[\w.:+-][\w .:+-]{0,99}$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{1,8})*$")


def check_license(value: Any, name: str = "license") -> str | None:
    """`value` if it is one of the Hub's licence identifiers (None passes: the default applies), else
    `ModelCardError` naming `name`, the value and where the allowed ids are listed."""
    if value is None:
        return None
    if not isinstance(value, str) or value not in HUB_LICENSES:
        near = sorted(lic for lic in HUB_LICENSES if isinstance(value, str) and value.strip().lower()[:3] == lic[:3])
        raise ModelCardError(
            f"{name} {value!r} is not a Hugging Face Hub licence identifier; use one of the Hub's ids "
            f"(https://huggingface.co/docs/hub/repositories-licenses), e.g. apache-2.0, mit, cc-by-4.0"
            + (f"; close ones: {', '.join(near[:8])}" if near else "") + ", or `other`"
        )
    return value


def check_revision(value: Any, name: str = "revision") -> str | None:
    """A git revision (branch, tag, commit sha, refs/pr/N) safe to write into generated code and cards."""
    if value is None:
        return None
    if (not isinstance(value, str) or not _REVISION.match(value) or ".." in value or value.endswith((".lock", "/"))
            or "//" in value):
        raise ModelCardError(
            f"{name} {value!r} is not a git revision: a branch, tag or commit sha of letters, digits and . _ - / "
            "(no spaces, quotes, line breaks or `..`), at most 200 characters"
        )
    return value


def check_task(value: Any, name: str = "task") -> str | None:
    """A pipeline task name (lower-case letters, digits, dashes), or None."""
    if value is not None and (not isinstance(value, str) or not _TASK.match(value)):
        raise ModelCardError(f"{name} {value!r} is not a pipeline task name (lower-case letters, digits and dashes)")
    return value


def check_tags(value: Any, name: str = "tags") -> list[str]:
    """A list of Hub tags: strings of letters, digits, spaces and . _ : + - (at most 100 characters each)."""
    if not isinstance(value, (list, tuple)):
        raise ModelCardError(f"{name} must be a list of strings; got {type(value).__name__}")
    for i, tag in enumerate(value):
        if not isinstance(tag, str) or not _TAG.match(tag):
            raise ModelCardError(
                f"{name}[{i}] = {tag!r} is not a Hub tag: letters, digits, spaces and . _ : + - only, at most 100 "
                "characters, no line breaks"
            )
    return list(value)


def check_language(value: Any, name: str = "language") -> Any:
    """None, or a language code / list of codes (ISO 639-1/639-3, optionally with a region: en, fr, zh-Hans)."""
    if value is None:
        return None
    for i, code in enumerate([value] if isinstance(value, str) else value if isinstance(value, (list, tuple)) else [value]):
        if not isinstance(code, str) or not _LANGUAGE.match(code):
            raise ModelCardError(f"{name} {code!r} is not a language code (ISO 639: e.g. en, fr, zh-Hans)")
    return value


def check_card_value(value: Any, name: str) -> None:
    """Refuse a value (string, or list/dict of them) that would change the card's structure; `name` says where
    it came from (e.g. `run_metadata.json: dataset`)."""
    if isinstance(value, str):
        bad = _UNSAFE_CHARS.search(value)
        if bad:
            raise ModelCardError(
                f"{name} = {value!r} cannot go into the model card: it holds {bad.group()!r}; line breaks, control "
                "characters and backticks are refused in values shown in cards (they could add headings or code)"
            )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_card_value(str(key), f"{name} (a key)")
            check_card_value(item, f"{name} {key}" if name.endswith(":") else f"{name}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_card_value(item, f"{name}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ModelCardError(f"{name} = {value!r} cannot go into the model card: it is not finite")


def check_card_inputs(
    run: RunInfo,
    repo_id: Any,
    *,
    license: Any = None,
    space_id: Any = None,
    repo_images: Mapping[str, str] | None = None,
    repo_text_samples: Mapping[str, str] | None = None,
) -> None:
    """Everything a card is built from, checked before it is rendered: the repo id (or a run folder's own path),
    the Space id, the run's metadata, metric names, licences, tags, language and recipe file name, and the
    published image and sample paths and captions. A `ModelCardError` names the first bad value."""
    from pathlib import Path

    if isinstance(repo_id, str) and Path(repo_id).is_dir():  # a run folder's own card points at the folder
        check_card_value(repo_id, "repo_id (a local folder)")
        if any(c in repo_id for c in "\"'\\"):
            raise ModelCardError(f"repo_id (a local folder) {repo_id!r} holds quotes or backslashes; refused")
    else:
        check_repo_id(repo_id)
    if space_id is not None:
        check_repo_id(space_id, "space_id")
    check_card_value(dict(run.metadata), f"{RUN_METADATA_FILE}:")
    check_card_value([str(k) for k in run.metrics], "metrics (names)")
    check_card_value(license, "license")
    check_license(license, "license (--license)")
    check_license(run.metadata.get("license"), f"{RUN_METADATA_FILE}: license")
    check_tags(run.metadata.get("tags", []), f"{RUN_METADATA_FILE}: tags")
    check_language(run.metadata.get("language"), f"{RUN_METADATA_FILE}: language")
    check_card_value(run.recipe_source, "recipe file")
    check_card_value(list(repo_images or {}), "image paths")
    check_card_value(list((repo_images or {}).values()), "image captions")
    check_card_value(list(repo_text_samples or {}), "text sample paths")


def check_card(card, expected) -> None:
    """Parse the card back (offline) and check its metadata matches what was rendered from."""
    from huggingface_hub import ModelCard

    parsed = ModelCard(str(card))
    got, want = parsed.data.to_dict(), expected.to_dict()
    for key, value in want.items():
        if value is None:
            continue
        if got.get(key) != value:
            raise ModelCardError(f"card metadata `{key}` parsed back as {got.get(key)!r}, expected {value!r}")
    if "model-index" in got and "model-index" not in want:
        raise ModelCardError("card has a model-index although no metrics were measured")
    if "{{" in parsed.text or "{%" in parsed.text:
        raise ModelCardError("card text still holds Jinja markup")
