"""Gradio app for the Prevalent VLN models: pick a scan and an R2R path, see it on the scan's floor graph.

- Speaker (`prevalent_speaker`, task `vln-instruction`): the speaker writes an instruction for the picked path
  (greedy, beam search or sampling); the R2R reference instructions are shown next to it.
- Navigation agent (`prevalent_navigation`, task `vln-navigation`): the agent follows an instruction (the path's
  first reference instruction, editable) from the path's start; its trajectory is drawn over the reference path,
  with the shortest-path distance from where it stopped to the goal.

The floor graph is the scan's navigation graph (`<scan>_connectivity.json`: included viewpoints, unobstructed
edges) seen from above: x and y of each viewpoint's pose, in metres.
The data folder (R2R_<split>.json files and connectivity/) comes from `--data DIR`, else the `R2R_DATA_DIR`
environment variable, else the folder above the connectivity folder recorded in the model's config.

    hf-dgm demo prevalent_navigation runs/speaker --data ../shared/data/r2r
    R2R_DATA_DIR=../shared/data/r2r python -m hf_dgm.demo runs/prevalent-r2r
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...demo.common import build_arg_parser, guarded, launch, load_pipeline, model_title, parse_seed, read_model_type


# the Space's README metadata (upload/publish_space.py)
SPACE = {"emoji": "🧭", "colorFrom": "blue", "colorTo": "green",
         "short_description": "R2R instructions and navigation with Prevalent, drawn on the floor graph"}
TASKS = {"prevalent_speaker": "vln-instruction", "prevalent_navigation": "vln-navigation"}
SPLITS = ("val_seen", "val_unseen", "train", "test")
DECODINGS = {
    "greedy": {},
    "beam search (3 beams)": {"num_beams": 3},
    "sampling (top-p 0.9)": {"do_sample": True, "top_p": 0.9},
}


def resolve_data_dir(data: str | os.PathLike | None, config) -> Path:
    """The R2R data folder: `data`, else `$R2R_DATA_DIR`, else the parent of the config's `connectivity_dir`."""
    recorded = getattr(config, "connectivity_dir", None)
    candidates = [data, os.environ.get("R2R_DATA_DIR"), Path(recorded).parent if recorded else None]
    for candidate in candidates:
        if candidate and (Path(candidate) / "connectivity").is_dir():
            return Path(candidate)
    raise ValueError(
        "no R2R data folder (R2R_<split>.json files and connectivity/) found: pass --data DIR or set R2R_DATA_DIR "
        f"(tried {[str(c) for c in candidates if c]})"
    )


def load_episodes(data: Path) -> list[dict]:
    """R2R episodes of every split found, with `split` added; only those whose scan has a connectivity file."""
    episodes = []
    for split in SPLITS:
        path = data / f"R2R_{split}.json"
        if path.is_file():
            for item in json.loads(path.read_text()):
                if (data / "connectivity" / f"{item['scan']}_connectivity.json").is_file():
                    episodes.append({**item, "split": split})
    if not episodes:
        raise ValueError(f"{data} has no R2R_<split>.json episode whose scan has a connectivity file")
    return episodes


def floor_graph(data: Path, scan: str):
    """The scan's navigation graph (networkx): included viewpoints with `pos` (x, y) and edges weighted in metres."""
    import networkx as nx

    items = json.loads((data / "connectivity" / f"{scan}_connectivity.json").read_text())
    graph = nx.Graph()
    for item in items:
        if item["included"]:
            pose = item["pose"]
            graph.add_node(item["image_id"], pos=(pose[3], pose[7]), z=pose[11])
    for i, item in enumerate(items):
        if not item["included"]:
            continue
        for j, linked in enumerate(item["unobstructed"]):
            other = items[j]
            if linked and other["included"] and j > i:
                a, b = graph.nodes[item["image_id"]], graph.nodes[other["image_id"]]
                weight = math.dist((*a["pos"], a["z"]), (*b["pos"], b["z"]))
                graph.add_edge(item["image_id"], other["image_id"], weight=weight)
    return graph


