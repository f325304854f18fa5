"""The image store fixtures (both snapshotters) for the backend tests."""
from tests.images.conftest import env, tmp  # noqa: F401
