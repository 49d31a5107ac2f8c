"""Every ```python and ```sh snippet of README.md, docs/guide.md and docs/queue-and-asyncio.md
runs as written (issue 15: a newcomer copies them).

How each snippet is checked, from the HTML comment just above it (if any):

* no comment: run as one program (``python`` or ``sh -e``) in a fresh directory; it must
  exit 0 without a traceback.  A Python snippet with ``# process A`` / ``# process B``
  comment lines is run as that many processes at once, each being the lines above the
  first marker plus its own part (the doc says the parts run in separate processes).
* ``<!-- snippet: mypy -->``: type-checked with ``mypy --strict``; exactly the lines
  marked ``# error: TEXT`` must be reported, each with that text.
* ``<!-- snippet: run by .ci/run -->``: every command in it is in ``.ci/run``, which CI runs.
* ``<!-- snippet: not run ... -->``: the reason is shown as the skip reason.
* ``<!-- example: FILE -->`` (docs/queue-and-asyncio.md): the snippet is FILE, which
  tests/test_examples_queue.py runs; here it must equal the file.

The one change made to a snippet before it runs: ``/tmp/`` becomes a fresh private
directory (and ``$XDG_RUNTIME_DIR`` another), so runs never meet each other's FIFOs.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", "docs/guide.md", "docs/queue-and-asyncio.md"]

pytestmark = pytest.mark.skipif(
    not all((ROOT / d).is_file() for d in DOCS), reason="the docs are not beside tests/"
)

#: What some snippets must print (their comments say so): (doc, a line) -> lines of stdout.
EXPECTED_OUTPUT = {
    ("README.md", "fastfifo recv /tmp/fastfifo-demo/q --count 1"): [
        "resize a.jpg",
        '{"text": "resize b.jpg"}',
    ],
    ("README.md", 'with fastfifo.Reader("/tmp/photo-jobs", stop_at_eof=True) as r:'): [
        "b'resize photo-1.jpg'",
        "b'resize photo-2.jpg'",
        "b'resize photo-3.jpg'",
    ],
    ("README.md", 'subprocess.run(f"echo hi > {path}", shell=True, check=True)'): ["b'hi'"],
    ("docs/guide.md", "    msg = r.get(timeout=5.0)"): ["b'one message'"],
    ("docs/guide.md", 'while job=$(fastfifo recv "$q" --count 1 --timeout 0 --quiet); do'): [
        "doing job1",
        "doing job2",
        "doing job3",
    ],
    ("README.md", "async with await aio.open_writer(path) as w:"): ["b'event'", "b'burst'"],
    ("docs/queue-and-asyncio.md", "batch = await reader.get_many(2)"): ["b'c' [b'a', b'b']"],
}


@dataclass
class Snippet:
    doc: str
    line: int  # of the opening fence
    lang: str
    code: str
    marker: str | None  # the <!-- ... --> comment just above, if any
    section: str  # the heading it is under

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"

    def has(self, text: str) -> bool:
        """Whether a line of the snippet contains ``text``."""
        return any(text in line for line in self.code.splitlines())


def snippets() -> list[Snippet]:
    found = []
    for doc in DOCS:
        path = ROOT / doc
        if not path.is_file():
            continue
        lines = path.read_text().splitlines()
        section = ""
        i = 0
        while i < len(lines):
            if lines[i].startswith("#") and not lines[i].startswith("#!"):
                section = lines[i]
            m = re.fullmatch(r"```(python|sh)", lines[i])
            if m:
                end = lines.index("```", i + 1)
                above = lines[i - 1] if i else ""
                marker = above if re.fullmatch(r"<!-- .* -->", above) else None
                code = "\n".join(lines[i + 1 : end]) + "\n"
                found.append(Snippet(doc, i + 1, m.group(1), code, marker, section))
                i = end
            i += 1
    return found


SNIPPETS = snippets()


def test_the_docs_have_snippets_and_every_one_is_checked():
    assert len(SNIPPETS) >= 20, [s.id for s in SNIPPETS]
    for s in SNIPPETS:
        assert s.marker is None or re.fullmatch(
            r"<!-- (snippet: (mypy|run by \.ci/run|not run .+)|example: \S+) -->", s.marker
        ), f"{s.id}: unknown marker {s.marker}"


def isolated(code: str, tmp: Path) -> str:
    return code.replace("/tmp/", f"{tmp}/tmp/")


def environment(tmp: Path) -> dict[str, str]:
    """This interpreter's directory (its `fastfifo` script) first on PATH, as after pip."""
    (tmp / "tmp").mkdir(mode=0o700, exist_ok=True)
    (tmp / "run").mkdir(mode=0o700, exist_ok=True)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["XDG_RUNTIME_DIR"] = str(tmp / "run")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def split_processes(code: str) -> list[str]:
    """The programs a ``# process A`` / ``# process B`` snippet stands for (or just one)."""
    lines = code.splitlines(keepends=True)
    marks = [i for i, line in enumerate(lines) if line.startswith("# process ")]
    if not marks:
        return [code]
    common = "".join(lines[: marks[0]])
    bounds = [*marks, len(lines)]
    return [common + "".join(lines[a:b]) for a, b in itertools.pairwise(bounds)]


