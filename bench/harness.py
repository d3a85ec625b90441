"""Run benchmark steps in fresh processes and record wall time and peak RSS.

Each measured step is a plain function ``func(**kwargs) -> dict`` living in
a Python file. :func:`run_step` starts a new interpreter that imports the
file, optionally pre-imports heavy modules (so import time is not charged
to the step), times the call with :func:`time.perf_counter` and reports
back through a JSON file. Peak memory is per step because every step owns
its process:

* ``peak_rss_mib`` -- the child's own ``VmHWM`` read from
  ``/proc/self/status`` just before it exits (exact for that process);
* ``ru_maxrss_mib`` -- ``ru_maxrss`` of that single child, collected with
  :func:`os.wait4` (not ``RUSAGE_CHILDREN``, which is a running maximum over
  *all* children). On Linux this is at least the parent's RSS at spawn
  time, so keep the orchestrating process small.

A step may name a ``setup`` function, run in the child before the clock
starts (it returns the keyword arguments of the step, live objects allowed),
and a ``teardown`` function, run after the clock stops (it turns the step's
return value into the reported details). For such a step the peak RSS and
CPU times cover the timed call only: the child resets ``VmHWM`` after the
setup (``/proc/self/clear_refs``) and reads its CPU times around the call;
the setup's own wall time and peak are reported in the details
(``setup_wall_s``, ``setup_peak_rss_mib``).

Results are plain dicts; :func:`append_jsonl` and :func:`markdown_table`
persist them, :func:`machine_info` describes the host.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = [
    "StepResult",
    "append_jsonl",
    "machine_info",
    "markdown_table",
    "run_step",
    "skipped",
]

_MIB = 1024.0 * 1024.0


@dataclass
class StepResult:
    """Outcome of one measured step.

    Attributes
    ----------
    step : str
        Step name.
    status : str
        ``"ok"``, ``"error"`` or ``"not available"``.
    wall_s : float or None
        Wall time of the function call only (inside the child).
    process_wall_s : float or None
        Wall time of the whole child process (interpreter start, imports).
    cpu_user_s, cpu_sys_s : float or None
        CPU time of the child (all threads); of the timed call only for a step
        with a ``setup``.
    peak_rss_mib : float or None
        Peak resident set size of the child (``VmHWM``, else ``ru_maxrss``);
        during the timed call only for a step with a ``setup`` (if the kernel
        allowed resetting the peak, see ``details["hwm_reset"]``).
    start_rss_mib : float or None
        RSS of the child just before the call (interpreter + pre-imports),
        so ``peak_rss_mib - start_rss_mib`` approximates the step's own use.
    ru_maxrss_mib : float or None
        ``ru_maxrss`` of the child as reported by ``wait4``.
    details : dict
        Whatever the step function returned (row counts, checksums...).
    error : str or None
        Error message / traceback tail when ``status != "ok"``.
    load_1m : float or None
        Host 1-minute load average when the step started (values above the
        CPU count mean the timings were contended).
    """

    step: str
    status: str
    wall_s: float | None = None
    process_wall_s: float | None = None
    cpu_user_s: float | None = None
    cpu_sys_s: float | None = None
    peak_rss_mib: float | None = None
    start_rss_mib: float | None = None
    ru_maxrss_mib: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    load_1m: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-serialisable dict.

        Returns
        -------
        dict
            Field name to value.
        """
        return asdict(self)


def skipped(step: str, reason: str) -> StepResult:
    """Build the result of a step that could not run.

    Parameters
    ----------
    step : str
        Step name.
    reason : str
        Why it was skipped (recorded in ``error``).

    Returns
    -------
    StepResult
        A result with status ``"not available"``.
    """
    return StepResult(step=step, status="not available", error=reason)


