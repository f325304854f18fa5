"""The Go types dockerd decodes request bodies into, for Go's type-error words.

Only the shapes matter here (field names, JSON kinds, integer sizes and the
type names Go prints); the values are decoded elsewhere.  Names follow the
errors dockerd gives: the innermost struct (``Ulimit``) and the Go type
(``[]*units.Ulimit``, ``container.NetworkMode``, ``time.Duration``).
"""
from __future__ import annotations

from functools import cache

from engine.gojson import (
    BOOL,
    DURATION,
    INT,
    INT64,
    STRING,
    STRING_MAP,
    STRINGS,
    UINT,
    UINT16,
    UINT32,
    UINT64,
    Array,
    GoType,
    Map,
    Slice,
    StrSlice,
    Struct,
    named,
)

from . import versions

EMPTY_STRUCT = Struct("struct {}", "struct {}")

HEALTH_CONFIG = Struct("container.HealthConfig", "HealthConfig", {
    "Test": STRINGS, "Interval": DURATION, "Timeout": DURATION, "StartPeriod": DURATION,
    "StartInterval": DURATION, "Retries": INT,
})

RESTART_POLICY = Struct("container.RestartPolicy", "RestartPolicy", {
    "Name": named(STRING, "container.RestartPolicyMode"), "MaximumRetryCount": INT,
})
LOG_CONFIG = Struct("container.LogConfig", "LogConfig", {"Type": STRING, "Config": STRING_MAP})
PORT_BINDING = Struct("nat.PortBinding", "PortBinding", {"HostIp": STRING, "HostPort": STRING})
ULIMIT = Struct("units.Ulimit", "Ulimit", {"Name": STRING, "Hard": INT64, "Soft": INT64})
DEVICE_MAPPING = Struct("container.DeviceMapping", "DeviceMapping", {
    "PathOnHost": STRING, "PathInContainer": STRING, "CgroupPermissions": STRING,
})
DEVICE_REQUEST = Struct("container.DeviceRequest", "DeviceRequest", {
    "Driver": STRING, "Count": INT, "DeviceIDs": STRINGS,
    "Capabilities": Slice(STRINGS, "[][]string"), "Options": STRING_MAP,
})
WEIGHT_DEVICE = Struct("blkiodev.WeightDevice", "WeightDevice", {"Path": STRING, "Weight": UINT16})
THROTTLE_DEVICE = Struct("blkiodev.ThrottleDevice", "ThrottleDevice", {"Path": STRING, "Rate": UINT64})

MOUNT = Struct("mount.Mount", "Mount", {
    "Type": named(STRING, "mount.Type"), "Source": STRING, "Target": STRING, "ReadOnly": BOOL,
    "Consistency": named(STRING, "mount.Consistency"),
    "BindOptions": Struct("mount.BindOptions", "BindOptions", {
        "Propagation": named(STRING, "mount.Propagation"), "NonRecursive": BOOL, "CreateMountpoint": BOOL,
        "ReadOnlyNonRecursive": BOOL, "ReadOnlyForceRecursive": BOOL,
    }),
    "VolumeOptions": Struct("mount.VolumeOptions", "VolumeOptions", {
        "NoCopy": BOOL, "Labels": STRING_MAP, "Subpath": STRING,
        "DriverConfig": Struct("mount.Driver", "Driver", {"Name": STRING, "Options": STRING_MAP}),
    }),
    "TmpfsOptions": Struct("mount.TmpfsOptions", "TmpfsOptions", {
        "SizeBytes": INT64, "Mode": named(UINT32, "fs.FileMode"), "Options": Slice(STRINGS, "[][]string"),
    }),
})

