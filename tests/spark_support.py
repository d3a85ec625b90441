"""Test helpers for running Ibis expressions on a local PySpark session.

The module is importable without ``pyspark`` installed: PySpark is only
imported inside :func:`spark_ibis_backend`.  Typical use in ``conftest.py``::

    import pytest
    from spark_support import pyspark_available, spark_ibis_backend

    @pytest.fixture(scope="session")
    def spark_con():
        if not pyspark_available():
            pytest.skip("pyspark not installed")
        return spark_ibis_backend()

Load test data with ``ibis.memtable(df)`` (registered as a Spark temp view on
execution) or ``con.create_view(name, ibis.memtable(df), overwrite=True)``.
Avoid ``con.create_table(name, df)``: it writes parquet files to the
warehouse directory and is slower.

Set ``CVM_SPARK_CDS_ARCHIVE`` to the path of a JVM class-data-sharing archive
built with :func:`build_cds_archive` to cut JVM start-up by roughly 2-3 s.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ibis.backends.pyspark import Backend as PySparkBackend
    from pyspark.sql import SparkSession

__all__ = [
    "SPARK_CONF",
    "build_cds_archive",
    "pyspark_available",
    "spark_ibis_backend",
]

#: Spark settings tuned for tiny test data on a small machine.
SPARK_CONF: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.memory": "512m",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    # Arrow makes toPandas()/createDataFrame(pandas) markedly faster.
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "true",
}

_LOG4J2_PROPERTIES = """\
rootLogger.level = error
rootLogger.appenderRef.stderr.ref = stderr
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n%ex
# PySpark's JVM entry point initialises logging "as an interpreter": unless
# this logger has its own level equal to root's, Spark prints "Setting
# default log level to WARN" and lowers the console threshold to WARN.
logger.pygw.name = org.apache.spark.api.python.PythonGatewayServer
logger.pygw.level = error
"""

_LOCK = threading.Lock()
_BACKEND: PySparkBackend | None = None


def pyspark_available() -> bool:
    """Return whether ``pyspark`` can be imported.

    Returns
    -------
    bool
        ``True`` if the ``pyspark`` package is installed.
    """
    return importlib.util.find_spec("pyspark") is not None


def _java_options(workdir: Path, cds_dump_path: str | None = None) -> str:
    """Build ``spark.driver.extraJavaOptions`` for a fast, quiet JVM."""
    log4j = workdir / "log4j2.properties"
    log4j.write_text(_LOG4J2_PROPERTIES)
    opts = [
        f"-Dlog4j.configurationFile={log4j.as_uri()}",
        # C1 only: ~1 s faster start-up; irrelevant for tiny test queries.
        "-XX:TieredStopAtLevel=1",
    ]
    if cds_dump_path is not None:
        opts += [f"-XX:ArchiveClassesAtExit={cds_dump_path}", "-Xlog:cds*=off"]
    else:
        archive = os.environ.get("CVM_SPARK_CDS_ARCHIVE")
        if archive and Path(archive).is_file():
            opts += [f"-XX:SharedArchiveFile={archive}", "-Xshare:auto", "-Xlog:cds*=off"]
    return " ".join(opts)


def _quiet_python_loggers() -> None:
    """Silence PySpark/py4j Python loggers that write straight to stderr."""
    from pyspark.logger import PySparkLogger

    # PySpark 4 logs every AnalysisException as JSON via these loggers
    # (propagate=False, own StreamHandler) before raising it.  They must be
    # created through PySparkLogger.getLogger: a plain logging.Logger of the
    # same name would break their ``exception(..., errorClass=...)`` calls.
    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).disabled = True
    logging.getLogger("py4j").setLevel(logging.WARNING)


def _build_session(master: str, workdir: Path, cds_dump_path: str | None = None) -> SparkSession:
    """Create (or get) the process-wide local SparkSession."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(master).appName("cvm-tests")
    conf = dict(SPARK_CONF)
    conf["spark.sql.warehouse.dir"] = str(workdir / "warehouse")
    conf["spark.local.dir"] = str(workdir / "local")
    conf["spark.driver.extraJavaOptions"] = _java_options(workdir, cds_dump_path)
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def spark_ibis_backend(master: str | None = None) -> PySparkBackend:
    """Return an Ibis PySpark backend on a shared local SparkSession.

    The SparkSession (and its JVM) is created on the first call and reused by
    every later call in the same process, so the ~4-8 s start-up cost is paid
    once per test session.

    Parameters
    ----------
    master : str, optional
        Spark master URL used when the session is first created.  Defaults to
        the ``CVM_SPARK_MASTER`` environment variable, else ``"local[2]"``.
        Ignored once the session exists.

    Returns
    -------
    ibis.backends.pyspark.Backend
        Backend wrapping the shared session (session time zone UTC).

    Raises
    ------
    ModuleNotFoundError
        If ``pyspark`` (or ``ibis-framework[pyspark]``) is not installed.

    Notes
    -----
    Sets ``PYSPARK_PYTHON``/``PYSPARK_DRIVER_PYTHON`` to ``sys.executable``
    and ``SPARK_LOCAL_IP`` (if unset) to ``127.0.0.1``.  JVM logging is
    limited to errors; the JVM's own ``WARNING: Using incubator modules``
    line cannot be suppressed.
    """
    global _BACKEND
    with _LOCK:
        if _BACKEND is None:
            import ibis

            workdir = Path(tempfile.mkdtemp(prefix="cvm-spark-"))
            atexit.register(shutil.rmtree, workdir, ignore_errors=True)
            master = master or os.environ.get("CVM_SPARK_MASTER", "local[2]")
            session = _build_session(master, workdir)
            _quiet_python_loggers()
            _BACKEND = ibis.pyspark.connect(session)
        return _BACKEND


def build_cds_archive(path: str | os.PathLike[str]) -> Path:
    """Build a JVM AppCDS archive that speeds up Spark start-up.

    Runs a throw-away Spark session in a subprocess with
    ``-XX:ArchiveClassesAtExit`` and moves the archive into place atomically.
    Point ``CVM_SPARK_CDS_ARCHIVE`` at the result.  The archive (~140 MB) is
    only valid for the same JDK and Spark jars; a stale archive is ignored by
    the JVM.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file of the archive.

    Returns
    -------
    pathlib.Path
        The archive path.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--dump-cds", str(tmp)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.replace(tmp, dest)
    return dest


def _dump_cds(tmp: str) -> None:
    """Start Spark, run a representative query, exit (JVM dumps archive)."""
    import ibis
    import pandas as pd

    session = _build_session(
        "local[2]", Path(tempfile.mkdtemp(prefix="cvm-spark-")), cds_dump_path=tmp
    )
    con = ibis.pyspark.connect(session)
    t = ibis.memtable(
        pd.DataFrame({"k": ["a", "b", "a"], "ts": pd.to_datetime(["2020-01-01"] * 3)})
    )
    expr = t.group_by("k").agg(n=t.count(), d=t.ts.date().max()).order_by("k")
    con.execute(expr)
    # The JVM writes the archive when it exits.  Make it exit now (it does so
    # on EOF on stdin) and wait, so the file is complete when we return.
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    proc = getattr(gateway, "proc", None)
    session.stop()
    if proc is not None:
        proc.stdin.close()
        proc.wait(timeout=120)


if __name__ == "__main__":  # pragma: no cover - helper entry point
    if len(sys.argv) == 3 and sys.argv[1] == "--dump-cds":
        _dump_cds(sys.argv[2])
    else:
        sys.exit(f"usage: {sys.argv[0]} --dump-cds OUTPUT")
