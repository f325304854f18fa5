"""In-memory fakes of the engine's service Protocols, for unit tests.

They live in the package (not under tests/) so that they are type-checked with
the Protocols they implement (mypy strict runs on engine/) and so that every
area's tests (containers, networking, volumes, builder) can use the same
ones.  Each fake runs the same contract suite as its real implementation
(tests/contracts/); nothing in the daemon imports this package.
"""
