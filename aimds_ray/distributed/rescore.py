"""Ray Data engine for `aimds rescore`: re-score historical traffic on a cluster, resumably.

Pipeline per *wave* (a group of pending input files): `ray.data.read_parquet` (or the local engine's JSONL reader
run as a Ray Data task) -> `map_batches(_Scorer, compute=ActorPoolStrategy(size=N))`, each actor holding one
`Detector` and calling `core.batch.score_table` (the very function the local engine runs, so results are identical
for one model version) -> `write_parquet` into a staging directory -> commit.

Why waves: `write_parquet` commits a whole Dataset execution at once, so a run killed half-way leaves nothing a
re-run can trust. Committing per wave (rename the staged parts to names derived from a hash of the wave's inputs and
the job key, then record the wave in `_aimds_manifest.json`, written atomically) makes a re-run skip finished input
files and delete any uncommitted part, so nothing is duplicated. The price is one actor-pool start (Detector load)
per wave and a drained pipeline at each wave boundary (measured: 1M rows in two waves 27.8k rows/s, in one 29.7k),
which is why waves are large (`wave_rows`, default 1M rows: at most ~40 s of 2-core work is redone after a kill)
rather than one per file.

Session replay (`sessions="session_col,time_col"`) is a second pass over the committed output: group by session
(`groupby().map_groups`), order by time, feed `BehaviourModel` and the policies (through the same
`session_events` the online deep path uses) and write one row per session to `OUTPUT/_sessions/` (underscore: Parquet
readers of OUTPUT skip it, so OUTPUT still reads as one table with the input columns + report columns).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import math
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from aimds_ray.core.batch import REPORT_COLUMNS, ExchangeColumns, RescoreError, RescoreSummary, expand_inputs

MANIFEST = "_aimds_manifest.json"
STAGING = "_aimds_staging"
SESSIONS_DIR = "_sessions"
META_KEY = b"aimds_model_version"
MANIFEST_FORMAT = 1
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
# At most this many read and this many write tasks at once. Each Ray worker process costs ~150 MB; uncapped,
# 0.1-CPU I/O tasks let Ray start a dozen of them and peak memory grew with the input (measured 14 -> 32 processes
# from 200k to 600k rows). Two of each keep the scorers fed (reading/writing is ~2% of the CPU time).
IO_TASKS = 2
JSONL_BYTES_PER_ROW = 256  # only to size waves of JSONL input (row counts are unknown until read)


# --- inputs and output filesystem -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InputFile:
    """One input file: `uri` is what the user sees and the manifest records; `path` is relative to `fs`."""

    uri: str
    path: str
    size: int
    mtime_ns: int

    @property
    def is_jsonl(self) -> bool:
        return self.path.endswith(JSONL_SUFFIXES)

    def ident(self) -> dict[str, Any]:
        return {"uri": self.uri, "size": self.size, "mtime_ns": self.mtime_ns}


def _fs_and_path(spec: str) -> tuple[pafs.FileSystem, str, bool]:
    """(filesystem, path within it, is_remote). Local paths stay local so globs behave as in the local engine."""
    if "://" in spec and not spec.startswith("file://"):
        fs, path = pafs.FileSystem.from_uri(spec)
        return fs, path, True
    if spec.startswith("file://"):
        spec = spec[len("file://"):]
    return pafs.LocalFileSystem(), os.path.abspath(spec) if not any(c in spec for c in "*?[") else spec, False


def _glob_match(path: str, pattern: str) -> bool:
    """`glob` semantics on a remote path: `*`, `?` and `[...]` stay within one path segment (fnmatch alone lets
    `*` cross `/`, so `logs/*.parquet` also took `logs/archive/x.parquet`)."""
    parts, pats = path.split("/"), pattern.split("/")
    return len(parts) == len(pats) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(parts, pats, strict=True))


def list_inputs(spec: str) -> tuple[pafs.FileSystem, list[InputFile]]:
    """Expand INPUT like the local engine (file, directory, glob), on any filesystem pyarrow knows."""
    fs, path, remote = _fs_and_path(spec)
    if not remote:
        paths = [os.path.abspath(p) for p in expand_inputs(spec)]
    else:
        scheme = spec.split("://", 1)[0]
        if any(c in path for c in "*?["):
            base = path[: min(path.index(c) for c in "*?[" if c in path)].rsplit("/", 1)[0]
            infos = fs.get_file_info(pafs.FileSelector(base, recursive=True))
            paths = sorted(i.path for i in infos if i.type == pafs.FileType.File and _glob_match(i.path, path))
        else:
            info = fs.get_file_info(path)
            if info.type == pafs.FileType.NotFound:
                raise RescoreError(f"input {spec!r} does not exist")
            if info.type == pafs.FileType.Directory:
                infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
                paths = sorted(i.path for i in infos if i.type == pafs.FileType.File
                               and i.path.endswith((".parquet", *JSONL_SUFFIXES)))
            else:
                paths = [path]
        if not paths:
            raise RescoreError(f"input {spec!r} matches no .parquet or .jsonl files")
    infos = fs.get_file_info(paths)
    out = []
    for p, i in zip(paths, infos, strict=True):
        uri = p if not remote else f"{scheme}://{p}"
        out.append(InputFile(uri, p, int(i.size or 0), int(i.mtime_ns or 0)))
    return fs, out


def _row_counts(fs: pafs.FileSystem, files: list[InputFile], text_column: str,
                exchange: ExchangeColumns | None = None) -> dict[str, int | None]:
    """Rows per Parquet file from footers (parallel: on object storage each is a round trip); None for JSONL.
    A Parquet file without the text column (or an exchange column) is refused here, before any actor starts."""
    def one(f: InputFile) -> int | None:
        if f.is_jsonl:
            return None
        with fs.open_input_file(f.path) as fh:
            pf = pq.ParquetFile(fh)
            names = pf.schema_arrow.names
            if text_column not in names:
                raise RescoreError(f"{f.uri}: no column {text_column!r} (columns: {', '.join(names)}); "
                                   "use --text-column")
            if exchange is not None:
                try:
                    exchange.check(pf.schema_arrow.empty_table())
                except RescoreError as e:
                    raise RescoreError(f"{f.uri}: {e}") from None
            return pf.metadata.num_rows

    with ThreadPoolExecutor(16) as ex:
        return dict(zip((f.uri for f in files), ex.map(one, files), strict=True))


class _Output:
    """The output directory on its filesystem: atomic manifest writes, part listing, staging cleanup."""

    def __init__(self, spec: str) -> None:
        self.fs, self.root, self.remote = _fs_and_path(spec)
        self.root = self.root.rstrip("/")
        self.spec = spec

    def join(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def read_manifest(self) -> dict[str, Any] | None:
        p = self.join(MANIFEST)
        if self.fs.get_file_info(p).type == pafs.FileType.NotFound:
            return None
        with self.fs.open_input_stream(p) as f:
            return json.loads(f.read().decode("utf-8"))

    def write_manifest(self, m: dict[str, Any]) -> None:
        tmp = self.join(MANIFEST + ".tmp")
        with self.fs.open_output_stream(tmp) as f:
            f.write(json.dumps(m, indent=1, sort_keys=True).encode("utf-8"))
        self.fs.move(tmp, self.join(MANIFEST))  # rename: readers see the old or the new manifest, never half

    def files(self, sub: str = "") -> list[str]:
        base = self.join(sub) if sub else self.root
        if self.fs.get_file_info(base).type != pafs.FileType.Directory:
            return []
        return sorted(i.path for i in self.fs.get_file_info(pafs.FileSelector(base, recursive=False))
                      if i.type == pafs.FileType.File)

    def rmtree(self, sub: str) -> None:
        p = self.join(sub)
        if self.fs.get_file_info(p).type == pafs.FileType.Directory:
            self.fs.delete_dir(p)

    def uri(self, path: str) -> str:
        return path if not self.remote else f"{self.spec.split('://', 1)[0]}://{path}"


# --- the scoring actor --------------------------------------------------------------------------------------------


class _Scorer:
    """One Detector per actor, loaded once; `__call__` is `score_table` on an Arrow batch plus the version tag."""

    def __init__(self, config: Any, text_column: str, model_version: str, progress: Any = None,
                 exchange: Any = None) -> None:
        from aimds_ray.core.detector import Detector
        from aimds_ray.core.process import settle_heap

        self.detector = Detector(config)
        if self.detector.model_version != model_version:  # e.g. a node with another model store
            raise RescoreError(f"worker loaded model {self.detector.model_version!r}, driver has {model_version!r}")
        self.detector.warm_up()
        settle_heap()  # the actor's process is ours (see core/process.py)
        self.text_column = text_column
        self.exchange = exchange
        self.meta = {META_KEY: model_version.encode()}
        self.progress = progress

    def __call__(self, batch: pa.Table) -> pa.Table:
        from aimds_ray.core.batch import score_table

        col = self.text_column
        if col not in batch.schema.names:  # Parquet inputs were checked up front; a JSONL batch has bad rows
            if "aimds_input_error" not in batch.schema.names:
                names = [n for n in batch.schema.names if n != "aimds_input_error"]
                raise RescoreError(f"input has no column {col!r} (columns: {', '.join(names)}); "
                                   "use --text-column")
            batch = batch.append_column(col, pa.nulls(batch.num_rows, pa.string()))
        out = score_table(self.detector, batch, col, self.exchange).replace_schema_metadata(self.meta)
        if self.progress is not None:
            self.progress.add.remote(out.num_rows)
        return out


def _read_jsonl(batch: pa.Table, text_column: str, chunk_rows: int) -> Any:
    """Ray Data read step for JSONL: the local engine's reader (bad lines become rows with an error, never lost)."""
    import tempfile

    from aimds_ray.core.batch import read_jsonl_chunks

    for uri in batch.column("uri").to_pylist():
        if "://" in uri and not uri.startswith("file://"):  # remote: copy down, then the same reader
            fs, path = pafs.FileSystem.from_uri(uri)
            with tempfile.NamedTemporaryFile(suffix=".jsonl") as tmp:
                with fs.open_input_stream(path) as src:
                    while chunk := src.read(1 << 22):
                        tmp.write(chunk)
                tmp.flush()
                yield from read_jsonl_chunks(tmp.name, chunk_rows, text_column)
        else:
            yield from read_jsonl_chunks(uri.removeprefix("file://"), chunk_rows, text_column)


