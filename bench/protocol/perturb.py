"""A split's degradation (``perturb``, ``fake_perturb``): fixed operations at set strengths, or a named chain."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: The keys that set a fixed degradation's strength (a ``chain`` is random per image: it has none).
LEVELS = ("jpeg", "blur", "downscale", "shorter_side")


class Perturb(BaseModel):
    """A deterministic degradation: down-scaling, then Gaussian blur sigma, then JPEG quality; or a named chain.

    Down-scaling is a factor (``downscale``) or a target for the shorter side in pixels
    (``shorter_side``, GenImage's "LR (112)"), never both. ``chain`` names a published chain of
    random degradations (:data:`bench.data.perturb_chains.CHAINS`), drawn per image from ``seed`` and
    the image's id, so it too is the same in every run; it stands alone.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    jpeg: int | None = Field(default=None, ge=1, le=100)
    blur: float | None = Field(default=None, gt=0, le=1000)
    downscale: float | None = Field(default=None, gt=0, lt=1)
    #: Down-scale so the shorter side is this many pixels (aspect kept; an image already smaller is kept as is).
    shorter_side: int | None = Field(default=None, gt=0)
    #: A named chain of random degradations (``ai_genbench``: AI-GenBench's mandatory evaluation degradations).
    chain: Literal["ai_genbench"] | None = None
    #: The chain's seed (with the image's id, it fixes every draw); unset is 0.
    seed: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _one_scaling(self) -> Perturb:
        if self.downscale is not None and self.shorter_side is not None:
            raise ValueError("set downscale or shorter_side, not both")
        fixed = [k for k in LEVELS if getattr(self, k) is not None]
        if self.chain is not None and fixed:
            raise ValueError(f"a chain stands alone; put {', '.join(fixed)} in a perturb of its own")
        if self.chain is None and self.seed is not None:
            raise ValueError("seed draws a chain's degradations; set chain, or remove seed")
        return self
