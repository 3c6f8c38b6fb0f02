"""A local sweep's Ray is reachable from this machine only: every socket it listens on is bound to the loopback
interface, and its authentication token file is readable by this user alone.

On Linux, Ray takes the machine's outward address as a node's IP, even for ``ray.init()`` with no cluster
(``ray._private.services.resolve_ip_for_localhost`` turns ``127.0.0.1`` into it), and its GCS, raylet, workers and
agents listen on all interfaces. Ray's own switch for a machine that is no cluster node,
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (its default on macOS and Windows), makes the node's IP ``127.0.0.1``; Ray then
binds each of its servers to it. What Ray does not bind, a training worker's torch.distributed rendezvous store
(``TCPStore``, which listens on ``::`` whatever ``MASTER_ADDR`` says), gets the same from a small ``LD_PRELOAD``
library that Ray's processes inherit (:data:`SOURCE`, built once with the system's C compiler into
``~/.cache/ssl_ray/``): its ``bind()`` turns an address that is not loopback into the loopback one (``::`` into the
IPv4-mapped 127.0.0.1, which IPv4 clients reach). A local run has no reason to be reachable from outside (token auth
is on, but a port that is not open needs no token). A sweep that joins a cluster (``--address``) is left as it is:
its nodes must reach each other.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

LOCAL_ONLY = ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

/* bind() to an address that is not loopback binds to the loopback one (ssl_ray/sweep/loopback.py) */
int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static int (*real_bind)(int, const struct sockaddr *, socklen_t) = 0;
    if (!real_bind) real_bind = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
    if (addr && addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        struct sockaddr_in a;
        memcpy(&a, addr, sizeof a);
        if ((ntohl(a.sin_addr.s_addr) >> 24) != 127) {
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return real_bind(fd, (const struct sockaddr *)&a, sizeof a);
        }
    } else if (addr && addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 a;
        memcpy(&a, addr, sizeof a);
        int v4 = IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr) || IN6_IS_ADDR_V4MAPPED(&a.sin6_addr);
        if (v4 ? a.sin6_addr.s6_addr[12] != 127 : !IN6_IS_ADDR_LOOPBACK(&a.sin6_addr)) {
            if (v4) {  /* :: (dual stack) or a mapped IPv4 address: the mapped 127.0.0.1, which IPv4 clients reach */
                memset(&a.sin6_addr, 0, sizeof a.sin6_addr);
                a.sin6_addr.s6_addr[10] = 0xff; a.sin6_addr.s6_addr[11] = 0xff;
                a.sin6_addr.s6_addr[12] = 127; a.sin6_addr.s6_addr[15] = 1;
            } else {
                a.sin6_addr = in6addr_loopback;
            }
            return real_bind(fd, (const struct sockaddr *)&a, sizeof a);
        }
    }
    return real_bind(fd, addr, len);
}
"""


def library() -> Optional[Path]:
    """The compiled library (built on first use, named by the hash of its source); None without a C compiler."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ssl_ray"
    lib = cache / f"loopback-{hashlib.sha256(SOURCE.encode()).hexdigest()[:12]}.so"
    if lib.is_file():
        return lib
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        return None
    cache.mkdir(parents=True, exist_ok=True)
    src, tmp = lib.with_suffix(f".{os.getpid()}.c"), lib.with_suffix(f".{os.getpid()}.tmp")
    src.write_text(SOURCE)
    done = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(src), "-ldl"], capture_output=True)
    src.unlink()
    if done.returncode != 0:
        return None
    tmp.replace(lib)  # atomic: two sweeps building it at once both end with a whole file
    return lib


def apply_local() -> None:
    """Before a local ``ray.init``: the node's IP is 127.0.0.1 for this process and every process Ray starts (which
    inherit the environment; a value the user exported wins), they run under the library, and the token file is
    made private."""
    os.environ.setdefault(*LOCAL_ONLY)
    if os.environ[LOCAL_ONLY[0]] != LOCAL_ONLY[1]:  # the user asked for a node reachable from outside
        return
    if "ray" in sys.modules:
        from ray._private import ray_constants  # read at import time: this process imported ray already

        ray_constants.ENABLE_RAY_CLUSTER = False
    lib = library()
    if lib is None:
        print(
            "[sweep] note: no C compiler (cc): a training worker's torch.distributed store will listen on every "
            "interface; Ray's own servers listen on 127.0.0.1",
            file=sys.stderr,
        )
    elif str(lib) not in os.environ.get("LD_PRELOAD", "").split(":"):
        os.environ["LD_PRELOAD"] = ":".join(x for x in (str(lib), os.environ.get("LD_PRELOAD", "")) if x)
    secure_token_file()


def secure_token_file() -> None:
    """Ray's authentication token file (``~/.ray/auth_token``), readable by this user alone: made with mode 0600 when
    Ray would make it (Ray writes it 0644), and set to 0600 when it exists."""
    from ray._private.authentication.authentication_token_generator import generate_new_authentication_token

    path = Path.home() / ".ray" / "auth_token"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(generate_new_authentication_token())
        except FileExistsError:  # made by another process at the same moment
            pass
    os.chmod(path, 0o600)