# container.Resources is embedded in HostConfig (its fields are HostConfig's in JSON) and is
# the body of POST /containers/{id}/update.
RESOURCES: dict[str, GoType] = {
    "CpuShares": INT64, "Memory": INT64, "NanoCpus": INT64, "CgroupParent": STRING, "BlkioWeight": UINT16,
    "BlkioWeightDevice": Slice(WEIGHT_DEVICE, "[]*blkiodev.WeightDevice"),
    "BlkioDeviceReadBps": Slice(THROTTLE_DEVICE, "[]*blkiodev.ThrottleDevice"),
    "BlkioDeviceWriteBps": Slice(THROTTLE_DEVICE, "[]*blkiodev.ThrottleDevice"),
    "BlkioDeviceReadIOps": Slice(THROTTLE_DEVICE, "[]*blkiodev.ThrottleDevice"),
    "BlkioDeviceWriteIOps": Slice(THROTTLE_DEVICE, "[]*blkiodev.ThrottleDevice"),
    "CpuPeriod": INT64, "CpuQuota": INT64, "CpuRealtimePeriod": INT64, "CpuRealtimeRuntime": INT64,
    "CpusetCpus": STRING, "CpusetMems": STRING,
    "Devices": Slice(DEVICE_MAPPING, "[]container.DeviceMapping"),
    "DeviceCgroupRules": STRINGS,
    "DeviceRequests": Slice(DEVICE_REQUEST, "[]container.DeviceRequest"),
    "KernelMemory": INT64, "KernelMemoryTCP": INT64, "MemoryReservation": INT64, "MemorySwap": INT64,
    "MemorySwappiness": INT64, "OomKillDisable": BOOL, "PidsLimit": INT64,
    "Ulimits": Slice(ULIMIT, "[]*units.Ulimit"),
    "CpuCount": INT64, "CpuPercent": INT64, "IOMaximumIOps": UINT64, "IOMaximumBandwidth": UINT64,
}

HOST_CONFIG = Struct("container.HostConfig", "HostConfig", {
    "Binds": STRINGS, "ContainerIDFile": STRING, "LogConfig": LOG_CONFIG,
    "NetworkMode": named(STRING, "container.NetworkMode"),
    "PortBindings": Map(Slice(PORT_BINDING, "[]nat.PortBinding"), "nat.PortMap"),
    "RestartPolicy": RESTART_POLICY, "AutoRemove": BOOL, "VolumeDriver": STRING, "VolumesFrom": STRINGS,
    "ConsoleSize": Array(UINT, 2, "[2]uint"), "Annotations": STRING_MAP,
    "CapAdd": StrSlice(), "CapDrop": StrSlice(),
    "CgroupnsMode": named(STRING, "container.CgroupnsMode"),
    "Dns": STRINGS, "DnsOptions": STRINGS, "DnsSearch": STRINGS, "ExtraHosts": STRINGS, "GroupAdd": STRINGS,
    "IpcMode": named(STRING, "container.IpcMode"), "Cgroup": named(STRING, "container.CgroupSpec"),
    "Links": STRINGS, "OomScoreAdj": INT, "PidMode": named(STRING, "container.PidMode"),
    "Privileged": BOOL, "PublishAllPorts": BOOL, "ReadonlyRootfs": BOOL, "SecurityOpt": STRINGS,
    "StorageOpt": STRING_MAP, "Tmpfs": STRING_MAP, "UTSMode": named(STRING, "container.UTSMode"),
    "UsernsMode": named(STRING, "container.UsernsMode"), "ShmSize": INT64, "Sysctls": STRING_MAP,
    "Runtime": STRING, "Isolation": named(STRING, "container.Isolation"),
    **RESOURCES,
    "Mounts": Slice(MOUNT, "[]mount.Mount"), "MaskedPaths": STRINGS, "ReadonlyPaths": STRINGS, "Init": BOOL,
})

ENDPOINT_SETTINGS = Struct("network.EndpointSettings", "EndpointSettings", {
    "IPAMConfig": Struct("network.EndpointIPAMConfig", "EndpointIPAMConfig", {
        "IPv4Address": STRING, "IPv6Address": STRING, "LinkLocalIPs": STRINGS,
    }),
    "Links": STRINGS, "Aliases": STRINGS, "MacAddress": STRING, "DriverOpts": STRING_MAP,
    "NetworkID": STRING, "EndpointID": STRING, "Gateway": STRING, "IPAddress": STRING, "IPPrefixLen": INT,
    "IPv6Gateway": STRING, "GlobalIPv6Address": STRING, "GlobalIPv6PrefixLen": INT, "DNSNames": STRINGS,
    "GwPriority": INT,
})
NETWORKING_CONFIG = Struct("network.NetworkingConfig", "NetworkingConfig", {
    "EndpointsConfig": Map(ENDPOINT_SETTINGS, "map[string]*network.EndpointSettings"),
})

