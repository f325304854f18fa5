"""Files dockerd writes for each container: hostname, hosts, resolv.conf."""
from __future__ import annotations

import re
from pathlib import Path

from engine.fileutil import write_atomic

DEFAULT_NAMESERVERS = ("8.8.8.8", "8.8.4.4")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


__all__ = ["write_atomic"]  # re-exported: one implementation, in engine.fileutil


def hosts_content(hostname: str, domainname: str, ip: str | None, extra_hosts: tuple[str, ...]) -> str:
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    for entry in extra_hosts:
        host, _, addr = entry.partition(":")
        if not addr:
            host, _, addr = entry.partition("=")
        lines.append(f"{addr}\t{host}")
    if ip:
        names = f"{hostname}.{domainname} {hostname}" if domainname else hostname
        lines.append(f"{ip}\t{names}")
    return "\n".join(lines) + "\n"


def resolv_conf_content(
    host_resolv: Path,
    dns: tuple[str, ...] = (),
    search: tuple[str, ...] = (),
    options: tuple[str, ...] = (),
) -> str:
    """The host's resolv.conf without loopback nameservers (unreachable from the
    container's network namespace), with dockerd's public defaults when none remain."""
    try:
        text = host_resolv.read_text()
    except OSError:
        text = ""
    out: list[str] = []
    nameservers = 0
    for line in text.splitlines():
        stripped = line.strip()
        fields = stripped.split()
        if fields and fields[0] == "nameserver":
            if len(fields) < 2 or _is_loopback(fields[1]) or dns:
                continue
            nameservers += 1
        elif fields and fields[0] in ("search", "domain") and search:
            continue
        elif fields and fields[0] == "options" and options:
            continue
        out.append(line)
    for server in dns:
        out.append(f"nameserver {server}")
        nameservers += 1
    if search:
        out.append("search " + " ".join(search))
    if options:
        out.append("options " + " ".join(options))
    if nameservers == 0:
        out.extend(f"nameserver {ns}" for ns in DEFAULT_NAMESERVERS)
    return "\n".join(out).rstrip("\n") + "\n"


def _is_loopback(addr: str) -> bool:
    return addr.startswith("127.") or addr == "::1" or bool(re.fullmatch(r"0*:(0*:)*0*1", addr))


def process_env(hostname: str, tty: bool, home: str, *layers: list[str] | tuple[str, ...]) -> list[str]:
    """The environment dockerd gives a container's process, and an exec in it: PATH and
    HOSTNAME, TERM=xterm with a tty, then each layer in order (the container's Env, an
    exec's Env: a later entry replaces an earlier one of the same name; a bare "NAME",
    from `-e NAME` when the client had no NAME, stays in Config.Env but never reaches a
    process), and HOME from the user's passwd entry unless one was given."""
    env = [f"PATH={DEFAULT_PATH}", f"HOSTNAME={hostname}"]
    if tty:
        env.append("TERM=xterm")
    for layer in layers:
        env = merge_env(env, [e for e in layer if "=" in e])
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={home}")
    return env


def merge_env(base: list[str], overrides: list[str]) -> list[str]:
    """Replace-or-append environment entries by variable name (dockerd's rule)."""
    result = list(base)
    index = {entry.split("=", 1)[0]: i for i, entry in enumerate(result)}
    for entry in overrides:
        key = entry.split("=", 1)[0]
        if key in index:
            result[index[key]] = entry
        else:
            index[key] = len(result)
            result.append(entry)
    return result
