"""Re-scoring tables of historical traffic: Arrow batches in, the same batches plus report columns out.

`score_table` is the one function both engines run: the local engine (`aimds rescore --engine local`) calls it on
each chunk of the input; the Ray Data engine calls it inside `map_batches` actors. Bad rows (null, non-string,
invalid UTF-8, oversized) are not dropped: they get `is_threat = null` and a message in `aimds_error`.
With `ExchangeColumns` the text column holds model responses, scanned row by row with `Detector.scan_response`
against the system prompt, prompt and canaries of the same row (`aimds rescore --response`).
"""

from __future__ import annotations

import glob
import json
import math
import os
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from aimds_ray.core.detector import Detector, InputError, Verdict
from aimds_ray.core.validity import json_has_lone_surrogate, lone_surrogate

REPORT_COLUMNS = ("is_threat", "score", "threat_type", "action", "aimds_error")
INPUT_PREFIX = "input_"  # an input column named like a report column is kept under this prefix, not overwritten
JSON_FIELD = {b"aimds_json": b"1"}  # field metadata: the column holds each value JSON-encoded (its rows mix types)
REPORT_SCHEMA = pa.schema(
    [
        ("is_threat", pa.bool_()),
        ("score", pa.float64()),
        ("threat_type", pa.string()),
        ("action", pa.string()),
        ("aimds_error", pa.string()),
    ]
)


class RescoreError(ValueError):
    """Bad invocation or unreadable input (exit code 2 at the CLI)."""


@dataclass(frozen=True)
class ExchangeColumns:
    """Columns of a table of responses that hold each row's exchange (any may be None: not in the table). The
    canaries column holds a list of strings or one string."""

    system_prompt: str | None = None
    prompt: str | None = None
    canaries: str | None = None

    def names(self) -> list[str]:
        return [c for c in (self.system_prompt, self.prompt, self.canaries) if c]

    def check(self, table: pa.Table | pa.RecordBatch) -> None:
        """RescoreError naming a column the table does not have (asked of a Parquet file's schema: a wrong flag is
        a usage error; in JSONL a line without the field is a response scanned without that part)."""
        for c in self.names():
            if c not in table.schema.names:
                names = [n for n in table.schema.names if n != "aimds_input_error"]
                raise RescoreError(f"input has no column {c!r} (columns: {', '.join(names)})")

    def rows(self, table: pa.Table | pa.RecordBatch) -> list[dict[str, Any]]:
        """Each row's keyword arguments for `Detector.scan_response` (a column missing from this chunk: none)."""
        n = table.num_rows
        cols = {}
        for key, c in (("system_prompt", self.system_prompt), ("prompt", self.prompt), ("canaries", self.canaries)):
            if c and c in table.schema.names:
                vals = _lenient_pylist(table.column(c))
                if table.schema.field(c).metadata == JSON_FIELD:  # JSONL values of mixed types, carried as JSON
                    vals = [None if v is None else json.loads(v) for v in vals]
                if key == "canaries":
                    vals = [[v] if isinstance(v, str) else v for v in vals]
                cols[key] = vals
        return [{k: v[i] for k, v in cols.items()} for i in range(n)]


def lacks_text_column(table: pa.Table | pa.RecordBatch, text_column: str) -> bool:
    """True when `table` has no `text_column` and no row explains it: a wrong `--text-column`, a usage error. Rows
    that lack only the field (JSONL lines without it) are bad rows of a good input. Asked of a file's first chunk
    only: a later chunk whose rows all lack the field is bad rows, not a wrong column."""
    if text_column in table.schema.names:
        return False
    if "aimds_input_error" not in table.schema.names:
        return True
    missing = f"no {text_column!r} field"
    return all(e is None or e.endswith(missing) for e in table.column("aimds_input_error").to_pylist())


