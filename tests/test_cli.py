"""``mobileseg COMMAND``: one subcommand per command module, run as ``python -m`` runs it."""

import os
import subprocess
import sys
from pathlib import Path

from mobileseg.cli import COMMANDS, main
from mobileseg.shipped_files import shipped_names
from tests.test_import_layers import commands

REPO = Path(__file__).resolve().parents[1]


def test_there_is_one_subcommand_per_command_module():
    modules = {name.removesuffix(".__main__") for name in commands()} - {"mobileseg"}
    assert {module for module, _ in COMMANDS.values()} == modules
    assert all(module.rpartition(".")[2] == name for name, (module, _) in COMMANDS.items())


def test_help_lists_the_commands_and_the_shipped_names(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, (_, about) in COMMANDS.items():
        assert f"  {name} " in out and about in out
    for kind in ("space", "genotype", "profile"):
        assert all(name in out for name in shipped_names(kind))


def test_no_or_an_unknown_command_is_one_line_and_exit_2(capsys):
    assert main(["serch"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mobileseg: unknown command 'serch'; expected one of pipeline, search,")
    assert len(err.splitlines()) == 1
    assert main([]) == 2
    assert "no command given" in capsys.readouterr().err


def test_a_subcommand_gets_its_arguments_and_exits_with_its_code(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-m", "mobileseg", "data", "check", "--data", "synthetic:0"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "synthetic:0" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run([sys.executable, "-m", "mobileseg", "data", "verify"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "usage: python -m mobileseg.data {check} --data KIND:PATH" in result.stderr
