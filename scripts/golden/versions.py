"""The package versions a golden script ran with: every script in scripts/golden/ prints them
first, and the newer fixtures store them (`versions` key), so a fixture that stops matching can
be traced to a package upgrade."""
import importlib.metadata
import sys


def versions(*extra):
    """torch, transformers and the `extra` reference packages (None when not installed)."""
    out = {"python": sys.version.split()[0]}
    for name in ("torch", "transformers", *extra):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def print_versions(*extra):
    v = versions(*extra)
    print("versions:", ", ".join(f"{k} {x or 'not installed'}" for k, x in v.items()), flush=True)
    return v
