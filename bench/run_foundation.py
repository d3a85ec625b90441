"""Foundation benchmark: cvm ingest + BTYD features vs hand-written DuckDB.

Usage (this is what ``make bench`` calls)::

    python bench/run_foundation.py --rows 10000000 --customers 1000000

Steps, each in its own fresh process (wall time + peak RSS per step):

==================== =====================================================
``generate``         synthetic transactions -> Parquet (skipped if cached
                     under ``bench/.data/``)
``parquet_count``    ``SELECT count(*) FROM read_parquet(...)``
``ctas_scan``        ``CREATE TABLE t AS SELECT * FROM read_parquet(...)``
                     into a fresh DuckDB file (baseline for ``cvm_ingest``)
``summary_sql_parquet`` hand-written BTYD summary + totals SQL on the Parquet
``summary_sql_table``   the same SQL on table ``t``
``summary_sql_table_core`` BTYD columns only (no revenue/returns/orders) on
                     ``t`` -- the like-for-like baseline for ``cvm_features``
``cvm_ingest``       ``cvm.ingest.ingest_transactions(store, path)``
``cvm_features``     ``cvm.features.btyd_summary(...)`` fetched to Arrow
==================== =====================================================

Ratios reported: ``cvm_ingest / ctas_scan`` and ``cvm_features /
summary_sql_table_core`` (also vs ``summary_sql_table``), plus a checksum
comparison of the cvm and SQL summaries.

The cvm steps are recorded as "not available" when ``import cvm`` (or the
two functions) is missing. Results are appended to
``bench/results/foundation.jsonl`` and ``bench/results/foundation.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

from harness import (  # noqa: E402
    StepResult,
    append_jsonl,
    machine_info,
    markdown_table,
    run_step,
    skipped,
)

DATA_DIR = BENCH_DIR / ".data"
RESULTS_DIR = BENCH_DIR / "results"
THIS_FILE = Path(__file__).resolve()


# ============================================================================
# cvm steps -- TO BE WIRED BY THE MAIN ENGINEER
#
# These run in a fresh child process (see harness.run_step). Only the lines
# between ">>> CALL SITE" and "<<< CALL SITE" should need editing. Anything
# raised here is recorded as status "error" with the message; if `import cvm`
# fails the steps are recorded as "not available" and never started.
# ============================================================================

#: Modules imported *before* the clock starts, so import time is not charged.
CVM_PREIMPORT = {
    "cvm_ingest": ("cvm", "cvm.store", "cvm.ingest"),
    "cvm_features": ("cvm", "cvm.store", "cvm.features", "duckdb", "pyarrow", "pyarrow.compute"),
}


#: Entry point probed for each cvm step (module, attribute).
CVM_ENTRY_POINTS = {
    "cvm_ingest": ("cvm.ingest", "ingest_transactions"),
    "cvm_features": ("cvm.features", "btyd_summary"),
}


def cvm_available(step: str) -> str | None:
    """Check in a throwaway process whether a cvm step's entry point exists.

    Parameters
    ----------
    step : str
        A key of :data:`CVM_ENTRY_POINTS`.

    Returns
    -------
    str or None
        ``None`` if the function is importable and callable, else the reason.
    """
    module, attr = CVM_ENTRY_POINTS[step]
    probe = (
        f"import importlib\n"
        f"m = importlib.import_module({module!r})\n"
        f"assert callable(getattr(m, {attr!r}, None)), '{module}.{attr} is missing'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=_child_env(),
        check=False,
        timeout=300,
    )
    if proc.returncode == 0:
        return None
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return lines[-1] if lines else f"probe exited with {proc.returncode}"


def _open_store(store_path: str, *, fresh: bool) -> Any:
    """Return the cvm store object for ``store_path``.

    Parameters
    ----------
    store_path : str
        Location reserved for the store under ``bench/.data/work/``.
    fresh : bool
        ``True`` for ingest (any previous store at the path was deleted).

    Returns
    -------
    object
        Whatever ``cvm.ingest.ingest_transactions`` expects as ``store``.
    """
    # >>> CALL SITE (store): adjust if the store constructor changes.
    from cvm.store import Store  # type: ignore[import-not-found, unused-ignore]

    return Store(store_path, read_only=not fresh)
    # <<< CALL SITE (store)


def _close(store: Any) -> None:
    """Close the store if it has a ``close()`` method."""
    close = getattr(store, "close", None)
    if callable(close):
        close()


def _materialize(result: Any) -> Any:
    """Force a possibly lazy result (ibis / duckdb relation) into Arrow."""
    for method in ("to_pyarrow", "to_arrow_table", "arrow"):
        fn = getattr(result, method, None)
        if callable(fn):
            return fn()
    return result


def step_cvm_ingest(parquet: str, store_path: str) -> dict[str, Any]:
    """Measured step: ingest the Parquet file into a fresh cvm store.

    Parameters
    ----------
    parquet : str
        Transactions Parquet file.
    store_path : str
        Where the store lives (deleted first).

    Returns
    -------
    dict
        Whatever ``ingest_transactions`` returned, if it is a small dict.
    """
    import cvm.ingest  # type: ignore[import-not-found, unused-ignore]

    _remove_store(store_path)
    store = _open_store(store_path, fresh=True)
    # >>> CALL SITE (cvm_ingest)
    out = cvm.ingest.ingest_transactions(store, parquet)
    # <<< CALL SITE (cvm_ingest)
    _close(store)  # inside the timing, like the CTAS baseline's close()
    return _small_details(out)


def step_cvm_features(store_path: str, observation_end: str) -> dict[str, Any]:
    """Measured step: compute the BTYD summary with cvm and materialise it.

    Parameters
    ----------
    store_path : str
        Store written by :func:`step_cvm_ingest`.
    observation_end : str
        ISO date, the last day of observation (inclusive); only the date part
        is used if a timestamp is given.

    Returns
    -------
    dict
        Row count and checksums, comparable with ``summary_sql_table_core``.
    """
    import cvm.features

    store = _open_store(store_path, fresh=False)
    end = dt.date.fromisoformat(observation_end.strip()[:10])
    # >>> CALL SITE (cvm_features)
    transactions = store.table("transactions")
    out = store.to_arrow(cvm.features.btyd_summary(transactions, observation_end=end))
    # <<< CALL SITE (cvm_features)
    table = _materialize(out)
    _close(store)
    try:
        import pyarrow as pa

        from baselines import summary_facts

        if not isinstance(table, pa.Table):
            table = pa.Table.from_pandas(table, preserve_index=False)
        return summary_facts(table)
    except Exception as exc:  # checksums are best effort
        return {"type": type(out).__name__, "facts_error": str(exc)}


def _remove_store(store_path: str) -> None:
    """Delete ``store_path`` and siblings named ``<store_path>.*`` (files or dirs)."""
    target = Path(store_path)
    for path in [target, *target.parent.glob(target.name + ".*")]:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _small_details(value: Any) -> dict[str, Any]:
    """Keep the scalar fields of a step's return value (dict or ``to_dict()``)."""
    to_dict = getattr(value, "to_dict", None)
    data = to_dict() if callable(to_dict) else value
    if not isinstance(data, dict):
        return {} if value is None else {"returned": type(value).__name__}
    return {
        str(k): v for k, v in data.items() if v is None or isinstance(v, bool | int | float | str)
    }


