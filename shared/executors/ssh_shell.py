"""A long-lived shell on the login node that runs our commands one at a time.

Why: every SSH exec starts the user's login shell, which reads their rc files first (module
loads, conda or pyenv set-up). Measured here: 100-300 ms per exec for root's ``.bashrc``
(``pyenv init``) against 10 ms for ``squeue`` itself; on sites whose ``.bashrc`` loads
modules it is seconds, for every poll and every submission, and CPU on a shared login node.
A ``bash --noprofile --norc`` started once per connection pays it once: the environment the
rc files export (PATH to sbatch, SLURM_CONF…) is inherited, as an exec would see it.

The protocol is a line per command: ``__aif <seconds> <argv>``, the whole line being
``shlex.join`` of an argument list, so a value reaches the program as one argument whatever
it holds. The shell function runs it under coreutils' ``timeout`` (a command can never
outlive its deadline over there either), stdin from /dev/null, stdout and stderr into two
files of a private ``mktemp -d`` folder, then prints ``<token> <status> <out bytes> <err
bytes>`` and both files. The token is random per shell: a stream that went out of step is
detected and the shell thrown away, never misread.
"""

from __future__ import annotations

import asyncio
import secrets
import shlex
from collections.abc import Sequence

import asyncssh

#: ``timeout -k``: seconds between its TERM and its KILL of a command that overran.
KILL_AFTER_S = 2
#: The exit status ``timeout`` reports for a command it had to stop.
TIMED_OUT = 124
#: How long the client waits beyond the command's own deadline before giving the shell up.
CLIENT_MARGIN_S = KILL_AFTER_S + 3

_PRELUDE = r"""set +o history
__aif_dir=$(mktemp -d) || exit 1
trap 'rm -rf "$__aif_dir"' EXIT
__aif() {
    local limit=$1
    shift
    timeout -k @KILL@ "$limit" "$@" </dev/null >"$__aif_dir/o" 2>"$__aif_dir/e"
    local status=$? sizes
    sizes=$(stat -c %s "$__aif_dir/o" "$__aif_dir/e")
    printf '@TOKEN@ %d %d %d\n' "$status" $sizes  # two numbers: split on purpose
    cat "$__aif_dir/o" "$__aif_dir/e"
}
printf '@TOKEN@ ready\n'
"""


class ShellBroken(RuntimeError):
    """The shell died, answered out of step or too late: it cannot be used again."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class RemoteShell:
    """One ``bash --noprofile --norc`` process on the login node, one command at a time."""

    def __init__(self, conn: asyncssh.SSHClientConnection) -> None:
        self.conn = conn
        self.token = secrets.token_hex(8)
        self._proc: asyncssh.SSHClientProcess[bytes] | None = None

    async def start(self, timeout: float) -> RemoteShell:
        self._proc = await self.conn.create_process("exec bash --noprofile --norc", encoding=None)
        prelude = _PRELUDE.replace("@TOKEN@", self.token).replace("@KILL@", str(KILL_AFTER_S))
        self._proc.stdin.write(prelude.encode())
        ready = await self._line(timeout)
        if ready != f"{self.token} ready":
            self.close()
            raise ShellBroken(f"the shell did not start: {ready!r}")
        return self

    async def _line(self, timeout: float) -> str:
        assert self._proc is not None
        try:
            raw = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
        except TimeoutError:
            self.close()
            raise ShellBroken(f"no answer within {timeout:g} s", timed_out=True) from None
        if not raw.endswith(b"\n"):
            self.close()
            raise ShellBroken("the shell ended")
        return raw.decode(errors="replace").rstrip("\n")

    async def run(self, argv: Sequence[str], timeout: float) -> tuple[int, str, str]:
        """Exit status, stdout and stderr of ``argv`` (status 124: killed at ``timeout``)."""
        assert self._proc is not None
        self._proc.stdin.write((shlex.join(["__aif", f"{timeout:g}", *argv]) + "\n").encode())
        header = (await self._line(timeout + CLIENT_MARGIN_S)).split()
        if len(header) != 4 or header[0] != self.token or not all(h.isdigit() for h in header[1:]):
            self.close()
            raise ShellBroken(f"answer out of step: {' '.join(header)[:200]!r}")
        status, out_size, err_size = (int(h) for h in header[1:])
        try:
            body = await asyncio.wait_for(
                self._proc.stdout.readexactly(out_size + err_size), timeout + CLIENT_MARGIN_S
            )
        except (TimeoutError, asyncio.IncompleteReadError) as exc:
            self.close()
            raise ShellBroken(
                f"output cut short: {type(exc).__name__}", timed_out=isinstance(exc, TimeoutError)
            ) from None
        out, err = body[:out_size], body[out_size:]
        return status, out.decode(errors="replace"), err.decode(errors="replace")

    @property
    def alive(self) -> bool:
        return self._proc is not None and not self.conn.is_closed()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.close()
