"""`pydockerd`: the daemon command.  Flag names and meanings follow dockerd's."""
from __future__ import annotations

import argparse
import asyncio
import grp
import ipaddress
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("pydockerd")

DEFAULT_HOST = "unix:///var/run/docker.sock"
DEFAULT_CONFIG_FILE = "/etc/pydockerd/daemon.json"


def _bool_flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean value {value!r}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pydockerd", description="A Docker Engine API compatible daemon in Python")
    p.add_argument("-H", "--host", action="append", dest="hosts", default=None,
                   help="Daemon socket(s) to connect to (unix:///path, tcp://addr:port)")
    p.add_argument("--data-root", default=None, help="Root directory of persistent state (default /var/lib/pydockerd)")
    p.add_argument(
        "--exec-root", default=None, help="Root directory for execution state files (default /run/pydockerd)"
    )
    p.add_argument(
        "-p", "--pidfile", default=None, help="Path to use for daemon PID file (default /var/run/pydockerd.pid)"
    )
    p.add_argument("-l", "--log-level", default=None, choices=["debug", "info", "warn", "error", "fatal"])
    p.add_argument("-D", "--debug", action="store_true", default=None)
    p.add_argument("-G", "--group", default=None, help="Group for the unix socket (default docker)")
    p.add_argument("--tls", nargs="?", const=True, type=_bool_flag, default=None,
                   help="Use TLS; --tls=false explicitly allows plain TCP on non-loopback addresses")
    p.add_argument("--tlsverify", nargs="?", const=True, type=_bool_flag, default=None,
                   help="Use TLS and verify the remote")
    p.add_argument("--tlscacert", default=None)
    p.add_argument("--tlscert", default=None)
    p.add_argument("--tlskey", default=None)
    p.add_argument("--config-file", default=DEFAULT_CONFIG_FILE, help="Daemon configuration file")
    p.add_argument("-b", "--bridge", default=None, help='Attach containers to a network bridge ("none" disables)')
    p.add_argument("--bip", default=None, help="Network bridge IP")
    p.add_argument("-s", "--storage-driver", default=None, choices=["overlay2", "vfs"])
    p.add_argument("--insecure-registry", action="append", dest="insecure_registries", default=None)
    p.add_argument("--registry-mirror", action="append", dest="registry_mirrors", default=None)
    p.add_argument("--registry-certs-dir", default=None,
                   help="Directory of per-registry CA certificates (default /etc/pydockerd/certs.d)")
    p.add_argument("--label", action="append", dest="labels", default=None)
    p.add_argument("--iptables", nargs="?", const=True, type=_bool_flag, default=None)
    p.add_argument("--cgroup-parent", default=None,
                   help='Set parent cgroup for all containers (default "pydockerd")')
    # --- networking
    p.add_argument("--ip-masq", nargs="?", const=True, type=_bool_flag, default=None)
    p.add_argument("--icc", nargs="?", const=True, type=_bool_flag, default=None)
    p.add_argument("--userland-proxy", nargs="?", const=True, type=_bool_flag, default=None)
    p.add_argument("--ip-forward", nargs="?", const=True, type=_bool_flag, default=None)
    p.add_argument("--fixed-cidr", default=None)
    p.add_argument("--ipv6", nargs="?", const=True, type=_bool_flag, default=None)
    p.add_argument("--fixed-cidr-v6", dest="fixed_cidr_v6", default=None)
    p.add_argument("--ip", dest="default_ip", default=None, help="Default IP when binding container ports")
    p.add_argument("--mtu", type=int, default=None)
    p.add_argument("--dns", action="append", default=None)
    p.add_argument("--dns-search", action="append", default=None)
    p.add_argument("--dns-opt", action="append", dest="dns_opts", default=None)
    p.add_argument("--default-address-pool", action="append", dest="default_address_pools", default=None)
    p.add_argument("--live-restore", nargs="?", const=True, type=_bool_flag, default=None,
                   help="Keep containers running while the daemon is down (default true; false: a daemon "
                        "shutdown stops them, as dockerd's default)")
    return p