def draw_paths(graph, reference: list[str], trajectory: list[str] | None = None, title: str = ""):
    """The floor graph from above with the reference path (blue) and the agent's trajectory (red), as a PIL image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    pos = {node: data["pos"] for node, data in graph.nodes(data=True)}
    fig, ax = plt.subplots(figsize=(6, 6), dpi=100)
    try:
        for a, b in graph.edges():
            ax.plot(*zip(pos[a], pos[b]), color="#cccccc", linewidth=0.8, zorder=1)
        xs, ys = zip(*pos.values()) if pos else ((), ())
        ax.scatter(xs, ys, s=8, color="#888888", zorder=2)

        def path_line(nodes, color, style, label, width):
            points = [pos[n] for n in nodes if n in pos]
            if len(points) > 1:
                ax.plot(*zip(*points), style, color=color, linewidth=width, label=label, zorder=3)
            elif points:
                ax.scatter(*zip(*points), s=40, color=color, label=label, zorder=3)

        path_line(reference, "#1f77b4", "-", "reference path", 3.0)
        if trajectory is not None:
            path_line(trajectory, "#d62728", "--", "agent trajectory", 2.0)
        if reference:
            ax.scatter(*pos[reference[0]], s=90, marker="o", color="#2ca02c", label="start", zorder=4)
            ax.scatter(*pos[reference[-1]], s=140, marker="*", color="#ff7f0e", label="goal", zorder=4)
        ax.set_aspect("equal")
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
        ax.set_title(title, fontsize=9)
        ax.legend(loc="best", fontsize=8)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def path_label(episode: dict) -> str:
    return f"{episode['path_id']} ({episode['split']}, {len(episode['path'])} viewpoints)"


class VLNDemo:
    def __init__(self, model: str | os.PathLike, revision: str | None = None, device: Any = None,
                 data: str | os.PathLike | None = None):  # fmt: skip
        from transformers import AutoConfig

        from ...demo.common import register_local_families

        register_local_families()
        self.model_id, self.revision = str(model), revision
        self.model_type = read_model_type(model, revision)
        if self.model_type not in TASKS:
            raise ValueError(f"this app serves {sorted(TASKS)}; {model} is a {self.model_type!r} model")
        config = AutoConfig.from_pretrained(str(model), trust_remote_code=True, revision=revision)
        self.data = resolve_data_dir(data, config)
        self.episodes = load_episodes(self.data)
        self.scans = sorted({e["scan"] for e in self.episodes})
        kwargs = ({"connectivity_dir": str(self.data / "connectivity")} if self.speaker
                  else {"connectivity": str(self.data / "connectivity")})  # fmt: skip
        self.pipe = load_pipeline(TASKS[self.model_type], model, revision=revision, device=device, **kwargs)
        self._graphs: dict[str, Any] = {}

    @property
    def speaker(self) -> bool:
        return self.model_type == "prevalent_speaker"

    def paths(self, scan: str) -> list[str]:
        return [path_label(e) for e in self.episodes if e["scan"] == scan]

    def episode(self, scan: Any, label: Any) -> dict:
        if scan not in self.scans:
            raise ValueError(f"pick a scan (one of {len(self.scans)} with episodes); got {scan!r}")
        for e in self.episodes:
            if e["scan"] == scan and path_label(e) == label:
                return e
        raise ValueError(f"pick a path of scan {scan}; got {label!r}")

    def graph(self, scan: str):
        if scan not in self._graphs:
            self._graphs[scan] = floor_graph(self.data, scan)
        return self._graphs[scan]

    def describe(self, scan: Any, label: Any, decoding: Any = "greedy", seed: Any = "0", max_length: Any = 40):
        """Speaker: (instruction, reference instructions, picture of the path)."""
        episode = self.episode(scan, label)
        if decoding not in DECODINGS:
            raise ValueError(f"decoding must be one of {list(DECODINGS)}; got {decoding!r}")
        kwargs = dict(DECODINGS[decoding], max_length=int(max_length))
        seed = parse_seed(seed)
        if seed is not None and kwargs.get("do_sample"):
            kwargs["seed"] = seed
        out = self.pipe({"scan": episode["scan"], "path": episode["path"], "heading": float(episode["heading"])}, **kwargs)
        picture = draw_paths(self.graph(episode["scan"]), episode["path"],
                             title=f"{episode['scan']} path {episode['path_id']}")  # fmt: skip
        return out["instruction"], "\n".join(episode.get("instructions", [])), picture

    def navigate(self, scan: Any, label: Any, instruction: Any):
        """Navigation agent: (trajectory picture, summary) for `instruction` from the path's start."""
        import networkx as nx

        episode = self.episode(scan, label)
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError("type an instruction for the agent to follow")
        out = self.pipe({"scan": episode["scan"], "start": episode["path"][0], "heading": float(episode["heading"]),
                         "instruction": instruction})  # fmt: skip
        visited = [step[0] for step in out["trajectory"]]
        trajectory = [v for i, v in enumerate(visited) if i == 0 or v != visited[i - 1]]
        graph = self.graph(episode["scan"])
        error = nx.shortest_path_length(graph, trajectory[-1], episode["path"][-1], weight="weight")
        picture = draw_paths(graph, episode["path"], trajectory,
                             title=f"{episode['scan']} path {episode['path_id']}")  # fmt: skip
        summary = (f"The agent made {len(out['actions'])} decisions, visited {len(trajectory)} viewpoints and stopped "
                   f"{error:.2f} m (shortest path) from the goal.")  # fmt: skip
        return picture, trajectory, summary


@dataclass
class _VLNPage:
    """The page's components: path pickers, run button, status and picture for both apps; decoding controls and the
    generated/reference instructions for the speaker, the instruction box for the navigation agent."""

    scan: Any
    path: Any
    run: Any
    status: Any
    picture: Any
    decoding: Any = None
    seed: Any = None
    max_length: Any = None
    generated: Any = None
    references: Any = None
    instruction: Any = None