CONFIG_FIELDS: dict[str, GoType] = {
    "Hostname": STRING, "Domainname": STRING, "User": STRING, "AttachStdin": BOOL, "AttachStdout": BOOL,
    "AttachStderr": BOOL, "ExposedPorts": Map(EMPTY_STRUCT, "nat.PortSet"), "Tty": BOOL, "OpenStdin": BOOL,
    "StdinOnce": BOOL, "Env": STRINGS, "Cmd": StrSlice(), "Healthcheck": HEALTH_CONFIG, "ArgsEscaped": BOOL,
    "Image": STRING, "Volumes": Map(EMPTY_STRUCT, "map[string]struct {}"), "WorkingDir": STRING,
    "Entrypoint": StrSlice(), "NetworkDisabled": BOOL, "MacAddress": STRING, "OnBuild": STRINGS,
    "Labels": STRING_MAP, "StopSignal": STRING, "StopTimeout": INT, "Shell": StrSlice(),
}


@cache
def create_request(version: str) -> Struct:
    """POST /containers/create: dockerd decodes a ContainerConfigWrapper (a CreateRequest since 1.44)."""
    short = "CreateRequest" if versions.at_least(version, "1.44") else "ContainerConfigWrapper"
    return Struct(f"container.{short}" if short == "CreateRequest" else f"runconfig.{short}", short, {
        **CONFIG_FIELDS, "HostConfig": HOST_CONFIG, "NetworkingConfig": NETWORKING_CONFIG,
    })


UPDATE_CONFIG = Struct("container.UpdateConfig", "UpdateConfig", {**RESOURCES, "RestartPolicy": RESTART_POLICY})


# Exec bodies: newer Docker's names (dockerd 20.10 calls them types.ExecConfig and types.ExecStartCheck).
EXEC_OPTIONS = Struct("container.ExecOptions", "ExecOptions", {
    "User": STRING, "Privileged": BOOL, "Tty": BOOL, "ConsoleSize": Array(UINT, 2, "[2]uint"),
    "AttachStdin": BOOL, "AttachStderr": BOOL, "AttachStdout": BOOL, "Detach": BOOL, "DetachKeys": STRING,
    "Env": STRINGS, "WorkingDir": STRING, "Cmd": STRINGS,
})
EXEC_START = Struct("container.ExecStartOptions", "ExecStartOptions", {
    "Detach": BOOL, "Tty": BOOL, "ConsoleSize": Array(UINT, 2, "[2]uint"),
})

# Network bodies (newer Docker's names; dockerd 20.10 says NetworkCreateRequest, NetworkConnect,
# NetworkDisconnect).
IPAM = Struct("network.IPAM", "IPAM", {
    "Driver": STRING, "Options": STRING_MAP,
    "Config": Slice(Struct("network.IPAMConfig", "IPAMConfig", {
        "Subnet": STRING, "IPRange": STRING, "Gateway": STRING, "AuxiliaryAddresses": STRING_MAP,
    }), "[]network.IPAMConfig"),
})
NETWORK_CREATE = Struct("network.CreateRequest", "CreateRequest", {
    "Name": STRING, "CheckDuplicate": BOOL, "Driver": STRING, "Scope": STRING, "EnableIPv4": BOOL,
    "EnableIPv6": BOOL, "IPAM": IPAM, "Internal": BOOL, "Attachable": BOOL, "Ingress": BOOL, "ConfigOnly": BOOL,
    "ConfigFrom": Struct("network.ConfigReference", "ConfigReference", {"Network": STRING}),
    "Options": STRING_MAP, "Labels": STRING_MAP,
})
NETWORK_CONNECT = Struct("network.ConnectOptions", "ConnectOptions", {
    "Container": STRING, "EndpointConfig": ENDPOINT_SETTINGS,
})
NETWORK_DISCONNECT = Struct("network.DisconnectOptions", "DisconnectOptions", {"Container": STRING, "Force": BOOL})