# ============================================================================
# orchestration
# ============================================================================


def _child_env() -> dict[str, str]:
    """Environment for children: make ``src/`` importable if not installed."""
    env = dict(os.environ)
    src = REPO_DIR / "src"
    if (src / "cvm").is_dir():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), env.get("PYTHONPATH", "")) if p)
    return env


def _best(
    repeat: int,
    step: str,
    module: Path,
    func: str,
    kwargs: dict[str, Any],
    preimport: tuple[str, ...],
    log_dir: Path,
    timeout: float | None,
) -> StepResult:
    """Run a step ``repeat`` times; keep the fastest successful run."""
    runs = [
        run_step(
            step,
            module,
            func,
            kwargs,
            preimport=preimport,
            env=_child_env(),
            timeout=timeout,
            log_dir=log_dir,
        )
        for _ in range(repeat)
    ]
    ok = [r for r in runs if r.status == "ok" and r.wall_s is not None]
    if not ok:
        return runs[-1]
    best = min(ok, key=lambda r: r.wall_s or 0.0)
    if repeat > 1:
        best.details["repeat_walls_s"] = [r.wall_s for r in runs]
        best.peak_rss_mib = max(r.peak_rss_mib or 0.0 for r in ok)
    return best


def _ratio(num: StepResult | None, den: StepResult | None) -> float | None:
    """``num.wall_s / den.wall_s`` if both steps succeeded."""
    if num is None or den is None or num.status != "ok" or den.status != "ok":
        return None
    if not num.wall_s or not den.wall_s:
        return None
    return num.wall_s / den.wall_s


