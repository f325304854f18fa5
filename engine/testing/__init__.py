"""In-memory fakes of the engine's service Protocols, for unit tests.

| fake | Protocol | real implementation |
|---|---|---|
| ``runtime.FakeRuntime`` (+ handle, streams) | ``runtime.api.RuntimeExecutor`` | ``runtime.client.ShimRuntime`` |
| ``content.FakeContentStore`` | ``content.api.ContentStoreAPI`` | ``content.store.ContentStore`` |
| ``events.RecordingEventBus`` | ``events.api.EventBusAPI`` | ``events.bus.EventBus`` |
| ``images.FakeImageCatalog`` | ``images.api.ImageCatalog`` | ``images.store.ImageStore`` |
| ``rootfs.FakeRootfsImages`` | ``images.api.RootfsImages`` | ``engine._RootfsImages`` |
| ``registry.FakeRegistry`` | ``registry.api.RegistryAPI`` | ``registry.distribution.HttpRegistry`` |
| ``syscalls.RecordingSyscalls`` | ``runtime.syscalls.Syscalls`` | ``runtime.linux.LinuxSyscalls`` |
| ``contributors.RecordingContributor`` | ``containers.contributors.StartContributor`` | networks, volumes |

``daemon.FakeDaemon`` wires a ``ContainerService`` (with its exec service and
healthcheck monitors) to them.  ``conformance.py`` has mypy check that every
fake and real implementation satisfies its Protocol; tests/contracts/ runs the
same behaviour suite against both.

They live in the package (not under tests/) so that mypy --strict checks them
with the Protocols they implement and every area's tests can use them; nothing
in the daemon imports this package.
"""