def run_programs(snippet: Snippet, tmp: Path) -> str:
    """Run the snippet's program(s) at once; all must exit 0.  Returns their stdout."""
    env = environment(tmp)
    procs = []
    for n, program in enumerate(split_processes(isolated(snippet.code, tmp))):
        name = tmp / f"snippet{n}.{'py' if snippet.lang == 'python' else 'sh'}"
        name.write_text(program)
        command = [sys.executable, str(name)] if snippet.lang == "python" else ["sh", "-e", name]
        procs.append(
            subprocess.Popen(
                command, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        )
    outs = []
    try:
        for p in procs:
            try:
                out, err = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{snippet.id} did not finish within 60 s") from None
            text = out.decode() + err.decode()
            assert p.returncode == 0, f"{snippet.id} exited {p.returncode}:\n{text}"
            assert "Traceback" not in text, f"{snippet.id}:\n{text}"
            outs.append(out.decode())
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return "".join(outs)


def check_mypy(snippet: Snippet, tmp: Path) -> None:
    source = tmp / "snippet.py"
    source.write_text(snippet.code)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPY")}
    r = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp / "cache"), "snippet.py"],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    reported = {
        int(m.group(1)): m.group(2)
        for m in re.finditer(r"^snippet\.py:(\d+): error: (.*?)(?:  \[[\w-]+\])?$", r.stdout, re.M)
    }
    expected = {
        n: line.split("# error: ", 1)[1].strip()
        for n, line in enumerate(snippet.code.splitlines(), 1)
        if "# error: " in line
    }
    assert reported.keys() == expected.keys(), r.stdout
    for n, text in expected.items():
        assert text in reported[n], (n, reported[n])


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.id for s in SNIPPETS])
def test_snippet_runs_as_written(snippet: Snippet, tmp_path: Path):
    tmp = Path(os.path.realpath(tmp_path))
    marker = snippet.marker or ""
    if marker.startswith("<!-- snippet: not run"):
        pytest.skip(marker[len("<!-- snippet: ") : -len(" -->")])
    if marker == "<!-- snippet: run by .ci/run -->":
        ci = ROOT / ".ci" / "run"
        if not ci.is_file():
            pytest.skip("no .ci/run beside tests/ (an installed-wheel run)")
        commands = [c for c in snippet.code.splitlines() if c.strip() and not c.startswith("#")]
        for command in commands:
            assert command in ci.read_text().splitlines(), f".ci/run does not run: {command}"
        return
    if marker.startswith("<!-- example: "):
        twin = ROOT / marker[len("<!-- example: ") : -len(" -->")]
        assert snippet.code == twin.read_text(), f"{snippet.id} is not a copy of {twin}"
        return
    if marker == "<!-- snippet: mypy -->":
        check_mypy(snippet, tmp)
        return
    out = run_programs(snippet, tmp)
    for (doc, line), expected in EXPECTED_OUTPUT.items():
        if doc == snippet.doc and snippet.has(line):
            printed = iter(out.splitlines())
            assert all(any(p == e for p in printed) for e in expected), out  # in this order


def test_every_expectation_names_a_snippet():
    """The keys above still match snippets (a reworded doc must not silently drop a check)."""
    for doc, line in EXPECTED_OUTPUT:
        assert any(s.doc == doc and s.has(line) for s in SNIPPETS), (doc, line)


def test_readme_links_work_on_pypi():
    """PyPI shows README.md out of the repository, so its links must be absolute URLs."""
    text = (ROOT / "README.md").read_text()
    relative = re.findall(r"\]\((?!https?://)([^)]*)\)", text)
    assert relative == [], relative
