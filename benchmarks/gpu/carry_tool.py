"""Helpers of prepare_carry.sh and device_check.sh for the wheels carried to the GPU machine.

    carry_tool.py check WHEEL_DIR        every wheel installs on CPython 3.12 / manylinux x86-64, one
                                         version per package, each pinned package of carry_wheels.txt
                                         present, and every dependency met by a carried wheel or by the
                                         image (image_packages.txt); exits 1 naming what is missing
    carry_tool.py pack WHEEL_DIR OUT.tar the wheels rewritten uncompressed (ZIP_STORED: xz then packs
                                         them a third smaller than their own deflate) into one tar, with
                                         comfy-kitchen's compiled CUDA/HIP backends left out (RECORD
                                         updated); prepare_carry.sh compresses the tar

Only the standard library and `packaging` (in the project venv and in the image)."""

from __future__ import annotations

import csv
import io
import os
import sys
import tarfile
import zipfile

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.tags import Tag
from packaging.utils import canonicalize_name, parse_wheel_filename

HERE = os.path.dirname(os.path.abspath(__file__))
# Files of a wheel left out of the carry: comfy-kitchen's compiled backends (see carry_wheels.txt).
DROPPED = {"comfy-kitchen": ("comfy_kitchen/backends/cuda/_C.abi3.so", "comfy_kitchen/backends/hip/_C.abi3.so")}
# The GPU machine: CPython 3.12 on glibc 2.39 (Ubuntu 24.04's Python 3.12.3), x86-64.
TARGET_GLIBC = (2, 39)


def _names(path: str) -> list[str]:
    out = []
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def pinned() -> dict[str, str]:
    return {canonicalize_name(n.split("==")[0]): n.split("==")[1] for n in _names(os.path.join(HERE, "carry_wheels.txt"))}


def image_packages() -> set[str]:
    return {canonicalize_name(n) for n in _names(os.path.join(HERE, "image_packages.txt"))}


def _supported(tag: Tag) -> bool:
    if tag.interpreter not in ("py3", "cp312") and not (tag.interpreter.startswith("cp3") and tag.abi == "abi3"
                                                       and int(tag.interpreter[3:]) <= 12):
        return False
    if tag.abi not in ("none", "abi3", "cp312"):
        return False
    if tag.platform == "any":
        return True
    if tag.platform in ("manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64"):
        return True
    if tag.platform.startswith("manylinux_") and tag.platform.endswith("_x86_64"):
        major, minor = (int(x) for x in tag.platform[len("manylinux_"):-len("_x86_64")].split("_"))
        return (major, minor) <= TARGET_GLIBC
    return False


def _metadata(zf: zipfile.ZipFile) -> str:
    name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
    return zf.read(name).decode("utf-8")


def check(wheel_dir: str) -> int:
    env = default_environment()
    env.update(python_version="3.12", python_full_version="3.12.3", implementation_name="cpython",
               platform_python_implementation="CPython", sys_platform="linux", platform_system="Linux",
               platform_machine="x86_64", os_name="posix", extra="")
    wheels = sorted(f for f in os.listdir(wheel_dir) if f.endswith(".whl"))
    carried: dict[str, str] = {}
    problems = []
    requirements = []
    for wheel in wheels:
        name, version, _, tags = parse_wheel_filename(wheel)
        if name in carried:
            problems.append(f"two versions of {name}: {carried[name]} and {version} (pip would stop)")
        carried[name] = str(version)
        if not any(_supported(t) for t in tags):
            problems.append(f"{wheel}: no tag installs on CPython 3.12 / manylinux x86-64 (glibc "
                            f"{TARGET_GLIBC[0]}.{TARGET_GLIBC[1]})")
        with zipfile.ZipFile(os.path.join(wheel_dir, wheel)) as zf:
            for line in _metadata(zf).splitlines():
                if line.startswith("Requires-Dist:"):
                    requirements.append((name, Requirement(line.split(":", 1)[1].strip())))
    for name, version in pinned().items():
        if carried.get(name) != version:
            problems.append(f"carry_wheels.txt pins {name}=={version}; the carry has {carried.get(name, 'none')}")
    image = image_packages()
    for owner, req in requirements:
        if req.marker is not None and not req.marker.evaluate(env):
            continue  # an extra, or another platform / Python
        dep = canonicalize_name(req.name)
        if dep in carried:
            if not req.specifier.contains(carried[dep], prereleases=True):
                problems.append(f"{owner} needs {req}, the carry has {dep} {carried[dep]}")
        elif dep not in image:
            problems.append(f"{owner} needs {req}: neither carried nor in the image (image_packages.txt)")
    for p in problems:
        print(f"carry_tool: {p}", file=sys.stderr)
    print(f"carry_tool: {len(wheels)} wheels checked, {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


def _stored_copy(path: str) -> tuple[bytes, list[str]]:
    """The wheel as an uncompressed zip, its DROPPED files left out and removed from RECORD."""
    name = canonicalize_name(parse_wheel_filename(os.path.basename(path))[0])
    drop = set(DROPPED.get(name, ()))
    out = io.BytesIO()
    dropped = []
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            if info.filename in drop:
                dropped.append(info.filename)
                continue
            data = src.read(info)
            if drop and info.filename.endswith(".dist-info/RECORD"):
                rows = [r for r in csv.reader(io.StringIO(data.decode())) if r and r[0] not in drop]
                text = io.StringIO()
                csv.writer(text, lineterminator="\n").writerows(rows)
                data = text.getvalue().encode()
            info.compress_type = zipfile.ZIP_STORED
            dst.writestr(info, data)
    if drop and set(dropped) != drop:
        raise SystemExit(f"carry_tool: {path} lacks {sorted(drop - set(dropped))}: update DROPPED")
    return out.getvalue(), dropped


def pack(wheel_dir: str, out_tar: str) -> int:
    with tarfile.open(out_tar, "w") as tar:
        for wheel in sorted(f for f in os.listdir(wheel_dir) if f.endswith(".whl")):
            data, dropped = _stored_copy(os.path.join(wheel_dir, wheel))
            info = tarfile.TarInfo(f"wheels/{wheel}")
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
            if dropped:
                print(f"carry_tool: {wheel}: left out {', '.join(dropped)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "check":
        sys.exit(check(sys.argv[2]))
    if len(sys.argv) == 4 and sys.argv[1] == "pack":
        sys.exit(pack(sys.argv[2], sys.argv[3]))
    raise SystemExit(__doc__)