# --- summary and progress -----------------------------------------------------------------------------------------


@dataclass
class RayRescoreSummary(RescoreSummary):
    """The local summary plus what a resumable cluster job adds (files skipped, rows scored by this run)."""

    engine: str = "ray"
    files: int = 0
    files_skipped: int = 0
    rows_this_run: int = 0
    workers: int = 0
    output: str = ""
    sessions: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["rows_per_s"] = round(self.rows_this_run / self.seconds, 1) if self.seconds > 0 else None
        d.update(files=self.files, files_skipped=self.files_skipped, rows_this_run=self.rows_this_run,
                 workers=self.workers, output=self.output)
        if self.sessions is not None:
            d["sessions"] = self.sessions
        d.update(self.extra)
        return d


def _progress_actor() -> Any:
    import ray

    @ray.remote(num_cpus=0)
    class _Progress:
        def __init__(self) -> None:
            self.n = 0

        def add(self, n: int) -> None:
            self.n += n

        def get(self) -> int:
            return self.n

    return _Progress.remote()


class _Reporter(threading.Thread):
    """Prints rows done, rows/s and ETA: one rewritten line on a terminal, a line every 10 s otherwise."""

    def __init__(self, actor: Any, total: int | None, base: int) -> None:
        super().__init__(daemon=True)
        self.actor, self.total, self.base = actor, total, base
        self.t0 = time.perf_counter()
        self.stop = threading.Event()
        self.tty = sys.stderr.isatty()

    def line(self) -> str:
        import ray

        n = ray.get(self.actor.get.remote(), timeout=10)
        el = time.perf_counter() - self.t0
        rate = n / el if el > 0 else 0.0
        s = f"{self.base + n:,}" + (f"/{self.total:,}" if self.total else "") + f" rows  {rate:,.0f} rows/s"
        if self.total and rate > 0:
            left = max(0, self.total - self.base - n) / rate
            s += f"  ETA {int(left // 60)}m{int(left % 60):02d}s"
        return s

    def run(self) -> None:
        period = 0.5 if self.tty else 10.0
        while not self.stop.wait(period):
            try:
                s = self.line()
            except Exception:  # progress is best effort; the job is not
                continue
            print(("\r" + s + "   ") if self.tty else s, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.stop.set()
        self.join(2)
        try:
            s = self.line()
            print(("\r" + s + "   \n") if self.tty else s, end="" if self.tty else "\n", file=sys.stderr)
        except Exception:
            pass


def _wave_counts(table: pa.Table) -> dict[str, Any]:
    """rows, threats, errors and threats by type of a scored table (columnar, no per-row Python)."""
    threat = table.column("is_threat")
    hit = pc.fill_null(threat, False)
    by = pc.value_counts(pc.filter(table.column("threat_type"), hit)).to_pylist()
    return {"rows": table.num_rows, "threats": int(pc.sum(hit).as_py() or 0),
            "errors": table.num_rows - table.column("aimds_error").null_count,
            "threats_by_type": {d["values"]: int(d["counts"]) for d in by}}


# --- the job ------------------------------------------------------------------------------------------------------


def _job_key(model_version: str, config: Any, text_column: str, exchange: Any = None) -> str:
    """What makes outputs comparable: same model, same config, same text column (and, for responses, the same
    exchange columns)."""
    extra = "" if exchange is None else f"\0response:{exchange!r}"
    h = hashlib.sha256(f"{model_version}\0{config!r}\0{text_column}{extra}".encode())
    return h.hexdigest()[:16]


def _plan_waves(files: list[InputFile], rows: dict[str, int | None], wave_rows: int) -> list[list[InputFile]]:
    """Consecutive files grouped until a wave holds about `wave_rows` rows; Parquet and JSONL never mix."""
    waves: list[list[InputFile]] = []
    cur: list[InputFile] = []
    weight = 0
    for f in sorted(files, key=lambda f: (f.is_jsonl, f.uri)):
        if cur and (cur[0].is_jsonl != f.is_jsonl or weight >= wave_rows):
            waves.append(cur)
            cur, weight = [], 0
        cur.append(f)
        weight += rows[f.uri] if rows.get(f.uri) is not None else max(1, f.size // JSONL_BYTES_PER_ROW)
    if cur:
        waves.append(cur)
    return waves


def _wave_key(job: str, wave: list[InputFile]) -> str:
    h = hashlib.sha256(job.encode())
    for f in wave:
        h.update(json.dumps(f.ident(), sort_keys=True).encode())
    return h.hexdigest()[:16]


def _cpu_plan(workers: int | None) -> tuple[int, float, float]:
    """(actors, logical CPUs per actor, logical CPUs per read/write task).

    Ray CPUs are admission tokens, not pinning: an actor asking 0.4 CPU still runs on a whole core if one is free.
    The detector actors do nearly all the CPU work; read and write tasks mostly wait on I/O and Parquet
    (de)compression, so they ask 0.1. What bounds the split is `read_parquet`'s file-listing task, which in Ray 2.60
    always asks for a whole CPU and cannot be configured: if the actors hold more than `CPUs - 1.2` the listing
    never gets scheduled and the job stalls at 0 rows (observed). So on a 2-CPU machine with 2 workers each actor
    asks 0.4: both cores still score (the OS schedules the two busy actors on the two cores) and the reader runs."""
    import ray

    cpus = float(ray.cluster_resources().get("CPU", 1.0))
    n = workers if workers and workers > 0 else max(1, int(cpus))
    io = 0.1
    per = round(min(1.0, max(0.05, (cpus - 1.0 - 2 * io) / n)), 3)
    return n, per, io


def rescore_ray(
    input: str, output: str, *, config: Any = None, text_column: str = "text", address: str | None = None,
    workers: int | None = None, sessions: str | None = None, progress: bool = True, wave_rows: int = 1_000_000,
    batch_rows: int = 4096, exchange: ExchangeColumns | None = None,
) -> RayRescoreSummary:
    """Score INPUT into the Parquet directory OUTPUT with a pool of detector actors; resumable (see module doc).
    With `exchange`, the texts are responses scanned against their rows' exchange columns."""
    import ray

    from aimds_ray.core.config import AimdsConfig, load_config
    from aimds_ray.core.detector import Detector

    t_start = time.perf_counter()
    cfg = config if isinstance(config, AimdsConfig) else load_config(config)
    sess_cols = _parse_sessions(sessions)
    in_fs, files = list_inputs(input)
    out = _Output(output)
    if output.endswith(JSONL_SUFFIXES):
        raise RescoreError(f"output {output!r}: --engine ray writes a directory of Parquet parts")

    model_version = Detector(cfg).model_version  # the version actors must match; also names the job
    job = _job_key(model_version, cfg, text_column, exchange)
    manifest = out.read_manifest()
    if manifest is None:
        leftovers = [p for p in out.files() if not _ours(p)]
        if leftovers:
            raise RescoreError(f"output {output!r} is not empty and has no {MANIFEST}: choose a new directory")
        manifest = {"format": MANIFEST_FORMAT, "job": job, "model_version": model_version,
                    "text_column": text_column, "waves": []}
    elif manifest.get("job") != job:
        raise RescoreError(f"output {output!r} was written by another job (model {manifest.get('model_version')!r}"
                           f", text column {manifest.get('text_column')!r} or config differ): use a new directory")

    done = {i["uri"]: i for w in manifest["waves"] for i in w["inputs"]}
    for f in files:
        if f.uri in done and (done[f.uri]["size"], done[f.uri]["mtime_ns"]) != (f.size, f.mtime_ns):
            raise RescoreError(f"input {f.uri} changed since it was scored into {output!r}: use a new directory")
    pending = [f for f in files if f.uri not in done]

    # anything not committed by the manifest is from an interrupted run: remove it before redoing the work
    out.fs.create_dir(out.root, recursive=True)
    committed = {p for w in manifest["waves"] for p in w["parts"]}
    for p in out.files():
        name = p.rsplit("/", 1)[-1]
        if name.startswith("part-") and name not in committed or name == MANIFEST + ".tmp":
            out.fs.delete_file(p)
    out.rmtree(STAGING)

    started_ray = False
    if not ray.is_initialized():
        try:
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
        except ConnectionError as e:  # `--address auto` (or an address) with no cluster there: the user's to fix
            raise RescoreError(f"cannot reach a Ray cluster at {address!r}: {e} (start one with `ray start "
                               "--head`, or leave out --address to run on a local Ray started for this job)") from None
        started_ray = True
    try:
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ctx.execution_options.preserve_order = True  # parts keep input order: deterministic, comparable output
        # ~9k rows of 200 chars per block: a block goes to one actor whole, so big blocks leave actors idle at the
        # end (measured: 16 MiB blocks -> 3 tasks for 200k rows; 2 MiB -> 21 evenly spread) and hold more memory
        ctx.target_max_block_size = 2 * 1024 * 1024
        logging.getLogger("ray.data").setLevel(logging.WARNING)

        n_actors, actor_cpus, io_cpus = _cpu_plan(workers)
        counts = _row_counts(in_fs, pending, text_column, exchange)
        known = [c for c in counts.values() if c is not None]
        total = sum(w["rows"] for w in manifest["waves"]) + sum(known) if len(known) == len(pending) else None
        prog = _progress_actor() if progress else None
        reporter = _Reporter(prog, total, sum(w["rows"] for w in manifest["waves"])) if prog else None
        if reporter:
            reporter.start()
        t0 = time.perf_counter()
        rows_run = 0
        try:
            for wave in _plan_waves(pending, counts, wave_rows):
                key = _wave_key(job, wave)
                out.rmtree(STAGING)
                staging = out.join(STAGING, key)
                if wave[0].is_jsonl:
                    ds = ray.data.from_items([{"uri": f.uri} for f in wave], override_num_blocks=len(wave))
                    ds = ds.map_batches(_read_jsonl, batch_size=1, batch_format="pyarrow", num_cpus=io_cpus,
                                        compute=ray.data.TaskPoolStrategy(size=IO_TASKS), fn_kwargs={"text_column": text_column, "chunk_rows": batch_rows})
                else:
                    ds = ray.data.read_parquet([f.path for f in wave], filesystem=in_fs, partitioning=None,
                                               num_cpus=io_cpus, file_extensions=None, concurrency=IO_TASKS)
                ds = ds.map_batches(
                    _Scorer, batch_size=batch_rows, batch_format="pyarrow",
                    compute=ray.data.ActorPoolStrategy(size=n_actors), num_cpus=actor_cpus,
                    fn_constructor_kwargs={"config": cfg, "text_column": text_column,
                                           "model_version": model_version, "progress": prog,
                                           "exchange": exchange})
                ds.write_parquet(staging, filesystem=out.fs, min_rows_per_file=wave_rows // 4 or 1,
                                 ray_remote_args={"num_cpus": io_cpus}, concurrency=IO_TASKS)
                staged = out.files(f"{STAGING}/{key}")
                with_schema = [p for p in staged if p.endswith(".parquet")]
                scored = pq.read_table(with_schema, filesystem=out.fs,
                                       columns=["is_threat", "threat_type", "aimds_error"]) if with_schema else None
                wc = _wave_counts(scored) if scored is not None else {"rows": 0, "threats": 0, "errors": 0,
                                                                      "threats_by_type": {}}
                parts = []
                for i, p in enumerate(with_schema):
                    name = f"part-{key}-{i:05d}.parquet"
                    out.fs.move(p, out.join(name))
                    parts.append(name)
                manifest["waves"].append({"key": key, "inputs": [f.ident() for f in wave], "parts": parts,
                                          "committed_at": time.time(), **wc})
                out.write_manifest(manifest)  # the commit point of this wave
                rows_run += wc["rows"]
        finally:
            if reporter:
                reporter.close()
            out.rmtree(STAGING)
        seconds = time.perf_counter() - t0

        summary = RayRescoreSummary(model_version=model_version, files=len(files),
                                    files_skipped=len(files) - len(pending), rows_this_run=rows_run,
                                    workers=n_actors, output=output)
        for w in manifest["waves"]:
            summary.rows += w["rows"]
            summary.threats += w["threats"]
            summary.errors += w["errors"]
            for t, c in w["threats_by_type"].items():
                summary.by_type[t] = summary.by_type.get(t, 0) + c
        summary.seconds = seconds
        summary.extra["actor_cpus"] = actor_cpus
        if sess_cols:
            summary.sessions = replay_sessions(out, manifest, sess_cols, text_column, n_actors, io_cpus)
        summary.extra["wall_seconds"] = round(time.perf_counter() - t_start, 3)
        return summary
    finally:
        if started_ray:
            ray.shutdown()


def _ours(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.startswith("part-") or name.startswith(MANIFEST)


def _parse_sessions(spec: str | None) -> tuple[str, str] | None:
    if not spec:
        return None
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) != 2 or not all(parts):
        raise RescoreError(f"--sessions {spec!r}: expected session_col,time_col")
    return parts[0], parts[1]


# --- session replay -----------------------------------------------------------------------------------------------


SESSION_SCHEMA = pa.schema([
    ("session_id", pa.string()),
    ("requests", pa.int64()),
    ("scored", pa.int64()),
    ("threats", pa.int64()),
    ("first_t", pa.float64()),
    ("last_t", pa.float64()),
    ("max_anomaly", pa.float64()),
    ("mean_anomaly", pa.float64()),
    ("attractor_kind", pa.string()),
    ("attractor", pa.string()),
    ("violations", pa.int64()),
    ("violations_json", pa.string()),
])


def _seconds(col: pa.ChunkedArray) -> list[float | None]:
    """Time column as seconds: timestamps, numbers (taken as seconds) or ISO-8601 strings."""
    t = col.type
    if pa.types.is_timestamp(t):
        unit = {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[t.unit]
        return [None if v is None else v / unit for v in pc.cast(col, pa.int64()).to_pylist()]
    if pa.types.is_date(t):
        return [None if v is None else float(v) * 86400 for v in pc.cast(col, pa.int32()).to_pylist()]
    if pa.types.is_integer(t) or pa.types.is_floating(t):  # NaN / inf is no time: like an unparseable string
        return [None if v is None or not math.isfinite(v) else float(v) for v in col.to_pylist()]
    out: list[float | None] = []
    for v in col.to_pylist():
        try:
            out.append(datetime.fromisoformat(str(v)).timestamp() if v is not None else None)
        except ValueError:
            out.append(None)
    return out


_POLICIES: Any = None


def _policies() -> Any:
    global _POLICIES
    if _POLICIES is None:  # once per worker process
        from aimds_ray.core.ltl import load_policies

        _POLICIES = load_policies()
    return _POLICIES


def replay_group(group: pa.Table, session_col: str, time_col: str) -> pa.Table:
    """One session (all its scored rows) in time order through `BehaviourModel` and every policy.

    Events are built by `distributed.actors.session_events`, as online. Offline the report columns are all there
    is: categories are `{threat_type: score}`, PII is inferred from `action == "redact"`, latency is 0, and the
    text length stands for the text (online the analyzer also gets only length; entropy stays the prior)."""
    from aimds_ray.core.behaviour import BehaviourModel
    from aimds_ray.distributed.actors import session_events

    ts = _seconds(group.column(time_col))
    order = sorted(range(group.num_rows), key=lambda i: (ts[i] is None, ts[i] or 0.0, i))
    sid_v = group.column(session_col)[0].as_py()
    sid = sid_v if isinstance(sid_v, str) else json.dumps(sid_v, default=str)
    cols = {c: group.column(c).to_pylist() for c in ("is_threat", "score", "threat_type", "action", "_len")}
    model = BehaviourModel()
    anomalies: list[float] = []
    trace: list[dict[str, Any]] = []
    attractor = None
    threats = 0
    last_t = None
    for i in order:
        t = ts[i] if ts[i] is not None else (last_t if last_t is not None else 0.0)
        last_t = t
        if cols["is_threat"][i] is None:  # a row the detector could not score (see aimds_error)
            continue
        score, ttype, action = float(cols["score"][i]), cols["threat_type"][i], cols["action"][i]
        threats += bool(cols["is_threat"][i])
        r = model.observe(sid, t, score=score, length=int(cols["_len"][i] or 0),
                          categories={ttype: score} if ttype and ttype != "none" else None)
        anomalies.append(r.anomaly)
        attractor = r.attractor or attractor
        rep = {"is_threat": bool(cols["is_threat"][i]), "threat_type": ttype, "score": score, "action": action,
               "latency_us": 0.0, "evidence": [{"category": "data_leakage"}] if action == "redact" else []}
        trace.extend(session_events({"t": t, "report": rep}))
    violations = []
    if trace:
        pols = _policies()
        for p, res in zip(pols, pols.verify(trace), strict=True):
            if res.verdict == "violated":
                violations.append({"policy": p.name, "severity": p.severity, "action": p.action,
                                   "formula": res.text, "witness": res.witness})
    known = [t for t in ts if t is not None]
    row = {
        "session_id": sid, "requests": group.num_rows, "scored": len(anomalies), "threats": threats,
        "first_t": min(known) if known else None, "last_t": max(known) if known else None,
        "max_anomaly": max(anomalies) if anomalies else None,
        "mean_anomaly": sum(anomalies) / len(anomalies) if anomalies else None,
        "attractor_kind": attractor["kind"] if attractor else None,
        "attractor": json.dumps(attractor, default=str) if attractor else None,
        "violations": len(violations), "violations_json": json.dumps(violations, default=_json_default),
    }
    return pa.Table.from_pylist([row], schema=SESSION_SCHEMA)


def _json_default(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "tolist"):
        return v.tolist()
    return str(v)


def _with_length(batch: pa.Table, text_column: str, session_col: str) -> pa.Table:
    """Text -> its length before the shuffle (the behaviour model needs no more); rows without a session go."""
    batch = batch.filter(pc.is_valid(batch.column(session_col)))
    col = batch.column(text_column)
    n = pc.binary_length(col) if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type) else (
        pc.utf8_length(col) if pa.types.is_string(col.type) or pa.types.is_large_string(col.type) else
        pa.nulls(batch.num_rows, pa.int64()))
    return batch.drop_columns([text_column]).append_column("_len", pc.cast(n, pa.int64()))


def replay_sessions(out: _Output, manifest: dict[str, Any], cols: tuple[str, str], text_column: str,
                    n_actors: int, io_cpus: float) -> dict[str, Any]:
    """Second pass over the committed output: one row per session in `OUTPUT/_sessions/`."""
    import ray.data

    session_col, time_col = cols
    parts = [out.join(p) for w in manifest["waves"] for p in w["parts"]]
    if not parts:
        return {"sessions": 0}
    names = pq.read_schema(parts[0], filesystem=out.fs).names
    missing = [c for c in cols if c not in names]
    if missing:
        raise RescoreError(f"--sessions: output has no column {', '.join(map(repr, missing))}")
    need = [session_col, time_col, text_column, *[c for c in REPORT_COLUMNS if c != "aimds_error"]]
    ds = ray.data.read_parquet(parts, filesystem=out.fs, partitioning=None, num_cpus=io_cpus)
    ds = ds.select_columns(list(dict.fromkeys(need)))
    ds = ds.map_batches(_with_length, batch_format="pyarrow", fn_kwargs={"text_column": text_column, "session_col": session_col},
                        num_cpus=io_cpus)
    ds = ds.groupby(session_col).map_groups(replay_group, batch_format="pyarrow", num_cpus=0.5,
                                             fn_kwargs={"session_col": session_col, "time_col": time_col})
    out.rmtree(SESSIONS_DIR)
    out.rmtree(STAGING)
    staging = out.join(STAGING, "sessions")
    ds.write_parquet(staging, filesystem=out.fs, ray_remote_args={"num_cpus": io_cpus})
    staged = [p for p in out.files(f"{STAGING}/sessions") if p.endswith(".parquet")]
    out.fs.create_dir(out.join(SESSIONS_DIR), recursive=True)
    for i, p in enumerate(staged):
        out.fs.move(p, out.join(SESSIONS_DIR, f"sessions-{i:05d}.parquet"))
    out.rmtree(STAGING)
    tab = pq.read_table([out.join(SESSIONS_DIR, f"sessions-{i:05d}.parquet") for i in range(len(staged))],
                        filesystem=out.fs, columns=["violations", "max_anomaly", "attractor_kind"]) if staged else None
    if tab is None:
        return {"sessions": 0, "path": out.uri(out.join(SESSIONS_DIR))}
    kinds = pc.value_counts(tab.column("attractor_kind").drop_null()).to_pylist()
    return {"sessions": tab.num_rows, "path": out.uri(out.join(SESSIONS_DIR)),
            "with_violations": int(pc.sum(pc.greater(tab.column("violations"), 0)).as_py() or 0),
            "max_anomaly": pc.max(tab.column("max_anomaly")).as_py(),
            "attractor_kinds": {d["values"]: int(d["counts"]) for d in kinds}}