# daemon.json keys (dockerd's names) -> argparse dest
CONFIG_KEYS = {
    "hosts": "hosts", "data-root": "data_root", "exec-root": "exec_root", "pidfile": "pidfile",
    "log-level": "log_level", "debug": "debug", "group": "group", "tls": "tls", "tlsverify": "tlsverify",
    "tlscacert": "tlscacert", "tlscert": "tlscert", "tlskey": "tlskey", "bridge": "bridge", "bip": "bip",
    "storage-driver": "storage_driver", "insecure-registries": "insecure_registries", "labels": "labels",
    "iptables": "iptables", "live-restore": "live_restore",
    "ip-masq": "ip_masq", "icc": "icc", "userland-proxy": "userland_proxy", "ip-forward": "ip_forward",
    "fixed-cidr": "fixed_cidr", "ipv6": "ipv6", "fixed-cidr-v6": "fixed_cidr_v6",
    "ip": "default_ip", "mtu": "mtu", "dns": "dns", "dns-search": "dns_search",
    "dns-opts": "dns_opts", "default-address-pools": "default_address_pools",
    "registry-mirrors": "registry_mirrors", "registry-certs-dir": "registry_certs_dir",
    "cgroup-parent": "cgroup_parent",
}


class DaemonError(Exception):
    pass


def load_config_file(path: str, explicit: bool) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        if explicit:
            raise DaemonError(
                f"unable to configure the Docker daemon with file {path}: open {path}: no such file or directory"
            ) from None
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DaemonError(f"unable to configure the Docker daemon with file {path}: {err}") from err
    if not isinstance(data, dict):
        raise DaemonError(f"unable to configure the Docker daemon with file {path}: not a JSON object")
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        raise DaemonError(
            f"unable to configure the Docker daemon with file {path}: the following directives don't match "
            f"any configuration option: {', '.join(unknown)}"
        )
    return {CONFIG_KEYS[k]: v for k, v in data.items()}


