"""CLV models benchmark: cvm against lifetimes, pymc-marketing and clvkit, side by side.

Usage::

    bash bench/peers/setup.sh                      # once: one venv per peer (also run here)
    python bench/run_models.py --sizes 10000 100000 1000000

For every size, seeded synthetic customers (``bench/peers/simulate.py``: BG/NBD
purchases on a daily grid, Gamma-Gamma spend) are cached under ``bench/.data/models/``.
Then for every model (BG/NBD, Pareto/NBD, Gamma-Gamma) and library, one step in its
own fresh process, inside that library's virtualenv (``bench/.data/venvs/<peer>``;
cvm runs in this interpreter), fits the model with the library's defaults and times:

* the fit;
* the predictions: expected purchases over 90 days and P(alive) (Gamma-Gamma:
  expected spend per purchase);
* in the BG/NBD step, after fitting a Gamma-Gamma model too, 12-month CLV at 1 % a
  month (reported as the ``CLV`` rows; its peak memory is the BG/NBD step's).

The harness (``bench/harness.py``) records each step's peak RSS. Finally one step per
model evaluates every library's estimates with cvm's own log-likelihood
(``bench/peers/ll_eval.py``), so the maxima reached are comparable. A step that runs
past ``--timeout`` is killed and recorded as ``timeout``.

Results: every row is appended to ``bench/results/models.jsonl``;
``bench/results/models.md`` is regenerated from it (the latest row per customers ×
model × library, with the runs they come from) and printed.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PEERS_DIR = BENCH_DIR / "peers"
DATA_DIR = BENCH_DIR / ".data"
RESULTS_DIR = BENCH_DIR / "results"
sys.path.insert(0, str(BENCH_DIR))

from harness import StepResult, append_jsonl, machine_info, run_step  # noqa: E402

LIBRARIES = ("cvm", "lifetimes", "pymc-marketing", "clvkit")
MODELS = ("bgnbd", "gamma_gamma", "pareto_nbd")  # the slowest last
LABELS = {
    "bgnbd": "BG/NBD",
    "pareto_nbd": "Pareto/NBD",
    "gamma_gamma": "Gamma-Gamma",
    "clv": "CLV 12 months",
}
RUNNERS = {
    "cvm": "run_cvm.py",
    "lifetimes": "run_lifetimes.py",
    "pymc-marketing": "run_pymc_marketing.py",
    "clvkit": "run_clvkit.py",
}
#: Imported before the clock starts (import time is not charged to a step).
PREIMPORT: dict[str, tuple[str, ...]] = {
    "cvm": ("numpy", "scipy.optimize", "scipy.special", "pandas", "pyarrow.parquet", "cvm.models"),
    "lifetimes": ("numpy", "pandas", "scipy", "autograd", "lifetimes", "pyarrow.parquet"),
    "pymc-marketing": (
        *("numpy", "pandas", "pymc", "pytensor", "pymc_marketing.clv", "pyarrow.parquet"),
    ),
    "clvkit": ("numpy", "pandas", "scipy", "clvkit", "pyarrow.parquet"),
}
#: Models a library does not have.
UNSUPPORTED = {("clvkit", "pareto_nbd"): "clvkit has no Pareto/NBD model"}
#: (model row, measure, peer, minimum speed-up of cvm) checked at the largest size.
TARGETS = (
    ("bgnbd", "fit", "lifetimes", 50.0),
    ("bgnbd", "fit", "pymc-marketing", 20.0),
    ("pareto_nbd", "fit", "lifetimes", 50.0),
    ("gamma_gamma", "fit", "lifetimes", 20.0),
    ("clv", "predict", "lifetimes", 10.0),
)
SKIPPED = "skipped (--skip)"
#: cvm must reach the same or a higher log-likelihood, up to this relative tolerance.
LL_RTOL = 1e-6


# -- running steps --------------------------------------------------------------------
@contextmanager
def _interpreter(python: str) -> Iterator[None]:
    """Make ``harness.run_step`` start its child with ``python``.

    ``run_step`` launches ``sys.executable``; the harness child entry point uses the
    standard library only, so it runs in every peer's venv unchanged.
    """
    saved = sys.executable
    sys.executable = python
    try:
        yield
    finally:
        sys.executable = saved


def _python(library: str, venvs: Path) -> str:
    return sys.executable if library == "cvm" else str(venvs / library / "bin" / "python")


def _run(
    library: str,
    step: str,
    module: Path,
    func: str,
    kwargs: Mapping[str, Any],
    *,
    venvs: Path,
    timeout: float | None,
    log_dir: Path,
) -> StepResult:
    """Run one step in ``library``'s interpreter; a killed step becomes ``timeout``."""
    # Peers must not see cvm: no inherited PYTHONPATH, no user site.
    env = {} if library == "cvm" else {"PYTHONPATH": "", "PYTHONNOUSERSITE": "1"}
    with _interpreter(_python(library, venvs)):
        result = run_step(
            step,
            module,
            func,
            kwargs,
            preimport=PREIMPORT[library],
            env=env,
            timeout=timeout,
            log_dir=log_dir,
        )
    if result.error and result.error.startswith("timed out"):
        result.status = "timeout"
    return result


