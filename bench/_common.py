"""What every benchmark prints first: the command, the machine and the library versions."""
from __future__ import annotations

import os
import platform
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def machine() -> str:
    import sqlalchemy
    cpu = ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"nproc {os.cpu_count()} ({cpu or platform.processor() or '?'}), "
            f"Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, {platform.platform()}")


def header(title: str, argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    print(f"== {title}")
    print(f"command: python -m {_module()} {shlex.join(argv)}".rstrip())
    print(f"machine: {machine()}")
    print("load average at start: " + " ".join(f"{x:.2f}" for x in os.getloadavg())
          + " (other processes share the cores: figures are comparable only at similar load)")


def _module() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = spec.name if spec and spec.name else "bench"
    return name.removesuffix(".__main__")


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(q / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def load_rules(pack_name: str = "hangzhou"):
    from data_sources.packs import load_pack
    from data_sources.runtime import PackRuntime
    rt = PackRuntime(load_pack(pack_name))
    return rt.pack, rt.rules