def run_step(
    step: str,
    module_path: str | Path,
    func: str,
    kwargs: Mapping[str, Any] | None = None,
    *,
    preimport: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    log_dir: str | Path | None = None,
    setup: str | None = None,
    teardown: str | None = None,
) -> StepResult:
    """Run ``func(**kwargs)`` from ``module_path`` in a fresh interpreter.

    Parameters
    ----------
    step : str
        Name recorded in the result.
    module_path : str or pathlib.Path
        Python file defining ``func``. Its directory is put on ``sys.path``
        of the child so sibling modules can be imported.
    func : str
        Name of a module-level function returning a JSON-serialisable dict
        (or ``None``).
    kwargs : mapping, optional
        JSON-serialisable keyword arguments.
    preimport : sequence of str, optional
        Modules imported before the clock starts (e.g. ``"duckdb"``).
    env : mapping, optional
        Extra environment variables for the child.
    timeout : float, optional
        Seconds before the child is killed (recorded as an error).
    log_dir : str or pathlib.Path, optional
        Where to keep the child's stdout/stderr (``<step>.log``); a
        temporary directory is used otherwise.
    setup : str, optional
        Function of the module called untimed as ``setup(**kwargs)``; it
        returns the keyword arguments of ``func`` (any Python objects).
    teardown : str, optional
        Function of the module called untimed as ``teardown(value, state)``
        with ``func``'s return value and its keyword arguments; it returns
        the details to report (a JSON-serialisable dict).

    Returns
    -------
    StepResult
        Timings, peak memory and the function's returned details.
    """
    spec = {
        "module_path": str(Path(module_path).resolve()),
        "func": func,
        "kwargs": dict(kwargs or {}),
        "preimport": list(preimport),
        "setup": setup,
        "teardown": teardown,
    }
    child_env = dict(os.environ)
    child_env.update(env or {})
    with tempfile.TemporaryDirectory(prefix="cvm-bench-") as tmp:
        spec_path = Path(tmp) / "spec.json"
        out_path = Path(tmp) / "out.json"
        spec["out"] = str(out_path)
        spec_path.write_text(json.dumps(spec))
        logs = Path(log_dir) if log_dir is not None else Path(tmp)
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{step}.log"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(spec_path)]
        load = _load_1m()
        with log_path.open("wb") as log:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env)
            status, usage, timed_out = _wait(proc, timeout)
            process_wall = time.perf_counter() - t0
        result = StepResult(
            step=step,
            status="ok",
            process_wall_s=round(process_wall, 4),
            cpu_user_s=round(usage.ru_utime, 3),
            cpu_sys_s=round(usage.ru_stime, 3),
            ru_maxrss_mib=round(usage.ru_maxrss * 1024 / _MIB, 1),
            load_1m=load,
        )
        payload: dict[str, Any] = {}
        if out_path.exists():
            payload = json.loads(out_path.read_text())
        code = os.waitstatus_to_exitcode(status)
        if timed_out:
            result.status, result.error = "error", f"timed out after {timeout}s"
        elif payload.get("status") == "error":
            result.status, result.error = "error", str(payload.get("error"))
        elif code != 0 or not payload:
            tail = _tail(log_path)
            result.status = "error"
            result.error = f"child exited with code {code}: {tail}"
        result.wall_s = payload.get("wall_s")
        result.details = payload.get("result") or {}
        if "call_cpu_user_s" in payload:  # a step with a setup: the call only
            result.cpu_user_s = payload["call_cpu_user_s"]
            result.cpu_sys_s = payload["call_cpu_sys_s"]
        for key in ("setup_wall_s", "setup_peak_rss_mib", "hwm_reset"):
            if key in payload:
                result.details[key] = payload[key]
        start_kib = payload.get("rss_start_kib")
        result.start_rss_mib = round(start_kib * 1024 / _MIB, 1) if start_kib else None
        hwm_kib = payload.get("vm_hwm_kib")
        result.peak_rss_mib = round(hwm_kib * 1024 / _MIB, 1) if hwm_kib else result.ru_maxrss_mib
    return result


def _wait(proc: subprocess.Popen[bytes], timeout: float | None) -> tuple[int, Any, bool]:
    """Reap ``proc`` with ``wait4`` so its own rusage is returned."""
    deadline = None if timeout is None else time.monotonic() + timeout
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG if deadline else 0)
        if pid == proc.pid:
            break
        if deadline is not None and time.monotonic() > deadline:
            proc.kill()
            timed_out = True
            deadline = None  # now block until it is gone
        else:
            time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return status, usage, timed_out