def score_table(detector: Detector, table: pa.Table | pa.RecordBatch, text_column: str = "text",
                exchange: ExchangeColumns | None = None) -> pa.Table:
    """Append the report columns to `table`. An input column named like one of them is kept, renamed with the
    `input_` prefix ("score" -> "input_score"; the text column too, if it is one), so nothing of the input is lost;
    `aimds_input_error` is the JSONL reader's note on a bad line (see `read_jsonl_chunks`), consumed here. With
    `exchange`, the texts are responses (see the module docstring)."""
    if text_column not in table.schema.names:
        raise RescoreError(f"input has no column {text_column!r} (columns: {', '.join(table.schema.names)})")
    values = _lenient_pylist(table.column(text_column))  # invalid UTF-8: bytes, which the loop below explains
    n = len(values)
    is_threat: list[bool | None] = [None] * n
    score: list[float | None] = [None] * n
    ttype: list[str | None] = [None] * n
    action: list[str | None] = [None] * n
    error: list[str | None] = [None] * n
    good_idx: list[int] = []
    good_txt: list[str] = []
    max_chars = detector.config.limits.max_input_chars
    input_errors = (table.column("aimds_input_error").to_pylist() if "aimds_input_error" in table.schema.names
                    else [None] * n)
    for i, v in enumerate(values):
        if v is None:
            error[i] = input_errors[i] or "null text"
            continue
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError as e:
                error[i] = f"invalid UTF-8 at byte {e.start}"
                continue
        if not isinstance(v, str):
            error[i] = f"text is {type(v).__name__}, not a string"
            continue
        if len(v) > max_chars:
            error[i] = f"text has {len(v)} characters, over limits.max_input_chars={max_chars}"
            continue
        good_idx.append(i)
        good_txt.append(v)
    reports: list[Any] = []
    if good_txt and exchange is not None:
        reports = _response_verdicts(detector, table, exchange, good_idx, good_txt)
    elif good_txt:
        try:
            reports = detector.decide_batch(good_txt)  # the four columns, without building full reports
        except InputError:
            reports = []
            for t in good_txt:  # fall back to one-by-one so one bad row cannot sink the batch
                try:
                    reports.extend(detector.decide_batch([t]))
                except InputError as e:
                    reports.append(str(e))
    if reports:
        for i, r in zip(good_idx, reports, strict=True):
            if isinstance(r, str):
                error[i] = r
                continue
            is_threat[i] = r.is_threat
            score[i] = r.score
            ttype[i] = r.threat_type
            action[i] = str(r.action)
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if "aimds_input_error" in table.schema.names:
        table = table.drop_columns(["aimds_input_error"])
    names = table.schema.names
    if any(n in REPORT_COLUMNS for n in names):
        table = table.rename_columns([_kept_name(n, names) if n in REPORT_COLUMNS else n for n in names])
    arrays = [
        pa.array(is_threat, pa.bool_()),
        pa.array(score, pa.float64()),
        pa.array(ttype, pa.string()),
        pa.array(action, pa.string()),
        pa.array(error, pa.string()),
    ]
    for f, arr in zip(REPORT_SCHEMA, arrays, strict=True):
        table = table.append_column(f, arr)
    return _valid_utf8(table)


class _Undecodable(bytes):
    """A value of a column that held invalid UTF-8 (a list column's element included): the row's error."""


def _lenient_pylist(col: pa.ChunkedArray) -> list[Any]:
    """`col` as Python values; where a value holds invalid UTF-8 (not every Parquet writer validates), that row's
    value is `_Undecodable` bytes (the original bytes of a string), which become that row's error, not the run's
    crash: for the text column as for an exchange column."""
    try:
        return col.to_pylist()
    except UnicodeDecodeError:
        pass
    out: list[Any] = []
    if _is_str(col.type):
        for b in col.cast(pa.large_binary()).to_pylist():
            try:
                out.append(None if b is None else b.decode("utf-8"))
            except UnicodeDecodeError:
                out.append(_Undecodable(b))
        return out
    for chunk in col.chunks:
        for i in range(len(chunk)):
            try:
                out.append(chunk[i].as_py())
            except UnicodeDecodeError:
                out.append(_Undecodable(b"\xff"))
    return out


