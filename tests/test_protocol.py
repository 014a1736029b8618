"""Protocol schema: shipped files validate, bad files fail with file/key/line, hash is canonical."""

import pytest
from conftest import TINY_PROTOCOL

from bench.errors import ConfigError
from bench.protocol import load_protocol, parse_protocol, protocol_files


def tiny(**replace):
    text = TINY_PROTOCOL.format(name="tiny")
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("name", sorted(protocol_files()))
def test_every_shipped_protocol_validates(name):
    proto = load_protocol(name)
    assert proto.name == name
    assert proto.primary.split("@")[1] in {**proto.groups, **proto.test}


def test_embedded_protocols_are_shipped():
    assert {"synthetic_universal", "synthetic_cross_domain"} <= set(protocol_files())


def test_unknown_key_names_file_key_and_line():
    text = tiny() + "budgett: {max_epochs: 1}\n"
    with pytest.raises(ConfigError, match=r"p.yaml line 20, key 'budgett': unknown key"):
        parse_protocol(text, "p.yaml")


def test_nested_unknown_key_has_its_line():
    text = tiny(**{"select: \"best:auc\"}": "select: \"best:auc\", shuffle: true}"})
    with pytest.raises(ConfigError, match=r"line 8, key 'val.shuffle'"):
        parse_protocol(text, "p.yaml")


def test_malformed_yaml_is_one_clear_error():
    with pytest.raises(ConfigError, match=r"p.yaml line \d+: not valid YAML"):
        parse_protocol("name: [unclosed\nversion: 1\n", "p.yaml")


@pytest.mark.parametrize("old,new,message", [
    ("unseen: [blend_ellipse, peaks_p4]", "unseen: [blend_elipse]", "not a test set.*Did you mean 'blend_ellipse'"),
    ("primary: auc@unseen", "primary: video_auc@unseen", "not in `metrics`"),
    ("primary: auc@unseen", "primary: auc@nowhere", "neither a group nor a test set"),
    ("source: synth, split: train", "source: synt, split: train", "not under `sources`"),
    ('select: "best:auc"', 'select: "best:accuracy"', "select must be"),
    ("version: 1", "version: 0", "greater than or equal to 1"),
    ("  peaks_p4: {source", "  val: {source", "reserved"),
])
def test_schema_violations(old, new, message):
    with pytest.raises(ConfigError, match=message):
        parse_protocol(tiny(**{old: new}), "p.yaml")


def test_hash_ignores_formatting_but_not_content():
    a = parse_protocol(tiny(), "a")
    b = parse_protocol(tiny() + "\n# a comment\n", "b")
    c = parse_protocol(tiny(**{"max_epochs: 2": "max_epochs: 3"}), "c")
    assert a.sha256() == b.sha256() != c.sha256()


