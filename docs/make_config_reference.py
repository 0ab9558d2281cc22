"""Writes docs/config.md from the config models' own docstrings: `python docs/make_config_reference.py`."""

from pathlib import Path

from voxgan.config import describe_keys

HEADER = """# Training config reference

Every key of a `voxgan-train` config (YAML, or `key=value` on the command line). Defaults are the
tutorial's recipe (SEED-SPEC) on the embedded procedural shapes at 32^3; `--preset tutorial` sets
`data.resolution=64`, `--preset paper` adds batch 100, z ~ U(0, 1) and the 80% D-accuracy rule.
An unknown key or an invalid value is refused with a message that names the key.

Generated from `voxgan/config.py` by `python docs/make_config_reference.py`; a test keeps it current.

| key | default | meaning |
|---|---|---|
"""


def reference() -> str:
    rows = [f"| `{key}` | `{default}` | {text.replace('|', '/')} |" for key, default, text in describe_keys()]
    return HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    Path(__file__).with_name("config.md").write_text(reference())
