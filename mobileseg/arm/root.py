"""The arm64 root that LiteRT's aarch64 build runs in, under qemu-user, and the command that runs it.

``make arm_root`` (``.ci/arm_root.sh``) unpacks Debian bookworm's arm64 python3.11 into the root and
pip-installs the aarch64 wheels of ai-edge-litert and numpy (pinned as in requirements.txt) into
``ROOT/opt/mobileseg/site-packages``; its last step writes the marker file `MARKER`, so a root
without one is unfinished. The root is ``--arm_root``, else ``$MOBILESEG_ARM_ROOT``, else
``~/.cache/mobileseg/arm64-root``; never in the repository.

The emulated python runs as ``qemu-aarch64-static -L ROOT -cpu CPU ROOT/usr/bin/python3.11``
(no chroot, no binfmt_misc): qemu looks paths up in ROOT first, then on this machine, so the
emulated python imports this ``mobileseg`` (a checkout or an installed package, through a link in the
root: `ArmRoot.package_entry`) and reads and writes ordinary files.
The emulated CPU (`DEFAULT_CPU`, ``max,sme=off``) advertises the Armv8 dot-product
(``asimddp``), int8 matrix (``i8mm``) and SVE extensions that XNNPACK's int8 kernels of current
phones use, but not SME: with SME advertised (plain ``max``), XNNPACK in ai-edge-litert 2.3 takes
an SME path whose int8 outputs under qemu 7.2 differ from this CPU's by up to 156 int8 steps on a
tiny network that agrees exactly with SME off, on ``cortex-a76`` and on ``neoverse-n1`` (measured;
whether qemu 7.2's young SME emulation or that path is wrong needs a phone with SME to tell).
``cortex-a76`` and ``neoverse-n1`` give dot-product without i8mm or SVE. Older cores are not
offered: on ``cortex-a53`` (and ``a64fx``) the emulated run stopped with SIGILL, probably because
the root's ``/proc/cpuinfo`` (`.ci/arm_root.sh`) describes Cortex-A76 cores (not investigated).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from mobileseg.run.fingerprint import text_digest

ROOT_ENV = "MOBILESEG_ARM_ROOT"
DEFAULT_ROOT = "~/.cache/mobileseg/arm64-root"
MARKER = ".mobileseg-arm-root"
PYTHON = "usr/bin/python3.11"
SITE_PACKAGES = "/opt/mobileseg/site-packages"
PACKAGES = Path("/opt/mobileseg/packages")
QEMU = "qemu-aarch64-static"
DEFAULT_CPU = "max,sme=off"
QEMU_CPUS = (DEFAULT_CPU, "max", "cortex-a76", "neoverse-n1")
MAKE_HINT = "make it with `make arm_root` (.ci/arm_root.sh)"


class ArmRootError(RuntimeError):
    """No usable arm64 root or emulator; the message names what is missing and how to make it."""


def root_path(path: str | os.PathLike | None = None) -> Path:
    """The root's folder: ``path`` if given, else ``$MOBILESEG_ARM_ROOT``, else `DEFAULT_ROOT`.

    Example:
        >>> str(root_path("/srv/arm"))
        '/srv/arm'
    """
    return Path(os.path.expanduser(str(path or os.environ.get(ROOT_ENV) or DEFAULT_ROOT)))


@dataclasses.dataclass(frozen=True)
class ArmRoot:
    """A finished arm64 root and the qemu-user binary that runs it.

    Attributes:
        path: the root folder.
        qemu: the ``qemu-aarch64-static`` executable.
    """

    path: Path
    qemu: str

    def python_command(self, args: Sequence[str], cpu: str = DEFAULT_CPU) -> list[str]:
        """The command line running the root's python 3.11 with ``args`` on the emulated ``cpu``."""
        if cpu not in QEMU_CPUS:
            raise ValueError(f"unknown emulated CPU {cpu!r}; expected one of {', '.join(QEMU_CPUS)}")
        return [self.qemu, "-L", str(self.path), "-cpu", cpu, str(self.path / PYTHON), *args]

    def environment(self) -> dict[str, str]:
        """This process's environment for the emulated python: this ``mobileseg`` package (`package_entry`)
        and the root's aarch64 wheels on its path, nothing from this machine's Python set-up."""
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("PYTHON", "VIRTUAL_ENV", "QEMU_"))}
        env.update(PYTHONPATH=f"{self.package_entry()}{os.pathsep}{SITE_PACKAGES}", PYTHONNOUSERSITE="1",
                   PYTHONDONTWRITEBYTECODE="1")
        return env

    def package_entry(self) -> str:
        """The emulated python's path entry holding this ``mobileseg`` package and nothing else.

        A folder inside the root, named by the package's location, whose one entry is a link to the package:
        the folder that holds the package may hold other things too (a pip install's site-packages holds this
        machine's x86-64 numpy, which must not shadow the root's aarch64 one). As the emulated python sees it
        (qemu looks paths up in the root first), e.g. ``/opt/mobileseg/packages/3f0c.../``.
        """
        package = Path(__file__).resolve().parents[1]
        entry = PACKAGES / text_digest(str(package), "sha1", 16)
        link = self.path / entry.relative_to("/") / package.name
        if not link.is_symlink() or link.resolve() != package:
            link.parent.mkdir(parents=True, exist_ok=True)
            staged = link.with_name(f".{package.name}.{os.getpid()}")
            staged.unlink(missing_ok=True)
            staged.symlink_to(package, target_is_directory=True)
            os.replace(staged, link)  # atomic: a concurrent run sees the old link or the new one
        return str(entry)

    def qemu_version(self) -> str:
        """The first line of ``qemu-aarch64-static --version``, e.g. ``qemu-aarch64 version 7.2.22 (...)``."""
        done = subprocess.run([self.qemu, "--version"], capture_output=True, text=True, check=False)
        return (done.stdout.splitlines() or ["unknown"])[0].strip()


def find_root(path: str | os.PathLike | None = None) -> ArmRoot:
    """The finished arm64 root at `root_path` ``(path)`` and the emulator on ``PATH``.

    Raises:
        ArmRootError: no root there, an unfinished one (no `MARKER`), or no ``qemu-aarch64-static``.

    Example:
        >>> find_root("/no/such/root")
        Traceback (most recent call last):
        ...
        mobileseg.arm.root.ArmRootError: no arm64 root at /no/such/root: make it with `make arm_root` (.ci/arm_root.sh)
    """
    folder = root_path(path)
    if not folder.is_dir():
        raise ArmRootError(f"no arm64 root at {folder}: {MAKE_HINT}")
    if not (folder / MARKER).is_file() or not (folder / PYTHON).is_file():
        raise ArmRootError(f"{folder}: an unfinished arm64 root (no {MARKER} or {PYTHON}): {MAKE_HINT}")
    qemu = shutil.which(QEMU)
    if qemu is None:
        raise ArmRootError(f"no {QEMU} on PATH (Debian package qemu-user-static): {MAKE_HINT}")
    return ArmRoot(folder, qemu)
