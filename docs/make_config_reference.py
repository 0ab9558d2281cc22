"""Writes docs/config.md from the config models' own docstrings: `python docs/make_config_reference.py`."""

import re
from pathlib import Path

from pydantic import BaseModel

from voxgan.config import Config

HEADER = """# Training config reference

Every key of a `voxgan-train` config (YAML, or `key=value` on the command line). Defaults are the
tutorial's recipe (SEED-SPEC) on the embedded procedural shapes at 32^3; `--preset tutorial` sets
`data.resolution=64`, `--preset paper` adds batch 100, z ~ U(0, 1) and the 80% D-accuracy rule.
An unknown key or an invalid value is refused with a message that names the key.

Generated from `voxgan/config/schema.py` by `python docs/make_config_reference.py`; a test keeps it current.

| key | default | meaning |
|---|---|---|
"""


def describe_keys(values: BaseModel | None = None, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, default, description) for every config key, from the models' docstrings:
    the source of docs/config.md, so the reference cannot drift from the code."""
    values = values if values is not None else Config()
    rows: list[tuple[str, str, str]] = []
    for name, field in type(values).model_fields.items():
        value = getattr(values, name)
        if isinstance(value, BaseModel):
            rows.extend(describe_keys(value, f"{prefix}{name}."))
            continue
        kind = re.sub(r"<class '(\w+)'>", r"\1", str(field.annotation)).replace("typing.", "")
        description = " ".join((field.description or "").split())
        rows.append((f"{prefix}{name}", repr(value), f"{description} `{kind}`".strip()))
    return rows


def reference() -> str:
    rows = [f"| `{key}` | `{default}` | {text.replace('|', '/')} |" for key, default, text in describe_keys()]
    return HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    Path(__file__).with_name("config.md").write_text(reference())