def _response_verdicts(detector: Detector, table: pa.Table | pa.RecordBatch, exchange: ExchangeColumns,
                       idx: list[int], texts: list[str]) -> list[Verdict | str]:
    """`scan_response` of each good row against its own exchange; a bad system prompt or canary list is that row's
    error message, as a bad text is."""
    parts = exchange.rows(table)
    out: list[Verdict | str] = []
    for i, t in zip(idx, texts, strict=True):
        bad = next((k for k, v in parts[i].items() if isinstance(v, _Undecodable)), None)
        if bad is not None:
            out.append(f"{bad}: not valid UTF-8")
            continue
        try:
            r = detector.scan_response(t, **parts[i])
            out.append(Verdict(r.is_threat, r.score, r.threat_type, str(r.action)))
        except InputError as e:
            out.append(str(e))
    return out


def _valid_utf8(table: pa.Table) -> pa.Table:
    """`table` with invalid UTF-8 in its string (and list-of-string) columns replaced by U+FFFD, as JSONL output
    writes it: not every
    Parquet writer validates, and a file holding such strings fails every reader that decodes them (`to_pylist`,
    pandas). The text column's rows that had any say so in `aimds_error`. One C pass per string column."""
    for i, f in enumerate(table.schema):
        t = f.type
        listed = (pa.types.is_list(t) or pa.types.is_large_list(t)) and _is_str(t.value_type)
        if not (_is_str(t) or listed):
            continue
        col = table.column(i)
        try:
            col.validate(full=True)
        except pa.ArrowInvalid:
            def fix(b: bytes | None) -> str | None:
                return None if b is None else b.decode("utf-8", "replace")

            if listed:  # a list of strings (canaries, tags): the same, element by element
                as_bin = pa.list_(pa.large_binary()) if pa.types.is_list(t) else pa.large_list(pa.large_binary())
                fixed: list[Any] = [None if v is None else [fix(b) for b in v] for v in col.cast(as_bin).to_pylist()]
            else:
                fixed = [fix(b) for b in col.cast(pa.large_binary()).to_pylist()]
            table = table.set_column(i, f, pa.array(fixed, t))
    return table


