import os
import signal
import subprocess
import sys
import textwrap

from tests.helpers import REPO

SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from hybrid_ir.io import atomic_path
    from hybrid_ir.stage import run

    def main(params, argv):
        with atomic_path(Path("out") / "model", is_dir=True) as tmp:
            tmp.mkdir()
            (tmp / "part.bin").write_bytes(b"half")
            print("writing", flush=True)
            time.sleep(60)

    run(main)
""")


def test_sigterm_leaves_no_half_written_output(tmp_path):
    (tmp_path / "params.yaml").write_text("{}\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert list((tmp_path / "out").iterdir()) == []


def test_bad_params_exit_2_with_one_line_naming_the_key(tmp_path):
    (tmp_path / "params.yaml").write_text("train:\n  stpes: 3\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, str(REPO / "stages" / "pairs.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: train.stpes: unknown key; allowed here: steps, batch_size,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
