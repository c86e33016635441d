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
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `str`): the viewpoints of each trajectory, start first.
    references (`list` of `list` of `str`): each episode's reference path (start ... goal).
    scans (`list` of `str`): the scan of each episode.
    connectivity_dir (`str`): folder of `<scan>_connectivity.json` files.
    ids (`list` of `str`, optional): names used in error messages (e.g. instruction ids).
    error_margin (`float`, defaults to 3.0): success threshold in metres.
Returns:
    trajectory_length, nav_error, oracle_success_rate, success_rate, spl, ndtw, sdtw (averages), num_episodes.
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

    def _compute(self, predictions, references, scans=None, connectivity_dir=None, ids=None, error_margin=3.0):
        if scans is None or connectivity_dir is None:
            raise ValueError("r2r_navigation needs scans= (one per episode) and connectivity_dir=")
        if len(scans) != len(predictions):
            raise ValueError(f"got {len(scans)} scans for {len(predictions)} predictions")
        names = list(ids) if ids is not None else [f"episode {n}" for n in range(len(predictions))]
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
        return vln_metrics.summarize(scores)
