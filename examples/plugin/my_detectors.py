"""A detector that lives in its own package and plugs into forgery-bench through an entry point."""

from dataclasses import dataclass

from torch import nn

from bench import DataConfig, Detector


class TinyCNN(Detector):
    """Three convolutions trained from scratch (a minimal adapter)."""

    @dataclass
    class Config:
        image_size: int = 64
        lr: float = 1e-3
        epochs: int = 2

    def __init__(self, cfg=None):
        super().__init__(cfg)
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 1),
        )

    def data_config(self):
        return DataConfig(image_size=self.cfg.image_size)

    def forward(self, images):
        return self.net(images).squeeze(1)  # one logit per image, > 0 means fake
