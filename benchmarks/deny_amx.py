"""Run a command as on a CPU without AMX: the kernel refuses it the AMX tile state, so no library can use AMX.

    python benchmarks/deny_amx.py COMMAND [ARG]...

``ONEDNN_MAX_CPU_ISA`` caps oneDNN (torch's matmuls) only. ONNX Runtime's MLAS reads CPUID itself and uses AMX
int8 tiles wherever the kernel grants a process the tile state, which Linux does only on request
(``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)``). This wrapper installs a seccomp filter that makes that
request fail with EPERM and then runs COMMAND, whose processes inherit the filter: oneDNN and MLAS both fall back
to AVX-512 (VNNI, BF16), as on an Ice Lake Xeon or an AMD Zen 4. Nothing else is changed. To also leave AVX-512
out of oneDNN, set ONEDNN_MAX_CPU_ISA=AVX2 as well; MLAS has no such switch, so its int8 kernels keep VNNI.

Linux on x86-64 only.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys

_ARCH_PRCTL = 158  # x86-64 system call number
_ARCH_REQ_XCOMP_PERM = 0x1023
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2
_RET_ALLOW, _RET_EPERM = 0x7FFF0000, 0x00050000 | 1
_LOAD_WORD, _JUMP_IF_EQUAL, _RETURN = 0x20, 0x15, 0x06


def _instruction(code: int, jump_true: int, jump_false: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jump_true, jump_false, k)


def deny_amx() -> None:
    """Make this process's (and its children's) requests for the AMX tile state fail."""
    program = b"".join([
        _instruction(_LOAD_WORD, 0, 0, 0),  # the system call number
        _instruction(_JUMP_IF_EQUAL, 0, 3, _ARCH_PRCTL),
        _instruction(_LOAD_WORD, 0, 0, 16),  # its first argument (low 32 bits)
        _instruction(_JUMP_IF_EQUAL, 0, 1, _ARCH_REQ_XCOMP_PERM),
        _instruction(_RETURN, 0, 0, _RET_EPERM),
        _instruction(_RETURN, 0, 0, _RET_ALLOW),
    ])
    buffer = ctypes.create_string_buffer(program)

    class Program(ctypes.Structure):
        _fields_ = [("length", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    libc = ctypes.CDLL(None, use_errno=True)
    filter_program = Program(len(program) // 8, ctypes.addressof(buffer))
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) or libc.prctl(
        _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(filter_program), 0, 0
    ):
        raise OSError(ctypes.get_errno(), "cannot install the seccomp filter that denies AMX")


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    deny_amx()
    os.execvp(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
