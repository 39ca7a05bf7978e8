"""Conversion rules come from the plugins: a third party's, a disabled one, conflicts, errors.

The plugins are real distributions (the installed ones, or small ones written by the
``fake_dist`` fixture with real entry points), as in tests/foundation.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from geofm_core.cli import main as geofm
from geofm_core.convert.terratorch import convert_config, map_backbone, map_decoder
from geofm_core.errors import PluginLoadWarning
from geofm_core.registry import Registry, reset_registry

ROOT = Path(__file__).resolve().parents[2]


def model(model_args: dict[str, Any], factory: str = "EncoderDecoderFactory") -> dict[str, Any]:
    return {"model": {"class_path": "terratorch.tasks.SemanticSegmentationTask",
                      "init_args": {"model_factory": factory, "model_args": model_args}}}


def model_args(conversion: Any) -> dict[str, Any]:
    args: dict[str, Any] = conversion.config["model"]["init_args"]["model_args"]
    return args


UPERNET = model({"backbone": "timm_resnet18", "decoder": "UperNetDecoder",
                 "decoder_channels": 16, "num_classes": 2})


# ------------------------------------------------------------------------- a third party


def test_a_third_party_plugin_makes_its_backbone_convertible() -> None:
    import torch

    import geofm_core.tasks as tasks

    config = model({"backbone": "example_tiny_cnn", "backbone_in_channels": 4,
                    "backbone_stage_widths": [8, 8, 16, 16], "decoder": "UperNetDecoder",
                    "decoder_channels": 16, "num_classes": 2})
    conversion = convert_config(config)
    args = model_args(conversion)
    assert args["backbone"] == "example:tiny_cnn"
    assert args["backbone_kwargs"] == {"in_chans": 4, "widths": [8, 8, 16, 16]}
    assert args["decoder"] == "upernet:upernet" and "necks" not in args
    assert conversion.unmapped == []
    init = conversion.config["model"]["init_args"]
    task = getattr(tasks, conversion.config["model"]["class_path"])(**init)
    assert tuple(task.model(torch.zeros(2, 4, 64, 64)).output.shape) == (2, 2, 64, 64)


def test_a_third_party_alias_takes_bands_as_its_channel_count() -> None:
    conversion = convert_config(model({"backbone": "tiny_cnn_v1", "decoder": "FCNDecoder",
                                       "backbone_bands": ["BLUE", "GREEN", "RED"],
                                       "backbone_depth": 3, "num_classes": 2}))
    args = model_args(conversion)
    assert args["backbone"] == "example:tiny_cnn"
    assert args["backbone_kwargs"] == {"in_chans": 3}
    assert any("example:tiny_cnn takes no band names; written as in_chans: 3" in n
               for n in conversion.notes)
    # a keyword the real TinyCNN does not take is reported, naming the component
    assert any("backbone_depth" in u and "example:tiny_cnn takes no such argument" in u
               for u in conversion.unmapped)


def test_map_backbone_and_map_decoder_use_the_plugins_rules() -> None:
    assert map_backbone("prithvi_vit_100") == ("prithvi:prithvi_eo_v1_100", "prithvi", {})
    assert map_backbone("prithvi_vit_tiny")[2] == {"embed_dim": 256, "depth": 4, "num_heads": 4}
    assert map_backbone("terratorch_example_tiny_cnn")[:2] == ("example:tiny_cnn", "example")
    assert map_backbone("timm_resnet18")[:2] == ("timm:resnet18", "timm")
    assert map_backbone("prithvi_swin_L")[:2] == ("prithvi:prithvi_swin_l", "prithvi")
    assert map_decoder("UperNetDecoder") == "upernet:upernet"
    assert map_decoder("smp_Unet") == "smp:unet"
    assert map_decoder("ASPPSegmentationHead") is None


# ------------------------------------------------------------------------- a plugin missing


def test_a_disabled_plugin_leaves_its_decoder_unconverted_and_is_named(
        fresh_registry: Callable[..., Registry]) -> None:
    registry = fresh_registry({"GEOFM_DISABLE_PLUGINS": "upernet"})
    conversion = convert_config(UPERNET, registry=registry)
    assert model_args(conversion)["decoder"] == "UperNetDecoder"  # kept for the user to fix
    line = next(u for u in conversion.unmapped if "UperNetDecoder" in u)
    assert "no geofm decoder of that name" in line
    assert "no loaded plugin declares it" in line and "'upernet' (disabled)" in line
    # with every plugin loaded, the same config converts
    assert model_args(convert_config(UPERNET))["decoder"] == "upernet:upernet"


def test_a_disabled_plugin_through_the_environment_and_the_cli(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "tt.yaml"
    source.write_text(yaml.safe_dump(UPERNET))
    monkeypatch.setenv("GEOFM_DISABLE_PLUGINS", "upernet")
    reset_registry()
    try:
        assert geofm(["convert", "terratorch", str(source), "-o", str(tmp_path / "o.yaml")]) == 0
    finally:
        reset_registry()
    err = capsys.readouterr().err
    assert "UperNetDecoder" in err and "'upernet' (disabled)" in err


# ------------------------------------------------------------------------- conflicts, errors

PLUGIN = """
from geofm_core import hookimpl
from geofm_core.convert.rules import ComponentRule, ConversionRules, FactoryRule