def _parity(cvm_res: StepResult | None, sql_res: StepResult | None) -> str | None:
    """Compare the checksums of the cvm and SQL summaries."""
    if cvm_res is None or sql_res is None or cvm_res.status != "ok":
        return None
    keys = [
        k
        for k, v in sql_res.details.items()
        if k in cvm_res.details and isinstance(v, int | float) and k != "repeat_walls_s"
    ]
    if not keys:
        return "no comparable checksums"
    bad = []
    for key in keys:
        a, b = float(cvm_res.details[key]), float(sql_res.details[key])
        if abs(a - b) > 1e-6 * max(1.0, abs(b)):
            bad.append(f"{key}: cvm={a} sql={b}")
    return "match (" + ", ".join(keys) + ")" if not bad else "MISMATCH " + "; ".join(bad)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="cvm foundation benchmark")
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--observation-end",
        default=None,
        help="ISO date, last observed day inclusive (default: last day of the data window)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="DuckDB threads for the SQL baselines (default: all)",
    )
    p.add_argument("--repeat", type=int, default=1, help="runs per step; the fastest is reported")
    p.add_argument("--timeout", type=float, default=3600.0, help="per-step seconds")
    p.add_argument("--skip-cvm", action="store_true", help="baselines only")
    p.add_argument(
        "--keep-work", action="store_true", help="keep the DuckDB file / cvm store after the run"
    )
    p.add_argument("--data-dir", type=Path, default=DATA_DIR)
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the foundation benchmark and write the results.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (defaults to ``sys.argv[1:]``).

    Returns
    -------
    int
        0 if every baseline step succeeded (cvm steps may be unavailable),
        1 otherwise.
    """
    args = _parse_args(argv)
    machine = machine_info(repo=REPO_DIR)
    tag = f"r{args.rows}_c{args.customers}_s{args.seed}"
    run_id = machine["date"].replace(":", "").replace("-", "") + "_" + tag
    data_dir: Path = args.data_dir
    work = data_dir / "work"
    logs = data_dir / "logs" / run_id
    parquet = data_dir / f"transactions_{tag}.parquet"
    meta_path = parquet.with_suffix(".json")
    work.mkdir(parents=True, exist_ok=True)
    common = {"log_dir": logs, "timeout": args.timeout}
    duck = ("duckdb", "pyarrow", "pyarrow.compute")
    results: list[StepResult] = []

    def say(res: StepResult) -> None:
        wall = "" if res.wall_s is None else f" wall={res.wall_s:.2f}s"
        peak = "" if res.peak_rss_mib is None else f" peak={res.peak_rss_mib:.0f}MiB"
        print(
            f"  {res.step:<24} {res.status:<13}{wall}{peak} {res.error or ''}".rstrip(), flush=True
        )

    print(f"[bench] {tag}  logs: {logs}", flush=True)
    # -- data ---------------------------------------------------------------
    if parquet.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        results.append(StepResult(step="generate", status="cached", details=meta))
    else:
        gen = run_step(
            "generate",
            BENCH_DIR / "generate.py",
            "generate",
            {
                "out": str(parquet),
                "rows": args.rows,
                "customers": args.customers,
                "seed": args.seed,
            },
            preimport=("numpy", "pyarrow", "pyarrow.parquet"),
            **common,
        )
        results.append(gen)
        if gen.status != "ok":
            say(gen)
            print("[bench] generation failed; see log", file=sys.stderr)
            return 1
        meta = gen.details
        meta_path.write_text(json.dumps(meta, indent=2))
    say(results[-1])
    obs_end = args.observation_end or meta["observation_end"]

    # -- baselines ----------------------------------------------------------
    base = BENCH_DIR / "baselines.py"
    db = work / f"baseline_{tag}.duckdb"
    th = {"threads": args.threads}
    plan: list[tuple[str, str, dict[str, Any]]] = [
        ("parquet_count", "step_parquet_count", {"parquet": str(parquet), **th}),
        ("ctas_scan", "step_ctas_scan", {"parquet": str(parquet), "database": str(db), **th}),
        (
            "summary_sql_parquet",
            "step_summary_sql",
            {"parquet": str(parquet), "observation_end": obs_end, **th},
        ),
        (
            "summary_sql_table",
            "step_summary_sql",
            {"database": str(db), "observation_end": obs_end, **th},
        ),
        (
            "summary_sql_table_core",
            "step_summary_sql",
            {"database": str(db), "observation_end": obs_end, "totals": False, **th},
        ),
    ]
    by_name: dict[str, StepResult] = {}
    for step, func, kwargs in plan:
        res = _best(args.repeat, step, base, func, kwargs, duck, logs, args.timeout)
        results.append(res)
        by_name[step] = res
        say(res)

    # -- cvm ----------------------------------------------------------------
    store = str(work / f"cvm_store_{tag}.duckdb")
    if args.skip_cvm:
        reasons: dict[str, str | None] = dict.fromkeys(CVM_ENTRY_POINTS, "skipped (--skip-cvm)")
    else:
        reasons = {step: cvm_available(step) for step in CVM_ENTRY_POINTS}
    ingest_reason = reasons["cvm_ingest"]
    if ingest_reason is not None:
        by_name["cvm_ingest"] = skipped("cvm_ingest", ingest_reason)
    else:
        by_name["cvm_ingest"] = _best(
            args.repeat,
            "cvm_ingest",
            THIS_FILE,
            "step_cvm_ingest",
            {"parquet": str(parquet), "store_path": store},
            CVM_PREIMPORT["cvm_ingest"],
            logs,
            args.timeout,
        )
    features_reason = reasons["cvm_features"]
    if features_reason is None and by_name["cvm_ingest"].status != "ok":
        features_reason = "needs a successful cvm_ingest"
    if features_reason is not None:
        by_name["cvm_features"] = skipped("cvm_features", features_reason)
    else:
        by_name["cvm_features"] = _best(
            args.repeat,
            "cvm_features",
            THIS_FILE,
            "step_cvm_features",
            {"store_path": store, "observation_end": obs_end},
            CVM_PREIMPORT["cvm_features"],
            logs,
            args.timeout,
        )
    for step in ("cvm_ingest", "cvm_features"):
        results.append(by_name[step])
        say(by_name[step])

    # -- report -------------------------------------------------------------
    r_ingest = _ratio(by_name["cvm_ingest"], by_name["ctas_scan"])
    r_feat = _ratio(by_name["cvm_features"], by_name["summary_sql_table_core"])
    r_feat_full = _ratio(by_name["cvm_features"], by_name["summary_sql_table"])
    parity = _parity(by_name["cvm_features"], by_name["summary_sql_table_core"])
    ratios = {
        "cvm_ingest": f"{r_ingest:.2f}x ctas_scan" if r_ingest else None,
        "cvm_features": f"{r_feat:.2f}x summary_sql_table_core" if r_feat else None,
    }
    config = {
        "rows": args.rows,
        "customers": args.customers,
        "seed": args.seed,
        "observation_end": obs_end,
        "threads": args.threads,
        "repeat": args.repeat,
        "parquet_bytes": meta.get("bytes"),
    }
    summary = {
        "cvm_ingest_over_ctas": r_ingest,
        "cvm_features_over_sql_table_core": r_feat,
        "cvm_features_over_sql_table": r_feat_full,
        "features_parity": parity,
    }
    append_jsonl(
        args.results_dir / "foundation.jsonl",
        [
            {
                "run_id": run_id,
                "config": config,
                "machine": machine,
                "summary": summary,
                **r.to_dict(),
            }
            for r in results
        ],
    )
    md = _markdown(run_id, config, machine, results, ratios, summary)
    with (args.results_dir / "foundation.md").open("a", encoding="utf-8") as fh:
        fh.write(md + "\n")
    print(md, flush=True)

    if not args.keep_work:
        db.unlink(missing_ok=True)
        db.with_name(db.name + ".wal").unlink(missing_ok=True)
        _remove_store(store)
    baseline_ok = all(by_name[s].status == "ok" for s, _, _ in plan)
    return 0 if baseline_ok else 1


def _markdown(
    run_id: str,
    config: dict[str, Any],
    machine: dict[str, Any],
    results: list[StepResult],
    ratios: dict[str, str | None],
    summary: dict[str, Any],
) -> str:
    """Render one run as a markdown section."""
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    size = config["parquet_bytes"]
    lines = [
        f"## foundation {run_id}",
        "",
        f"- data: {config['rows']:,} rows, {config['customers']:,} customers, "
        f"seed {config['seed']}"
        + (f", parquet {size / 2**20:,.1f} MiB" if size else "")
        + f"; observation_end {config['observation_end']}",
        f"- machine: {machine['cpu_model']}, {machine['cpu_usable']} cpus, "
        f"{machine['ram_gib']} GiB RAM, load {machine['load_1m']} at start; "
        f"Python {machine['python']}; {versions}; "
        f"git {machine['git_commit']}; {machine['date']}",
        f"- duckdb threads: {config['threads'] or 'default'}; repeat: "
        f"{config['repeat']} (fastest kept); wall = function call only, "
        "process = incl. interpreter start + imports; page cache warm; "
        f"load 1m > {machine['cpu_usable']} means the host was busy (timings inflated)",
        "",
        markdown_table(results, ratios),
        "",
        "| ratio | value |",
        "|---|---|",
    ]
    for key in (
        "cvm_ingest_over_ctas",
        "cvm_features_over_sql_table_core",
        "cvm_features_over_sql_table",
    ):
        val = summary[key]
        lines.append(f"| {key} | {f'{val:.2f}' if val else 'not available'} |")
    lines.append(f"| features_parity | {summary['features_parity'] or 'not available'} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
