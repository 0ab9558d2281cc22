"""The machine a benchmark ran on, named precisely enough to tell two CPUs apart."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name with its family and model numbers: two CPUs both named "Intel(R)
    Xeon(R) Processor" can round differently, and a GAN's path follows its arithmetic."""
    fallback = platform.processor() or platform.machine() or "cpu"
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fallback
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in text.splitlines())}
    name = fields.get("model name") or fallback
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name