@hookimpl
def geofm_register_components(register):
    register("decoder", "twin", "{module}_impl:Twin")

@hookimpl
def geofm_conversion_rules(framework):
    if framework != "terratorch":
        return None
    return {rules}
"""
IMPL = """
class Twin:
    '''A test decoder.'''
    def __init__(self, in_channels, channels: int = 4):
        self.out_channels = channels

def convert(args, report):
    report.note("model", "converted by a plugin function")
    return {{"backbone": "timm:resnet18", "decoder": "{source}:twin", "num_classes": 2}}

def boom(args, report):
    raise ValueError("no luck")
"""


def _plugin(module: str, source: str, rules: str) -> dict[str, str]:
    return {module: PLUGIN.format(module=module, rules=rules),
            f"{module}_impl": IMPL.format(source=source)}


TWIN = 'ConversionRules(components=(ComponentRule("decoder", ("{name}",), "twin"),))'


def test_two_plugins_claiming_one_name_convert_it_by_neither(
        fake_dist: Callable[..., Path], fresh_registry: Callable[..., Registry]) -> None:
    fake_dist("twin-a", {"twina": "twina_plugin"},
              _plugin("twina_plugin", "twina", TWIN.format(name="TwinDecoder")))
    fake_dist("twin-b", {"twinb": "twinb_plugin"},
              _plugin("twinb_plugin", "twinb", TWIN.format(name="TwinDecoder")))
    registry = fresh_registry()
    with pytest.warns(PluginLoadWarning,
                      match=r"decoder 'TwinDecoder' is claimed by 2 .*'twina'.*'twinb'"):
        conversion = convert_config(model({"backbone": "timm_resnet18", "decoder": "TwinDecoder",
                                           "num_classes": 2}), registry=registry)
    assert model_args(conversion)["decoder"] == "TwinDecoder"
    line = next(u for u in conversion.unmapped if "TwinDecoder" in u)
    assert "twina:twin" in line and "twinb:twin" in line and "will not pick one" in line
    # the other rules keep working
    with pytest.warns(PluginLoadWarning):
        assert model_args(convert_config(UPERNET, registry=registry))["decoder"] == \
            "upernet:upernet"


def test_a_plugin_claiming_a_core_name_is_a_conflict_too(
        fake_dist: Callable[..., Path], fresh_registry: Callable[..., Registry]) -> None:
    fake_dist("twin-c", {"twinc": "twinc_plugin"},
              _plugin("twinc_plugin", "twinc", TWIN.format(name="FCNDecoder")))
    with pytest.warns(PluginLoadWarning, match=r"'FCNDecoder' is claimed by 2 .*'geofm'.*'twinc'"):
        conversion = convert_config(model({"backbone": "timm_resnet18", "decoder": "FCNDecoder",
                                           "num_classes": 2}), registry=fresh_registry())
    assert model_args(conversion)["decoder"] == "FCNDecoder"


def test_malformed_or_broken_rules_leave_that_plugin_out(
        fake_dist: Callable[..., Path], fresh_registry: Callable[..., Registry]) -> None:
    foreign = 'ConversionRules(components=(ComponentRule("decoder", ("Bad",), "prithvi:x"),))'
    fake_dist("bad-rules", {"badrules": "bad_plugin"}, _plugin("bad_plugin", "badrules", foreign))
    fake_dist("raising", {"raising": "raising_plugin"},
              _plugin("raising_plugin", "raising", "1 / 0"))
    registry = fresh_registry()
    with pytest.warns(PluginLoadWarning) as caught:
        conversion = convert_config(model({"backbone": "timm_resnet18", "decoder": "Bad",
                                           "num_classes": 2}), registry=registry)
    messages = "\n".join(str(w.message) for w in caught)
    assert "'badrules' declares invalid terratorch conversion rules" in messages
    assert "declare bare names" in messages
    assert "'raising'" in messages and "ZeroDivisionError" in messages
    line = next(u for u in conversion.unmapped if "Bad" in u)
    assert "'badrules' (invalid rules)" in line
    with pytest.warns(PluginLoadWarning):
        assert model_args(convert_config(UPERNET, registry=registry))["decoder"] == \
            "upernet:upernet"


def test_a_rule_naming_an_unregistered_component_is_reported(
        fake_dist: Callable[..., Path], fresh_registry: Callable[..., Registry]) -> None:
    ghost = 'ConversionRules(components=(ComponentRule("backbone", ("ghost_net",), "ghost"),))'
    fake_dist("ghost-plugin", {"ghost": "ghost_plugin"}, _plugin("ghost_plugin", "ghost", ghost))
    conversion = convert_config(model({"backbone": "ghost_net", "decoder": "FCNDecoder",
                                       "num_classes": 2}), registry=fresh_registry())
    assert model_args(conversion)["backbone"] == "ghost_net"
    line = next(u for u in conversion.unmapped if "ghost_net" in u)
    assert "plugin 'ghost' converts it to the backbone ghost:ghost" in line
    assert "not available (UnknownComponentError)" in line


def test_plugin_factory_functions_convert_and_their_failures_are_reported(
        fake_dist: Callable[..., Path], fresh_registry: Callable[..., Registry]) -> None:
    rules = ('ConversionRules(factories=(FactoryRule(("AcmeFactory",), '
             'convert="acme_plugin_impl:convert"), FactoryRule(("BoomFactory",), '
             'convert="acme_plugin_impl:boom")))')
    fake_dist("acme-plugin", {"acme": "acme_plugin"}, _plugin("acme_plugin", "acme", rules))
    registry = fresh_registry()
    converted = convert_config(model({"whatever": 1}, factory="AcmeFactory"), registry=registry)
    init = converted.config["model"]["init_args"]
    assert init["model_factory"] == "geofm:encoder_decoder"
    assert init["model_args"]["decoder"] == "acme:twin"
    assert "model.init_args.model_args.model: converted by a plugin function" in converted.notes
    failed = convert_config(model({"whatever": 1}, factory="BoomFactory"), registry=registry)
    init = failed.config["model"]["init_args"]
    assert init["model_factory"] == "BoomFactory" and init["model_args"] == {"whatever": 1}
    assert any("acme_plugin_impl:boom) failed: ValueError: no luck" in u for u in failed.unmapped)


# ------------------------------------------------------------------------- boundaries


def test_loading_the_rules_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "from geofm_core.convert.terratorch import rule_book\n"
        "book = rule_book()\n"
        "assert book.component('decoder', 'UperNetDecoder').claim is not None\n"
        "assert book.component('backbone', 'prithvi_vit_100').claim is not None\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr


def _plugin_words(path: Path) -> list[str]:
    """Names and non-docstring strings of ``path`` that mention a plugin."""
    tree = ast.parse(path.read_text(), str(path))
    docs = {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body and isinstance(node.body[0], ast.Expr)}
    found = []
    for node in ast.walk(tree):
        text = (node.value if isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in docs else node.id if isinstance(node, ast.Name)
                else node.attr if isinstance(node, ast.Attribute) else "")
        if any(word in text.lower() for word in ("prithvi", "upernet", "smp")):
            found.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}: {text!r}")
    return found


def test_the_core_converter_names_no_plugin() -> None:
    files = [*(ROOT / "src/geofm_core/convert").rglob("*.py"),
             ROOT / "src/geofm_core/cli/convert.py"]
    assert [hit for path in files for hit in _plugin_words(path)] == []
