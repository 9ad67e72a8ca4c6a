"""Print this machine's pip index settings as `podman build` arguments, one per line.

pip's settings (`pip config list`: files, then PIP_* variables) become --build-arg PIP_...=..., and
the local folders or files they name (find-links, file:// indexes, a CA bundle) are mounted read-only
at the same path, so that pip inside the build sees what pip outside it sees. Used by
.ci/container-check; the Containerfile itself names no machine's settings.
"""

import os
import subprocess
import sys

SETTINGS = ("index-url", "extra-index-url", "find-links", "trusted-host", "cert")


def pip_settings() -> dict[str, str]:
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    settings = {}
    # files first, then the environment (:env:), as pip ranks them
    for line in sorted(listed.splitlines(), key=lambda line: line.startswith(":env:")):
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if name in SETTINGS and key.split(".")[0] in ("global", "install", ":env:"):
            settings[name] = value.strip().strip("'\"")
    for name in SETTINGS:
        value = os.environ.get("PIP_" + name.upper().replace("-", "_"))
        if value:
            settings[name] = value
    return settings


def local_paths(value: str) -> list[str]:
    paths = []
    for token in value.split():
        path = token.removeprefix("file://").rstrip("/")
        # a file:// simple index links its files as ../../files/...: mount the index's parent
        if os.path.basename(path) == "simple":
            path = os.path.dirname(path)
        if path.startswith("/") and os.path.exists(path):
            paths.append(path)
    return paths


def main() -> None:
    mounts = []
    for name, value in pip_settings().items():
        print(f"--build-arg=PIP_{name.upper().replace('-', '_')}={value}")
        mounts += [path for path in local_paths(value) if path not in mounts]
    for path in mounts:
        print(f"--volume={path}:{path}:ro")


if __name__ == "__main__":
    main()
