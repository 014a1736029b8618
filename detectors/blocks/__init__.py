"""Building blocks the detectors share: backbones, released-weight loaders, heads, augmentations,
schedules, losses and per-method parts. Nothing here is registered; ``detectors/`` holds the detectors.
"""
