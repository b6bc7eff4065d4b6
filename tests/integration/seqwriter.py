"""A job's payload for the logs tests: numbered lines, so a reader can check count and order.

``python seqwriter.py COUNT CHUNK PAUSE ERR_EVERY [STOP_FILE]``: writes ``out <n>`` lines to
stdout in chunks of CHUNK lines with PAUSE seconds between chunks, and ``err <n>`` to
stderr for every ERR_EVERY-th line, until COUNT lines or until STOP_FILE exists; then
``done <count>``. Each chunk is flushed at once, as a busy server's logger does. With a stop
file a test decides when the job ends, whatever the machine's load.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def out_line(n: int) -> str:
    return f"out {n:08d} " + "." * 60


def err_line(n: int) -> str:
    return f"err {n:08d}"


def main() -> None:
    count, chunk, pause, err_every = (
        int(sys.argv[1]),
        int(sys.argv[2]),
        float(sys.argv[3]),
        int(sys.argv[4]),
    )
    stop = Path(sys.argv[5]) if len(sys.argv) > 5 else None
    written = 0
    for start in range(0, count, chunk):
        if stop is not None and stop.exists():
            break
        block = range(start, min(count, start + chunk))
        sys.stdout.write("".join(out_line(n) + "\n" for n in block))
        sys.stdout.flush()
        errs = [n for n in block if n % err_every == 0]
        if errs:
            sys.stderr.write("".join(err_line(n) + "\n" for n in errs))
            sys.stderr.flush()
        written = block.stop
        time.sleep(pause)
    print(f"done {written}", flush=True)


if __name__ == "__main__":
    main()
