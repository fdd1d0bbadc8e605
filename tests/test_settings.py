"""One table of settings (dream_core/shot/settings.py) and every front end
held to it: the server's checks, the CLI's options and the API's
defaults here; the panel's properties in a real Blender (test_blender)."""
import dataclasses
import inspect

import pytest

from dream_core import api
from dream_core.cli.parser import build_parser
from dream_core.config import DreamConfig, DreamSettings
from dream_core.errors import BadSetting
from dream_core.shot.settings import BY_NAME, FRONTS, SETTINGS, panel_range


def _dream_options() -> dict:
    parser = build_parser()
    dream = parser._subparsers._group_actions[0].choices["dream"]
    return {flag: action for action in dream._actions for flag in action.option_strings}


def test_the_table_is_every_setting_the_server_takes():
    wire = set(DreamSettings().to_params())
    assert {s.name for s in SETTINGS} == wire
    assert {s.name for s in SETTINGS if s.engine} == set(DreamConfig.field_names())


def test_every_setting_is_on_each_front_end_or_says_why_not():
    options = _dream_options()
    for setting in SETTINGS:
        assert set(setting.not_in) <= set(FRONTS) and all(setting.not_in.values())
        assert set(setting.defaults) <= set(FRONTS) and all(why for _, why in setting.defaults.values())
        if setting.offered_in("cli"):
            assert setting.flag in options, setting.name
            assert options[setting.flag].default == setting.default_in("cli"), setting.name
            if setting.choices:
                assert tuple(options[setting.flag].choices) == setting.choices
        else:
            assert setting.flag not in options, setting.name


def test_the_server_accepts_exactly_the_tables_range():
    for setting in SETTINGS:
        if setting.low is None:
            continue
        whole = isinstance(setting.default, int)
        for value in (setting.low, setting.high):
            DreamSettings.from_params({setting.name: value})
        outside = (setting.low - 1, setting.high + 1) if whole else (setting.low - 0.001, setting.high + 0.001)
        for value in outside:
            with pytest.raises(BadSetting, match=setting.name):
                DreamSettings.from_params({setting.name: value})
    for setting in SETTINGS:
        for choice in setting.choices:
            DreamSettings.from_params({setting.name: choice})
        if setting.choices:
            with pytest.raises(BadSetting, match=setting.name):
                DreamSettings.from_params({setting.name: "sideways"})


def test_defaults_are_the_tables_everywhere():
    params = DreamSettings().to_params()
    assert params == {s.name: s.default for s in SETTINGS}
    signature = inspect.signature(api.dream).parameters
    for name, parameter in signature.items():
        if name in BY_NAME:
            assert parameter.default == BY_NAME[name].default, name


def test_panel_limits_are_the_servers_within_blenders_ints():
    assert panel_range(BY_NAME["seed"]) == {"min": 0, "max": 2**31 - 1}
    assert panel_range(BY_NAME["step"]) == {"min": 0.0, "max": 1.0, "soft_min": 0.0, "soft_max": 0.2}
    for setting in SETTINGS:
        limits = panel_range(setting)
        if "soft_min" in limits:
            assert limits["min"] <= limits["soft_min"] <= limits["soft_max"] <= limits["max"], setting.name


def test_cli_flags_reach_the_wire(tmp_path):
    """Each CLI option lands in the request's params under the table's name."""
    from dream_core.cli.commands import settings_from_args

    parser = build_parser()
    args = parser.parse_args(["dream", "in.png", "-o", "out.png", "--mix", "0.5", "--layer-index", "3",
                              "--octave-scale", "1.6", "--precision", "fp32", "--tile-margin", "8"])
    params = settings_from_args(args).to_params()
    assert (params["mix"], params["layer_index"], params["octave_scale"], params["precision"],
            params["tile_margin"]) == (0.5, 3, 1.6, "fp32", 8)
    assert dataclasses.asdict(settings_from_args(parser.parse_args(["dream", "a.png", "-o", "b.png"])).config) == \
        dataclasses.asdict(DreamConfig())


@pytest.mark.parametrize("field, value", [("mix", 3.0), ("mix", float("nan")), ("mix", float("inf")),
                                          ("layer_index", 5000), ("layer_index", -2), ("temporal", "sideways")])
def test_settings_made_directly_are_checked_too(field, value):
    """The CLI builds its settings directly: the same range as a request's."""
    with pytest.raises(BadSetting, match=field):
        DreamSettings(**{field: value})
    parser = build_parser()
    from dream_core.cli.commands import settings_from_args

    if field != "temporal":  # (argparse itself refuses an unknown mode)
        with pytest.raises(BadSetting, match=field):
            settings_from_args(parser.parse_args(["dream", "a.png", "-o", "b.png",
                                                  "--" + field.replace("_", "-"), str(value)]))
