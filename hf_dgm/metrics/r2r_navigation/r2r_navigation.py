"""R2R navigation metrics (TL, NE, SR, OSR, SPL, nDTW, SDTW) over the Matterport3D navigation graphs.

The math lives in `hf_dgm.vln.metrics`; the graphs in `hf_dgm.vln.graphs`.
"""

import datasets
import evaluate

import hf_dgm.vln.graphs as vln_graphs
import hf_dgm.vln.metrics as vln_metrics


_DESCRIPTION = """
Vision-and-language navigation metrics as the standard R2R evaluators compute them: graph distances by Dijkstra over
the scan's connectivity graph (edge i-j iff both viewpoints are included and i-j is unobstructed; weight = distance
between pose translations). TL: trajectory length; NE: distance from the final viewpoint to the goal; SR: NE < 3 m
(strict); OSR: some visited viewpoint < 3 m from the goal; SPL: SR weighted by shortest length / max(TL, shortest);
nDTW = exp(-DTW / (3 |reference|)) after collapsing repeated consecutive viewpoints; SDTW = SR * nDTW. Rates are
fractions in [0, 1].

Which episodes count: the official evaluator (Matterport3DSimulator `tasks/R2R/eval.py`) scores the first three
instructions of each path only; a few R2R paths have a fourth (one in val_seen: 1020 scored instructions, not 1021).
Given `ids` of the form `<path_id>_<k>`, this metric does the same by default: instructions with
k >= `instructions_per_path` (3) are left out of the averages and summarised apart under `extra_instructions`
(`num_extra_instructions` counts them). `instructions_per_path=None` averages every episode (R2R-EnvDrop's
evaluator). Without `ids`, every episode is averaged (nothing tells which instruction of its path it is).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `str`): the viewpoints of each trajectory, start first.
    references (`list` of `list` of `str`): each episode's reference path (start ... goal).
    scans (`list` of `str`): the scan of each episode.
    connectivity_dir (`str`): folder of `<scan>_connectivity.json` files.
    ids (`list` of `str`, optional): the instruction ids `<path_id>_<k>`; used in error messages and, with
        `instructions_per_path`, to leave out instructions the official evaluator does not score.
    error_margin (`float`, defaults to 3.0): success threshold in metres.
    instructions_per_path (`int` or `None`, defaults to 3): with `ids`, average only instructions k < this (the
        official evaluator's `range(3)`); `None` averages all.
Returns:
    trajectory_length, nav_error, oracle_success_rate, success_rate, spl, ndtw, sdtw (averages), num_episodes,
    num_extra_instructions, extra_instructions (the same averages over the left-out instructions, or None).
Raises:
    ValueError naming the episode for an unknown viewpoint, a wrong start, or a move along no edge.
"""

_CITATION = """
@inproceedings{anderson2018vision,
  title={Vision-and-Language Navigation: Interpreting visually-grounded navigation instructions in real environments},
  author={Anderson, Peter and Wu, Qi and Teney, Damien and Bruce, Jake and Johnson, Mark and S{\\"u}nderhauf, Niko and Reid, Ian and Gould, Stephen and van den Hengel, Anton},
  booktitle={CVPR},
  year={2018}
}
@article{ilharco2019general,
  title={General Evaluation for Instruction Conditioned Navigation using Dynamic Time Warping},
  author={Ilharco, Gabriel and Jain, Vihan and Ku, Alexander and Ie, Eugene and Baldridge, Jason},
  journal={arXiv:1907.05446},
  year={2019}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class R2RNavigation(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("string")),
                    "references": datasets.Sequence(datasets.Value("string")),
                }
            ),
            reference_urls=["https://arxiv.org/abs/1711.07280", "https://arxiv.org/abs/1907.05446"],
        )

    def _compute(
        self, predictions, references, scans=None, connectivity_dir=None, ids=None, error_margin=3.0, instructions_per_path=3
    ):
        if scans is None or connectivity_dir is None:
            raise ValueError("r2r_navigation needs scans= (one per episode) and connectivity_dir=")
        if len(scans) != len(predictions):
            raise ValueError(f"got {len(scans)} scans for {len(predictions)} predictions")
        if ids is not None and len(ids) != len(predictions):
            raise ValueError(f"got {len(ids)} ids for {len(predictions)} predictions")
        if instructions_per_path is not None and (
            not isinstance(instructions_per_path, int) or isinstance(instructions_per_path, bool) or instructions_per_path < 1
        ):
            raise ValueError(f"instructions_per_path must be a positive int or None; got {instructions_per_path!r}")
        names = [str(i) for i in ids] if ids is not None else [f"episode {n}" for n in range(len(predictions))]
        extra = [False] * len(names)
        if ids is not None and instructions_per_path is not None:
            for n, name in enumerate(names):
                _, _, k = name.rpartition("_")
                if not k.isdigit():
                    raise ValueError(
                        f"id {name!r} is not '<path_id>_<k>': pass instructions_per_path=None to average every episode"
                    )
                extra[n] = int(k) >= instructions_per_path
        graphs = vln_graphs.NavGraphs.from_dir(connectivity_dir, scans=sorted(set(scans)))
        scores = []
        for name, trajectory, reference, scan in zip(names, predictions, references, scans):
            graph = graphs.graph(scan)
            distances = graphs.distances(scan)
            scores.append(
                vln_metrics.score_episode(
                    list(trajectory),
                    list(reference),
                    lambda a, b, distances=distances: distances[a][b],
                    is_edge=graph.has_edge,
                    has_viewpoint=graph.__contains__,
                    name=f"{name} (scan {scan})",
                    error_margin=float(error_margin),
                )
            )
        main = [s for s, e in zip(scores, extra) if not e]
        left_out = [s for s, e in zip(scores, extra) if e]
        if not main:
            raise ValueError("every episode is an extra instruction (k >= instructions_per_path): nothing to average")
        summary = vln_metrics.summarize(main)
        summary["num_extra_instructions"] = len(left_out)
        summary["extra_instructions"] = vln_metrics.summarize(left_out) if left_out else None
        return summary
