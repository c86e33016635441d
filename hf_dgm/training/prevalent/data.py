"""Prevalent's training data: image-text-action triplets from walking R2R paths, BERT masking, batching.

A triplet is one step of an episode's ground-truth path walked with the environment (`hf_dgm.vln.R2REnv`, teacher
actions): the instruction, what the agent sees at that step, and the teacher action. In geometry-only mode (no feature
store) the "image" part is the candidates' angle features; with a feature store each candidate's token is its view's
image feature followed by the angle feature, as the environment's `candidate_features`.

The action label (config `action_space=37`) is the agent-centric view index of the teacher's candidate: `12 * level +
(heading index - current heading index) mod 12` with level 0/1/2 for elevation -30/0/+30 degrees, so it is what the
relative angle features describe; 36 is STOP.

Triplets are stored compactly (relative candidate headings/elevations, view indices) and turned into features in the
collator, so a few hundred thousand of them fit in memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

STOP_LABEL = 36
NUM_HEADINGS = 12


def agent_centric_view(candidate_view: int, current_view: int) -> int:
    """12·level + (candidate heading index − current heading index) mod 12."""
    return (candidate_view // NUM_HEADINGS) * NUM_HEADINGS + (candidate_view - current_view) % NUM_HEADINGS


def walk_triplets(items: list[dict], graphs, batch_size: int = 64, max_steps: int = 35, source: str = "r2r") -> list[dict]:
    """
    Walk every item's ground-truth path with teacher actions and return one triplet per step (the STOP at the goal
    included): `{"instruction", "scan", "viewpoint", "view_index", "cand_heading", "cand_elevation",
    "cand_view_index", "action", "source"}`.
    """
    from hf_dgm.vln import STOP, R2REnv

    if not items:
        return []
    env = R2REnv(items, graphs, features=None, batch_size=batch_size, angle_feat_size=4)
    triplets: list[dict] = []
    for _ in range(env.num_batches):
        obs = env.reset()
        for _ in range(max_steps + 1):
            actions = []
            for ob in obs:
                if ob["ended"]:
                    actions.append(STOP)
                    continue
                teacher = ob["teacher"]
                if teacher is None:
                    raise ValueError(f"episode {ob['instr_id']}: no goal, so no teacher action (a test-split item?)")
                cands = ob["candidates"]
                label = STOP_LABEL if teacher == STOP else agent_centric_view(cands[teacher]["view_index"], ob["view_index"])
                triplets.append(
                    {
                        "instruction": ob["instruction"],
                        "scan": ob["scan"],
                        "viewpoint": ob["viewpoint"],
                        "view_index": int(ob["view_index"]),
                        "cand_heading": [c["heading"] for c in cands],
                        "cand_elevation": [c["elevation"] for c in cands],
                        "cand_view_index": [c["view_index"] for c in cands],
                        "action": label,
                        "source": source,
                    }
                )
                actions.append(teacher)
            if all(ob["ended"] for ob in obs):
                break
            obs = env.step(actions)
    return triplets


class MixedTriplets(torch.utils.data.Dataset):
    """
    R2R triplets mixed with synthesized ones: item i is synthesized with probability `augmented_ratio` (drawn from a
    per-item seeded generator, so the mix is deterministic), else real. Length: `len(real) / (1 - ratio)` (every
    real triplet is seen about once per epoch), or `len(augmented)` when the ratio is 1.
    """

    def __init__(self, real: list[dict], augmented: list[dict] | None = None, augmented_ratio: float = 0.0, seed: int = 0):
        if not 0.0 <= augmented_ratio <= 1.0:
            raise ValueError(f"augmented_ratio must be in [0, 1]; got {augmented_ratio}")
        augmented = augmented or []
        if augmented_ratio > 0 and not augmented:
            raise ValueError("augmented_ratio > 0 needs synthesized triplets (--augmented FILE)")
        if augmented_ratio < 1 and not real:
            raise ValueError("no real triplets")
        self.real, self.augmented, self.ratio, self.seed = real, augmented, float(augmented_ratio), seed
        self.length = len(augmented) if self.ratio == 1 else int(math.ceil(len(real) / (1 - self.ratio)))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng((self.seed, index))
        if self.ratio == 1 or (self.ratio > 0 and rng.random() < self.ratio):
            return self.augmented[int(rng.integers(len(self.augmented)))]
        return self.real[index % len(self.real)]


def mask_tokens(
    input_ids: torch.Tensor,
    special_tokens_mask: torch.Tensor,
    mask_token_id: int,
    vocab_size: int,
    probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """
    BERT masking: each non-special token is selected with `probability`; of those 80% become [MASK], 10% a random
    token, 10% stay. Returns (masked ids, labels with -100 at unselected positions). Every sequence with at least one
    maskable token gets at least one selected position (so the MLM loss is defined).
    """
    labels = input_ids.clone()
    maskable = ~special_tokens_mask.bool()
    probs = torch.full(input_ids.shape, probability)
    selected = (torch.rand(input_ids.shape, generator=generator) < probs) & maskable
    none = ~selected.any(dim=1) & maskable.any(dim=1)
    if none.any():
        scores = torch.rand(input_ids.shape, generator=generator).masked_fill(~maskable, -1.0)
        forced = scores.argmax(dim=1)
        selected[none.nonzero().squeeze(1), forced[none]] = True
    labels[~selected] = -100
    masked = input_ids.clone()
    roll = torch.rand(input_ids.shape, generator=generator)
    to_mask = selected & (roll < 0.8)
    to_random = selected & (roll >= 0.8) & (roll < 0.9)
    masked[to_mask] = mask_token_id
    masked[to_random] = torch.randint(vocab_size, input_ids.shape, generator=generator)[to_random]
    return masked, labels


def candidate_tokens(triplet: dict, angle_feature_size: int, features=None) -> np.ndarray:
    """(K, [F +] angle_feature_size) vision tokens of a triplet (the environment's candidate_features)."""
    heading = np.asarray(triplet["cand_heading"], dtype=np.float64)
    elevation = np.asarray(triplet["cand_elevation"], dtype=np.float64)
    base = np.stack([np.sin(heading), np.cos(heading), np.sin(elevation), np.cos(elevation)], axis=-1)
    angle = np.tile(base, angle_feature_size // 4).astype(np.float32).reshape(len(heading), angle_feature_size)
    if features is None:
        return angle
    views = features.get(triplet["scan"], triplet["viewpoint"])
    return np.concatenate([views[np.asarray(triplet["cand_view_index"], dtype=np.int64)], angle], axis=1)


@dataclass
class PrevalentPretrainingCollator:
    """Tokenize instructions (max 80 word pieces), BERT-mask them, pad candidate tokens (at least one: a zero token
    stands for "no candidate" at dead ends) and stack the action labels."""

    tokenizer: Any
    angle_feature_size: int = 128
    features: Any = None
    mlm_probability: float = 0.15
    max_length: int = 80
    seed: int | None = None

    def __post_init__(self):
        self._generator = None
        if self.seed is not None:
            self._generator = torch.Generator().manual_seed(self.seed)

    def __call__(self, triplets: list[dict]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(
            [t["instruction"] for t in triplets], padding=True, truncation=True, max_length=self.max_length,
            return_tensors="pt", return_special_tokens_mask=True,
        )  # fmt: skip
        special = enc["special_tokens_mask"] | (enc["attention_mask"] == 0)
        input_ids, labels = mask_tokens(
            enc["input_ids"], special, self.tokenizer.mask_token_id, len(self.tokenizer), self.mlm_probability, self._generator
        )
        tokens = [candidate_tokens(t, self.angle_feature_size, self.features) for t in triplets]
        width = tokens[0].shape[1] if tokens[0].ndim == 2 and tokens[0].shape[0] else None
        width = width or (self.angle_feature_size if self.features is None else None)
        if width is None:
            width = next(t.shape[1] for t in tokens if t.shape[0])
        count = max(1, max(len(t) for t in tokens))
        vision = np.zeros((len(tokens), count, width), dtype=np.float32)
        vision_mask = np.zeros((len(tokens), count), dtype=np.int64)
        for i, t in enumerate(tokens):
            if len(t):
                vision[i, : len(t)] = t
                vision_mask[i, : len(t)] = 1
            else:
                vision_mask[i, 0] = 1
        return {
            "input_ids": input_ids,
            "attention_mask": enc["attention_mask"],
            "labels": labels,
            "vision_features": torch.from_numpy(vision),
            "vision_attention_mask": torch.from_numpy(vision_mask),
            "action_labels": torch.tensor([t["action"] for t in triplets], dtype=torch.long),
            "masked_positions_only": True,
        }
