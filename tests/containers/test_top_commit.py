"""docker top's ps parsing and docker commit's config merge."""
from __future__ import annotations

import asyncio
import os

import pytest

from engine.containers.commit import config_dict, merge_config
from engine.containers.top import parse_ps_output, run_top, validate_ps_args
from engine.errors import Conflict, EngineError
from engine.types import ContainerConfig

PS_EF = """UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root         100       1  0 10:01 ?        00:00:00 sleep 300
root         101     100  0 10:01 ?        00:00:00 sh -c echo a  b
"""


def test_parse_keeps_only_container_pids_and_joins_the_command() -> None:
    out = parse_ps_output(PS_EF, [100, 101])
    assert out.titles == ("UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD")
    assert out.processes == (
        ("root", "100", "1", "0", "10:01", "?", "00:00:00", "sleep 300"),
        ("root", "101", "100", "0", "10:01", "?", "00:00:00", "sh -c echo a b"),
    )


def test_parse_needs_a_pid_column() -> None:
    with pytest.raises(EngineError, match="^Couldn't find PID field in ps output$"):
        parse_ps_output("COMMAND\nsleep\n", [1])


def test_parse_pid_dash_and_garbage() -> None:
    assert parse_ps_output("PID CMD\n- kthread\n", [0]).processes == (("-", "kthread"),)
    with pytest.raises(EngineError, match="^Unexpected pid 'x'"):
        parse_ps_output("PID CMD\nx y\n", [1])


def test_ps_args_may_not_rename_the_pid_column() -> None:
    validate_ps_args("-o pid=PID,comm")
    with pytest.raises(EngineError, match='^specifying "user=PID" is not allowed$'):
        validate_ps_args("-o user=PID")


def test_run_top_against_the_host_ps() -> None:
    me = os.getpid()
    out = asyncio.run(run_top("c" * 64, True, [me], "-o pid,comm"))
    assert out.titles == ("PID", "COMMAND") and out.processes[0][0] == str(me)
    with pytest.raises(Conflict, match=f"^Container {'c' * 64} is not running$"):
        asyncio.run(run_top("c" * 64, False, [], None))
    with pytest.raises(EngineError, match="^ps: error: unknown gnu long option$"):
        asyncio.run(run_top("c" * 64, True, [me], "--bogus"))


def test_merge_fills_from_the_container_like_dockerd() -> None:
    base = config_dict(ContainerConfig(image="img", cmd=("sh",), env=("A=1", "B=2"), labels={"k": "v"},
                                       exposed_ports=("80/tcp",), working_dir="/w", user="u",
                                       volumes=("/data",), stop_signal="SIGINT"))
    merged = merge_config({"Cmd": None, "Env": ["B=3"], "Labels": {"x": "y"}, "Entrypoint": None}, base)
    assert merged["Cmd"] == ["sh"] and merged["Env"] == ["B=3", "A=1"]
    assert merged["Labels"] == {"x": "y", "k": "v"} and merged["ExposedPorts"] == {"80/tcp": {}}
    assert merged["WorkingDir"] == "/w" and merged["User"] == "u" and merged["Volumes"] == {"/data": {}}
    assert merged["StopSignal"] == "SIGINT"
    # An entrypoint given by the user keeps its own (empty) Cmd.
    merged = merge_config({"Entrypoint": ["/e"], "Cmd": None}, base)
    assert merged["Entrypoint"] == ["/e"] and merged["Cmd"] is None