def _load_1m() -> float | None:
    """Host 1-minute load average, or ``None`` where unsupported."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def _tail(path: Path, lines: int = 15) -> str:
    """Return the last ``lines`` lines of a text file."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _proc_status_kib(key: str) -> int | None:
    """Read a KiB field (``VmRSS``, ``VmHWM``) from ``/proc/self/status``."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux ``clear_refs``); ``False`` if refused."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def _load_module(path: str) -> ModuleType:
    """Import a Python file as a module (its directory goes on ``sys.path``)."""
    file = Path(path)
    sys.path.insert(0, str(file.parent))
    name = f"_bench_{file.stem}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _child_main(spec_path: str) -> int:
    """Entry point of the child process: run one step, write JSON, exit."""
    spec = json.loads(Path(spec_path).read_text())
    out: dict[str, Any] = {"status": "ok"}
    try:
        for name in spec["preimport"]:
            importlib.import_module(name)
        module = _load_module(spec["module_path"])
        func = getattr(module, spec["func"])
        kwargs = spec["kwargs"]
        if spec.get("setup"):
            t0 = time.perf_counter()
            kwargs = getattr(module, spec["setup"])(**kwargs)
            out["setup_wall_s"] = round(time.perf_counter() - t0, 4)
            setup_peak = _proc_status_kib("VmHWM")
            out["setup_peak_rss_mib"] = round(setup_peak / 1024, 1) if setup_peak else None
            out["hwm_reset"] = _reset_peak_rss()
        out["rss_start_kib"] = _proc_status_kib("VmRSS")
        cpu0 = os.times()
        t0 = time.perf_counter()
        value = func(**kwargs)
        out["wall_s"] = round(time.perf_counter() - t0, 4)
        cpu1 = os.times()
        out["vm_hwm_kib"] = _proc_status_kib("VmHWM")
        if spec.get("setup"):
            out["call_cpu_user_s"] = round(cpu1.user - cpu0.user, 3)
            out["call_cpu_sys_s"] = round(cpu1.system - cpu0.system, 3)
        if spec.get("teardown"):
            value = getattr(module, spec["teardown"])(value, kwargs)
        out["result"] = value if value is not None else {}
    except BaseException as exc:  # report everything to the parent
        out["status"] = "error"
        out["error"] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    if "vm_hwm_kib" not in out:
        out["vm_hwm_kib"] = _proc_status_kib("VmHWM")
    Path(spec["out"]).write_text(json.dumps(out, default=str))
    return 0 if out["status"] == "ok" else 1


def _version(dist: str) -> str | None:
    """Installed version of a distribution, or ``None``."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_commit(repo: Path) -> str | None:
    """Short HEAD commit of ``repo`` (``+dirty`` if modified), or ``None``."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def machine_info(
    packages: Iterable[str] = ("cvm", "duckdb", "ibis-framework", "pyarrow", "numpy", "pandas"),
    repo: str | Path | None = None,
) -> dict[str, Any]:
    """Describe the host and software versions.

    Parameters
    ----------
    packages : iterable of str, optional
        Distributions whose versions are recorded (``None`` if missing).
    repo : str or pathlib.Path, optional
        Git checkout whose commit is recorded.

    Returns
    -------
    dict
        Date (UTC), hostname, OS, CPU model and count, RAM, Python and
        package versions, git commit.
    """
    cpu_model = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    ram_gib = None
    try:
        ram_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "cpu_model": cpu_model or platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "cpu_usable": len(affinity(0)) if affinity else os.cpu_count(),
        "ram_gib": ram_gib,
        "load_1m": _load_1m(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in packages},
        "git_commit": _git_commit(Path(repo)) if repo is not None else None,
    }


def append_jsonl(path: str | Path, records: Iterable[Mapping[str, Any]]) -> None:
    """Append records to a JSON-lines file (created if needed).

    Parameters
    ----------
    path : str or pathlib.Path
        Target ``.jsonl`` file.
    records : iterable of mapping
        One JSON object per line.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, default=str, sort_keys=True) + "\n")


def _fmt(value: Any, digits: int = 2) -> str:
    """Format a table cell."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def markdown_table(
    results: Sequence[StepResult], ratios: Mapping[str, str | None] | None = None
) -> str:
    """Render step results as a GitHub-flavoured markdown table.

    Parameters
    ----------
    results : sequence of StepResult
        Rows of the table, in order.
    ratios : mapping, optional
        Step name to a pre-formatted "vs baseline" cell.

    Returns
    -------
    str
        The markdown table (no trailing newline).
    """
    ratios = ratios or {}
    header = (
        "| step | status | wall s | process s | cpu user s | cpu sys s "
        "| peak RSS MiB | start RSS MiB | load 1m | vs baseline | notes |"
    )
    lines = [header, "|" + "---|" * 11]
    for r in results:
        note = r.error.splitlines()[-1][:120] if r.error else ""
        lines.append(
            "| "
            + " | ".join(
                [
                    r.step,
                    r.status,
                    _fmt(r.wall_s),
                    _fmt(r.process_wall_s),
                    _fmt(r.cpu_user_s),
                    _fmt(r.cpu_sys_s),
                    _fmt(r.peak_rss_mib, 0),
                    _fmt(r.start_rss_mib, 0),
                    _fmt(r.load_1m),
                    ratios.get(r.step) or "",
                    note.replace("|", "\\|"),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        raise SystemExit(_child_main(sys.argv[2]))
    raise SystemExit("usage: harness.py --child SPEC.json (internal)")