def _layout(gr, app: VLNDemo, title: str) -> _VLNPage:
    """The header, a column of controls (scan, path, then the speaker's decoding or the agent's instruction) and a
    column of results (the speaker's instruction beside the references, and the floor graph)."""
    first_paths = app.paths(app.scans[0])
    kind = "speaker (instruction writer)" if app.speaker else "navigation agent"
    gr.Markdown(
        f"# Prevalent: vision-and-language navigation on R2R\nModel {title}, a {kind}. "
        f"{len(app.episodes)} R2R paths in {len(app.scans)} scans from `{app.data}`. The picture is the scan's "
        "navigation graph seen from above (metres): the reference path in blue"
        + ("." if app.speaker else ", the agent's trajectory in red.")
    )
    extra: dict[str, Any] = {}
    with gr.Row():
        with gr.Column(scale=1):
            scan = gr.Dropdown(app.scans, value=app.scans[0], label="Scan", elem_id="vln-scan")
            path = gr.Dropdown(first_paths, value=first_paths[0], label="Path", elem_id="vln-path")
            if app.speaker:
                extra["decoding"] = gr.Radio(list(DECODINGS), value="greedy", label="Decoding", elem_id="vln-decoding")
                extra["seed"] = gr.Textbox(value="0", label="Seed (sampling)", max_lines=1, elem_id="vln-seed")
                extra["max_length"] = gr.Slider(5, 80, value=40, step=1, label="Maximum length (tokens)",
                                                elem_id="vln-max-length")  # fmt: skip
                run = gr.Button("Describe the path", variant="primary", elem_id="vln-run")
            else:
                extra["instruction"] = gr.Textbox(label="Instruction", lines=3, elem_id="vln-instruction")
                run = gr.Button("Navigate", variant="primary", elem_id="vln-run")
            status = gr.Markdown(elem_id="vln-status")
        with gr.Column(scale=2):
            if app.speaker:
                extra["generated"] = gr.Textbox(label="Speaker's instruction", lines=3, elem_id="vln-generated")
                extra["references"] = gr.Textbox(label="R2R reference instructions", lines=3, elem_id="vln-references")
            picture = gr.Image(label="Floor graph", type="pil", format="png", elem_id="vln-picture")
    return _VLNPage(scan, path, run, status, picture, **extra)


def _wire_speaker(gr, app: VLNDemo, page: _VLNPage) -> None:
    """The speaker's button: describe the picked path."""

    def describe(s, p, d, sd, m, progress=gr.Progress()):
        progress(0.1, desc="writing the instruction")
        text, refs, image = app.describe(s, p, d, sd, m)
        return text, refs, image, f"Instruction for path {p} of {s} ({d})."

    page.run.click(guarded(describe, ("", "", None)), [page.scan, page.path, page.decoding, page.seed, page.max_length],
                   [page.generated, page.references, page.picture, page.status])  # fmt: skip


def _wire_navigator(gr, demo, app: VLNDemo, page: _VLNPage) -> None:
    """The navigation agent's page: the picked path's first R2R instruction fills the box (on load too); the button
    navigates with the box's instruction."""

    def fill(s, p):
        episode = app.episode(s, p)
        return (episode.get("instructions") or [""])[0]

    page.path.change(lambda s, p: fill(s, p) if p else "", [page.scan, page.path], [page.instruction])
    demo.load(lambda s, p: fill(s, p), [page.scan, page.path], [page.instruction])

    def navigate(s, p, text, progress=gr.Progress()):
        progress(0.1, desc="navigating")
        image, _, summary = app.navigate(s, p, text)
        return image, summary

    page.run.click(guarded(navigate, (None,)), [page.scan, page.path, page.instruction], [page.picture, page.status])


def build_demo(model: str | os.PathLike, revision: str | None = None, device: Any = None,
               data: str | os.PathLike | None = None):  # fmt: skip
    """The VLN Gradio app for a saved speaker or navigation agent (folder or Hub repo; `revision`: pinned commit)."""
    import gradio as gr

    app = VLNDemo(model, revision=revision, device=device, data=data)
    with gr.Blocks(title=f"Prevalent — {app.model_id}") as demo:
        page = _layout(gr, app, model_title(model, revision))

        def pick_scan(s):
            labels = app.paths(s)
            return gr.update(choices=labels, value=labels[0] if labels else None)

        page.scan.change(pick_scan, [page.scan], [page.path])
        if app.speaker:
            _wire_speaker(gr, app, page)
        else:
            _wire_navigator(gr, demo, app, page)
    demo.vln = app
    return demo


def main(argv: list[str] | None = None) -> None:
    """`hf-dgm demo prevalent_navigation MODEL_DIR_OR_REPO [--data DIR] [--revision R] [--host H] [--port P]`."""
    import logging

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = build_arg_parser("hf-dgm demo prevalent_navigation")
    parser.add_argument("--data", default=None, help="R2R data folder (R2R_<split>.json, connectivity/); default "
                                                     "$R2R_DATA_DIR")  # fmt: skip
    args = parser.parse_args(argv)
    launch(build_demo(args.model, revision=args.revision, device=args.device, data=args.data), args.host, args.port)


if __name__ == "__main__":
    main()
