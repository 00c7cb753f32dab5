"""The GPU image's package list (benchmarks/gpu_image.txt) for .ci/gpu-rehearsal, which runs it with the rehearsal's
own Python.

``constraints IMAGE LOCK``: pip constraints, the image's pinned versions first, then the lock's for every package the
image names without a version. ``check IMAGE``: fail, naming them, if distributions outside the list are installed.
"""

import re
import sys
from importlib.metadata import distributions


def key(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(line: str) -> str:
    return key(re.split(r"[=<>\[ ;]", line, maxsplit=1)[0])


def image_lines(path: str) -> list[str]:
    """The list's entries, ``name`` or ``name==version``, comments dropped."""
    lines = (line.split("#")[0].strip() for line in open(path, encoding="utf-8"))
    return [line for line in lines if line]


def main(command: str, image_path: str, lock_path: str | None = None) -> None:
    image = image_lines(image_path)
    if command == "constraints":
        pinned = [line for line in image if "==" in line]
        names = {requirement_name(line) for line in pinned}
        lock = [line.strip() for line in open(lock_path, encoding="utf-8") if "==" in line and not line.startswith("#")]
        print("\n".join(pinned + [line for line in lock if requirement_name(line) not in names]))
        return
    allowed = {requirement_name(line) for line in image} | {"pip"}
    extra = sorted({key(d.metadata["Name"]) for d in distributions()} - allowed)
    if extra:
        sys.exit(f"gpu-rehearsal: installed beyond the GPU image: {extra}")


if __name__ == "__main__":
    main(*sys.argv[1:])
