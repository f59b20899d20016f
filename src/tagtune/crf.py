"""A linear-chain CRF over words, on top of any transformers token classifier.

The encoder's logits at the first sub-token of each word are the CRF's *emissions*; the CRF adds a
learned score for each pair of consecutive labels (and for the first label) and is trained with the
sequence log-likelihood, normalised over the label sequences the tagging scheme allows (IOB2: no
``I-X`` after ``O``; BIOES: no ``B-X`` at the end, ...). Prediction is Viterbi over the same scores
with the same constraints: :class:`tagtune.decode.Decoder` given :meth:`CRF.transition_scores`.

The CRF runs over *words*: the positions whose label is not ``-100`` (first sub-tokens of the words a
window owns), packed to the left; document context, special tokens, later sub-tokens and window overlap
never enter it.

On disk a CRF model is the encoder's own ``save_pretrained`` output (so plain transformers still loads
it, without the CRF) plus ``crf.safetensors`` holding ``transitions`` and, as metadata, the labels and
the scheme. ``tagtune_config.json`` records ``model.crf: true``.

For the accelerate engine: :func:`wrap_with_crf` after loading the model, :func:`crf_parameter_groups`
for the optimizer, ``unwrap_model(model).save_pretrained(dir, state_dict=...)`` as for any model, and
:func:`decoder_for_model` before evaluating.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tagtune.decode import Decoder, Decoding, viterbi_decode
from tagtune.errors import ModelLoadError

logger = logging.getLogger(__name__)

CRF_FILE = "crf.safetensors"
# Transitions start at zero and must move far within one epoch at the encoder's small learning rate.
CRF_LR_SCALE = 100.0
IGNORE_INDEX = -100
_FORBIDDEN = -10000.0  # finite, so that gradients of forbidden paths are exactly zero, never NaN


class CRF(nn.Module):
    """Linear-chain CRF with learned transitions and hard scheme constraints.

    Attributes:
        labels / scheme: The label names and tagging scheme the constraints come from.
        transitions: ``[L + 1, L]`` learned scores; row ``L`` scores the first label.
        allowed / allowed_end: Boolean buffers, as :func:`tagtune.labels.allowed_transitions` and
            :func:`tagtune.labels.allowed_ends` give them.
    """

    def __init__(self, labels: Sequence[str], scheme: str):
        super().__init__()
        from tagtune.labels import allowed_ends, allowed_transitions

        self.labels = list(labels)
        self.scheme = scheme
        n = len(self.labels)
        self.transitions = nn.Parameter(torch.zeros(n + 1, n))
        self.register_buffer("allowed", torch.from_numpy(allowed_transitions(self.labels, scheme)), persistent=False)
        self.register_buffer("allowed_end", torch.from_numpy(allowed_ends(self.labels, scheme)), persistent=False)

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    def log_likelihood(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor,
                       constrained: bool = True) -> torch.Tensor:
        """``log p(tags | emissions)`` per sequence.

        Args:
            emissions: ``[B, W, L]`` scores per word (float32 is used inside).
            tags: ``[B, W]`` gold label ids (any value where ``mask`` is false).
            mask: ``[B, W]`` booleans, true for the words of each sequence, packed to the left.
            constrained: Normalise over the paths the scheme allows. A constraint that the gold path
                itself breaks (a window cut inside an entity starts with ``I-X``) is lifted for that
                sequence only, so the likelihood stays finite.

        Returns:
            ``[B]`` log-likelihoods; 0 for sequences with no words.
        """
        emissions = emissions.float()
        mask = mask.bool()
        tags = tags.masked_fill(~mask, 0)
        batch, steps, n = emissions.shape
        if steps == 0:
            return emissions.sum(dim=(1, 2)) * 0.0  # still part of the graph: backward() works on a wordless batch
        lengths = mask.sum(dim=1)
        trans, end = self._constrained_scores(tags, mask, lengths, constrained)
        # gold path score
        score = emissions.gather(2, tags.unsqueeze(-1)).squeeze(-1).masked_fill(~mask, 0.0).sum(dim=1)
        score = score + trans[torch.arange(batch), n, tags[:, 0]]
        if steps > 1:
            pair = trans[torch.arange(batch)[:, None], tags[:, :-1], tags[:, 1:]]
            score = score + pair.masked_fill(~mask[:, 1:], 0.0).sum(dim=1)
        last = tags.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        score = score + end.gather(1, last.unsqueeze(1)).squeeze(1)
        # log partition (forward algorithm in log space)
        alpha = emissions[:, 0] + trans[:, n]
        pairs = trans[:, :n]  # [B, previous, next]
        for t in range(1, steps):
            step = torch.logsumexp(alpha.unsqueeze(2) + pairs, dim=1) + emissions[:, t]
            alpha = torch.where(mask[:, t : t + 1], step, alpha)
        log_z = torch.logsumexp(alpha + end, dim=1)
        return (score - log_z).masked_fill(lengths == 0, 0.0)

    def _constrained_scores(self, tags: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor,
                            constrained: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sequence ``[B, L + 1, L]`` transition and ``[B, L]`` end scores, forbidden ones very low."""
        batch, n = tags.shape[0], self.num_labels
        trans = self.transitions.float().unsqueeze(0).expand(batch, -1, -1)
        end = torch.zeros(batch, n, device=trans.device)
        if not constrained:
            return trans, end
        forbid_pair = (~self.allowed[:n]).float() * _FORBIDDEN
        forbid_start = (~self.allowed[n]).float() * _FORBIDDEN
        forbid_end = (~self.allowed_end).float() * _FORBIDDEN
        # Which constraints the gold path keeps, per sequence.
        keeps_pairs = (self.allowed[tags[:, :-1], tags[:, 1:]] | ~mask[:, 1:]).all(dim=1)
        keeps_start = self.allowed[n][tags[:, 0]] | (lengths == 0)
        last = tags.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
        keeps_end = self.allowed_end[last] | (lengths == 0)
        pair_part = keeps_pairs[:, None, None].float() * forbid_pair
        start_part = keeps_start[:, None].float() * forbid_start
        trans = trans + torch.cat([pair_part, start_part.unsqueeze(1)], dim=1)
        end = end + keeps_end[:, None].float() * forbid_end
        return trans, end

    def loss(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood summed over sequences, divided by the number of words.

        Per word, like the token cross-entropy it replaces, so learning rates and gradient clipping keep
        their meaning.
        """
        words = mask.sum().clamp(min=1)
        return -self.log_likelihood(emissions, tags, mask).sum() / words

    def transition_scores(self) -> np.ndarray:
        """The learned ``[L + 1, L]`` transitions, for :class:`tagtune.decode.Decoder`."""
        return self.transitions.detach().float().cpu().numpy()

    def decoder(self, method: Decoding = "viterbi") -> Decoder:
        """A :class:`Decoder` with this CRF's labels, constraints and learned transitions."""
        return Decoder(self.labels, self.scheme, method, transitions=self.transition_scores())

    def decode(self, emissions: torch.Tensor, mask: torch.Tensor) -> list[list[int]]:
        """Best allowed label ids per sequence (Viterbi over emissions plus transitions)."""
        allowed, allowed_end = self.allowed.cpu().numpy(), self.allowed_end.cpu().numpy()
        transitions = self.transition_scores()
        scores = emissions.detach().float().cpu().numpy()
        return [viterbi_decode(scores[b, :length], allowed, allowed_end, transitions)
                for b, length in enumerate(mask.sum(dim=1).tolist())]

    def save(self, directory: str | Path) -> None:
        """Write ``crf.safetensors`` (transitions; labels and scheme as metadata)."""
        from safetensors.torch import save_file

        save_file({"transitions": self.transitions.detach().float().cpu().contiguous()},
                  str(Path(directory) / CRF_FILE),
                  metadata={"format": "pt", "labels": json.dumps(self.labels), "scheme": self.scheme})

    @classmethod
    def load(cls, directory: str | Path) -> CRF:
        """Read ``crf.safetensors`` written by :meth:`save`.

        Raises:
            ModelLoadError: The file is missing or malformed.
        """
        labels, scheme, transitions = read_crf_file(directory)
        crf = cls(labels, scheme)
        with torch.no_grad():
            crf.transitions.copy_(torch.from_numpy(transitions))
        return crf


def read_crf_file(directory: str | Path) -> tuple[list[str], str, np.ndarray]:
    """``(labels, scheme, transitions)`` from a model directory's ``crf.safetensors``.

    Raises:
        ModelLoadError: The file is missing or malformed.
    """
    from safetensors import safe_open

    path = Path(directory) / CRF_FILE
    if not path.is_file():
        raise ModelLoadError(f"'{directory}' is a CRF model (model.crf in tagtune_config.json) but has no "
                             f"{CRF_FILE}; copy the whole model directory")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            transitions = handle.get_tensor("transitions").float().numpy()
        labels = json.loads(metadata["labels"])
        scheme = metadata["scheme"]
    except (KeyError, ValueError, OSError) as error:
        raise ModelLoadError(f"{path}: not a tagtune CRF file ({type(error).__name__}: {error})") from None
    if transitions.shape != (len(labels) + 1, len(labels)):
        raise ModelLoadError(f"{path}: transitions of shape {tuple(transitions.shape)} do not fit "
                             f"{len(labels)} labels (expected ({len(labels) + 1}, {len(labels)}))")
    return labels, scheme, transitions


def gather_words(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pack the labelled positions of each row to the left.

    Args:
        logits: ``[B, T, L]`` per sub-token scores.
        labels: ``[B, T]`` with ``-100`` everywhere but the first sub-token of owned words.

    Returns:
        ``(emissions [B, W, L], tags [B, W], mask [B, W])`` with ``W`` the most words of a row.
    """
    keep = labels != IGNORE_INDEX
    counts = keep.sum(dim=1)
    width = int(counts.max()) if counts.numel() else 0
    # A stable sort of "not kept" brings the kept positions first, in their order.
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices[:, :width]
    emissions = logits.gather(1, order.unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
    mask = torch.arange(width, device=labels.device).unsqueeze(0) < counts.unsqueeze(1)
    tags = labels.gather(1, order).masked_fill(~mask, 0)
    return emissions, tags, mask


class TokenClassifierWithCRF(nn.Module):
    """A transformers token classifier (``encoder``) whose loss is a CRF's over words.

    ``forward`` returns the encoder's ``TokenClassifierOutput`` with the CRF loss when ``labels`` are
    given; ``logits`` stay per sub-token, so every inference path that works for the plain model works
    here (decode them with :meth:`CRF.decoder`).
    """

    main_input_name = "input_ids"

    def __init__(self, encoder: nn.Module, crf: CRF):
        super().__init__()
        self.encoder = encoder
        self.crf = crf

    @property
    def config(self):
        return self.encoder.config

    def num_parameters(self, exclude_embeddings: bool = False) -> int:
        return self.encoder.num_parameters(exclude_embeddings=exclude_embeddings) + self.crf.transitions.numel()

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, labels: torch.Tensor | None = None):
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
                  "position_ids": position_ids, "inputs_embeds": inputs_embeds}
        output = self.encoder(**{k: v for k, v in inputs.items() if v is not None})
        if labels is not None:
            emissions, tags, mask = gather_words(output.logits, labels)
            output.loss = self.crf.loss(emissions, tags, mask)
        return output

    def save_pretrained(self, save_directory: str | Path, state_dict: dict | None = None, **kwargs) -> None:
        """The encoder's ``save_pretrained`` plus ``crf.safetensors``.

        ``state_dict`` (from ``accelerator.get_state_dict`` or the Trainer) may hold this wrapper's keys
        (``encoder.*``, ``crf.transitions``); they are split between the two files.
        """
        Path(save_directory).mkdir(parents=True, exist_ok=True)
        encoder_state = None
        crf = self.crf
        if state_dict is not None:
            encoder_state = {k[len("encoder."):]: v for k, v in state_dict.items() if k.startswith("encoder.")}
            if "crf.transitions" in state_dict:
                crf = CRF(self.crf.labels, self.crf.scheme)
                with torch.no_grad():
                    crf.transitions.copy_(state_dict["crf.transitions"].float().cpu())
        self.encoder.save_pretrained(save_directory, state_dict=encoder_state, **kwargs)
        if kwargs.get("is_main_process", True):
            crf.save(save_directory)

    def load_weights(self, directory: str | Path) -> None:
        """Load encoder and CRF weights saved by :meth:`save_pretrained` (resuming, best model)."""
        from safetensors.torch import load_file

        state = load_file(str(Path(directory) / "model.safetensors"), device="cpu")
        missing, unexpected = self.encoder.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if k in dict(self.encoder.named_parameters())]:
            raise ModelLoadError(f"'{directory}': weights do not fit the model (missing {missing[:3]}, "
                                 f"unexpected {unexpected[:3]})")
        labels, _, transitions = read_crf_file(directory)
        if labels != self.crf.labels:
            raise ModelLoadError(f"'{directory}': CRF labels {labels} differ from the model's {self.crf.labels}")
        with torch.no_grad():
            self.crf.transitions.copy_(torch.from_numpy(transitions))

    @classmethod
    def from_pretrained(cls, directory: str | Path, scheme: str | None = None, **kwargs) -> TokenClassifierWithCRF:
        """Load a directory written by :meth:`save_pretrained` (``kwargs`` go to transformers)."""
        from transformers import AutoModelForTokenClassification

        encoder = AutoModelForTokenClassification.from_pretrained(str(directory), **kwargs)
        crf = CRF.load(directory)
        if scheme is not None and scheme != crf.scheme:
            logger.warning("CRF scheme %s saved in %s differs from %s; using the saved one", crf.scheme, directory, scheme)
        return cls(encoder, crf)


def wrap_with_crf(model: nn.Module, labels: Sequence[str], scheme: str,
                  init_from: str | Path | None = None) -> TokenClassifierWithCRF:
    """Put a CRF on ``model``; its transitions come from ``init_from``'s ``crf.safetensors`` when that
    directory has one for the same labels (fine-tuning a CRF model again), else start at zero."""
    crf = CRF(labels, scheme)
    if init_from is not None and (Path(init_from) / CRF_FILE).is_file():
        saved_labels, _, transitions = read_crf_file(init_from)
        if saved_labels == list(labels):
            with torch.no_grad():
                crf.transitions.copy_(torch.from_numpy(transitions))
        else:
            logger.warning("not reusing the CRF of %s: its labels differ", init_from)
    device = next(model.parameters()).device
    return TokenClassifierWithCRF(model, crf.to(device))


def crf_parameter_groups(model: nn.Module, groups: list[dict], learning_rate: float) -> list[dict]:
    """Take the CRF's parameters out of ``groups`` into their own group (learning rate times
    :data:`CRF_LR_SCALE`, no weight decay). ``groups`` is left unchanged; a model without CRF gets
    ``groups`` back as they are."""
    crf = getattr(model, "crf", None)
    if not isinstance(crf, CRF):
        return groups
    own = {id(p) for p in crf.parameters()}
    rest = [{**g, "params": [p for p in g["params"] if id(p) not in own]} for g in groups]
    return [g for g in rest if g["params"]] + [
        {"params": list(crf.parameters()), "weight_decay": 0.0, "lr": learning_rate * CRF_LR_SCALE}]


def decoder_for_model(model: nn.Module, decoder: Decoder) -> Decoder:
    """``decoder``, or for a CRF model the CRF's decoder (same method) with its current transitions."""
    crf = getattr(model, "crf", None)
    return crf.decoder(decoder.method) if isinstance(crf, CRF) else decoder
