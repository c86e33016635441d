"""Configuration of the R2R-EnvDrop speaker used by Prevalent to synthesize instructions."""

from ...modules.hub_compat import HubCompatibleConfig
from ...modules.validation import finite_config


@finite_config
class PrevalentSpeakerConfig(HubCompatibleConfig):
    r"""
    The speaker of R2R-EnvDrop (Tan et al. 2019), which PREVALENT (Hao et al. 2020) used to synthesize instructions for
    sampled paths. An LSTM encoder reads the trajectory (per step: the action taken, i.e. the feature of the view that
    points at the next viewpoint, and attention over the step's 36 panorama views); an attention LSTM decoder writes
    the instruction word-piece by word-piece.

    Args:
        vocab_size (`int`, defaults to 30522): size of the tokenizer's vocabulary (BERT uncased).
        token_ids (`list[int]`, *optional*): when given, the decoder's output vocabulary is this subset of tokenizer ids
            (model index k is tokenizer id `token_ids[k]`; ids outside it read as `unk_token_id`), e.g. the word pieces
            seen in R2R train, as EnvDrop builds its vocabulary from train. `None`: the whole tokenizer vocabulary.
        feature_size (`int`, defaults to 0): size of a view's visual feature (2048 for ResNet-152); 0 = geometry-only.
        angle_feat_size (`int`, defaults to 128): size of the angle feature `[sin h, cos h, sin e, cos e]` tiled.
        num_views (`int`, defaults to 36): panorama views per step.
        hidden_size (`int`, defaults to 512), embedding_size (`int`, defaults to 256): LSTM and word-embedding sizes.
        bidirectional (`bool`, defaults to True): bidirectional encoder LSTMs (EnvDrop's `--bidir`).
        dropout (`float`, defaults to 0.5): dropout of encoder and decoder; feature_dropout (`float`, defaults to 0.3):
            dropout on the input features (EnvDrop's `featdropout`).
        max_instruction_length (`int`, defaults to 80): word pieces per instruction, BOS/EOS included, in training and
            the default generation limit.
        pad_token_id, bos_token_id, eos_token_id, unk_token_id: tokenizer ids ([PAD], [CLS], [SEP], [UNK] of BERT).
    """

    model_type = "prevalent_speaker"

    def __init__(
        self,
        vocab_size: int = 30522,
        token_ids: list[int] | None = None,
        feature_size: int = 0,
        angle_feat_size: int = 128,
        num_views: int = 36,
        hidden_size: int = 512,
        embedding_size: int = 256,
        bidirectional: bool = True,
        dropout: float = 0.5,
        feature_dropout: float = 0.3,
        max_instruction_length: int = 80,
        pad_token_id: int = 0,
        bos_token_id: int = 101,
        eos_token_id: int = 102,
        unk_token_id: int = 100,
        **kwargs,
    ):
        if feature_size < 0 or angle_feat_size <= 0 or angle_feat_size % 4:
            raise ValueError(
                f"feature_size must be >= 0 and angle_feat_size a positive multiple of 4; got {feature_size}, {angle_feat_size}"
            )
        if bidirectional and hidden_size % 2:
            raise ValueError(f"a bidirectional encoder needs an even hidden_size; got {hidden_size}")
        if token_ids is not None:
            token_ids = [int(t) for t in token_ids]
            if len(set(token_ids)) != len(token_ids):
                raise ValueError("token_ids must not repeat")
            for name, value in (("pad", pad_token_id), ("bos", bos_token_id), ("eos", eos_token_id), ("unk", unk_token_id)):
                if value not in token_ids:
                    raise ValueError(f"token_ids must contain the {name} token id {value}")
            if max(token_ids) >= vocab_size:
                raise ValueError(f"token_ids holds ids >= vocab_size {vocab_size}")
        self.vocab_size = vocab_size
        self.token_ids = token_ids
        self.feature_size = feature_size
        self.angle_feat_size = angle_feat_size
        self.num_views = num_views
        self.hidden_size = hidden_size
        self.embedding_size = embedding_size
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.feature_dropout = feature_dropout
        self.max_instruction_length = max_instruction_length
        self.unk_token_id = unk_token_id
        super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id, **kwargs)

    @property
    def input_size(self) -> int:
        """Size of one view's (or one action's) input: visual feature + angle feature."""
        return self.feature_size + self.angle_feat_size

    @property
    def output_vocab_size(self) -> int:
        return len(self.token_ids) if self.token_ids is not None else self.vocab_size


__all__ = ["PrevalentSpeakerConfig"]