def test_name_must_match_file(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text(tiny())
    with pytest.raises(ConfigError, match="must equal the file name 'other'"):
        load_protocol(path)


def test_unknown_protocol_suggests():
    with pytest.raises(ConfigError, match="Did you mean 'synthetic_universal'"):
        load_protocol("synthetic_universl")


def test_bad_group_member_is_reported_at_its_own_line():
    text = tiny(**{"unseen: [blend_ellipse, peaks_p4]": "unseen:\n    - blend_ellipse\n    - peaks_p5"})
    line = text.splitlines().index("    - peaks_p5") + 1
    with pytest.raises(ConfigError, match=rf"p.yaml line {line}, key 'groups.unseen.1': .*'peaks_p5'.*"
                                          r"Did you mean 'peaks_p4'\?$"):
        parse_protocol(text, "p.yaml")


@pytest.mark.parametrize(("old", "new", "match"), [
    ("subsets: [peaks_p4]", "subsets: [peaks_p5]", r"line 12, key 'test.peaks_p4.subsets.0': .*peaks_p5"),
    ("subsets: [blend_ellipse]}", "subsets: [blend_ellipse@jpg75]}", r"line 11, key 'test.blend_ellipse.subsets.0'"),
    ("{type: synthetic,", "{type: synthetc,", r"line 5, key 'sources.synth': .*'synthetc'.*Did you mean 'synthetic'"),
])
def test_validate_checks_what_it_can_without_data(tmp_path, old, new, match):
    from bench.data.validate import validate_file

    path = tmp_path / "tiny.yaml"
    path.write_text(tiny(**{old: new}))
    parse_protocol(path.read_text(), "still schema-valid")
    with pytest.raises(ConfigError, match=match):
        validate_file(path)


def test_validate_checks_catalog_names(tmp_path):
    from bench.data.validate import validate_file

    path = tmp_path / "tiny.yaml"
    path.write_text(tiny(**{"  synth: {type: synthetic, image_size: 32, n_per_class: {train: 12, val: 8, test: 8}, "
                            "seed: 0}": "  synth: forensynth"}))
    with pytest.raises(ConfigError, match=r"key 'sources.synth': .*'forensynth'.*Did you mean 'forensynths'"):
        validate_file(path)
    assert validate_file("synthetic_universal").name == "synthetic_universal"


# -- keys added for issue 21: paired train/val, test_resolution, perturb shorter_side ------------------
PAIRED_TRAIN = """train:
  real: {source: synth, split: train, subsets: [upsample_nearest]}
  fake: {source: synth, split: train, subsets: [upsample_nearest], frames_per_group: 2}
val:
  real: {source: synth, split: val, subsets: [upsample_nearest]}
  fake: {source: synth, split: val, subsets: [upsample_nearest]}
  select: "best:ap"
"""


def test_train_and_val_may_take_reals_and_fakes_from_two_places():
    head, rest = tiny().split("\ntrain:", 1)
    tests = "test:" + rest.split("\ntest:", 1)[1]
    proto = parse_protocol(f"{head}\n{PAIRED_TRAIN}{tests}", "p.yaml")
    assert proto.val.select == "best:ap" and proto.train.fake.frames_per_group == 2
    assert [where for where, _ in proto.splits()][:4] == [
        ("train", "real"), ("train", "fake"), ("val", "real"), ("val", "fake")]
    with pytest.raises(ConfigError, match="select must be"):
        parse_protocol(f"{head}\n{PAIRED_TRAIN.replace('best:ap', 'best:f1')}{tests}", "p")


def test_late_keys_at_their_defaults_leave_every_hash_as_it_was():
    import hashlib
    import json

    proto = parse_protocol(tiny(**{"{source: synth, split: test, subsets: [peaks_p4]}":
                                   "{source: synth, split: test, subsets: [peaks_p4], perturb: {jpeg: 75}}"}), "p")
    before = proto.model_dump(mode="json")  # what the schema of the first results dumped, without the late keys
    del before["test_resolution"], before["rounds"]
    for late in ("shorter_side", "chain", "seed"):
        del before["test"]["peaks_p4"]["perturb"][late]
    old = hashlib.sha256(json.dumps(before, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert proto.sha256() == old
    native = parse_protocol(tiny() + "test_resolution: native\n", "p")
    lowres = parse_protocol(tiny(**{"subsets: [peaks_p4]}": "subsets: [peaks_p4], perturb: {shorter_side: 64}}"}), "p")
    chained = [parse_protocol(tiny(**{"subsets: [peaks_p4]}": f"subsets: [peaks_p4], perturb: {{chain: ai_genbench{s}}}}}"}),
                              "p") for s in ("", ", seed: 1")]
    hashes = {native.sha256(), lowres.sha256(), parse_protocol(tiny(), "p").sha256(), *(c.sha256() for c in chained)}
    assert len(hashes) == 5


def test_perturb_scales_by_a_factor_or_to_a_shorter_side_never_both():
    from PIL import Image

    from bench.data.perturb import apply_perturb
    from bench.protocol import Perturb

    with pytest.raises(ConfigError, match="downscale or shorter_side, not both"):
        parse_protocol(tiny(**{"subsets: [peaks_p4]}": "subsets: [peaks_p4], perturb: {downscale: 0.5, shorter_side: 64}}"}), "p")
    assert apply_perturb(Image.new("RGB", (500, 375)), Perturb(shorter_side=112)).size == (149, 112)
    assert apply_perturb(Image.new("RGB", (60, 90)), Perturb(shorter_side=64)).size == (60, 90)  # never up-scaled
    with pytest.raises(ConfigError, match="test_resolution"):
        parse_protocol(tiny() + "test_resolution: full\n", "p")
