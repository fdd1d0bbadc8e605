"""What a dream maximises: small objectives that compose.

An objective maps the activations ``{layer: tensor[B, C, H, W]}`` to one value
per batch item (always maximised). ``+`` and ``*`` compose them::

    layer("block9") + 0.5 * channels("block12", [3, 17])

and :func:`parse_objective` reads the string form ``"block9+0.5*block12:3,17"``.
Values are means over positions, so a dream computed tile by tile sums the
tiles' values weighted by their share of the image.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch

from ..errors import BadSetting, UnknownLayer


class Objective:
    """Base class; subclasses implement ``__call__`` and ``layers``."""

    layers: frozenset[str] = frozenset()

    @property
    def key(self) -> str:
        """What identifies this objective's computation, for caches: its
        ``repr`` unless that leaves out data (a guide's features)."""
        return repr(self)

    def __call__(self, acts: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def __add__(self, other: "Objective") -> "Objective":
        return Sum([self, other])

    def __mul__(self, weight: float) -> "Objective":
        return Scaled(self, float(weight))

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return Scaled(self, -1.0)


class Layer(Objective):
    """Mean squared activation of a layer: DeepDream's classic "amplify
    whatever this layer sees"."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.layers = frozenset([name])

    def __call__(self, acts):
        return acts[self.name].float().pow(2).mean(dim=(1, 2, 3))

    def __repr__(self) -> str:
        return f"layer({self.name!r})"


class Channels(Objective):
    """Mean squared activation of chosen channels: steers the dream to a few
    features (one channel may be all spirals, another all eyes)."""

    def __init__(self, name: str, indices: Sequence[int]) -> None:
        self.name = name
        self.indices = [int(i) for i in indices]
        self.layers = frozenset([name])

    def __call__(self, acts):
        act = acts[self.name]
        bad = [i for i in self.indices if not 0 <= i < act.shape[1]]
        if bad:
            raise BadSetting(f"channel(s) {bad} out of range for layer {self.name} ({act.shape[1]} channels)")
        return act[:, self.indices].float().pow(2).mean(dim=(1, 2, 3))

    def __repr__(self) -> str:
        return f"channels({self.name!r}, {self.indices})"


class Guide(Objective):
    """Amplifies the features that best match a guide image's, as in Google's
    original notebook: each position is pulled towards the guide feature
    vector it already resembles most."""

    def __init__(self, name: str, guide_features: torch.Tensor) -> None:
        # guide_features: [C, N], one column per position of the guide image
        self.name = name
        self.guide = guide_features
        self.layers = frozenset([name])
        # two guides of one size share a repr; the cache key must tell them apart
        digest = hashlib.sha1(guide_features.detach().float().cpu().numpy().tobytes()).hexdigest()[:16]
        self._key = f"guide({name!r}, {digest})"

    @property
    def key(self) -> str:
        return self._key

    def __call__(self, acts):
        act = acts[self.name].float()
        b, c, h, w = act.shape
        x = act.reshape(b, c, h * w)
        guide = self.guide.to(x.device, x.dtype)
        match = torch.einsum("bcn,cm->bnm", x, guide).argmax(dim=2)  # best guide vector per position
        targets = guide.t()[match]  # [B, N, C]
        return (x.transpose(1, 2) * targets).sum(dim=2).mean(dim=1) / c

    def __repr__(self) -> str:
        return f"guide({self.name!r}, {tuple(self.guide.shape)})"


class Sum(Objective):
    def __init__(self, terms: Sequence[Objective]) -> None:
        flat: list[Objective] = []
        for term in terms:
            flat += term.terms if isinstance(term, Sum) else [term]
        self.terms = flat
        self.layers = frozenset().union(*(t.layers for t in flat))

    @property
    def key(self) -> str:
        return " + ".join(t.key for t in self.terms)

    def __call__(self, acts):
        return sum(term(acts) for term in self.terms)

    def __repr__(self) -> str:
        return " + ".join(map(repr, self.terms))


class Scaled(Objective):
    def __init__(self, inner: Objective, weight: float) -> None:
        self.inner, self.weight = inner, weight
        self.layers = inner.layers

    @property
    def key(self) -> str:
        return f"{self.weight:g} * {self.inner.key}"

    def __call__(self, acts):
        return self.weight * self.inner(acts)

    def __repr__(self) -> str:
        return f"{self.weight:g} * {self.inner!r}"


def layer(name: str) -> Objective:
    return Layer(name)


def channels(name: str, indices: Sequence[int]) -> Objective:
    return Channels(name, indices)


MAX_WEIGHT = 1000.0  # a layer's weight in an objective, either way


def parse_objective(text: str) -> Objective:
    """``"block9"``, ``"block9:3,17"`` (channels), ``"block8+0.5*block10"`` (weighted layers)."""
    terms: list[Objective] = []
    for part in text.replace(" ", "").split("+"):
        if not part:
            raise BadSetting(f"empty term in objective {text!r}")
        weight = 1.0
        if "*" in part:
            w, part = part.split("*", 1)
            try:
                weight = float(w)
            except ValueError:
                raise BadSetting(f"bad weight {w!r} in objective {text!r}") from None
            if not -MAX_WEIGHT <= weight <= MAX_WEIGHT:  # also NaN and inf: the sum would overflow
                raise BadSetting(f"weight {w!r} in objective {text!r} must be from {-MAX_WEIGHT:g} to {MAX_WEIGHT:g}")
        name, _, chans = part.partition(":")
        if chans:
            try:
                term: Objective = Channels(name, [int(c) for c in chans.split(",")])
            except ValueError:
                raise BadSetting(f"bad channel list {chans!r} in objective {text!r}") from None
        else:
            term = Layer(name)
        terms.append(term if weight == 1.0 else Scaled(term, weight))
    return terms[0] if len(terms) == 1 else Sum(terms)


def objective_of(text: str, model: str, layers: Sequence[str]) -> Objective:
    """:func:`parse_objective`, every layer it names checked against the model's."""
    objective = parse_objective(text)
    unknown = sorted(objective.layers - set(layers))
    if unknown:
        raise UnknownLayer(f"model {model} has no layer {', '.join(unknown)}; valid: {', '.join(layers)}")
    return objective