def resolve_options(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    explicit = args.config_file != DEFAULT_CONFIG_FILE
    from_file = load_config_file(args.config_file, explicit)
    for dest, value in from_file.items():
        if getattr(args, dest) is not None:
            # dockerd refuses the same directive in both places.
            raise DaemonError(
                f"unable to configure the Docker daemon with file {args.config_file}: the following directives are "
                f"specified both as a flag and in the configuration file: {dest.replace('_', '-')}"
            )
        setattr(args, dest, value)
    defaults = {
        "hosts": [DEFAULT_HOST], "data_root": "/var/lib/pydockerd", "exec_root": "/run/pydockerd",
        "pidfile": "/var/run/pydockerd.pid", "log_level": "info", "debug": False, "bridge": "docker0",
        "storage_driver": None, "insecure_registries": [], "labels": [],
        "registry_mirrors": [], "registry_certs_dir": "/etc/pydockerd/certs.d", "cgroup_parent": "pydockerd",
    }
    for dest, value in defaults.items():
        if getattr(args, dest) is None:
            setattr(args, dest, value)
    return args


def network_options(args: argparse.Namespace) -> dict[str, Any]:
    """The networking flags (and daemon.json keys) as Config fields."""
    from engine.errors import InvalidParameter
    from engine.network.ipam import parse_address_pool

    pools = []
    for item in args.default_address_pools or ():
        spec = item if isinstance(item, str) else ",".join(f"{k}={v}" for k, v in dict(item).items())
        try:
            pools.append(parse_address_pool(spec))
        except InvalidParameter as e:
            raise DaemonError(e.message) from None

    def flag(value: Any, default: bool) -> bool:
        return default if value is None else bool(value)

    if not flag(args.iptables, True) and not flag(args.icc, True):
        raise DaemonError("You specified --iptables=false with --icc=false. ICC=false uses iptables to function. "
                          "Please set --icc or --iptables to true")
    fixed6 = args.fixed_cidr_v6 or ""
    if fixed6:
        try:
            net6 = ipaddress.ip_network(fixed6, strict=False)
        except ValueError:
            raise DaemonError(f"invalid CIDR address: {fixed6}") from None
        if net6.version != 6:
            raise DaemonError(f"invalid IPv6 subnet for --fixed-cidr-v6: {fixed6}")
    return {
        "ipv6": flag(args.ipv6, False), "fixed_cidr_v6": fixed6,
        "iptables": flag(args.iptables, True), "ip_masq": flag(args.ip_masq, True), "icc": flag(args.icc, True),
        "userland_proxy": flag(args.userland_proxy, True), "fixed_cidr": args.fixed_cidr or "",
        "default_ip": args.default_ip or "", "mtu": int(args.mtu or 0),
        "dns": tuple(args.dns or ()), "dns_search": tuple(args.dns_search or ()),
        "dns_options": tuple(args.dns_opts or ()), "default_address_pools": tuple(pools),
    }


def check_pidfile(path: Path) -> None:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return
    if text.isdigit():
        pid = int(text)
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if alive and pid != os.getpid():
            raise DaemonError(
                f"pid file found, ensure pydockerd is not running or delete {path} "
                f"(process {pid} is alive)"
            )


def write_pidfile(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{os.getpid()}")
    os.replace(tmp, path)


def cgroup_parent(value: str) -> str:
    """--cgroup-parent: a cgroup path relative to each hierarchy's root (cgroupfs driver)."""
    parts = [p for p in str(value).split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise DaemonError(f"invalid cgroup parent {value!r}: a path below the cgroup root is expected")
    return "/".join(parts)


def pick_storage_driver(requested: str | None, data_root: Path) -> str:
    if requested:
        return requested
    try:
        with open("/proc/filesystems") as f:
            if any(line.split()[-1] == "overlay" for line in f if line.strip()):
                return "overlay2"
    except OSError:
        pass
    return "vfs"


async def run(args: argparse.Namespace) -> int:
    from engine.config import Config
    from engine.engine import Engine

    from .app import build_app
    from .hijack import HijackHandlers
    from .http import Server, TLSOptions

    data_root = Path(args.data_root).absolute()  # noqa: ASYNC240 - start-up, nothing is served yet
    exec_root = Path(args.exec_root).absolute()  # noqa: ASYNC240 - start-up, nothing is served yet
    pidfile = Path(args.pidfile).absolute()  # noqa: ASYNC240 - start-up, nothing is served yet
    check_pidfile(pidfile)

    tls = None
    use_tls = bool(args.tls) or bool(args.tlsverify)
    if use_tls:
        if not (args.tlscert and args.tlskey):
            raise DaemonError("could not load X509 key pair: --tlscert and --tlskey are required with --tls")
        tls = TLSOptions(certfile=args.tlscert, keyfile=args.tlskey, cafile=args.tlscacert,
                         verify=bool(args.tlsverify))
    allow_insecure = args.tls is False  # `--tls=false` explicitly opts out of TLS, like dockerd

    group = args.group
    if group is None:
        try:
            grp.getgrnam("docker")
            group = "docker"
        except KeyError:
            group = None

    config = Config(
        data_root=data_root,
        exec_root=exec_root,
        bridge=args.bridge,
        bip=args.bip,
        storage_driver=pick_storage_driver(args.storage_driver, data_root),
        debug=bool(args.debug),
        log_level="debug" if args.debug else args.log_level,
        hosts=tuple(args.hosts),
        labels=tuple(args.labels),
        insecure_registries=tuple(args.insecure_registries),
        registry_mirrors=tuple(args.registry_mirrors),
        registry_certs_dir=Path(args.registry_certs_dir),
        cgroup_parent=cgroup_parent(args.cgroup_parent),
        **network_options(args),
        live_restore=args.live_restore is not False,
    )
    engine = await Engine.open(config)
    server = Server(build_app(engine), HijackHandlers(engine).handle, hosts=list(args.hosts), tls=tls,
                    group=group, allow_insecure_tcp=allow_insecure)
    try:
        await server.start()
    except BaseException:
        await engine.aclose()
        raise
    write_pidfile(pidfile)
    log.info("pydockerd has completed initialization; API listening on %s", ", ".join(args.hosts))

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    serve = asyncio.ensure_future(server.serve_forever())
    await stop.wait()
    log.info("Processing signal, shutting down the API; containers keep running")
    await server.close()
    serve.cancel()
    await asyncio.gather(serve, return_exceptions=True)
    await engine.aclose()
    try:
        if pidfile.read_text().strip() == str(os.getpid()):
            pidfile.unlink()
    except OSError:
        pass
    log.info("Daemon shutdown complete")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = resolve_options(argv)
    except DaemonError as err:
        print(f"pydockerd: {err}", file=sys.stderr)
        return 1
    level = (
        logging.DEBUG
        if args.debug
        else getattr(logging, args.log_level.upper().replace("WARN", "WARNING").replace("FATAL", "CRITICAL"))
    )
    logging.basicConfig(level=level, format="time=\"%(asctime)s\" level=%(levelname)s msg=\"%(message)s\"")
    try:
        return asyncio.run(run(args))
    except DaemonError as err:
        log.error("%s", err)
        print(f"pydockerd: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # listener errors etc. carry clear messages
        name = type(err).__name__
        if name in ("ListenerError",):
            print(f"pydockerd: {err}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