def _is_str(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def _kept_name(name: str, names: list[str]) -> str:
    """`input_<name>`, prefixed again while the input already has a column of that name."""
    while name in names or name in REPORT_COLUMNS:
        name = INPUT_PREFIX + name
    return name


# --- input / output -----------------------------------------------------------------------------------------------


def expand_inputs(spec: str) -> list[str]:
    """A file, a directory (its *.parquet / *.jsonl files) or a glob, sorted; an empty match is an error."""
    if any(c in spec for c in "*?["):
        files = sorted(glob.glob(spec, recursive=True))
    elif os.path.isdir(spec):
        files = sorted(
            str(p) for p in Path(spec).rglob("*")
            if p.suffix in (".parquet", ".jsonl", ".json", ".ndjson") and p.is_file()
        )
    elif os.path.exists(spec):
        files = [spec]
    else:
        raise RescoreError(f"input {spec!r} does not exist")
    if not files:
        raise RescoreError(f"input {spec!r} matches no .parquet or .jsonl files")
    return files


def _is_jsonl(path: str) -> bool:
    return path.endswith((".jsonl", ".json", ".ndjson"))


def read_jsonl_chunks(path: str, chunk_rows: int, text_column: str = "text") -> Iterator[pa.Table]:
    """JSONL (or a .json array, see `_records`) as Arrow tables; a line that is not a JSON object becomes a row with
    `aimds_error`, not a crash."""
    rows: list[dict[str, Any]] = []
    for lineno, raw in _records(path):
        if not raw.strip():
            continue
        try:
            obj, problem = _parse_line(raw, text_column)
            if problem:  # the text could not be read; the other fields are kept (U+FFFD where unreadable)
                obj[text_column] = None
                obj["aimds_input_error"] = f"line {lineno}: {problem}"
            elif "aimds_input_error" in obj:  # the input's own field of that name, kept (see score_table)
                kept = _kept_name("aimds_input_error", list(obj))
                obj[kept] = obj.pop("aimds_input_error")
        except (ValueError, UnicodeDecodeError) as e:
            obj = {"aimds_input_error": f"line {lineno}: invalid JSON ({e})"}
        except RecursionError:
            obj = {"aimds_input_error": f"line {lineno}: invalid JSON (nested too deeply)"}
        val = obj.get(text_column)
        if val is None and "aimds_input_error" not in obj:  # say which line, as for the other bad rows
            obj["aimds_input_error"] = f"line {lineno}: " + (f"{text_column} is null" if text_column in obj
                                                             else f"no {text_column!r} field")
        elif val is not None and not isinstance(val, str):
            obj["aimds_input_error"] = f"line {lineno}: {text_column} is {type(val).__name__}, not a string: " \
                f"{json.dumps(val)[:200]}"
            obj[text_column] = None
        rows.append(obj)
        if len(rows) >= chunk_rows:
            yield _rows_to_table(rows)
            rows = []
    if rows:
        yield _rows_to_table(rows)


def _records(path: str) -> Iterator[tuple[int, bytes]]:
    """(number, UTF-8 JSON) of each record: the lines of JSONL (UTF-16 with a byte-order mark is read as such), or,
    for a .json file that holds one array, its elements (numbered as lines are: the first is 1)."""
    with open(path, "rb") as f:
        head = f.read(4096)
        f.seek(0)
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            try:
                text = f.read().decode("utf-16")
            except UnicodeDecodeError as e:
                raise RescoreError(f"{path}: starts with a UTF-16 byte-order mark but is not UTF-16 ({e})") from None
            for n, line in enumerate(text.split("\n"), 1):
                yield n, line.encode("utf-8", "surrogatepass")  # (a lone surrogate stays one: _parse_line sees it)
            return
        if path.endswith(".json") and head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
            try:
                items = json.loads(f.read().decode("utf-8-sig"))
            except (ValueError, UnicodeDecodeError, RecursionError) as e:
                raise RescoreError(f"{path}: a JSON array that cannot be read ({type(e).__name__}: {e})"[:500]) \
                    from None
            if not isinstance(items, list):
                raise RescoreError(f"{path}: expected one JSON array of objects or JSON lines")
            for n, item in enumerate(items, 1):
                yield n, json.dumps(item).encode("ascii")  # (a lone surrogate stays an escape: _parse_line says so)
            return
        yield from enumerate(f, 1)


def _parse_line(raw: bytes, text_column: str) -> tuple[dict[str, Any], str]:
    """A JSONL line's object, and why its text cannot be scored ("" if it can). A line with bytes that are not
    UTF-8, or with a \\uD800-\\uDFFF escape without its pair, keeps its other fields, the unreadable parts as U+FFFD
    (a line's id is what ties the error to the input); its text is unreadable when the damage is in it. Raises
    ValueError / RecursionError for a line that is no JSON object."""
    problem = ""
    try:
        obj = json.loads(raw)
    except UnicodeDecodeError as e:
        obj = json.loads(raw.decode("utf-8", "replace"))
        problem = f"invalid UTF-8 at byte {e.start}"
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    if problem:
        text = obj.get(text_column)
        return obj, problem if isinstance(text, str) and "\ufffd" in text else ""
    if json_has_lone_surrogate(raw, obj):  # it parses, but no column holding it could be written
        text = obj.get(text_column)
        damaged = isinstance(text, str) and lone_surrogate(text) >= 0
        obj = _without_surrogates(obj)
        return obj, "a \\uD800-\\uDFFF escape without its pair is not valid Unicode" if damaged else ""
    return obj, ""


def _without_surrogates(v: Any) -> Any:
    if isinstance(v, str):
        return _SURROGATE.sub("\ufffd", v)
    if isinstance(v, dict):
        return {_without_surrogates(k): _without_surrogates(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_without_surrogates(x) for x in v]
    return v


_SURROGATE = re.compile("[\ud800-\udfff]")


def _rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Columns are the union of all rows' keys (Arrow's from_pylist would only look at the first row); a column
    whose values mix types (or holds an int past 64 bits) is kept with each value JSON-encoded, its field marked
    `JSON_FIELD`, so JSONL output writes the values back as they were and Parquet output holds them as JSON text."""
    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    fields, cols = [], []
    for k in keys:
        vals = [r.get(k) for r in rows]
        try:
            arr = pa.array(vals)
            fields.append(pa.field(k, arr.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # mixed types, or an int past 64 bits
            arr = _json_texts(vals)
            fields.append(pa.field(k, pa.string(), metadata=JSON_FIELD))
        cols.append(arr)
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


def iter_input(path: str, chunk_rows: int, text_column: str = "text") -> Iterator[pa.Table]:
    if _is_jsonl(path):
        yield from read_jsonl_chunks(path, chunk_rows, text_column)
    else:
        try:
            pf = pq.ParquetFile(path)
            empty = True
            for batch in pf.iter_batches(batch_size=chunk_rows):
                empty = False
                yield pa.Table.from_batches([batch])
        except (pa.ArrowException, OSError) as e:
            if isinstance(e, FileNotFoundError):
                raise
            raise RescoreError(f"{path}: not a readable Parquet file ({e})") from None
        if empty:  # no rows: still one (empty) table, so the output keeps the input's columns
            yield pf.schema_arrow.empty_table()


@dataclass
class RescoreSummary:
    rows: int = 0
    threats: int = 0
    errors: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    model_version: str = ""
    engine: str = "local"

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": self.engine,
            "rows": self.rows,
            "threats": self.threats,
            "errors": self.errors,
            "threats_by_type": dict(sorted(self.by_type.items())),
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows / self.seconds, 1) if self.seconds > 0 else None,
            "model_version": self.model_version,
        }

    def add(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        for t, e in zip(table.column("threat_type").to_pylist(), table.column("is_threat").to_pylist(),
                        strict=True):
            if e:
                self.threats += 1
                self.by_type[t] = self.by_type.get(t, 0) + 1
        self.errors += table.num_rows - table.column("aimds_error").null_count


def _write_jsonl(f: Any, table: pa.Table) -> None:
    """`table` (`score_table`'s output: its strings are valid UTF-8, see `_valid_utf8`) as JSON lines."""
    rows = table.to_pylist()
    encoded = [f.name for f in table.schema if f.metadata and f.metadata.get(b"aimds_json")]
    for row in rows:
        for name in encoded:  # values of mixed types, carried as JSON text: written back as the values they were
            if row[name] is not None:
                row[name] = json.loads(row[name])
        try:
            line = json.dumps(row, ensure_ascii=False, default=_json_value, allow_nan=False)
        except ValueError:  # NaN / inf from a float column: JSON has no such numbers (null, as pandas writes)
            line = json.dumps(_finite(row), ensure_ascii=False, default=_json_value)
        f.write(line)
        f.write("\n")


def _json_value(v: Any) -> Any:
    """What JSON cannot hold as is: bytes as base64 text (not Python's b'...' repr), dates and the rest as str."""
    if isinstance(v, bytes | bytearray | memoryview):
        import base64

        return base64.b64encode(bytes(v)).decode("ascii")
    return str(v)


def _finite(v: Any) -> Any:
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def rescore_local(
    input_spec: str, output: str, *, detector: Detector | None = None, text_column: str = "text",
    chunk_rows: int = 4096, progress: bool | None = None, exchange: ExchangeColumns | None = None,
) -> RescoreSummary:
    """Score every row of the input(s) in-process and write one JSONL or Parquet file (chosen by extension); with
    `exchange`, the texts are responses scanned against the exchange columns of their rows."""
    files = expand_inputs(input_spec)
    detector = detector or Detector()
    out_jsonl = _is_jsonl(output)
    if not out_jsonl and not output.endswith(".parquet"):
        raise RescoreError(f"output {output!r} must end in .jsonl or .parquet")
    if os.path.isdir(output):
        raise RescoreError(f"output {output!r} is a directory; give a file name ending in .jsonl or .parquet")
    summary = RescoreSummary(model_version=detector.model_version)
    progress = sys.stderr.isatty() if progress is None else progress
    t0 = time.perf_counter()
    tmp = output + ".tmp"
    try:
        _rescore_into(files, output, tmp, detector, text_column, chunk_rows, progress, out_jsonl, summary, t0,
                      exchange)
    except BaseException as e:
        try:
            Path(tmp).unlink(missing_ok=True)  # nothing half-written stays behind, under either name
        except OSError:
            pass  # (no such directory, or not one: there is nothing to remove, and the first error is the one)
        if isinstance(e, OSError) and (not isinstance(e, FileNotFoundError) or e.filename == tmp):
            name = output if e.filename in (None, tmp) else e.filename  # the user's path, not our temporary one
            raise RescoreError(f"cannot write {name}: {e.strerror or e}" if e.filename in (None, tmp)
                               else f"{name}: {e.strerror or e}") from None
        raise
    if progress:
        print(file=sys.stderr)
    summary.seconds = time.perf_counter() - t0
    return summary


def _align(table: pa.Table, schema: pa.Schema, path: str, rows_before: int) -> pa.Table:
    """`table` with the Parquet writer's columns and types: a column the chunk lacks is null; one the first chunk
    did not have, or a type that cannot be converted, is an error (Parquet output has one schema)."""
    extra = [n for n in table.column_names if n not in schema.names]
    if extra:
        raise RescoreError(f"{path}: column(s) {', '.join(extra)} first appear after row {rows_before}; Parquet "
                           "output has one schema, fixed by the first rows: write .jsonl output instead")
    cols = []
    for f in schema:
        if f.name not in table.column_names:
            cols.append(pa.nulls(table.num_rows, f.type))
            continue
        c = table.column(f.name)
        if _is_json(f):  # the column's types differ across the input: JSON text throughout
            if not _is_json(table.schema.field(f.name)):
                c = _json_texts(c.to_pylist())  # (scored chunks: valid UTF-8)
        elif c.type == pa.null():  # all null in this chunk: nulls of the column's type
            c = pa.nulls(table.num_rows, f.type)
        elif c.type != f.type:
            try:  # only a lossless conversion: "007" or "0x1" cast to int64 would be written as 7 and 1
                cast = c.cast(f.type)
                if not cast.cast(c.type).equals(c):
                    raise ValueError("not lossless")
                c = cast
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError):
                raise RescoreError(f"{path}: column {f.name!r} is {f.type} in the first rows but {c.type} after row "
                                   f"{rows_before}; Parquet output has one schema: write .jsonl output instead"
                                   ) from None
        cols.append(c)
    return pa.Table.from_arrays(cols, schema=schema)


def _is_json(f: pa.Field) -> bool:
    return bool(f.metadata and f.metadata.get(b"aimds_json"))


def _input_schema(files: list[str], chunk_rows: int, text_column: str) -> pa.Schema | None:
    """One schema for all the input's rows, read in a first pass when Parquet is written: a JSONL field may first
    appear, or first be non-null, after the first chunk (and input files may differ), and the Parquet writer needs
    every column and type at its start. Types are unified where Arrow can widen them without loss (null -> any,
    int -> double); a column whose types cannot be (int in some rows, text in others) is JSON text throughout
    (`JSON_FIELD`), as a chunk whose rows mix types already is. None when an input file cannot be read (the main
    pass then says why)."""
    fields: dict[str, list[pa.Field]] = {}
    for path in files:
        try:
            schemas = [c.schema for c in iter_input(path, chunk_rows, text_column)] if _is_jsonl(path) \
                else [pq.read_schema(path)]
        except (pa.ArrowException, OSError, RescoreError):
            return None
        for schema in schemas:
            for f in schema:
                fields.setdefault(f.name, []).append(f)
    out = []
    for name, fs in fields.items():
        try:
            if any(map(_is_json, fs)):
                raise pa.ArrowInvalid("mixed types")
            out.append(pa.unify_schemas([pa.schema([f]) for f in fs], promote_options="permissive").field(0))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            out.append(pa.field(name, pa.string(), metadata=JSON_FIELD))
    schema = pa.schema(out)
    return schema if text_column in schema.names else schema.append(pa.field(text_column, pa.string()))


def _json_texts(vals: list[Any]) -> pa.Array:
    """Each value JSON-encoded (what `JSON_FIELD` marks); null stays null."""
    return pa.array([None if v is None else json.dumps(v, ensure_ascii=False, default=_json_value) for v in vals],
                    pa.string())


def _rescore_into(files: list[str], output: str, tmp: str, detector: Detector, text_column: str, chunk_rows: int,
                  progress: bool, out_jsonl: bool, summary: RescoreSummary, t0: float,
                  exchange: ExchangeColumns | None = None) -> None:
    try:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise RescoreError(f"cannot write {output}: {Path(output).parent} is a file, not a directory") from None
    writer: pq.ParquetWriter | None = None
    schema: pa.Schema | None = None
    whole = None if out_jsonl else _input_schema(files, chunk_rows, text_column)
    with open(tmp, "w", encoding="utf-8") if out_jsonl else _nullctx() as jf:
        for path in files:
            for n_chunk, chunk in enumerate(iter_input(path, chunk_rows, text_column)):
                if text_column not in chunk.schema.names:
                    if n_chunk == 0 and lacks_text_column(chunk, text_column):
                        names = [n for n in chunk.schema.names if n != "aimds_input_error"]
                        raise RescoreError(f"{path}: no column {text_column!r} "
                                           f"(columns: {', '.join(names)}); use --text-column")
                    chunk = chunk.append_column(text_column, pa.nulls(chunk.num_rows, pa.string()))
                if n_chunk == 0 and exchange is not None and not _is_jsonl(path):  # (JSONL: a row may lack a part)
                    try:
                        exchange.check(chunk)
                    except RescoreError as e:
                        raise RescoreError(f"{path}: {e}") from None
                scored = score_table(detector, chunk, text_column, exchange)
                rows_before = summary.rows
                summary.add(scored)
                if out_jsonl:
                    _write_jsonl(jf, scored)
                else:
                    meta = {b"aimds_model_version": detector.model_version.encode()}
                    if writer is None:
                        first = scored if whole is None else \
                            score_table(detector, whole.empty_table(), text_column, exchange)
                        schema = first.schema.with_metadata(meta)
                        writer = pq.ParquetWriter(tmp, schema)
                    scored = _align(scored, schema, path, rows_before) \
                        if not scored.schema.remove_metadata().equals(schema.remove_metadata(), check_metadata=True) \
                        else scored.replace_schema_metadata(meta)  # (field metadata counts: JSON_FIELD)
                    writer.write_table(scored)
                if progress:
                    el = time.perf_counter() - t0
                    print(f"\r{summary.rows} rows  {summary.rows / max(el, 1e-9):,.0f} rows/s", end="",
                          file=sys.stderr)
    if writer is not None:
        writer.close()
    elif not out_jsonl:
        pq.write_table(pa.table({}).replace_schema_metadata({b"aimds_model_version": b""}), tmp)
    os.replace(tmp, output)  # the output appears whole or not at all


class _nullctx:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *a: object) -> None:
        return None
