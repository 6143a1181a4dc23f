"""Policy files, the per-session monitor and the `aimds verify` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aimds_ray.cli import main
from aimds_ray.core.ltl import PolicyError, SessionPolicyMonitor, load_policies

REPO = Path(__file__).resolve().parent.parent

SESSION = [
    {"t": 0.000, "type": "request"},
    {"t": 0.001, "type": "detect", "is_threat": True, "threat_type": "prompt_extraction", "score": 0.93,
     "action": "block", "pii": True},
    {"t": 0.004, "type": "mitigated"},
    {"t": 0.020, "type": "tool_call"},
    {"t": 0.030, "type": "redacted"},
    {"t": 0.040, "type": "response"},
]


def test_shipped_policies_load_and_configs_symlink() -> None:
    link = REPO / "configs" / "policies"
    assert link.is_symlink() and link.resolve() == (REPO / "aimds_ray" / "data" / "policies").resolve()
    ps = load_policies(link)
    assert len(ps) >= 6 and {p.action for p in ps} <= {"log", "escalate", "block"}
    assert [p.name for p in load_policies()] == [p.name for p in ps]


@pytest.mark.parametrize(("body", "key"), [
    ("name: x\nformula: G (p ->\n", "formula"),
    ("name: x\nformula: G nosuchatom\n", "formula"),
    ("name: x\nformula: G detect\naction: shout\n", "action"),
    ("name: x\nformula: G detect\nseverity: 3\n", "severity"),
    ("name: x\nformula: G detect\ncolour: red\n", "colour"),
    ("formula: G detect\n", "name"),
    ("name: x\nformula: G p\natoms: P\n", "atoms"),
])
def test_policy_errors_name_file_and_key(tmp_path: Path, body: str, key: str) -> None:
    (tmp_path / "bad.yaml").write_text(body)
    with pytest.raises(PolicyError) as ei:
        load_policies(tmp_path)
    assert "bad.yaml" in str(ei.value) and f": {key}:" in str(ei.value)


def test_declared_atoms_make_a_policy_valid(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("name: a\nformula: G (p -> F q)\natoms: [p, q]\naction: block\n")
    (tmp_path / "b.yml").write_text("name: a\nformula: G detect\n")
    with pytest.raises(PolicyError, match="duplicate"):
        load_policies(tmp_path)


def test_session_monitor_reports_as_verdicts_become_certain_and_restores() -> None:
    ps = load_policies()
    s = ps.session("s1")
    reported = [[r["policy"] for r in s.step(ev)] for ev in SESSION[:4]]
    assert "no_tool_call_after_prompt_extraction" in reported[3]
    snap = json.loads(json.dumps(s.snapshot()))
    s2 = SessionPolicyMonitor.restore(ps, snap)
    for ev in SESSION[4:]:
        assert s2.step(ev) == s.step(ev)
    final = {r["policy"]: r["verdict"] for r in s2.finish()}
    offline = {p.name: r.verdict for p, r in zip(ps, ps.verify(SESSION), strict=True)}
    assert final == offline
    assert final["pii_redacted_before_response"] == "satisfied"
    assert final["critical_threat_mitigated_10ms"] == "satisfied"
    assert s2.action() == "block"


def _trace(tmp_path: Path, events: list[dict], name: str = "t.jsonl") -> str:
    p = tmp_path / name
    p.write_text("".join(json.dumps(e) + "\n" for e in events))
    return str(p)


def test_cli_verify_formulas_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tr = _trace(tmp_path, SESSION)
    assert main(["verify", "--formula", "F response", "--formula", "G !tool_call", "--trace", tr]) == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["verdict"] for x in lines] == ["satisfied", "violated"]
    assert lines[1]["witness"]["focus"]["index"] == 3
    assert main(["verify", "-e", "F response", "--trace", tr]) == 0
    capsys.readouterr()


def test_cli_verify_policy(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    tr = _trace(tmp_path, SESSION)
    pol = REPO / "configs" / "policies" / "no_tool_call_after_prompt_extraction.yaml"
    assert main(["verify", "--policy", str(pol), "--trace", tr]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["policy"] == "no_tool_call_after_prompt_extraction" and out["verdict"] == "violated"
    assert main(["verify", "--policy", str(REPO / "configs" / "policies"), "--trace", tr, "--no-witness"]) == 1
    assert len(capsys.readouterr().out.splitlines()) == len(load_policies())


@pytest.mark.parametrize(("args", "lines", "needle"), [
    (["-e", "G (p ->"], None, "position 7"),
    (["-e", "F p"], ['{"t": 0, "type": "p"}', "{not json"], "line 2"),
    (["-e", "F p"], ['{"t": 1, "type": "p"}', '{"t": 0.5, "type": "p"}'], "line 2"),
    (["-e", "F p"], ['{"type": "p"}'], "line 1"),
    (["-e", "F p"], [], "no events"),
    (["-e", "F redactd", "--atoms", "p"], None, "redactd"),
    ([], None, "--formula"),
])
def test_cli_bad_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture, args: list, lines, needle) -> None:
    p = tmp_path / "t.jsonl"
    p.write_text("\n".join(lines if lines is not None else ['{"t": 0, "type": "p"}']) + "\n")
    assert main(["verify", *args, "--trace", str(p)]) == 2
    assert needle in capsys.readouterr().err


def test_cli_verify_unreadable_trace_and_policy_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"t": 0, "type": "p"}\n{"t": 1, "type": "\xff"}\n')
    good = tmp_path / "t.jsonl"
    good.write_text('{"t": 0, "type": "p"}\n')
    pol = tmp_path / "bad.yaml"
    pol.write_bytes(b"name: x\nformula: \xff\n")
    for args, needle in [(["-e", "F p", "--trace", str(bad)], "line 2: not valid UTF-8"),
                         (["--policy", str(pol), "--trace", str(good)], "not UTF-8"),
                         (["-e", "(" * 3000 + "p" + ")" * 3000, "--trace", str(good)], "nested")]:
        assert main(["verify", *args]) == 2
        err = capsys.readouterr().err
        assert needle in err and "internal error" not in err, err


def test_a_monitor_that_gives_up_does_not_cost_the_other_policies_their_events(tmp_path: Path) -> None:
    """Some formulas' residuals grow with every event until stepping overflows the stack (found in review:
    '(X F q) U (G r)'). That policy is marked failed with the reason; the policies after it still see every event
    (one of them missed event 0 and reported the wrong index)."""
    (tmp_path / "a.yaml").write_text("name: a_grows\nformula: (X F q) U (G r)\natoms: [q, r]\n")
    (tmp_path / "b.yaml").write_text("name: b_never_blocked\nformula: G !blocked\naction: block\n")
    ps = load_policies(tmp_path)
    s = ps.session("s")
    got = []
    for i in range(12):
        got += s.step({"t": float(i), "r": True, "blocked": i == 5})
    assert [(r["policy"], r["index"]) for r in got] == [("b_never_blocked", 5)]
    v = s.verdicts()
    assert v["b_never_blocked"] == "violated"
    if "a_grows" in s.failed:  # where the stack runs out depends on the interpreter's recursion limit
        assert v["a_grows"] == "error" and "gave up" in s.failed["a_grows"]
