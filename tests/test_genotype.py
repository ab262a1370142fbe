import json

import pytest
import torch
from conftest import assert_points_at

from fer_core.models import create_model
from fer_core.models.autofernet import OPS, AutoFERNet
from fer_core.models.genotype import AUTO_FERNET, PRIMITIVES, Genotype
from fer_core.models.syntax import ArchitectureSyntaxError

DARTS_TEXT = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('conv_3x3', 1), ('dil_conv_5x5', 0), "
    "('conv_1x1', 2), ('ghost', 2), ('dil_conv_5x5', 3), ('skip_connect', 0), ('conv_1x1', 1)], "
    "normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), "
    "('max_pool_3x3', 0), ('dil_conv_5x5', 2), ('avg_pool_3x3', 1), ('skip_connect', 2), "
    "('avg_pool_3x3', 0), ('sep_conv_3x3', 2)], reduce_concat=range(2, 6))"
)


def test_published_genotype_in_darts_spelling():
    assert Genotype.parse(DARTS_TEXT) == AUTO_FERNET


def test_round_trip_and_json_spelling():
    assert Genotype.parse(AUTO_FERNET.to_text()) == AUTO_FERNET
    as_json = json.dumps({
        "normal": [list(e) for e in AUTO_FERNET.normal],
        "reduce": [list(e) for e in AUTO_FERNET.reduce],
    })  # fmt: skip
    assert Genotype.parse(as_json) == AUTO_FERNET  # concat defaults to all nodes


def test_a_searched_genotype_builds_without_code_changes(tmp_path):
    # A 3-node cell with other operations, as an SGAS search could emit it.
    text = (
        "Genotype(normal=[('sep_conv_5x5', 1), ('dil_conv_3x3', 0), ('skip_connect', 2), "
        "('max_pool_3x3', 1), ('conv_3x3', 3), ('avg_pool_3x3', 2)], normal_concat=[2, 3, 4], "
        "reduce=[('ghost', 0), ('conv_1x1', 1), ('sep_conv_5x5', 2), ('skip_connect', 0), "
        "('dil_conv_3x3', 3), ('max_pool_3x3', 1)], reduce_concat=[3, 4])"
    )
    path = tmp_path / "searched.genotype"
    path.write_text(text)
    model = create_model("autofernet", genotype=path, layers=5, channels=8).eval()
    assert model.genotype == Genotype.parse(text)
    assert model(torch.rand(2, 1, 44, 44)).shape == (2, 7)
    assert isinstance(create_model("autofernet", genotype=text, layers=3), AutoFERNet)


@pytest.mark.parametrize(
    ("text", "token", "message"),
    [
        (DARTS_TEXT.replace("'ghost'", "'gohst'"), "'gohst'", "unknown operation 'gohst'"),
        (DARTS_TEXT.replace("('conv_1x1', 2)", "('conv_1x1', 4)"), "4",
         "node 1 of the normal cell can only read states 0..2"),
        (DARTS_TEXT.replace("normal_concat", "normal_cat"), "normal_cat", "unknown field"),
        (DARTS_TEXT.replace("('conv_3x3', 1), ", "", 1), "[", "two edges per node"),
        (DARTS_TEXT.replace("('skip_connect', 2)", "('skip_connect', 'x')"), "'x'",
         "must be an integer"),
        (DARTS_TEXT.replace("range(2, 6), reduce", "range(2, 7), reduce"), "range(2, 7)",
         "concat indices must lie in 2..5"),
        (DARTS_TEXT[:-1], None, "not parseable"),
    ],
)  # fmt: skip
def test_malformed_genotype_points_at_the_token(text, token, message):
    with pytest.raises(ArchitectureSyntaxError, match="genotype") as info:
        Genotype.parse(text)
    err = info.value
    assert message in str(err)
    if token is not None:
        assert_points_at(err, text, token)


def test_genotype_file_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text(DARTS_TEXT.replace("'ghost'", "'gohst'"))
    with pytest.raises(ArchitectureSyntaxError, match=f"genotype file {path}"):
        Genotype.from_file(path)


@pytest.mark.parametrize("name", PRIMITIVES)
@pytest.mark.parametrize("channels", [8, 9])
def test_every_primitive_keeps_width_and_halves_at_stride_2(name, channels):
    assert set(OPS) == set(PRIMITIVES)
    x = torch.rand(2, channels, 12, 12)
    for stride, side in ((1, 12), (2, 6)):
        out = OPS[name](channels, stride)(x)
        assert out.shape == (2, channels, side, side)
    if name == "none":
        assert not out.any()