def _fastest(runs: list[StepResult]) -> StepResult:
    """Combine repeated runs of a step: each timing its minimum, memory its maximum."""
    ok = [r for r in runs if r.status == "ok" and r.details.get("times")]
    if len(runs) == 1 or not ok:
        return runs[-1]
    best = ok[0]
    every = [dict(r.details["times"]) for r in ok]
    keys = {key for times in every for key in times}
    best.details["times"] = {k: min(t[k] for t in every if k in t) for k in sorted(keys)}
    best.details["repeat_times"] = every
    best.peak_rss_mib = max(r.peak_rss_mib or 0.0 for r in ok)
    best.load_1m = max(r.load_1m or 0.0 for r in ok)
    return best


def _say(result: StepResult) -> None:
    wall = "" if result.wall_s is None else f" wall={result.wall_s:.2f}s"
    peak = "" if result.peak_rss_mib is None else f" peak={result.peak_rss_mib:.0f}MiB"
    error = (result.error or "").strip().splitlines()
    print(
        f"  {result.step:<34} {result.status:<13}{wall}{peak} {error[-1][:160] if error else ''}",
        flush=True,
    )


def _cvm_missing(model: str) -> str | None:
    """Why cvm cannot run ``model`` (checked in a throwaway process), or ``None``."""
    probe = f"import run_cvm; run_cvm.model_class({model!r})"
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=PEERS_DIR,
        check=False,
        timeout=300,
    )
    if proc.returncode == 0:
        return None
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return lines[-1] if lines else f"probe exited with {proc.returncode}"


