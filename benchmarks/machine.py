"""The machine a benchmark ran on, named precisely enough to tell two CPUs apart."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU's model name with its family and model numbers: two CPUs both named "Intel(R)
    Xeon(R) Processor" can round differently, and a GAN's path follows its arithmetic."""
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines() if ":" in line)
    except OSError:
        return platform.processor() or platform.machine() or "cpu"
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    name = fields.get("model name") or platform.processor() or platform.machine() or "cpu"
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name
