"""Built-in detectors pass the adapter contract; settings resolve with the documented precedence."""

import pytest

from bench.errors import ConfigError
from bench.plugin.factory import parse_overrides, resolve_detector
from bench.testing import check_detector

TINY = {"backbone": "timm:tf_efficientnet_lite0@imagenet-offline", "image_size": 32}


@pytest.mark.parametrize("name", ["clip_linear", "univfd", "sam", "corit"])
def test_builtin_detectors_pass_check_detector(name):
    spec = resolve_detector(name, TINY)
    checks = check_detector(spec.build)
    expected = "fit_features" if name == "clip_linear" else "train_step"
    assert expected in checks and "state_dict_round_trip" in checks


def test_check_detector_catches_a_step_that_bypasses_ctx_model():
    from detectors.clip_linear import ClipLinear

    class Sloppy(ClipLinear):
        def train_step(self, batch, ctx):
            loss = self.loss(self(batch["image"]), batch)  # bypasses ctx.model
            loss.backward()
            ctx.optimizer.step()
            return {"loss": loss}

    cfg = resolve_detector("univfd", TINY).config
    with pytest.raises(AssertionError, match="never called ctx.model"):
        check_detector(lambda: Sloppy(cfg))


def test_precedence_preset_then_protocol_then_cli():
    spec = resolve_detector("univfd", {"lr": 0.5}, {"image_size": 64, "unknown_to_detector": 1})
    cfg = spec.config
    assert (cfg.probe, cfg.select, cfg.image_size, cfg.lr) == ("sgd", "best:acc", 64, 0.5)
    assert spec.defaults_applied == {"image_size": 64}


def test_unknown_setting_has_did_you_mean():
    with pytest.raises(ConfigError, match=r"Unknown setting 'learning_rat'.*|Unknown setting 'c_value'.*Did you mean 'c_values'"):
        resolve_detector("clip_linear", {"c_value": [1.0]})


def test_wrong_type_is_a_clear_error():
    with pytest.raises(ConfigError, match="Setting 'epochs' of detector 'univfd' is invalid"):
        resolve_detector("univfd", parse_overrides(["epochs=many"]))


def test_override_parsing():
    assert parse_overrides(["lr=1e-4", "c_values=[1, 2]", "augment=none"]) == {
        "lr": "1e-4", "c_values": [1, 2], "augment": "none"}
    assert resolve_detector("univfd", parse_overrides(["lr=1e-4"])).config.lr == 1e-4
    with pytest.raises(ConfigError, match="not key=value"):
        parse_overrides(["lr"])


def test_missing_pretrained_weight_is_an_error_not_a_random_init():
    spec = resolve_detector("clip_linear", {"backbone": "timm:resnet18@/nonexistent/weights.safetensors"})
    with pytest.raises(ConfigError):
        spec.build()


def test_protocol_per_detector_block_applies_to_that_detector_only():
    from bench.errors import ConfigError

    defaults = {"lr": 1e-3, "image_size": 64, "sam": {"lr": 5e-4, "rho": 0.1}}
    sam = resolve_detector("sam", None, defaults)
    assert (sam.config.lr, sam.config.rho, sam.config.image_size) == (5e-4, 0.1, 64)
    assert sam.defaults_applied == {"lr": 5e-4, "image_size": 64, "rho": 0.1}
    corit = resolve_detector("corit", {"lr": 2e-3}, defaults)
    assert (corit.config.lr, corit.config.rho) == (2e-3, 0.05)  # -o wins; sam's block is not corit's
    with pytest.raises(ConfigError, match=r"detector_defaults.sam sets 'rhoo'.*Did you mean 'rho'"):
        resolve_detector("sam", None, {"sam": {"rhoo": 1}})