def _peer_versions(venvs: Path, libraries: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for library in libraries:
        path = venvs / library / "versions.json"
        if library != "cvm" and path.exists():
            out[library] = json.loads(path.read_text())
    return out


def _setup(venvs: Path, libraries: Sequence[str]) -> None:
    """Create the missing peer venvs with ``bench/peers/setup.sh``."""
    missing = [
        lib for lib in libraries if lib != "cvm" and not (venvs / lib / "versions.json").exists()
    ]
    if not missing:
        return
    print(f"[bench] creating venvs for {', '.join(missing)} (bench/peers/setup.sh)", flush=True)
    proc = subprocess.run(
        ["bash", str(PEERS_DIR / "setup.sh")],
        env={**os.environ, "VENVS": str(venvs)},
        check=False,
    )
    if proc.returncode != 0:
        print("[bench] setup.sh failed for some peers; they are reported as not available")


# -- rows -----------------------------------------------------------------------------
def _row(
    size: int, model: str, library: str, result: StepResult, run_id: str, timeout: float | None
) -> dict[str, Any]:
    """One result row (``model`` may be ``clv``, taken from the BG/NBD step)."""
    details = result.details
    times: dict[str, float] = details.get("times", {})
    predict = sum(v for k, v in times.items() if k.startswith("predict:")) if times else None
    row: dict[str, Any] = {
        "kind": "row",
        "run_id": run_id,
        "customers": size,
        "model": model,
        "library": library,
        "version": details.get("version"),
        "status": result.status,
        "fit_s": times.get("fit"),
        "predict_s": predict,
        "times": times,
        "repeat_times": details.get("repeat_times"),
        "peak_mib": result.peak_rss_mib,
        "start_mib": result.start_rss_mib,
        "step_wall_s": result.wall_s,
        "load_1m": result.load_1m,
        "params": details.get("params"),
        "checks": details.get("checks"),
        "error": result.error,
        "timeout_s": timeout,
        "library_ll": details.get("library_ll"),
        "ll": None,
    }
    if model == "clv":
        row["fit_s"] = None
        row["predict_s"] = times.get("clv")
        row["params"] = {"purchases": details.get("params"), "spend": details.get("spend_params")}
        clv = (details.get("checks") or {}).get("clv")
        row["checks"] = {"clv": clv} if clv else None
        if result.status == "ok" and row["predict_s"] is None:
            row["status"] = "error"
            row["error"] = "no CLV timing in the BG/NBD step"
    return row


def _ll_step(
    size: int,
    model: str,
    rows: list[dict[str, Any]],
    data: Path,
    *,
    venvs: Path,
    timeout: float | None,
    log_dir: Path,
) -> None:
    """Score every library's estimates with cvm's likelihood; fill ``ll`` in place."""
    candidates = {r["library"]: r["params"] for r in rows if r["status"] == "ok" and r["params"]}
    if "cvm" not in candidates:
        return
    result = _run(
        "cvm",
        f"ll_{model}_{size}",
        PEERS_DIR / "ll_eval.py",
        "evaluate",
        {"model": model, "data": str(data), "candidates": candidates},
        venvs=venvs,
        timeout=timeout,
        log_dir=log_dir,
    )
    _say(result)
    lls = result.details.get("ll", {})
    errors = result.details.get("errors", {})
    for row in rows:
        row["ll"] = lls.get(row["library"])
        if row["library"] in errors:
            row["ll_error"] = errors[row["library"]]
    cvm_row = next(r for r in rows if r["library"] == "cvm")
    cvm_ll = cvm_row["ll"]
    reported = cvm_row.get("library_ll")
    for row in rows:
        if row["ll"] is not None and cvm_ll is not None:
            row["ll_rel_vs_cvm"] = (row["ll"] - cvm_ll) / abs(cvm_ll)
    if reported is not None and cvm_ll is not None:
        cvm_row["ll_check"] = abs(reported - cvm_ll) / abs(cvm_ll)


def _ratios(rows: list[dict[str, Any]]) -> None:
    """Compare each row with the cvm row of its customers × model, in place.

    Adds ``fit_x`` / ``predict_x`` (library time ÷ cvm time; > 1: cvm is faster; a
    lower bound for a timed-out fit) and ``ll_rel_vs_cvm``. Applied to the rows shown,
    so a peer row kept from an earlier run is compared with the latest cvm row (on
    the same seeded data; the run of each row is shown).
    """
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["customers"], row["model"]), []).append(row)
    for group in groups.values():
        cvm = next((r for r in group if r["library"] == "cvm" and r["status"] == "ok"), None)
        cvm_ll = cvm.get("ll") if cvm else None
        for row in group:
            if row.get("ll") is not None and cvm_ll is not None:
                row["ll_rel_vs_cvm"] = (row["ll"] - cvm_ll) / abs(cvm_ll)
            else:
                row["ll_rel_vs_cvm"] = None
            for measure in ("fit", "predict"):
                key = f"{measure}_x"
                row[key] = None
                row[key + "_bound"] = False
                base = cvm.get(f"{measure}_s") if cvm else None
                if not base:
                    continue
                if row["status"] == "ok" and row.get(f"{measure}_s") is not None:
                    row[key] = row[f"{measure}_s"] / base
                elif row["status"] == "timeout" and measure == "fit" and row["timeout_s"]:
                    row[key] = row["timeout_s"] / base  # a lower bound
                    row[key + "_bound"] = True


# -- report ---------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:,.{digits}f}"
    return str(value)


def _times(row: dict[str, Any], measure: str) -> str:
    value = row.get(f"{measure}_x")
    if value is None:
        return "-"
    if row["library"] == "cvm":
        return "1"
    return (">" if row.get(f"{measure}_x_bound") else "") + f"{value:,.1f}×"


def _version(row: dict[str, Any], peers: dict[str, dict[str, Any]]) -> str:
    """Return the library version from the row, else from the run's venv record."""
    found = row.get("version") or peers.get(row["run_id"], {}).get(row["library"], {})
    return str(found.get(row["library"], "")) if isinstance(found, dict) else str(found)


def _latest(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the latest row per customers × model × library, in a stable order."""
    latest: dict[tuple[int, str, str], dict[str, Any]] = {}
    for record in records:
        if record.get("kind") == "row":
            latest[(record["customers"], record["model"], record["library"])] = record
    order = {m: i for i, m in enumerate(("bgnbd", "pareto_nbd", "gamma_gamma", "clv"))}
    libs = {lib: i for i, lib in enumerate(LIBRARIES)}
    return sorted(
        latest.values(),
        key=lambda r: (r["customers"], order.get(r["model"], 9), libs.get(r["library"], 9)),
    )


def _target_lines(rows: list[dict[str, Any]]) -> list[str]:
    sizes = sorted({r["customers"] for r in rows})
    if not sizes:
        return []
    largest = sizes[-1]
    lines = [
        f"Targets at {largest:,} customers (speed-up = peer time ÷ cvm time):",
        "",
        "| target | needed | measured | met |",
        "|---|---|---|---|",
    ]
    for model, measure, peer, needed in TARGETS:
        row = next(
            (
                r
                for r in rows
                if r["customers"] == largest and r["model"] == model and r["library"] == peer
            ),
            None,
        )
        name = f"{LABELS[model]} {'scoring' if measure == 'predict' else 'fit'} vs {peer}"
        if row is None or row.get(f"{measure}_x") is None:
            status = row["status"] if row else "not run"
            lines.append(f"| {name} | ≥ {needed:g}× | - ({status}) | ? |")
            continue
        value = row[f"{measure}_x"]
        bound = row.get(f"{measure}_x_bound")
        if value >= needed:
            met = "yes"
        else:
            met = f"undecided ({peer} timed out)" if bound else "no"
        lines.append(f"| {name} | ≥ {needed:g}× | {'>' if bound else ''}{value:,.1f}× | {met} |")
    ll_bad = [
        f"{r['customers']:,} {LABELS[r['model']]} {r['library']}"
        for r in rows
        if r.get("ll_rel_vs_cvm") is not None and r["ll_rel_vs_cvm"] > LL_RTOL
    ]
    ll_ok = sum(1 for r in rows if r.get("ll_rel_vs_cvm") is not None and r["library"] != "cvm")
    lines += [
        "",
        f"Log-likelihood (cvm's, for every library's estimates): cvm the same or higher "
        f"(relative tolerance {LL_RTOL:g}) in {ll_ok - len(ll_bad)} of {ll_ok} comparisons"
        + (f"; lower than: {', '.join(ll_bad)}" if ll_bad else "."),
    ]
    return lines


def render(records: list[dict[str, Any]]) -> str:
    """Render ``models.md`` from all records of ``models.jsonl``.

    Parameters
    ----------
    records
        Run and row records, oldest first.

    Returns
    -------
    str
        The markdown document.
    """
    rows = _latest(records)
    _ratios(rows)
    used = {r["run_id"] for r in rows}
    last_run = {r["run_id"]: r for r in records if r.get("kind") == "run"}
    runs = [r for run_id, r in last_run.items() if run_id in used]
    lines = [
        "# CLV models: cvm vs lifetimes, pymc-marketing and clvkit",
        "",
        "Generated by `bench/run_models.py` from `models.jsonl` (latest row per customers × "
        "model × library). Seeded synthetic customers (BG/NBD process on a daily grid, "
        "Gamma-Gamma spend; `bench/peers/simulate.py`). Each step is a fresh process in the "
        "library's own venv; times are the library calls only (imports and data loading "
        "excluded); peak MiB is the step process's peak RSS. *predict* = expected purchases "
        "over 90 days + P(alive) (Gamma-Gamma: expected spend); *CLV* = 12 months at 1 % a "
        "month, timed in the BG/NBD step (whose peak it shares). LL = the log-likelihood of "
        "the library's estimates under **cvm's** likelihood; ΔLL = (LL − LL_cvm)/|LL_cvm|. "
        "×cvm = library time ÷ cvm time. pymc-marketing fits are MAP under its default priors. "
        "cvm's fit time includes its standard errors (which cvm otherwise computes on first "
        "use), as lifetimes computes its Hessian inside `fit`.",
        "",
        "Runs:",
        "",
    ]
    label = {run["run_id"]: f"R{i}" for i, run in enumerate(runs, start=1)}
    for run in runs:
        m = run["machine"]
        versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
        peers = "; ".join(
            f"{lib} {info.get(lib)} ("
            + ", ".join(f"{k} {v}" for k, v in info.items() if k != lib)
            + ")"
            for lib, info in run.get("peers", {}).items()
        )
        loads = run.get("load_1m_max")
        lines.append(
            f"- {label[run['run_id']]} `{run['run_id']}`: {m['cpu_model']}, "
            f"{m['cpu_count']} cpus, {m['ram_gib']} GiB; "
            f"load 1m {m['load_1m']} at start, max {loads} during the run (> 2 means contended "
            f"timings); Python {m['python']}; {versions}; git {m['git_commit']}; "
            f"timeout {run['config']['timeout']} s; peers: {peers}"
        )
    venv_versions = {run_id: run.get("peers", {}) for run_id, run in last_run.items()}
    lines += [
        "",
        "| customers | model | library | status | fit s | predict s | peak MiB "
        "| LL (cvm's) | ΔLL vs cvm | fit ×cvm | predict ×cvm | run |",
        "|" + "---|" * 12,
    ]
    for r in rows:
        status = r["status"]
        if status == "timeout":
            status = f"timeout {r['timeout_s']:g} s"
        elif status != "ok" and r.get("error"):
            status += ": " + r["error"].strip().splitlines()[-1][:80].replace("|", "\\|")
        rel = r.get("ll_rel_vs_cvm")
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{r['customers']:,}",
                    LABELS.get(r["model"], r["model"]),
                    f"{r['library']} {_version(r, venv_versions)}".strip(),
                    status,
                    _fmt(r.get("fit_s"), 3),
                    _fmt(r.get("predict_s"), 3),
                    _fmt(r.get("peak_mib"), 0),
                    _fmt(r.get("ll"), 3),
                    "-" if rel is None else f"{rel:+.2e}",
                    _times(r, "fit"),
                    _times(r, "predict"),
                    label.get(r["run_id"], "?"),
                ]
            )
            + " |"
        )
    lines += ["", *_target_lines(rows)]
    return "\n".join(lines) + "\n"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- main -----------------------------------------------------------------------------
def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="CLV models: cvm vs its peers")
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--libraries", nargs="+", choices=LIBRARIES, default=list(LIBRARIES))
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per step")
    p.add_argument(
        "--repeat", type=int, default=1, help="runs per step; each timing is the fastest"
    )
    p.add_argument(
        "--skip",
        nargs="*",
        default=[],
        metavar="MODEL:LIBRARY:SIZE",
        help="glob patterns of steps not to run, e.g. 'pareto_nbd:pymc-marketing:1000000'",
    )
    p.add_argument("--no-setup", action="store_true", help="do not create missing venvs")
    p.add_argument("--render-only", action="store_true", help="rewrite models.md and exit")
    p.add_argument("--venvs", type=Path, default=DATA_DIR / "venvs")
    p.add_argument("--data-dir", type=Path, default=DATA_DIR / "models")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, append to ``models.jsonl`` and rewrite ``models.md``.

    Parameters
    ----------
    argv
        Command-line arguments (defaults to ``sys.argv[1:]``).

    Returns
    -------
    int
        0 if every cvm step succeeded, 1 otherwise.
    """
    args = _parse_args(argv)
    jsonl = args.results_dir / "models.jsonl"
    markdown = args.results_dir / "models.md"
    if args.render_only:
        markdown.write_text(render(_read_jsonl(jsonl)))
        print(markdown.read_text())
        return 0
    if not args.no_setup:
        _setup(args.venvs, args.libraries)
    machine = machine_info(packages=("cvm", "numpy", "scipy", "pandas", "pyarrow"), repo=REPO_DIR)
    run_id = machine["date"].replace(":", "").replace("-", "") + f"_s{args.seed}"
    logs = args.data_dir / "logs" / run_id
    common: dict[str, Any] = {"venvs": args.venvs, "timeout": args.timeout, "log_dir": logs}
    libraries = [
        lib
        for lib in args.libraries
        if lib == "cvm" or (args.venvs / lib / "bin" / "python").exists()
    ]
    missing_venv = sorted(set(args.libraries) - set(libraries))
    print(f"[bench] models {run_id}  logs: {logs}", flush=True)
    loads: list[float] = []
    failed = False
    run_record: dict[str, Any] = {
        "kind": "run",
        "run_id": run_id,
        "machine": machine,
        "peers": _peer_versions(args.venvs, args.libraries),
        "load_1m_max": None,
        "config": {
            "sizes": args.sizes,
            "seed": args.seed,
            "models": args.models,
            "libraries": args.libraries,
            "timeout": args.timeout,
            "skip": args.skip,
            "repeat": args.repeat,
        },
    }
    append_jsonl(jsonl, [run_record])  # rows follow as each model × size completes

    def data_for(size: int) -> Path | None:
        path: Path = args.data_dir / f"summary_n{size}_s{args.seed}.parquet"
        if path.exists() and path.with_suffix(".json").exists():
            return path
        result = _run(
            "cvm",
            f"simulate_{size}",
            PEERS_DIR / "simulate.py",
            "simulate",
            {"out": str(path), "customers": size, "seed": args.seed},
            **common,
        )
        _say(result)
        return path if result.status == "ok" else None

    if "pymc-marketing" in libraries:
        # PyTensor compiles (and caches on disk) each graph the first time: pay it here.
        warm = data_for(2_000)
        for model in args.models:
            if warm is not None:
                _say(
                    _run(
                        "pymc-marketing",
                        f"warm-up_{model}",
                        PEERS_DIR / RUNNERS["pymc-marketing"],
                        "run",
                        {"model": model, "data": str(warm)},
                        **common,
                    )
                )

    cvm_missing = {model: _cvm_missing(model) for model in args.models}
    for size in args.sizes:
        data = data_for(size)
        if data is None:
            print(f"[bench] no data for {size} customers; skipped", flush=True)
            failed = True
            continue
        for model in args.models:
            group: list[dict[str, Any]] = []
            clv_group: list[dict[str, Any]] = []
            for library in args.libraries:
                step = f"{model}_{library}_{size}"
                reason = UNSUPPORTED.get((library, model))
                if library in missing_venv:
                    reason = f"no venv at {args.venvs / library} (see bench/peers/setup.sh)"
                elif library == "cvm" and cvm_missing[model]:
                    reason = cvm_missing[model]
                elif any(fnmatch.fnmatch(f"{model}:{library}:{size}", p) for p in args.skip):
                    reason = SKIPPED
                if reason is not None:
                    result = StepResult(step=step, status="not available", error=reason)
                else:
                    runs = [
                        _run(
                            library,
                            step,
                            PEERS_DIR / RUNNERS[library],
                            "run",
                            {"model": model, "data": str(data)},
                            **common,
                        )
                        for _ in range(max(1, args.repeat))
                    ]
                    result = _fastest(runs)
                    if result.load_1m is not None:
                        loads.append(result.load_1m)
                _say(result)
                failed |= library == "cvm" and result.status not in ("ok", "not available")
                group.append(_row(size, model, library, result, run_id, args.timeout))
                if model == "bgnbd":
                    clv_group.append(_row(size, "clv", library, result, run_id, args.timeout))
            _ll_step(size, model, group, data, **common)
            # Steps skipped on request leave no row: an earlier run's row stays current.
            kept = [r for r in (*group, *clv_group) if r.get("error") != SKIPPED]
            append_jsonl(jsonl, kept)
    run_record["load_1m_max"] = max(loads) if loads else None
    append_jsonl(jsonl, [run_record])  # the complete record; render() keeps the last
    markdown.write_text(render(_read_jsonl(jsonl)))
    print(markdown.read_text(), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
